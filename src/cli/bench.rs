//! `ois bench`: generate realistic input, and compare ois with the other ways to service.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::commands::CliError;
use ois::bench::{self, BenchOptions, GenerateOptions};
use ois::wim::Compression;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Generate a Windows-like WIM and matching update packages (deterministic for a seed)
    Generate(GenerateArgs),
    /// Measure ois side by side with wimlib-imagex, mount-style servicing and the copy floor
    Run(RunArgs),
    /// Bytes a pull DP fetches from one image version to the next (whole file vs delta)
    Delta(DeltaArgs),
    /// The floor strategy's work, run as a child by `ois bench run`
    #[command(hide = true)]
    Floor {
        #[arg(long)]
        wim: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_parser = parse_compression)]
        compression: Compression,
        #[arg(long)]
        payload: Vec<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct DeltaArgs {
    /// The version a DP holds
    pub old: PathBuf,
    /// The version it must get
    pub new: PathBuf,
    /// Chunk sizes to compare when cutting by content alone, MIN/AVG/MAX in KiB (repeat);
    /// default 4/16/64
    #[arg(long = "chunks", value_name = "MIN/AVG/MAX")]
    pub chunk_sizes: Vec<String>,
    /// Chunk sizes within big resources when cutting at WIM resources, MIN/AVG/MAX in KiB
    /// (repeat); default the agent's 64/256/1024
    #[arg(long = "resource-chunks", value_name = "MIN/AVG/MAX")]
    pub resource_chunk_sizes: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

fn kib_sizes(option: &str, given: &[String]) -> Result<Vec<(u32, u32, u32)>, CliError> {
    let mut sizes = Vec::new();
    for s in given {
        let kib: Vec<u32> = s.split('/').filter_map(|n| n.trim().parse().ok()).collect();
        let [min, avg, max] = kib[..] else {
            return Err(CliError::Usage(format!(
                "{option} {s:?}: use MIN/AVG/MAX in KiB, e.g. 4/16/64"
            )));
        };
        sizes.push((min << 10, avg << 10, max << 10));
    }
    Ok(sizes)
}

fn delta(a: DeltaArgs) -> Result<u8, CliError> {
    use bench::delta::Cutting;
    use ois::distribution::chunks::{
        AVG_SIZE, MAX_SIZE, MIN_SIZE, RESOURCE_AVG, RESOURCE_MAX, RESOURCE_MIN,
    };
    let mut by_resource = kib_sizes("--resource-chunks", &a.resource_chunk_sizes)?;
    let mut by_content = kib_sizes("--chunks", &a.chunk_sizes)?;
    if by_resource.is_empty() {
        by_resource.push((RESOURCE_MIN, RESOURCE_AVG, RESOURCE_MAX));
    }
    if by_content.is_empty() {
        by_content.push((MIN_SIZE, AVG_SIZE, MAX_SIZE));
    }
    let runs = by_resource
        .into_iter()
        .map(|s| (Cutting::Resources, s))
        .chain(by_content.into_iter().map(|s| (Cutting::Content, s)));
    let mut reports = Vec::new();
    for (cutting, s) in runs {
        reports.push(bench::delta::measure(&a.old, &a.new, cutting, s).map_err(err)?);
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reports).unwrap_or_default()
        );
        return Ok(0);
    }
    for r in &reports {
        let (min, avg, max) = r.chunk_sizes;
        let cut = match r.cutting {
            Cutting::Resources => "resource",
            Cutting::Content => "content",
        };
        println!(
            "{} chunks {}/{}/{} KiB: whole file {} bytes (what a directory or WebDAV DP receives); \
             delta {} bytes ({} index, {} range requests, {} chunks); what changed {} bytes \
             compressed; delta/changed {:.2}; a delta saves {:.1}%",
            cut,
            min >> 10,
            avg >> 10,
            max >> 10,
            r.new_bytes,
            r.delta_bytes,
            r.index_bytes,
            r.requests,
            r.chunks,
            r.changed_bytes,
            r.delta_over_changed,
            100.0 * r.saved_fraction
        );
    }
    Ok(0)
}

/// The shape of a generated image.
#[derive(Args, Debug)]
pub struct Shape {
    /// File data per index, e.g. 4MiB, 1GiB
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    pub size: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Editions (indexes) in the WIM
    #[arg(long, default_value_t = 4)]
    pub indexes: u32,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Output folder (install.wim, packages/, generate.json)
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub shape: Shape,
    /// none, xpress, lzx or lzms
    #[arg(long, default_value = "lzx", value_parser = parse_compression)]
    pub compression: Compression,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Your own WIM to measure on [default: a generated one]
    #[arg(long, requires = "packages")]
    pub wim: Option<PathBuf>,
    /// Your own packages (directories or CABs), with --wim
    #[arg(long = "package", id = "packages")]
    pub packages: Vec<PathBuf>,
    /// The generated input, without --wim
    #[command(flatten)]
    pub shape: Shape,
    /// Repetitions of every strategy
    #[arg(long, default_value_t = 3)]
    pub repetitions: usize,
    /// Images serviced at once for the parallel-scaling comparison (0 skips it)
    #[arg(long, default_value_t = 4)]
    pub images: usize,
    /// Where bench.md and bench.json go
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,
    /// Measure only these strategies (ois, wimlib-script, mount-style, ois-images-jobs1,
    /// ois-images-parallel, floor, copy); the others are reported as skipped
    #[arg(long, value_delimiter = ',', value_parser = parse_strategy)]
    pub only: Vec<bench::harness::Key>,
    /// Drop the page cache before every timed step (needs root), so each strategy reads the
    /// image from disk
    #[arg(long)]
    pub cold: bool,
    #[arg(long)]
    pub json: bool,
}

