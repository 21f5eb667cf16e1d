//! What an image really has and how Windows (CBS) packages are planned for it: images whose
//! indexes carry `Windows/servicing/Packages/*.mum` and a SOFTWARE hive written by hivex
//! (`hivexregedit --merge`), packages made by gcab in the real layouts, and a Linux host that
//! refuses a plan with Windows packages while leaving the image byte-identical.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::cbs::{cbs_cab, mum, tools, TOKEN};
use common::hive::{hivexget, software_hive, CURRENT_VERSION};
use common::TestSite;

fn identity(name: &str, version: &str) -> String {
    format!("{name}~{TOKEN}~amd64~~{version}")
}

fn foundation() -> String {
    identity("Microsoft-Windows-Foundation-Package", "10.0.26100.1")
}

fn professional() -> String {
    identity("Microsoft-Windows-ProfessionalEdition", "10.0.26100.1")
}

fn rollup(revision: u32) -> String {
    identity("Package_for_RollupFix", &format!("26100.{revision}.1.10"))
}

const STAGED: &str = "Package_for_KB5000001~31bf3856ad364e35~amd64~~10.0.1.0";
const INSTALLED: u32 = 0x70;

/// One index of a test image: its packages (`.mum` files) and, when `hive` is set, a SOFTWARE
/// hive at that UBR recording each package with its state.
struct IndexSpec<'a> {
    name: &'a str,
    packages: Vec<(String, u32)>,
    hive_ubr: Option<u32>,
    /// A SOFTWARE file that is not a hive.
    damaged_hive: bool,
}

