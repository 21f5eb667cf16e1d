//! One-off servicing driven through the real binary, asserting on the bytes inside every index.

mod common;

use common::{image_count, index_files, TestSite};
use ois::sample::filler;

fn payload(seed: u64, kib: usize) -> Vec<u8> {
    filler(seed, kib * 1024)
}

#[test]
fn all_applicable_changes_every_index_and_keeps_the_rest() {
    let site = TestSite::new();
    site.sample_packages();
    let wim = site.golden_image("golden");
    let before1 = index_files(&wim, 1);
    let before2 = index_files(&wim, 2);

    let run = site
        .ois(&["service", "golden", "--all-applicable", "--json"])
        .ok();
    let out = &run.json_lines()[0];
    assert_eq!(out["image"], "golden");
    assert_eq!(out["status"], "Successful");
    assert_eq!(
        out["applied"],
        serde_json::json!(["KB5040000", "KB5040001", "KB5040002"])
    );
    assert_eq!(out["failed"], serde_json::json!([]));
    assert_eq!(out["superseded"], serde_json::json!(["KB5039999"]));
    assert!(out["size_after"].as_u64().expect("size_after") > 0);
    assert!(out["seconds"].as_f64().is_some());

    assert_eq!(image_count(&wim), 2);
    for (index, before) in [(1, &before1), (2, &before2)] {
        let after = index_files(&wim, index);
        // Added and replaced files hold the payload's bytes.
        assert_eq!(
            after["Windows/System32/ntoskrnl.exe"],
            payload(40, 110),
            "index {index}"
        );
        assert_eq!(
            after["Windows/System32/drivers/stornvme.sys"],
            payload(41, 20)
        );
        assert_eq!(
            after["Windows/System32/drivers/netadapter.sys"],
            payload(42, 18)
        );
        assert_eq!(
            after["Windows/servicing/Stack/CbsCore.dll"],
            payload(20, 40)
        );
        // Deleted and renamed.
        assert!(!after.contains_key("Windows/Temp/legacy.log"));
        assert!(!after.contains_key("Windows/System32/old.dll"));
        assert_eq!(
            after["Windows/System32/new.dll"],
            before["Windows/System32/old.dll"]
        );
        // Untouched files are unchanged.
        for untouched in [
            "Windows/System32/kernel32.dll",
            "Windows/System32/drivers/disk.sys",
            "Users/Default/NTUSER.DAT",
        ] {
            assert_eq!(
                after[untouched], before[untouched],
                "{untouched} in index {index}"
            );
        }
    }
    // The Enterprise-only update (a CAB package) reached only the Enterprise index.
    assert_eq!(
        index_files(&wim, 2)["Windows/System32/AppLocker.dll"],
        payload(50, 22)
    );
    assert!(!index_files(&wim, 1).contains_key("Windows/System32/AppLocker.dll"));

    let show = site.ois(&["image", "show", "golden", "--json"]).ok().json();
    let installed = |i: usize| -> Vec<String> {
        show["indexes"][i]["installed"]
            .as_array()
            .expect("installed")
            .iter()
            .map(|u| u["id"].as_str().expect("id").to_string())
            .collect()
    };
    assert_eq!(installed(0), ["KB5030000", "KB5040000", "KB5040001"]);
    assert_eq!(
        installed(1),
        ["KB5030000", "KB5040000", "KB5040001", "KB5040002"]
    );
    assert_eq!(show["runs"][0]["status"], "Successful");
    assert!(show["provisioning_mode"].is_null());
    // The stage is gone.
    let stage = site.root().join("ConfigMgr_OfflineImageServicing");
    assert_eq!(std::fs::read_dir(&stage).map(|d| d.count()).unwrap_or(0), 0);

    // Nothing is applicable any more; a second run is a no-op.
    let applicable = site
        .ois(&["image", "applicable", "golden", "--json"])
        .ok()
        .json();
    assert_eq!(applicable, serde_json::json!([]));
    let bytes = std::fs::read(&wim).expect("read");
    site.ois(&["service", "golden", "--all-applicable"]).ok();
    assert_eq!(std::fs::read(&wim).expect("read"), bytes);
}

