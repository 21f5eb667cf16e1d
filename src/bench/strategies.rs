//! The strategies compared: each prepares its own copy of the input (not timed) and then runs
//! the servicing it stands for (timed, as child processes).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::measure::{self, Sample};
use super::BenchError;
use crate::image::{IndexDetail, IndexInfo};
use crate::library::{Change, Manifest};
use crate::servicing::plan::targets;
use crate::wim::Compression;

/// The input every strategy services, read once before the runs.
pub struct Input {
    pub wim: PathBuf,
    pub indexes: Vec<IndexInfo>,
    pub compression: Compression,
    /// Package files as given (for `ois update import`).
    pub packages: Vec<PathBuf>,
    /// Each package unpacked (for the baselines), with its manifest.
    pub unpacked: Vec<(Manifest, PathBuf)>,
}

impl Input {
    /// Packages that target `index`, in the order given, as ois's planner decides it.
    pub fn packages_for(&self, index: &IndexInfo) -> Vec<&(Manifest, PathBuf)> {
        let detail = IndexDetail {
            info: index.clone(),
            installed: Vec::new(),
            packages: Vec::new(),
            target: Default::default(),
        };
        self.unpacked
            .iter()
            .filter(|(m, _)| targets(m, &detail))
            .collect()
    }
}

/// One strategy's timed result: its cost, and the size of what it produced.
pub struct Outcome {
    pub sample: Sample,
    pub output_bytes: u64,
    /// For ois: the import of the packages, timed separately.
    pub import: Option<Sample>,
}

pub fn io(path: &Path) -> impl Fn(std::io::Error) -> BenchError + '_ {
    move |e| BenchError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Flushes the untimed copies a strategy just made, so their write-back does not land in
/// the next timed step (it would, unevenly: the copies differ in size between strategies).
pub fn settle() {
    crate::platform::sync_all_filesystems();
}

pub fn size_of(path: &Path) -> Result<u64, BenchError> {
    Ok(std::fs::metadata(path).map_err(io(path))?.len())
}

/// Copies a directory tree (sites with their WIMs), replacing `dest`.
pub fn copy_tree(src: &Path, dest: &Path) -> Result<(), BenchError> {
    if dest.exists() {
        std::fs::remove_dir_all(dest).map_err(io(dest))?;
    }
    std::fs::create_dir_all(dest).map_err(io(dest))?;
    for e in std::fs::read_dir(src).map_err(io(src))? {
        let e = e.map_err(io(src))?;
        let (from, to) = (e.path(), dest.join(e.file_name()));
        if e.file_type().map_err(io(&from))?.is_dir() {
            copy_tree(&from, &to)?;
        } else {
            std::fs::copy(&from, &to).map_err(io(&to))?;
        }
    }
    Ok(())
}

pub fn ois(exe: &Path, site: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(exe);
    c.arg("--site").arg(site).arg("--quiet").args(args);
    c.env_remove("OIS_SITE");
    c
}

/// Strategy 1: `ois update import` of the packages, then `ois service` of every index.
pub fn ois_service(
    exe: &Path,
    input: &Input,
    pristine: &Path,
    run: &Path,
) -> Result<Outcome, BenchError> {
    copy_tree(pristine, run)?;
    settle();
    let site = run.join("site");
    let mut import = ois(exe, &site, &["update", "import"]);
    import.args(&input.packages);
    let import = measure::run(
        "ois update import",
        &mut import,
        &run.join("import.log"),
        None,
    )?;
    let sample = measure::run(
        "ois service",
        &mut ois(exe, &site, &["service", "image", "--all-applicable"]),
        &run.join("service.log"),
        None,
    )?;
    Ok(Outcome {
        sample,
        output_bytes: size_of(&run.join("image.wim"))?,
        import: Some(import),
    })
}