fn imagex(args: &[&str]) {
    let out = Command::new("wimlib-imagex")
        .args(args)
        .output()
        .expect("wimlib-imagex");
    assert!(
        out.status.success(),
        "wimlib-imagex {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Captures each index's tree with wimlib-imagex and marks it Windows 11 Pro x64, build 26100.
fn windows_image(site: &TestSite, file: &str, indexes: &[IndexSpec]) -> PathBuf {
    let wim = site.path(&format!("images/{file}"));
    std::fs::create_dir_all(wim.parent().expect("parent")).expect("mkdir");
    for (n, spec) in indexes.iter().enumerate() {
        let tree = site.path(&format!("trees/{file}/{n}"));
        let packages = tree.join("Windows/servicing/Packages");
        std::fs::create_dir_all(&packages).expect("mkdir");
        for (id, _) in &spec.packages {
            let parts: Vec<&str> = id.split('~').collect();
            let kb = parts[0]
                .split("_for_")
                .nth(1)
                .filter(|k| k.starts_with("KB"))
                .unwrap_or("");
            std::fs::write(
                packages.join(format!("{id}.mum")),
                mum(parts[0], parts[4], kb, "Update", &[]),
            )
            .expect("mum");
            std::fs::write(packages.join(format!("{id}.cat")), b"catalog").expect("cat");
        }
        let system32 = tree.join("Windows/System32");
        std::fs::create_dir_all(system32.join("config")).expect("mkdir");
        std::fs::write(
            system32.join("ntoskrnl.exe"),
            format!("kernel of {}", spec.name),
        )
        .expect("kernel");
        if spec.damaged_hive {
            std::fs::write(system32.join("config/SOFTWARE"), b"regf and then nothing")
                .expect("hive");
        }
        if let Some(ubr) = spec.hive_ubr {
            let states: Vec<(&str, u32)> = spec
                .packages
                .iter()
                .map(|(id, state)| (id.as_str(), *state))
                .collect();
            software_hive(
                &system32.join("config/SOFTWARE"),
                "26100",
                ubr,
                "Professional",
                "24H2",
                &states,
            );
        }
        let tree = tree.to_str().expect("utf8");
        let wim_s = wim.to_str().expect("utf8");
        let verb = if n == 0 { "capture" } else { "append" };
        imagex(&[verb, tree, wim_s, spec.name, "--compress=lzx"]);
        let index = (n + 1).to_string();
        imagex(&[
            "info",
            wim_s,
            &index,
            "--image-property",
            "WINDOWS/ARCH=9",
            "--image-property",
            "WINDOWS/EDITIONID=Professional",
            "--image-property",
            "WINDOWS/VERSION/BUILD=26100",
        ]);
    }
    wim
}

fn installed_base() -> Vec<(String, u32)> {
    vec![
        (foundation(), 0x80),
        (professional(), INSTALLED),
        (
            identity("Package_for_ServicingStack_1742", "26100.1742.1.0"),
            INSTALLED,
        ),
    ]
}

/// An index at `ubr` with a hive: the base packages, the cumulative update of that revision
/// (when above RTM) and KB5000001 staged but not installed.
fn at(name: &str, ubr: u32) -> IndexSpec<'_> {
    let mut packages = installed_base();
    if ubr > 1 {
        packages.push((rollup(ubr), INSTALLED));
    }
    packages.push((STAGED.to_string(), 0x40));
    IndexSpec {
        name,
        packages,
        hive_ubr: Some(ubr),
        damaged_hive: false,
    }
}

fn tools_here() -> bool {
    tools() && common::have_or_skip("hivexregedit") && common::have_or_skip("hivexget")
}

#[test]
fn image_show_reads_each_index_from_its_hive_or_says_it_could_not() {
    if !tools_here() {
        return;
    }
    let site = TestSite::new();
    let bare = IndexSpec {
        name: "Bare",
        packages: vec![(foundation(), 0), (rollup(2314), 0)],
        hive_ubr: None,
        damaged_hive: false,
    };
    let damaged = IndexSpec {
        name: "Damaged",
        packages: vec![(foundation(), 0)],
        hive_ubr: None,
        damaged_hive: true,
    };
    let wim = windows_image(
        &site,
        "pro.wim",
        &[at("Windows 11 Pro", 1742), bare, damaged],
    );
    let hive = site.path("trees/pro.wim/0/Windows/System32/config/SOFTWARE");
    // What hivex itself reads back from the hive the image carries.
    assert_eq!(hivexget(&hive, CURRENT_VERSION, "UBR"), "1742");
    site.import_image(&wim, "pro");
    let shown = site.ois(&["image", "show", "pro", "--json"]).ok().json();
    let first = &shown["indexes"][0];
    assert_eq!(first["version"], "10.0.26100.1742");
    assert_eq!(first["ubr"], 1742);
    assert_eq!(first["display_version"], "24H2");
    assert_eq!(first["edition"], "Professional");
    assert_eq!(first["packages_from"], "Windows/System32/config/SOFTWARE");
    let package = |index: &serde_json::Value, id: &str| -> serde_json::Value {
        index["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .find(|p| {
                p["identity"]
                    .as_str()
                    .is_some_and(|i| i.eq_ignore_ascii_case(id))
            })
            .unwrap_or_else(|| panic!("{id} not in {index}"))
            .clone()
    };
    let staged = package(first, STAGED);
    assert_eq!(staged["state"], 0x40);
    assert_eq!(
        staged["installed"], false,
        "present but staged is not installed"
    );
    let cu = package(first, &rollup(1742));
    assert_eq!(cu["state"], INSTALLED);
    assert_eq!(cu["installed"], true);
    assert_eq!(cu["source"], "packages-folder, hive");
    assert_eq!(package(first, &foundation())["state"], 0x80);

    // The second index has no hive: the .mum files alone, and it says so.
    let second = &shown["indexes"][1];
    assert!(
        second["packages_from"]
            .as_str()
            .expect("from")
            .contains("has no Windows/System32/config/SOFTWARE"),
        "{second}"
    );
    assert_eq!(second["ubr"], serde_json::Value::Null);
    let cu = package(second, &rollup(2314));
    assert_eq!(cu["installed"], true);
    assert_eq!(cu["state"], serde_json::Value::Null);

    // A damaged hive does not stop the import: the index says why it fell back.
    let third = &shown["indexes"][2];
    let from = third["packages_from"].as_str().expect("from");
    assert!(
        from.starts_with("Windows/servicing/Packages only: the SOFTWARE hive could not be read")
            && from.contains("in index 3 of"),
        "{third}"
    );
    assert_eq!(package(third, &foundation())["installed"], true);

    // KB5000001's package is staged: the hive says it is not installed, whatever its .mum.
    let kbs: Vec<&str> = shown["installed_updates"][0]["updates"]
        .as_array()
        .expect("updates")
        .iter()
        .map(|u| u["id"].as_str().expect("id"))
        .collect();
    assert!(!kbs.contains(&"KB5000001"), "{kbs:?}");

    let text = site.ois(&["image", "show", "pro"]).ok().stdout;
    assert!(text.contains("10.0.26100.1742"), "{text}");
    assert!(text.contains("Staged (0x40)"), "{text}");
    assert!(text.contains("24H2"), "{text}");
}

