//! Crash tests: `ois service` (with file and with registry changes), `ois update import`, `ois
//! image import` and `ois dp add` are killed (SIGKILL,
//! through strace's fault injection) at every fsync, rename, unlink and write to the site
//! database that one traced run of the same command makes, in turn. After each kill: the
//! original WIM is byte-identical or a complete serviced WIM; the repair ends every run; no
//! file is left in the stage, beside the WIM or in `$TMPDIR`; the site database passes its
//! integrity check; and the next run gives every index the bytes a run that was never killed
//! gives it.
//!
//! Set `OIS_CRASH_POINTS=N` to try at most N kill points of each kind (evenly spread), for a
//! quick local run; unset, every point is tried.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{have, index_files};

/// Syscalls that make a state change durable or visible, killed at whatever file they touch.
const FILE_SYSCALLS: &[&str] = &[
    "fsync",
    "fdatasync",
    "rename",
    "renameat",
    "renameat2",
    "unlink",
    "unlinkat",
];
/// Syscalls SQLite writes its database and WAL with, killed only at the site database's files.
const DB_SYSCALLS: &[&str] = &["pwrite64", "write"];

type IndexBytes = BTreeMap<u32, BTreeMap<String, Vec<u8>>>;

/// One scratch folder holding a site and its images at fixed paths: image paths are absolute
/// in the site database and stage names derive from the site's path, so every kill point
/// restores the same template into the same place.
struct Bench {
    dir: tempfile::TempDir,
    template: tempfile::TempDir,
}

impl Bench {
    fn new() -> Bench {
        Bench {
            dir: tempfile::tempdir().expect("tempdir"),
            template: tempfile::tempdir().expect("template"),
        }
    }

