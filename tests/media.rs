//! Installation media: import (folder and ISO), one media run that services boot.wim and
//! install.wim, expands a Setup Dynamic Update into sources/ and writes a bootable ISO with
//! xorriso; and what is refused, leaving everything as it was.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{have_or_skip, index_files, sha256, tree_bytes, TestSite};
use ois::library::Architecture;
use ois::sample::{build_wim, filler, write_cab, write_tree, IndexSpec};
use ois::wim::Compression;

/// The servicing stack update of the sample packages: it applies to WinPE and Windows alike
/// (x64, build 22631) and adds Windows/servicing/Stack/CbsCore.dll.
const SSU: &str = "KB5040000";

fn ssu_file() -> Vec<u8> {
    filler(20, 40 * 1024)
}

/// The Setup Dynamic Update of the tests: a newer setup.dll and a file the media lacked.
fn setup_update_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("setup.dll", b"setup.dll from the dynamic update".to_vec()),
        ("newsetup.dll", filler(61, 3000)),
    ]
}

/// A media folder as Microsoft's ISOs lay it out: setup.exe, sources/ with boot.wim (Windows
/// PE and Windows Setup), install.wim (the sample golden image: Pro and Enterprise) and
/// Setup's DLLs, the BIOS boot sector image and the UEFI boot image (a small FAT image).
fn make_media(site: &TestSite, name: &str) -> PathBuf {
    let root = site.path(&format!("{name}/media"));
    write_tree(
        &root,
        &[
            ("setup.exe", filler(70, 5000)),
            (
                "sources/setup.dll",
                b"setup.dll of the original media".to_vec(),
            ),
            ("sources/winsetup.dll", filler(71, 4000)),
            (
                "sources/lang.ini",
                b"[Available UI Languages]\nen-us = 3\n".to_vec(),
            ),
            // El Torito stand-in: any 2048-aligned bytes.
            ("boot/etfsboot.com", filler(72, 4096)),
            ("boot/bcd", filler(73, 2048)),
        ],
    )
    .expect("media tree");
    let efisys = root.join("efi/microsoft/boot/efisys.bin");
    std::fs::create_dir_all(efisys.parent().expect("parent")).expect("mkdir");
    let fat = Command::new("mkfs.fat")
        .args(["-C"])
        .arg(&efisys)
        .arg("1440")
        .output()
        .is_ok_and(|o| o.status.success());
    if !fat {
        std::fs::write(&efisys, filler(74, 16 * 2048)).expect("efisys stand-in");
    }
    let scratch = tempfile::tempdir().expect("tempdir");
    ois::sample::golden_image(scratch.path(), &root.join("sources/install.wim"))
        .expect("install.wim");
    let pe = scratch.path().join("pe");
    let setup = scratch.path().join("setup");
    let base = [
        ("Windows/System32/winpeshl.exe", filler(80, 8000)),
        ("Windows/System32/ntoskrnl.exe", filler(81, 30000)),
    ];
    write_tree(&pe, &base).expect("pe");
    write_tree(&setup, &base).expect("setup");
    write_tree(&setup, &[("sources/setup.exe", filler(82, 6000))]).expect("setup");
    build_wim(
        &root.join("sources/boot.wim"),
        Compression::Lzx,
        &[
            IndexSpec {
                name: "Microsoft Windows PE (amd64)",
                edition: "WindowsPE",
                architecture: Architecture::X64,
                build: 22631,
                tree: &pe,
            },
            IndexSpec {
                name: "Microsoft Windows Setup (amd64)",
                edition: "WindowsPE",
                architecture: Architecture::X64,
                build: 22631,
                tree: &setup,
            },
        ],
    )
    .expect("boot.wim");
    root
}

