//! The content library: package validation, CAB import, single-instance storage.

mod common;

use std::path::Path;

use common::TestSite;
use ois::sample::{write_cab, write_package};

const GOOD: &str = r#"id = "KB8000001"
title = "2026-11 Cumulative Update for Windows 11 (x64)"
classification = "Security Updates"
architecture = "x64"
[[change]]
add = "payload/ntoskrnl.exe"
at = "Windows/System32/ntoskrnl.exe"
"#;

fn stored_files(site: &TestSite) -> usize {
    fn walk(p: &Path) -> usize {
        std::fs::read_dir(p)
            .map(|d| {
                d.flatten()
                    .map(|e| {
                        if e.path().is_dir() {
                            walk(&e.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(&site.root().join("ContentLibrary"))
}

fn list(site: &TestSite, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["update", "list", "--json"];
    args.extend_from_slice(extra);
    let v = site.ois(&args).ok().json();
    v.as_array()
        .expect("array")
        .iter()
        .map(|u| u["id"].as_str().expect("id").to_string())
        .collect()
}

#[test]
fn directory_and_cab_packages_import_once() {
    let site = TestSite::new();
    let dir = write_package(
        &site.path("pkg"),
        GOOD,
        &[("payload/ntoskrnl.exe", b"kernel v2".to_vec())],
    )
    .expect("pkg");
    let dir = dir.to_str().expect("utf8");
    site.ois(&["update", "import", dir]).ok();
    assert_eq!(stored_files(&site), 1);
    // Importing the same package again is a no-op.
    let again = site.ois(&["update", "import", dir]).ok();
    assert!(
        again.stdout.contains("Already in the content library"),
        "{}",
        again.stdout
    );

    // A CAB (written with the cab crate) sharing the payload stores no second copy.
    let cab = site.path("KB8000002.cab");
    write_cab(
        &cab,
        &[
            (
                "update.toml",
                GOOD.replace("KB8000001", "KB8000002").into_bytes(),
            ),
            ("payload/ntoskrnl.exe", b"kernel v2".to_vec()),
        ],
    )
    .expect("cab");
    site.ois(&["update", "import", cab.to_str().expect("utf8")])
        .ok();
    assert_eq!(stored_files(&site), 1, "payload is stored once by SHA-256");
    assert_eq!(list(&site, &[]), ["KB8000001", "KB8000002"]);

    // The same id with different content is refused.
    let changed = write_package(
        &site.path("pkg2"),
        GOOD,
        &[("payload/ntoskrnl.exe", b"kernel v3".to_vec())],
    )
    .expect("pkg");
    let run = site
        .ois(&["update", "import", changed.to_str().expect("utf8")])
        .failed();
    assert!(run.stderr.contains("different content"), "{}", run.stderr);
}

#[test]
fn cab_made_by_gcab_imports() {
    if !common::have_or_skip("gcab") {
        return;
    }
    let site = TestSite::new();
    let dir = write_package(
        &site.path("pkg"),
        GOOD,
        &[("payload/ntoskrnl.exe", b"kernel from gcab".to_vec())],
    )
    .expect("pkg");
    let cab = site.path("gcab.cab");
    let status = std::process::Command::new("gcab")
        .current_dir(&dir)
        .args(["-c", "-z"])
        .arg(&cab)
        .args(["update.toml", "payload/ntoskrnl.exe"])
        .status()
        .expect("gcab");
    assert!(status.success());
    site.ois(&["update", "import", cab.to_str().expect("utf8")])
        .ok();
    assert_eq!(list(&site, &[]), ["KB8000001"]);
}

#[test]
fn invalid_packages_store_nothing() {
    let site = TestSite::new();
    let good = write_package(
        &site.path("good"),
        GOOD,
        &[("payload/ntoskrnl.exe", b"k".to_vec())],
    )
    .expect("pkg");
    type Case<'a> = (&'a str, String, Vec<(&'a str, Vec<u8>)>, &'a str);
    let cases: Vec<Case> = vec![
        ("traversal", GOOD.replace("payload/ntoskrnl.exe", "../../etc/passwd"), vec![], "`..` is not allowed"),
        ("absolute", GOOD.replace("payload/ntoskrnl.exe", "/etc/passwd"), vec![], "absolute"),
        ("missing", GOOD.to_string(), vec![], "missing from the package"),
        ("malformed", "id = \"KB1\"\ntitle = \n".to_string(), vec![], "update.toml"),
        ("badarch", GOOD.replace("\"x64\"", "\"mips\""), vec![("payload/ntoskrnl.exe", b"k".to_vec())], "architecture"),
        (
            "duplicate",
            format!("{GOOD}[[change]]\nadd = \"payload/other.exe\"\nat = \"windows/system32/NTOSKRNL.EXE\"\n"),
            vec![("payload/ntoskrnl.exe", b"k".to_vec()), ("payload/other.exe", b"o".to_vec())],
            "more than one change",
        ),
    ];
    for (name, manifest, payload, expected) in cases {
        let dir = write_package(&site.path(name), &manifest, &payload).expect("pkg");
        // A valid package in the same call is not imported either.
        let run = site
            .ois(&[
                "update",
                "import",
                good.to_str().expect("utf8"),
                dir.to_str().expect("utf8"),
            ])
            .failed();
        assert!(run.stderr.contains(expected), "{name}: {}", run.stderr);
        assert!(
            run.stderr.contains(name),
            "{name}: the message names the package: {}",
            run.stderr
        );
    }
    // A link pointing outside the package.
    let linked = write_package(&site.path("linked"), GOOD, &[]).expect("pkg");
    std::fs::create_dir_all(linked.join("payload")).expect("mkdir");
    std::os::unix::fs::symlink("/etc/passwd", linked.join("payload/ntoskrnl.exe"))
        .expect("symlink");
    let run = site
        .ois(&["update", "import", linked.to_str().expect("utf8")])
        .failed();
    assert!(run.stderr.contains("outside the package"), "{}", run.stderr);
    // A CAB whose entry climbs out of the package.
    let cab = site.path("evil.cab");
    write_cab(
        &cab,
        &[
            ("update.toml", GOOD.as_bytes().to_vec()),
            ("..\\..\\payload\\ntoskrnl.exe", b"x".to_vec()),
        ],
    )
    .expect("cab");
    let run = site
        .ois(&["update", "import", cab.to_str().expect("utf8")])
        .failed();
    assert!(run.stderr.contains("`..` is not allowed"), "{}", run.stderr);

    assert_eq!(stored_files(&site), 0);
    assert!(list(&site, &[]).is_empty());
}

#[test]
fn list_filters_by_text_and_architecture() {
    let site = TestSite::new();
    site.sample_packages();
    let arm = write_package(
        &site.path("arm"),
        "id = \"KB9000001\"\ntitle = \"Arm64 driver update\"\nclassification = \"Drivers\"\narchitecture = \"arm64\"\n[[change]]\ndelete = \"x\"\n",
        &[],
    )
    .expect("pkg");
    site.ois(&["update", "import", arm.to_str().expect("utf8")])
        .ok();
    assert_eq!(list(&site, &["--arch", "arm64"]), ["KB9000001"]);
    assert_eq!(
        list(&site, &["--arch", "x64", "--filter", "cumulative"]),
        ["KB5039999", "KB5040001"]
    );
    assert_eq!(list(&site, &["--filter", "DRIVERS"]), ["KB9000001"]);
    assert_eq!(list(&site, &["--filter", "kb504000"]).len(), 3);
    assert!(list(&site, &["--arch", "x86"]).is_empty());
    site.ois(&["update", "list", "--arch", "sparc"]).failed();
}

#[test]
fn commands_on_a_missing_site_say_how_to_create_one() {
    let site = TestSite::uninitialised();
    let run = site.ois(&["update", "list"]).failed();
    assert!(run.stderr.contains("site init"), "{}", run.stderr);
    site.ois(&["site", "init"]).ok();
    let again = site.ois(&["site", "init"]).failed();
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert!(site.root().join("site.toml").is_file());
    assert!(site.root().join("logs").is_dir());
}
