//! The site server over real HTTP: `ois serve` as a child process on a free loopback port (or
//! 0.0.0.0 with TLS), driven with a blocking HTTP client.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{nal, wait_for, TestSite};
use reqwest::blocking::{Client, Response};
use reqwest::Method;
use serde_json::{json, Value};

/// A running `ois serve`, killed when dropped. Every answer's body is kept, so a test can
/// check that no secret ever appears in one.
struct Server {
    child: Child,
    base: String,
    client: Client,
    /// `Authorization: Bearer` for every request, when set.
    token: Option<String>,
    /// `X-CSRF-Token` for changes, when set.
    csrf: Option<String>,
    bodies: Arc<Mutex<Vec<String>>>,
}

struct Answer {
    status: u16,
    content_type: String,
    body: Value,
    text: String,
}

impl Server {
    fn start(site: &TestSite, name: &str, args: &[&str]) -> Server {
        Server::start_with(site, name, args, None)
    }

    fn start_with(site: &TestSite, name: &str, args: &[&str], ca: Option<&Path>) -> Server {
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        if !args.contains(&"--listen") {
            all.extend_from_slice(&["--listen", "127.0.0.1:0"]);
        }
        let child = site.spawn(name, &all);
        let out = site.dir.path().join(format!("{name}.out"));
        let mut base = String::new();
        wait_for(60, "the server to listen", || {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            match text.lines().find_map(|l| l.strip_prefix("listening on ")) {
                Some(url) => {
                    base = url.trim().to_string();
                    true
                }
                None => false,
            }
        });
        // Off loopback it listens on 0.0.0.0; connect through 127.0.0.1.
        let base = base.replace("0.0.0.0", "127.0.0.1");
        let mut builder = Client::builder().timeout(None::<Duration>);
        if let Some(ca) = ca {
            let pem = std::fs::read(ca).expect("CA");
            builder =
                builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA pem"));
        }
        Server {
            child,
            base,
            client: builder.build().expect("client"),
            token: None,
            csrf: None,
            bodies: Arc::default(),
        }
    }