/// Imports the month's Windows packages (as CBS CABs made by gcab) into the library.
fn import_month(site: &TestSite, with_checkpoint: bool) {
    let f = ("Microsoft-Windows-Foundation-Package", "10.0.26100.1");
    let mut packages: Vec<(&str, Vec<u8>)> = vec![
        (
            "Windows11.0-KB5046000-x64.cab",
            mum(
                "Package_for_ServicingStack_2300",
                "26100.2300.1.0",
                "KB5046000",
                "Update",
                &[],
            ),
        ),
        (
            "Windows11.0-KB5044284-x64.cab",
            mum(
                "Package_for_RollupFix",
                "26100.2314.1.10",
                "KB5044284",
                "Security Update",
                // Built on the 26100.1742 checkpoint.
                &[("Microsoft-Windows-Foundation-Package", "10.0.26100.1742")],
            ),
        ),
        (
            "Windows11.0-KB5045000-x64.cab",
            mum(
                "Package_for_DotNetRollup_481",
                "10.0.9300.1",
                "KB5045000",
                "Security Update",
                &[f],
            ),
        ),
        (
            "Windows11.0-KB5000001-x64.cab",
            mum(
                "Package_for_KB5000001",
                "10.0.1.0",
                "KB5000001",
                "Update",
                &[f],
            ),
        ),
        (
            "Windows11.0-KB5047000-x64.cab",
            mum(
                "Package_for_KB5047000",
                "10.0.1.0",
                "KB5047000",
                "Update",
                &[("Microsoft-Windows-EnterpriseEdition", "10.0.26100.1")],
            ),
        ),
    ];
    if with_checkpoint {
        packages.push((
            "Windows11.0-KB5043080-x64.cab",
            mum(
                "Package_for_RollupFix",
                "26100.1742.1.10",
                "KB5043080",
                "Security Update",
                &[f],
            ),
        ));
    }
    let month = site.path("month");
    for (file, text) in packages {
        cbs_cab(site, &month.join(file), text, false);
    }
    site.import_update(&month);
}

fn applicable(site: &TestSite, image: &str) -> Vec<String> {
    site.ois(&["image", "applicable", image, "--json"])
        .ok()
        .json()
        .as_array()
        .expect("array")
        .iter()
        .map(|u| u["id"].as_str().expect("id").to_string())
        .collect()
}

#[test]
fn the_applicable_list_depends_on_what_each_index_has_installed() {
    if !tools_here() {
        return;
    }
    let site = TestSite::new();
    import_month(&site, true);
    for (name, ubr) in [
        ("rtm", 1),
        ("checkpoint", 1742),
        ("current", 2314),
        ("later", 2400),
    ] {
        let wim = windows_image(&site, &format!("{name}.wim"), &[at(name, ubr)]);
        site.import_image(&wim, name);
    }
    // KB5000001 is staged (0x40) everywhere, so it is still to install; no index is Enterprise.
    // In installation order: servicing stack, others, cumulative update, .NET.
    assert_eq!(
        applicable(&site, "rtm"),
        ["KB5046000", "KB5000001", "KB5044284", "KB5045000"],
        "the checkpoint KB5043080 is hidden under KB5044284, which supersedes it"
    );
    assert_eq!(
        applicable(&site, "checkpoint"),
        ["KB5046000", "KB5000001", "KB5044284", "KB5045000"]
    );
    assert_eq!(
        applicable(&site, "current"),
        ["KB5046000", "KB5000001", "KB5045000"],
        "KB5044284 (26100.2314) is what the index has"
    );
    assert_eq!(
        applicable(&site, "later"),
        ["KB5046000", "KB5000001", "KB5045000"],
        "a later revision supersedes 26100.2314"
    );
}

