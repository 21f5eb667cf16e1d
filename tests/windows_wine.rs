//! The Windows build of ois (x86_64-pc-windows-gnu) under Wine: site init, import of a
//! file-level package and of a WIM made by wimlib-imagex on Linux, `ois service` in direct
//! mode and `image show`, then the serviced WIM's bytes read back on Linux by wimlib-imagex.
//!
//! `scripts/test.sh` builds `ois.exe` first (`OIS_TEST_WINDOWS_EXE` names another one). Wine
//! 8.0 (Debian 12) lacks `bcryptprimitives.dll!ProcessPrng`, which Rust's std imports, so the
//! test builds a stand-in from tests/wine/ with mingw and puts it beside the copy of ois.exe in
//! its temporary folder only; it is never shipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{have_or_skip, skip_or_fail, to_run, Run};

const TARGET: &str = "x86_64-pc-windows-gnu";

fn windows_exe() -> Option<PathBuf> {
    let exe = std::env::var_os("OIS_TEST_WINDOWS_EXE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/{TARGET}/debug/ois.exe"))
        });
    if exe.is_file() {
        Some(exe)
    } else {
        skip_or_fail(&format!(
            "{} is not built (scripts/test.sh builds it: cargo build --target {TARGET})",
            exe.display()
        ));
        None
    }
}

/// `Z:` is Wine's drive for the Linux root.
fn win(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

struct WineOis {
    dir: PathBuf,
    prefix: PathBuf,
    site: PathBuf,
}

impl WineOis {
    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new("wine")
            .arg(self.dir.join("ois.exe"))
            .arg("--site")
            .arg(win(&self.site))
            .args(args)
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .env_remove("OIS_SITE")
            .output()
            .expect("run wine");
        to_run(out)
    }
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

#[test]
fn the_windows_build_services_a_wim_under_wine() {
    if !(have_or_skip("wine")
        && have_or_skip("x86_64-w64-mingw32-gcc")
        && have_or_skip("wimlib-imagex"))
    {
        return;
    }
    let Some(exe) = windows_exe() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&exe, dir.join("ois.exe")).expect("copy ois.exe");
    let wine_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wine");
    let built = Command::new("x86_64-w64-mingw32-gcc")
        .args(["-shared", "-O2", "-o"])
        .arg(dir.join("bcryptprimitives.dll"))
        .arg(wine_dir.join("bcryptprimitives.c"))
        .arg(wine_dir.join("bcryptprimitives.def"))
        .arg("-ladvapi32")
        .output()
        .expect("mingw gcc");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );

    // One Wine prefix for every run: making one takes longer than the test itself.
    let prefix = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wine-prefix");
    let ois = WineOis {
        dir,
        prefix,
        site: tmp.path().join("site"),
    };

    // The image: captured on Linux by wimlib-imagex, with the Windows facts ois plans by.
    let tree = tmp.path().join("tree");
    ois::sample::write_tree(
        &tree,
        &[
            ("Windows/System32/kernel32.dll", b"kernel32 before".to_vec()),
            ("Windows/System32/ntoskrnl.exe", b"ntoskrnl before".to_vec()),
        ],
    )
    .unwrap();
    let wim = tmp.path().join("images/golden.wim");
    std::fs::create_dir_all(wim.parent().unwrap()).unwrap();
    let (tree_s, wim_s) = (tree.to_str().unwrap(), wim.to_str().unwrap());
    imagex(&["capture", tree_s, wim_s, "Windows 11 Pro", "--compress=LZX"]);
    for property in [
        "WINDOWS/ARCH=9",
        "WINDOWS/EDITIONID=Professional",
        "WINDOWS/VERSION/MAJOR=10",
        "WINDOWS/VERSION/MINOR=0",
        "WINDOWS/VERSION/BUILD=22631",
        "WINDOWS/VERSION/SPBUILD=2861",
    ] {
        imagex(&["info", wim_s, "1", "--image-property", property]);
    }

    // A file-level package: one file replaced, one added.
    let new_kernel = ois::sample::filler(7, 64 * 1024);
    let package = tmp.path().join("packages/KB5099001");
    ois::sample::write_package(
        &package,
        r#"id = "KB5099001"
title = "2026-12 Cumulative Update for Windows 11 (x64)"
classification = "Security Updates"
architecture = "x64"
[[change]]
add = "payload/ntoskrnl.exe"
at = "Windows/System32/ntoskrnl.exe"
[[change]]
add = "payload/wine.txt"
at = "Windows/System32/wine.txt"
"#,
        &[
            ("payload/ntoskrnl.exe", new_kernel.clone()),
            (
                "payload/wine.txt",
                b"serviced by ois.exe under Wine".to_vec(),
            ),
        ],
    )
    .unwrap();

    let init = ois.run(&["site", "init"]).ok();
    assert!(init.stdout.contains("site.db"), "{}", init.stdout);
    assert!(ois.site.join("site.db").is_file());
    ois.run(&["update", "import", &win(&package)]).ok();
    ois.run(&["image", "import", &win(&wim), "--name", "golden"])
        .ok();

    let run = ois
        .run(&["service", "golden", "--all-applicable", "--json"])
        .ok();
    let out = &run.json_lines()[0];
    assert_eq!(out["status"], "Successful", "{}", run.all_output());
    assert_eq!(out["applied"], serde_json::json!(["KB5099001"]));

    let show = ois.run(&["image", "show", "golden", "--json"]).ok();
    let shown = show.json();
    assert!(
        shown.to_string().contains("KB5099001"),
        "image show names the installed update: {shown}"
    );

    // The serviced WIM, read on Linux by the peer tool.
    let out_dir = tmp.path().join("extracted");
    imagex(&[
        "extract",
        wim_s,
        "1",
        "--dest-dir",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(out_dir.join("Windows/System32/ntoskrnl.exe")).unwrap(),
        new_kernel
    );
    assert_eq!(
        std::fs::read(out_dir.join("Windows/System32/wine.txt")).unwrap(),
        b"serviced by ois.exe under Wine"
    );
    assert_eq!(
        std::fs::read(out_dir.join("Windows/System32/kernel32.dll")).unwrap(),
        b"kernel32 before"
    );
    imagex(&["verify", wim_s]);
}
