//! Distribution points through the real binary: directory DPs in temporary directories and a
//! real nginx serving WebDAV on 127.0.0.1.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::nginx::Nginx;
use common::{nal, TestSite};
use serde_json::Value;

/// The catalog's id and SHA-256 of an image.
fn image_version(site: &TestSite, name: &str) -> (i64, String) {
    let v = site.ois(&["image", "show", name, "--json"]).ok().json();
    (
        v["image"]["id"].as_i64().expect("id"),
        v["image"]["sha256"].as_str().expect("sha").to_string(),
    )
}

fn content_file(root: &Path, id: i64, sha: &str) -> PathBuf {
    root.join(format!("ois/images/{id}/{sha}.wim"))
}

/// Every regular file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    common::tree_bytes(dir).into_keys().collect()
}

/// Status rows of `dp show --json`, as (image, sha256, status, error).
fn dp_statuses(site: &TestSite, server: &str) -> Vec<(String, String, String, Option<String>)> {
    let v = site
        .ois(&["dp", "show", &nal(server), "--json"])
        .ok()
        .json();
    v["distributions"]
        .as_array()
        .expect("array")
        .iter()
        .map(|d| {
            (
                d["image"].as_str().expect("image").to_string(),
                d["sha256"].as_str().expect("sha").to_string(),
                d["status"].as_str().expect("status").to_string(),
                d["error"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn status_of(site: &TestSite, server: &str) -> String {
    let rows = dp_statuses(site, server);
    assert_eq!(rows.len(), 1, "{server}: {rows:?}");
    rows[0].2.clone()
}

fn add_dir_dp(site: &TestSite, server: &str, extra: &[&str]) -> PathBuf {
    let root = site
        .path(&format!("dps/{server}/x"))
        .parent()
        .expect("p")
        .to_path_buf();
    let mut args = vec![
        "dp".to_string(),
        "add".into(),
        nal(server),
        "--target".into(),
        root.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    site.ois(&refs).ok();
    root
}

fn locate(site: &TestSite, image: &str) -> Vec<String> {
    let run = site.ois(&["content", "locate", image, "--json"]);
    run.json()
        .as_array()
        .expect("array")
        .iter()
        .map(|l| l["server"].as_str().expect("server").to_string())
        .collect()
}

#[test]
fn maintenance_mode_holds_content_until_it_is_disabled() {
    let (site, wim, original) = TestSite::with_golden_image();
    let (id, sha) = image_version(&site, "golden");
    assert_eq!(sha, common::sha256(&original));
    let dp1 = add_dir_dp(&site, "DP01.contoso.com", &["--boundary-group", "HQ"]);
    let dp2 = add_dir_dp(&site, "DP02.contoso.com", &["--boundary-group", "Branch"]);
    let dp3 = add_dir_dp(&site, "DP03.contoso.com", &["--boundary-group", "HQ"]);

    let run = site
        .ois(&["dp", "set-maintenance-mode", &nal("DP03.contoso.com"), "1"])
        .ok();
    assert_eq!(run.stdout.trim(), "0");
    let list = site.ois(&["dp", "list"]).ok().stdout;
    assert!(list.contains("Maintenance mode"), "{list}");
    let dp3_line = list
        .lines()
        .find(|l| l.starts_with("DP03"))
        .expect("DP03 row");
    assert!(dp3_line.contains(" On "), "{dp3_line}");
    let listed = site.ois(&["dp", "list", "--json"]).ok().json();
    let modes: Vec<bool> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|d| d["maintenance_mode"].as_bool().expect("bool"))
        .collect();
    assert_eq!(modes, [false, false, true]);

    let run = site.ois(&[
        "image",
        "distribute",
        "golden",
        "--dp",
        &nal("DP01.contoso.com"),
        "--dp",
        &nal("DP02.contoso.com"),
        "--dp",
        &nal("DP03.contoso.com"),
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    for dp in [&dp1, &dp2] {
        assert_eq!(
            std::fs::read(content_file(dp, id, &sha)).expect("on DP"),
            original
        );
        let sidecar =
            std::fs::read_to_string(content_file(dp, id, &sha).with_extension("wim.sha256"))
                .expect("sidecar");
        assert!(sidecar.starts_with(&sha), "{sidecar}");
    }
    assert!(files_under(&dp3).is_empty(), "{:?}", files_under(&dp3));
    assert_eq!(status_of(&site, "DP01.contoso.com"), "Installed");
    assert_eq!(status_of(&site, "DP03.contoso.com"), "Pending");
    let shown = site.ois(&["image", "show", "golden"]).ok().stdout;
    assert!(shown.contains("Distribution points"), "{shown}");
    assert!(
        shown
            .lines()
            .any(|l| l.contains("DP03.contoso.com") && l.contains("Pending")),
        "{shown}"
    );

    // Clients are not sent to a DP in maintenance mode, whatever its boundary group.
    assert_eq!(
        locate(&site, "golden"),
        ["DP01.contoso.com", "DP02.contoso.com"]
    );
    let hq = site
        .ois(&[
            "content",
            "locate",
            "golden",
            "--boundary-group",
            "HQ",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(hq.as_array().expect("array").len(), 1);
    let url = hq[0]["location"].as_str().expect("location");
    assert_eq!(std::fs::read(url).expect("location readable"), original);

    // Its properties are read-only, and say why.
    let run = site
        .ois(&[
            "dp",
            "set",
            &nal("DP03.contoso.com"),
            "--boundary-group",
            "Branch",
        ])
        .failed();
    assert!(run.stderr.contains("maintenance mode"), "{}", run.stderr);
    assert!(run.stderr.contains("read-only"), "{}", run.stderr);
    let run = site
        .ois(&[
            "dp",
            "set",
            &nal("DP03.contoso.com"),
            "--target",
            "/elsewhere",
        ])
        .failed();
    assert!(run.stderr.contains("read-only"), "{}", run.stderr);
    let shown = site
        .ois(&["dp", "show", &nal("DP03.contoso.com"), "--json"])
        .ok()
        .json();
    assert_eq!(shown["dp"]["boundary_groups"], serde_json::json!(["HQ"]));
    assert_eq!(shown["dp"]["target"], dp3.display().to_string());
    // Outside maintenance mode the same change goes through.
    site.ois(&[
        "dp",
        "set",
        &nal("DP02.contoso.com"),
        "--description",
        "branch office",
    ])
    .ok();

    // Mode 0: what waited goes out.
    let run = site
        .ois(&["dp", "set-maintenance-mode", &nal("DP03.contoso.com"), "0"])
        .ok();
    assert_eq!(run.stdout.trim(), "0");
    assert_eq!(
        std::fs::read(content_file(&dp3, id, &sha)).expect("on DP03"),
        original
    );
    assert_eq!(status_of(&site, "DP03.contoso.com"), "Installed");
    assert_eq!(locate(&site, "golden").len(), 3);
    // The WIM itself was never touched.
    assert_eq!(std::fs::read(&wim).expect("wim"), original);
}

#[test]
fn enabling_maintenance_mode_warns_when_an_image_would_be_unserved() {
    let (site, _wim, _) = TestSite::with_golden_image();
    add_dir_dp(&site, "DP01", &[]);
    add_dir_dp(&site, "DP02", &[]);
    distribute(&site, &["DP01"]).ok();
    let run = site
        .ois(&["dp", "set-maintenance-mode", &nal("DP02"), "1"])
        .ok();
    assert!(!run.stderr.contains("warning: image"), "{}", run.stderr);
    let run = site
        .ois(&["dp", "set-maintenance-mode", &nal("DP01"), "1"])
        .ok();
    assert_eq!(run.stdout.trim(), "0");
    assert!(
        run.stderr.contains("warning: image golden"),
        "{}",
        run.stderr
    );
    let run = site.ois(&["content", "locate", "golden"]).failed();
    assert!(
        run.stderr.contains("no distribution point"),
        "{}",
        run.stderr
    );
}

#[test]
fn set_maintenance_mode_returns_an_hresult_for_each_failure() {
    let site = TestSite::new();
    add_dir_dp(&site, "DP01", &[]);
    let cases: [(&str, &str, u32); 6] = [
        (r#"["Display=\\DP01\"]MSWNET:\\DP01\"#, "1", 0x8007_0057),
        ("DP01", "1", 0x8007_0057),
        (
            r#"["Display=\\DP99\"]MSWNET:["SMS_SITE=PS1"]\\DP99\"#,
            "1",
            0x8004_1002,
        ),
        (
            r#"["Display=\\DP01\"]MSWNET:["SMS_SITE=PS1"]\\DP01\"#,
            "2",
            0x8004_1008,
        ),
        (
            r#"["Display=\\DP01\"]MSWNET:["SMS_SITE=PS1"]\\DP01\"#,
            "on",
            0x8004_1008,
        ),
        (
            r#"["Display=\\DP01\"]MSWNET:["SMS_SITE=PS1"]\\DP01\"#,
            "-1",
            0x8004_1008,
        ),
    ];
    for (path, mode, code) in cases {
        let run = site
            .ois(&["dp", "set-maintenance-mode", path, mode])
            .failed();
        assert_eq!(
            run.stdout.trim(),
            code.to_string(),
            "{path} {mode}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!("0x{code:08X}")),
            "{path} {mode}: {}",
            run.stderr
        );
    }
    // Nothing changed, and success is 0 (also when the DP already is in that mode).
    for mode in ["1", "1", "0", "0"] {
        let run = site
            .ois(&["dp", "set-maintenance-mode", &nal("DP01"), mode])
            .ok();
        assert_eq!(run.stdout.trim(), "0");
    }
    // The library call answers the same.
    let lib_site = ois::site::Site::open(&site.root(), ois::SCHEMA).expect("site");
    assert_eq!(
        ois::distribution::set_maintenance_mode(&lib_site, &nal("DP01"), 1),
        0
    );
    assert_eq!(
        ois::distribution::set_maintenance_mode(&lib_site, &nal("DP01"), 7),
        0x8004_1008
    );
    assert_eq!(
        ois::distribution::set_maintenance_mode(&lib_site, "nonsense", 1),
        0x8007_0057
    );
}

#[test]
fn malformed_nal_paths_and_targets_are_refused_clearly() {
    let site = TestSite::new();
    let run = site
        .ois(&["dp", "add", r#"\\DP01\"#, "--target", "/tmp/x"])
        .failed();
    assert!(run.stderr.contains("malformed NAL path"), "{}", run.stderr);
    let run = site
        .ois(&["dp", "add", &nal("DP01"), "--target", "relative/dir"])
        .failed();
    assert!(run.stderr.contains("absolute path"), "{}", run.stderr);
    let run = site
        .ois(&[
            "dp",
            "add",
            &nal("DP01"),
            "--target",
            "http://u:p@dp01/content",
        ])
        .failed();
    assert!(run.stderr.contains("--secret"), "{}", run.stderr);
    add_dir_dp(&site, "DP01", &[]);
    let run = site
        .ois(&["dp", "add", &nal("dp01"), "--target", "/tmp/y"])
        .failed();
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    site.ois(&["dp", "remove", &nal("DP01")]).ok();
    assert_eq!(
        site.ois(&["dp", "list", "--json"]).ok().json(),
        serde_json::json!([])
    );
}

/// Waits for a file whose name ends with `suffix` under `dir`.
fn wait_for_file(dir: &Path, suffix: &str, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(f) = files_under(dir).into_iter().find(|f| f.ends_with(suffix)) {
            return Some(f);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn webdav_dp_stopped_mid_transfer_fails_alone_and_a_retry_completes() {
    let (site, _wim, original) = TestSite::with_golden_image();
    let (id, sha) = image_version(&site, "golden");
    // Reading back what landed, to hash it, takes about five seconds at this rate: the window
    // in which nginx is stopped.
    let rate = (original.len() as u64 / 5).max(1024);
    let mut nginx = Nginx::start(rate, None);
    let dp1 = add_dir_dp(&site, "DP01", &[]);
    let dp2 = add_dir_dp(&site, "DP02", &[]);
    site.ois(&[
        "dp",
        "add",
        &nal("LINUXDP"),
        "--target",
        &nginx.url("content"),
    ])
    .ok();

    let bin = env!("CARGO_BIN_EXE_ois");
    let root = site.root();
    let args = [
        "image".to_string(),
        "distribute".into(),
        "golden".into(),
        "--dp".into(),
        nal("DP01"),
        "--dp".into(),
        nal("LINUXDP"),
        "--dp".into(),
        nal("DP02"),
        "--json".into(),
    ];
    let child = std::process::Command::new(bin)
        .arg("--site")
        .arg(&root)
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ois");
    let www = nginx.www();
    let partial = wait_for_file(&www, ".wim.partial", Duration::from_secs(30))
        .expect("the upload reached the temporary name");
    assert!(
        partial.contains(&format!(".{sha}.wim.partial")),
        "{partial}"
    );
    std::thread::sleep(Duration::from_millis(500));
    nginx.stop();
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{stdout}");
    let outcomes: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(outcomes.as_array().expect("array").len(), 3);

    // Only the WebDAV DP failed; the others have the image.
    for dp in [&dp1, &dp2] {
        assert_eq!(
            std::fs::read(content_file(dp, id, &sha)).expect("on DP"),
            original
        );
    }
    assert_eq!(status_of(&site, "DP01"), "Installed");
    assert_eq!(status_of(&site, "DP02"), "Installed");
    let rows = dp_statuses(&site, "LINUXDP");
    assert_eq!(rows[0].2, "Failed", "{rows:?}");
    assert!(
        rows[0].3.as_deref().is_some_and(|e| !e.is_empty()),
        "{rows:?}"
    );
    // No client can see a partial image: nothing under the final name.
    let final_rel = format!("content/ois/images/{id}/{sha}.wim");
    assert!(!www.join(&final_rel).exists(), "{:?}", files_under(&www));
    assert!(!locate(&site, "golden").contains(&"LINUXDP".to_string()));
    let shown = site.ois(&["image", "show", "golden"]).ok().stdout;
    assert!(
        shown
            .lines()
            .any(|l| l.contains("LINUXDP") && l.contains("Failed")),
        "{shown}"
    );

    // nginx back: the retry completes, the other DPs are not sent the image again.
    nginx.restart();
    let before = std::fs::metadata(content_file(&dp1, id, &sha))
        .expect("meta")
        .modified()
        .ok();
    let run = site.ois(&["image", "distribute", "golden", "--json"]).ok();
    let outcomes = run.json();
    let action = |server: &str| {
        outcomes
            .as_array()
            .expect("array")
            .iter()
            .find(|o| o["dp"].as_str().is_some_and(|d| d.contains(server)))
            .map(|o| o["action"].as_str().expect("action").to_string())
            .expect("outcome")
    };
    assert_eq!(action("LINUXDP"), "sent");
    assert_eq!(action("DP01"), "already installed");
    assert_eq!(
        std::fs::metadata(content_file(&dp1, id, &sha))
            .expect("meta")
            .modified()
            .ok(),
        before
    );
    assert_eq!(
        std::fs::read(www.join(&final_rel)).expect("on nginx"),
        original
    );
    assert!(
        !files_under(&www).iter().any(|f| f.ends_with(".partial")),
        "{:?}",
        files_under(&www)
    );
    assert_eq!(status_of(&site, "LINUXDP"), "Installed");
    // What a client downloads from the location it is given is the image.
    let locations = site
        .ois(&["content", "locate", "golden", "--json"])
        .ok()
        .json();
    let linux = locations
        .as_array()
        .expect("array")
        .iter()
        .find(|l| l["server"] == "LINUXDP")
        .expect("LINUXDP located");
    assert_eq!(
        linux["location"].as_str().expect("url"),
        nginx.url(&final_rel)
    );
    // Content validation over WebDAV agrees.
    let run = site
        .ois(&["dp", "validate", &nal("LINUXDP"), "--json"])
        .ok();
    assert_eq!(run.json()[0]["ok"], true);
}

#[test]
fn webdav_credentials_are_used_and_never_shown() {
    let (site, _wim, original) = TestSite::with_golden_image();
    let (id, sha) = image_version(&site, "golden");
    let password = "s3cr3t-Pa55word";
    let nginx = Nginx::start(0, Some(("ois", password)));
    // Without credentials the server refuses.
    site.ois(&["dp", "add", &nal("NOAUTH"), "--target", &nginx.url("a")])
        .ok();
    let run = distribute(&site, &["NOAUTH"]).failed();
    assert!(run.stdout.contains("Failed"), "{}", run.all_output());

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ois"))
        .arg("--site")
        .arg(site.root())
        .args([
            "dp",
            "add",
            &nal("AUTH"),
            "--target",
            &nginx.url("b"),
            "--secret",
            "username=DP_USER",
            "--secret",
            "password=DP_PASSWORD",
        ])
        .env("DP_USER", "ois")
        .env("DP_PASSWORD", password)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    site.ois(&["-vv", "image", "distribute", "golden", "--dp", &nal("AUTH")])
        .ok();
    assert_eq!(
        std::fs::read(nginx.www().join(format!("b/ois/images/{id}/{sha}.wim"))).expect("on DP"),
        original
    );
    let mut seen = String::new();
    for args in [
        vec!["dp", "show", &nal("AUTH") as &str],
        vec!["dp", "show", &nal("AUTH"), "--json"],
        vec!["dp", "list", "--json"],
        vec!["image", "show", "golden", "--json"],
        vec!["-vv", "dp", "validate"],
    ] {
        let run = site.ois(&args).ok();
        seen.push_str(&run.all_output());
    }
    assert!(
        seen.contains("password"),
        "the secret's name is shown: {seen}"
    );
    for f in files_under(&site.root().join("logs")) {
        seen.push_str(
            &std::fs::read_to_string(site.root().join("logs").join(f)).unwrap_or_default(),
        );
    }
    assert!(!seen.contains(password), "the secret leaked: {seen}");
}

#[test]
fn validation_catches_a_corrupted_file_on_a_dp_in_maintenance_mode() {
    let (site, _wim, original) = TestSite::with_golden_image();
    let (id, sha) = image_version(&site, "golden");
    let dp1 = add_dir_dp(&site, "DP01", &[]);
    add_dir_dp(&site, "DP02", &[]);
    distribute(&site, &["DP01", "DP02"]).ok();
    site.ois(&["dp", "set-maintenance-mode", &nal("DP01"), "1"])
        .ok();
    let file = content_file(&dp1, id, &sha);
    let mut bytes = std::fs::read(&file).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, &bytes).expect("corrupt");

    let run = site.ois(&["dp", "validate", "--json"]);
    assert_eq!(run.code, 1, "{}", run.all_output());
    let results = run.json();
    let bad: Vec<&Value> = results
        .as_array()
        .expect("array")
        .iter()
        .filter(|r| r["ok"] == false)
        .collect();
    assert_eq!(bad.len(), 1, "{results}");
    assert!(bad[0]["dp"].as_str().expect("dp").contains("DP01"));
    let problem = bad[0]["problem"].as_str().expect("problem");
    assert!(
        problem.contains(&sha) && problem.contains("SHA-256"),
        "{problem}"
    );
    let rows = dp_statuses(&site, "DP01");
    assert_eq!(rows[0].2, "Failed");
    assert!(
        rows[0]
            .3
            .as_deref()
            .expect("error")
            .contains("content validation"),
        "{rows:?}"
    );
    assert_eq!(status_of(&site, "DP02"), "Installed");
    // Still in maintenance mode: nothing is sent to repair it, even when retries are due.
    site.ois(&["dp", "retry"]).ok();
    assert_eq!(std::fs::read(&file).expect("read"), bytes);
    // Mode 0 sends the good content again.
    site.ois(&["dp", "set-maintenance-mode", &nal("DP01"), "0"])
        .ok();
    assert_eq!(std::fs::read(&file).expect("read"), original);
    assert_eq!(status_of(&site, "DP01"), "Installed");
    let run = site.ois(&["dp", "validate"]).ok();
    assert!(run.stdout.contains("2 checked, 0 failed"), "{}", run.stdout);
}

#[test]
fn serviced_image_goes_to_its_dps_and_the_old_version_is_removed_after() {
    let (site, wim, original) = TestSite::with_golden_image();
    let (id, old_sha) = image_version(&site, "golden");
    let dp1 = add_dir_dp(&site, "DP01", &[]);
    let dp2 = add_dir_dp(&site, "DP02", &[]);
    distribute(&site, &["DP01", "DP02"]).ok();
    site.ois(&["dp", "set-maintenance-mode", &nal("DP02"), "1"])
        .ok();
    let run = site
        .ois(&["service", "golden", "--all-applicable", "--update-dps"])
        .ok();
    assert!(run.stdout.contains("DP01"), "{}", run.stdout);
    let serviced = std::fs::read(&wim).expect("wim");
    assert_ne!(serviced, original);
    let (_, new_sha) = image_version(&site, "golden");
    assert_eq!(new_sha, common::sha256(&serviced));
    // DP01 has the new version only; DP02 (maintenance) keeps serving nothing new but keeps
    // the old version until it gets the new one.
    assert_eq!(
        std::fs::read(content_file(&dp1, id, &new_sha)).expect("new"),
        serviced
    );
    assert!(!content_file(&dp1, id, &old_sha).exists());
    assert_eq!(
        std::fs::read(content_file(&dp2, id, &old_sha)).expect("old"),
        original
    );
    assert!(!content_file(&dp2, id, &new_sha).exists());
    let rows = dp_statuses(&site, "DP02");
    let status = |sha: &str| rows.iter().find(|r| r.1 == sha).map(|r| r.2.clone());
    assert_eq!(status(&old_sha).as_deref(), Some("Installed"));
    assert_eq!(status(&new_sha).as_deref(), Some("Pending"));
    site.ois(&["dp", "set-maintenance-mode", &nal("DP02"), "0"])
        .ok();
    assert_eq!(
        std::fs::read(content_file(&dp2, id, &new_sha)).expect("new"),
        serviced
    );
    assert!(!content_file(&dp2, id, &old_sha).exists());
    assert_eq!(dp_statuses(&site, "DP02").len(), 1);
}

#[test]
fn identical_content_already_on_a_dp_is_not_sent_again() {
    let (site, _wim, original) = TestSite::with_golden_image();
    let (id, sha) = image_version(&site, "golden");
    let dp = add_dir_dp(&site, "DP01", &[]);
    // Content copied by hand (or by an earlier site): same bytes under the final name.
    let file = content_file(&dp, id, &sha);
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    std::fs::write(&file, &original).expect("seed");
    let run = site
        .ois(&[
            "image",
            "distribute",
            "golden",
            "--dp",
            &nal("DP01"),
            "--json",
        ])
        .ok();
    assert_eq!(run.json()[0]["action"], "identical content found");
    assert_eq!(run.json()[0]["bytes_sent"], 0);
    assert_eq!(status_of(&site, "DP01"), "Installed");
}

/// `ois image distribute golden` to the test DPs named `servers`.
fn distribute(site: &TestSite, servers: &[&str]) -> common::Run {
    let nals: Vec<String> = servers.iter().map(|s| nal(s)).collect();
    let mut args = vec!["image", "distribute", "golden"];
    for n in &nals {
        args.extend(["--dp", n.as_str()]);
    }
    site.ois(&args)
}

fn site_db(site: &TestSite) -> rusqlite::Connection {
    rusqlite::Connection::open(site.root().join("site.db")).expect("db")
}

#[test]
fn layout_upgrade_applies_to_a_dp_in_maintenance_mode() {
    let (site, _wim, original) = TestSite::with_golden_image();
    let (id, sha) = image_version(&site, "golden");
    let dp = add_dir_dp(&site, "DP01", &[]);
    distribute(&site, &["DP01"]).ok();
    // Make it a DP written by an older ois: layout 1 had no checksum files and no marker.
    let file = content_file(&dp, id, &sha);
    std::fs::remove_file(file.with_extension("wim.sha256")).expect("rm sidecar");
    std::fs::remove_file(dp.join("ois/layout")).expect("rm marker");
    site_db(&site)
        .execute("UPDATE distribution_points SET layout_version = 1", [])
        .expect("downgrade");
    site.ois(&["dp", "set-maintenance-mode", &nal("DP01"), "1"])
        .ok();
    let run = site.ois(&["dp", "upgrade"]).ok();
    assert!(run.stdout.contains("layout 1 -> 2"), "{}", run.stdout);
    assert_eq!(
        std::fs::read_to_string(dp.join("ois/layout")).expect("marker"),
        "2\n"
    );
    let sidecar = std::fs::read_to_string(file.with_extension("wim.sha256")).expect("sidecar");
    assert_eq!(sidecar, format!("{sha}  {sha}.wim\n"));
    assert_eq!(std::fs::read(&file).expect("wim"), original);
    let shown = site
        .ois(&["dp", "show", &nal("DP01"), "--json"])
        .ok()
        .json();
    assert_eq!(shown["dp"]["layout_version"], 2);
    assert_eq!(shown["dp"]["maintenance_mode"], true);
    let run = site.ois(&["dp", "upgrade"]).ok();
    assert!(
        run.stdout.contains("current content layout"),
        "{}",
        run.stdout
    );
}

#[test]
fn an_image_in_provisioning_mode_is_not_distributed() {
    let (site, _wim, _) = TestSite::with_golden_image();
    let (id, _) = image_version(&site, "golden");
    let dp = add_dir_dp(&site, "DP01", &[]);
    site_db(&site)
        .execute(
            "INSERT INTO provisioning (image_id, since, owner_pid, owner_host) VALUES (?1, '2026-01-01T00:00:00Z', 1, 'elsewhere')",
            [id],
        )
        .expect("provisioning");
    let run = distribute(&site, &["DP01"]).failed();
    assert!(run.stderr.contains("provisioning mode"), "{}", run.stderr);
    assert!(files_under(&dp).is_empty());
}

#[test]
fn failed_transfers_are_retried_once_their_backoff_has_passed() {
    let (site, _wim, original) = TestSite::with_golden_image();
    let (id, sha) = image_version(&site, "golden");
    // A target under a regular file cannot be written.
    let blocker = site.path("blocker");
    std::fs::write(&blocker, b"a file, not a directory").expect("file");
    let bad = blocker.join("dp");
    site.ois(&[
        "dp",
        "add",
        &nal("DP01"),
        "--target",
        bad.to_str().expect("utf8"),
    ])
    .ok();
    let dp2 = add_dir_dp(&site, "DP02", &[]);
    site.ois(&[
        "image",
        "distribute",
        "golden",
        "--dp",
        &nal("DP01"),
        "--dp",
        &nal("DP02"),
    ])
    .failed();
    assert_eq!(status_of(&site, "DP01"), "Failed");
    assert_eq!(
        std::fs::read(content_file(&dp2, id, &sha)).expect("DP02"),
        original
    );
    let shown = site
        .ois(&["dp", "show", &nal("DP01"), "--json"])
        .ok()
        .json();
    let row = &shown["distributions"][0];
    assert_eq!(row["attempts"], 1);
    let next = row["next_attempt_at"].as_str().expect("next attempt");
    assert!(next > chrono::Utc::now().to_rfc3339().as_str(), "{next}");

    // Not due yet: nothing is tried.
    let run = site.ois(&["dp", "retry", "--json"]).ok();
    assert_eq!(run.json(), serde_json::json!([]));
    // The admin fixes the target; once the backoff has passed, the retry goes out.
    let fixed = add_dir_dp(&site, "SCRATCH", &[]);
    site.ois(&["dp", "remove", &nal("SCRATCH")]).ok();
    site.ois(&[
        "dp",
        "set",
        &nal("DP01"),
        "--target",
        fixed.to_str().expect("utf8"),
    ])
    .ok();
    site_db(&site)
        .execute(
            "UPDATE distributions SET next_attempt_at = '2000-01-01T00:00:00Z' WHERE status = 'Failed'",
            [],
        )
        .expect("backoff passed");
    let run = site.ois(&["dp", "retry", "--json"]).ok();
    let outcomes = run.json();
    assert_eq!(outcomes.as_array().expect("array").len(), 1, "{outcomes}");
    assert_eq!(outcomes[0]["action"], "sent");
    assert_eq!(
        std::fs::read(content_file(&fixed, id, &sha)).expect("DP01"),
        original
    );
    assert_eq!(status_of(&site, "DP01"), "Installed");
}

/// Bytes no compressor shrinks (xorshift), so the WIM is as large as asked.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn an_image_larger_than_one_upload_chunk_reaches_a_webdav_dp_whole() {
    let site = TestSite::new();
    let tree = site.path("big/tree/Windows/System32/x");
    let tree = tree
        .parent()
        .expect("p")
        .parent()
        .expect("p")
        .parent()
        .expect("p");
    ois::sample::write_tree(
        tree,
        &[("Windows/System32/payload.bin", noise(20 << 20, 0x5eed))],
    )
    .expect("tree");
    let wim = site.path("big/big.wim");
    ois::sample::build_wim(
        &wim,
        ois::wim::Compression::None,
        &[ois::sample::IndexSpec {
            name: "Big",
            edition: "Enterprise",
            architecture: ois::library::Architecture::X64,
            build: 22631,
            tree,
        }],
    )
    .expect("wim");
    let bytes = std::fs::read(&wim).expect("read");
    assert!(bytes.len() > 20 << 20);
    site.ois(&[
        "image",
        "import",
        wim.to_str().expect("utf8"),
        "--name",
        "big",
    ])
    .ok();
    let (id, sha) = image_version(&site, "big");
    let nginx = Nginx::start(0, None);
    site.ois(&["dp", "add", &nal("LINUXDP"), "--target", &nginx.url("/")])
        .ok();
    let dir = add_dir_dp(&site, "DP01", &[]);
    site.ois(&[
        "image",
        "distribute",
        "big",
        "--dp",
        &nal("LINUXDP"),
        "--dp",
        &nal("DP01"),
    ])
    .ok();
    assert_eq!(
        std::fs::read(nginx.www().join(format!("ois/images/{id}/{sha}.wim"))).expect("on DP"),
        bytes
    );
    assert_eq!(
        std::fs::read(content_file(&dir, id, &sha)).expect("on DP01"),
        bytes
    );
    let run = site.ois(&["dp", "validate", "--json"]).ok();
    assert!(run
        .json()
        .as_array()
        .expect("array")
        .iter()
        .all(|r| r["ok"] == true));
}
