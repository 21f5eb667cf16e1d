//! Payloads compressed once per compression type and copied raw into every image.

mod common;

use common::{index_files, tree_bytes, TestSite};
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

/// Services `golden`, which must be refused with `expected` in the message and leave the
/// original byte-identical; then imports `packages` again, which repairs the library.
fn refused_then_repaired(
    site: &TestSite,
    wim: &std::path::Path,
    packages: &[std::path::PathBuf],
    expected: &[&str],
) {
    let before = std::fs::read(wim).expect("read");
    let out = site
        .ois(&["service", "golden", "--all-applicable"])
        .failed()
        .all_output();
    assert!(expected.iter().all(|e| out.contains(e)), "{out}");
    assert!(
        std::fs::read(wim).expect("read") == before,
        "original untouched"
    );
    let mut args = vec!["update", "import"];
    args.extend(packages.iter().map(|p| p.to_str().expect("utf8")));
    site.ois(&args).ok();
}

#[test]
fn a_damaged_library_file_is_refused_and_importing_again_repairs_it() {
    let site = TestSite::new();
    let wim = site.golden_image("golden");
    let packages = site.sample_packages();
    // Runs read the library's files in place: damage one that an update adds.
    let store = site.root().join("ContentLibrary/files");
    let (rel, _) = tree_bytes(&store)
        .into_iter()
        .find(|(_, b)| *b == filler(40, 110 * 1024))
        .expect("ntoskrnl.exe of KB5040001 in the store");
    let victim = store.join(rel);
    let mut bytes = std::fs::read(&victim).expect("read");
    bytes[1000] ^= 0x20;
    std::fs::write(&victim, bytes).expect("write");

    refused_then_repaired(&site, &wim, &packages, &["damaged", "import the package"]);
    assert!(
        std::fs::read(&victim).expect("read") == filler(40, 110 * 1024),
        "repaired by the import"
    );
    site.ois(&["service", "golden", "--all-applicable"]).ok();
    for index in 1..=2 {
        assert!(
            index_files(&wim, index)["Windows/System32/ntoskrnl.exe"] == filler(40, 110 * 1024),
            "index {index} has the update's ntoskrnl.exe"
        );
    }
}

#[test]
fn two_library_files_swapped_are_refused_though_both_contents_are_known() {
    let site = TestSite::new();
    let wim = site.golden_image("golden");
    let packages = site.sample_packages();
    let store = site.root().join("ContentLibrary/files");
    let stored = tree_bytes(&store);
    let find = |content: &[u8]| {
        let (rel, _) = stored
            .iter()
            .find(|(_, b)| b.as_slice() == content)
            .expect("in the store");
        store.join(rel)
    };
    let (kernel, driver) = (filler(40, 110 * 1024), filler(41, 20 * 1024));
    // Each file now holds the other's bytes: both are data of the verified payload.
    std::fs::write(find(&kernel), &driver).expect("write");
    std::fs::write(find(&driver), &kernel).expect("write");

    refused_then_repaired(
        &site,
        &wim,
        &packages,
        &["Windows/System32/", "import the package"],
    );
    site.ois(&["service", "golden", "--all-applicable"]).ok();
    for index in 1..=2 {
        let files = index_files(&wim, index);
        assert!(
            files["Windows/System32/ntoskrnl.exe"] == kernel,
            "index {index}"
        );
        assert!(
            files["Windows/System32/drivers/stornvme.sys"] == driver,
            "index {index}"
        );
    }
}

#[test]
fn files_of_one_package_with_the_same_content_stay_separate_files() {
    let site = TestSite::new();
    let wim = site.golden_image("golden");
    site.sample_packages();
    let same = filler(77, 50 * 1024);
    let pkg = ois::sample::write_package(
        &site.path("packages/KB5040100"),
        r#"id = "KB5040100"
title = "2026-11 Language Pack refresh for Windows 11 (x64)"
classification = "Updates"
architecture = "x64"
[[change]]
add = "payload/a.dll"
at = "Windows/System32/en-US/a.dll.mui"
[[change]]
add = "payload/b.dll"
at = "Windows/System32/de-DE/a.dll.mui"
"#,
        &[
            ("payload/a.dll", same.clone()),
            ("payload/b.dll", same.clone()),
        ],
    )
    .expect("package");
    site.ois(&["update", "import", pkg.to_str().expect("utf8")])
        .ok();
    site.ois(&["service", "golden", "--updates", "KB5040100"])
        .ok();
    let opened = ois::wim::Wim::open(&wim, false).expect("open");
    for index in 1..=2 {
        let entries = opened.list(index, "/Windows/System32", true).expect("list");
        for name in ["en-US/a.dll.mui", "de-DE/a.dll.mui"] {
            let e = entries
                .iter()
                .find(|e| e.path.ends_with(name))
                .unwrap_or_else(|| panic!("{name} in index {index}"));
            assert_eq!(e.links, 1, "{name} is not a hard link of its twin");
        }
        let files = index_files(&wim, index);
        assert_eq!(files["Windows/System32/en-US/a.dll.mui"], same);
        assert_eq!(files["Windows/System32/de-DE/a.dll.mui"], same);
    }
}

/// Files read in place from the library (LZX: its payload is referenced) and checked copies
/// (no compression: nothing to reference) give the same content, nested folders included.
#[test]
fn folder_adds_land_whole_whether_read_in_place_or_from_checked_copies() {
    let site = TestSite::new();
    let tree = site.path("tree/x");
    let tree = tree.parent().expect("tree");
    ois::sample::write_tree(tree, &[("Windows/System32/kernel32.dll", filler(1, 4096))])
        .expect("tree");
    let mut images = Vec::new();
    for (name, compression) in [
        ("flat", ois::wim::Compression::None),
        ("packed", ois::wim::Compression::Lzx),
    ] {
        let wim = site.path(&format!("images/{name}.wim"));
        ois::sample::build_wim(
            &wim,
            compression,
            &[ois::sample::IndexSpec {
                name,
                edition: "Enterprise",
                architecture: ois::library::Architecture::X64,
                build: 22631,
                tree,
            }],
        )
        .expect("wim");
        site.ois(&["image", "import", wim.to_str().expect("utf8")])
            .ok();
        images.push(wim);
    }
    let pkg = ois::sample::write_package(
        &site.path("packages/KB5040200"),
        r#"id = "KB5040200"
title = "2026-11 Update for Windows 11 (x64)"
architecture = "x64"
[[change]]
add = "payload/inf"
at = "Windows/INF"
[[change]]
add = "payload/kernel32.dll"
at = "Windows/System32/kernel32.dll"
"#,
        &[
            ("payload/inf/usb.inf", filler(2, 3000)),
            ("payload/inf/sub/net.inf", filler(3, 2000)),
            ("payload/kernel32.dll", filler(4, 5000)),
        ],
    )
    .expect("package");
    site.ois(&["update", "import", pkg.to_str().expect("utf8")])
        .ok();
    assert_eq!(compressed_files(&site).len(), 1, "one payload, for LZX");
    site.ois(&["service", "flat", "packed", "--all-applicable"])
        .ok();
    for wim in &images {
        let files = index_files(wim, 1);
        assert!(files["Windows/INF/usb.inf"] == filler(2, 3000), "{wim:?}");
        assert!(
            files["Windows/INF/sub/net.inf"] == filler(3, 2000),
            "{wim:?}"
        );
        assert!(
            files["Windows/System32/kernel32.dll"] == filler(4, 5000),
            "{wim:?}"
        );
    }
}
