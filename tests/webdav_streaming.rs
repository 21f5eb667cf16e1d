//! Pushes to WebDAV DPs stream the image: the ois process's memory stays bounded whatever the
//! image size, and the bytes that land are the image's.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::nginx::Nginx;
use common::{nal, TestSite};
use sha2::{Digest, Sha256};

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

/// An uncompressed WIM of about `size` bytes, imported as `name`. The payload is written in
/// pieces: this process stays small, like the ois process it measures.
fn import_large_image(site: &TestSite, name: &str, size: usize) -> std::path::PathBuf {
    let tree = site.path(&format!("{name}-tree"));
    let dir = tree.join("Windows/System32");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for (file, seed) in [("payload1.bin", 0x5eed_u64), ("payload2.bin", 0xfeed)] {
        let mut f = std::fs::File::create(dir.join(file)).expect("create");
        const PIECE: usize = 4 << 20;
        for i in 0..(size / 2).div_ceil(PIECE) {
            let len = PIECE.min(size / 2 - i * PIECE);
            f.write_all(&noise(len, seed + i as u64)).expect("write");
        }
    }
    let wim = site.path(&format!("{name}.wim"));
    ois::sample::build_wim(
        &wim,
        ois::wim::Compression::None,
        &[ois::sample::IndexSpec {
            name: "Large",
            edition: "Enterprise",
            architecture: ois::library::Architecture::X64,
            build: 22631,
            tree: &tree,
        }],
    )
    .expect("wim");
    // The tree is not needed any more: keep the disk footprint to the WIM and the DP's copy.
    std::fs::remove_dir_all(&tree).expect("remove the tree");
    site.import_image(&wim, name);
    wim
}

fn sha256_of_file(path: &Path) -> String {
    let mut f = std::fs::File::open(path).expect("open");
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The high-water mark of a process's resident memory, in KiB, while it lives.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs ois to its end and returns (exit status, stdout, stderr, peak RSS in KiB). The peak is
/// the process's own VmHWM, sampled until it exits: wait4's ru_maxrss would also count the
/// memory of this test process, which the child was spawned from.
fn run_measured(site: &TestSite, args: &[&str]) -> (bool, String, String, u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ois"))
        .arg("--site")
        .arg(site.root())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ois");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let readers = std::thread::spawn(move || {
        let (mut out, mut err) = (String::new(), String::new());
        let _ = stdout.read_to_string(&mut out);
        let _ = stderr.read_to_string(&mut err);
        (out, err)
    });
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = vm_hwm_kib(child.id()) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (out, err) = readers.join().expect("output readers");
    (status.success(), out, err, peak)
}

#[test]
fn a_webdav_push_streams_the_image_with_bounded_memory() {
    const IMAGE: usize = 300 << 20;
    let site = TestSite::new();
    let wim = import_large_image(&site, "large", IMAGE);
    let size = std::fs::metadata(&wim).expect("meta").len();
    assert!(size >= IMAGE as u64, "{size}");
    let expected = sha256_of_file(&wim);
    let nginx = Nginx::start(0, None);
    site.ois(&["dp", "add", &nal("LINUXDP"), "--target", &nginx.url("dp")])
        .ok();

    let (ok, out, err, peak_kib) = run_measured(
        &site,
        &["image", "distribute", "large", "--dp", &nal("LINUXDP")],
    );
    assert!(ok, "{out}{err}");
    assert!(peak_kib > 0, "VmHWM was read");
    // One transfer may hold 64 MiB; the process itself needs a few tens more.
    let bound_kib = 128 << 10;
    assert!(
        peak_kib < bound_kib,
        "peak RSS {} MiB for a {} MiB image (bound {} MiB)",
        peak_kib >> 10,
        size >> 20,
        bound_kib >> 10
    );

    let shown = site.ois(&["image", "show", "large", "--json"]).ok().json();
    let id = shown["image"]["id"].as_i64().expect("image id");
    assert_eq!(shown["image"]["sha256"], expected.as_str());
    let landed = nginx
        .www()
        .join(format!("dp/ois/images/{id}/{expected}.wim"));
    assert_eq!(
        std::fs::metadata(&landed).expect("on the DP").len(),
        size,
        "{}",
        landed.display()
    );
    assert_eq!(sha256_of_file(&landed), expected);
    let leftovers: Vec<_> = common::files_under(&nginx.www())
        .into_iter()
        .filter(|f| f.to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(
        std::fs::read_to_string(landed.with_extension("wim.sha256")).expect("checksum file"),
        format!("{expected}  {expected}.wim\n")
    );
}
