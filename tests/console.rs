//! The web console in a real browser: headless Chromium (Debian's `chromium`, driven by the
//! npm `playwright-core` in tests/console/) clicks through the console that the real
//! `ois serve` embeds, on a site made of real files, and the test then checks the site itself
//! (`ois image show --json`, `ois dp show --json`, the bytes of the image).
//!
//! Screenshots of every step go to `target/console-screenshots/<scenario>/`.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{index_files, nal, wait_for, TestSite};
use ois::sample::filler;
use serde_json::Value;

/// One browser at a time: each scenario waits on the server's scheduler, and two Chromiums
/// on a two-core machine make those waits flaky.
static BROWSER: Mutex<()> = Mutex::new(());

const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/console");

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Whether the browser, node and the npm packages are here; says why the test is skipped
/// when they are not (scripts/setup.sh installs them).
fn browser_available() -> bool {
    let missing: Vec<String> = [
        (chromium().exists(), format!("{}", chromium().display())),
        (common::have("node"), "node".to_string()),
        (
            Path::new(SCRIPTS)
                .join("node_modules/playwright-core")
                .exists(),
            "tests/console/node_modules (npm ci)".to_string(),
        ),
    ]
    .into_iter()
    .filter(|(ok, _)| !ok)
    .map(|(_, what)| what)
    .collect();
    if !missing.is_empty() {
        common::skip_or_fail(&format!("{} missing", missing.join(", ")));
    }
    missing.is_empty()
}

/// `ois serve` on a free loopback port, stopped when dropped.
struct Server<'a> {
    site: &'a TestSite,
    child: Child,
    port: u16,
}

impl<'a> Server<'a> {
    fn start(site: &'a TestSite, scheduler: bool) -> Server<'a> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["serve", "--listen", &listen];
        if scheduler {
            args.push("--scheduler");
        }
        let child = site.spawn("serve", &args);
        let mut server = Server { site, child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = server.child.try_wait().expect("wait") {
                panic!("ois serve exited ({status}): {}", site.output_of("serve"));
            }
            if server.get("/api/v1/openapi.json").0 == 200 {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "ois serve did not answer on {listen}: {}",
                site.output_of("serve")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A plain HTTP/1.1 GET: (status, body); (0, "") when nothing answers yet.
    fn get(&self, path: &str) -> (u16, String) {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return (0, String::new());
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        if stream.write_all(request.as_bytes()).is_err() {
            return (0, String::new());
        }
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }
}

impl Drop for Server<'_> {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid; SIGTERM lets it stop its scheduler cleanly.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!(
            "ois serve had to be killed: {}",
            self.site.output_of("serve")
        );
    }
}

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("console-screenshots")
}

/// Starts the browser scenario `name` against `server`; `env` are its OIS_CONSOLE_* settings.
fn spawn_browser(server: &Server, name: &str, env: &[(&str, &str)]) -> Child {
    let shots = screenshots();
    let _ = std::fs::remove_dir_all(shots.join(name));
    let mut cmd = Command::new("node");
    cmd.current_dir(SCRIPTS)
        .arg("console.mjs")
        .arg(name)
        .env("OIS_CONSOLE_URL", server.url())
        .env("OIS_CONSOLE_SHOTS", &shots)
        .env("CHROMIUM", chromium())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(format!("OIS_CONSOLE_{k}"), v);
    }
    cmd.spawn().expect("run node")
}

