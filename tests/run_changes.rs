//! What each servicing run changed (`ois image changes`): images captured by wimlib-imagex,
//! packages that add over files, add new ones, delete a file and a folder tree, rename and
//! edit a hive; the recorded changes are compared, per index, with the sizes of the files
//! written here and with what `wimlib-imagex dir --detailed` lists before and after.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{have_or_skip, TestSite};
use serde_json::Value;

fn imagex(args: &[&str]) -> String {
    let out = Command::new("wimlib-imagex")
        .args(args)
        .output()
        .expect("wimlib-imagex");
    assert!(
        out.status.success(),
        "wimlib-imagex {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every entry of an index as wimlib-imagex lists it: path (no leading slash) → (directory,
/// uncompressed size of the unnamed stream).
fn listing(wim: &Path, index: u32) -> BTreeMap<String, (bool, u64)> {
    let text = imagex(&[
        "dir",
        wim.to_str().expect("utf8"),
        &index.to_string(),
        "--detailed",
    ]);
    let mut out = BTreeMap::new();
    let mut current: Option<(String, bool)> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(path) = line.strip_prefix("Full Path           = \"") {
            current = Some((
                path.trim_end_matches('"')
                    .trim_start_matches('/')
                    .to_string(),
                false,
            ));
        } else if line.contains("FILE_ATTRIBUTE_DIRECTORY is set") {
            if let Some((_, dir)) = current.as_mut() {
                *dir = true;
            }
        } else if let Some(size) = line.strip_prefix("Uncompressed size = ") {
            // The unnamed stream comes first; named streams would follow.
            if let Some((path, dir)) = current.take() {
                let size = size.trim_end_matches(" bytes").parse().expect("size");
                out.insert(path, (dir, size));
            }
        }
    }
    out
}

fn write(path: &Path, len: usize, seed: u8) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let bytes: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    std::fs::write(path, bytes).expect("write");
}

/// Sizes that differ between the indexes, so each index's record is checked on its own.
struct Edition {
    name: &'static str,
    kernel: usize,
    legacy_a: usize,
}

const EDITIONS: [Edition; 2] = [
    Edition {
        name: "Professional",
        kernel: 3000,
        legacy_a: 100,
    },
    Edition {
        name: "Enterprise",
        kernel: 4000,
        legacy_a: 150,
    },
];

/// A two-index WIM captured by wimlib-imagex; with `hive`, each index has a SOFTWARE hive.
fn image(site: &TestSite, hive: bool) -> PathBuf {
    let wim = site.path("images/golden.wim");
    for (n, edition) in EDITIONS.iter().enumerate() {
        let tree = site.path(&format!("trees/{n}"));
        write(
            &tree.join("Windows/System32/ntoskrnl.exe"),
            edition.kernel,
            1,
        );
        write(&tree.join("Windows/System32/old.dll"), 1234, 2);
        write(&tree.join("Windows/Temp/legacy.log"), 77, 3);
        write(&tree.join("Windows/Legacy/a.txt"), edition.legacy_a, 4);
        write(&tree.join("Windows/Legacy/sub/b.txt"), 200, 5);
        std::fs::create_dir_all(tree.join("Windows/Legacy/empty")).expect("mkdir");
        write(&tree.join("Windows/keep.txt"), 50, 6);
        if hive {
            let config = tree.join("Windows/System32/config");
            std::fs::create_dir_all(&config).expect("mkdir");
            common::hive::minimal_hive(&config.join("SOFTWARE"));
        }
        let verb = if n == 0 { "capture" } else { "append" };
        let name = format!("Windows 11 {}", edition.name);
        imagex(&[
            verb,
            tree.to_str().expect("utf8"),
            wim.to_str().expect("utf8"),
            &name,
        ]);
        imagex(&[
            "info",
            wim.to_str().expect("utf8"),
            &(n + 1).to_string(),
            "--image-property",
            "WINDOWS/ARCH=9",
            "--image-property",
            &format!("WINDOWS/EDITIONID={}", edition.name),
            "--image-property",
            "WINDOWS/VERSION/BUILD=22631",
        ]);
    }
    site.import_image(&wim, "golden");
    wim
}