    fn site(&self) -> PathBuf {
        self.dir.path().join("site")
    }
    fn images(&self) -> PathBuf {
        self.dir.path().join("images")
    }
    fn wim(&self) -> PathBuf {
        self.images().join("golden.wim")
    }
    fn tmp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }
    fn packages(&self) -> PathBuf {
        self.dir.path().join("packages")
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("TMPDIR", self.tmp()).env_remove("OIS_SITE");
        c
    }

    fn ois_args(&self, args: &[&str]) -> Vec<String> {
        let mut all = vec![
            env!("CARGO_BIN_EXE_ois").to_string(),
            "--site".into(),
            self.site().to_string_lossy().into_owned(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        all
    }

    fn ois(&self, args: &[&str]) -> common::Run {
        let all = self.ois_args(args);
        common::to_run(
            self.command(&all[0])
                .args(&all[1..])
                .output()
                .expect("run ois"),
        )
    }

    /// The site and images as they are now become what every kill point starts from.
    fn save_template(&self) {
        for name in ["site", "images", "packages"] {
            let from = self.dir.path().join(name);
            if from.exists() {
                copy_tree(&from, &self.template.path().join(name));
            }
        }
    }

    fn restore_template(&self) {
        for name in ["site", "images", "packages", "tmp"] {
            let at = self.dir.path().join(name);
            if at.exists() {
                std::fs::remove_dir_all(&at).expect("clear");
            }
            let from = self.template.path().join(name);
            if from.exists() {
                copy_tree(&from, &at);
            }
        }
        std::fs::create_dir_all(self.tmp()).expect("tmp");
    }

    /// How many times one run of `args` makes each syscall of interest.
    fn count_calls(&self, args: &[&str]) -> Vec<KillPoint> {
        let mut points = Vec::new();
        for (syscalls, db_only) in [(FILE_SYSCALLS, false), (DB_SYSCALLS, true)] {
            self.restore_template();
            let log = self.dir.path().join("strace.log");
            let mut c = self.command("strace");
            c.args(["-f", "-qq", "-o"]).arg(&log);
            c.arg("-e").arg(format!("trace={}", syscalls.join(",")));
            if db_only {
                for p in self.db_files() {
                    c.arg("-P").arg(p);
                }
            }
            let out = c.args(self.ois_args(args)).output().expect("strace");
            assert!(
                out.status.success(),
                "the traced run of {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = std::fs::read_to_string(&log).expect("strace log");
            // strace counts `when=N` per thread: the N-th call of whichever thread gets there
            // first. So the points are 1..=the most calls any one thread made.
            let mut per_thread: BTreeMap<(String, String), usize> = BTreeMap::new();
            for line in text.lines() {
                // "TID name(args..." starts a call; "TID <... name resumed>" continues one.
                let Some((tid, rest)) = line.split_once(' ') else {
                    continue;
                };
                let call = rest.trim_start().split_once('(').map(|(name, _)| name);
                if let Some(name) = call.filter(|n| syscalls.contains(n)) {
                    *per_thread
                        .entry((name.to_string(), tid.to_string()))
                        .or_default() += 1;
                }
            }
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for ((name, _), n) in per_thread {
                let most = counts.entry(name).or_default();
                *most = (*most).max(n);
            }
            for (syscall, count) in counts {
                for n in spread(count) {
                    points.push(KillPoint {
                        syscall: syscall.clone(),
                        db_only,
                        n,
                    });
                }
            }
        }
        points
    }

    fn db_files(&self) -> Vec<PathBuf> {
        let site = std::fs::canonicalize(self.site()).unwrap_or(self.site());
        ["site.db", "site.db-wal", "site.db-journal"]
            .iter()
            .map(|f| site.join(f))
            .collect()
    }

    /// Runs `args` under strace, killed at the point's syscall; true when the kill happened.
    fn run_killed(&self, args: &[&str], point: &KillPoint) -> bool {
        let mut c = self.command("strace");
        c.args(["-f", "-qq", "-o", "/dev/null"]);
        c.arg("-e").arg(format!("trace={}", point.syscall));
        c.arg("-e").arg(format!(
            "inject={}:signal=SIGKILL:when={}",
            point.syscall, point.n
        ));
        if point.db_only {
            for p in self.db_files() {
                c.arg("-P").arg(p);
            }
        }
        let out = c.args(self.ois_args(args)).output().expect("strace");
        use std::os::unix::process::ExitStatusExt;
        out.status.signal() == Some(9) || out.status.code() == Some(137)
    }

    fn leftovers(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let stage_root = self.site().join("ConfigMgr_OfflineImageServicing");
        for dir in [stage_root, self.tmp()] {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                found.extend(entries.map(|e| e.expect("entry").path()));
            }
        }
        if let Ok(entries) = std::fs::read_dir(self.images()) {
            found.extend(
                entries
                    .map(|e| e.expect("entry").path())
                    .filter(|p| p != &self.wim()),
            );
        }
        found
    }

    fn integrity_check(&self) -> String {
        let conn = rusqlite::Connection::open(self.site().join("site.db")).expect("open db");
        conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity_check")
    }
}

#[derive(Debug, Clone)]
struct KillPoint {
    syscall: String,
    db_only: bool,
    n: usize,
}

impl std::fmt::Display for KillPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.db_only { " (site database)" } else { "" };
        write!(f, "{} #{}{at}", self.syscall, self.n)
    }
}

