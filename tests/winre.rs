//! Nested images (Winre.wim inside install.wim) and boot images, through the real `ois`
//! binary against WIMs made by wimlib-imagex: detection at import, servicing the nested image
//! within the parent's run (one blob back in every index, one run, one replace), re-detection
//! on a fresh site, WinPE applicability, and damaged or unsafe nested WIMs.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{have_or_skip, index_files, TestSite};
use ois::sample::{filler, write_tree};
use ois::wim::Wim;

const WINRE: &str = "Windows/System32/Recovery/Winre.wim";

// ---------------------------------------------------------------------------------------
// Making WIMs and packages with the peer tool.

fn imagex(args: &[&str]) {
    let out = Command::new("wimlib-imagex")
        .args(args)
        .output()
        .expect("run wimlib-imagex");
    assert!(
        out.status.success(),
        "wimlib-imagex {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Files of a tree, by path.
type Files = Vec<(String, Vec<u8>)>;

/// One index to capture: its name, edition and files.
type IndexSpec<'a> = (&'a str, &'a str, Files);

/// Captures each tree as one index (in order) with Windows XML properties.
fn capture(work: &Path, name: &str, indexes: &[IndexSpec]) -> PathBuf {
    let wim = work.join(format!("{name}.wim"));
    for (n, (image_name, edition, files)) in indexes.iter().enumerate() {
        let tree = work.join(format!("{name}-tree-{n}"));
        let borrowed: Vec<(&str, Vec<u8>)> =
            files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
        write_tree(&tree, &borrowed).expect("tree");
        let verb = if n == 0 { "capture" } else { "append" };
        imagex(&[
            verb,
            tree.to_str().expect("utf8"),
            wim.to_str().expect("utf8"),
            image_name,
        ]);
        let index = (n + 1).to_string();
        for (key, value) in [
            ("WINDOWS/ARCH", "9"),
            ("WINDOWS/VERSION/MAJOR", "10"),
            ("WINDOWS/VERSION/MINOR", "0"),
            ("WINDOWS/VERSION/BUILD", "22621"),
            ("WINDOWS/EDITIONID", edition),
        ] {
            imagex(&[
                "info",
                wim.to_str().expect("utf8"),
                &index,
                "--image-property",
                &format!("{key}={value}"),
            ]);
        }
    }
    wim
}

fn owned(files: &[(&str, Vec<u8>)]) -> Files {
    files
        .iter()
        .map(|(p, b)| (p.to_string(), b.clone()))
        .collect()
}

/// A small recovery environment, made different by `seed`.
fn winre_files(seed: u64) -> Files {
    owned(&[
        (
            "Windows/System32/winpeshl.ini",
            b"[LaunchApps]\r\n".to_vec(),
        ),
        ("Windows/System32/recenv.exe", filler(seed, 40 * 1024)),
        ("Windows/System32/bootrec.exe", filler(seed + 1, 20 * 1024)),
    ])
}

fn winre_wim(work: &Path, name: &str, seed: u64) -> Vec<u8> {
    let wim = capture(
        work,
        name,
        &[(
            "Microsoft Windows Recovery Environment (x64)",
            "WindowsPE",
            winre_files(seed),
        )],
    );
    std::fs::read(wim).expect("read winre")
}

/// An install.wim whose indexes each hold `nested[i]` at Winre.wim's path.
fn install_wim(work: &Path, name: &str, nested: &[&[u8]]) -> PathBuf {
    let editions = ["Professional", "Enterprise", "Education"];
    let indexes: Vec<IndexSpec> = nested
        .iter()
        .enumerate()
        .map(|(n, winre)| {
            let mut files = owned(&[
                ("Windows/System32/kernel32.dll", filler(100, 64 * 1024)),
                ("Windows/System32/ntdll.dll", filler(101, 32 * 1024)),
                ("Windows/explorer.exe", filler(102 + n as u64, 16 * 1024)),
            ]);
            files.push((WINRE.to_string(), winre.to_vec()));
            (
                [
                    "Windows 11 Pro",
                    "Windows 11 Enterprise",
                    "Windows 11 Education",
                ][n],
                editions[n],
                files,
            )
        })
        .collect();
    capture(work, name, &indexes)
}

/// A package directory with `update.toml` and its payload files.
fn package(dir: &Path, toml: &str, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let mut all = vec![("update.toml", toml.as_bytes().to_vec())];
    all.extend(files.iter().cloned());
    write_tree(dir, &all).expect("package");
    dir.to_path_buf()
}

fn winre_package(site: &TestSite) -> PathBuf {
    package(
        &site.path("pkgs/winre"),
        r#"id = "KB5050001"
title = "Safe OS Dynamic Update for Windows 11 (x64)"
architecture = "x64"
target = "winre"
[[change]]
add = "payload/recenv.exe"
at = "Windows/System32/recenv.exe"
[[change]]
add = "payload/SafeOS.dll"
at = "Windows/System32/SafeOS.dll"
"#,
        &[
            ("payload/recenv.exe", filler(900, 48 * 1024)),
            ("payload/SafeOS.dll", filler(901, 12 * 1024)),
        ],
    )
}

fn os_package(site: &TestSite) -> PathBuf {
    package(
        &site.path("pkgs/os"),
        r#"id = "KB5050002"
title = "Cumulative Update for Windows 11 (x64)"
architecture = "x64"
[[change]]
add = "payload/ntdll.dll"
at = "Windows/System32/ntdll.dll"
"#,
        &[("payload/ntdll.dll", filler(910, 36 * 1024))],
    )
}

fn winpe_package(site: &TestSite) -> PathBuf {
    package(
        &site.path("pkgs/winpe"),
        r#"id = "KB5050003"
title = "Cumulative Update for Windows PE (x64)"
architecture = "x64"
target = "winpe"
[[change]]
add = "payload/winpe.dll"
at = "Windows/System32/winpe.dll"
"#,
        &[("payload/winpe.dll", filler(920, 10 * 1024))],
    )
}

/// The nested WIM's bytes in `index` of `outer`, read with wimlib-imagex extract.
fn nested_bytes(outer: &Path, index: u32, work: &Path) -> Vec<u8> {
    let dest = work.join(format!("extract-{index}-{}", rand_tag()));
    imagex(&[
        "extract",
        outer.to_str().expect("utf8"),
        &index.to_string(),
        &format!("/{WINRE}"),
        &format!("--dest-dir={}", dest.display()),
        "--no-acls",
    ]);
    std::fs::read(dest.join("Winre.wim")).expect("extracted Winre.wim")
}

fn rand_tag() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Every file of `wim`'s index 1, extracted by wimlib-imagex from bytes written to `work`.
fn files_of_nested(bytes: &[u8], work: &Path) -> BTreeMap<String, Vec<u8>> {
    let path = work.join(format!("nested-{}.wim", rand_tag()));
    std::fs::write(&path, bytes).expect("write nested");
    index_files(&path, 1)
}

fn without(mut files: BTreeMap<String, Vec<u8>>, path: &str) -> BTreeMap<String, Vec<u8>> {
    files.remove(path);
    files
}

fn nested_json(site: &TestSite, image: &str) -> Vec<serde_json::Value> {
    site.ois(&["image", "show", image, "--json"]).ok().json()["nested"]
        .as_array()
        .expect("nested array")
        .clone()
}

fn installed_on(nested: &serde_json::Value) -> Vec<String> {
    nested["indexes"][0]["installed"]
        .as_array()
        .expect("installed")
        .iter()
        .map(|u| u["id"].as_str().expect("id").to_string())
        .collect()
}

fn staged_leftovers(site: &TestSite) -> Vec<PathBuf> {
    common::files_under(&site.root().join("ConfigMgr_OfflineImageServicing"))
}

// ---------------------------------------------------------------------------------------
// Tests.

/// Import finds Winre.wim in every index: the same blob in indexes 1 and 2 is one nested
/// image held by both, the different one in index 3 a second. A WinRE update then changes the
/// nested images' files, every index holds its new Winre.wim (indexes 1 and 2 still one blob),
/// the parent's other files are unchanged, and a fresh site re-detects the installed update
/// from the nested WIM's own XML.
#[test]
fn winre_update_services_the_nested_image_in_every_index_as_one_blob() {
    if !have_or_skip("wimlib-imagex") {
        return;
    }
    let site = TestSite::new();
    let work = site.path("work");
    std::fs::create_dir_all(&work).expect("work");
    let shared = winre_wim(&work, "winre-a", 1);
    let other = winre_wim(&work, "winre-b", 7);
    let wim = install_wim(&work, "install", &[&shared, &shared, &other]);
    let imported = site
        .ois(&[
            "image",
            "import",
            wim.to_str().expect("utf8"),
            "--name",
            "install",
            "--json",
        ])
        .ok()
        .json();
    let nested = imported["nested"].as_array().expect("nested");
    assert_eq!(nested.len(), 2, "{imported:#}");
    let parents = |n: &serde_json::Value| -> Vec<u64> {
        n["parents"]
            .as_array()
            .expect("parents")
            .iter()
            .map(|p| p["index"].as_u64().expect("index"))
            .collect()
    };
    assert_eq!(parents(&nested[0]), [1, 2]);
    assert_eq!(parents(&nested[1]), [3]);
    assert_eq!(nested[0]["path"], WINRE);
    assert_eq!(nested[0]["indexes"][0]["architecture"], "x64");
    assert_eq!(nested[0]["indexes"][0]["build"], 22621);
    assert_eq!(
        nested[0]["indexes"][0]["name"],
        "Microsoft Windows Recovery Environment (x64)"
    );
    assert_eq!(nested[0]["indexes"][0]["target"], "winre");

    site.import_update(&winre_package(&site));
    let before: Vec<BTreeMap<String, Vec<u8>>> = (1..=3).map(|i| index_files(&wim, i)).collect();
    let nested_before = files_of_nested(&shared, &work);

    let run = site
        .ois(&["service", "install", "--updates", "KB5050001", "--json"])
        .ok();
    let outcome = &run.json_lines()[0];
    assert_eq!(outcome["status"], "Successful", "{outcome:#}");
    assert_eq!(outcome["applied"], serde_json::json!(["KB5050001"]));
    assert_eq!(outcome["nested"].as_array().expect("nested").len(), 2);
    assert_eq!(
        outcome["nested"][0]["parent_indexes"],
        serde_json::json!([1, 2])
    );

    // Indexes 1 and 2 hold the same new Winre.wim, stored once.
    let outer = Wim::open(&wim, true).expect("open serviced");
    let entry = |i: u32| {
        outer
            .entry(i, &format!("/{WINRE}"))
            .expect("entry")
            .expect("Winre.wim is there")
    };
    assert_eq!(entry(1).sha1, entry(2).sha1);
    assert_ne!(entry(1).sha1, entry(3).sha1);
    let blobs = outer.blobs().expect("blobs");
    assert_eq!(
        blobs.iter().filter(|b| b.sha1 == entry(1).sha1).count(),
        1,
        "one blob for the shared Winre.wim"
    );
    drop(outer);
    let new_a = nested_bytes(&wim, 1, &work);
    assert_eq!(new_a, nested_bytes(&wim, 2, &work));
    assert_ne!(new_a, shared);

    // Its content: the update's files, the rest as it was.
    let files = files_of_nested(&new_a, &work);
    assert_eq!(
        files["Windows/System32/recenv.exe"],
        filler(900, 48 * 1024),
        "replaced by the update"
    );
    assert_eq!(files["Windows/System32/SafeOS.dll"], filler(901, 12 * 1024));
    assert_eq!(
        files["Windows/System32/bootrec.exe"],
        nested_before["Windows/System32/bootrec.exe"]
    );
    assert_eq!(files.len(), nested_before.len() + 1);
    let nested_path = work.join("new-a.wim");
    std::fs::write(&nested_path, &new_a).expect("write");
    let record = Wim::open(&nested_path, true)
        .expect("open nested")
        .property(1, "OIS/INSTALLEDUPDATES");
    assert_eq!(record.as_deref(), Some("KB5050001"));
    let other_files = files_of_nested(&nested_bytes(&wim, 3, &work), &work);
    assert_eq!(
        other_files["Windows/System32/recenv.exe"],
        filler(900, 48 * 1024)
    );

    // The outer indexes are otherwise unchanged.
    for i in 1..=3u32 {
        assert_eq!(
            without(index_files(&wim, i), WINRE),
            without(before[i as usize - 1].clone(), WINRE),
            "index {i} changed beyond Winre.wim"
        );
    }
    // The site records it per level: installed on the nested images, not on the parent.
    let shown = site
        .ois(&["image", "show", "install", "--json"])
        .ok()
        .json();
    for n in shown["nested"].as_array().expect("nested") {
        assert_eq!(installed_on(n), ["KB5050001"], "{n:#}");
    }
    for i in shown["indexes"].as_array().expect("indexes") {
        assert!(i["installed"].as_array().expect("installed").is_empty());
    }
    let history = &shown["runs"][0]["nested_updates"];
    assert_eq!(history.as_array().expect("nested_updates").len(), 2);
    assert_eq!(history[0]["applied"], true);
    assert_eq!(history[0]["parent_indexes"], serde_json::json!([1, 2]));
    assert_eq!(
        site.ois(&["image", "applicable", "install", "--json"])
            .ok()
            .json()
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    assert!(staged_leftovers(&site).is_empty());

    // A fresh site reads the installed update back from the nested WIM's XML.
    let fresh = TestSite::new();
    let copy = fresh.path("images/install-copy.wim");
    std::fs::copy(&wim, &copy).expect("copy");
    fresh.import_image(&copy, "copy");
    let nested = nested_json(&fresh, "copy");
    assert_eq!(nested.len(), 2);
    assert_eq!(installed_on(&nested[0]), ["KB5050001"]);
    assert_eq!(
        nested[0]["indexes"][0]["installed"][0]["source"],
        "ois-record"
    );
}

/// An OS update and a WinRE update selected together are one run: one run row, one replace
/// of the outer file, each update on its own level.
#[test]
fn os_and_winre_updates_in_one_run_make_one_run_and_one_replace() {
    if !have_or_skip("wimlib-imagex") {
        return;
    }
    let site = TestSite::new();
    let work = site.path("work");
    std::fs::create_dir_all(&work).expect("work");
    let shared = winre_wim(&work, "winre", 3);
    let wim = install_wim(&work, "install", &[&shared, &shared]);
    site.import_image(&wim, "install");
    site.import_update(&winre_package(&site));
    site.import_update(&os_package(&site));

    // With --target os the WinRE update is refused before anything is touched.
    let refused = site
        .ois(&[
            "service",
            "install",
            "--updates",
            "KB5050001,KB5050002",
            "--target",
            "os",
        ])
        .failed();
    assert!(
        refused.stderr.contains("KB5050001 targets WinRE"),
        "{}",
        refused.stderr
    );

    let run = site
        .ois(&["service", "install", "--all-applicable", "--json"])
        .ok();
    let outcomes = run.json_lines();
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0]["status"], "Successful", "{:#}", outcomes[0]);
    let mut applied: Vec<String> = outcomes[0]["applied"]
        .as_array()
        .expect("applied")
        .iter()
        .map(|v| v.as_str().expect("id").to_string())
        .collect();
    applied.sort();
    assert_eq!(applied, ["KB5050001", "KB5050002"]);

    let shown = site
        .ois(&["image", "show", "install", "--json"])
        .ok()
        .json();
    let runs = shown["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1, "one run row");
    let run_id = runs[0]["id"].as_i64().expect("run id");
    let log = std::fs::read_to_string(
        site.root()
            .join("logs/runs")
            .join(format!("run-{run_id}.log")),
    )
    .expect("run log");
    assert_eq!(
        log.matches("replacing the original image").count(),
        1,
        "one replace:\n{log}"
    );
    // OS update on the parent's indexes, WinRE update in the nested image.
    for i in 1..=2u32 {
        let files = index_files(&wim, i);
        assert_eq!(files["Windows/System32/ntdll.dll"], filler(910, 36 * 1024));
        let nested = files_of_nested(&files[WINRE], &work);
        assert_eq!(
            nested["Windows/System32/SafeOS.dll"],
            filler(901, 12 * 1024)
        );
        assert!(!nested.contains_key("Windows/System32/ntdll.dll"));
    }
    let installed: Vec<&str> = shown["indexes"][0]["installed"]
        .as_array()
        .expect("installed")
        .iter()
        .map(|u| u["id"].as_str().expect("id"))
        .collect();
    assert_eq!(installed, ["KB5050002"]);
    assert_eq!(installed_on(&shown["nested"][0]), ["KB5050001"]);
}

/// A WinRE update that fails inside the nested image fails the run, naming the nested level;
/// the outer file is byte-identical and the result is recorded on the nested image.
#[test]
fn a_failure_inside_the_nested_image_fails_the_run_and_changes_nothing() {
    if !have_or_skip("wimlib-imagex") {
        return;
    }
    let site = TestSite::new();
    let work = site.path("work");
    std::fs::create_dir_all(&work).expect("work");
    let winre = winre_wim(&work, "winre", 3);
    let wim = install_wim(&work, "install", &[&winre, &winre]);
    site.import_image(&wim, "install");
    site.import_update(&os_package(&site));
    site.import_update(&package(
        &site.path("pkgs/clash"),
        r#"id = "KB5050009"
title = "A WinRE update whose rename collides"
architecture = "x64"
target = "winre"
[[change]]
rename = "Windows/System32/recenv.exe"
to = "Windows/System32/bootrec.exe"
"#,
        &[],
    ));
    let original = std::fs::read(&wim).expect("read");
    let run = site
        .ois(&["service", "install", "--all-applicable", "--json"])
        .failed();
    let outcome = &run.json_lines()[0];
    assert_eq!(outcome["status"], "Failed");
    let error = outcome["error"].as_str().expect("error");
    assert!(
        error.contains(&format!(
            "nested image {WINRE} in index(es) 1, 2 of image install"
        )) && error.contains("KB5050009"),
        "{error}"
    );
    assert!(
        std::fs::read(&wim).expect("read") == original,
        "WIM changed"
    );
    let shown = site
        .ois(&["image", "show", "install", "--json"])
        .ok()
        .json();
    let nested = &shown["runs"][0]["nested_updates"][0];
    assert_eq!(nested["update"], "KB5050009");
    assert_eq!(nested["applied"], false);
    assert!(shown["indexes"][0]["installed"]
        .as_array()
        .expect("installed")
        .is_empty());
    assert!(staged_leftovers(&site).is_empty());
}

/// A schedule keeps its `--target`: `os` leaves the nested image alone when the scheduler
/// runs it, and the Servicing view plans what it would apply at that level.
#[test]
fn a_schedule_keeps_its_target() {
    if !have_or_skip("wimlib-imagex") {
        return;
    }
    let site = TestSite::new();
    let work = site.path("work");
    std::fs::create_dir_all(&work).expect("work");
    let winre = winre_wim(&work, "winre", 3);
    let wim = install_wim(&work, "install", &[&winre]);
    site.import_image(&wim, "install");
    site.import_update(&winre_package(&site));
    site.import_update(&os_package(&site));
    let set = site
        .ois(&[
            "image",
            "schedule",
            "install",
            "--all-applicable",
            "--target",
            "os",
            "--now",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(set["target"], "os");
    let shown = site
        .ois(&["image", "show", "install", "--json"])
        .ok()
        .json();
    assert_eq!(
        shown["servicing"]["will_apply"],
        serde_json::json!(["KB5050002"])
    );
    site.ois(&["scheduler", "run", "--once"]).ok();
    let shown = site
        .ois(&["image", "show", "install", "--json"])
        .ok()
        .json();
    assert_eq!(shown["runs"][0]["status"], "Successful", "{shown:#}");
    assert!(installed_on(&shown["nested"][0]).is_empty());
    assert_eq!(index_files(&wim, 1)[WINRE], winre, "Winre.wim untouched");
}

/// A boot image (boot.wim: Windows PE, Windows Setup) takes WinPE updates on both indexes;
/// an os-image does not, and an OS update does not apply to the boot image.
#[test]
fn winpe_update_applies_to_boot_images_only() {
    if !have_or_skip("wimlib-imagex") {
        return;
    }
    let site = TestSite::new();
    let work = site.path("work");
    std::fs::create_dir_all(&work).expect("work");
    let pe = owned(&[
        (
            "Windows/System32/winpeshl.ini",
            b"[LaunchApps]\r\n".to_vec(),
        ),
        ("Windows/System32/wpeinit.exe", filler(30, 8 * 1024)),
    ]);
    let mut setup = pe.clone();
    setup.push(("sources/setup.exe".into(), filler(31, 8 * 1024)));
    let boot = capture(
        &work,
        "boot",
        &[
            ("Microsoft Windows PE (x64)", "WindowsPE", pe),
            ("Microsoft Windows Setup (x64)", "WindowsPE", setup),
        ],
    );
    let shown = site
        .ois(&[
            "image",
            "import",
            boot.to_str().expect("utf8"),
            "--kind",
            "boot-image",
            "--name",
            "boot",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(shown["image"]["kind"], "boot-image");
    assert_eq!(shown["indexes"][1]["target"], "winpe");
    let winre = winre_wim(&work, "winre", 3);
    let install = install_wim(&work, "install", &[&winre]);
    site.import_image(&install, "install");
    site.import_update(&winpe_package(&site));
    site.import_update(&os_package(&site));

    let ids = |image: &str| -> Vec<String> {
        site.ois(&["image", "applicable", image, "--json"])
            .ok()
            .json()
            .as_array()
            .expect("rows")
            .iter()
            .map(|u| u["id"].as_str().expect("id").to_string())
            .collect()
    };
    assert_eq!(ids("boot"), ["KB5050003"]);
    assert_eq!(ids("install"), ["KB5050002"]);

    let refused = site
        .ois(&["service", "boot", "--updates", "KB5050002"])
        .failed();
    assert!(
        refused.stderr.contains("KB5050002 applies to no index"),
        "{}",
        refused.stderr
    );
    let refused = site
        .ois(&["service", "install", "--updates", "KB5050003"])
        .failed();
    assert!(
        refused.stderr.contains("KB5050003 applies to no index"),
        "{}",
        refused.stderr
    );

    let run = site
        .ois(&["service", "boot", "--all-applicable", "--json"])
        .ok();
    assert_eq!(run.json_lines()[0]["status"], "Successful");
    for i in 1..=2 {
        assert_eq!(
            index_files(&boot, i)["Windows/System32/winpe.dll"],
            filler(920, 10 * 1024)
        );
    }
}

/// A Winre.wim whose bytes are damaged: the parent registers with a warning naming the
/// parent, the index and the path, the nested image is listed as unusable, a WinRE update
/// is refused clearly, and nothing changes.
#[test]
fn corrupt_nested_wim_registers_the_parent_without_it_and_refuses_winre_updates() {
    if !have_or_skip("wimlib-imagex") {
        return;
    }
    let site = TestSite::new();
    let work = site.path("work");
    std::fs::create_dir_all(&work).expect("work");
    let mut winre = winre_wim(&work, "winre", 3);
    winre.truncate(winre.len() / 2);
    let wim = install_wim(&work, "install", &[&winre, &winre]);
    let imported = site
        .ois(&[
            "image",
            "import",
            wim.to_str().expect("utf8"),
            "--name",
            "install",
        ])
        .ok();
    assert!(
        imported.stderr.contains(&format!(
            "nested image {WINRE} in index(es) 1, 2 of {}",
            wim.canonicalize().expect("path").display()
        )),
        "{}",
        imported.all_output()
    );
    assert!(
        imported.stdout.contains("cannot be serviced"),
        "{}",
        imported.stdout
    );
    let nested = nested_json(&site, "install");
    assert_eq!(nested.len(), 1);
    assert!(nested[0]["indexes"].as_array().expect("indexes").is_empty());
    assert!(
        nested[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("damaged")),
        "{:#}",
        nested[0]
    );
    assert_refused_unchanged(&site, &wim, "no nested image that can be serviced");
}

/// A Winre.wim holding a `..` entry (crafted as tests/unsafe_wim.rs does): registered as
/// unusable with wimlib's reason, never serviced.
#[test]
fn nested_wim_with_dotdot_entries_is_never_serviced() {
    if !have_or_skip("wimlib-imagex") {
        return;
    }
    let site = TestSite::new();
    let work = site.path("work");
    std::fs::create_dir_all(&work).expect("work");
    let winre = crafted::dotdot_wim(&work);
    let wim = install_wim(&work, "install", &[&winre]);
    let imported = site
        .ois(&[
            "image",
            "import",
            wim.to_str().expect("utf8"),
            "--name",
            "install",
        ])
        .ok();
    assert!(
        imported.stderr.contains("unsafe entries")
            && imported.stderr.contains(&format!("{WINRE} in index(es) 1")),
        "{}",
        imported.stderr
    );
    let nested = nested_json(&site, "install");
    assert!(
        nested[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("Ignoring file named")),
        "{:#}",
        nested[0]
    );
    assert_refused_unchanged(&site, &wim, "unsafe entries");
}

/// A WinRE update on `wim` (registered as `install`) is refused naming `why`; the file, the
/// record and the stage are as they were, and the site database is sound.
fn assert_refused_unchanged(site: &TestSite, wim: &Path, why: &str) {
    site.import_update(&winre_package(site));
    let original = std::fs::read(wim).expect("read");
    let refused = site
        .ois(&["service", "install", "--updates", "KB5050001"])
        .failed();
    assert!(refused.stderr.contains(why), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("image install"),
        "{}",
        refused.stderr
    );
    assert!(std::fs::read(wim).expect("read") == original, "WIM changed");
    let shown = site
        .ois(&["image", "show", "install", "--json"])
        .ok()
        .json();
    assert!(shown["runs"].as_array().expect("runs").is_empty());
    assert!(
        staged_leftovers(site).is_empty(),
        "{:?}",
        staged_leftovers(site)
    );
    // An all-applicable run leaves the unusable nested image alone: nothing to apply.
    let run = site
        .ois(&["service", "install", "--all-applicable", "--json"])
        .ok();
    assert_eq!(run.json_lines()[0]["status"], "Successful");
    assert!(std::fs::read(wim).expect("read") == original, "WIM changed");
    let db = rusqlite::Connection::open(site.root().join("site.db")).expect("db");
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    let orphans: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM nested_images WHERE image_id NOT IN (SELECT id FROM images)",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(orphans, 0);
}

/// Crafting a WIM holding a `..` entry: capture without compression, rename an entry in the
/// metadata resource to `..` (same length) and fix up the resource's SHA-1 (the layout is
/// described in tests/unsafe_wim.rs).
mod crafted {
    use std::path::Path;

    use ois::sample::write_tree;
    use ois::wim::{Compression, Progress, Wim};
    use sha1::{Digest, Sha1};

    const RESHDR_FLAG_METADATA: u8 = 0x02;
    const BLOB_ENTRY_SIZE: usize = 50;
    const DENTRY_NAME_NBYTES: usize = 0x64;
    const DENTRY_NAME: usize = 0x66;

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
    }

    fn reshdr(b: &[u8], at: usize) -> (usize, usize) {
        let mut size = [0u8; 8];
        size[..7].copy_from_slice(&b[at..at + 7]);
        (
            u64_at(b, at + 8) as usize,
            u64::from_le_bytes(size) as usize,
        )
    }

    pub fn dotdot_wim(work: &Path) -> Vec<u8> {
        let tree = work.join("dotdot-tree");
        write_tree(
            &tree,
            &[
                (
                    "Windows/System32/winpeshl.ini",
                    b"[LaunchApps]\r\n".to_vec(),
                ),
                ("Windows/ab", b"traversal victim\n".to_vec()),
            ],
        )
        .expect("tree");
        let wim = Wim::create(Compression::None).expect("create");
        wim.add_image(&tree, "Microsoft Windows Recovery Environment (x64)")
            .expect("capture");
        wim.set_property(1, "WINDOWS/ARCH", Some("9"))
            .expect("arch");
        let path = work.join("dotdot.wim");
        wim.write(&path, false, 0, &mut |_| Progress::Continue)
            .expect("write");
        let mut bytes = std::fs::read(&path).expect("read");
        let (table_at, table_len) = reshdr(&bytes, 0x30);
        let entry = (table_at..table_at + table_len)
            .step_by(BLOB_ENTRY_SIZE)
            .find(|&e| bytes[e + 7] & RESHDR_FLAG_METADATA != 0)
            .expect("metadata entry");
        let (at, len) = reshdr(&bytes, entry);
        let hash_at = entry + 24 + 2 + 4;
        assert_eq!(
            Sha1::digest(&bytes[at..at + len]).as_slice(),
            &bytes[hash_at..hash_at + 20]
        );
        let needle: Vec<u8> = [4u8, 0, b'a', 0, b'b', 0].to_vec();
        let hit = bytes[at..at + len]
            .windows(needle.len())
            .position(|w| w == needle.as_slice())
            .expect("entry ab")
            + at
            - DENTRY_NAME_NBYTES;
        let name = hit + DENTRY_NAME;
        bytes[name..name + 4].copy_from_slice(&[b'.', 0, b'.', 0]);
        let digest = Sha1::digest(&bytes[at..at + len]);
        bytes[hash_at..hash_at + 20].copy_from_slice(&digest);
        bytes
    }
}