/// Waits for the scenario and returns what the page showed; panics with its error, the
/// screenshots' folder and the server's output when it failed.
fn browser_report(child: Child, server: &Server, name: &str) -> Value {
    let out = child.wait_with_output().expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    assert!(
        out.status.success() && report["ok"] == true,
        "browser scenario {name} failed: {}\nscreenshots: {}\nnode stderr:\n{}\nserver:\n{}",
        report["error"].as_str().unwrap_or(&stdout),
        screenshots().join(name).display(),
        String::from_utf8_lossy(&out.stderr),
        server.site.output_of("serve"),
    );
    assert_eq!(
        report["console_errors"],
        serde_json::json!([]),
        "the page logged errors in {name}"
    );
    // Refused requests only where the scenario provokes them: 401 before signing in and 403
    // forced by the read-only account, 400 for the upload of a file that is no package.
    let provoked: &[&str] = match name {
        "readonly" => &["401", "403"],
        "library" => &["400"],
        _ => &[],
    };
    let refused = report["resource_errors"]
        .as_array()
        .expect("resource errors");
    assert!(
        refused.iter().all(|e| provoked
            .iter()
            .any(|p| e.as_str().is_some_and(|e| e.contains(p)))),
        "requests failed in {name}: {refused:?}"
    );
    let steps = report["steps"].as_array().expect("steps");
    for step in steps {
        let shot = step["screenshot"].as_str().expect("screenshot");
        assert!(
            std::fs::metadata(shot).is_ok_and(|m| m.len() > 1000),
            "{shot}"
        );
    }
    report
}

fn run_browser(server: &Server, name: &str, env: &[(&str, &str)]) -> Value {
    browser_report(spawn_browser(server, name, env), server, name)
}

fn show(site: &TestSite, image: &str) -> Value {
    site.ois(&["image", "show", image, "--json"]).ok().json()
}

