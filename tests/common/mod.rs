//! Shared test harness: a temporary site driven through the real `ois` binary, and helpers to
//! read what every index of a WIM holds.
#![allow(dead_code)]

pub mod cbs;
pub mod nginx;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ois::wim::Wim;

pub struct TestSite {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "ois failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn failed(self) -> Run {
        assert_ne!(
            self.code, 0,
            "ois unexpectedly succeeded:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }

    /// One JSON object per line.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect()
    }

    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

pub fn to_run(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl TestSite {
    /// A new site with `ois site init`.
    pub fn new() -> TestSite {
        let s = TestSite::uninitialised();
        s.ois(&["site", "init"]).ok();
        s
    }

    /// A new site with the sample packages and the golden image registered as `golden`;
    /// returns the WIM's path and its bytes before anything touched it.
    pub fn with_golden_image() -> (TestSite, PathBuf, Vec<u8>) {
        let site = TestSite::new();
        site.sample_packages();
        let wim = site.golden_image("golden");
        let original = std::fs::read(&wim).expect("read");
        (site, wim, original)
    }

    pub fn uninitialised() -> TestSite {
        TestSite {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("site")
    }

    /// A scratch directory inside the test's temporary directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        p
    }

    pub fn ois(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_ois"))
            .arg("--site")
            .arg(self.root())
            .args(args)
            .env_remove("OIS_SITE")
            .output()
            .expect("run ois");
        to_run(out)
    }

    /// `ois image import WIM --name NAME`, which must succeed.
    pub fn import_image(&self, wim: &Path, name: &str) -> Run {
        self.ois(&[
            "image",
            "import",
            wim.to_str().expect("utf8"),
            "--name",
            name,
        ])
        .ok()
    }

    /// `ois update import PATH`, which must succeed.
    pub fn import_update(&self, path: &Path) -> Run {
        self.ois(&["update", "import", path.to_str().expect("utf8")])
            .ok()
    }

    /// Starts ois in the background; its stdout and stderr go to `<name>.out` / `<name>.err`
    /// in the test's directory.
    pub fn spawn(&self, name: &str, args: &[&str]) -> std::process::Child {
        let out = std::fs::File::create(self.path(&format!("{name}.out"))).expect("out");
        let err = std::fs::File::create(self.path(&format!("{name}.err"))).expect("err");
        Command::new(env!("CARGO_BIN_EXE_ois"))
            .arg("--site")
            .arg(self.root())
            .args(args)
            .env_remove("OIS_SITE")
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn ois")
    }

    /// What a background ois wrote, for assertion messages.
    pub fn output_of(&self, name: &str) -> String {
        let read = |ext: &str| {
            std::fs::read_to_string(self.dir.path().join(format!("{name}.{ext}")))
                .unwrap_or_default()
        };
        format!("stdout:\n{}\nstderr:\n{}", read("out"), read("err"))
    }

    /// Sets `key = value` lines in site.toml, replacing the keys' current values.
    pub fn configure(&self, toml: &str) {
        let path = self.root().join("site.toml");
        let keys: Vec<&str> = toml
            .lines()
            .filter_map(|l| l.split('=').next().map(str::trim))
            .collect();
        let current = std::fs::read_to_string(&path).expect("site.toml");
        let mut kept: Vec<&str> = current
            .lines()
            .filter(|l| {
                !keys
                    .iter()
                    .any(|k| l.split('=').next().map(str::trim) == Some(*k))
            })
            .collect();
        kept.push(toml);
        std::fs::write(&path, kept.join("\n") + "\n").expect("write site.toml");
    }

    /// The sample golden image (two indexes), registered under `name`.
    pub fn golden_image(&self, name: &str) -> PathBuf {
        let wim = self.path(&format!("images/{name}.wim"));
        let scratch = tempfile::tempdir().expect("tempdir");
        ois::sample::golden_image(scratch.path(), &wim).expect("golden image");
        self.import_image(&wim, name);
        wim
    }

    /// The sample packages, imported.
    pub fn sample_packages(&self) -> Vec<PathBuf> {
        let pkgs = ois::sample::sample_packages(&self.path("packages")).expect("packages");
        let mut args = vec!["update", "import"];
        let strs: Vec<&str> = pkgs.iter().map(|p| p.to_str().expect("utf8")).collect();
        args.extend(strs);
        self.ois(&args).ok();
        pkgs
    }
}

/// Every regular file of an index, by path relative to the image root.
pub fn index_files(wim: &Path, index: u32) -> BTreeMap<String, Vec<u8>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("x");
    Wim::open(wim, false)
        .expect("open")
        .extract_image(index, &target)
        .expect("extract");
    tree_bytes(&target)
}

/// Every regular file under `dir`, by relative path, with its bytes; empty when `dir` is
/// missing.
pub fn tree_bytes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir)
                    .expect("prefix")
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

/// The NAL path of a test distribution point named `server`.
pub fn nal(server: &str) -> String {
    format!(r#"["Display=\\{server}\"]MSWNET:["SMS_SITE=PS1"]\\{server}\"#)
}

pub fn image_count(wim: &Path) -> u32 {
    Wim::open(wim, false).expect("open").header().image_count
}

/// Polls `condition` every 50 ms until it holds; panics with `what` after `seconds`.
pub fn wait_for(seconds: u64, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {seconds} s waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    ois::fsutil::hex(&sha2::Sha256::digest(bytes))
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Every file under `dir` (recursively); empty when it is missing.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                walk(&e.path(), out);
            } else {
                out.push(e.path());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

/// Whether `tool` is installed; says the test is skipped when it is not. Under
/// `scripts/test.sh` (which installs every tool first) a missing tool fails the test instead,
/// so that CI cannot pass by skipping.
pub fn have_or_skip(tool: &str) -> bool {
    let ok = have(tool);
    if !ok {
        skip_or_fail(&format!("{tool} is not installed"));
    }
    ok
}

/// Says why a test is skipped, or fails it when the run requires every tool
/// (`OIS_TEST_REQUIRE_TOOLS`, set by `scripts/test.sh`, or `CI`).
pub fn skip_or_fail(why: &str) {
    assert!(
        std::env::var_os("OIS_TEST_REQUIRE_TOOLS").is_none() && std::env::var_os("CI").is_none(),
        "{why}: scripts/setup.sh installs it"
    );
    eprintln!("skipped: {why} (scripts/setup.sh installs it)");
}

pub mod hive;