/// A package directory: its manifest's changes, and payload files (path, size).
fn package(site: &TestSite, id: &str, changes: &str, payload: &[(&str, usize)]) -> PathBuf {
    let dir = site.path(&format!("packages/{id}"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("update.toml"),
        format!("id = \"{id}\"\ntitle = \"{id}\"\narchitecture = \"neutral\"\n{changes}"),
    )
    .expect("manifest");
    for (n, (path, len)) in payload.iter().enumerate() {
        write(&dir.join(path), *len, 10 + n as u8);
    }
    site.import_update(&dir);
    dir
}

/// What the main package does.
const CHANGES: &str = r#"
[[change]]
add = "payload/ntoskrnl.exe"
at = "Windows/System32/ntoskrnl.exe"
[[change]]
add = "payload/drivers"
at = "Windows/System32/drivers"
[[change]]
delete = "Windows/Temp/legacy.log"
[[change]]
delete = "Windows/Legacy"
[[change]]
rename = "Windows/System32/old.dll"
to = "Windows/System32/renamed.dll"
"#;

/// One recorded change as a comparable tuple: kind, path, old path, size before, after.
type Row = (String, String, Option<String>, Option<u64>, Option<u64>);

fn rows(index: &Value) -> Vec<Row> {
    index["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().expect("kind").to_string(),
                c["path"].as_str().expect("path").to_string(),
                c["old_path"].as_str().map(String::from),
                c["size_before"].as_u64(),
                c["size_after"].as_u64(),
            )
        })
        .collect()
}

fn row(kind: &str, path: &str, old: Option<&str>, before: Option<u64>, after: Option<u64>) -> Row {
    (
        kind.into(),
        path.into(),
        old.map(String::from),
        before,
        after,
    )
}

fn changes(site: &TestSite, extra: &[&str]) -> Value {
    let mut args = vec!["image", "changes", "golden", "--json"];
    args.extend(extra);
    site.ois(&args).ok().json()
}

