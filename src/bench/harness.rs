//! `ois bench run`: every strategy on copies of the same input, alternating, several times.

use std::path::{Path, PathBuf};

use super::measure;
use super::measure::Sample;
use super::report::{self, Report, RunRecord, StrategyResult};
use super::strategies::{self, io, Input, Outcome};
use super::BenchError;
use crate::image::inspect::index_info;
use crate::wim::Wim;

/// What to measure, and where.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub wim: PathBuf,
    /// Update packages (directories or CABs), applied in this order by the baselines.
    pub packages: Vec<PathBuf>,
    /// Where the report goes (`bench.md`, `bench.json`) and the work folder `work/`.
    pub out: PathBuf,
    pub repetitions: usize,
    /// Images serviced at once for the parallel-scaling comparison (0 skips it).
    pub images: usize,
    /// The strategies to measure; empty measures all.
    pub only: Vec<Key>,
    /// The `ois` executable that is measured.
    pub ois: PathBuf,
    /// `wimlib-imagex`; None when it is not installed.
    pub wimlib_imagex: Option<PathBuf>,
    /// Drop the page cache before every timed step (root only), so that each strategy starts
    /// from the disk as a monthly run on a big image does.
    pub cold: bool,
}

/// The strategies, in their table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Ois,
    Script,
    Mount,
    Jobs1,
    Parallel,
    Floor,
    Copy,
}

impl Key {
    pub const ALL: [Key; 7] = [
        Key::Ois,
        Key::Script,
        Key::Mount,
        Key::Jobs1,
        Key::Parallel,
        Key::Floor,
        Key::Copy,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Key::Ois => "ois",
            Key::Script => "wimlib-script",
            Key::Mount => "mount-style",
            Key::Jobs1 => "ois-images-jobs1",
            Key::Parallel => "ois-images-parallel",
            Key::Floor => "floor",
            Key::Copy => "copy",
        }
    }

    pub fn title(self, images: usize) -> String {
        match self {
            Key::Ois => "1. ois service (all indexes, clean rebuild)".into(),
            Key::Script => "2. wimlib-imagex update per index + optimize".into(),
            Key::Mount => "3. mount-style: apply, change files, capture/append".into(),
            Key::Jobs1 => format!("4a. ois service of {images} images, --jobs 1"),
            Key::Parallel => format!("4b. ois service of {images} images, default jobs"),
            Key::Floor => "5. floor: copy WIM + fsync, compress payload once".into(),
            Key::Copy => "6. plain copy: cp + fsync of the WIM".into(),
        }
    }
}

/// Finds a program on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

fn check(what: &str, out: std::process::Output) -> Result<(), BenchError> {
    if out.status.success() {
        return Ok(());
    }
    Err(BenchError::Invalid(format!(
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )))
}

fn ois_setup(
    opts: &BenchOptions,
    run: &Path,
    images: usize,
    import_packages: bool,
) -> Result<(), BenchError> {
    if run.exists() {
        std::fs::remove_dir_all(run).map_err(io(run))?;
    }
    std::fs::create_dir_all(run).map_err(io(run))?;
    let site = run.join("site");
    let out = |mut c: std::process::Command| c.output().map_err(io(&opts.ois));
    check(
        "ois site init",
        out(strategies::ois(&opts.ois, &site, &["site", "init"]))?,
    )?;
    for i in 1..=images {
        let name = if images == 1 {
            "image".to_string()
        } else {
            format!("image{i}")
        };
        let wim = run.join(format!("{name}.wim"));
        std::fs::copy(&opts.wim, &wim).map_err(io(&wim))?;
        let mut c = strategies::ois(&opts.ois, &site, &["image", "import", "--name", &name]);
        c.arg(&wim);
        check("ois image import", out(c)?)?;
    }
    if import_packages {
        let mut c = strategies::ois(&opts.ois, &site, &["update", "import"]);
        c.args(&opts.packages);
        check("ois update import", out(c)?)?;
    }
    Ok(())
}

fn read_input(opts: &BenchOptions, work: &Path) -> Result<Input, BenchError> {
    let wim = Wim::open(&opts.wim, false).map_err(|e| BenchError::Wim(e.to_string()))?;
    let header = wim.header();
    let compression = header
        .compression
        .ok_or_else(|| BenchError::Invalid("the WIM's compression type is unknown".into()))?;
    let indexes = (1..=header.image_count)
        .map(|i| index_info(&wim, i))
        .collect();
    let mut unpacked = Vec::new();
    for (n, p) in opts.packages.iter().enumerate() {
        let dir = work.join("packages").join(n.to_string());
        let manifest = crate::library::unpack(p, &dir)?;
        unpacked.push((manifest, dir));
    }
    Ok(Input {
        wim: opts.wim.clone(),
        indexes,
        compression,
        packages: opts
            .packages
            .iter()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
            .collect(),
        unpacked,
    })
}

