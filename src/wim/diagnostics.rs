//! wimlib reports warnings (such as entries it refuses to load) only as printed messages. They
//! go to an anonymous file that ois reads back, logs, and attaches to errors.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::{Mutex, MutexGuard, OnceLock};

use wimlib_sys as sys;

struct Capture {
    file: File,
    offset: u64,
}

static CAPTURE: OnceLock<Mutex<Capture>> = OnceLock::new();
static EXCLUSIVE: Mutex<()> = Mutex::new(());

pub(super) fn install() {
    let Some((file, cpath)) = message_file() else {
        tracing::warn!("cannot create a file for wimlib's messages; they will not be captured");
        return;
    };
    // SAFETY: wimlib opens the file for appending and keeps its handle for the process.
    let rc = unsafe { sys::wimlib_set_error_file_by_name(cpath.as_ptr()) };
    if rc != 0 {
        return;
    }
    unsafe { sys::wimlib_set_print_errors(true) };
    let _ = CAPTURE.set(Mutex::new(Capture { file, offset: 0 }));
}

/// The file wimlib appends its messages to, and the name wimlib opens it by.
#[cfg(unix)]
fn message_file() -> Option<(File, super::TString)> {
    use std::os::fd::AsRawFd;
    let file = anonymous_file().or_else(unlinked_temp_file)?;
    let name = super::c_str(&format!("/proc/self/fd/{}", file.as_raw_fd()));
    Some((file, name))
}

/// A file in memory only: ois writes nothing to $TMPDIR.
#[cfg(unix)]
fn anonymous_file() -> Option<File> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain syscall; the descriptor it returns is owned by the File.
    let fd = unsafe { libc::memfd_create(c"ois-wimlib".as_ptr(), libc::MFD_CLOEXEC) };
    (fd >= 0).then(|| unsafe { File::from_raw_fd(fd) })
}

/// Kernels without memfd: a temporary file, unlinked at once so that nothing is left behind.
#[cfg(unix)]
fn unlinked_temp_file() -> Option<File> {
    tempfile::tempfile().ok()
}

/// Windows has no name for an open handle: a named temporary file (in %TEMP%, kept for the
/// life of the process, since wimlib holds it open until exit).
#[cfg(windows)]
fn message_file() -> Option<(File, super::TString)> {
    let (file, path) = tempfile::Builder::new()
        .prefix("ois-wimlib-")
        .suffix(".log")
        .tempfile()
        .ok()?
        .keep()
        .ok()?;
    Some((file, super::c_path(&path)))
}

/// Serialises operations whose messages must be attributed to them.
pub(super) fn exclusive() -> MutexGuard<'static, ()> {
    EXCLUSIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// The messages wimlib printed since the last call, also written to the log.
pub(super) fn take() -> Vec<String> {
    take_except(&[])
}

/// [`take`], leaving out (of the result and the log) lines that hold one of `expected`:
/// warnings an operation always prints, which say nothing to the reader of a run log.
pub(super) fn take_except(expected: &[&str]) -> Vec<String> {
    let Some(capture) = CAPTURE.get() else {
        return Vec::new();
    };
    let mut c = capture.lock().unwrap_or_else(|p| p.into_inner());
    let offset = c.offset;
    let mut text = String::new();
    if c.file.seek(SeekFrom::Start(offset)).is_err() {
        return Vec::new();
    }
    let Ok(n) = (&c.file).read_to_string(&mut text) else {
        return Vec::new();
    };
    c.offset = offset + n as u64;
    text.split(['\n', '\r'])
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !expected.iter().any(|e| l.contains(e)))
        .map(|l| {
            tracing::debug!(target: "wimlib", "{l}");
            l.trim_start_matches("[ERROR] ")
                .trim_start_matches("[WARNING] ")
                .to_string()
        })
        .collect()
}