    fn request(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(c) = &self.csrf {
            req = req.header("X-CSRF-Token", c);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.answer(req.send().expect("request"))
    }

    fn answer(&self, response: Response) -> Answer {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = response.text().expect("body");
        self.bodies.lock().expect("bodies").push(text.clone());
        Answer {
            status,
            content_type,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    fn get(&self, path: &str) -> Answer {
        self.request(Method::GET, path, None)
    }

    fn send(&self, method: Method, path: &str, body: Value) -> Answer {
        self.request(method, path, Some(body))
    }

    /// On loopback without accounts: the local admin's CSRF token, from whoami.
    fn local_admin(mut self) -> Server {
        let who = self.get("/api/v1/whoami");
        assert_eq!(who.status, 200, "{}", who.text);
        assert_eq!(who.body["name"], "local admin");
        assert_eq!(who.body["role"], "admin");
        self.csrf = who.body["csrf_token"].as_str().map(str::to_string);
        self
    }

    fn stop(&mut self) {
        // SIGTERM: the server's own clean stop.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("the server did not stop within 30 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn image_id(server: &Server, name: &str) -> i64 {
    let images = server.get("/api/v1/images");
    images
        .body
        .as_array()
        .expect("images")
        .iter()
        .find(|i| i["name"] == name)
        .and_then(|i| i["id"].as_i64())
        .unwrap_or_else(|| panic!("no image {name}: {}", images.text))
}

/// Reads the event stream on a thread until `until` appears or 120 s pass; the events seen.
fn collect_events(server: &Server, until: &'static str) -> std::thread::JoinHandle<Vec<String>> {
    let response = server
        .client
        .get(format!("{}/api/v1/events", server.base))
        .header("X-CSRF-Token", server.csrf.clone().unwrap_or_default())
        .send()
        .expect("events");
    assert_eq!(response.status().as_u16(), 200);
    assert!(response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream")));
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(response).lines() {
            let Ok(line) = line else { break };
            if let Some(data) = line.strip_prefix("data: ") {
                seen.push(data.to_string());
                if data.contains(until) {
                    break;
                }
            }
        }
        seen
    })
}

#[test]
fn scheduled_updates_run_in_the_server_with_live_progress_and_show_in_the_api() {
    let (site, _wim, _) = TestSite::with_golden_image();
    let server = Server::start(&site, "serve", &["--scheduler"]).local_admin();
    let id = image_id(&server, "golden");

    // The console's columns.
    let images = server.get("/api/v1/images");
    let row = &images.body[0];
    for key in [
        "scheduled_updates_date",
        "scheduled_updates_status",
        "provisioning_mode",
        "size_bytes",
        "last_serviced",
    ] {
        assert!(row.get(key).is_some(), "{key} missing: {}", images.text);
    }
    assert_eq!(row["scheduled_updates_status"], "None");
    assert_eq!(row["provisioning_mode"], false);

    // Applicable updates, with the filter and the architecture.
    let applicable = server.get(&format!("/api/v1/images/{id}/applicable?arch=x64"));
    let ids: Vec<&str> = applicable
        .body
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|u| u["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"KB5040001") && ids.contains(&"KB5040000"),
        "{ids:?}"
    );
    let filtered = server.get(&format!(
        "/api/v1/images/{id}/applicable?filter=KB5040001&arch=x64"
    ));
    assert_eq!(
        filtered.body.as_array().map(Vec::len),
        Some(1),
        "{}",
        filtered.text
    );
    let arm = server.get(&format!("/api/v1/images/{id}/applicable?arch=arm64"));
    assert_eq!(arm.body.as_array().map(Vec::len), Some(0), "{}", arm.text);

    let events = collect_events(&server, "run_finished");
    let scheduled = server.send(
        Method::PUT,
        &format!("/api/v1/images/{id}/schedule"),
        json!({"all_applicable": true, "kind": "file", "now": true}),
    );
    assert_eq!(scheduled.status, 200, "{}", scheduled.text);

    wait_for(120, "the scheduled run to succeed", || {
        server.get("/api/v1/images").body[0]["scheduled_updates_status"] == "Successful"
    });
    let seen = events.join().expect("events thread");
    let kinds: Vec<String> = seen
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["event"].as_str().map(str::to_string))
        .collect();
    assert!(kinds.iter().any(|k| k == "run_started"), "{seen:?}");
    assert!(kinds.iter().any(|k| k == "run_step"), "{seen:?}");
    assert!(kinds.iter().any(|k| k == "run_progress"), "{seen:?}");
    assert!(
        seen.iter()
            .any(|d| d.contains("run_finished") && d.contains("Successful")),
        "{seen:?}"
    );

    let view = server.get(&format!("/api/v1/images/{id}"));
    let installed: Vec<String> = view.body["installed_updates"][0]["updates"]
        .as_array()
        .expect("installed")
        .iter()
        .filter_map(|u| u["id"].as_str().map(str::to_string))
        .collect();
    assert!(installed.iter().any(|u| u == "KB5040001"), "{}", view.text);
    assert!(installed.iter().any(|u| u == "KB5040000"), "{}", view.text);

    // The run, its log as CMTrace rows, the dashboard and the audit log.
    let runs = server.get(&format!("/api/v1/images/{id}/runs"));
    let run = runs.body[0]["id"].as_i64().expect("run id");
    assert_eq!(runs.body[0]["status"], "Successful");
    let log = server.get(&format!("/api/v1/images/{id}/runs/{run}/log"));
    let lines = log.body.as_array().expect("log lines");
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("KB5040001"))),
        "{}",
        log.text
    );
    assert!(lines
        .iter()
        .all(|l| ["info", "warning", "error"].contains(&l["severity"].as_str().unwrap_or(""))));
    let dashboard = server.get("/api/v1/dashboard");
    assert_eq!(
        dashboard.body["runs_by_status"]["Successful"], 1,
        "{}",
        dashboard.text
    );
    assert_eq!(
        dashboard.body["images"][0]["runs"][0]["status"],
        "Successful"
    );
    let audit = server.get("/api/v1/audit");
    assert_eq!(audit.body[0]["who"], "local admin", "{}", audit.text);
    assert_eq!(audit.body[0]["action"], "schedule updates");
    assert_eq!(audit.body[0]["result"], "succeeded");
    let log =
        std::fs::read_to_string(site.root().join("logs/OfflineServicingMgr.log")).expect("log");
    assert!(
        log.contains("audit: local admin schedule updates image"),
        "{log}"
    );
}

