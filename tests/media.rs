//! Installation media: import (folder and ISO), one media run that services boot.wim and
//! install.wim, expands a Setup Dynamic Update into sources/ and writes a bootable ISO with
//! xorriso; and what is refused, leaving everything as it was.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use std::collections::BTreeMap;

use common::{have_or_skip, index_files, sha256, tree_bytes, TestSite};
use ois::library::Architecture;
use ois::sample::{build_wim, filler, write_cab, write_tree, IndexSpec};
use ois::wim::Compression;

/// The servicing stack update of the sample packages: it applies to WinPE and Windows alike
/// (x64, build 22631) and adds Windows/servicing/Stack/CbsCore.dll.
const SSU: &str = "KB5040000";
/// The servicing stack update for Windows PE: boot.wim takes only `target = "winpe"` updates.
const WINPE_SSU: &str = "KB5040090";

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

/// Every file under `dir` by its SHA-256: compared whole, without printing megabytes.
fn tree_hashes(dir: &Path) -> BTreeMap<String, String> {
    tree_bytes(dir)
        .into_iter()
        .map(|(path, bytes)| (path, sha256(&bytes)))
        .collect()
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

/// Imports the WinPE servicing stack update: the same stack file as the OS one.
fn import_winpe_stack_update(site: &TestSite) {
    let dir = site.path("pkgs/winpe-ssu");
    write_tree(
        &dir,
        &[
            (
                "update.toml",
                format!(
                    r#"id = "{WINPE_SSU}"
title = "Servicing Stack Update for Windows PE (x64)"
architecture = "x64"
target = "winpe"
[[change]]
add = "payload/CbsCore.dll"
at = "Windows/servicing/Stack/CbsCore.dll"
"#
                )
                .into_bytes(),
            ),
            ("payload/CbsCore.dll", ssu_file()),
        ],
    )
    .expect("package");
    site.ois(&["update", "import", s(&dir)]).ok();
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
    import_winpe_stack_update(&site);
    let iso = site.path("out/win11.iso");
    let done = site.ois(&[
        "media",
        "service",
        "win11",
        "--updates",
        &format!("{SSU},{WINPE_SSU}"),
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
    let mut from_iso = tree_hashes(&extracted);
    from_iso.retain(|k, _| !k.starts_with("[BOOT]"));
    assert_eq!(from_iso, tree_hashes(&media));
    let install_now = std::fs::read(&install).expect("read");
    assert_eq!(from_iso["sources/install.wim"], sha256(&install_now));
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

    // The media goes to a DP as its images: the serviced boot.wim and install.wim.
    let dp = site.path("dp01");
    std::fs::create_dir_all(&dp).expect("mkdir");
    site.ois(&["dp", "add", &common::nal("DP01"), "--target", s(&dp)])
        .ok();
    let sent = site
        .ois(&[
            "media",
            "distribute",
            "win11",
            "--dp",
            &common::nal("DP01"),
            "--json",
        ])
        .ok();
    let sent = sent.json();
    let sent = sent.as_array().expect("outcomes");
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().all(|o| o["status"] == "Installed"), "{sent:?}");
    for (name, wim) in [("win11-boot", &boot), ("win11-install", &install)] {
        let shown = site.ois(&["image", "show", name, "--json"]).ok().json();
        let id = &shown["image"]["id"];
        let bytes = std::fs::read(wim).expect("read");
        let on_dp = dp.join(format!("ois/images/{id}/{}.wim", sha256(&bytes)));
        assert_eq!(std::fs::read(&on_dp).expect("on the DP"), bytes, "{name}");
    }

    // The ISO imports as media of its own: extracted into the site, registered.
    let again = site
        .ois(&["media", "import", s(&iso), "--name", "fromiso", "--json"])
        .ok()
        .json();
    let copy = PathBuf::from(again["path"].as_str().expect("path"));
    assert!(copy.starts_with(site.root().join("Media")), "{copy:?}");
    assert_eq!(tree_hashes(&copy), tree_hashes(&media));
    assert_eq!(again["install_image"], "fromiso-install");
}

/// The site registered nothing: no image, no media.
fn assert_nothing_registered(site: &TestSite) {
    assert_eq!(
        site.ois(&["image", "list", "--json"]).ok().json(),
        serde_json::json!([])
    );
    assert_eq!(
        site.ois(&["media", "list", "--json"]).ok().json(),
        serde_json::json!([])
    );
}

#[test]
fn media_without_install_wim_with_an_esd_or_that_is_no_media_is_refused_clearly() {
    let site = TestSite::new();
    let media = make_media(&site, "incomplete");
    std::fs::remove_file(media.join("sources/install.wim")).expect("rm");
    let refused = site
        .ois(&["media", "import", s(&media), "--name", "incomplete"])
        .failed();
    assert!(
        refused.stderr.contains("has no sources/install.wim"),
        "{}",
        refused.stderr
    );
    assert_nothing_registered(&site);

    std::fs::write(media.join("sources/install.esd"), filler(90, 4096)).expect("esd");
    let refused = site
        .ois(&["media", "import", s(&media), "--name", "esd"])
        .failed();
    assert!(
        refused
            .stderr
            .contains("wimlib-imagex export install.esd all install.wim --compress=lzx"),
        "{}",
        refused.stderr
    );
    assert_nothing_registered(&site);

    let empty = site.path("empty/media");
    std::fs::create_dir_all(&empty).expect("mkdir");
    std::fs::write(empty.join("notes.txt"), b"not media").expect("write");
    let refused = site
        .ois(&["media", "import", s(&empty), "--name", "empty"])
        .failed();
    assert!(
        refused.stderr.contains("is not installation media"),
        "{}",
        refused.stderr
    );
    assert_nothing_registered(&site);
}

#[test]
fn an_unreadable_iso_is_refused_and_leaves_nothing_in_the_site() {
    if !have_media_tools() {
        return;
    }
    let site = TestSite::new();
    let iso = site.path("broken.iso");
    std::fs::write(&iso, filler(91, 64 * 1024)).expect("write");
    let refused = site
        .ois(&["media", "import", s(&iso), "--name", "broken"])
        .failed();
    assert!(
        refused
            .stderr
            .contains(&format!("cannot read ISO {}", iso.display())),
        "{}",
        refused.stderr
    );
    assert_nothing_registered(&site);
    let left: Vec<_> = std::fs::read_dir(site.root().join("Media"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn media_with_upper_case_names_is_found_without_regard_to_case() {
    let site = TestSite::new();
    let media = make_media(&site, "upper");
    std::fs::rename(
        media.join("sources/install.wim"),
        media.join("sources/INSTALL.WIM"),
    )
    .expect("rename");
    std::fs::rename(
        media.join("sources/boot.wim"),
        media.join("sources/BOOT.WIM"),
    )
    .expect("rename");
    std::fs::rename(media.join("sources"), media.join("SOURCES")).expect("rename");
    let imported = site
        .ois(&["media", "import", s(&media), "--name", "upper", "--json"])
        .ok()
        .json();
    assert_eq!(imported["install_image"], "upper-install");
    let image = site
        .ois(&["image", "show", "upper-install", "--json"])
        .ok()
        .json();
    assert_eq!(
        image["image"]["path"],
        s(&media.join("SOURCES/INSTALL.WIM")),
        "{image}"
    );
    let boot = site
        .ois(&["image", "show", "upper-boot", "--json"])
        .ok()
        .json();
    assert_eq!(boot["image"]["kind"], "boot-image");
}

#[test]
fn a_setup_update_that_is_a_windows_package_is_refused() {
    let site = TestSite::new();
    let cab = site.path("windows11.0-kb5047000-x64.cab");
    write_cab(
        &cab,
        &[
            ("update.mum", b"<assembly/>".to_vec()),
            ("setup.dll", b"x".to_vec()),
        ],
    )
    .expect("cab");
    let refused = site
        .ois(&["media", "import-setup-update", s(&cab)])
        .failed();
    assert!(
        refused.stderr.contains("it is a Windows (CBS) package"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        site.ois(&["media", "setup-updates", "--json"]).ok().json(),
        serde_json::json!([])
    );
}

/// A real small filesystem (tmpfs) mounted for the test; `None` when this is not root.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_while_the_iso_is_written_changes_nothing() {
    if !have_media_tools() {
        return;
    }
    let site = TestSite::new();
    site.sample_packages();
    let media = make_media(&site, "full");
    site.ois(&["media", "import", s(&media), "--name", "full"])
        .ok();
    let du = import_setup_update(&site);
    let Some(small) = Tmpfs::mount(&site.path("small-disk"), "256k") else {
        common::skip_or_fail("cannot mount a tmpfs here (not root)");
        return;
    };
    let before = tree_hashes(&media);
    let media_before = site.ois(&["media", "show", "full", "--json"]).ok().json();
    let install_before = site
        .ois(&["image", "show", "full-install", "--json"])
        .ok()
        .json();
    let iso = small.0.join("full.iso");
    let failed = site
        .ois(&[
            "media",
            "service",
            "full",
            "--updates",
            SSU,
            "--setup-update",
            &du,
            "--iso",
            s(&iso),
        ])
        .failed();
    let out = failed.all_output();
    assert!(out.contains("writing the ISO"), "{out}");
    assert!(out.contains("the original media is unchanged"), "{out}");
    // The original media is byte-identical, nothing was left beside it or on the full disk.
    assert_eq!(tree_hashes(&media), before);
    assert!(!media
        .parent()
        .expect("parent")
        .join(".media.ois-new")
        .exists());
    assert_eq!(
        std::fs::read_dir(&small.0).expect("read").count(),
        0,
        "the partial ISO was left on the full disk"
    );
    // The site database says the same as before: no update installed, the runs Failed.
    assert_eq!(
        site.ois(&["media", "show", "full", "--json"]).ok().json(),
        media_before
    );
    let install = site
        .ois(&["image", "show", "full-install", "--json"])
        .ok()
        .json();
    assert_eq!(install["image"], install_before["image"]);
    assert_eq!(install["indexes"], install_before["indexes"]);
    let runs = install["history"].as_array().or(install["runs"].as_array());
    let runs = runs.expect("runs");
    assert_eq!(runs.len(), 1, "{install}");
    assert_eq!(runs[0]["status"], "Failed");
    // And a run with room succeeds afterwards.
    let done = site
        .ois(&["media", "service", "full", "--updates", SSU, "--json"])
        .ok()
        .json();
    assert_eq!(done["status"], "Successful", "{done}");
}

/// `ois serve` on a free loopback port, killed when dropped.
struct Served {
    child: std::process::Child,
    base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(site: &TestSite) -> Served {
    let child = site.spawn("serve", &["serve", "--listen", "127.0.0.1:0"]);
    let out = site.dir.path().join("serve.out");
    let mut base = String::new();
    common::wait_for(60, "the server to listen", || {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        match text.lines().find_map(|l| l.strip_prefix("listening on ")) {
            Some(url) => {
                base = url.trim().to_string();
                true
            }
            None => false,
        }
    });
    Served { child, base }
}

#[test]
fn the_site_server_lists_shows_and_services_media() {
    if !have_media_tools() {
        return;
    }
    let site = TestSite::new();
    site.sample_packages();
    let media = make_media(&site, "api");
    site.ois(&["media", "import", s(&media), "--name", "api"])
        .ok();
    let server = serve(&site);
    let client = reqwest::blocking::Client::new();
    let get = |path: &str| -> serde_json::Value {
        let r = client
            .get(format!("{}{path}", server.base))
            .send()
            .expect("GET");
        assert_eq!(r.status().as_u16(), 200, "{path}");
        r.json().expect("JSON")
    };
    let csrf = get("/api/v1/whoami")["csrf_token"]
        .as_str()
        .expect("csrf")
        .to_string();
    let list = get("/api/v1/media");
    assert_eq!(list[0]["name"], "api", "{list}");
    let shown = get("/api/v1/media/api");
    assert_eq!(shown["install_image"], "api-install");
    assert_eq!(shown["files"].as_array().map(Vec::len), Some(9));
    let missing = client
        .get(format!("{}/api/v1/media/nope", server.base))
        .send()
        .expect("GET");
    assert_eq!(missing.status().as_u16(), 404);

    let iso = site.path("api-out/api.iso");
    let done: serde_json::Value = client
        .post(format!("{}/api/v1/media/api/service", server.base))
        .header("X-CSRF-Token", &csrf)
        .json(&serde_json::json!({"updates": [SSU], "iso": s(&iso)}))
        .send()
        .expect("POST")
        .json()
        .expect("JSON");
    assert_eq!(done["status"], "Successful", "{done}");
    assert_eq!(done["iso"]["path"], s(&iso));
    assert_eq!(
        index_files(&media.join("sources/install.wim"), 2)
            .get("Windows/servicing/Stack/CbsCore.dll"),
        Some(&ssu_file())
    );
    let shown = get("/api/v1/media/api");
    assert_eq!(
        shown["iso_sha256"],
        sha256(&std::fs::read(&iso).expect("iso"))
    );
}

#[test]
fn an_image_of_a_media_cannot_be_removed_on_its_own() {
    if !have_media_tools() {
        return;
    }
    let site = TestSite::new();
    let media = make_media(&site, "win11");
    site.ois(&["media", "import", s(&media), "--name", "win11"])
        .ok();
    for (image, role) in [("win11-install", "install.wim"), ("win11-boot", "boot.wim")] {
        let out = site.ois(&["image", "remove", image]).failed().all_output();
        assert!(
            out.contains(&format!("image {image} is the {role} of media win11"))
                && out.contains("ois media remove win11"),
            "{out}"
        );
    }
    let images = site.ois(&["image", "list", "--json"]).ok().json();
    assert_eq!(images.as_array().map(Vec::len), Some(2), "{images}");
    // Removing the media forgets both images; then nothing holds them.
    site.ois(&["media", "remove", "win11"]).ok();
    let images = site.ois(&["image", "list", "--json"]).ok().json();
    assert_eq!(images.as_array().map(Vec::len), Some(0), "{images}");
}
