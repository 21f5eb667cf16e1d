//! Whole servicing runs through the DISM servicer on Linux, by the same code a Windows host
//! runs: the run's servicers get a DISM runner that replays DISM transcripts instead of
//! `dism.exe` (`ois::servicing::service_by`). Packages are CBS CABs made by gcab and imported
//! with `ois update import`; the image is a WIM made by wimlib-imagex.
//!
//! What this covers: the plan carried out rather than refused, the staged copy DISM is given
//! (never the original), the command lines in order per index (mount folder and log in the
//! run's stage, servicing stack first, the `.psf` beside its `.cab`, a checkpoint cumulative
//! update and its base in one folder), /Commit, or /Discard on failure and cancel, DISM's log
//! copied into the run log, the run rows and the image's installed set, the file-level update
//! of the same plan applied in the same run, the clean rebuild verified and put in place, and
//! the stage removed.
//!
//! What it does not: the replayed "DISM" changes nothing inside the WIM (no mount happens
//! here), so the serviced image holds the file-level change and ois's record of the Windows
//! packages, not their files. Whether DISM really installs them was never run (see
//! `tests/dism_windows.rs`, for a Windows host).

mod common;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::cbs::{cbs_cab, mum, tools, TOKEN};
use common::TestSite;
use ois::servicing::dism::{DismOutput, DismRunner};
use ois::servicing::servicer::Servicers;
use ois::servicing::{KindFilter, RunStatus, Selection, ServiceOptions};

const MOUNTED: &str = include_str!("../src/servicing/dism/testdata/mount_success.txt");
const ADDED: &str = include_str!("../src/servicing/dism/testdata/add_package_success.txt");
const NEEDS_SSU: &str = include_str!("../src/servicing/dism/testdata/add_package_0x800f0823.txt");

fn identity(name: &str, version: &str) -> String {
    format!("{name}~{TOKEN}~amd64~~{version}")
}

fn ssu() -> String {
    identity("Package_for_ServicingStack_2300", "26100.2300.1.0")
}
fn other() -> String {
    identity("Package_for_KB5000001", "10.0.1.0")
}
fn checkpoint() -> String {
    identity("Package_for_RollupFix", "26100.1742.1.10")
}
fn cumulative() -> String {
    identity("Package_for_RollupFix", "26100.2314.1.10")
}

/// One call as the runner saw it, with what the package path held at that moment.
#[derive(Debug, Clone)]
struct Call {
    args: Vec<String>,
    /// For /Add-Package: the file names in the package's folder (the folder itself when
    /// DISM is given a folder).
    package_files: Vec<String>,
    /// For /Mount-Image: the bytes of the image file DISM was given.
    image_bytes: Option<Vec<u8>>,
}

#[derive(Default)]
struct Script {
    /// (exit code, stdout) per call, in order.
    answers: VecDeque<(u32, String)>,
    calls: Vec<Call>,
    /// Set before answering this call (1-based): the admin cancels while DISM works.
    cancel_at: Option<(usize, Arc<AtomicBool>)>,
}

/// Stands for dism.exe: records the call, writes a line into the /LogPath file as DISM's log
/// would hold, and gives back the next recorded answer.
struct Transcript(Arc<Mutex<Script>>);

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("/{name}:");
    args.iter().find_map(|a| a.strip_prefix(&prefix))
}