#[test]
fn cancel_and_repair_through_the_api() {
    let (site, _wim, _) = TestSite::with_golden_image();
    let server = Server::start(&site, "serve", &[]).local_admin();
    let id = image_id(&server, "golden");
    // Nothing scheduled, nothing running: a conflict, as a problem with a hint.
    let nothing = server.send(
        Method::POST,
        &format!("/api/v1/images/{id}/cancel"),
        json!({}),
    );
    assert_eq!(nothing.status, 409, "{}", nothing.text);
    assert_eq!(nothing.content_type, "application/problem+json");
    assert!(nothing.body["detail"]
        .as_str()
        .unwrap_or("")
        .contains("nothing to cancel"));
    // A pending scheduled run is dropped and recorded Canceled.
    server.send(
        Method::PUT,
        &format!("/api/v1/images/{id}/schedule"),
        json!({"updates": ["KB5040000"], "at": "2099-01-01 02:00"}),
    );
    assert_eq!(
        server.get("/api/v1/images").body[0]["scheduled_updates_status"],
        "Scheduled"
    );
    let canceled = server.send(
        Method::POST,
        &format!("/api/v1/images/{id}/cancel"),
        json!({}),
    );
    assert_eq!(canceled.status, 200, "{}", canceled.text);
    assert_eq!(canceled.body["canceled"], "scheduled");
    assert_eq!(
        server.get("/api/v1/images").body[0]["scheduled_updates_status"],
        "Canceled"
    );
    // The repair of an image not in provisioning mode does nothing and says so.
    let repair = server.send(
        Method::POST,
        &format!("/api/v1/images/{id}/repair"),
        json!({}),
    );
    assert_eq!(repair.status, 200, "{}", repair.text);
    assert_eq!(repair.body["repaired"], false);
}

/// DNS rebinding: a page served from a name that now resolves to 127.0.0.1 is same-origin
/// with the server. Without accounts, only requests addressed to a loopback name are the
/// local admin, so such a page can neither read the CSRF token nor change anything.
#[test]
fn without_accounts_only_requests_to_a_loopback_name_are_the_local_admin() {
    let site = TestSite::new();
    let server = Server::start(&site, "serve", &[]);
    let whoami = |host: &str| {
        server
            .client
            .get(format!("{}/api/v1/whoami", server.base))
            .header("Host", host)
            .send()
            .expect("request")
    };
    let rebound = whoami("attacker.example:8530");
    assert_eq!(rebound.status().as_u16(), 401);
    let text = rebound.text().expect("body");
    assert!(!text.contains("csrf_token"), "{text}");
    assert!(text.contains("addressed to localhost"), "{text}");
    for host in ["localhost:8530", "127.0.0.1:8530", "[::1]:8530"] {
        let local = whoami(host);
        assert_eq!(local.status().as_u16(), 200, "{host}");
        let body: Value = local.json().expect("json");
        assert_eq!(body["name"], "local admin", "{host}");
    }
}