/// Which of `count` calls to kill at: all, or at most `OIS_CRASH_POINTS` spread evenly.
fn spread(count: usize) -> Vec<usize> {
    let cap = std::env::var("OIS_CRASH_POINTS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&c| c > 0);
    match cap {
        Some(cap) if cap < count => (0..cap).map(|i| 1 + i * count / cap).collect(),
        _ => (1..=count).collect(),
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp")
        .success();
    assert!(ok, "cp -a {} {}", from.display(), to.display());
}

fn all_indexes(wim: &Path) -> IndexBytes {
    (1..=common::image_count(wim))
        .map(|i| (i, index_files(wim, i)))
        .collect()
}

fn tools_present() -> bool {
    if have("strace") {
        return true;
    }
    common::skip_or_fail("strace is missing");
    false
}

fn make_golden(bench: &Bench) {
    let scratch = tempfile::tempdir().expect("scratch");
    std::fs::create_dir_all(bench.images()).expect("images");
    ois::sample::golden_image(scratch.path(), &bench.wim()).expect("golden image");
}

fn import_golden(bench: &Bench) {
    let wim = bench.wim();
    bench
        .ois(&[
            "image",
            "import",
            wim.to_str().expect("utf8"),
            "--name",
            "golden",
        ])
        .ok();
}

fn import_packages(bench: &Bench) {
    let pkgs = ois::sample::sample_packages(&bench.packages()).expect("packages");
    let mut args = vec!["update", "import"];
    args.extend(pkgs.iter().map(|p| p.to_str().expect("utf8")));
    bench.ois(&args).ok();
}

fn package_args(bench: &Bench) -> Vec<String> {
    let mut entries: Vec<String> = std::fs::read_dir(bench.packages())
        .expect("packages")
        .map(|e| e.expect("entry").path().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    entries
}

/// The bytes of every index after an undisturbed `ois service golden --all-applicable`.
fn expected_after_service(bench: &Bench) -> IndexBytes {
    bench.restore_template();
    if bench
        .ois(&["image", "list", "--json"])
        .ok()
        .stdout
        .contains("golden")
    {
        if !bench
            .ois(&["update", "list", "--json"])
            .ok()
            .stdout
            .contains("KB")
        {
            import_packages(bench);
        }
    } else {
        import_golden(bench);
    }
    bench.ois(&["service", "golden", "--all-applicable"]).ok();
    all_indexes(&bench.wim())
}

/// After a kill: repair, check what the issue names; says what the kill left in place.
fn check_after_kill(
    bench: &Bench,
    point: &KillPoint,
    original: &[u8],
    expected: &IndexBytes,
) -> &'static str {
    let now = std::fs::read(bench.wim()).expect("the WIM must still exist");
    let left = if now == original {
        "original intact"
    } else {
        assert_eq!(
            &all_indexes(&bench.wim()),
            expected,
            "{point}: the WIM differs from the original and is not the complete serviced image"
        );
        "serviced image in place"
    };
    let listed = bench.ois(&["image", "list", "--json"]).ok().json();
    if listed.as_array().is_some_and(|a| !a.is_empty()) {
        bench
            .ois(&["image", "set-provisioning-mode", "golden", "false"])
            .ok();
        let shown = bench
            .ois(&["image", "show", "golden", "--json"])
            .ok()
            .json();
        assert!(
            shown["provisioning_mode"].is_null(),
            "{point}: still in provisioning mode after the repair: {shown}"
        );
        let stuck: Vec<&serde_json::Value> = shown["runs"]
            .as_array()
            .expect("runs")
            .iter()
            .filter(|r| r["status"] == "In progress")
            .collect();
        assert!(
            stuck.is_empty(),
            "{point}: runs still In progress after the repair: {stuck:?}"
        );
    }
    let files = bench.leftovers();
    assert!(files.is_empty(), "{point}: files left behind: {files:?}");
    assert_eq!(bench.integrity_check(), "ok", "{point}");
    left
}

/// What the content library holds besides its files: scratch of imports and runs (incoming
/// areas, `.partial` copies) and compressed payloads the site database does not record.
fn library_scratch(bench: &Bench) -> Vec<String> {
    let library = bench.site().join("ContentLibrary");
    let mut found: Vec<String> = std::fs::read_dir(library.join("incoming"))
        .map(|d| {
            d.map(|e| e.expect("entry").path().display().to_string())
                .collect()
        })
        .unwrap_or_default();
    found.extend(
        common::tree_bytes(&library.join("repeated"))
            .into_keys()
            .filter(|k| k.ends_with(".partial")),
    );
    let conn = rusqlite::Connection::open(bench.site().join("site.db")).expect("db");
    for file in std::fs::read_dir(library.join("compressed"))
        .map(|d| d.map(|e| e.expect("entry").file_name()).collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let name = file.to_string_lossy().into_owned();
        let recorded: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM compressed_payloads WHERE file = ?1",
                [&name],
                |r| r.get(0),
            )
            .expect("query");
        if recorded == 0 {
            found.push(format!("compressed/{name}"));
        }
    }
    found
}

/// Finishes what the killed command was doing, then services, and checks every index.
fn finish_and_compare(bench: &Bench, point: &KillPoint, redo: &[&[&str]], expected: &IndexBytes) {
    for args in redo {
        let run = bench.ois(args);
        assert_eq!(
            run.code,
            0,
            "{point}: `ois {}` after the kill failed:\n{}",
            args.join(" "),
            run.all_output()
        );
    }
    let run = bench.ois(&["service", "golden", "--all-applicable"]);
    assert_eq!(
        run.code,
        0,
        "{point}: the next run failed:\n{}",
        run.all_output()
    );
    assert_eq!(
        &all_indexes(&bench.wim()),
        expected,
        "{point}: the next run did not give the serviced bytes"
    );
    let left = bench.leftovers();
    assert!(left.is_empty(), "{point}: files left behind: {left:?}");
    let scratch = library_scratch(bench);
    assert!(
        scratch.is_empty(),
        "{point}: the next import or run left the content library's scratch: {scratch:?}"
    );
}

fn report(what: &str, points: &[KillPoint], killed: usize, outcomes: &BTreeMap<&str, usize>) {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for p in points {
        let key = if p.db_only {
            format!("{} (db)", p.syscall)
        } else {
            p.syscall.clone()
        };
        *by.entry(key).or_default() += 1;
    }
    eprintln!(
        "{what}: {} kill points ({by:?}), {killed} killed, {} ran to the end; after the kill: {outcomes:?}; every one checked",
        points.len(),
        points.len() - killed
    );
}

/// A site in the state `setup` leaves (from a new site with the golden image's file made),
/// saved as the template; with the original WIM's bytes and every index after a service.
fn prepared(setup: impl FnOnce(&Bench)) -> (Bench, Vec<u8>, IndexBytes) {
    let bench = Bench::new();
    std::fs::create_dir_all(bench.tmp()).expect("tmp");
    bench.ois(&["site", "init"]).ok();
    make_golden(&bench);
    setup(&bench);
    bench.save_template();
    let original = std::fs::read(bench.wim()).expect("wim");
    let expected = expected_after_service(&bench);
    (bench, original, expected)
}

/// Runs `args` killed at each of its kill points in turn, from the template each time, and
/// `check`s after each; returns the points.
fn kill_at_every_point(
    bench: &Bench,
    what: &str,
    args: &[&str],
    check: impl Fn(&KillPoint) -> &'static str,
) -> Vec<KillPoint> {
    let points = bench.count_calls(args);
    assert!(
        points.iter().any(|p| p.db_only),
        "{what}: the traced run wrote nothing to the site database: {points:?}"
    );
    let mut killed = 0;
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for point in &points {
        bench.restore_template();
        killed += usize::from(bench.run_killed(args, point));
        *outcomes.entry(check(point)).or_default() += 1;
    }
    report(what, &points, killed, &outcomes);
    assert!(
        killed * 2 > points.len(),
        "{what}: most points must kill it"
    );
    points
}

#[test]
fn service_killed_at_every_write_keeps_the_original_and_recovers() {
    if !tools_present() {
        return;
    }
    let (bench, original, expected) = prepared(|bench| {
        import_packages(bench);
        import_golden(bench);
    });
    assert_ne!(expected, all_indexes_of_bytes(&bench, &original));
    let points = kill_service_at_every_point(&bench, "ois service", &original, &expected);
    assert!(points.iter().any(|p| p.syscall == "rename"), "{points:?}");
}

/// `ois service golden --all-applicable` killed at each of its points: after each kill the
/// original or the whole serviced image is in place, and finishing gives `expected`.
fn kill_service_at_every_point(
    bench: &Bench,
    what: &str,
    original: &[u8],
    expected: &IndexBytes,
) -> Vec<KillPoint> {
    kill_at_every_point(
        bench,
        what,
        &["service", "golden", "--all-applicable"],
        |point| {
            let left = check_after_kill(bench, point, original, expected);
            finish_and_compare(bench, point, &[], expected);
            left
        },
    )
}

/// The serviced bytes of a WIM given as bytes (the original, to show the service changes it).
fn all_indexes_of_bytes(bench: &Bench, bytes: &[u8]) -> IndexBytes {
    let path = bench.dir.path().join("original-copy.wim");
    std::fs::write(&path, bytes).expect("write");
    let out = all_indexes(&path);
    std::fs::remove_file(&path).expect("remove");
    out
}

#[test]
fn update_import_killed_at_every_write_leaves_a_library_that_serves() {
    if !tools_present() {
        return;
    }
    let (bench, original, expected) = prepared(|bench| {
        ois::sample::sample_packages(&bench.packages()).expect("packages");
        import_golden(bench);
    });
    let packages = package_args(&bench);
    let mut args: Vec<&str> = vec!["update", "import"];
    args.extend(packages.iter().map(String::as_str));
    kill_at_every_point(&bench, "ois update import", &args, |point| {
        let left = check_after_kill(&bench, point, &original, &expected);
        finish_and_compare(&bench, point, &[&args], &expected);
        left
    });
}

#[test]
fn image_import_killed_at_every_write_registers_all_or_nothing() {
    if !tools_present() {
        return;
    }
    let (bench, original, expected) = prepared(import_packages);
    let wim = bench.wim().to_string_lossy().into_owned();
    let args = ["image", "import", wim.as_str(), "--name", "golden"];
    kill_at_every_point(&bench, "ois image import", &args, |point| {
        assert_eq!(
            std::fs::read(bench.wim()).expect("wim"),
            original,
            "{point}: image import changed the WIM"
        );
        // Registered whole (its indexes listed) or not at all.
        let listed = bench.ois(&["image", "list", "--json"]).ok().json();
        let registered = listed.as_array().is_some_and(|a| !a.is_empty());
        if registered {
            let shown = bench
                .ois(&["image", "show", "golden", "--json"])
                .ok()
                .json();
            assert_eq!(
                shown["indexes"].as_array().map(Vec::len),
                Some(2),
                "{point}: registered without its indexes: {shown}"
            );
        }
        check_after_kill(&bench, point, &original, &expected);
        let redo: Vec<&[&str]> = if registered { vec![] } else { vec![&args] };
        finish_and_compare(&bench, point, &redo, &expected);
        if registered {
            "image registered"
        } else {
            "image not registered"
        }
    });
}

/// `ois dp add` with several properties: killed at each write, the DP is there with all of
/// them or not at all; adding it again then works.
#[test]
fn dp_add_killed_at_every_write_adds_all_or_nothing() {
    if !tools_present() {
        return;
    }
    let (bench, _original, _expected) = prepared(import_golden);
    let target = bench.dir.path().join("dp01");
    let target = target.to_string_lossy().into_owned();
    let nal = common::nal("DP01");
    let args = [
        "dp",
        "add",
        nal.as_str(),
        "--target",
        target.as_str(),
        "--boundary-group",
        "HQ",
        "--boundary-group",
        "Branch",
        "--description",
        "first floor",
        "--setting",
        "bandwidth=10",
    ];
    let whole = |bench: &Bench, point: &dyn std::fmt::Display| {
        let shown = bench.ois(&["dp", "show", &nal, "--json"]).ok().json();
        let dp = &shown["dp"];
        let mut groups: Vec<String> = dp["boundary_groups"]
            .as_array()
            .expect("groups")
            .iter()
            .filter_map(|g| g.as_str().map(str::to_string))
            .collect();
        groups.sort();
        assert_eq!(groups, ["Branch", "HQ"], "{point}: {shown}");
        assert_eq!(dp["description"], "first floor", "{point}: {shown}");
    };
    kill_at_every_point(&bench, "ois dp add", &args, |point| {
        let listed = bench.ois(&["dp", "list", "--json"]).ok().json();
        let added = listed.as_array().is_some_and(|a| !a.is_empty());
        if added {
            whole(&bench, point);
        } else {
            bench.ois(&args).ok();
            whole(&bench, point);
        }
        assert_eq!(bench.integrity_check(), "ok", "{point}");
        if added {
            "DP added whole"
        } else {
            "DP not added"
        }
    });
}

/// A one-index image whose SOFTWARE hive hivexregedit wrote, in place of the sample image.
fn registry_image(bench: &Bench) {
    let tree = bench.dir.path().join("registry-tree");
    let config = tree.join("Windows/System32/config");
    std::fs::create_dir_all(&config).expect("mkdir");
    common::hive::software_hive(
        &config.join("SOFTWARE"),
        "22631",
        4460,
        "Professional",
        "23H2",
        &[],
    );
    std::fs::write(tree.join("Windows/System32/ntoskrnl.exe"), b"kernel").expect("kernel");
    std::fs::remove_file(bench.wim()).expect("remove the sample image");
    let wim = bench.wim();
    for args in [
        vec![
            "capture",
            tree.to_str().expect("utf8"),
            wim.to_str().expect("utf8"),
            "Windows 11 Pro",
        ],
        vec![
            "info",
            wim.to_str().expect("utf8"),
            "1",
            "--image-property",
            "WINDOWS/ARCH=9",
        ],
    ] {
        let status = Command::new("wimlib-imagex")
            .args(&args)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("wimlib-imagex");
        assert!(status.success(), "wimlib-imagex {args:?}");
    }
}

/// A package setting a policy and adding a file (its id holds "KB", which the shared setup
/// takes as "the packages are imported").
fn import_registry_package(bench: &Bench) {
    let dir = bench.packages().join("KB-REG-1");
    std::fs::create_dir_all(dir.join("payload")).expect("mkdir");
    std::fs::write(
        dir.join("update.toml"),
        "id = \"KB-REG-1\"\ntitle = \"policy\"\narchitecture = \"x64\"\n[[change]]\nadd = \"payload/readme.txt\"\nat = \"Windows/readme.txt\"\n[[registry]]\nhive = \"SOFTWARE\"\nkey = 'Policies\\Microsoft\\Windows\\WindowsUpdate\\AU'\nset = \"NoAutoUpdate\"\ntype = \"dword\"\ndata = 1\n",
    )
    .expect("manifest");
    std::fs::write(dir.join("payload/readme.txt"), b"policy applied").expect("readme");
    bench
        .ois(&["update", "import", dir.to_str().expect("utf8")])
        .ok();
}

/// A run that changes a hive (extracted into the stage, changed, added back) is killed at
/// every write like any other: the original stays or the complete serviced image replaces it,
/// and the next run gives the undisturbed run's bytes, hive included.
#[test]
fn service_with_registry_changes_killed_at_every_write_keeps_the_original_and_recovers() {
    if !tools_present() || !common::have_or_skip("hivexregedit") {
        return;
    }
    let (bench, original, expected) = prepared(|bench| {
        registry_image(bench);
        import_registry_package(bench);
        import_golden(bench);
    });
    let hive = "Windows/System32/config/SOFTWARE";
    assert_ne!(
        expected[&1][hive],
        all_indexes_of_bytes(&bench, &original)[&1][hive],
        "the run changes the hive"
    );
    let points =
        kill_service_at_every_point(&bench, "ois service (registry)", &original, &expected);
    assert!(points.iter().any(|p| p.syscall == "rename"), "{points:?}");
}
