//! Logging: `tracing` to stderr by verbosity, into the site's `logs/OfflineServicingMgr.log` in
//! the CMTrace format, and into one log per servicing run (`logs/runs/run-N.log`, ois's
//! `dism.log`) for everything logged inside that run's span.

pub mod cmtrace;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use cmtrace::{RollingFile, Severity};

pub const SERVICING_LOG: &str = "OfflineServicingMgr.log";
pub const RUN_LOGS_DIR: &str = "runs";

/// The span a servicing run logs under; its `log` field names the run's own log file.
pub const RUN_SPAN: &str = "servicing_run";

pub fn run_log_path(logs_dir: &Path, run_id: impl std::fmt::Display) -> PathBuf {
    logs_dir
        .join(RUN_LOGS_DIR)
        .join(format!("run-{run_id}.log"))
}

/// Where the site's logs go: its `logs/` directory and the size at which the main log rolls over.
pub struct LogFiles<'a> {
    pub dir: &'a Path,
    pub max_bytes: u64,
}

/// `verbosity`: 0 warnings and errors, 1 info, 2 debug, 3+ trace; `quiet` errors only.
pub fn init(files: Option<LogFiles<'_>>, verbosity: u8, quiet: bool) {
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
    let cmtrace = files.and_then(|f| {
        std::fs::create_dir_all(f.dir).ok()?;
        Some(
            CmTraceLayer {
                main: Mutex::new(RollingFile::new(&f.dir.join(SERVICING_LOG), f.max_bytes)),
            }
            .with_filter(LevelFilter::DEBUG),
        )
    });
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(cmtrace)
        .try_init();
}

struct CmTraceLayer {
    main: Mutex<RollingFile>,
}

/// Stored in a run span's extensions: that run's log file.
struct RunLog(Mutex<RollingFile>);

impl<S> Layer<S> for CmTraceLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != RUN_SPAN {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let (Some(path), Some(span)) = (fields.values.get("log"), ctx.span(id)) else {
            return;
        };
        let path = PathBuf::from(path);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        span.extensions_mut()
            .insert(RunLog(Mutex::new(RollingFile::new(&path, 0))));
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let severity = match *meta.level() {
            Level::ERROR => Severity::Error,
            Level::WARN => Severity::Warning,
            _ => Severity::Info,
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let component = meta.target().split("::").nth(1).unwrap_or(meta.target());
        let file = format!(
            "{}:{}",
            meta.file()
                .and_then(|f| Path::new(f).file_name())
                .map(|f| f.to_string_lossy())
                .unwrap_or_default(),
            meta.line().unwrap_or(0)
        );
        let text = cmtrace::line(
            &fields.message(),
            chrono::Local::now(),
            component,
            severity,
            thread_id(),
            &file,
        );
        // A log that cannot be written must not stop servicing: the line is dropped.
        if *meta.level() <= Level::INFO {
            if let Ok(mut main) = self.main.lock() {
                let _ = main.append(&text);
            }
        }
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(RunLog(file)) = span.extensions().get::<RunLog>() {
                    if let Ok(mut f) = file.lock() {
                        let _ = f.append(&text);
                    }
                }
            }
        }
    }
}

fn thread_id() -> u64 {
    crate::platform::thread_id()
}

#[derive(Default)]
struct Fields {
    values: BTreeMap<String, String>,
}

impl Fields {
    /// The message, followed by any other fields as `name=value`.
    fn message(&self) -> String {
        let mut out = self.values.get("message").cloned().unwrap_or_default();
        for (k, v) in self.values.iter().filter(|(k, _)| *k != "message") {
            let _ = write!(out, " {k}={v}");
        }
        out
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.values
            .insert(field.name().to_string(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.values
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}