/// Runs the comparison and writes `bench.md` and `bench.json` into `opts.out`.
pub fn run(opts: &BenchOptions) -> Result<Report, BenchError> {
    if opts.repetitions == 0 {
        return Err(BenchError::Invalid(
            "--repetitions must be at least 1".into(),
        ));
    }
    let work = opts.out.join("work");
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(io(&work))?;
    }
    std::fs::create_dir_all(&work).map_err(io(&work))?;
    if opts.cold {
        measure::require_cold_start()?;
    }
    measure::set_cold(opts.cold);
    let input = read_input(opts, &work)?;
    let runs = work.join("runs");
    let pristine = work.join("pristine");
    tracing::info!("preparing the sites");
    let ois_run = runs.join("ois");
    ois_setup(opts, &ois_run, 1, false)?;
    strategies::copy_tree(&ois_run, &pristine.join("ois"))?;
    let images_run = runs.join("images");
    let selected = |k: Key| opts.only.is_empty() || opts.only.contains(&k);
    if opts.images > 0 && (selected(Key::Jobs1) || selected(Key::Parallel)) {
        ois_setup(opts, &images_run, opts.images, true)?;
        strategies::copy_tree(&images_run, &pristine.join("images"))?;
    }
    let mut results: Vec<StrategyResult> = Key::ALL
        .iter()
        .map(|k| StrategyResult::new(k.id(), &k.title(opts.images)))
        .collect();
    let missing_tool =
        "wimlib-imagex is not installed (Debian package wimtools; scripts/setup.sh installs it)";
    for (k, r) in Key::ALL.iter().zip(results.iter_mut()) {
        match k {
            k if !selected(*k) => r.skip("not selected (--only)"),
            Key::Script | Key::Mount if opts.wimlib_imagex.is_none() => r.skip(missing_tool),
            Key::Jobs1 | Key::Parallel if opts.images == 0 => r.skip("--images 0"),
            _ => {}
        }
    }
    for rep in 0..opts.repetitions {
        // Alternate the order so drift on a shared machine does not favour one strategy.
        let n = Key::ALL.len();
        for i in 0..n {
            let slot = (i + rep) % n;
            let key = Key::ALL[slot];
            let result = &mut results[slot];
            if result.status != report::Status::Ok {
                continue;
            }
            tracing::info!("repetition {}: {}", rep + 1, key.id());
            let dir = runs.join(key.id());
            let outcome = run_one(key, opts, &input, &pristine, &ois_run, &images_run, &dir);
            match outcome {
                Ok(o) => result.runs.push(RunRecord {
                    repetition: rep + 1,
                    sample: o.sample,
                    import: o.import,
                    output_bytes: o.output_bytes,
                }),
                Err(e) => result.fail(&e.to_string()),
            }
            for d in [&dir, &ois_run, &images_run] {
                if d.exists() {
                    std::fs::remove_dir_all(d).map_err(io(d))?;
                }
            }
        }
    }
    let report = Report::new(opts, &input, results);
    report.write(&opts.out)?;
    std::fs::remove_dir_all(&work).map_err(io(&work))?;
    Ok(report)
}

fn run_one(
    key: Key,
    opts: &BenchOptions,
    input: &Input,
    pristine: &Path,
    ois_run: &Path,
    images_run: &Path,
    dir: &Path,
) -> Result<Outcome, BenchError> {
    let tool = || {
        opts.wimlib_imagex
            .clone()
            .ok_or_else(|| BenchError::Invalid("wimlib-imagex is missing".into()))
    };
    match key {
        Key::Ois => strategies::ois_service(&opts.ois, input, &pristine.join("ois"), ois_run),
        Key::Script => strategies::script(&tool()?, input, dir),
        Key::Mount => strategies::mount(&tool()?, input, dir),
        Key::Jobs1 => strategies::ois_images(
            &opts.ois,
            &pristine.join("images"),
            images_run,
            opts.images,
            Some(1),
        ),
        Key::Parallel => strategies::ois_images(
            &opts.ois,
            &pristine.join("images"),
            images_run,
            opts.images,
            None,
        ),
        Key::Floor => strategies::floor(&opts.ois, input, dir),
        Key::Copy => strategies::plain_copy(input, dir),
    }
}

/// Total of a run's sample and its import, for "import + service".
pub fn with_import(r: &RunRecord) -> Sample {
    r.import.unwrap_or_default().then(r.sample)
}
