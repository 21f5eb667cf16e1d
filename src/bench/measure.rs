//! Timing child processes: wall clock, CPU (user + system) and peak RSS from `wait4`'s rusage,
//! which counts every thread of the child, so wimlib's compressor threads are included.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;

use super::BenchError;

/// What one timed step (or a sum of steps) cost.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Sample {
    pub wall_s: f64,
    pub cpu_s: f64,
    /// The largest peak resident set of any process in the step.
    pub peak_rss_mib: f64,
}

impl Sample {
    /// Steps run one after another: times add, peaks do not.
    pub fn then(self, other: Sample) -> Sample {
        Sample {
            wall_s: self.wall_s + other.wall_s,
            cpu_s: self.cpu_s + other.cpu_s,
            peak_rss_mib: self.peak_rss_mib.max(other.peak_rss_mib),
        }
    }
}

#[cfg(unix)]
fn seconds(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// Whether every timed step starts with an empty page cache (`ois bench run --cold`): one
/// setting for the whole comparison, read by every strategy's steps.
static COLD: AtomicBool = AtomicBool::new(false);

pub fn set_cold(cold: bool) {
    COLD.store(cold, Ordering::Relaxed);
}

const DROP_CACHES: &str = "/proc/sys/vm/drop_caches";

/// Checks that the page cache can be dropped here (root on Linux), before anything is run.
pub fn require_cold_start() -> Result<(), BenchError> {
    drop_caches().map_err(|e| {
        BenchError::Invalid(format!(
            "--cold drops the page cache before each timed step, which needs root on Linux \
             (writing {DROP_CACHES}: {e}); run it as root or leave --cold out"
        ))
    })
}

fn drop_caches() -> std::io::Result<()> {
    crate::platform::sync_all_filesystems();
    std::fs::write(DROP_CACHES, "3\n")
}

/// Runs `cmd` to completion with its output in `log` and returns what it cost; a failure is
/// an error naming the step, never a sample.
pub fn run(
    what: &str,
    cmd: &mut Command,
    log: &Path,
    stdin: Option<&Path>,
) -> Result<Sample, BenchError> {
    let io = |e| BenchError::Io {
        path: log.to_path_buf(),
        source: e,
    };
    let out = File::create(log).map_err(io)?;
    let err = out.try_clone().map_err(io)?;
    cmd.stdout(out).stderr(err);
    match stdin {
        Some(p) => {
            cmd.stdin(File::open(p).map_err(|e| BenchError::Io {
                path: p.to_path_buf(),
                source: e,
            })?);
        }
        None => {
            cmd.stdin(Stdio::null());
        }
    }
    if COLD.load(Ordering::Relaxed) {
        drop_caches().map_err(|e| BenchError::Io {
            path: DROP_CACHES.into(),
            source: e,
        })?;
    }
    tracing::debug!("running {cmd:?}");
    let started = Instant::now();
    let child = cmd.spawn().map_err(|e| BenchError::Step {
        what: what.to_string(),
        status: format!("cannot start: {e}"),
        log: log.to_path_buf(),
    })?;
    let (ended, cpu_s, peak_rss_mib) = wait_measured(child).map_err(io)?;
    let wall_s = started.elapsed().as_secs_f64();
    ended.map_err(|status| BenchError::Step {
        what: what.to_string(),
        status,
        log: log.to_path_buf(),
    })?;
    Ok(Sample {
        wall_s,
        cpu_s,
        peak_rss_mib,
    })
}

/// Waits for the child: whether it succeeded (or how it ended), its CPU seconds and its peak
/// resident set in MiB.
#[cfg(unix)]
#[allow(clippy::type_complexity)]
fn wait_measured(child: std::process::Child) -> std::io::Result<(Result<(), String>, f64, f64)> {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data filled by the kernel; the pid is our own unreaped child
    // (std's Child is never waited on, so the pid cannot have been reused).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = loop {
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break rc;
    };
    drop(child);
    if rc == -1 {
        return Err(std::io::Error::last_os_error());
    }
    let ended = if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else if libc::WIFEXITED(status) {
        Err(format!("exit code {}", libc::WEXITSTATUS(status)))
    } else {
        Err(format!("signal {}", libc::WTERMSIG(status)))
    };
    // Linux reports ru_maxrss in KiB.
    let rss = usage.ru_maxrss as f64 / 1024.0;
    Ok((
        ended,
        seconds(usage.ru_utime) + seconds(usage.ru_stime),
        rss,
    ))
}

/// Windows: the wall clock only (CPU and peak memory of a child are not measured there).
#[cfg(windows)]
#[allow(clippy::type_complexity)]
fn wait_measured(
    mut child: std::process::Child,
) -> std::io::Result<(Result<(), String>, f64, f64)> {
    let status = child.wait()?;
    let ended = if status.success() {
        Ok(())
    } else {
        Err(format!("{status}"))
    };
    Ok((ended, 0.0, 0.0))
}

#[cfg(unix)]
fn process_cpu_seconds() -> f64 {
    // SAFETY: plain data filled by the kernel.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    seconds(u.ru_utime) + seconds(u.ru_stime)
}

#[cfg(windows)]
fn process_cpu_seconds() -> f64 {
    0.0
}

/// Times work done in this process (a few file operations); its peak RSS is not attributable,
/// so it counts as zero.
pub fn in_process<T>(f: impl FnOnce() -> Result<T, BenchError>) -> Result<(T, Sample), BenchError> {
    let cpu = process_cpu_seconds;
    let (c0, t0) = (cpu(), Instant::now());
    let value = f()?;
    Ok((
        value,
        Sample {
            wall_s: t0.elapsed().as_secs_f64(),
            cpu_s: cpu() - c0,
            peak_rss_mib: 0.0,
        },
    ))
}

pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}