/// A run's changes, per index: what the index holds now against what it held, in both the
/// record and the peer tool's listing.
#[test]
fn image_changes_lists_what_each_run_did_to_each_index_with_sizes() {
    if !have_or_skip("wimlib-imagex") {
        return;
    }
    let site = TestSite::new();
    let wim = image(&site, false);
    let before: Vec<_> = (1..=2).map(|i| listing(&wim, i)).collect();
    package(
        &site,
        "KB9000001",
        CHANGES,
        &[
            ("payload/ntoskrnl.exe", 5000),
            ("payload/drivers/new.sys", 600),
            ("payload/drivers/net/wifi.sys", 700),
        ],
    );
    let nothing_yet = site.ois(&["image", "changes", "golden"]).ok().stdout;
    assert!(
        nothing_yet.contains("no servicing run has changed it yet"),
        "{nothing_yet}"
    );
    site.ois(&["service", "golden", "--updates", "KB9000001"])
        .ok();
    let first = changes(&site, &[]);
    let run1 = first["run_id"].as_u64().expect("run id");
    assert_eq!(first["status"], "Successful", "{first}");
    assert_eq!(first["indexes"].as_array().expect("indexes").len(), 2);
    for (n, edition) in EDITIONS.iter().enumerate() {
        let index = &first["indexes"][n];
        assert_eq!(index["index"], n as u64 + 1);
        let after = listing(&wim, n as u32 + 1);
        let was = |p: &str| before[n].get(p).map(|(_, size)| *size);
        let now = |p: &str| after.get(p).map(|(_, size)| *size);
        let kernel = "Windows/System32/ntoskrnl.exe";
        // By path within the update.
        let expected = vec![
            row(
                "deleted",
                "Windows/Legacy/a.txt",
                None,
                Some(edition.legacy_a as u64),
                None,
            ),
            row("deleted", "Windows/Legacy/empty", None, Some(0), None),
            row("deleted", "Windows/Legacy/sub/b.txt", None, Some(200), None),
            row(
                "added",
                "Windows/System32/drivers/net/wifi.sys",
                None,
                None,
                Some(700),
            ),
            row(
                "added",
                "Windows/System32/drivers/new.sys",
                None,
                None,
                Some(600),
            ),
            row(
                "replaced",
                kernel,
                None,
                Some(edition.kernel as u64),
                Some(5000),
            ),
            row(
                "renamed",
                "Windows/System32/renamed.dll",
                Some("Windows/System32/old.dll"),
                Some(1234),
                Some(1234),
            ),
            row("deleted", "Windows/Temp/legacy.log", None, Some(77), None),
        ];
        assert_eq!(rows(index), expected, "index {}", n + 1);
        // The peer tool agrees: each size before is what the original listed, each size after
        // what the serviced image lists, and deleted or renamed-away paths are gone.
        for (kind, path, old, size_before, size_after) in &expected {
            assert_eq!(now(path), *size_after, "{kind} {path}, index {}", n + 1);
            match kind.as_str() {
                "renamed" => {
                    let old = old.as_deref().expect("old path");
                    assert_eq!(was(old), *size_before);
                    assert_eq!(now(old), None, "{old} is gone");
                }
                _ => assert_eq!(was(path), *size_before, "{kind} {path}"),
            }
        }
        assert_eq!(
            index["changes"][1]["is_dir"], true,
            "the empty folder is recorded as one"
        );
        assert!(!after.contains_key("Windows/Legacy"));
        // Every other entry of the index is as it was.
        let touched: Vec<&str> = expected
            .iter()
            .flat_map(|(_, p, old, _, _)| std::iter::once(p.as_str()).chain(old.as_deref()))
            .collect();
        for (path, entry) in &before[n] {
            let under_touched = touched.iter().any(|t| t.starts_with(&format!("{path}/")))
                || path.starts_with("Windows/Legacy");
            if !touched.contains(&path.as_str()) && !under_touched {
                assert_eq!(after.get(path), Some(entry), "{path} untouched");
            }
        }
        let totals = &index["totals"];
        assert_eq!(totals["added"]["count"], 2);
        assert_eq!(totals["added"]["bytes_after"], 1300);
        assert_eq!(totals["replaced"]["count"], 1);
        assert_eq!(totals["replaced"]["bytes_before"], edition.kernel as u64);
        assert_eq!(totals["replaced"]["bytes_after"], 5000);
        assert_eq!(totals["deleted"]["count"], 4);
        assert_eq!(
            totals["deleted"]["bytes_before"],
            edition.legacy_a as u64 + 200 + 77
        );
        assert_eq!(totals["renamed"]["count"], 1);
        assert_eq!(totals["registry"]["count"], 0);
        for change in index["changes"].as_array().expect("changes") {
            assert_eq!(change["update"], "KB9000001");
        }
    }

    // The text form: a summary per index, then each change.
    let text = site.ois(&["image", "changes", "golden"]).ok().stdout;
    assert!(
        text.contains(&format!("Run {run1} of image golden (Successful")),
        "{text}"
    );
    assert!(
        text.contains(
            "Index 2 (Windows 11 Enterprise): 2 added (1.3 KiB), 1 replaced (3.9 KiB -> 4.9 KiB), 4 deleted (427 B), 1 renamed (1.2 KiB)"
        ),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("renamed")
            && l.contains("Windows/System32/old.dll -> Windows/System32/renamed.dll")
            && l.trim_end().ends_with("1234")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("deleted")
            && l.contains("Windows/Legacy/empty/")
            && l.trim_end().ends_with("0 -> -")),
        "{text}"
    );

    // A second run: the default is now that one, and --run gives the first one back.
    package(
        &site,
        "KB9000002",
        "[[change]]\nadd = \"payload/keep.txt\"\nat = \"Windows/keep.txt\"\n",
        &[("payload/keep.txt", 64)],
    );
    site.ois(&["service", "golden", "--updates", "KB9000002"])
        .ok();
    let second = changes(&site, &[]);
    assert_ne!(second["run_id"], first["run_id"]);
    for n in 0..2 {
        assert_eq!(
            rows(&second["indexes"][n]),
            [row(
                "replaced",
                "Windows/keep.txt",
                None,
                Some(50),
                Some(64)
            )]
        );
    }
    let again = changes(&site, &["--run", &run1.to_string()]);
    assert_eq!(again, first);

    // A run that is not the image's is refused, naming it.
    let unknown = site
        .ois(&["image", "changes", "golden", "--run", "9999"])
        .failed();
    assert!(
        unknown
            .stderr
            .contains("image golden has no servicing run 9999"),
        "{}",
        unknown.stderr
    );
}

