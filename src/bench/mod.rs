//! Benchmarks: a generator of realistic images and packages, and a harness that measures
//! `ois service` side by side with the wimlib command line, mount-style servicing and the
//! copy floor (issue 5).

mod content;
pub mod delta;
pub mod floor;
pub mod generator;
pub mod harness;
mod measure;
pub mod report;
mod strategies;

use std::path::PathBuf;

pub use generator::{generate, GenerateOptions, Generated};
pub use harness::{run, BenchOptions};
pub use report::Report;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Wim(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{what} failed ({status}); its output is in {}", log.display())]
    Step {
        what: String,
        status: String,
        log: PathBuf,
    },
    #[error(transparent)]
    Library(#[from] crate::library::LibraryError),
}

/// `4MiB`, `1GiB`, `512K`, `1G` or plain bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 4MiB or 1GiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("{s:?}: unknown unit (use KiB, MiB or GiB)")),
    };
    Ok((n * mult as f64) as u64)
}