#[test]
fn problems_are_problem_json_with_a_hint_and_the_openapi_document_lists_the_routes() {
    let site = TestSite::new();
    let server = Server::start(&site, "serve", &[]).local_admin();
    for (method, path, body, status) in [
        (Method::GET, "/api/v1/images/42", None, 404),
        (Method::GET, "/api/v1/images/golden", None, 404),
        (Method::GET, "/api/v1/dps/7", None, 404),
        (Method::GET, "/api/v1/updates/KB404", None, 404),
        (Method::GET, "/api/v1/nowhere", None, 404),
        (Method::GET, "/api/v1/updates?arch=sparc", None, 400),
        (
            Method::POST,
            "/api/v1/images",
            Some(json!({"path": "/nowhere/x.wim"})),
            400,
        ),
        (Method::POST, "/api/v1/images", Some(json!({"wim": 1})), 400),
        (
            Method::PUT,
            "/api/v1/images/1/schedule",
            Some(json!({"now": true})),
            400,
        ),
    ] {
        let a = server.request(method.clone(), path, body);
        assert_eq!(a.status, status, "{method} {path}: {}", a.text);
        assert_eq!(
            a.content_type, "application/problem+json",
            "{method} {path}"
        );
        assert_eq!(a.body["status"], status);
        assert!(
            a.body["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("urn:ois:problem:")),
            "{}",
            a.text
        );
        assert!(
            a.body["title"].is_string() && a.body["detail"].is_string(),
            "{}",
            a.text
        );
        assert!(a.body.get("hint").is_some(), "{}", a.text);
    }
    // The engine's typed hint: in words for people, as data for a client that offers the step.
    let missing = server.get("/api/v1/images/42");
    assert_eq!(missing.body["detail"], "no image \"42\" in the catalog");
    assert_eq!(missing.body["hint"], "See the images in the catalog.");
    assert_eq!(missing.body["action"], json!({"hint": "list_images"}));
    // Images are named as the CLI names them: by id or by name.
    assert_eq!(server.get("/api/v1/images/no-such-name").status, 404);

    let doc = server.get("/api/v1/openapi.json");
    assert_eq!(doc.status, 200);
    assert!(doc.body["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.")));
    let paths = doc.body["paths"].as_object().expect("paths");
    for route in [
        "/api/v1/images",
        "/api/v1/images/{id}/schedule",
        "/api/v1/images/{id}/cancel",
        "/api/v1/images/{id}/runs/{run}/log",
        "/api/v1/updates",
        "/api/v1/dps/{id}/maintenance-mode",
        "/api/v1/events",
        "/AdminService/wmi/SMS_DistributionPointInfo.SetDPMaintenanceMode",
    ] {
        assert!(
            paths.contains_key(route),
            "{route} not in {:?}",
            paths.keys()
        );
    }
    assert!(paths["/api/v1/images/{id}/schedule"].get("put").is_some());
}

fn add_dp(server: &Server, site: &TestSite, name: &str, secret: &str) -> i64 {
    let target = site
        .path(&format!("dps/{name}/x"))
        .parent()
        .expect("dir")
        .to_path_buf();
    let added = server.send(
        Method::POST,
        "/api/v1/dps",
        json!({"nal_path": nal(name), "target": target, "description": "first floor",
               "boundary_groups": ["HQ"], "settings": {"region": "eu"}, "secrets": {"password": secret}}),
    );
    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!(added.body["secrets"], json!(["password"]));
    added.body["id"].as_i64().expect("dp id")
}