/// A run that skipped a failing update (--continue-on-error) records only what the other
/// update did; a run that failed before replacing the image records nothing, and the default
/// stays on the last run that changed the image.
#[test]
fn a_failed_run_records_only_what_it_really_did() {
    if !have_or_skip("wimlib-imagex") {
        return;
    }
    let site = TestSite::new();
    let wim = image(&site, false);
    package(
        &site,
        "KB9000003",
        "[[change]]\nadd = \"payload/first.txt\"\nat = \"Windows/first.txt\"\n[[change]]\nrename = \"Windows/NoSuch.dll\"\nto = \"Windows/Such.dll\"\n",
        &[("payload/first.txt", 10)],
    );
    package(
        &site,
        "KB9000004",
        "[[change]]\nadd = \"payload/later.txt\"\nat = \"Windows/later.txt\"\n",
        &[("payload/later.txt", 33)],
    );
    let run = site.ois(&[
        "service",
        "golden",
        "--updates",
        "KB9000003,KB9000004",
        "--continue-on-error",
        "--json",
    ]);
    let outcome = &run.json_lines()[0];
    assert_eq!(outcome["status"], "Failed", "{outcome}");
    assert_eq!(outcome["failed"][0]["id"], "KB9000003", "{outcome}");
    let skipped_run = outcome["run_id"].as_u64().expect("run id");
    let recorded = changes(&site, &[]);
    assert_eq!(recorded["run_id"], skipped_run);
    assert_eq!(recorded["status"], "Failed");
    for n in 0..2 {
        // The failing update's add was rolled back with it: not in the image, not recorded.
        assert_eq!(
            rows(&recorded["indexes"][n]),
            [row("added", "Windows/later.txt", None, None, Some(33))],
            "index {}",
            n + 1
        );
        assert_eq!(recorded["indexes"][n]["changes"][0]["update"], "KB9000004");
        let after = listing(&wim, n as u32 + 1);
        assert_eq!(after.get("Windows/later.txt"), Some(&(false, 33)));
        assert!(!after.contains_key("Windows/first.txt"));
    }

    // Without --continue-on-error the run stops at the failing update and the image is
    // untouched: the update applied in memory before it is not recorded either.
    package(
        &site,
        "KB9000006",
        "[[change]]\nadd = \"payload/unwritten.txt\"\nat = \"Windows/unwritten.txt\"\n",
        &[("payload/unwritten.txt", 5)],
    );
    package(
        &site,
        "KB9000007",
        "requires = [\"KB9000006\"]\n[[change]]\nrename = \"Windows/NoSuch.dll\"\nto = \"Windows/Such.dll\"\n",
        &[],
    );
    let bytes = std::fs::read(&wim).expect("read");
    let failed = site
        .ois(&[
            "service",
            "golden",
            "--updates",
            "KB9000006,KB9000007",
            "--json",
        ])
        .failed();
    assert_eq!(
        failed.json_lines()[0]["not_written"],
        serde_json::json!(["KB9000006"]),
        "{}",
        failed.stdout
    );
    let failed_run = failed.json_lines()[0]["run_id"].as_u64().expect("run id");
    assert_eq!(std::fs::read(&wim).expect("read"), bytes);
    assert_eq!(changes(&site, &[])["run_id"], skipped_run);
    let nothing = changes(&site, &["--run", &failed_run.to_string()]);
    assert_eq!(nothing["status"], "Failed");
    assert_eq!(nothing["indexes"], serde_json::json!([]));
    let text = site
        .ois(&[
            "image",
            "changes",
            "golden",
            "--run",
            &failed_run.to_string(),
        ])
        .ok()
        .stdout;
    assert!(text.contains("changed nothing in the image"), "{text}");
}

/// An edited hive is one `registry` change per index, with the hive's sizes, linked to the
/// registry changes recorded for the same run, update and index.
#[test]
fn an_edited_hive_is_recorded_as_a_registry_change() {
    if !have_or_skip("wimlib-imagex") {
        return;
    }
    let site = TestSite::new();
    let wim = image(&site, true);
    let before: Vec<_> = (1..=2).map(|i| listing(&wim, i)).collect();
    package(
        &site,
        "KB9000005",
        "[[change]]\nadd = \"payload/readme.txt\"\nat = \"Windows/readme.txt\"\n[[registry]]\nhive = \"SOFTWARE\"\nkey = 'Contoso\\Baseline'\nset = \"Level\"\ntype = \"dword\"\ndata = 3\n",
        &[("payload/readme.txt", 21)],
    );
    site.ois(&["service", "golden", "--updates", "KB9000005"])
        .ok();
    let recorded = changes(&site, &[]);
    let hive = "Windows/System32/config/SOFTWARE";
    for n in 0..2 {
        let after = listing(&wim, n as u32 + 1);
        assert_eq!(
            rows(&recorded["indexes"][n]),
            [
                row("added", "Windows/readme.txt", None, None, Some(21)),
                row(
                    "registry",
                    hive,
                    None,
                    before[n].get(hive).map(|e| e.1),
                    after.get(hive).map(|e| e.1)
                ),
            ],
            "index {}",
            n + 1
        );
        assert_eq!(recorded["indexes"][n]["changes"][1]["hive"], "SOFTWARE");
        assert_eq!(recorded["indexes"][n]["totals"]["registry"]["count"], 1);
    }
    // The link: the same run's registry changes, for that update and index, in that hive.
    let show = site.ois(&["image", "show", "golden", "--json"]).ok().json();
    let run = &show["runs"][0];
    assert_eq!(run["id"], recorded["run_id"]);
    for n in 0..2u64 {
        let update = run["updates"]
            .as_array()
            .expect("updates")
            .iter()
            .find(|u| u["update"] == "KB9000005" && u["index"] == n + 1)
            .expect("update result");
        assert_eq!(update["registry"][0]["hive"], "SOFTWARE", "{update}");
        assert_eq!(
            update["registry"][0]["key"], "Contoso\\Baseline",
            "{update}"
        );
    }
}