#[test]
fn indexes_over_the_memory_budget_are_serviced_in_passes_to_the_same_bytes() {
    let site = TestSite::new();
    site.sample_packages();
    let whole = site.golden_image("whole");
    let passes = site.golden_image("passes");
    site.ois(&["service", "whole", "--all-applicable"]).ok();
    // One index per pass: the first writes index 1, the second adds index 2 to that file.
    site.configure("metadata_memory_mib = 0");
    site.ois(&["service", "passes", "--all-applicable"]).ok();

    assert_eq!(image_count(&passes), 2);
    // The same data, each blob once: the files differ only by the XML's timestamps.
    let (a, b) = (file_len(&whole), file_len(&passes));
    assert!(a.abs_diff(b) < 256, "{a} bytes in one pass, {b} in two");
    let verify = std::process::Command::new("wimlib-imagex")
        .arg("verify")
        .arg(&passes)
        .output()
        .expect("wimlib-imagex verify");
    assert!(verify.status.success(), "{verify:?}");
    let info = std::process::Command::new("wimlib-imagex")
        .args(["info", "--blobs"])
        .arg(&passes)
        .output()
        .expect("wimlib-imagex info");
    let info = String::from_utf8_lossy(&info.stderr);
    assert!(!info.contains("duplicate"), "{info}");
    for index in 1..=2 {
        let (a, b) = (index_files(&whole, index), index_files(&passes, index));
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "index {index}"
        );
        assert!(a == b, "index {index}: same bytes in every file");
        assert_eq!(b["Windows/System32/ntoskrnl.exe"], payload(40, 110));
    }
    let show = site.ois(&["image", "show", "passes", "--json"]).ok().json();
    let log = std::fs::read_to_string(show["log"].as_str().expect("log")).expect("run log");
    assert!(log.contains("servicing in 2 passes"), "{log}");
    assert!(
        log.contains("pass 1 of 2: index(es) 1") && log.contains("pass 2 of 2: index(es) 2"),
        "{log}"
    );
    assert_eq!(
        show["indexes"][1]["installed"].as_array().map(|a| a.len()),
        Some(4),
        "the catalog records every index's updates"
    );
    let stage = site.root().join("ConfigMgr_OfflineImageServicing");
    assert_eq!(std::fs::read_dir(&stage).map(|d| d.count()).unwrap_or(0), 0);
}

#[test]
fn serviced_image_carries_its_installed_updates_to_a_new_site() {
    let site = TestSite::new();
    site.sample_packages();
    let wim = site.golden_image("golden");
    site.ois(&["service", "golden", "--updates", "KB5040000,KB5040001"])
        .ok();

    let other = TestSite::new();
    let show = other
        .ois(&["image", "import", wim.to_str().expect("utf8"), "--json"])
        .ok()
        .json();
    let index1: Vec<(String, String)> = show["indexes"][0]["installed"]
        .as_array()
        .expect("installed")
        .iter()
        .map(|u| {
            (
                u["id"].as_str().expect("id").into(),
                u["source"].as_str().expect("source").into(),
            )
        })
        .collect();
    assert!(
        index1.contains(&("KB5030000".into(), "windows-package".into())),
        "{index1:?}"
    );
    assert!(
        index1.contains(&("KB5040000".into(), "ois-record".into())),
        "{index1:?}"
    );
    assert!(
        index1.contains(&("KB5040001".into(), "ois-record".into())),
        "{index1:?}"
    );
}

#[test]
fn other_wim_tools_read_the_serviced_image() {
    if !common::have_or_skip("wimlib-imagex") || !common::have_or_skip("7z") {
        return;
    }
    let site = TestSite::new();
    site.sample_packages();
    let wim = site.golden_image("golden");
    site.ois(&["service", "golden", "--all-applicable"]).ok();
    let verify = std::process::Command::new("wimlib-imagex")
        .arg("verify")
        .arg(&wim)
        .output()
        .expect("wimlib-imagex");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let list = std::process::Command::new("7z")
        .arg("l")
        .arg(&wim)
        .output()
        .expect("7z");
    assert!(list.status.success());
    let listing = String::from_utf8_lossy(&list.stdout);
    for (index, files) in [(1, index_files(&wim, 1)), (2, index_files(&wim, 2))] {
        for path in files.keys() {
            assert!(
                listing.contains(&format!("{index}/{path}")),
                "7z does not list {index}/{path}:\n{listing}"
            );
        }
    }
    assert!(!listing.contains("legacy.log"));
}

