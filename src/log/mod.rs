//! Logging: `tracing` into the site's `logs/OfflineServicingMgr.log`, and to stderr by verbosity.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

pub const SERVICING_LOG: &str = "OfflineServicingMgr.log";

/// `verbosity`: 0 warnings and errors, 1 info, 2 debug, 3+ trace; `quiet` errors only.
pub fn init(logs_dir: Option<&Path>, verbosity: u8, quiet: bool) {
    let level = if quiet {
        LevelFilter::ERROR
    } else {
        match verbosity {
            0 => LevelFilter::WARN,
            1 => LevelFilter::INFO,
            2 => LevelFilter::DEBUG,
            _ => LevelFilter::TRACE,
        }
    };
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_filter(level);
    let file = logs_dir.and_then(|dir| {
        std::fs::create_dir_all(dir).ok()?;
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(SERVICING_LOG))
            .ok()?;
        Some(
            tracing_subscriber::fmt::layer()
                .with_writer(Mutex::new(f))
                .with_ansi(false)
                .with_thread_names(true)
                .with_filter(LevelFilter::INFO),
        )
    });
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
}