impl DismRunner for Transcript {
    fn run(&mut self, args: &[String]) -> std::io::Result<DismOutput> {
        let mut script = self.0.lock().expect("script");
        let package_files = arg(args, "PackagePath")
            .map(|p| {
                let p = Path::new(p);
                let dir = if p.is_dir() {
                    p
                } else {
                    p.parent().expect("parent")
                };
                let mut names: Vec<String> = std::fs::read_dir(dir)
                    .expect("package folder")
                    .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                names
            })
            .unwrap_or_default();
        let image_bytes = arg(args, "ImageFile").map(|p| std::fs::read(p).expect("image"));
        if let Some(log) = arg(args, "LogPath") {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("DISM log");
            writeln!(
                f,
                "2026-12-02 08:00:00, Info                  DISM   DISM.EXE: Executing command line: dism.exe {}",
                args.join(" ")
            )?;
        }
        script.calls.push(Call {
            args: args.to_vec(),
            package_files,
            image_bytes,
        });
        if let Some((at, flag)) = &script.cancel_at {
            if *at == script.calls.len() {
                flag.store(true, Ordering::Relaxed);
            }
        }
        let (code, stdout) = script
            .answers
            .pop_front()
            .unwrap_or_else(|| panic!("no transcript left for {args:?}"));
        Ok(DismOutput { code, stdout })
    }
}

/// `/Get-Packages` of an index that holds these packages.
fn listing(identities: &[String]) -> String {
    let mut text = String::from(
        "\nDeployment Image Servicing and Management tool\nVersion: 10.0.26100.1150\n\nPackages listing:\n\n",
    );
    for i in identities {
        text.push_str(&format!(
            "Package Identity : {i}\nState : Installed\nRelease Type : Update\n\n"
        ));
    }
    text.push_str("The operation completed successfully.\n");
    text
}