#[test]
fn several_images_in_parallel() {
    let site = TestSite::new();
    site.sample_packages();
    let a = site.golden_image("a");
    let b = site.golden_image("b");
    let run = site
        .ois(&[
            "service",
            "a",
            "b",
            "--updates",
            "KB5040000",
            "--jobs",
            "2",
            "--json",
        ])
        .ok();
    let lines = run.json_lines();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l["status"] == "Successful"));
    for wim in [a, b] {
        for i in 1..=2 {
            assert_eq!(
                index_files(&wim, i)["Windows/servicing/Stack/TiWorker.exe"],
                payload(21, 30)
            );
        }
    }
}

fn package(site: &TestSite, name: &str, manifest: &str) -> String {
    let dir = site.path(&format!("extra/{name}"));
    ois::sample::write_package(
        &dir,
        manifest,
        &[("payload/a.txt", b"new content".to_vec())],
    )
    .expect("package");
    dir.to_str().expect("utf8").to_string()
}

#[test]
fn a_failing_update_stops_the_image_unless_continue_on_error() {
    let site = TestSite::new();
    site.sample_packages();
    let broken = package(
        &site,
        "KB7000001",
        "id = \"KB7000001\"\ntitle = \"Deletes a missing file\"\narchitecture = \"x64\"\n[[change]]\ndelete = \"Windows/NoSuchFile.dll\"\n",
    );
    let good = package(
        &site,
        "KB7000002",
        "id = \"KB7000002\"\ntitle = \"Adds a file\"\narchitecture = \"neutral\"\n[[change]]\nadd = \"payload/a.txt\"\nat = \"Windows/a.txt\"\n",
    );
    site.ois(&["update", "import", &broken, &good]).ok();
    let wim = site.golden_image("golden");
    let original = std::fs::read(&wim).expect("read");

    let run = site
        .ois(&[
            "service",
            "golden",
            "--updates",
            "KB7000001,KB7000002",
            "--json",
        ])
        .failed();
    let out = &run.json_lines()[0];
    assert_eq!(out["status"], "Failed");
    assert_eq!(out["failed"][0]["id"], "KB7000001");
    assert!(out["failed"][0]["error"]
        .as_str()
        .expect("error")
        .contains("index 1"));
    assert_eq!(
        std::fs::read(&wim).expect("read"),
        original,
        "the original must stay byte-identical"
    );

    let run = site
        .ois(&[
            "service",
            "golden",
            "--updates",
            "KB7000001,KB7000002",
            "--continue-on-error",
            "--json",
        ])
        .failed();
    let out = &run.json_lines()[0];
    assert_eq!(out["applied"], serde_json::json!(["KB7000002"]));
    assert_eq!(out["failed"][0]["id"], "KB7000001");
    for i in 1..=2 {
        assert_eq!(index_files(&wim, i)["Windows/a.txt"], b"new content");
    }
    let show = site.ois(&["image", "show", "golden", "--json"]).ok().json();
    let run0 = &show["runs"][0];
    assert_eq!(run0["status"], "Failed");
    assert!(run0["updates"]
        .as_array()
        .expect("updates")
        .iter()
        .any(|u| u["update"] == "KB7000001" && u["applied"] == false));
}