fn have_media_tools() -> bool {
    have_or_skip("xorriso") && have_or_skip("7z")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

/// Extracts an ISO with 7-Zip, as an admin would check it.
fn extract_iso(iso: &Path, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    let out = Command::new("7z")
        .arg("x")
        .arg("-y")
        .arg(format!("-o{}", dir.display()))
        .arg(iso)
        .output()
        .expect("7z");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.to_path_buf()
}

fn import_setup_update(site: &TestSite) -> String {
    let cab = site.path("du/windows11.0-kb5046000-x64.cab");
    write_cab(&cab, &setup_update_files()).expect("cab");
    let u = site
        .ois(&["media", "import-setup-update", s(&cab), "--json"])
        .ok()
        .json();
    assert_eq!(u["id"], "KB5046000");
    assert_eq!(u["files"], 2);
    "KB5046000".into()
}

#[test]
fn a_serviced_media_round_trips_to_a_bootable_iso_holding_the_serviced_images() {
    if !have_media_tools() {
        return;
    }
    let site = TestSite::new();
    site.sample_packages();
    let media = make_media(&site, "win11");
    let imported = site
        .ois(&["media", "import", s(&media), "--name", "win11", "--json"])
        .ok()
        .json();
    assert_eq!(imported["install_image"], "win11-install");
    assert_eq!(imported["boot_image"], "win11-boot");
    let recorded = imported["files"].as_array().expect("files");
    let install_before = std::fs::read(media.join("sources/install.wim")).expect("read");
    assert!(recorded
        .iter()
        .any(|f| f["path"] == "sources/install.wim" && f["sha256"] == sha256(&install_before)));
    assert_eq!(recorded.len(), 9, "{recorded:?}");
    let images = site.ois(&["image", "list", "--json"]).ok().json();
    let kinds: Vec<(&str, &str)> = images
        .as_array()
        .expect("images")
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap_or(""),
                i["kind"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [("win11-install", "os-image"), ("win11-boot", "boot-image")]
    );

    let du = import_setup_update(&site);
    let iso = site.path("out/win11.iso");
    let done = site.ois(&[
        "media",
        "service",
        "win11",
        "--updates",
        SSU,
        "--setup-update",
        &du,
        "--iso",
        s(&iso),
        "--json",
    ]);
    let done = done.ok().json();
    assert_eq!(done["status"], "Successful", "{done}");
    let serviced: Vec<&str> = done["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|o| o["image"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(serviced, ["win11-boot", "win11-install"]);

    // The media folder holds the serviced images, with the update's file in every index.
    let install = media.join("sources/install.wim");
    let boot = media.join("sources/boot.wim");
    for (wim, indexes) in [(&install, 2), (&boot, 2)] {
        for index in 1..=indexes {
            let files = index_files(wim, index);
            assert_eq!(
                files.get("Windows/servicing/Stack/CbsCore.dll"),
                Some(&ssu_file()),
                "{} index {index}",
                wim.display()
            );
        }
    }
    // The Setup Dynamic Update overwrote sources/setup.dll and added its new file.
    for (name, bytes) in setup_update_files() {
        assert_eq!(
            std::fs::read(media.join("sources").join(name)).expect("read"),
            bytes,
            "{name}"
        );
    }
    assert!(!media
        .parent()
        .expect("parent")
        .join(".media.ois-new")
        .exists());

    // The ISO boots like Microsoft's: BIOS El Torito from etfsboot.com (no emulation, 8
    // sectors), UEFI from efisys.bin.
    let report = Command::new("xorriso")
        .arg("-indev")
        .arg(&iso)
        .args(["-report_el_torito", "plain"])
        .output()
        .expect("xorriso");
    let report = String::from_utf8_lossy(&report.stdout);
    let line = |prefix: &str| -> Vec<String> {
        report
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    let entries = line("El Torito boot img");
    assert!(
        entries
            .iter()
            .any(|l| l.contains("1 BIOS y none") && l.contains(" 8 ")),
        "{report}"
    );
    assert!(
        entries.iter().any(|l| l.contains("2 UEFI y none")),
        "{report}"
    );
    assert_eq!(
        line("El Torito img path"),
        [
            "El Torito img path : 1 /boot/etfsboot.com",
            "El Torito img path : 2 /efi/microsoft/boot/efisys.bin"
        ],
        "{report}"
    );
    // 7-Zip lists the whole tree.
    let listing = Command::new("7z").arg("l").arg(&iso).output().expect("7z");
    let listing = String::from_utf8_lossy(&listing.stdout);
    for path in [
        "setup.exe",
        "sources/install.wim",
        "sources/boot.wim",
        "sources/newsetup.dll",
        "boot/etfsboot.com",
        "efi/microsoft/boot/efisys.bin",
    ] {
        assert!(listing.contains(path), "{path} not in:\n{listing}");
    }
    // What the ISO holds is the serviced media, byte for byte.
    let extracted = extract_iso(&iso, &site.path("extracted"));
    let mut from_iso = tree_bytes(&extracted);
    from_iso.retain(|k, _| !k.starts_with("[BOOT]"));
    assert_eq!(from_iso, tree_bytes(&media));
    let install_now = std::fs::read(&install).expect("read");
    assert_eq!(
        sha256(&from_iso["sources/install.wim"]),
        sha256(&install_now)
    );
    assert_eq!(
        done["iso"]["sha256"],
        sha256(&std::fs::read(&iso).expect("iso"))
    );

    // The media's record is what it now holds; the image records follow the files.
    let shown = site.ois(&["media", "show", "win11", "--json"]).ok().json();
    assert_eq!(shown["setup_updates"], serde_json::json!([du]));
    assert_eq!(shown["iso_path"], s(&iso));
    let files = shown["files"].as_array().expect("files");
    assert!(files
        .iter()
        .any(|f| f["path"] == "sources/install.wim" && f["sha256"] == sha256(&install_now)));
    assert!(files.iter().any(|f| f["path"] == "sources/newsetup.dll"));
    let image = site
        .ois(&["image", "show", "win11-install", "--json"])
        .ok()
        .json();
    assert_eq!(image["image"]["sha256"], sha256(&install_now), "{image}");

    // The ISO imports as media of its own: extracted into the site, registered.
    let again = site
        .ois(&["media", "import", s(&iso), "--name", "fromiso", "--json"])
        .ok()
        .json();
    let copy = PathBuf::from(again["path"].as_str().expect("path"));
    assert!(copy.starts_with(site.root().join("Media")), "{copy:?}");
    assert_eq!(tree_bytes(&copy), tree_bytes(&media));
    assert_eq!(again["install_image"], "fromiso-install");
}