/// The verb of a call (`/Mount-Image`, `/Add-Package`, …) and its unmount mode.
fn verb(args: &[String]) -> String {
    args.iter()
        .filter(|a| {
            a.starts_with('/') && !a.contains(':') && *a != "/English" && *a != "/NoRestart"
        })
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
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

/// A Windows 11 x64 build 26100 WIM of `indexes` indexes, each at RTM: the foundation and
/// edition packages as `.mum` files (no hive: each counts as installed).
fn windows_image(site: &TestSite, indexes: u32) -> PathBuf {
    let wim = site.path("images/rtm.wim");
    let tree = site.path("trees/rtm");
    let packages = tree.join("Windows/servicing/Packages");
    std::fs::create_dir_all(&packages).expect("mkdir");
    for (name, version) in [
        ("Microsoft-Windows-Foundation-Package", "10.0.26100.1"),
        ("Microsoft-Windows-ProfessionalEdition", "10.0.26100.1"),
    ] {
        std::fs::write(
            packages.join(format!("{}.mum", identity(name, version))),
            mum(name, version, "", "Update", &[]),
        )
        .expect("mum");
    }
    std::fs::create_dir_all(tree.join("Windows/System32")).expect("mkdir");
    std::fs::write(tree.join("Windows/System32/ntoskrnl.exe"), b"kernel").expect("kernel");
    for n in 1..=indexes {
        let verb = if n == 1 { "capture" } else { "append" };
        let name = format!("Windows 11 Pro {n}");
        imagex(&[
            verb,
            tree.to_str().expect("utf8"),
            wim.to_str().expect("utf8"),
            &name,
            "--compress=lzx",
        ]);
        imagex(&[
            "info",
            wim.to_str().expect("utf8"),
            &n.to_string(),
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

/// The month's Windows packages (a servicing stack, an express update with its `.psf`
/// beside it, a checkpoint-based cumulative update and its checkpoint) and a file-level update.
fn import_packages(site: &TestSite) {
    let f = ("Microsoft-Windows-Foundation-Package", "10.0.26100.1");
    let month = site.path("month");
    cbs_cab(
        site,
        &month.join("Windows11.0-KB5046000-x64.cab"),
        mum(
            "Package_for_ServicingStack_2300",
            "26100.2300.1.0",
            "KB5046000",
            "Update",
            &[],
        ),
        false,
    );
    cbs_cab(
        site,
        &month.join("Windows11.0-KB5000001-x64.cab"),
        mum(
            "Package_for_KB5000001",
            "10.0.1.0",
            "KB5000001",
            "Update",
            &[f],
        ),
        true,
    );
    std::fs::write(
        month.join("Windows11.0-KB5000001-x64.psf"),
        b"express payload",
    )
    .expect("psf");
    cbs_cab(
        site,
        &month.join("Windows11.0-KB5043080-x64.cab"),
        mum(
            "Package_for_RollupFix",
            "26100.1742.1.10",
            "KB5043080",
            "Security Update",
            &[f],
        ),
        false,
    );
    cbs_cab(
        site,
        &month.join("Windows11.0-KB5044284-x64.cab"),
        mum(
            "Package_for_RollupFix",
            "26100.2314.1.10",
            "KB5044284",
            "Security Update",
            &[("Microsoft-Windows-Foundation-Package", "10.0.26100.1742")],
        ),
        false,
    );
    site.import_update(&month);
    let wallpaper = site.path("file-level/OIS-WALLPAPER-1");
    std::fs::create_dir_all(wallpaper.join("payload")).expect("mkdir");
    std::fs::write(
        wallpaper.join("update.toml"),
        "id = \"OIS-WALLPAPER-1\"\ntitle = \"Corporate wallpaper\"\narchitecture = \"x64\"\n[[change]]\nadd = \"payload/wallpaper.jpg\"\nat = \"Windows/Web/wallpaper.jpg\"\n",
    )
    .expect("manifest");
    std::fs::write(wallpaper.join("payload/wallpaper.jpg"), b"wallpaper bytes").expect("jpg");
    site.import_update(&wallpaper);
}

struct Setup {
    site: TestSite,
    wim: PathBuf,
    original: Vec<u8>,
}

fn setup(indexes: u32) -> Option<Setup> {
    if !tools() {
        return None;
    }
    let site = TestSite::new();
    import_packages(&site);
    let wim = windows_image(&site, indexes);
    site.import_image(&wim, "rtm");
    let original = std::fs::read(&wim).expect("wim");
    Some(Setup {
        site,
        wim,
        original,
    })
}

/// Services image `rtm` with every applicable update, DISM replaced by `script`.
fn service(
    s: &Setup,
    script: &Arc<Mutex<Script>>,
    cancel: Arc<AtomicBool>,
) -> (ois::site::Site, ois::servicing::ImageOutcome) {
    let site = ois::site::Site::open(&s.site.root(), ois::SCHEMA).expect("site");
    let db = site.database().expect("db");
    let img = ois::image::find(&db, "rtm").expect("image");
    let options = ServiceOptions {
        selection: Selection::AllApplicable(KindFilter::All),
        continue_on_error: false,
        target: Default::default(),
        jobs: 1,
        cancel,
    };
    let shared = script.clone();
    let make = move || -> Box<dyn DismRunner> { Box::new(Transcript(shared.clone())) };
    let mut outcomes = ois::servicing::service_by(
        &site,
        &[img.id],
        &options,
        &|_, _| {},
        &|_, _, _| Ok(()),
        Servicers::with_dism(&make),
    )
    .expect("the plan is carried out, not refused");
    (site, outcomes.remove(0))
}

fn leftovers(site: &ois::site::Site) -> Vec<PathBuf> {
    let root = site.staging_root();
    if !root.exists() {
        return Vec::new();
    }
    common::files_under(&root)
}

#[test]
fn windows_packages_go_through_dism_on_a_staged_copy_then_one_rebuild_replaces_the_image() {
    let Some(s) = setup(2) else {
        return;
    };
    let all = [ssu(), other(), checkpoint(), cumulative()];
    let mut answers = VecDeque::new();
    for _ in 0..2 {
        answers.push_back((0, MOUNTED.to_string()));
        for _ in 0..3 {
            answers.push_back((0, ADDED.to_string()));
        }
        answers.push_back((0, listing(&all)));
        answers.push_back((0, String::new()));
    }
    let script = Arc::new(Mutex::new(Script {
        answers,
        ..Script::default()
    }));
    let (site, outcome) = service(&s, &script, Arc::new(AtomicBool::new(false)));
    assert_eq!(outcome.status, RunStatus::Successful, "{:?}", outcome.error);
    assert_eq!(
        outcome.applied,
        [
            "KB5046000",
            "KB5000001",
            "KB5043080",
            "KB5044284",
            "OIS-WALLPAPER-1"
        ]
    );
    let run_id = outcome.run_id.expect("run");
    let stage = site.stage_dir(run_id);

    let calls = script.lock().expect("script").calls.clone();
    let verbs: Vec<String> = calls.iter().map(|c| verb(&c.args)).collect();
    let per_index = [
        "/Mount-Image",
        "/Add-Package",
        "/Add-Package",
        "/Add-Package",
        "/Get-Packages",
        "/Unmount-Image /Commit",
    ];
    assert_eq!(verbs, [per_index, per_index].concat());
    for (n, index) in [(0, 1), (6, 2)] {
        let mount = stage.join("mount").join(index.to_string());
        let log = format!(
            "/LogPath:{}",
            stage.join(format!("dism-{index}.log")).display()
        );
        let mounting = &calls[n];
        assert_eq!(
            mounting.args,
            [
                "/Mount-Image".to_string(),
                format!("/ImageFile:{}", stage.join("staged.wim").display()),
                format!("/Index:{index}"),
                format!("/MountDir:{}", mount.display()),
                "/English".into(),
                log.clone(),
            ]
        );
        // DISM is given a copy of the original, never the original itself.
        assert!(
            mounting.image_bytes.as_deref() == Some(&s.original[..]),
            "the staged copy is the registered image"
        );
        for call in &calls[n + 1..n + 5] {
            assert_eq!(
                call.args[0],
                format!("/Image:{}", mount.display()),
                "{call:?}"
            );
            assert!(call.args.contains(&log), "{call:?}");
        }
        assert_eq!(
            calls[n + 5].args[1],
            format!("/MountDir:{}", mount.display())
        );
        let path = |k: usize| {
            arg(&calls[n + k].args, "PackagePath")
                .expect("path")
                .to_string()
        };
        assert!(
            path(1).ends_with("Windows11.0-KB5046000-x64.cab"),
            "servicing stack first: {}",
            path(1)
        );
        assert!(
            path(2).ends_with("Windows11.0-KB5000001-x64.cab"),
            "{}",
            path(2)
        );
        assert_eq!(
            calls[n + 2].package_files,
            [
                "Windows11.0-KB5000001-x64.cab",
                "Windows11.0-KB5000001-x64.psf"
            ],
            "the .psf beside its .cab"
        );
        assert!(Path::new(&path(3)).starts_with(&stage), "{}", path(3));
        assert_eq!(
            calls[n + 3].package_files,
            [
                "Windows11.0-KB5043080-x64.cab",
                "Windows11.0-KB5044284-x64.cab"
            ],
            "the checkpoint update and the update built on it, in one folder"
        );
    }

    // The run's rows, its image's installed set, and the one rebuild that replaced it.
    let db = site.database().expect("db");
    let img = ois::image::find(&db, "rtm").expect("image");
    let history = ois::servicing::history(&db, img.id).expect("history");
    let rows: Vec<(String, u32, bool)> = history[0]
        .updates
        .iter()
        .map(|u| (u.update.clone(), u.index, u.applied))
        .collect();
    for index in [1, 2] {
        for kb in [
            "KB5046000",
            "KB5000001",
            "KB5043080",
            "KB5044284",
            "OIS-WALLPAPER-1",
        ] {
            assert!(
                rows.contains(&(kb.to_string(), index, true)),
                "{kb} on index {index}: {rows:?}"
            );
        }
    }
    let indexes = ois::image::indexes(&db, &img).expect("indexes");
    assert!(indexes
        .iter()
        .all(|i| i.is_installed("KB5044284") && i.is_installed("KB5046000")));
    let serviced = std::fs::read(&s.wim).expect("wim");
    assert_ne!(serviced, s.original);
    assert_eq!(img.sha256, common::sha256(&serviced));
    let files = common::index_files(&s.wim, 2);
    assert_eq!(files["Windows/Web/wallpaper.jpg"], b"wallpaper bytes");
    assert_eq!(files["Windows/System32/ntoskrnl.exe"], b"kernel");

    // DISM's log is in the run log, a line each, component DISM.
    let log = std::fs::read_to_string(history[0].log_path.as_deref().expect("log path"))
        .expect("run log");
    let dism_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("component=\"DISM\""))
        .collect();
    assert_eq!(dism_lines.len(), 12, "{log}");
    assert!(dism_lines[0].contains("Executing command line: dism.exe /Mount-Image"));
    assert!(dism_lines[0].contains("file=\"dism-1.log\""));
    assert!(dism_lines[11].contains("file=\"dism-2.log\""));
    assert!(leftovers(&site).is_empty(), "{:?}", leftovers(&site));
    assert!(!stage.exists());
}

#[test]
fn a_failing_package_discards_the_mount_and_leaves_the_image_byte_identical() {
    let Some(s) = setup(1) else {
        return;
    };
    let script = Arc::new(Mutex::new(Script {
        answers: VecDeque::from([
            (0, MOUNTED.to_string()),
            (0, ADDED.to_string()),
            (0x800f_0823, NEEDS_SSU.to_string()),
            (0, String::new()),
        ]),
        ..Script::default()
    }));
    let (site, outcome) = service(&s, &script, Arc::new(AtomicBool::new(false)));
    assert_eq!(outcome.status, RunStatus::Failed);
    let error = outcome.error.clone().expect("error");
    assert!(
        error.contains("0x800f0823")
            && error.contains("install KB5046000 from the library first")
            && error.contains("the original image is unchanged"),
        "{error}"
    );
    let calls = script.lock().expect("script").calls.clone();
    let verbs: Vec<String> = calls.iter().map(|c| verb(&c.args)).collect();
    assert_eq!(
        verbs,
        [
            "/Mount-Image",
            "/Add-Package",
            "/Add-Package",
            "/Unmount-Image /Discard"
        ]
    );
    assert_eq!(std::fs::read(&s.wim).expect("wim"), s.original);
    let db = site.database().expect("db");
    let img = ois::image::find(&db, "rtm").expect("image");
    let history = ois::servicing::history(&db, img.id).expect("history");
    assert_eq!(history[0].status, "Failed");
    let failed: Vec<&str> = history[0]
        .updates
        .iter()
        .filter(|u| !u.applied)
        .map(|u| u.update.as_str())
        .collect();
    assert_eq!(failed, ["KB5046000", "KB5000001", "KB5043080", "KB5044284"]);
    let indexes = ois::image::indexes(&db, &img).expect("indexes");
    assert!(!indexes[0].is_installed("KB5046000"));
    assert!(leftovers(&site).is_empty(), "{:?}", leftovers(&site));
}

#[test]
fn a_cancel_while_dism_works_stops_before_the_next_package_and_discards() {
    let Some(s) = setup(1) else {
        return;
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let script = Arc::new(Mutex::new(Script {
        answers: VecDeque::from([
            (0, MOUNTED.to_string()),
            (0, ADDED.to_string()),
            (0, String::new()),
        ]),
        cancel_at: Some((2, cancel.clone())),
        ..Script::default()
    }));
    let (_site, outcome) = service(&s, &script, cancel);
    assert_eq!(outcome.status, RunStatus::Canceled, "{:?}", outcome.error);
    let error = outcome.error.expect("error");
    assert!(error.contains("canceled before"), "{error}");
    let calls = script.lock().expect("script").calls.clone();
    let verbs: Vec<String> = calls.iter().map(|c| verb(&c.args)).collect();
    assert_eq!(
        verbs,
        ["/Mount-Image", "/Add-Package", "/Unmount-Image /Discard"]
    );
    assert_eq!(std::fs::read(&s.wim).expect("wim"), s.original);
}

#[test]
fn remove_superseded_updates_cleans_up_components_after_the_packages_of_each_index() {
    let Some(s) = setup(1) else {
        return;
    };
    s.site.configure("remove_superseded_updates = true");
    let shown = s.site.ois(&["site", "show", "--json"]).ok().json();
    assert_eq!(shown["remove_superseded_updates"], true);
    let all = [ssu(), other(), checkpoint(), cumulative()];
    let script = Arc::new(Mutex::new(Script {
        answers: VecDeque::from([
            (0, MOUNTED.to_string()),
            (0, ADDED.to_string()),
            (0, ADDED.to_string()),
            (0, ADDED.to_string()),
            (0, String::new()),
            (0, listing(&all)),
            (0, String::new()),
        ]),
        ..Script::default()
    }));
    let (_site, outcome) = service(&s, &script, Arc::new(AtomicBool::new(false)));
    assert_eq!(outcome.status, RunStatus::Successful, "{:?}", outcome.error);
    let calls = script.lock().expect("script").calls.clone();
    let verbs: Vec<String> = calls.iter().map(|c| verb(&c.args)).collect();
    assert_eq!(
        verbs,
        [
            "/Mount-Image",
            "/Add-Package",
            "/Add-Package",
            "/Add-Package",
            "/Cleanup-Image /StartComponentCleanup /ResetBase",
            "/Get-Packages",
            "/Unmount-Image /Commit"
        ]
    );
}

#[test]
fn the_repair_discards_the_runs_stale_dism_mount_before_removing_its_stage() {
    if !tools() {
        return;
    }
    let test_site = TestSite::new();
    test_site.golden_image("golden");
    let site = ois::site::Site::open(&test_site.root(), ois::SCHEMA).expect("site");
    let db = site.database().expect("db");
    let img = ois::image::find(&db, "golden").expect("image");
    let original = std::fs::read(&img.path).expect("wim");
    // A run whose process is gone, killed while DISM had index 1 mounted.
    let mut gone = Command::new("true").spawn().expect("true");
    let pid = gone.id();
    gone.wait().expect("wait");
    let host = ois::servicing::lease::host_name();
    db.execute(
        "INSERT INTO servicing_runs (image_id, status, started_at, continue_on_error, owner_pid, owner_host)
         VALUES (?1, 'In progress', '2026-12-02T08:00:00Z', 0, ?2, ?3)",
        rusqlite::params![img.id, pid, host],
    )
    .expect("run");
    let run_id = db.last_insert_rowid();
    let stage = site.stage_dir(run_id);
    db.execute(
        "UPDATE servicing_runs SET stage_dir = ?2 WHERE id = ?1",
        rusqlite::params![run_id, stage.to_string_lossy()],
    )
    .expect("stage");
    db.execute(
        "INSERT INTO provisioning (image_id, run_id, since, owner_pid, owner_host)
         VALUES (?1, ?2, '2026-12-02T08:00:00Z', ?3, ?4)",
        rusqlite::params![img.id, run_id, pid, host],
    )
    .expect("provisioning");
    let mount = stage.join("mount").join("1");
    std::fs::create_dir_all(mount.join("Windows")).expect("mount");
    std::fs::write(stage.join("staged.wim"), b"staged copy").expect("staged");
    // Another run's mount (run 1 and run 12 share a prefix) is not this repair's to discard.
    let other = site
        .staging_root()
        .join(format!(
            "{}2",
            stage.file_name().expect("name").to_string_lossy()
        ))
        .join("mount")
        .join("1");
    let mounted = format!(
        "Mounted images:\n\nMount Dir : {}\nImage File : {}\nImage Index : 1\nMounted Read/Write : Yes\nStatus : Needs Remount\n\nMount Dir : {}\nImage File : other.wim\nImage Index : 1\nMounted Read/Write : Yes\nStatus : Ok\n\nThe operation completed successfully.\n",
        mount.display(),
        stage.join("staged.wim").display(),
        other.display()
    );
    let script = Arc::new(Mutex::new(Script {
        answers: VecDeque::from([(0, mounted), (0, String::new()), (0, String::new())]),
        ..Script::default()
    }));
    let shared = script.clone();
    let make = move || -> Box<dyn DismRunner> { Box::new(Transcript(shared.clone())) };
    let repair = ois::servicing::recovery::repair_by(
        &site,
        &img,
        ois::servicing::recovery::Trigger::Admin,
        Servicers::with_dism(&make),
    )
    .expect("repair")
    .expect("something to repair");
    let calls = script.lock().expect("script").calls.clone();
    let verbs: Vec<String> = calls.iter().map(|c| verb(&c.args)).collect();
    assert_eq!(
        verbs,
        [
            "/Get-MountedWimInfo",
            "/Unmount-Image /Discard",
            "/Cleanup-Wim"
        ]
    );
    assert_eq!(calls[1].args[1], format!("/MountDir:{}", mount.display()));
    assert!(repair.removed.contains(&stage), "{:?}", repair.removed);
    assert!(!stage.exists());
    assert_eq!(repair.original, ois::servicing::recovery::Original::Intact);
    assert_eq!(std::fs::read(&img.path).expect("wim"), original);
    let log =
        std::fs::read_to_string(ois::log::run_log_path(&site.logs_dir(), run_id)).expect("run log");
    assert!(
        log.contains("component=\"DISM\"")
            && log.contains("Executing command line: dism.exe /Unmount-Image"),
        "{log}"
    );
}

/// After a run with Windows packages, planning reads the image again rather than trusting
/// DISM's word. The replayed DISM changes nothing in the WIM, so a file-level update of the
/// same run lays down the cumulative update's `.mum` (an ordinary file-level change, not
/// DISM's): the next plan must see the index at that revision from the image itself.
#[test]
fn after_a_windows_package_run_planning_reads_the_installed_packages_from_the_image() {
    let Some(s) = setup(1) else {
        return;
    };
    let marker = s.site.path("file-level/OIS-CU-MARKER");
    std::fs::create_dir_all(marker.join("payload")).expect("mkdir");
    let cu = cumulative();
    std::fs::write(
        marker.join("update.toml"),
        format!("id = \"OIS-CU-MARKER\"\ntitle = \"A .mum\"\narchitecture = \"x64\"\n[[change]]\nadd = \"payload/cu.mum\"\nat = \"Windows/servicing/Packages/{cu}.mum\"\n"),
    )
    .expect("manifest");
    std::fs::write(
        marker.join("payload/cu.mum"),
        mum(
            "Package_for_RollupFix",
            "26100.2314.1.10",
            "KB5044284",
            "Security Update",
            &[],
        ),
    )
    .expect("mum");
    s.site.import_update(&marker);
    let before = s
        .site
        .ois(&["image", "applicable", "rtm", "--json"])
        .ok()
        .json();
    assert!(before.to_string().contains("KB5044284"), "{before}");
    let all = [ssu(), other(), checkpoint(), cumulative()];
    let script = Arc::new(Mutex::new(Script {
        answers: VecDeque::from([
            (0, MOUNTED.to_string()),
            (0, ADDED.to_string()),
            (0, ADDED.to_string()),
            (0, ADDED.to_string()),
            (0, listing(&all)),
            (0, String::new()),
        ]),
        ..Script::default()
    }));
    let (_site, outcome) = service(&s, &script, Arc::new(AtomicBool::new(false)));
    assert_eq!(outcome.status, RunStatus::Successful, "{:?}", outcome.error);
    assert!(outcome.applied.contains(&"OIS-CU-MARKER".to_string()));
    let after = s
        .site
        .ois(&["image", "applicable", "rtm", "--json"])
        .ok()
        .json();
    let ids: Vec<&str> = after
        .as_array()
        .expect("array")
        .iter()
        .map(|u| u["id"].as_str().expect("id"))
        .collect();
    assert!(
        !ids.contains(&"KB5044284") && !ids.contains(&"KB5043080"),
        "the image is at 26100.2314 now: {ids:?}"
    );
    let shown = s.site.ois(&["image", "show", "rtm", "--json"]).ok().json();
    assert!(shown.to_string().contains(&cu), "{shown}");
}