/// An update applied in memory by a run that then fails is not in the image: the run says
/// so, and Update Status does not call it Installed.
#[test]
fn a_failed_run_reports_updates_applied_in_memory_as_not_written() {
    let site = TestSite::new();
    let good = package(
        &site,
        "KB7000000",
        "id = \"KB7000000\"\ntitle = \"Adds a file\"\narchitecture = \"neutral\"\n[[change]]\nadd = \"payload/a.txt\"\nat = \"Windows/a.txt\"\n",
    );
    let broken = package(
        &site,
        "KB7000001",
        "id = \"KB7000001\"\ntitle = \"Deletes a missing file\"\narchitecture = \"x64\"\nrequires = [\"KB7000000\"]\n[[change]]\ndelete = \"Windows/NoSuchFile.dll\"\n",
    );
    site.ois(&["update", "import", &good, &broken]).ok();
    let wim = site.golden_image("golden");
    let original = std::fs::read(&wim).expect("read");

    let args = ["service", "golden", "--updates", "KB7000000,KB7000001"];
    let text = site.ois(&args).failed();
    assert!(
        text.stdout.contains("not written: KB7000000"),
        "{}",
        text.stdout
    );
    assert!(!text.stdout.contains("applied:"), "{}", text.stdout);
    let json_args = [&args[..], &["--json"]].concat();
    let out = site.ois(&json_args).failed().json_lines()[0].clone();
    assert_eq!(out["status"], "Failed");
    assert_eq!(out["applied"], serde_json::json!([]), "{out}");
    assert_eq!(
        out["not_written"],
        serde_json::json!(["KB7000000"]),
        "{out}"
    );
    assert_eq!(std::fs::read(&wim).expect("read"), original);

    let show = site.ois(&["image", "show", "golden", "--json"]).ok().json();
    let status: Vec<&serde_json::Value> = show["update_status"]
        .as_array()
        .expect("update status")
        .iter()
        .filter(|u| u["update"] == "KB7000000")
        .collect();
    assert!(!status.is_empty(), "{show}");
    for u in status {
        assert_eq!(u["applied"], false, "{u}");
        assert!(
            u["error"]
                .as_str()
                .unwrap_or_default()
                .contains("not written"),
            "{u}"
        );
    }
    assert!(show["installed_updates"]
        .as_array()
        .expect("installed")
        .iter()
        .all(|i| !i["updates"].to_string().contains("KB7000000")));
    let text = site.ois(&["image", "show", "golden"]).ok().stdout;
    assert!(!text.contains("KB7000000  index 1  Installed"), "{text}");
    assert!(text.contains("KB7000000  index 1  Not written: "), "{text}");
}

#[test]
fn requests_that_cannot_be_planned_touch_nothing() {
    let (site, wim, original) = TestSite::with_golden_image();

    let unknown = site
        .ois(&["service", "golden", "--updates", "KB404"])
        .failed();
    assert!(
        unknown
            .stderr
            .contains("KB404 is not in the content library"),
        "{}",
        unknown.stderr
    );
    let requires = site
        .ois(&["service", "golden", "--updates", "KB5040001"])
        .failed();
    assert!(
        requires.stderr.contains("requires KB5040000"),
        "{}",
        requires.stderr
    );
    let missing_image = site.ois(&["service", "nope", "--all-applicable"]).failed();
    assert!(
        missing_image.stderr.contains("no image \"nope\""),
        "{}",
        missing_image.stderr
    );

    // An Enterprise-only update on an image with no Enterprise index.
    let pro = site.path("pro-tree");
    ois::sample::write_tree(&pro, &[("Windows/System32/x.dll", b"x".to_vec())]).expect("tree");
    let pro_wim = site.path("images/pro.wim");
    ois::sample::build_wim(
        &pro_wim,
        ois::wim::Compression::Xpress,
        &[ois::sample::IndexSpec {
            name: "Pro",
            edition: "Professional",
            architecture: ois::library::Architecture::X64,
            build: 22631,
            tree: &pro,
        }],
    )
    .expect("wim");
    site.ois(&["image", "import", pro_wim.to_str().expect("utf8")])
        .ok();
    let pro_bytes = std::fs::read(&pro_wim).expect("read");
    let inapplicable = site
        .ois(&["service", "pro", "--updates", "KB5040002"])
        .failed();
    assert!(
        inapplicable.stderr.contains("applies to no index"),
        "{}",
        inapplicable.stderr
    );
    assert_eq!(std::fs::read(&pro_wim).expect("read"), pro_bytes);

    assert_eq!(std::fs::read(&wim).expect("read"), original);
    let show = site.ois(&["image", "show", "golden", "--json"]).ok().json();
    assert_eq!(show["runs"], serde_json::json!([]));
}

