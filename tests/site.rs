//! The site database is never silently replaced or used damaged.

mod common;

use common::{tree_bytes, TestSite};

fn fixture() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/packages/KB5041000").to_string()
}

#[test]
fn a_site_whose_database_vanished_is_refused_not_recreated() {
    let site = TestSite::new();
    site.sample_packages();
    let db = site.root().join("site.db");
    for state in ["missing", "empty"] {
        for file in ["site.db", "site.db-wal", "site.db-shm"] {
            let _ = std::fs::remove_file(site.root().join(file));
        }
        if state == "empty" {
            std::fs::write(&db, b"").expect("empty");
        }
        let library = tree_bytes(&site.root().join("ContentLibrary"));
        for args in [
            &["update", "list"][..],
            &["update", "import", &fixture()][..],
        ] {
            let err = site.ois(args).failed().stderr;
            assert!(err.contains(state), "{state}: {err}");
            assert!(err.contains("content library"), "{err}");
            assert!(err.contains("Restore site.db"), "{err}");
        }
        assert_eq!(
            tree_bytes(&site.root().join("ContentLibrary")),
            library,
            "{state}: the library changed"
        );
        let len = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
        assert_eq!(len, 0, "{state}: a new database was created");
    }
}

#[test]
fn a_damaged_site_database_is_refused_before_anything_is_written() {
    let site = TestSite::new();
    site.sample_packages();
    site.golden_image("golden");
    let db = site.root().join("site.db");
    {
        let conn = rusqlite::Connection::open(&db).expect("open");
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("checkpoint");
    }
    let mut bytes = std::fs::read(&db).expect("read");
    assert!(bytes.len() > 16 * 4096, "{}", bytes.len());
    // Pages in the middle of the file: the header (page 1) and the first tables stay readable,
    // so some queries still answer.
    let at = bytes.len() / 2 / 4096 * 4096;
    for (i, b) in bytes[at..at + 8192].iter_mut().enumerate() {
        *b = (i * 7 + 13) as u8;
    }
    std::fs::write(&db, &bytes).expect("write");
    let library = tree_bytes(&site.root().join("ContentLibrary"));

    let err = site.ois(&["update", "import", &fixture()]).failed().stderr;
    assert!(err.contains("damaged"), "{err}");
    assert!(err.contains("backup"), "{err}");
    assert_eq!(tree_bytes(&site.root().join("ContentLibrary")), library);
    assert_eq!(std::fs::read(&db).expect("read"), bytes);

    std::fs::write(
        &db,
        b"this is not a database, though it is not empty either",
    )
    .expect("write");
    let err = site.ois(&["image", "list"]).failed().stderr;
    assert!(err.contains("damaged"), "{err}");
    assert!(err.contains("not a database"), "{err}");
}