#[test]
fn maintenance_mode_through_the_api_and_the_adminservice_answers_as_the_cli() {
    let site = TestSite::new();
    let server = Server::start(&site, "serve", &[]).local_admin();
    const SECRET: &str = "s3cret-Value-that-must-never-show";
    let dp = add_dp(&server, &site, "DP01", SECRET);

    // The CLI's cases (tests/distribution.rs), with route names in any case.
    let cases: [(&str, Value, u32); 7] = [
        (
            r#"["Display=\\DP01\"]MSWNET:\\DP01\"#,
            json!(1),
            0x8007_0057,
        ),
        ("DP01", json!(1), 0x8007_0057),
        (
            r#"["Display=\\DP99\"]MSWNET:["SMS_SITE=PS1"]\\DP99\"#,
            json!(1),
            0x8004_1002,
        ),
        (
            r#"["Display=\\DP01\"]MSWNET:["SMS_SITE=PS1"]\\DP01\"#,
            json!(2),
            0x8004_1008,
        ),
        (
            r#"["Display=\\DP01\"]MSWNET:["SMS_SITE=PS1"]\\DP01\"#,
            json!("on"),
            0x8004_1008,
        ),
        (
            r#"["Display=\\DP01\"]MSWNET:["SMS_SITE=PS1"]\\DP01\"#,
            json!(-1),
            0x8004_1008,
        ),
        ("DP01", json!("on"), 0x8007_0057),
    ];
    let routes = [
        "/AdminService/wmi/SMS_DistributionPointInfo.SetDPMaintenanceMode",
        "/adminservice/WMI/sms_distributionpointinfo.setdpmaintenancemode",
        "/ADMINSERVICE/wmi/SMS_DISTRIBUTIONPOINTINFO.SETDPMAINTENANCEMODE",
    ];
    for (i, (path, mode, code)) in cases.iter().enumerate() {
        let a = server.send(
            Method::POST,
            routes[i % routes.len()],
            json!({"NALPath": path, "Mode": mode}),
        );
        assert_eq!(a.status, 200, "{path} {mode}: {}", a.text);
        assert_eq!(
            a.body["ReturnValue"],
            json!(code),
            "{path} {mode}: {}",
            a.text
        );
    }
    let list = |filter: &str| {
        server.get(&format!(
            "/AdminService/wmi/SMS_DistributionPointInfo{filter}"
        ))
    };
    assert_eq!(list("").body["value"][0]["MaintenanceMode"], 0);
    // Success is 0, also when the DP already has the mode.
    for (i, mode) in [1, 1].iter().enumerate() {
        let a = server.send(
            Method::POST,
            routes[i],
            json!({"NALPath": nal("DP01"), "Mode": mode}),
        );
        assert_eq!(a.body, json!({"ReturnValue": 0}), "{}", a.text);
    }
    let listed = list("");
    assert!(listed.body["@odata.context"].is_string());
    assert_eq!(listed.body["value"][0]["NALPath"], nal("DP01"));
    assert_eq!(listed.body["value"][0]["ServerName"], "DP01");
    assert_eq!(listed.body["value"][0]["MaintenanceMode"], 1);
    let filter = format!("?$filter=NALPath eq '{}'", nal("DP01"));
    assert_eq!(
        list(&filter).body["value"].as_array().map(Vec::len),
        Some(1)
    );
    let other = format!("?$filter=NALPath eq '{}'", nal("DP02"));
    assert_eq!(list(&other).body["value"].as_array().map(Vec::len), Some(0));
    let lower = server.get("/adminservice/wmi/sms_distributionpointinfo");
    assert_eq!(
        lower.body["value"][0]["MaintenanceMode"], 1,
        "{}",
        lower.text
    );

    // In maintenance mode its properties are read-only: 409 with the reason.
    let refused = server.send(
        Method::PATCH,
        &format!("/api/v1/dps/{dp}"),
        json!({"description": "moved"}),
    );
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert_eq!(refused.content_type, "application/problem+json");
    assert!(
        refused.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("maintenance mode")),
        "{}",
        refused.text
    );
    let shown = server.get(&format!("/api/v1/dps/{dp}"));
    assert_eq!(shown.body["dp"]["maintenance_mode"], true);
    assert_eq!(shown.body["dp"]["description"], "first floor");

    // The API's own route: the same engine, an error as a problem.
    let bad = server.send(
        Method::PUT,
        &format!("/api/v1/dps/{dp}/maintenance-mode"),
        json!({"mode": 2}),
    );
    assert_eq!(bad.status, 400, "{}", bad.text);
    let off = server.send(
        Method::PUT,
        &format!("/api/v1/dps/{dp}/maintenance-mode"),
        json!({"mode": 0}),
    );
    assert_eq!(off.status, 200, "{}", off.text);
    assert_eq!(off.body["return_value"], 0);
    assert_eq!(off.body["changed"], true);
    let changed = server.send(
        Method::PATCH,
        &format!("/api/v1/dps/{dp}"),
        json!({"description": "moved"}),
    );
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.body["description"], "moved");
    let dps = server.get("/api/v1/dps");
    assert_eq!(dps.body[0]["maintenance_mode"], false);

    // The secret is kept (it is in the database) and was never in any answer.
    let db = rusqlite::Connection::open(site.root().join("site.db")).expect("db");
    let stored: String = db
        .query_row(
            "SELECT value FROM dp_settings WHERE key = 'password'",
            [],
            |r| r.get(0),
        )
        .expect("secret row");
    assert_eq!(stored, SECRET);
    let bodies = server.bodies.lock().expect("bodies");
    assert!(bodies.len() > 15);
    assert!(
        bodies.iter().all(|b| !b.contains(SECRET)),
        "a response holds the secret"
    );
}

