//! ois reads blobs straight out of WIM files made by wimlib-imagex, whatever their resource
//! layout (pipable WIMs), and reads the package manifests of an index without extracting
//! them anywhere and without holding an oversized one in memory.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{index_files, TestSite};
use ois::sample::{filler, write_package, write_tree};

fn imagex(args: &[&str]) {
    let out = Command::new("wimlib-imagex")
        .args(args)
        .output()
        .expect("run wimlib-imagex (apt-get install wimtools)");
    assert!(
        out.status.success(),
        "wimlib-imagex {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Captures `tree` with wimlib-imagex (`extra` are more capture options) and marks its image
/// as Windows 11 Pro x64, as Windows setup media says in its XML.
fn capture(tree: &Path, wim: &Path, extra: &[&str]) {
    let mut args = vec![
        "capture",
        tree.to_str().expect("utf8"),
        wim.to_str().expect("utf8"),
        "Windows 11 Pro",
        "--compress=lzx",
    ];
    args.extend_from_slice(extra);
    imagex(&args);
    imagex(&[
        "info",
        wim.to_str().expect("utf8"),
        "1",
        "--image-property",
        "WINDOWS/ARCH=9",
        "--image-property",
        "WINDOWS/EDITIONID=Professional",
        "--image-property",
        "WINDOWS/VERSION/BUILD=22631",
    ]);
}

fn is_pipable(wim: &Path) -> bool {
    std::fs::read(wim).expect("read")[..8] == *b"WLPWM\0\0\0"
}

/// A pipable WIM (`wimlib-imagex capture --pipable`) is serviced like any other: ois reads
/// its resources (each chunk after its size, chunk table last) to verify the new file, which
/// wimlib keeps pipable.
#[test]
fn pipable_wim_is_serviced_and_stays_pipable() {
    let site = TestSite::new();
    let tree = site.path("tree");
    write_tree(
        &tree,
        &[
            ("Windows/System32/kernel32.dll", filler(1, 300 * 1024)),
            ("Windows/System32/old.dll", filler(2, 70 * 1024)),
            ("Windows/notes.txt", b"kept as is\n".to_vec()),
        ],
    )
    .expect("tree");
    let wim = site.path("images/pipable.wim");
    capture(&tree, &wim, &["--pipable"]);
    assert!(is_pipable(&wim), "wimlib-imagex wrote a pipable WIM");
    let before = index_files(&wim, 1);

    let new_dll = filler(3, 200 * 1024);
    let package = write_package(
        &site.path("packages/KB5050001"),
        r#"id = "KB5050001"
title = "Pipable test update"
architecture = "x64"
[[change]]
add = "payload/new.dll"
at = "Windows/System32/new.dll"
[[change]]
add = "payload/kernel32.dll"
at = "Windows/System32/kernel32.dll"
[[change]]
delete = "Windows/System32/old.dll"
"#,
        &[
            ("payload/new.dll", new_dll.clone()),
            ("payload/kernel32.dll", filler(4, 310 * 1024)),
        ],
    )
    .expect("package");
    site.ois(&["update", "import", package.to_str().expect("utf8")])
        .ok();
    site.ois(&["image", "import", wim.to_str().expect("utf8")])
        .ok();

    let run = site
        .ois(&["service", "pipable", "--updates", "KB5050001", "--json"])
        .ok();
    let out = &run.json_lines()[0];
    assert_eq!(out["status"], "Successful", "{}", run.all_output());

    assert!(
        is_pipable(&wim),
        "the serviced WIM keeps the pipable layout"
    );
    let after = index_files(&wim, 1);
    assert_eq!(after["Windows/System32/new.dll"], new_dll);
    assert_eq!(
        after["Windows/System32/kernel32.dll"],
        filler(4, 310 * 1024)
    );
    assert!(!after.contains_key("Windows/System32/old.dll"));
    assert_eq!(after["Windows/notes.txt"], before["Windows/notes.txt"]);
    // wimlib's own full check of the file ois wrote.
    imagex(&["verify", wim.to_str().expect("utf8")]);
}

/// ois's blob reader decompresses every resource of a pipable WIM to its SHA-1.
#[test]
fn blobs_of_a_pipable_wim_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = dir.path().join("tree");
    write_tree(
        &tree,
        &[
            ("a.bin", filler(7, 100 * 1024 + 5)),
            ("b.txt", b"small\n".to_vec()),
        ],
    )
    .expect("tree");
    let wim: PathBuf = dir.path().join("p.wim");
    capture(&tree, &wim, &["--pipable"]);
    let handle = ois::wim::Wim::open(&wim, false).expect("open");
    let header = handle.header();
    assert!(header.is_pipable);
    let blobs = handle.blobs().expect("blobs");
    let data: Vec<&ois::wim::Blob> = blobs.iter().filter(|b| !b.metadata).collect();
    assert_eq!(data.len(), 2);
    ois::wim::verify_blobs(
        &wim,
        &data,
        header.compression.expect("lzx"),
        header.chunk_size,
    )
    .expect("every blob decompresses to its SHA-1");
}

/// Runs ois with `args` on `site`, `TMPDIR` pointing at `tmpdir`; returns its stderr and peak
/// RSS in MiB (from `wait4`, as `ois bench` measures).
fn ois_measured(site: &TestSite, tmpdir: &Path, args: &[&str]) -> (bool, String, f64) {
    let err_path = site.path("measured.err");
    // Reaped by wait4 below, which also gives the peak RSS that `Child::wait` does not.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(env!("CARGO_BIN_EXE_ois"))
        .arg("--site")
        .arg(site.root())
        .args(args)
        .env_remove("OIS_SITE")
        .env("TMPDIR", tmpdir)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn ois");
    let mut status = 0;
    // SAFETY: rusage is plain data filled by the kernel; the pid is our unreaped child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(rc, child.id() as libc::pid_t, "wait4");
    let stderr = std::fs::read_to_string(&err_path).expect("stderr");
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (ok, stderr, usage.ru_maxrss as f64 / 1024.0)
}

/// `image import` reads the package manifests whose names do not carry a KB. A 1 GiB one (a
/// WIM of a few MB) is skipped with a warning naming it, not extracted to $TMPDIR or read
/// into memory; the small ones are still read and detected.
#[test]
fn oversized_package_manifest_is_skipped_without_scratch_files() {
    let site = TestSite::new();
    let tree = site.path("tree");
    let packages = tree.join("Windows/servicing/Packages");
    write_tree(
        &tree,
        &[(
            "Windows/servicing/Packages/Package_for_RollupFix~31bf3856ad364e35~amd64~~22621.3007.1.6.mum",
            br#"<?xml version="1.0" encoding="utf-8"?><assembly><package identifier="KB5034123" releaseType="Update"></package></assembly>"#.to_vec(),
        )],
    )
    .expect("tree");
    // Sparse: 1 GiB of zeros that XPRESS stores in a few MB (LZX would take a minute here).
    let huge = "Package_for_ServicingStack~31bf3856ad364e35~amd64~~22621.3000.1.1.mum";
    std::fs::File::create(packages.join(huge))
        .and_then(|f| f.set_len(1 << 30))
        .expect("sparse manifest");
    let wim = site.path("images/huge-manifest.wim");
    imagex(&[
        "capture",
        tree.to_str().expect("utf8"),
        wim.to_str().expect("utf8"),
        "Windows 11 Pro",
        "--compress=xpress",
    ]);
    assert!(std::fs::metadata(&wim).expect("wim").len() < 32 << 20);

    let tmpdir = site.path("tmp");
    std::fs::create_dir_all(&tmpdir).expect("tmpdir");
    let (ok, stderr, peak_mib) = ois_measured(
        &site,
        &tmpdir,
        &["image", "import", wim.to_str().expect("utf8")],
    );
    assert!(ok, "import failed: {stderr}");
    eprintln!("peak RSS of the import: {peak_mib:.1} MiB");
    assert!(
        peak_mib < 128.0,
        "import held {peak_mib:.0} MiB: the manifest was read whole"
    );
    assert!(
        stderr.contains(huge) && stderr.contains("not read"),
        "the skipped manifest is named: {stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(&tmpdir)
        .expect("tmpdir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(left.is_empty(), "import wrote to $TMPDIR: {left:?}");

    // The small manifest was read from the WIM: its KB is detected.
    let show = site
        .ois(&["image", "show", "huge-manifest", "--json"])
        .ok()
        .json();
    let installed: Vec<&str> = show["indexes"][0]["installed"]
        .as_array()
        .expect("installed")
        .iter()
        .filter_map(|u| u["id"].as_str())
        .collect();
    assert_eq!(installed, ["KB5034123"], "{show}");
}
