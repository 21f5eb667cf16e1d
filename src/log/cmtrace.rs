//! The CMTrace line format that Configuration Manager logs use, so admins can read ois's logs
//! with CMTrace or OneTrace, and a file that rolls over to `.lo_` at a size limit as theirs do.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Local, Offset};

/// Severity as CMTrace colours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info = 1,
    Warning = 2,
    Error = 3,
}

/// One log line: `<![LOG[message]LOG]!><time="HH:MM:SS.mmm+bias" date="MM-DD-YYYY" …>`.
/// The bias is minutes to add to local time to get UTC, as Windows counts it.
pub fn line(
    message: &str,
    at: DateTime<Local>,
    component: &str,
    severity: Severity,
    thread: u64,
    file: &str,
) -> String {
    let bias = -at.offset().fix().local_minus_utc() / 60;
    let sign = if bias < 0 { '-' } else { '+' };
    // A message holding the closing marker would cut the line short in CMTrace.
    let message = message.replace("]LOG]!>", "]LOG]>");
    format!(
        "<![LOG[{message}]LOG]!><time=\"{}{sign}{:03}\" date=\"{}\" component=\"{component}\" context=\"\" type=\"{}\" thread=\"{thread}\" file=\"{file}\">\n",
        at.format("%H:%M:%S%.3f"),
        bias.abs(),
        at.format("%m-%d-%Y"),
        severity as u8,
    )
}

/// An append-only log file that moves itself to `<name>.lo_` when it would pass `max_bytes`.
/// Several ois processes append to the same file, so before each write it checks that its
/// handle still names the file at `path` (another process may have rolled it over).
pub struct RollingFile {
    path: PathBuf,
    max_bytes: u64,
    file: Option<File>,
}

impl RollingFile {
    pub fn new(path: &Path, max_bytes: u64) -> RollingFile {
        RollingFile {
            path: path.to_path_buf(),
            max_bytes,
            file: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&mut self, text: &str) -> std::io::Result<()> {
        let on_disk = std::fs::metadata(&self.path).ok();
        // Another writer may have rolled the log over: the open handle then names another file.
        let stale = match (&self.file, &on_disk) {
            (Some(f), Some(_)) => File::open(&self.path)
                .ok()
                .and_then(|named| crate::platform::file_identity(&named))
                .is_none_or(|named| crate::platform::file_identity(f) != Some(named)),
            _ => true,
        };
        if stale {
            self.file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        let size = on_disk.map_or(0, |m| m.len());
        if self.max_bytes > 0 && size > 0 && size + text.len() as u64 > self.max_bytes {
            let rolled = self.path.with_extension("lo_");
            std::fs::rename(&self.path, &rolled)?;
            self.file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        match self.file.as_mut() {
            Some(f) => f.write_all(text.as_bytes()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn line_has_the_cmtrace_fields() {
        let at = Local.with_ymd_and_hms(2026, 11, 24, 9, 5, 7).unwrap();
        let l = line(
            "applied KB1 ]LOG]!> x",
            at,
            "servicing",
            Severity::Warning,
            42,
            "run.rs:10",
        );
        assert!(l.starts_with("<![LOG[applied KB1 ]LOG]> x]LOG]!><time=\"09:05:07.000"));
        assert!(l.contains("date=\"11-24-2026\""));
        assert!(l.contains(
            "component=\"servicing\" context=\"\" type=\"2\" thread=\"42\" file=\"run.rs:10\">"
        ));
        assert!(l.ends_with(">\n"));
    }

    #[test]
    fn rolls_over_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("OfflineServicingMgr.log");
        let mut f = RollingFile::new(&path, 100);
        for _ in 0..3 {
            f.append(&"x".repeat(40)).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(dir.path().join("OfflineServicingMgr.lo_"))
                .unwrap()
                .len(),
            80
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap().len(), 40);
    }
}