/// A CA and a certificate for 127.0.0.1 it signed, made with openssl: (CA, cert, key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=ois test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

fn token_of(site: &TestSite, name: &str, role: &str) -> String {
    let run = site
        .ois(&["site", "user", "add", name, "--role", role, "--json"])
        .ok();
    run.json()["token"].as_str().expect("token").to_string()
}

#[test]
fn off_loopback_the_server_needs_tls_and_a_token_and_read_only_changes_nothing() {
    if !common::have_or_skip("openssl") {
        return;
    }
    let (site, _wim, _) = TestSite::with_golden_image();
    // Refused without TLS, then without accounts.
    let refused = site.ois(&["serve", "--listen", "0.0.0.0:0"]).failed();
    assert!(
        refused.stderr.contains("needs TLS") && refused.stderr.contains("tls_certificate"),
        "{}",
        refused.stderr
    );
    let certs = site.path("certs/x").parent().expect("dir").to_path_buf();
    let (ca, cert, key) = certificates(&certs);
    let config = site.root().join("site.toml");
    let mut toml = std::fs::read_to_string(&config).expect("site.toml");
    toml.push_str(&format!(
        "\n[server]\ntls_certificate = {:?}\ntls_key = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    ));
    std::fs::write(&config, toml).expect("write site.toml");
    let refused = site.ois(&["serve", "--listen", "0.0.0.0:0"]).failed();
    assert!(
        refused.stderr.contains("ois site user add"),
        "{}",
        refused.stderr
    );

    let admin = token_of(&site, "alice", "admin");
    let analyst = token_of(&site, "bob", "read-only");
    let users = site.ois(&["site", "user", "list", "--json"]).ok().json();
    assert_eq!(users.as_array().map(Vec::len), Some(2));
    assert!(
        !users.to_string().contains(&admin),
        "the list shows no token"
    );

    let mut server = Server::start_with(&site, "tls", &["--listen", "0.0.0.0:0"], Some(&ca));
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    server.token = Some(admin.clone());
    let id = image_id(&server, "golden");
    server.token = None;

    // No token: 401 on everything but the console's files and the OpenAPI document.
    for path in [
        "/api/v1/images",
        "/api/v1/whoami",
        "/api/v1/dps",
        "/AdminService/wmi/SMS_DistributionPointInfo",
    ] {
        let a = server.get(path);
        assert_eq!(a.status, 401, "{path}: {}", a.text);
        assert_eq!(a.content_type, "application/problem+json");
    }
    server.token = Some("ois_1_00".into());
    assert_eq!(server.get("/api/v1/images").status, 401);
    server.token = None;
    assert_eq!(server.get("/").status, 200);

    // The read-only account sees everything and changes nothing.
    server.token = Some(analyst.clone());
    assert_eq!(server.get("/api/v1/whoami").body["role"], "read-only");
    assert_eq!(server.get("/api/v1/images").status, 200);
    assert_eq!(server.get(&format!("/api/v1/images/{id}")).status, 200);
    let changes: Vec<(Method, String, Value)> = vec![
        (
            Method::PUT,
            format!("/api/v1/images/{id}/schedule"),
            json!({"all_applicable": true, "now": true}),
        ),
        (
            Method::DELETE,
            format!("/api/v1/images/{id}/schedule"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/v1/images/{id}/service"),
            json!({"all_applicable": true}),
        ),
        (
            Method::POST,
            format!("/api/v1/images/{id}/cancel"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/v1/images/{id}/repair"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/v1/images/{id}/distribute"),
            json!({}),
        ),
        (Method::DELETE, format!("/api/v1/images/{id}"), json!({})),
        (
            Method::POST,
            "/api/v1/images".into(),
            json!({"path": "/x.wim"}),
        ),
        (
            Method::POST,
            "/api/v1/updates".into(),
            json!({"path": "/x"}),
        ),
        (
            Method::POST,
            "/api/v1/dps".into(),
            json!({"nal_path": nal("DP09"), "target": "/tmp/x"}),
        ),
        (
            Method::PUT,
            "/api/v1/dps/1/maintenance-mode".into(),
            json!({"mode": 1}),
        ),
        (Method::POST, "/api/v1/dps/retry".into(), json!({})),
        (
            Method::POST,
            "/AdminService/wmi/SMS_DistributionPointInfo.SetDPMaintenanceMode".into(),
            json!({"NALPath": nal("DP01"), "Mode": 1}),
        ),
    ];
    for (method, path, body) in &changes {
        let a = server.send(method.clone(), path, body.clone());
        assert_eq!(a.status, 403, "{method} {path}: {}", a.text);
        assert!(
            a.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("read-only account bob cannot")),
            "{}",
            a.text
        );
    }
    assert_eq!(
        server.get("/api/v1/images").body[0]["scheduled_updates_status"],
        "None"
    );

    // The console: a session cookie; a change without the CSRF token is refused.
    server.token = None;
    let jar_client = Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&ca).expect("ca")).expect("pem"),
        )
        .build()
        .expect("client");
    let signed = jar_client
        .post(format!("{}/api/v1/session", server.base))
        .json(&json!({"token": admin}))
        .send()
        .expect("sign in");
    assert_eq!(signed.status().as_u16(), 200);
    let cookie = signed
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("cookie")
        .to_string();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Secure"),
        "{cookie}"
    );
    let session = cookie.split(';').next().expect("pair").to_string();
    let caller: Value = signed.json().expect("caller");
    let csrf = caller["csrf_token"].as_str().expect("csrf").to_string();
    let schedule = |csrf: Option<&str>| {
        let mut req = jar_client
            .put(format!("{}/api/v1/images/{id}/schedule", server.base))
            .header("Cookie", &session)
            .json(&json!({"updates": ["KB5040000"], "at": "2099-01-01 02:00"}));
        if let Some(c) = csrf {
            req = req.header("X-CSRF-Token", c);
        }
        server.answer(req.send().expect("schedule"))
    };
    let no_csrf = schedule(None);
    assert_eq!(no_csrf.status, 403, "{}", no_csrf.text);
    assert!(no_csrf.text.contains("X-CSRF-Token"));
    assert_eq!(schedule(Some("not-the-token")).status, 403);
    let ok = schedule(Some(&csrf));
    assert_eq!(ok.status, 200, "{}", ok.text);
    // A Bearer client needs no CSRF token.
    server.token = Some(admin.clone());
    let unscheduled = server.request(
        Method::DELETE,
        &format!("/api/v1/images/{id}/schedule"),
        None,
    );
    assert_eq!(unscheduled.status, 204, "{}", unscheduled.text);
    let audit = server.get("/api/v1/audit");
    let whos: Vec<&str> = audit
        .body
        .as_array()
        .expect("audit")
        .iter()
        .filter_map(|e| e["who"].as_str())
        .collect();
    assert_eq!(whos, ["alice", "alice"], "{}", audit.text);

    // Removing the account revokes its token and its session at once.
    site.ois(&["site", "user", "remove", "alice"]).ok();
    assert_eq!(server.get("/api/v1/images").status, 401);
    server.stop();
    // No token appears in any answer.
    let bodies = server.bodies.lock().expect("bodies");
    assert!(bodies
        .iter()
        .all(|b| !b.contains(&admin) && !b.contains(&analyst)));
}