/// Strategy 4: several images in one `ois service`, with the given `--jobs` (None: default).
pub fn ois_images(
    exe: &Path,
    pristine: &Path,
    run: &Path,
    images: usize,
    jobs: Option<usize>,
) -> Result<Outcome, BenchError> {
    copy_tree(pristine, run)?;
    settle();
    let site = run.join("site");
    let names: Vec<String> = (1..=images).map(|i| format!("image{i}")).collect();
    let mut cmd = ois(exe, &site, &["service", "--all-applicable"]);
    cmd.args(&names);
    if let Some(j) = jobs {
        cmd.arg("--jobs").arg(j.to_string());
    }
    let sample = measure::run(
        "ois service (several images)",
        &mut cmd,
        &run.join("service.log"),
        None,
    )?;
    let mut total = 0;
    for i in 1..=images {
        total += size_of(&run.join(format!("image{i}.wim")))?;
    }
    Ok(Outcome {
        sample,
        output_bytes: total,
        import: None,
    })
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\\\""))
}

/// The `wimlib-imagex update` command lines for one index.
fn update_script(input: &Input, index: &IndexInfo) -> String {
    let mut lines = String::new();
    for (m, dir) in input.packages_for(index) {
        for c in &m.changes {
            let line = match c {
                Change::Add { source, target } => format!(
                    "add {} {}",
                    quote(&dir.join(source).to_string_lossy()),
                    quote(&format!("/{target}"))
                ),
                Change::Delete { path } => {
                    format!("delete --force --recursive {}", quote(&format!("/{path}")))
                }
                Change::Rename { from, to, .. } => format!(
                    "rename {} {}",
                    quote(&format!("/{from}")),
                    quote(&format!("/{to}"))
                ),
            };
            lines.push_str(&line);
            lines.push('\n');
        }
    }
    lines
}

/// Strategy 2: the best script with the wimlib command line: `update` per index (appends),
/// then `optimize` (a rebuild that drops the replaced data, as ois does).
pub fn script(tool: &Path, input: &Input, run: &Path) -> Result<Outcome, BenchError> {
    prepare(run)?;
    let wim = run.join("install.wim");
    std::fs::copy(&input.wim, &wim).map_err(io(&wim))?;
    settle();
    let mut total = Sample::default();
    for index in &input.indexes {
        let cmds = run.join(format!("update-{}.txt", index.index));
        std::fs::write(&cmds, update_script(input, index)).map_err(io(&cmds))?;
        let mut c = Command::new(tool);
        c.arg("update").arg(&wim).arg(index.index.to_string());
        total = total.then(measure::run(
            "wimlib-imagex update",
            &mut c,
            &run.join(format!("update-{}.log", index.index)),
            Some(&cmds),
        )?);
    }
    let mut c = Command::new(tool);
    c.arg("optimize").arg(&wim);
    total = total.then(measure::run(
        "wimlib-imagex optimize",
        &mut c,
        &run.join("optimize.log"),
        None,
    )?);
    Ok(Outcome {
        sample: total,
        output_bytes: size_of(&wim)?,
        import: None,
    })
}

fn prepare(run: &Path) -> Result<(), BenchError> {
    if run.exists() {
        std::fs::remove_dir_all(run).map_err(io(run))?;
    }
    std::fs::create_dir_all(run).map_err(io(run))
}

/// Strategy 3: mount-style, as DISM-based tools work: apply each index to a folder, change the
/// files there, capture the folder back into a new WIM.
pub fn mount(tool: &Path, input: &Input, run: &Path) -> Result<Outcome, BenchError> {
    prepare(run)?;
    settle();
    let new = run.join("new.wim");
    let mut total = Sample::default();
    for (n, index) in input.indexes.iter().enumerate() {
        let dir = run.join("mount");
        let mut c = Command::new(tool);
        c.arg("apply")
            .arg(&input.wim)
            .arg(index.index.to_string())
            .arg(&dir);
        total = total.then(measure::run(
            "wimlib-imagex apply",
            &mut c,
            &run.join(format!("apply-{n}.log")),
            None,
        )?);
        let ((), changed) = measure::in_process(|| {
            for (m, pkg) in input.packages_for(index) {
                for c in &m.changes {
                    change_folder(&dir, pkg, c)?;
                }
            }
            Ok(())
        })?;
        total = total.then(changed);
        let mut c = Command::new(tool);
        if n == 0 {
            c.arg("capture").arg(&dir).arg(&new).arg(&index.name);
            c.arg(format!("--compress={}", input.compression.as_str()));
        } else {
            c.arg("append").arg(&dir).arg(&new).arg(&index.name);
        }
        c.arg("--check");
        total = total.then(measure::run(
            "wimlib-imagex capture/append",
            &mut c,
            &run.join(format!("capture-{n}.log")),
            None,
        )?);
        let ((), removed) =
            measure::in_process(|| std::fs::remove_dir_all(&dir).map_err(io(&dir)))?;
        total = total.then(removed);
    }
    Ok(Outcome {
        sample: total,
        output_bytes: size_of(&new)?,
        import: None,
    })
}

