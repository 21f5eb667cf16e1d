//! Scheduled servicing through the real binary: schedules, the scheduler, cancel from another
//! process, and provisioning-mode repair after a run that died or hung.

mod common;

use std::path::{Path, PathBuf};
use std::process::Child;

use common::{index_files, nal, wait_for, TestSite};
use ois::sample::{filler, write_package};
use serde_json::Value;

const BIG: &str = "KB5099000";

/// An update big enough (96 MiB of text-like data) that writing the serviced WIM takes seconds.
fn import_big_update(site: &TestSite) {
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| {
            (
                format!("payload/big/part{i}.bin"),
                filler(900 + i, 16 << 20),
            )
        })
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, c)| (n.as_str(), c.clone())).collect();
    let manifest = format!(
        "id = \"{BIG}\"\ntitle = \"Large feature update\"\nclassification = \"Updates\"\narchitecture = \"x64\"\n[[change]]\nadd = \"payload/big\"\nat = \"Windows/Big\"\n"
    );
    let dir = write_package(&site.path(&format!("big/{BIG}")), &manifest, &refs).expect("package");
    site.ois(&["update", "import", dir.to_str().expect("utf8")])
        .ok();
}

fn show(site: &TestSite, image: &str) -> Value {
    site.ois(&["image", "show", image, "--json"]).ok().json()
}