#[test]
fn a_plan_with_windows_packages_is_refused_here_and_the_image_is_untouched() {
    if !tools_here() {
        return;
    }
    let site = TestSite::new();
    import_month(&site, true);
    let wim = windows_image(&site, "rtm.wim", &[at("Windows 11 Pro", 1)]);
    site.import_image(&wim, "rtm");
    let wallpaper = site.path("file-level/OIS-WALLPAPER-1");
    std::fs::create_dir_all(wallpaper.join("payload")).expect("mkdir");
    std::fs::write(
        wallpaper.join("update.toml"),
        "id = \"OIS-WALLPAPER-1\"\ntitle = \"Corporate wallpaper\"\narchitecture = \"x64\"\n[[change]]\nadd = \"payload/wallpaper.jpg\"\nat = \"Windows/Web/wallpaper.jpg\"\n",
    )
    .expect("manifest");
    std::fs::write(wallpaper.join("payload/wallpaper.jpg"), b"wallpaper bytes").expect("jpg");
    site.import_update(&wallpaper);
    let original = std::fs::read(&wim).expect("wim");

    let run = site.ois(&["service", "rtm", "--all-applicable"]).failed();
    // Every Windows package in installation order, the checkpoint base pulled in before the
    // update built on it, and the way out.
    let expected = "the plan holds Windows (CBS) packages: KB5046000 (servicing stack, Package_for_ServicingStack_2300~31bf3856ad364e35~amd64~~26100.2300.1.0), KB5000001 (other, Package_for_KB5000001~31bf3856ad364e35~amd64~~10.0.1.0), KB5043080 (cumulative update, Package_for_RollupFix~31bf3856ad364e35~amd64~~26100.1742.1.10), KB5044284 (cumulative update, Package_for_RollupFix~31bf3856ad364e35~amd64~~26100.2314.1.10), KB5045000 (.NET, Package_for_DotNetRollup_481~31bf3856ad364e35~amd64~~10.0.9300.1)";
    assert!(run.stderr.contains(expected), "{}", run.stderr);
    assert!(
        run.stderr.contains("this host runs linux, not Windows"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("--all-applicable --kind file"),
        "{}",
        run.stderr
    );
    let explicit = site
        .ois(&["service", "rtm", "--updates", "KB5044284,OIS-WALLPAPER-1"])
        .failed();
    assert!(
        explicit.stderr.contains("KB5043080 (cumulative update"),
        "the checkpoint base is pulled in for an explicit selection too: {}",
        explicit.stderr
    );
    assert_eq!(
        std::fs::read(&wim).expect("wim"),
        original,
        "byte-identical"
    );
    let shown = site.ois(&["image", "show", "rtm", "--json"]).ok().json();
    assert!(
        shown["runs"].as_array().expect("runs").is_empty(),
        "no run started"
    );

    // A schedule of the monthly run reports the refusal in the image's Update Status.
    site.ois(&["image", "schedule", "rtm", "--all-applicable", "--now"])
        .ok();
    let scheduler = site.ois(&["scheduler", "run", "--once"]).failed();
    assert!(
        scheduler
            .stdout
            .contains("rtm: the scheduled run could not start"),
        "{}",
        scheduler.stdout
    );
    let shown = site.ois(&["image", "show", "rtm", "--json"]).ok().json();
    let last = &shown["runs"][0];
    assert_eq!(last["status"], "Failed", "{last}");
    assert!(
        last["error"].as_str().expect("error").contains(expected),
        "{last}"
    );
    assert_eq!(
        std::fs::read(&wim).expect("wim"),
        original,
        "byte-identical"
    );
    let text = site.ois(&["image", "show", "rtm"]).ok().stdout;
    assert!(text.contains("Windows (CBS) packages"), "{text}");

    // File-level updates only: the wallpaper goes in, the Windows packages stay out.
    let done = site
        .ois(&[
            "service",
            "rtm",
            "--all-applicable",
            "--kind",
            "file",
            "--json",
        ])
        .ok()
        .json_lines();
    assert_eq!(done[0]["status"], "Successful", "{:?}", done[0]);
    assert_eq!(done[0]["applied"], serde_json::json!(["OIS-WALLPAPER-1"]));
    let files = common::index_files(&wim, 1);
    assert_eq!(files["Windows/Web/wallpaper.jpg"], b"wallpaper bytes");
    let shown = site.ois(&["image", "show", "rtm", "--json"]).ok().json();
    let log = std::fs::read_to_string(shown["log"].as_str().expect("log")).expect("run log");
    assert!(
        log.contains("--kind file: the Windows (CBS) packages of the content library are left out"),
        "{log}"
    );

    // A schedule can take file-level updates only, too.
    site.ois(&[
        "image",
        "schedule",
        "rtm",
        "--all-applicable",
        "--kind",
        "file",
        "--now",
    ])
    .ok();
    let shown = site.ois(&["image", "show", "rtm", "--json"]).ok().json();
    assert_eq!(
        shown["servicing"]["schedule"]["updates"]["all_applicable"],
        "file"
    );
    assert!(shown["servicing"]["plan_error"].is_null(), "{shown}");
}

#[test]
fn a_checkpoint_based_update_without_its_base_is_refused_naming_it() {
    if !tools_here() {
        return;
    }
    let site = TestSite::new();
    import_month(&site, false);
    let wim = windows_image(&site, "rtm.wim", &[at("Windows 11 Pro", 1)]);
    site.import_image(&wim, "rtm");
    let original = std::fs::read(&wim).expect("wim");
    let run = site
        .ois(&["service", "rtm", "--updates", "KB5044284"])
        .failed();
    assert!(
        run.stderr.contains("KB5044284 (Package_for_RollupFix~31bf3856ad364e35~amd64~~26100.2314.1.10) is a checkpoint-based cumulative update: it needs the checkpoint cumulative update for 26100.1742 first, and index 1 is at 26100.1"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(&wim).expect("wim"), original);
    // Where the index is at the checkpoint already, nothing is missing.
    let wim = windows_image(&site, "checkpoint.wim", &[at("Windows 11 Pro", 1742)]);
    site.import_image(&wim, "cp");
    let run = site
        .ois(&["service", "cp", "--updates", "KB5044284"])
        .failed();
    assert!(
        run.stderr
            .contains("the plan holds Windows (CBS) packages: KB5044284 (cumulative update"),
        "{}",
        run.stderr
    );
}
