//! `ois bench`: the generator's determinism and realism, and the harness's report. Nothing here
//! asserts a timing: the machine is shared and noisy.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{index_files, tree_bytes, TestSite};

fn ois(args: &[&str]) -> common::Run {
    let out = Command::new(env!("CARGO_BIN_EXE_ois"))
        .args(args)
        .env_remove("OIS_SITE")
        .output()
        .expect("run ois");
    common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn generate(out: &Path, seed: &str) -> serde_json::Value {
    ois(&[
        "bench",
        "generate",
        "--out",
        out.to_str().expect("utf8"),
        "--size",
        "4MiB",
        "--indexes",
        "3",
        "--seed",
        seed,
        "--json",
    ])
    .ok()
    .json()
}

#[test]
fn generator_is_deterministic_realistic_and_serviceable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    let ga = generate(&a, "7");
    generate(&b, "7");
    generate(&c, "8");

    // Same seed, same bytes: every package file, and every file of every index. (The WIM
    // container itself carries a fresh GUID and capture times, as every WIM writer does.)
    assert_eq!(
        tree_bytes(&a.join("packages")),
        tree_bytes(&b.join("packages"))
    );
    assert_ne!(
        tree_bytes(&a.join("packages")),
        tree_bytes(&c.join("packages"))
    );
    let (wa, wb, wc) = (
        a.join("install.wim"),
        b.join("install.wim"),
        c.join("install.wim"),
    );
    assert_eq!(common::image_count(&wa), 3, "several editions");
    for i in 1..=3 {
        assert_eq!(index_files(&wa, i), index_files(&wb, i), "index {i}");
    }
    assert_ne!(index_files(&wa, 1), index_files(&wc, 1));

    // Editions share nearly all their content.
    let (one, two) = (index_files(&wa, 1), index_files(&wa, 2));
    let shared = one.iter().filter(|(k, v)| two.get(*k) == Some(v)).count();
    assert!(
        shared * 100 >= one.len() * 95,
        "{shared} of {} shared",
        one.len()
    );

    // A Windows-like tree with WinSxS hard links into System32.
    assert!(one.keys().any(|k| k.starts_with("Windows/System32/")));
    assert!(one.keys().any(|k| k.starts_with("Windows/WinSxS/")));
    assert!(one.keys().any(|k| k.starts_with("Program Files/")));
    let dir = tempfile::tempdir().expect("tempdir");
    let x = dir.path().join("x");
    ois::wim::Wim::open(&wa, false)
        .expect("open")
        .extract_image(1, &x)
        .expect("extract");
    let linked = files_with_links(&x);
    assert!(linked > 0, "hard links present");
    assert!(ga["hard_links"].as_u64().unwrap_or(0) > 0);

    // LZX ratio like a real install.wim.
    let ratio = ga["compression_ratio"].as_f64().expect("ratio");
    assert!((0.35..=0.50).contains(&ratio), "compression ratio {ratio}");

    // The packages import and service cleanly, every index.
    let site = TestSite::new();
    site.ois(&[
        "image",
        "import",
        wa.to_str().expect("utf8"),
        "--name",
        "gen",
    ])
    .ok();
    let pkgs: Vec<String> = ga["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| p.as_str().expect("path").to_string())
        .collect();
    assert_eq!(pkgs.len(), 3);
    let mut args = vec!["update", "import"];
    args.extend(pkgs.iter().map(String::as_str));
    site.ois(&args).ok();
    let out = site
        .ois(&["service", "gen", "--all-applicable", "--json"])
        .ok();
    let text = out.all_output();
    for kb in ["KB9000001", "KB9000002", "KB9000003"] {
        assert!(text.contains(kb), "{kb} applied: {text}");
    }
    let after = index_files(&wa, 2);
    assert!(
        !after.keys().any(|k| k.starts_with("Windows/INF/")),
        "cleanup deleted INF"
    );
    assert!(
        after
            .keys()
            .any(|k| k.starts_with("Windows/servicing/Stack/")),
        "small package added"
    );
    assert!(after.keys().any(|k| k.ends_with(".old")), "cleanup renamed");
    let replaced = one
        .iter()
        .filter(|(k, v)| after.get(*k).is_some_and(|n| n != *v))
        .count();
    assert!(replaced >= 3, "the CU replaced files ({replaced})");
}

fn files_with_links(root: &Path) -> usize {
    let mut n = 0;
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            let m = std::fs::symlink_metadata(&p).expect("meta");
            if m.is_dir() {
                stack.push(p);
            } else if m.nlink() > 1 {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn harness_reports_every_strategy() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("bench");
    ois(&[
        "bench",
        "run",
        "--size",
        "3MiB",
        "--indexes",
        "2",
        "--repetitions",
        "1",
        "--images",
        "2",
        "--out",
        out.to_str().expect("utf8"),
    ])
    .ok();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("bench.json")).expect("bench.json"))
            .expect("JSON");
    let md = std::fs::read_to_string(out.join("bench.md")).expect("bench.md");
    let strategies = json["strategies"].as_array().expect("strategies");
    let ids: Vec<&str> = strategies
        .iter()
        .map(|s| s["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        [
            "ois",
            "wimlib-script",
            "mount-style",
            "ois-images-jobs1",
            "ois-images-parallel",
            "floor",
            "copy"
        ]
    );
    for s in strategies {
        let title = s["title"].as_str().expect("title");
        assert!(md.contains(title), "{title} in the Markdown");
        match s["status"].as_str().expect("status") {
            "ok" => {
                assert_eq!(s["runs"].as_array().expect("runs").len(), 1, "{title}");
                assert!(s["median"]["wall_s"].as_f64().is_some(), "{title}");
                assert!(
                    s["median"]["output_bytes"].as_u64().unwrap_or(0) > 0,
                    "{title}"
                );
            }
            "skipped" => assert!(
                s["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "{title}"
            ),
            other => panic!("{title}: {other}: {}", s["reason"]),
        }
    }
    for id in [
        "ois",
        "ois-images-jobs1",
        "ois-images-parallel",
        "floor",
        "copy",
    ] {
        let s = strategies.iter().find(|s| s["id"] == id).expect("strategy");
        assert_eq!(s["status"], "ok", "{id} never needs another tool");
    }
    if common::have("wimlib-imagex") {
        for s in strategies {
            assert_eq!(s["status"], "ok", "{}", s["id"]);
        }
    }
    assert!(json["ratios"].as_array().expect("ratios").len() >= 5);
    assert!(json["machine"]["cores"].as_u64().unwrap_or(0) >= 1);
    assert!(md.contains("| ratio |"));
}

#[test]
fn a_cold_run_drops_the_page_cache_or_says_it_needs_root() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("bench");
    let args = [
        "bench",
        "run",
        "--size",
        "3MiB",
        "--indexes",
        "1",
        "--repetitions",
        "1",
        "--images",
        "0",
        "--only",
        "ois,copy",
        "--cold",
        "--out",
        out.to_str().expect("utf8"),
    ];
    let can_drop = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/sys/vm/drop_caches")
        .is_ok();
    if !can_drop {
        let failed = ois(&args).failed();
        assert!(failed.stderr.contains("needs root"), "{}", failed.stderr);
        return;
    }
    ois(&args).ok();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("bench.json")).expect("bench.json"))
            .expect("JSON");
    let strategies = json["strategies"].as_array().expect("strategies");
    let copy = strategies.iter().find(|s| s["id"] == "copy").expect("copy");
    assert_eq!(copy["status"], "ok", "{copy}");
    assert_eq!(
        copy["median"]["output_bytes"].as_u64(),
        json["input"]["wim_bytes"].as_u64(),
        "the plain copy is the whole WIM"
    );
    let ratios = json["ratios"].as_array().expect("ratios");
    assert!(
        ratios.iter().any(|r| r["name"] == "ois / plain copy (wall)"
            && r["value"].as_f64().is_some_and(|v| v > 0.0)),
        "{ratios:?}"
    );
}