fn status(site: &TestSite, image: &str) -> String {
    show(site, image)["scheduled_updates_status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Holds (SIGSTOP) the run of `child` as soon as its output WIM appears in the stage: the
/// write copies compressed data and lasts a fraction of a second, too short to catch by log.
fn stop_when_writing(site: &TestSite, child: &Child) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while !stage_dirs(site)
        .iter()
        .any(|d| d.join("serviced.wim").exists())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for the run to start writing the serviced image"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    signal(child, libc::SIGSTOP);
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(rc, 0, "kill {sig}");
}

fn stage_dirs(site: &TestSite) -> Vec<PathBuf> {
    std::fs::read_dir(site.root().join("ConfigMgr_OfflineImageServicing"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

fn runs(show: &Value) -> Vec<Value> {
    show["runs"].as_array().cloned().unwrap_or_default()
}

fn assert_sample_serviced(wim: &Path) {
    for index in [1, 2] {
        let files = index_files(wim, index);
        assert_eq!(
            files["Windows/System32/ntoskrnl.exe"],
            filler(40, 110 * 1024),
            "index {index}"
        );
        assert_eq!(
            files["Windows/servicing/Stack/CbsCore.dll"],
            filler(20, 40 * 1024)
        );
        assert!(!files.contains_key("Windows/Temp/legacy.log"));
    }
}

#[test]
fn a_cron_schedule_fires_and_services_the_image() {
    let (site, wim, _) = TestSite::with_golden_image();
    let set = site
        .ois(&[
            "image",
            "schedule",
            "golden",
            "--all-applicable",
            "--cron",
            "*/2 * * * * *",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(set["timing"]["cron"]["expression"], "*/2 * * * * *");
    assert_eq!(status(&site, "golden"), "Scheduled");
    let listed = site.ois(&["image", "list"]).ok().stdout;
    assert!(listed.contains("Scheduled Updates Date") && listed.contains("Scheduled"));

    let mut scheduler = site.spawn("scheduler", &["scheduler", "run"]);
    wait_for(120, "the scheduled run to succeed", || {
        status(&site, "golden") == "Successful"
    });
    signal(&scheduler, libc::SIGTERM);
    let exit = scheduler.wait().expect("wait");
    assert!(exit.success(), "{}", site.output_of("scheduler"));

    assert_sample_serviced(&wim);
    let shown = show(&site, "golden");
    // A recurring schedule stays, with its next run in the future.
    let next = shown["scheduled_updates_date"].as_str().expect("next run");
    assert!(next > shown["runs"][0]["started_at"].as_str().expect("started"));
    let first = runs(&shown)
        .into_iter()
        .find(|r| !r["updates"].as_array().expect("updates").is_empty())
        .expect("the servicing run");
    assert_eq!(first["status"], "Successful");
    let log = PathBuf::from(first["log_path"].as_str().expect("run log"));
    let text = std::fs::read_to_string(&log).expect("run log");
    for expected in [
        "applied KB5040000 to index 1",
        "applied KB5040001 to index 2",
        "replacing the original image",
    ] {
        assert!(text.contains(expected), "{expected} not in {text}");
    }
    assert!(text.starts_with("<![LOG["), "{text}");
    let main = std::fs::read_to_string(site.root().join("logs/OfflineServicingMgr.log"))
        .expect("main log");
    let line = main
        .lines()
        .find(|l| l.contains("scheduler started"))
        .expect("scheduler line");
    assert!(
        line.contains("]LOG]!><time=\"") && line.contains("type=\"1\""),
        "{line}"
    );
}

#[test]
fn once_runs_what_is_due_and_leaves_the_rest() {
    let (site, wim, original) = TestSite::with_golden_image();
    let later = site.golden_image("later");
    site.ois(&[
        "image",
        "schedule",
        "later",
        "--updates",
        "KB5040000",
        "--at",
        "2099-01-01 02:00",
    ])
    .ok();
    site.ois(&[
        "image",
        "schedule",
        "golden",
        "--updates",
        "KB5040000",
        "--now",
    ])
    .ok();
    let later_before = std::fs::read(&later).expect("read");

    let run = site.ois(&["scheduler", "run", "--once", "--json"]).ok();
    let finished: Vec<Value> = run
        .json_lines()
        .into_iter()
        .filter(|e| e["event"] == "run_finished")
        .collect();
    assert_eq!(finished.len(), 1, "{}", run.stdout);
    assert_eq!(finished[0]["outcome"]["image"], "golden");
    assert_eq!(finished[0]["outcome"]["status"], "Successful");

    assert_ne!(std::fs::read(&wim).expect("read"), original);
    for index in [1, 2] {
        assert_eq!(
            index_files(&wim, index)["Windows/servicing/Stack/CbsCore.dll"],
            filler(20, 40 * 1024)
        );
    }
    let shown = show(&site, "golden");
    assert_eq!(shown["scheduled_updates_status"], "Successful");
    assert!(
        shown["servicing"]["schedule"].is_null(),
        "a one-time schedule is done"
    );
    let update_status = shown["update_status"].as_array().expect("update status");
    assert_eq!(update_status.len(), 2);
    assert!(update_status
        .iter()
        .all(|u| u["update"] == "KB5040000" && u["applied"] == true));

    // The future schedule did not run and still shows, with what it will apply.
    assert_eq!(std::fs::read(&later).expect("read"), later_before);
    let later_shown = show(&site, "later");
    assert_eq!(later_shown["scheduled_updates_status"], "Scheduled");
    assert_eq!(
        later_shown["servicing"]["will_apply"],
        serde_json::json!(["KB5040000"])
    );
}

#[test]
fn two_schedulers_service_each_image_once() {
    let site = TestSite::new();
    site.sample_packages();
    let names = ["a", "b", "c", "d"];
    let wims: Vec<PathBuf> = names.iter().map(|n| site.golden_image(n)).collect();
    for n in names {
        site.ois(&["image", "schedule", n, "--all-applicable", "--now"])
            .ok();
    }
    let mut one = site.spawn("one", &["scheduler", "run", "--once", "--jobs", "2"]);
    let mut two = site.spawn("two", &["scheduler", "run", "--once", "--jobs", "2"]);
    assert!(
        one.wait().expect("wait").success(),
        "{}",
        site.output_of("one")
    );
    assert!(
        two.wait().expect("wait").success(),
        "{}",
        site.output_of("two")
    );

    for (n, wim) in names.iter().zip(&wims) {
        let shown = show(&site, n);
        let runs = runs(&shown);
        assert_eq!(runs.len(), 1, "image {n} ran {} times: {shown}", runs.len());
        assert_eq!(runs[0]["status"], "Successful");
        assert_sample_serviced(wim);
    }
}

#[test]
fn cancel_during_the_write_keeps_the_original() {
    let (site, wim, original) = TestSite::with_golden_image();
    import_big_update(&site);
    let mut service = site.spawn("service", &["service", "golden", "--updates", BIG]);
    stop_when_writing(&site, &service);
    let mut cancel = site.spawn("cancel", &["image", "cancel", "golden", "--json"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    signal(&service, libc::SIGCONT);
    assert!(
        cancel.wait().expect("wait").success(),
        "{}",
        site.output_of("cancel")
    );
    let canceled: Value = serde_json::from_str(
        &std::fs::read_to_string(site.path("cancel.out")).expect("cancel output"),
    )
    .expect("json");
    assert_eq!(canceled["canceled"], "run", "{canceled}");
    assert_eq!(canceled["status"], "Canceled", "{canceled}");
    let exit = service.wait().expect("wait");
    assert!(!exit.success(), "{}", site.output_of("service"));

    assert_eq!(std::fs::read(&wim).expect("read"), original);
    assert!(stage_dirs(&site).is_empty(), "{:?}", stage_dirs(&site));
    let shown = show(&site, "golden");
    assert_eq!(shown["scheduled_updates_status"], "Canceled");
    assert!(shown["provisioning_mode"].is_null());
    assert!(shown["runs"][0]["error"]
        .as_str()
        .expect("message")
        .contains("canceled"));
}

#[test]
fn cancel_of_a_scheduled_run_drops_it() {
    let (site, wim, original) = TestSite::with_golden_image();
    site.ois(&[
        "image",
        "schedule",
        "golden",
        "--all-applicable",
        "--at",
        "2099-01-01T02:00:00Z",
    ])
    .ok();
    let out = site
        .ois(&["image", "cancel", "golden", "--json"])
        .ok()
        .json();
    assert_eq!(out["canceled"], "scheduled");
    assert_eq!(status(&site, "golden"), "Canceled");
    assert!(show(&site, "golden")["servicing"]["schedule"].is_null());

    // A recurring schedule only loses its pending run.
    site.ois(&[
        "image",
        "schedule",
        "golden",
        "--all-applicable",
        "--cron",
        "0 0 2 * * Tue",
    ])
    .ok();
    let before = show(&site, "golden")["scheduled_updates_date"].clone();
    let out = site
        .ois(&["image", "cancel", "golden", "--json"])
        .ok()
        .json();
    let after = out["next_run_at"].as_str().expect("next run");
    assert!(
        after > before.as_str().expect("date"),
        "{after} after {before}"
    );

    site.ois(&["image", "unschedule", "golden"]).ok();
    let err = site.ois(&["image", "cancel", "golden"]).failed().stderr;
    assert!(err.contains("nothing to cancel"), "{err}");
    site.ois(&["scheduler", "run", "--once"]).ok();
    assert_eq!(std::fs::read(&wim).expect("read"), original);
}

#[test]
fn bad_schedules_are_refused_clearly() {
    let (site, _, _) = TestSite::with_golden_image();
    let cases: [(&[&str], &[&str]); 3] = [
        (&["--cron", "every day"], &["not a cron expression"]),
        (&["--at", "tomorrow"], &["RFC 3339"]),
        (&[], &["--now", "required"]),
    ];
    for (timing, any_of) in cases {
        let mut args = vec!["image", "schedule", "golden", "--all-applicable"];
        args.extend_from_slice(timing);
        let err = site.ois(&args).failed().stderr;
        assert!(any_of.iter().any(|m| err.contains(m)), "{timing:?}: {err}");
    }
    assert_eq!(status(&site, "golden"), "None");
}

/// Starts servicing with the big update, waits for the write and kills the process.
fn kill_during_write(site: &TestSite) {
    let mut service = site.spawn("killed", &["service", "golden", "--updates", BIG]);
    stop_when_writing(site, &service);
    signal(&service, libc::SIGKILL);
    service.wait().expect("reap");
    let shown = show(site, "golden");
    assert!(!shown["provisioning_mode"].is_null(), "{shown}");
    assert_eq!(shown["scheduled_updates_status"], "In progress");
    assert!(!stage_dirs(site).is_empty());
}

fn assert_repaired(site: &TestSite, wim: &Path, original: &[u8], reason: &str) {
    assert_eq!(std::fs::read(wim).expect("read"), original);
    assert!(stage_dirs(site).is_empty(), "{:?}", stage_dirs(site));
    let shown = show(site, "golden");
    assert!(shown["provisioning_mode"].is_null());
    let failed = runs(&shown)
        .into_iter()
        .find(|r| r["status"] == "Failed")
        .expect("the dead run");
    let message = failed["error"].as_str().expect("reason");
    assert!(message.contains(reason), "{message}");
    assert!(message.contains("intact"), "{message}");
}

#[test]
fn a_killed_run_is_repaired_by_hand_and_the_next_run_succeeds() {
    let (site, wim, original) = TestSite::with_golden_image();
    import_big_update(&site);
    kill_during_write(&site);

    let err = site.ois(&["image", "cancel", "golden"]).failed().stderr;
    assert!(err.contains("set-provisioning-mode golden false"), "{err}");
    let err = site
        .ois(&["image", "schedule", "golden", "--all-applicable", "--now"])
        .failed()
        .stderr;
    assert!(err.contains("provisioning mode"), "{err}");

    let repair = leave_provisioning_mode(&site);
    assert_eq!(repair["repair"]["original"], "Intact");
    assert!(!repair["repair"]["removed"]
        .as_array()
        .expect("removed")
        .is_empty());
    assert_repaired(&site, &wim, &original, "cleared by an administrator");

    site.ois(&["service", "golden", "--all-applicable"]).ok();
    assert_sample_serviced(&wim);
}

#[test]
fn a_killed_run_is_repaired_at_once_by_the_scheduler() {
    let (site, wim, original) = TestSite::with_golden_image();
    import_big_update(&site);
    kill_during_write(&site);

    scheduler_repairs_once(&site);
    assert_repaired(&site, &wim, &original, "ended without finishing the run");
}

#[test]
fn a_hung_scheduled_run_is_repaired_by_the_timeout_and_runs_again() {
    let (site, wim, original) = TestSite::with_golden_image();
    import_big_update(&site);
    site.configure("provisioning_max_minutes = 0.05\nprovisioning_check_minutes = 0.01");
    site.ois(&["image", "schedule", "golden", "--updates", BIG, "--now"])
        .ok();
    let mut hung = site.spawn("hung", &["scheduler", "run"]);
    // Alive but making no progress: only the timeout can end it.
    stop_when_writing(&site, &hung);

    let mut healer = site.spawn("healer", &["scheduler", "run"]);
    wait_for(
        300,
        "the repaired schedule to run again and succeed",
        || {
            let shown = show(&site, "golden");
            runs(&shown).iter().any(|r| r["status"] == "Successful")
        },
    );
    signal(&healer, libc::SIGTERM);
    assert!(
        healer.wait().expect("wait").success(),
        "{}",
        site.output_of("healer")
    );
    signal(&hung, libc::SIGKILL);
    hung.wait().expect("reap");

    let shown = show(&site, "golden");
    let all = runs(&shown);
    let failed = all
        .iter()
        .find(|r| r["status"] == "Failed")
        .expect("hung run");
    assert!(
        failed["error"]
            .as_str()
            .expect("reason")
            .contains("longer than 0.05 minutes"),
        "{failed}"
    );
    assert!(failed["error"].as_str().expect("reason").contains("intact"));
    // The original was intact when repaired, then the run serviced it.
    assert_ne!(std::fs::read(&wim).expect("read"), original);
    let files = index_files(&wim, 1);
    assert_eq!(files["Windows/Big/part3.bin"], filler(903, 16 << 20));
    assert_eq!(
        files["Windows/System32/kernel32.dll"],
        index_files_of_bytes(&original, 1)["Windows/System32/kernel32.dll"]
    );
    assert!(shown["servicing"]["schedule"].is_null());
}

/// The files of an index of a WIM held in memory.
fn index_files_of_bytes(bytes: &[u8], index: u32) -> std::collections::BTreeMap<String, Vec<u8>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("copy.wim");
    std::fs::write(&path, bytes).expect("write");
    index_files(&path, index)
}

#[test]
fn a_run_killed_after_replacing_the_file_is_recorded_by_the_repair() {
    let (site, wim, original) = TestSite::with_golden_image();
    import_big_update(&site);
    kill_during_write(&site);
    // As if the process had died between putting its verified output in place and recording
    // it: a WIM serviced after the run started, carrying ois's own record, is now the file.
    let (other, other_wim, _) = TestSite::with_golden_image();
    other
        .ois(&["service", "golden", "--updates", "KB5040000"])
        .ok();
    std::fs::copy(&other_wim, &wim).expect("copy");

    let repair = leave_provisioning_mode(&site);
    assert_eq!(repair["repair"]["original"], "Serviced", "{repair}");
    assert_eq!(repair["repair"]["run_status"], "Successful");
    assert!(stage_dirs(&site).is_empty());
    let shown = show(&site, "golden");
    assert_ne!(
        shown["image"]["sha256"],
        serde_json::json!(common::sha256(&original))
    );
    assert_eq!(
        shown["image"]["sha256"],
        serde_json::json!(common::sha256(&std::fs::read(&wim).expect("read")))
    );
    let installed = shown["installed_updates"][0]["updates"].to_string();
    assert!(installed.contains("KB5040000"), "{installed}");

    // The catalog matches the file again, so the next run is not refused as "changed on disk".
    site.ois(&["service", "golden", "--updates", "KB5040001"])
        .ok();
    assert_sample_serviced(&wim);
}

/// A directory DP that already holds the image's current version.
fn dir_dp_holding(site: &TestSite, server: &str, image: &str) -> PathBuf {
    let root = site.path(&format!("dps/{server}/.keep"));
    let root = root.parent().expect("dp dir").to_path_buf();
    site.ois(&[
        "dp",
        "add",
        &nal(server),
        "--target",
        root.to_str().expect("utf8"),
    ])
    .ok();
    site.ois(&["image", "distribute", image, "--dp", &nal(server)])
        .ok();
    root
}

fn dp_file(root: &Path, site: &TestSite, image: &str) -> PathBuf {
    let shown = show(site, image);
    root.join(format!(
        "ois/images/{}/{}.wim",
        shown["image"]["id"],
        shown["image"]["sha256"].as_str().expect("sha")
    ))
}

#[test]
fn a_scheduled_run_with_update_dps_sends_the_serviced_image() {
    let (site, wim, original) = TestSite::with_golden_image();
    let dp = dir_dp_holding(&site, "DP01", "golden");
    let old = dp_file(&dp, &site, "golden");
    assert_eq!(std::fs::read(&old).expect("old version"), original);
    site.ois(&[
        "image",
        "schedule",
        "golden",
        "--all-applicable",
        "--now",
        "--update-dps",
    ])
    .ok();

    let run = site.ois(&["scheduler", "run", "--once", "--json"]).ok();
    let sent: Vec<Value> = run
        .json_lines()
        .into_iter()
        .filter(|e| e["event"] == "distributed")
        .collect();
    assert_eq!(sent.len(), 1, "{}", run.stdout);
    assert_eq!(
        sent[0]["distributions"][0]["status"], "Installed",
        "{}",
        run.stdout
    );

    assert_sample_serviced(&wim);
    let new = dp_file(&dp, &site, "golden");
    assert_eq!(
        std::fs::read(&new).expect("new version"),
        std::fs::read(&wim).expect("wim")
    );
    assert!(
        !old.exists(),
        "the old version is removed once the new one is in place"
    );
}

#[test]
fn the_scheduler_validates_content_on_its_cron_even_in_maintenance_mode() {
    let (site, _wim, original) = TestSite::with_golden_image();
    let dp = dir_dp_holding(&site, "DP01", "golden");
    site.ois(&["dp", "set-maintenance-mode", &nal("DP01"), "1"])
        .ok();
    let file = dp_file(&dp, &site, "golden");
    let mut bytes = original.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, &bytes).expect("corrupt");
    site.configure("content_validation_cron = \"*/1 * * * * *\"");

    let mut scheduler = site.spawn("validator", &["scheduler", "run", "--json"]);
    wait_for(60, "scheduled validation to mark the DP Failed", || {
        site.ois(&["dp", "show", &nal("DP01"), "--json"])
            .ok()
            .json()["distributions"][0]["status"]
            == "Failed"
    });
    signal(&scheduler, libc::SIGTERM);
    assert!(
        scheduler.wait().expect("wait").success(),
        "{}",
        site.output_of("validator")
    );
    let out = site.output_of("validator");
    assert!(out.contains("\"event\":\"validated\""), "{out}");
    // Still in maintenance mode: the bad copy is reported, not repaired behind the admin's back.
    assert_eq!(std::fs::read(&file).expect("read"), bytes);
}

/// `ois scheduler run --once --json`: the one repair it must report.
fn scheduler_repairs_once(site: &TestSite) -> Vec<Value> {
    let run = site.ois(&["scheduler", "run", "--once", "--json"]).ok();
    let repaired: Vec<Value> = run
        .json_lines()
        .into_iter()
        .filter(|e| e["event"] == "repaired")
        .collect();
    assert_eq!(repaired.len(), 1, "{}", run.stdout);
    repaired
}

/// `ois image set-provisioning-mode golden false --json`: the repair, as reported.
fn leave_provisioning_mode(site: &TestSite) -> serde_json::Value {
    site.ois(&[
        "image",
        "set-provisioning-mode",
        "golden",
        "false",
        "--json",
    ])
    .ok()
    .json()
}

/// The state a process killed between recording its run and attaching it to provisioning mode
/// left before both became one transaction: a run In progress that no lease points at (here
/// with a lease whose run is NULL, as that kill left it). `pid` is a process that has ended.
fn leave_orphaned_run(site: &TestSite, with_lease: bool) -> i64 {
    let mut gone = std::process::Command::new("true").spawn().expect("true");
    let pid = gone.id();
    gone.wait().expect("reap");
    let conn = rusqlite::Connection::open(site.root().join("site.db")).expect("db");
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let host = sysinfo::System::host_name().unwrap_or_else(|| "localhost".into());
    conn.execute(
        "INSERT INTO servicing_runs (image_id, status, started_at, continue_on_error, size_before, owner_pid, owner_host)
         SELECT id, 'In progress', ?1, 0, size_bytes, ?2, ?3 FROM images WHERE name = 'golden'",
        rusqlite::params![now, pid, host],
    )
    .expect("insert run");
    let run_id = conn.last_insert_rowid();
    if with_lease {
        conn.execute(
            "INSERT INTO provisioning (image_id, run_id, since, owner_pid, owner_host)
             SELECT id, NULL, ?1, ?2, ?3 FROM images WHERE name = 'golden'",
            rusqlite::params![now, pid, host],
        )
        .expect("insert lease");
    }
    run_id
}

#[test]
fn a_run_left_in_progress_without_its_lease_is_ended_by_the_repair() {
    for with_lease in [true, false] {
        let (site, wim, original) = TestSite::with_golden_image();
        let orphan = leave_orphaned_run(&site, with_lease);
        assert_eq!(status(&site, "golden"), "In progress");

        let repair = leave_provisioning_mode(&site);
        assert_eq!(
            repair["repair"]["orphaned_runs"],
            serde_json::json!([orphan]),
            "{repair}"
        );
        let shown = show(&site, "golden");
        assert!(shown["provisioning_mode"].is_null(), "{shown}");
        let ended = runs(&shown)
            .into_iter()
            .find(|r| r["id"] == orphan)
            .expect("the orphaned run");
        assert_eq!(ended["status"], "Failed", "{ended}");
        assert!(
            ended["error"]
                .as_str()
                .unwrap_or_default()
                .contains("intact"),
            "{ended}"
        );
        assert_ne!(status(&site, "golden"), "In progress");
        assert_eq!(std::fs::read(&wim).expect("read"), original);

        // The next run services the image and its status follows it, not the old run.
        site.ois(&["service", "golden", "--all-applicable"]).ok();
        assert_eq!(status(&site, "golden"), "Successful");
        assert_sample_serviced(&wim);
    }
}

#[test]
fn the_scheduler_ends_a_run_left_in_progress_without_its_lease() {
    let (site, _wim, _original) = TestSite::with_golden_image();
    let orphan = leave_orphaned_run(&site, false);
    let repaired = scheduler_repairs_once(&site);
    assert_eq!(
        repaired[0]["repair"]["orphaned_runs"],
        serde_json::json!([orphan])
    );
    assert_ne!(status(&site, "golden"), "In progress");
}