#[test]
fn an_image_already_being_serviced_is_refused() {
    let (site, wim, original) = TestSite::with_golden_image();
    // Another process holds the image in provisioning mode.
    let db = rusqlite::Connection::open(site.root().join("site.db")).expect("db");
    db.execute(
        "INSERT INTO provisioning (image_id, since, owner_pid, owner_host) VALUES (1, '2026-11-24T10:00:00Z', 4242, 'other-host')",
        [],
    )
    .expect("insert");
    let run = site
        .ois(&["service", "golden", "--all-applicable", "--json"])
        .failed();
    let out = &run.json_lines()[0];
    assert_eq!(out["status"], "Failed");
    let error = out["error"].as_str().expect("error");
    assert!(
        error.contains("already being serviced") && error.contains("4242"),
        "{error}"
    );
    assert_eq!(std::fs::read(&wim).expect("read"), original);
    // The other run's claim is untouched.
    let holder: i64 = db
        .query_row(
            "SELECT owner_pid FROM provisioning WHERE image_id = 1",
            [],
            |r| r.get(0),
        )
        .expect("row");
    assert_eq!(holder, 4242);
}

#[test]
fn a_damaged_wim_is_caught_before_the_original_is_replaced() {
    let site = TestSite::new();
    site.sample_packages();
    // Built without an integrity table so that only the damaged blob betrays it.
    let tree = site.path("tree");
    ois::sample::write_tree(
        &tree,
        &[
            ("Windows/System32/big.dll", filler(99, 256 * 1024)),
            ("Windows/Temp/legacy.log", b"x".to_vec()),
        ],
    )
    .expect("tree");
    let wim_path = site.path("images/damaged.wim");
    let wim = ois::wim::Wim::create(ois::wim::Compression::Lzx).expect("create");
    wim.add_image(&tree, "Pro").expect("add");
    for (k, v) in [
        ("WINDOWS/ARCH", "9"),
        ("WINDOWS/EDITIONID", "Professional"),
        ("WINDOWS/VERSION/BUILD", "22631"),
    ] {
        wim.set_property(1, k, Some(v)).expect("prop");
    }
    wim.write(&wim_path, false, 0, &mut |_| ois::wim::Progress::Continue)
        .expect("write");
    drop(wim);
    let mut bytes = std::fs::read(&wim_path).expect("read");
    // The big file's compressed data starts right after the 208-byte header.
    for b in &mut bytes[2000..2064] {
        *b ^= 0x5a;
    }
    std::fs::write(&wim_path, &bytes).expect("write");
    site.ois(&[
        "image",
        "import",
        wim_path.to_str().expect("utf8"),
        "--name",
        "damaged",
    ])
    .ok();

    let run = site
        .ois(&["service", "damaged", "--updates", "KB5040000", "--json"])
        .failed();
    let out = &run.json_lines()[0];
    let error = out["error"].as_str().expect("error");
    assert!(
        error.contains("damaged") || error.contains("verification"),
        "{error}"
    );
    assert_eq!(
        std::fs::read(&wim_path).expect("read"),
        bytes,
        "the original must stay byte-identical"
    );
    let stage = site.root().join("ConfigMgr_OfflineImageServicing");
    assert_eq!(
        std::fs::read_dir(&stage).map(|d| d.count()).unwrap_or(0),
        0,
        "the stage must be removed"
    );
}

