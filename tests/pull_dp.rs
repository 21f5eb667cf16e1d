//! Pull DPs end to end: `ois serve` and several `ois dp agent` processes on loopback ports.
//! The agents register, fetch the first version of an image whole and the next as a delta
//! (bytes counted by the site), wait out maintenance mode, resume after SIGKILL, refetch a
//! damaged chunk, and serve clients with range requests.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use common::{nal, sha256, wait_for, TestSite};
use reqwest::blocking::Client;
use serde_json::Value;

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn sigkill(&mut self) {
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

/// Bytes that do not compress, so the image is mostly one large resource.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// The sample golden image with `extra` MiB of incompressible data in index 1, registered as
/// `golden`, and an admin token for the agents.
fn site_with_image(extra_mib: usize) -> (TestSite, PathBuf, String) {
    let site = TestSite::new();
    site.sample_packages();
    let wim = site.path("images/golden.wim");
    let scratch = tempfile::tempdir().expect("tmp");
    ois::sample::golden_image(scratch.path(), &wim).expect("golden image");
    let big = site.path("big/payload.bin");
    std::fs::write(&big, noise(extra_mib << 20, 42)).expect("payload");
    let out = Command::new("wimlib-imagex")
        .arg("update")
        .arg(&wim)
        .arg("1")
        .arg(format!(
            "--command=add {} /Windows/System32/payload.bin",
            big.display()
        ))
        .output()
        .expect("wimlib-imagex");
    assert!(out.status.success(), "{out:?}");
    site.import_image(&wim, "golden");
    let run = site
        .ois(&["site", "user", "add", "agents", "--role", "admin", "--json"])
        .ok();
    let token = run.json()["token"].as_str().expect("token").to_string();
    (site, wim, token)
}

fn read_address(site: &TestSite, name: &str, prefix: &str) -> String {
    let out = site.dir.path().join(format!("{name}.out"));
    let mut url = String::new();
    wait_for(60, &format!("{name} to listen"), || {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        match text.lines().find_map(|l| l.strip_prefix(prefix)) {
            Some(u) => {
                url = u.trim().to_string();
                true
            }
            None => false,
        }
    });
    url
}

fn start_server(site: &TestSite) -> (Proc, String) {
    let child = site.spawn("serve", &["serve", "--listen", "127.0.0.1:0"]);
    let url = read_address(site, "serve", "listening on ");
    (Proc(child), url)
}

/// `ois dp agent` for DP `server`; its output goes to `<name>.out` / `<name>.err`.
fn start_agent(
    site: &TestSite,
    (name, server): (&str, &str),
    site_url: &str,
    token: &str,
    root: &Path,
    extra: &[&str],
) -> (Proc, String) {
    let nal_path = nal(server);
    let mut args = vec![
        "dp",
        "agent",
        "--site-url",
        site_url,
        "--root",
        root.to_str().expect("utf8"),
        "--listen",
        "127.0.0.1:0",
        "--nal-path",
        &nal_path,
        "--poll-seconds",
        "1",
    ];
    args.extend_from_slice(extra);
    let out = std::fs::File::create(site.path(&format!("{name}.out"))).expect("out");
    let err = std::fs::File::create(site.path(&format!("{name}.err"))).expect("err");
    let child = Command::new(env!("CARGO_BIN_EXE_ois"))
        .args(&args)
        .env("OIS_AGENT_TOKEN", token)
        .env_remove("OIS_SITE")
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn agent");
    let url = read_address(site, name, "serving on ");
    (Proc(child), url)
}

fn dp_json(site: &TestSite, server: &str) -> Value {
    let run = site.ois(&["dp", "show", &nal(server), "--json"]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    run.json()
}

fn bytes_served(site: &TestSite, server: &str) -> u64 {
    dp_json(site, server)["dp"]["pull"]["bytes_served"]
        .as_u64()
        .unwrap_or(0)
}

fn installed(site: &TestSite, server: &str, sha: &str) -> bool {
    let v = dp_json(site, server);
    v["distributions"].as_array().is_some_and(|d| {
        d.iter()
            .any(|x| x["sha256"] == sha && x["status"] == "Installed")
    })
}

fn image_sha(site: &TestSite) -> (i64, String) {
    let v = site.ois(&["image", "show", "golden", "--json"]).ok().json();
    let img = if v["image"].is_object() {
        &v["image"]
    } else {
        &v
    };
    (
        img["id"].as_i64().expect("id"),
        img["sha256"].as_str().expect("sha").to_string(),
    )
}

/// What a servicing run changed in the WIM, as stored: its new blobs (by SHA-1, against the
/// old version's blob table) and its metadata resources.
fn changed_bytes(site: &TestSite, old: &[u8], new: &Path) -> u64 {
    let old_path = site.path("old-version.wim");
    std::fs::write(&old_path, old).expect("old version");
    let blobs = |p: &Path| {
        ois::wim::Wim::open(p, false)
            .and_then(|w| w.blobs())
            .expect("blob table")
    };
    let known: std::collections::HashSet<[u8; 20]> =
        blobs(&old_path).iter().map(|b| b.sha1).collect();
    blobs(new)
        .iter()
        .filter(|b| b.metadata || !known.contains(&b.sha1))
        .map(|b| b.stored_size)
        .sum()
}

fn held(root: &Path, id: i64, sha: &str) -> PathBuf {
    root.join(format!("ois/images/{id}/{sha}.wim"))
}

#[test]
fn pull_dps_get_the_first_version_whole_then_deltas_and_wait_out_maintenance_mode() {
    let (site, wim, _admin) = site_with_image(12);
    // Each agent with its own narrow account.
    let (token1, token2) = (
        agent_token(&site, "dp01-agent"),
        agent_token(&site, "dp02-agent"),
    );
    let (_server, url) = start_server(&site);
    let (root1, root2) = (site.path("dp01/x"), site.path("dp02/x"));
    let (_a1, agent1) = start_agent(&site, ("DP01", "DP01"), &url, &token1, &root1, &[]);
    let (_a2, _agent2) = start_agent(&site, ("DP02", "DP02"), &url, &token2, &root2, &[]);
    wait_for(60, "both agents to register", || {
        let v = site.ois(&["dp", "list", "--json"]).ok().json();
        v.as_array().is_some_and(|a| {
            a.iter()
                .filter(|d| d["pull"]["last_contact"].is_string())
                .count()
                == 2
        })
    });
    let (id, v1) = image_sha(&site);
    let size = std::fs::metadata(&wim).expect("wim").len();
    let run = site
        .ois(&[
            "image",
            "distribute",
            "golden",
            "--dp",
            &nal("DP01"),
            "--dp",
            &nal("DP02"),
            "--json",
        ])
        .ok();
    assert!(
        run.stdout.contains("agent fetches it"),
        "{}",
        run.all_output()
    );
    wait_for(120, "the first version on both pull DPs", || {
        installed(&site, "DP01", &v1) && installed(&site, "DP02", &v1)
    });
    let original = std::fs::read(&wim).expect("wim");
    for root in [&root1, &root2] {
        let got = std::fs::read(held(root, id, &v1)).expect("held");
        assert_eq!(sha256(&got), v1);
        assert_eq!(got, original);
    }
    let whole = bytes_served(&site, "DP01");
    assert!(
        whole >= size && whole < size + size / 10,
        "first version: {whole} bytes served for a {size}-byte image"
    );

    // DP02 in maintenance mode gets nothing of the next version.
    let m = site.ois(&["dp", "set-maintenance-mode", &nal("DP02"), "1"]);
    assert_eq!(m.stdout.trim(), "0", "{}", m.all_output());
    let before2 = bytes_served(&site, "DP02");
    site.ois(&["service", "golden", "--all-applicable"]).ok();
    let (_, v2) = image_sha(&site);
    assert_ne!(v1, v2);
    site.ois(&["image", "distribute", "golden"]).ok();
    wait_for(120, "the next version on DP01", || {
        installed(&site, "DP01", &v2)
    });
    let delta = bytes_served(&site, "DP01") - whole;
    let new_size = std::fs::metadata(&wim).expect("wim").len();
    let changed = changed_bytes(&site, &original, &wim);
    eprintln!("delta {delta} bytes for {changed} bytes changed; image {new_size} bytes");
    assert!(
        delta * 10 <= changed * 12,
        "next version: {delta} bytes served (chunk index included) for {changed} bytes of new \
         blobs and metadata, more than 1.2 times; the image is {new_size} bytes"
    );
    assert_eq!(
        sha256(&std::fs::read(held(&root1, id, &v2)).expect("v2")),
        v2
    );
    assert!(
        !held(&root1, id, &v1).exists(),
        "the old version goes once the new one is in place"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(bytes_served(&site, "DP02"), before2, "maintenance mode");
    assert!(held(&root2, id, &v1).exists());
    assert!(!held(&root2, id, &v2).exists());

    let m = site.ois(&["dp", "set-maintenance-mode", &nal("DP02"), "0"]);
    assert_eq!(m.stdout.trim(), "0", "{}", m.all_output());
    wait_for(120, "the next version on DP02 after mode 0", || {
        installed(&site, "DP02", &v2)
    });
    let delta2 = bytes_served(&site, "DP02") - before2;
    assert!(
        delta2 * 10 <= changed * 12,
        "DP02: {delta2} bytes for {changed} changed"
    );

    // Clients are sent to the agent, which serves byte ranges.
    let located = site
        .ois(&["content", "locate", "golden", "--json"])
        .ok()
        .json();
    let location = located
        .as_array()
        .and_then(|a| a.iter().find(|l| l["server"] == "DP01"))
        .and_then(|l| l["location"].as_str())
        .expect("DP01 location")
        .to_string();
    assert_eq!(
        location,
        format!("{agent1}/ois/images/{id}/{v2}.wim"),
        "{located}"
    );
    let current = std::fs::read(&wim).expect("wim");
    let client = Client::new();
    let r = client
        .get(&location)
        .header("Range", "bytes=1000-5095")
        .send()
        .expect("range request");
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(r.bytes().expect("body").as_ref(), &current[1000..5096]);
    let r = client.get(&location).send().expect("whole file");
    assert_eq!(r.bytes().expect("body").as_ref(), current.as_slice());
}

#[test]
fn a_killed_agent_resumes_and_a_damaged_chunk_is_fetched_again() {
    let (site, wim, token) = site_with_image(16);
    let (_server, url) = start_server(&site);
    let root = site.path("dp03/x");
    let (mut agent, _) = start_agent(
        &site,
        ("DP03", "DP03"),
        &url,
        &token,
        &root,
        &["--max-bytes-per-second", "3000000"],
    );
    wait_for(60, "the agent to register", || {
        site.ois(&["dp", "show", &nal("DP03")]).code == 0
    });
    let (id, sha) = image_sha(&site);
    site.ois(&["image", "distribute", "golden", "--dp", &nal("DP03")])
        .ok();
    let journal = root.join(format!(".ois-agent/partial/{id}/{sha}.journal"));
    // The first 8 MiB range is the header, the image's small resources and a few dozen
    // chunks of about 256 KiB of the payload; the throttle holds the next one back for
    // seconds.
    wait_for(60, "the first range to be journaled", || {
        std::fs::read_to_string(&journal).is_ok_and(|j| j.lines().count() > 20)
    });
    std::thread::sleep(Duration::from_millis(300));
    agent.sigkill();
    assert!(!held(&root, id, &sha).exists(), "no partial file is served");
    let partial = root.join(format!(".ois-agent/partial/{id}/{sha}.wim"));
    let served_before = bytes_served(&site, "DP03");
    let size = std::fs::metadata(&wim).expect("wim").len();
    assert!(served_before < size, "killed mid-download");
    // Damage a journaled chunk on disk: the agent must notice and fetch it again.
    let mut bytes = std::fs::read(&partial).expect("partial");
    bytes[100] ^= 0xff;
    std::fs::write(&partial, bytes).expect("damage");

    let (_agent, _) = start_agent(&site, ("DP03b", "DP03"), &url, &token, &root, &[]);
    // Same DP: the restarted agent registers under DP03's NAL path.
    wait_for(120, "the resumed download", || {
        held(&root, id, &sha).exists()
    });
    assert_eq!(
        sha256(&std::fs::read(held(&root, id, &sha)).expect("held")),
        sha
    );
    let err = std::fs::read_to_string(site.path("DP03b.err")).unwrap_or_default();
    let total = bytes_served(&site, "DP03");
    let resumed = dp_json(&site, "DP03")["dp"]["pull"]["last_fetch_bytes"]
        .as_u64()
        .expect("last fetch");
    assert!(
        resumed < size - (4 << 20),
        "resumed, not restarted: {resumed} bytes fetched after the restart ({total} in all) \
         for a {size}-byte image\n{err}"
    );
    assert!(err.contains("do not match their hash"), "{err}");

    // Content validation: the agent re-hashes what it holds when the site asks.
    let mut bytes = std::fs::read(held(&root, id, &sha)).expect("held");
    bytes[size as usize / 2] ^= 0x01;
    std::fs::write(held(&root, id, &sha), bytes).expect("damage the held copy");
    let asked = site
        .ois(&["dp", "validate", &nal("DP03"), "--json"])
        .ok()
        .json();
    assert_eq!(asked[0]["requested"], true, "{asked}");
    wait_for(60, "the agent's validation report", || {
        let v = dp_json(&site, "DP03");
        v["dp"]["pull"]["validation_requested_at"].is_null()
            && v["distributions"][0]["validated_at"].is_string()
    });
    let err = std::fs::read_to_string(site.path("DP03b.err")).unwrap_or_default();
    assert!(err.contains("content validation"), "{err}");
    // The damaged copy is fetched again.
    wait_for(60, "the version fetched again", || {
        installed(&site, "DP03", &sha)
            && std::fs::read(held(&root, id, &sha)).is_ok_and(|b| sha256(&b) == sha)
    });
}

/// A `dp-agent` account's token for one agent.
fn agent_token(site: &TestSite, name: &str) -> String {
    let run = site
        .ois(&["site", "user", "add", name, "--role", "dp-agent", "--json"])
        .ok();
    run.json()["token"].as_str().expect("token").to_string()
}

fn api(
    client: &Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = client.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().expect("request");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

#[test]
fn an_agent_token_calls_only_the_pull_routes_of_its_own_dp() {
    let (site, _wim, admin) = site_with_image(0);
    let (dp05, dp06) = (
        agent_token(&site, "dp05-agent"),
        agent_token(&site, "dp06-agent"),
    );
    let (_server, url) = start_server(&site);
    let client = Client::new();
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;
    let register = |token: &str, server: &str| {
        api(
            &client,
            post.clone(),
            &format!("{url}/api/v1/pull/register"),
            token,
            Some(serde_json::json!({
                "nal_path": nal(server),
                "url": format!("http://{}.example:8531", server.to_lowercase()),
                "agent_version": "test",
            })),
        )
    };
    let (code, v) = register(&dp05, "DP05");
    assert_eq!(code, 200, "{v}");
    let own = v["dp_id"].as_i64().expect("dp id");
    let (code, v) = register(&dp06, "DP06");
    assert_eq!(code, 200, "{v}");
    let other = v["dp_id"].as_i64().expect("dp id");

    let shown = dp_json(&site, "DP05");
    assert_eq!(
        shown["dp"]["pull"]["agent_account"], "dp05-agent",
        "{shown}"
    );
    // Its own DP's routes work.
    let (code, v) = api(
        &client,
        get.clone(),
        &format!("{url}/api/v1/pull/{own}/assignments"),
        &dp05,
        None,
    );
    assert_eq!(code, 200, "{v}");
    // An admin route does not, reading included.
    for (method, path) in [
        (get.clone(), "dps"),
        (get.clone(), "images"),
        (post.clone(), "dps/retry"),
    ] {
        let (code, v) = api(
            &client,
            method,
            &format!("{url}/api/v1/{path}"),
            &dp05,
            None,
        );
        assert_eq!(code, 403, "{path}: {v}");
        assert!(
            v["detail"].as_str().is_some_and(|d| d.contains("dp-agent")),
            "{path}: {v}"
        );
    }
    // Nor another DP's routes, nor claiming another DP.
    let (code, v) = api(
        &client,
        get.clone(),
        &format!("{url}/api/v1/pull/{other}/assignments"),
        &dp05,
        None,
    );
    assert_eq!(code, 403, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .is_some_and(|d| d.contains("dp05-agent")),
        "{v}"
    );
    let (code, v) = api(
        &client,
        post.clone(),
        &format!("{url}/api/v1/pull/{other}/report"),
        &dp05,
        Some(serde_json::json!({"versions": []})),
    );
    assert_eq!(code, 403, "{v}");
    let (code, v) = register(&dp05, "DP06");
    assert_eq!(code, 403, "{v}");
    let (code, v) = register(&dp05, "DP07");
    assert_eq!(code, 403, "one DP per agent account: {v}");
    // Registering again (a restarted agent) is fine; an admin token acts for any DP.
    assert_eq!(register(&dp05, "DP05").0, 200);
    let (code, v) = api(
        &client,
        get.clone(),
        &format!("{url}/api/v1/pull/{other}/assignments"),
        &admin,
        None,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        api(&client, get, &format!("{url}/api/v1/dps"), &admin, None).0,
        200
    );
}

#[test]
fn the_chunk_index_is_built_when_a_version_is_published_to_a_pull_dp() {
    let (site, wim, _token) = site_with_image(1);
    site.ois(&[
        "dp",
        "add",
        &nal("DP08"),
        "--target",
        "pull+http://dp08.example:8531",
    ])
    .ok();
    let (id, v1) = image_sha(&site);
    let index_dir = site.root().join(format!("ChunkIndex/{id}"));
    assert!(!index_dir.exists());
    site.ois(&["image", "distribute", "golden", "--dp", &nal("DP08")])
        .ok();
    // Built by the distribution, before any agent asked.
    let index = std::fs::read(index_dir.join(format!("{v1}.chunks"))).expect("index of v1");
    assert!(index.starts_with(b"OISCHUNK"));
    let size = std::fs::metadata(&wim).expect("wim").len();
    // Magic, format, cut and three chunk sizes (25 bytes), then the file size.
    assert_eq!(
        &index[25..33],
        &size.to_le_bytes(),
        "the index describes the file"
    );

    // A servicing run's new version: its index is built when the run ends (the agent sees the
    // version at its next poll, distributed or not), and the old one's is removed.
    site.ois(&["service", "golden", "--all-applicable"]).ok();
    let (_, v2) = image_sha(&site);
    assert_ne!(v1, v2);
    let names: Vec<String> = std::fs::read_dir(&index_dir)
        .expect("index dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [format!("{v2}.chunks")]);
}
