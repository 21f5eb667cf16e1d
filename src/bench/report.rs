//! The comparison's result: medians per strategy, the ratios the targets are about, the machine
//! it ran on; rendered as Markdown and JSON.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::harness::{with_import, BenchOptions};
use super::measure::{median, Sample};
use super::strategies::{io, Input};
use super::BenchError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Skipped,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub repetition: usize,
    #[serde(flatten)]
    pub sample: Sample,
    /// `ois update import` before the service, for strategy 1.
    pub import: Option<Sample>,
    pub output_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Median {
    pub wall_s: f64,
    pub cpu_s: f64,
    pub peak_rss_mib: f64,
    pub output_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StrategyResult {
    pub id: String,
    pub title: String,
    pub status: Status,
    pub reason: Option<String>,
    pub runs: Vec<RunRecord>,
    pub median: Option<Median>,
}

impl StrategyResult {
    pub fn new(id: &str, title: &str) -> Self {
        StrategyResult {
            id: id.into(),
            title: title.into(),
            status: Status::Ok,
            reason: None,
            runs: Vec::new(),
            median: None,
        }
    }

    pub fn skip(&mut self, reason: &str) {
        self.status = Status::Skipped;
        self.reason = Some(reason.into());
    }

    pub fn fail(&mut self, reason: &str) {
        tracing::error!("{}: {reason}", self.id);
        self.status = Status::Failed;
        self.reason = Some(reason.into());
    }

    fn summarise(&mut self) {
        if self.status != Status::Ok || self.runs.is_empty() {
            return;
        }
        let pick = |f: &dyn Fn(&RunRecord) -> f64| {
            median(&mut self.runs.iter().map(f).collect::<Vec<_>>())
        };
        self.median = Some(Median {
            wall_s: pick(&|r| r.sample.wall_s),
            cpu_s: pick(&|r| r.sample.cpu_s),
            peak_rss_mib: pick(&|r| r.sample.peak_rss_mib),
            output_bytes: pick(&|r| r.output_bytes as f64) as u64,
        });
    }

    fn wall(&self) -> Option<f64> {
        self.median.as_ref().map(|m| m.wall_s)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub os: String,
    pub kernel: String,
    pub ois: String,
    pub wimlib: String,
    pub wimlib_imagex: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InputInfo {
    pub wim: String,
    pub wim_bytes: u64,
    pub compression: String,
    pub indexes: usize,
    pub packages: Vec<String>,
    pub images_for_scaling: usize,
}

/// A ratio the targets speak of, with the target when there is one.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub name: String,
    pub value: Option<f64>,
    /// "<= 0.5" style bound; None for informative ratios.
    pub target: Option<String>,
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub input: InputInfo,
    pub repetitions: usize,
    pub strategies: Vec<StrategyResult>,
    /// Median of `ois update import` + `ois service` (strategy 1, both timed).
    pub ois_import_and_service: Option<Median>,
    pub ratios: Vec<Ratio>,
}

fn first_line(path: &str, key: Option<&str>) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    match key {
        None => text.lines().next().map(str::to_string),
        Some(k) => text
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_once([':', '=']))
            .map(|(_, v)| v.trim().trim_matches('"').to_string()),
    }
}

fn machine(opts: &BenchOptions) -> Machine {
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    let wimlib_imagex = opts.wimlib_imagex.as_ref().and_then(|t| {
        std::process::Command::new(t)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .map(str::to_string)
            })
    });
    Machine {
        cpu: first_line("/proc/cpuinfo", Some("model name")).unwrap_or_else(|| "unknown".into()),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib: sys.total_memory() as f64 / (1u64 << 30) as f64,
        os: first_line("/etc/os-release", Some("PRETTY_NAME")).unwrap_or_else(|| "unknown".into()),
        kernel: first_line("/proc/sys/kernel/osrelease", None).unwrap_or_default(),
        ois: env!("CARGO_PKG_VERSION").into(),
        wimlib: crate::wim::version(),
        wimlib_imagex,
    }
}

fn ratio(name: &str, num: Option<f64>, den: Option<f64>, bound: Option<(&str, f64)>) -> Ratio {
    let value = match (num, den) {
        (Some(n), Some(d)) if d > 0.0 => Some(n / d),
        _ => None,
    };
    let met = bound.and_then(|(op, b)| {
        value.map(|v| match op {
            ">=" => v >= b,
            _ => v <= b,
        })
    });
    Ratio {
        name: name.into(),
        value,
        target: bound.map(|(op, b)| format!("{op} {b}")),
        met,
    }
}