#[test]
fn a_wim_changed_after_registration_is_not_serviced() {
    let site = TestSite::new();
    site.sample_packages();
    let wim = site.golden_image("golden");
    let mut bytes = std::fs::read(&wim).expect("read");
    bytes.extend_from_slice(b"appended by someone else");
    std::fs::write(&wim, &bytes).expect("write");
    let run = site
        .ois(&["service", "golden", "--all-applicable", "--json"])
        .failed();
    assert!(run.json_lines()[0]["error"]
        .as_str()
        .expect("error")
        .contains("changed on disk"));
    assert_eq!(std::fs::read(&wim).expect("read"), bytes);
    // The way out the message gives works: remove, register again, service.
    site.ois(&["image", "remove", "golden"]).ok();
    site.ois(&[
        "image",
        "import",
        wim.to_str().expect("utf8"),
        "--name",
        "golden",
    ])
    .ok();
    site.ois(&["service", "golden", "--all-applicable"]).ok();
}

#[test]
fn bad_wim_files_are_refused_at_import() {
    let site = TestSite::new();
    let missing = site
        .ois(&["image", "import", "/nonexistent/install.wim"])
        .failed();
    assert!(
        missing.stderr.contains("does not exist"),
        "{}",
        missing.stderr
    );

    let not_wim = site.path("images/notes.wim");
    std::fs::write(&not_wim, b"this is not a WIM file at all, just text").expect("write");
    let run = site
        .ois(&["image", "import", not_wim.to_str().expect("utf8")])
        .failed();
    assert!(run.stderr.contains("notes.wim"), "{}", run.stderr);

    let scratch = tempfile::tempdir().expect("tempdir");
    let good = site.path("images/good.wim");
    ois::sample::golden_image(scratch.path(), &good).expect("wim");
    let bytes = std::fs::read(&good).expect("read");
    let truncated = site.path("images/truncated.wim");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let run = site
        .ois(&["image", "import", truncated.to_str().expect("utf8")])
        .failed();
    assert!(run.stderr.contains("truncated.wim"), "{}", run.stderr);
    assert_eq!(
        std::fs::read(&truncated).expect("read"),
        &bytes[..bytes.len() / 2]
    );
    assert_eq!(
        site.ois(&["image", "list", "--json"]).ok().json(),
        serde_json::json!([])
    );
}

/// A real small filesystem (tmpfs) mounted for the test; `None` when this is not root.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = std::process::Command::new("mount")
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
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A new site whose servicing drive is a tmpfs of `size`.
fn site_with_servicing_drive_on_tmpfs(
    name: &str,
    size: &str,
) -> Option<(TestSite, std::path::PathBuf, Tmpfs)> {
    let site = TestSite::uninitialised();
    let drive = site.path(name);
    let Some(tmpfs) = Tmpfs::mount(&drive, size) else {
        eprintln!("skipped: cannot mount a tmpfs here (not root)");
        return None;
    };
    site.ois(&[
        "site",
        "init",
        "--servicing-drive",
        drive.to_str().expect("utf8"),
    ])
    .ok();
    Some((site, drive, tmpfs))
}

/// `ois service golden --all-applicable`, which must fail: the run's error.
fn failed_service_error(site: &TestSite) -> String {
    let run = site
        .ois(&["service", "golden", "--all-applicable", "--json"])
        .failed();
    run.json_lines()[0]["error"]
        .as_str()
        .expect("error")
        .to_string()
}

#[test]
fn not_enough_space_on_the_servicing_drive_is_refused() {
    let Some((site, drive, _tmpfs)) = site_with_servicing_drive_on_tmpfs("small-drive", "256k")
    else {
        return;
    };
    let drives = site.ois(&["site", "drives"]).ok();
    assert!(
        drives.stdout.contains(&format!("*  {}", drive.display())),
        "{}",
        drives.stdout
    );
    site.sample_packages();
    let wim = site.golden_image("golden");
    let original = std::fs::read(&wim).expect("read");
    let error = failed_service_error(&site);
    assert!(
        error.contains("not enough free space") && error.contains("small-drive"),
        "{error}"
    );
    assert_eq!(std::fs::read(&wim).expect("read"), original);
    let show = site.ois(&["image", "show", "golden", "--json"]).ok().json();
    assert_eq!(show["runs"][0]["status"], "Failed");
    assert!(
        show["provisioning_mode"].is_null(),
        "a handled failure leaves provisioning mode"
    );
}

