//! An image registered after the updates were imported gets their compressed payloads at its
//! import: compressing never lands in the middle of a servicing run when it could be done
//! before.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{index_files, TestSite};
use ois::sample::filler;

fn compressed_files(site: &TestSite) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(site.root().join("ContentLibrary/compressed"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// The golden image recompressed with XPRESS (it is LZX), by wimlib-imagex.
fn xpress_copy(lzx: &Path, dest: &Path) {
    let out = Command::new("wimlib-imagex")
        .arg("export")
        .arg(lzx)
        .arg("all")
        .arg(dest)
        .arg("--compress=XPRESS")
        .output()
        .expect("run wimlib-imagex");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_logs(site: &TestSite) -> Vec<(PathBuf, String)> {
    common::files_under(&site.root().join("logs/runs"))
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("run log");
            (p, text)
        })
        .collect()
}

#[test]
fn an_image_of_a_new_compression_type_gets_its_payloads_at_import_not_in_its_first_run() {
    if !common::have_or_skip("wimlib-imagex") {
        return;
    }
    let site = TestSite::new();
    let lzx = site.golden_image("lzx");
    site.sample_packages();
    let for_lzx = compressed_files(&site);
    assert!(!for_lzx.is_empty(), "built at update import for LZX");

    let xpress = site.path("images/xpress.wim");
    xpress_copy(&lzx, &xpress);
    let import = site.import_image(&xpress, "xpress");
    let built = compressed_files(&site);
    assert!(
        built.len() > for_lzx.len(),
        "the image import built payloads for XPRESS: {built:?}\n{}",
        import.all_output()
    );
    assert!(
        built
            .iter()
            .filter(|f| !for_lzx.contains(f))
            .all(|f| f.to_string_lossy().contains(".xpress.")),
        "{built:?}"
    );
    assert!(
        import.stdout.contains(&format!(
            "Compressed the payloads of {} update(s) for xpress ahead of its first run",
            built.len() - for_lzx.len()
        )),
        "the import says what it compressed: {}",
        import.all_output()
    );

    let run = site
        .ois(&["service", "xpress", "--all-applicable", "--json"])
        .ok();
    assert!(
        run.json_lines().iter().all(|o| o["status"] == "Successful"),
        "{}",
        run.all_output()
    );
    assert_eq!(compressed_files(&site), built, "nothing built by the run");
    let logs = run_logs(&site);
    assert!(!logs.is_empty(), "the run wrote its log");
    for (path, text) in &logs {
        assert!(
            !text.contains("compressing the payload"),
            "{} shows compression during the run:\n{text}",
            path.display()
        );
    }
    // The run used the payloads: the files landed in the XPRESS image.
    let after = index_files(&xpress, 1);
    assert_eq!(
        after["Windows/System32/ntoskrnl.exe"],
        filler(40, 110 * 1024)
    );
}

#[test]
fn an_image_of_a_compression_type_already_served_builds_nothing_more() {
    let site = TestSite::new();
    site.golden_image("one");
    site.sample_packages();
    let before = compressed_files(&site);
    let mtimes: Vec<_> = before
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .and_then(|m| m.modified())
                .expect("mtime")
        })
        .collect();
    site.golden_image("two");
    assert_eq!(compressed_files(&site), before);
    let after: Vec<_> = before
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .and_then(|m| m.modified())
                .expect("mtime")
        })
        .collect();
    assert_eq!(after, mtimes);
}