fn parse_strategy(s: &str) -> Result<bench::harness::Key, String> {
    bench::harness::Key::ALL
        .into_iter()
        .find(|k| k.id() == s)
        .ok_or_else(|| {
            let ids: Vec<&str> = bench::harness::Key::ALL.iter().map(|k| k.id()).collect();
            format!("{s:?}: the strategies are {}", ids.join(", "))
        })
}

fn parse_compression(s: &str) -> Result<Compression, String> {
    match s.to_ascii_lowercase().as_str() {
        "none" => Ok(Compression::None),
        "xpress" => Ok(Compression::Xpress),
        "lzx" => Ok(Compression::Lzx),
        "lzms" => Ok(Compression::Lzms),
        _ => Err(format!("{s:?}: use none, xpress, lzx or lzms")),
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    bench::parse_size(s)
}

fn err(e: bench::BenchError) -> CliError {
    CliError::Other(e.to_string())
}

pub fn run(cmd: BenchCommand) -> Result<u8, CliError> {
    match cmd {
        BenchCommand::Generate(a) => {
            let g = bench::generate(
                &a.out,
                &GenerateOptions {
                    seed: a.shape.seed,
                    size: a.shape.size,
                    indexes: a.shape.indexes,
                    compression: a.compression,
                },
            )
            .map_err(err)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&g).unwrap_or_default());
            } else {
                println!(
                    "Generated {} ({:.1} MiB, {} indexes, {} files, {} hard links, {:.1} MiB per index, ratio {:.2})",
                    g.wim.display(),
                    g.wim_bytes as f64 / (1 << 20) as f64,
                    g.indexes,
                    g.files,
                    g.hard_links,
                    g.expanded_bytes as f64 / (1 << 20) as f64,
                    g.compression_ratio
                );
                for p in &g.packages {
                    println!("  package {}", p.display());
                }
            }
            Ok(0)
        }
        BenchCommand::Run(a) => bench_run(a),
        BenchCommand::Delta(a) => delta(a),
        BenchCommand::Floor {
            wim,
            out,
            compression,
            payload,
        } => {
            let dirs: Vec<&Path> = payload.iter().map(PathBuf::as_path).collect();
            bench::floor::run(&wim, &out, &dirs, compression).map_err(err)?;
            Ok(0)
        }
    }
}

fn bench_run(a: RunArgs) -> Result<u8, CliError> {
    let (wim, packages) = match a.wim {
        Some(w) => (w, a.packages),
        None => {
            let input = a.out.join("input");
            eprintln!("Generating the input in {}", input.display());
            // In a child: a child's peak RSS starts from its parent's (Linux keeps the high-water
            // mark across exec), so the harness must stay small for the RSS column to be true.
            let exe = std::env::current_exe()
                .map_err(|e| CliError::Other(format!("cannot find the ois executable: {e}")))?;
            let out = std::process::Command::new(exe)
                .args(["--quiet", "bench", "generate", "--json", "--out"])
                .arg(&input)
                .args(["--size", &a.shape.size.to_string()])
                .args(["--seed", &a.shape.seed.to_string()])
                .args(["--indexes", &a.shape.indexes.to_string()])
                .output()
                .map_err(|e| CliError::Other(format!("cannot run the generator: {e}")))?;
            if !out.status.success() {
                return Err(CliError::Other(format!(
                    "generating the input failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            let g: bench::Generated = serde_json::from_slice(&out.stdout)
                .map_err(|e| CliError::Other(format!("the generator's answer: {e}")))?;
            (g.wim, g.packages)
        }
    };
    let ois = std::env::current_exe()
        .map_err(|e| CliError::Other(format!("cannot find the ois executable: {e}")))?;
    let report = bench::run(&BenchOptions {
        wim,
        packages,
        out: a.out.clone(),
        repetitions: a.repetitions,
        images: a.images,
        only: a.only,
        ois,
        wimlib_imagex: bench::harness::which("wimlib-imagex"),
        cold: a.cold,
    })
    .map_err(err)?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", report.markdown());
        println!(
            "\nWritten to {} and {}",
            a.out.join("bench.md").display(),
            a.out.join("bench.json").display()
        );
    }
    Ok(0)
}