fn installed(shown: &Value, index: u64) -> Vec<String> {
    shown["installed_updates"]
        .as_array()
        .expect("installed_updates")
        .iter()
        .find(|i| i["index"] == index)
        .map(|i| {
            i["updates"]
                .as_array()
                .expect("updates")
                .iter()
                .map(|u| u["id"].as_str().expect("id").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn seen_installed(report: &Value, index: u64) -> Vec<String> {
    report["seen"]["installed"]
        .as_array()
        .expect("installed")
        .iter()
        .find(|i| i["index"] == index)
        .map(|i| serde_json::from_value(i["updates"].clone()).expect("update ids"))
        .unwrap_or_default()
}

/// The words the What Changed tab uses for a kind of change.
fn kind_words(kind: &str) -> &str {
    match kind {
        "registry" => "registry hive(s) edited",
        other => other,
    }
}

/// A changed path as the What Changed tab writes it.
fn changed_path(change: &Value) -> String {
    let path = change["path"].as_str().expect("path");
    let dir = if change["is_dir"] == true { "/" } else { "" };
    match (change["old_path"].as_str(), change["hive"].as_str()) {
        (Some(old), _) => format!("{old}{dir} → {path}{dir}"),
        (None, Some(hive)) => format!("{path} ({hive} hive)"),
        (None, None) => format!("{path}{dir}"),
    }
}

/// Asserts that the What Changed tab (`seen`, as console.mjs read it) shows what
/// `ois image changes --json` says: the same indexes, per kind the same counts, and the same
/// rows in the same order with the same update, path and exact sizes.
fn assert_what_changed_shows(seen: &Value, cli: &Value) {
    let shown = seen.as_array().expect("indexes shown");
    let recorded = cli["indexes"].as_array().expect("indexes");
    assert!(!recorded.is_empty(), "the run changed nothing: {cli}");
    assert_eq!(
        shown.iter().map(|i| i["index"].clone()).collect::<Vec<_>>(),
        recorded
            .iter()
            .map(|i| i["index"].clone())
            .collect::<Vec<_>>(),
        "{seen}"
    );
    for (page, ix) in shown.iter().zip(recorded) {
        let name = ix["name"].as_str().expect("name");
        assert_eq!(page["heading"], format!("Index {}: {name}", ix["index"]));
        let totals = ix["totals"].as_object().expect("totals");
        let expected: Vec<String> = totals
            .iter()
            .filter(|(_, t)| t["count"].as_u64().expect("count") > 0)
            .map(|(kind, t)| format!("{} {} (", t["count"], kind_words(kind)))
            .collect();
        let lines = page["totals"].as_array().expect("totals shown");
        assert_eq!(lines.len(), expected.len(), "{lines:?} vs {expected:?}");
        for want in &expected {
            assert!(
                lines
                    .iter()
                    .any(|l| l.as_str().is_some_and(|l| l.starts_with(want.as_str()))),
                "index {}: no total {want:?} in {lines:?}",
                ix["index"]
            );
        }
        let changes = ix["changes"].as_array().expect("changes");
        let rows = page["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), changes.len(), "index {}", ix["index"]);
        for (row, change) in rows.iter().zip(changes) {
            let size = |s: &Value| s.as_u64().map(|n| Value::from(n.to_string()));
            assert_eq!(
                row["kind"],
                kind_words(change["kind"].as_str().expect("kind"))
            );
            assert_eq!(row["path"], changed_path(change), "{row}");
            assert_eq!(row["update"], change["update"], "{row}");
            assert_eq!(
                Some(row["size_before"].clone()).filter(|v| !v.is_null()),
                size(&change["size_before"]),
                "{row} vs {change}"
            );
            assert_eq!(
                Some(row["size_after"].clone()).filter(|v| !v.is_null()),
                size(&change["size_after"]),
                "{row} vs {change}"
            );
            for (shown, exact) in [
                ("shown_before", "size_before"),
                ("shown_after", "size_after"),
            ] {
                assert_eq!(
                    row[shown].as_str().expect("cell").is_empty(),
                    change[exact].is_null(),
                    "{row}"
                );
            }
        }
    }
}

fn stage_dirs(site: &TestSite) -> Vec<PathBuf> {
    std::fs::read_dir(site.root().join("ConfigMgr_OfflineImageServicing"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

#[test]
fn the_schedule_updates_wizard_services_the_image_and_shows_its_installed_updates() {
    if !browser_available() {
        return;
    }
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let (site, wim, _) = TestSite::with_golden_image();
    let server = Server::start(&site, true);

    let report = run_browser(
        &server,
        "schedule",
        &[
            ("IMAGE", "golden"),
            ("UPDATES", "KB5040000,KB5040001,KB5040002"),
        ],
    );
    let seen = &report["seen"];
    // The wizard listed what applies to this x64 image and nothing under X86; the filter kept
    // the November updates only (October's KB5039999 is filtered out by the text).
    assert_eq!(seen["x86_choices"], 0);
    assert_eq!(
        seen["choices"],
        serde_json::json!(["KB5040000", "KB5040001", "KB5040002"])
    );
    assert_eq!(seen["picked"], "3 update(s) selected");
    let summary = seen["summary"].as_str().expect("summary");
    assert!(
        summary.contains("As soon as possible") && summary.contains("KB5040002"),
        "{summary}"
    );
    assert_eq!(seen["final_status"], "Successful");
    // The dashboard's Running now showed the run with a progress bar, fed by the events.
    let running = seen["dashboard_running"].as_array().expect("running");
    assert!(
        running.iter().any(
            |r| r["label"].as_str().is_some_and(|l| l.starts_with("golden"))
                && r["percent"].is_string()
        ),
        "{running:?}"
    );
    // The Installed Updates tab shows what the site recorded, index by index.
    let shown = show(&site, "golden");
    for index in [1, 2] {
        assert_eq!(seen_installed(&report, index), installed(&shown, index));
    }
    assert!(seen_installed(&report, 1).contains(&"KB5040001".to_string()));
    assert!(seen_installed(&report, 2).contains(&"KB5040002".to_string()));
    assert!(!seen_installed(&report, 1).contains(&"KB5040002".to_string()));
    assert_eq!(seen["update_status"].as_array().expect("rows").len(), 5);
    assert!(
        seen["log_matches"].as_u64().expect("matches") >= 2,
        "{seen}"
    );
    assert_eq!(seen["history"], serde_json::json!(["Successful"]));
    // What Changed shows the run's record as the CLI reads it.
    let changes = site
        .ois(&["image", "changes", "golden", "--json"])
        .ok()
        .json();
    assert_eq!(seen["changes_run"], changes["run_id"].to_string());
    assert_what_changed_shows(&seen["changes"], &changes);
    assert!(seen["runs_by_status"]
        .as_str()
        .expect("chart")
        .contains("Successful 1"));

    // The site: the run the server's scheduler made, and the bytes in the image.
    assert_eq!(shown["scheduled_updates_status"], "Successful");
    assert!(shown["servicing"]["schedule"].is_null(), "{shown}");
    let run = &shown["runs"][0];
    assert_eq!(run["status"], "Successful");
    assert!(run["updates"]
        .as_array()
        .expect("results")
        .iter()
        .all(|u| u["applied"] == true));
    for index in [1, 2] {
        let files = index_files(&wim, index);
        assert_eq!(
            files["Windows/System32/ntoskrnl.exe"],
            filler(40, 110 * 1024),
            "index {index}"
        );
    }
}

#[test]
fn the_schedule_updates_wizard_works_with_the_keyboard_only() {
    if !browser_available() {
        return;
    }
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let (site, wim, _) = TestSite::with_golden_image();
    site.golden_image("second");
    let server = Server::start(&site, true);

    let report = run_browser(
        &server,
        "keyboard",
        &[("IMAGE", "golden"), ("UPDATES", "KB5040000,KB5040002")],
    );
    let seen = &report["seen"];
    assert_eq!(seen["focus_visible"], true, "{seen}");
    assert_eq!(seen["escape_closed"], true);
    assert_eq!(seen["focus_back_on"], "schedule", "{seen}");
    assert_eq!(seen["focus_left_dialog"], 0, "{seen}");
    assert_eq!(seen["picked"], "2 update(s) selected");
    let summary = seen["summary"].as_str().expect("summary");
    assert!(summary.contains("Continue on error\nYes"), "{summary}");
    assert_eq!(seen["final_status"], "Successful");

    let shown = show(&site, "golden");
    assert_eq!(shown["runs"][0]["status"], "Successful");
    assert!(installed(&shown, 2).contains(&"KB5040002".to_string()));
    assert!(installed(&shown, 1).contains(&"KB5040000".to_string()));
    assert!(!installed(&shown, 1).contains(&"KB5040001".to_string()));
    let files = index_files(&wim, 1);
    assert_eq!(
        files["Windows/servicing/Stack/CbsCore.dll"],
        filler(20, 40 * 1024)
    );
    // Only the image chosen with the keyboard was serviced.
    assert_eq!(show(&site, "second")["scheduled_updates_status"], "None");
}

/// Whether the site database has the cancel request of a run in progress of image 1.
fn cancel_requested(site: &TestSite) -> bool {
    let Ok(db) = rusqlite::Connection::open_with_flags(
        site.root().join("site.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return false;
    };
    db.query_row(
        "SELECT count(*) FROM servicing_runs WHERE cancel_requested = 1 AND status = 'In progress'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .is_ok_and(|n| n > 0)
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(rc, 0, "kill {sig}");
}

#[test]
fn cancel_scheduled_updates_cancels_the_run_in_progress_and_keeps_the_image() {
    if !browser_available() {
        return;
    }
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let (site, wim, original) = TestSite::with_golden_image();
    // No scheduler in the server: the run is made by a scheduler process of the test's, held
    // (SIGSTOP) once it has started so that it stays In progress while the browser cancels it,
    // as the scheduling tests hold theirs.
    let server = Server::start(&site, false);
    let browser = spawn_browser(
        &server,
        "cancel",
        &[("IMAGE", "golden"), ("UPDATES", "KB5040000,KB5040001")],
    );
    wait_for(120, "the wizard to save the schedule", || {
        !show(&site, "golden")["servicing"]["schedule"].is_null()
    });
    let mut scheduler = site.spawn("scheduler", &["scheduler", "run", "--once"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while stage_dirs(&site).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the run never started: {}",
            site.output_of("scheduler")
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    signal(&scheduler, libc::SIGSTOP);
    wait_for(150, "the console to request the cancel", || {
        cancel_requested(&site)
    });
    signal(&scheduler, libc::SIGCONT);
    let report = browser_report(browser, &server, "cancel");
    let _ = scheduler.wait();

    let seen = &report["seen"];
    assert_eq!(seen["cancel_enabled_before"], false, "{seen}");
    assert_eq!(seen["cancel_enabled_in_progress"], true, "{seen}");
    assert_eq!(seen["final_status"], "Canceled", "{seen}");
    assert_eq!(seen["cancel_enabled_after"], false, "{seen}");
    assert_eq!(seen["history"][0], "Canceled", "{seen}");

    let shown = show(&site, "golden");
    assert_eq!(shown["scheduled_updates_status"], "Canceled");
    assert!(shown["provisioning_mode"].is_null(), "{shown}");
    assert!(shown["runs"][0]["error"]
        .as_str()
        .expect("message")
        .contains("canceled"));
    assert_eq!(std::fs::read(&wim).expect("read"), original);
    assert!(stage_dirs(&site).is_empty(), "{:?}", stage_dirs(&site));
}

#[test]
fn maintenance_mode_makes_the_dp_properties_read_only_until_it_is_disabled() {
    if !browser_available() {
        return;
    }
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let site = TestSite::new();
    let target = site.path("dp/content");
    std::fs::create_dir_all(&target).expect("mkdir");
    let nal = nal("dp1");
    site.ois(&[
        "dp",
        "add",
        &nal,
        "--target",
        target.to_str().expect("utf8"),
        "--boundary-group",
        "HQ",
        "--description",
        "first floor",
    ])
    .ok();
    let server = Server::start(&site, false);

    let report = run_browser(&server, "maintenance", &[("DP", "dp1")]);
    let seen = &report["seen"];
    assert_eq!(seen["editable_at_start"], true, "{seen}");
    assert_eq!(seen["column_at_start"], "Off");
    assert!(seen["confirm_text"]
        .as_str()
        .expect("confirm")
        .contains("distributes no content"));
    assert_eq!(seen["column_in_maintenance"], "On");
    assert_eq!(seen["readonly_in_maintenance"], true, "{seen}");
    assert_eq!(seen["description_disabled"], true);
    assert!(seen["readonly_note"]
        .as_str()
        .expect("note")
        .contains("maintenance mode: its properties are read-only"));
    assert_eq!(seen["enable_disabled_now"], true);
    assert_eq!(seen["editable_after"], true);
    assert_eq!(seen["column_after"], "Off");
    assert!(seen["validate_message"]
        .as_str()
        .expect("message")
        .contains("validated"));

    // The site: the description changed while editable, and the DP ended in maintenance mode.
    let dp = site.ois(&["dp", "show", &nal, "--json"]).ok().json();
    assert_eq!(dp["dp"]["description"], "edited from the console", "{dp}");
    assert_eq!(dp["dp"]["maintenance_mode"], true, "{dp}");
    assert_eq!(dp["dp"]["boundary_groups"], serde_json::json!(["HQ"]));
    // Each change is in the audit log, with who made it, and the Audit Log page shows them.
    let audit_page = seen["audit"].as_array().expect("audit rows");
    let maintenance_rows = audit_page
        .iter()
        .filter(|r| r[2].as_str().is_some_and(|a| a.contains("maintenance")))
        .count();
    assert!(maintenance_rows >= 3, "{audit_page:?}");
    assert!(
        audit_page.iter().all(|r| r[1] == "local admin"),
        "{audit_page:?}"
    );
    let (status, audit) = server.get("/api/v1/audit");
    assert_eq!(status, 200, "{audit}");
    let audit: Value = serde_json::from_str(&audit).expect("audit JSON");
    let actions: Vec<String> = audit
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| format!("{} {}", e["who"], e["action"]))
        .collect();
    assert!(
        actions.iter().filter(|a| a.contains("maintenance")).count() >= 3,
        "{actions:?}"
    );
}

#[test]
fn a_read_only_account_can_change_nothing_and_sees_why() {
    if !browser_available() {
        return;
    }
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let (site, wim, original) = TestSite::with_golden_image();
    let target = site.path("dp/content");
    std::fs::create_dir_all(&target).expect("mkdir");
    // A DP added first, so that dp1's id is not 1 and a link by position would show.
    let other = site.path("dp/other");
    std::fs::create_dir_all(&other).expect("mkdir");
    site.ois(&[
        "dp",
        "add",
        &nal("dp0"),
        "--target",
        other.to_str().expect("utf8"),
    ])
    .ok();
    let nal = nal("dp1");
    site.ois(&[
        "dp",
        "add",
        &nal,
        "--target",
        target.to_str().expect("utf8"),
    ])
    .ok();
    site.ois(&["image", "distribute", "golden", "--dp", &nal])
        .ok();
    // `ois dp` names DPs by NAL path: the id is the site database's.
    let dp_id: i64 = rusqlite::Connection::open(site.root().join("site.db"))
        .and_then(|db| {
            db.query_row(
                "SELECT id FROM distribution_points WHERE server = 'dp1'",
                [],
                |r| r.get(0),
            )
        })
        .expect("dp1's id");
    assert!(dp_id > 1, "{dp_id}");
    let added = site
        .ois(&["site", "user", "add", "ana", "--role", "read-only"])
        .ok();
    let token = added
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("ois_"))
        .unwrap_or_else(|| panic!("no token in: {}", added.stdout))
        .to_string();
    let server = Server::start(&site, true);

    let report = run_browser(
        &server,
        "readonly",
        &[("IMAGE", "golden"), ("DP", "dp1"), ("TOKEN", &token)],
    );
    let seen = &report["seen"];
    assert!(!seen["bad_token_message"]
        .as_str()
        .expect("refusal")
        .is_empty());
    assert_eq!(seen["who"], "ana");
    assert_eq!(seen["role"], "Read-only analyst");
    for control in [
        "schedule_disabled",
        "cancel_disabled",
        "repair_disabled",
        "remove_schedule_disabled",
        "import_disabled",
        "enable_maintenance_disabled",
        "validate_disabled",
        "dp_fields_disabled",
    ] {
        assert_eq!(seen[control], true, "{control}: {seen}");
    }
    assert!(seen["schedule_tooltip"]
        .as_str()
        .expect("tooltip")
        .contains("Read-only account ana"));
    for forced in ["forced_maintenance_message", "forced_schedule_message"] {
        let message = seen[forced].as_str().expect("message");
        assert!(
            message.contains("read-only account ana cannot"),
            "{forced}: {message}"
        );
    }

    // The image's Distribution tab names the DP and links it by id.
    assert_eq!(
        seen["distribution_link"],
        format!("#/dps/{dp_id}"),
        "{seen}"
    );
    assert_eq!(seen["distribution_dp"], "dp1");
    assert_eq!(seen["linked_dp_selected"], "Select dp1", "{seen}");

    // Nothing changed on the site.
    let shown = show(&site, "golden");
    assert!(shown["servicing"]["schedule"].is_null(), "{shown}");
    assert_eq!(shown["scheduled_updates_status"], "None");
    assert_eq!(std::fs::read(&wim).expect("read"), original);
    let dp = site.ois(&["dp", "show", &nal, "--json"]).ok().json();
    assert_eq!(dp["dp"]["maintenance_mode"], false, "{dp}");
}

#[test]
fn the_content_library_filters_and_imports_an_uploaded_cab() {
    if !browser_available() || !common::have_or_skip("gcab") {
        return;
    }
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let site = TestSite::new();
    site.sample_packages();
    // A package as a CAB made by gcab, the peer tool: update.toml and its payload.
    let dir = site.path("upload/KB5041234");
    let payload = filler(77, 50 * 1024);
    ois::sample::write_package(
        &dir,
        "id = \"KB5041234\"\ntitle = \"2026-12 Update for Windows 11 (x64)\"\narchitecture = \"x64\"\n[[change]]\nadd = \"payload/kb.dll\"\nat = \"Windows/System32/kb.dll\"\n",
        &[("payload/kb.dll", payload.clone())],
    )
    .expect("package");
    let cab = site.path("upload/KB5041234.cab");
    let made = Command::new("gcab")
        .current_dir(&dir)
        .arg("-c")
        .arg("-z")
        .arg(&cab)
        .args(["update.toml", "payload/kb.dll"])
        .output()
        .expect("gcab");
    assert!(made.status.success(), "{made:?}");
    let bad = site.path("upload/notes.cab");
    std::fs::write(&bad, b"these are notes, not a cabinet").expect("write");
    let server = Server::start(&site, false);

    let report = run_browser(
        &server,
        "library",
        &[
            ("UPLOAD", cab.to_str().expect("utf8")),
            ("BAD_FILE", bad.to_str().expect("utf8")),
        ],
    );
    let seen = &report["seen"];
    assert_eq!(
        seen["all"],
        serde_json::json!(["KB5039999", "KB5040000", "KB5040001", "KB5040002"])
    );
    assert_eq!(seen["filtered"], serde_json::json!(["KB5040002"]));
    assert_eq!(seen["x86"], serde_json::json!([]));
    let refused = seen["refused"].as_str().expect("refusal");
    assert!(
        refused.contains("Import refused") && refused.contains("notes.cab"),
        "{refused}"
    );
    // It names the file the user chose, not where the server kept it while importing.
    assert!(
        !refused.contains("incoming") && !refused.contains("upload-"),
        "{refused}"
    );
    assert!(seen["imported"]
        .as_str()
        .expect("notice")
        .contains("KB5041234"));
    assert!(seen["after"]
        .as_array()
        .expect("rows")
        .contains(&Value::from("KB5041234")));

    // The site: the update is in the content library with the payload's bytes.
    let shown = site
        .ois(&["update", "show", "KB5041234", "--json"])
        .ok()
        .stdout;
    assert!(shown.contains(&common::sha256(&payload)), "{shown}");
    let listed = site.ois(&["update", "list", "--json"]).ok().json();
    assert_eq!(listed.as_array().expect("updates").len(), 5);
}

#[test]
fn leave_provisioning_mode_repairs_an_image_a_dead_run_left_in_it() {
    if !browser_available() {
        return;
    }
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let (site, wim, original) = TestSite::with_golden_image();
    // A run killed mid-way leaves the image in provisioning mode, its owner gone.
    site.ois(&[
        "image",
        "schedule",
        "golden",
        "--updates",
        "KB5040000",
        "--now",
    ])
    .ok();
    let mut scheduler = site.spawn("scheduler", &["scheduler", "run", "--once"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while stage_dirs(&site).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the run never started: {}",
            site.output_of("scheduler")
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    signal(&scheduler, libc::SIGKILL);
    let _ = scheduler.wait();
    assert!(!show(&site, "golden")["provisioning_mode"].is_null());
    let server = Server::start(&site, false);

    let report = run_browser(&server, "repair", &[("IMAGE", "golden")]);
    let seen = &report["seen"];
    assert_eq!(seen["repair_enabled"], true, "{seen}");
    assert!(seen["provisioning_before"]
        .as_str()
        .expect("cell")
        .starts_with("Since"));
    assert_eq!(seen["schedule_enabled_while_stuck"], false);
    assert!(seen["confirm_text"]
        .as_str()
        .expect("confirm")
        .contains("ends that run for good"));
    assert_eq!(seen["still_stuck_after_escape"], true);
    assert_eq!(seen["repair_enabled_after"], false);

    let shown = show(&site, "golden");
    assert!(shown["provisioning_mode"].is_null(), "{shown}");
    assert_eq!(shown["runs"][0]["status"], seen["status_after"], "{shown}");
    assert_eq!(std::fs::read(&wim).expect("read"), original);
    assert!(stage_dirs(&site).is_empty(), "{:?}", stage_dirs(&site));
}
