//! Benchmarks: a generator of realistic images and packages, and a harness that measures
//! `ois service` side by side with the wimlib command line, mount-style servicing and the
//! copy floor (issue 5).

mod content;
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