/// An image path resolved in a folder case-insensitively, as Windows would.
fn resolve(root: &Path, image_path: &str) -> PathBuf {
    let mut cur = root.to_path_buf();
    for part in image_path.split('/').filter(|p| !p.is_empty()) {
        let exact = cur.join(part);
        if exact.exists() {
            cur = exact;
            continue;
        }
        let found = std::fs::read_dir(&cur).ok().and_then(|rd| {
            rd.filter_map(Result::ok)
                .find(|e| e.file_name().to_string_lossy().eq_ignore_ascii_case(part))
                .map(|e| e.path())
        });
        cur = found.unwrap_or(exact);
    }
    cur
}

fn change_folder(root: &Path, pkg: &Path, change: &Change) -> Result<(), BenchError> {
    match change {
        Change::Add { source, target } => overlay(&pkg.join(source), &resolve(root, target)),
        Change::Delete { path } => {
            let p = resolve(root, path);
            if p.is_dir() {
                std::fs::remove_dir_all(&p).map_err(io(&p))
            } else {
                std::fs::remove_file(&p).map_err(io(&p))
            }
        }
        Change::Rename { from, to, .. } => {
            let (a, b) = (resolve(root, from), resolve(root, to));
            std::fs::rename(&a, &b).map_err(io(&a))
        }
    }
}

/// Adds a file or a tree over what is there, replacing files (a hard-linked file is
/// unlinked first, so its other names keep the old content, as in a WIM).
fn overlay(src: &Path, dest: &Path) -> Result<(), BenchError> {
    if src.is_dir() {
        std::fs::create_dir_all(dest).map_err(io(dest))?;
        for e in std::fs::read_dir(src).map_err(io(src))? {
            let e = e.map_err(io(src))?;
            let name = e.file_name();
            overlay(&e.path(), &resolve(dest, &name.to_string_lossy()))?;
        }
        return Ok(());
    }
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    if dest.exists() {
        std::fs::remove_file(dest).map_err(io(dest))?;
    }
    std::fs::copy(src, dest).map_err(io(dest))?;
    Ok(())
}

/// Strategy 5: the floor, run as `ois bench floor` so it is measured like the others.
/// Strategy 6: the lowest cost of writing a new file of the image: `cp` and an fsync of the
/// copy (coreutils `sync FILE`), with no servicing at all.
pub fn plain_copy(input: &Input, run: &Path) -> Result<Outcome, BenchError> {
    prepare(run)?;
    settle();
    let out = run.join("copy.wim");
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(r#"cp -- "$1" "$2" && sync -- "$2""#)
        .arg("sh")
        .arg(&input.wim)
        .arg(&out);
    let sample = measure::run("cp + fsync", &mut c, &run.join("copy.log"), None)?;
    Ok(Outcome {
        sample,
        output_bytes: size_of(&out)?,
        import: None,
    })
}

pub fn floor(exe: &Path, input: &Input, run: &Path) -> Result<Outcome, BenchError> {
    prepare(run)?;
    settle();
    let out = run.join("copy.wim");
    let mut c = Command::new(exe);
    c.args(["--quiet", "bench", "floor", "--wim"])
        .arg(&input.wim)
        .arg("--out")
        .arg(&out)
        .arg("--compression")
        .arg(input.compression.as_str());
    for (m, dir) in &input.unpacked {
        if m.changes.iter().any(|c| matches!(c, Change::Add { .. })) {
            c.arg("--payload").arg(dir);
        }
    }
    let sample = measure::run("ois bench floor", &mut c, &run.join("floor.log"), None)?;
    let payload = out.with_extension("payload.wim");
    let extra = if payload.exists() {
        size_of(&payload)?
    } else {
        0
    };
    Ok(Outcome {
        sample,
        output_bytes: size_of(&out)? + extra,
        import: None,
    })
}