#[test]
fn a_stage_on_another_filesystem_replaces_the_original_through_a_copy_beside_it() {
    let Some((site, drive, _tmpfs)) = site_with_servicing_drive_on_tmpfs("servicing-drive", "128m")
    else {
        return;
    };
    site.sample_packages();
    let wim = site.golden_image("golden");
    site.ois(&["service", "golden", "--all-applicable"]).ok();
    assert_eq!(
        index_files(&wim, 1)["Windows/System32/ntoskrnl.exe"],
        payload(40, 110)
    );
    let beside: Vec<String> = std::fs::read_dir(wim.parent().expect("parent"))
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        beside,
        ["golden.wim"],
        "no temporary file is left beside the original"
    );
    let stage = drive.join("ConfigMgr_OfflineImageServicing");
    assert_eq!(std::fs::read_dir(&stage).map(|d| d.count()).unwrap_or(0), 0);
}

#[test]
fn fixture_package_adds_a_directory_renames_and_deletes_a_tree() {
    let site = TestSite::new();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/packages/KB5041000");
    site.ois(&["update", "import", fixture]).ok();
    let wim = site.golden_image("golden");
    let before = index_files(&wim, 2);
    site.ois(&["service", "golden", "--updates", "KB5041000"])
        .ok();
    for i in 1..=2 {
        let after = index_files(&wim, i);
        assert_eq!(after["Windows/Fonts/a.ttf"], b"fixture font A\n");
        assert_eq!(after["Windows/Fonts/b.ttf"], b"fixture font B\n");
        assert_eq!(
            after["Windows/System32/kernel32.old"],
            before["Windows/System32/kernel32.dll"]
        );
        assert!(!after.contains_key("Windows/System32/kernel32.dll"));
        assert!(
            !after.keys().any(|k| k.starts_with("Program Files")),
            "index {i}"
        );
    }
}

/// A run whose log could not be written (here `logs` is a file, so nothing can be created in
/// it) still services the image, and `image show` names no log it never wrote.
#[test]
fn a_run_log_that_could_not_be_written_is_not_named() {
    let (site, wim, original) = TestSite::with_golden_image();
    let logs = site.root().join("logs");
    std::fs::remove_dir_all(&logs).expect("remove logs");
    std::fs::write(&logs, b"not a folder").expect("logs file");
    site.ois(&["service", "golden", "--all-applicable"]).ok();
    assert_ne!(std::fs::read(&wim).expect("read"), original);
    let show = site.ois(&["image", "show", "golden", "--json"]).ok().json();
    assert_eq!(show["runs"][0]["status"], "Successful", "{show}");
    assert!(show["runs"][0]["log_path"].is_null(), "{show}");
    assert!(show["log"].is_null(), "{show}");
    let text = site.ois(&["image", "show", "golden"]).ok().stdout;
    assert!(!text.contains("log: "), "{text}");
}

/// Too little room beside the image for the copy that replaces it: the message says so, and
/// does not suggest another servicing drive, which would not help.
#[test]
fn too_little_space_beside_the_image_is_named_as_such() {
    let site = TestSite::new();
    let drive = site.path("image-drive");
    let Some(_tmpfs) = Tmpfs::mount(&drive, "512k") else {
        eprintln!("skipped: cannot mount a tmpfs here (not root)");
        return;
    };
    site.sample_packages();
    let wim = drive.join("golden.wim");
    let scratch = tempfile::tempdir().expect("scratch");
    ois::sample::golden_image(scratch.path(), &wim).expect("golden image");
    site.ois(&[
        "image",
        "import",
        wim.to_str().expect("utf8"),
        "--name",
        "golden",
    ])
    .ok();
    let original = std::fs::read(&wim).expect("read");
    let error = failed_service_error(&site);
    assert!(
        error.contains("not enough free space") && error.contains("image-drive"),
        "{error}"
    );
    assert!(error.contains("copied beside the original"), "{error}");
    assert!(!error.contains("servicing drive"), "{error}");
    assert_eq!(std::fs::read(&wim).expect("read"), original);
}

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).expect("metadata").len()
}