impl Report {
    pub fn new(opts: &BenchOptions, input: &Input, mut strategies: Vec<StrategyResult>) -> Report {
        for s in &mut strategies {
            s.summarise();
        }
        let wall = |id: &str| {
            strategies
                .iter()
                .find(|s| s.id == id)
                .and_then(|s| s.wall())
        };
        let ois = strategies.iter().find(|s| s.id == "ois");
        let ois_import_and_service = ois.filter(|s| s.median.is_some()).map(|s| {
            let samples: Vec<Sample> = s.runs.iter().map(with_import).collect();
            let pick =
                |f: &dyn Fn(&Sample) -> f64| median(&mut samples.iter().map(f).collect::<Vec<_>>());
            Median {
                wall_s: pick(&|x| x.wall_s),
                cpu_s: pick(&|x| x.cpu_s),
                peak_rss_mib: pick(&|x| x.peak_rss_mib),
                output_bytes: s.median.as_ref().map_or(0, |m| m.output_bytes),
            }
        });
        let ois_rss = ois.and_then(|s| s.median.as_ref()).map(|m| m.peak_rss_mib);
        let ratios = vec![
            ratio(
                "ois / wimlib-script (wall)",
                wall("ois"),
                wall("wimlib-script"),
                Some(("<=", 0.2)),
            ),
            ratio(
                "ois / mount-style (wall)",
                wall("ois"),
                wall("mount-style"),
                Some(("<=", 0.1)),
            ),
            ratio(
                "ois / floor (wall)",
                wall("ois"),
                wall("floor"),
                Some(("<=", 1.2)),
            ),
            ratio(
                "(ois import + service) / wimlib-script (wall)",
                ois_import_and_service.as_ref().map(|m| m.wall_s),
                wall("wimlib-script"),
                Some(("<=", 1.0)),
            ),
            ratio(
                "parallel speedup: jobs 1 / default (wall)",
                wall("ois-images-jobs1"),
                wall("ois-images-parallel"),
                Some((">=", 1.5)),
            ),
            ratio(
                "ois peak RSS / 1 GiB",
                ois_rss,
                Some(1024.0),
                Some(("<=", 0.5)),
            ),
            ratio(
                "ois / plain copy (wall)",
                wall("ois"),
                wall("copy"),
                Some(("<=", 2.0)),
            ),
            ratio(
                "wimlib-script / floor (wall)",
                wall("wimlib-script"),
                wall("floor"),
                None,
            ),
        ];
        Report {
            machine: machine(opts),
            input: InputInfo {
                wim: opts.wim.display().to_string(),
                wim_bytes: std::fs::metadata(&opts.wim).map_or(0, |m| m.len()),
                compression: input.compression.as_str().into(),
                indexes: input.indexes.len(),
                packages: opts
                    .packages
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
                images_for_scaling: opts.images,
            },
            repetitions: opts.repetitions,
            strategies,
            ois_import_and_service,
            ratios,
        }
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let _ = writeln!(
            s,
            "Machine: {}, {} cores, {:.0} GiB RAM, {}, Linux {}; ois {}, wimlib {}{}.\n",
            m.cpu,
            m.cores,
            m.memory_gib,
            m.os,
            m.kernel,
            m.ois,
            m.wimlib,
            m.wimlib_imagex
                .as_ref()
                .map(|v| format!(", {v}"))
                .unwrap_or_default()
        );
        let i = &self.input;
        let _ = writeln!(
            s,
            "Input: {} ({:.1} MiB, {}, {} indexes), {} package(s); medians of {} repetition(s).\n",
            i.wim,
            i.wim_bytes as f64 / (1 << 20) as f64,
            i.compression,
            i.indexes,
            i.packages.len(),
            self.repetitions
        );
        s.push_str("| strategy | wall (s) | CPU (s) | peak RSS (MiB) | output (MiB) |\n|---|---:|---:|---:|---:|\n");
        let row = |s: &mut String, title: &str, m: &Median| {
            let _ = writeln!(
                s,
                "| {title} | {:.2} | {:.2} | {:.0} | {:.1} |",
                m.wall_s,
                m.cpu_s,
                m.peak_rss_mib,
                m.output_bytes as f64 / (1 << 20) as f64
            );
        };
        for st in &self.strategies {
            match (&st.median, st.status) {
                (Some(m), Status::Ok) => row(&mut s, &st.title, m),
                (_, status) => {
                    let _ = writeln!(
                        s,
                        "| {} | {} | | | |",
                        st.title,
                        format!("{status:?}: {}", st.reason.as_deref().unwrap_or("no run"))
                            .to_lowercase()
                    );
                }
            }
            if st.id == "ois" {
                if let Some(m) = &self.ois_import_and_service {
                    row(&mut s, "1b. ois update import + service", m);
                }
            }
        }
        s.push_str("\n| ratio | value | target | met |\n|---|---:|---|---|\n");
        for r in &self.ratios {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                r.name,
                r.value.map_or("n/a".into(), |v| format!("{v:.2}")),
                r.target.as_deref().unwrap_or(""),
                match r.met {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "",
                }
            );
        }
        s
    }

    /// Writes `bench.md` and `bench.json` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), BenchError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let md = dir.join("bench.md");
        std::fs::write(&md, self.markdown()).map_err(io(&md))?;
        let json = dir.join("bench.json");
        let text =
            serde_json::to_vec_pretty(self).map_err(|e| BenchError::Invalid(e.to_string()))?;
        std::fs::write(&json, text).map_err(io(&json))
    }
}
