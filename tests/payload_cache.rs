//! Payloads compressed once per compression type and copied raw into every image.

mod common;

use common::{index_files, TestSite};
use ois::sample::filler;

fn compressed_files(site: &TestSite) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(site.root().join("ContentLibrary/compressed"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn a_payload_is_compressed_once_at_import_and_serves_every_image() {
    let site = TestSite::new();
    let one = site.golden_image("one");
    let two = site.golden_image("two");
    site.sample_packages();
    let built = compressed_files(&site);
    assert!(
        !built.is_empty(),
        "compressed at import for the registered images"
    );
    let run = site
        .ois(&["service", "one", "two", "--all-applicable", "--json"])
        .ok();
    assert!(run.json_lines().iter().all(|o| o["status"] == "Successful"));
    assert_eq!(compressed_files(&site), built, "reused, not built again");
    for wim in [&one, &two] {
        for index in 1..=2 {
            let after = index_files(wim, index);
            assert_eq!(
                after["Windows/System32/ntoskrnl.exe"],
                filler(40, 110 * 1024),
                "index {index}"
            );
            assert_eq!(
                after["Windows/System32/drivers/stornvme.sys"],
                filler(41, 20 * 1024)
            );
        }
    }
}

#[test]
fn a_damaged_compressed_payload_is_rebuilt_not_used() {
    let site = TestSite::new();
    let wim = site.golden_image("golden");
    site.sample_packages();
    for f in compressed_files(&site) {
        let mut bytes = std::fs::read(&f).expect("read");
        let n = bytes.len();
        for b in &mut bytes[n / 3..n / 3 + 64] {
            *b ^= 0x5a;
        }
        std::fs::write(&f, bytes).expect("write");
    }
    site.ois(&["service", "golden", "--all-applicable"]).ok();
    let after = index_files(&wim, 1);
    assert_eq!(
        after["Windows/System32/ntoskrnl.exe"],
        filler(40, 110 * 1024)
    );
    assert_eq!(
        after["Windows/servicing/Stack/CbsCore.dll"],
        filler(20, 40 * 1024)
    );
}
