//! Windows hosts: Win32 volume and file calls, MoveFileExW, console control handlers.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::windows::ffi::{OsStrExt, OsStringExt};
use std::os::windows::fs::FileExt;
use std::os::windows::io::AsRawHandle;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use windows_sys::Win32::Foundation::{
    CloseHandle, ERROR_ACCESS_DENIED, ERROR_DISK_FULL, ERROR_HANDLE_DISK_FULL,
    ERROR_LOCK_VIOLATION, ERROR_SHARING_VIOLATION, STILL_ACTIVE,
};
use windows_sys::Win32::Storage::FileSystem::{
    GetDiskFreeSpaceExW, GetFileInformationByHandle, GetVolumeInformationW, GetVolumePathNameW,
    MoveFileExW, BY_HANDLE_FILE_INFORMATION, MOVEFILE_REPLACE_EXISTING, MOVEFILE_WRITE_THROUGH,
};
use windows_sys::Win32::System::Console::SetConsoleCtrlHandler;
use windows_sys::Win32::System::Threading::{
    GetCurrentThreadId, GetExitCodeProcess, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
};

use super::Space;

/// A NUL-terminated UTF-16 copy of `path` for a `W` call.
fn wide(path: &Path) -> Vec<u16> {
    path.as_os_str().encode_wide().chain(Some(0)).collect()
}

fn from_wide(buf: &[u16]) -> OsString {
    let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    OsString::from_wide(&buf[..end])
}

pub fn space(path: &Path) -> Option<Space> {
    let (mut free, mut total) = (0u64, 0u64);
    // SAFETY: a NUL-terminated path and two out-parameters that live for the call.
    let ok = unsafe {
        GetDiskFreeSpaceExW(
            wide(path).as_ptr(),
            &mut free,
            &mut total,
            std::ptr::null_mut(),
        )
    };
    (ok != 0).then_some(Space {
        total_bytes: total,
        free_bytes: free,
    })
}

pub fn volume_root(path: &Path) -> Option<PathBuf> {
    let mut buf = vec![0u16; 1024];
    // SAFETY: the buffer's length is passed with it.
    let ok = unsafe { GetVolumePathNameW(wide(path).as_ptr(), buf.as_mut_ptr(), buf.len() as u32) };
    (ok != 0).then(|| PathBuf::from(from_wide(&buf)))
}

pub fn file_system(root: &Path) -> Option<String> {
    let mut name = vec![0u16; 64];
    // SAFETY: the name buffer's length is passed with it; the other outputs are not asked for.
    let ok = unsafe {
        GetVolumeInformationW(
            wide(root).as_ptr(),
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            name.as_mut_ptr(),
            name.len() as u32,
        )
    };
    (ok != 0).then(|| from_wide(&name).to_string_lossy().into_owned())
}

pub fn same_volume(a: &Path, b: &Path) -> bool {
    match (volume_root(a), volume_root(b)) {
        (Some(x), Some(y)) => x.as_os_str().eq_ignore_ascii_case(y.as_os_str()),
        _ => false,
    }
}

pub fn file_identity(file: &File) -> Option<(u64, u64)> {
    // SAFETY: plain data, filled by the call.
    let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: the handle is open for the duration of the call.
    let ok = unsafe { GetFileInformationByHandle(file.as_raw_handle() as _, &mut info) };
    (ok != 0).then(|| {
        (
            info.dwVolumeSerialNumber as u64,
            ((info.nFileIndexHigh as u64) << 32) | info.nFileIndexLow as u64,
        )
    })
}

pub fn exchange_dirs(a: &Path, b: &Path) -> io::Result<()> {
    let mut aside = a.as_os_str().to_owned();
    aside.push(".ois-exchange");
    let aside = std::path::PathBuf::from(aside);
    std::fs::rename(a, &aside)?;
    if let Err(e) = std::fs::rename(b, a) {
        let _ = std::fs::rename(&aside, a);
        return Err(e);
    }
    std::fs::rename(&aside, b)
}

pub fn make_owner_writable(path: &Path, meta: &std::fs::Metadata) -> io::Result<()> {
    let mut perms = meta.permissions();
    if perms.readonly() {
        // On Windows this clears FILE_ATTRIBUTE_READONLY only; no one else gains access.
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(path, perms)?;
    }
    Ok(())
}

pub fn replace_file(from: &Path, to: &Path) -> io::Result<()> {
    // SAFETY: two NUL-terminated paths that live for the call.
    let ok = unsafe {
        MoveFileExW(
            wide(from).as_ptr(),
            wide(to).as_ptr(),
            MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH,
        )
    };
    if ok != 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error().map(|c| c as u32) {
        Some(ERROR_SHARING_VIOLATION | ERROR_ACCESS_DENIED | ERROR_LOCK_VIOLATION) => {
            Err(io::Error::new(
                e.kind(),
                format!(
                    "{} is open in another program (or read-only), so Windows cannot replace it: close what holds it (a DISM mount, an Explorer window, an antivirus scan) and run again ({e})",
                    to.display()
                ),
            ))
        }
        _ => Err(e),
    }
}

/// FlushFileBuffers needs a handle open for writing.
pub fn sync_file(path: &Path) -> io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .sync_all()
}

/// MoveFileExW's write-through already flushed the rename; Windows has no handle on a
/// folder to flush.
pub fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Flushing a whole volume needs an administrator's handle on it; files ois must keep are
/// flushed one by one (`sync_all`) and renamed with write-through instead.
pub fn sync_volume(_dir: &Path) -> io::Result<()> {
    Ok(())
}

pub fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "failed to fill whole buffer",
                ))
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub fn thread_id() -> u64 {
    // SAFETY: no arguments, cannot fail.
    unsafe { GetCurrentThreadId() as u64 }
}

pub fn process_alive(pid: u32) -> bool {
    // SAFETY: the handle is closed before returning.
    unsafe {
        let handle = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
        if handle.is_null() {
            // Access denied means the process exists (another user's).
            return io::Error::last_os_error().raw_os_error() == Some(ERROR_ACCESS_DENIED as i32);
        }
        let mut code = 0u32;
        let ok = GetExitCodeProcess(handle, &mut code);
        CloseHandle(handle);
        ok != 0 && code == STILL_ACTIVE as u32
    }
}

/// The one flag every stop request raises: console controls here, a service's stop control in
/// `cli::service_host`.
static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

pub fn stop_requested() -> Arc<AtomicBool> {
    STOP.get_or_init(|| Arc::new(AtomicBool::new(false)))
        .clone()
}

unsafe extern "system" fn on_console_control(_control: u32) -> i32 {
    // Ctrl+C, Ctrl+Break, close, logoff and shutdown all mean "stop at a safe point"; TRUE
    // keeps Windows from ending the process at once.
    stop_requested().store(true, Ordering::SeqCst);
    1
}

pub fn stop_flag() -> io::Result<Arc<AtomicBool>> {
    // SAFETY: the handler is a plain function that lives for the process.
    if unsafe { SetConsoleCtrlHandler(Some(on_console_control), 1) } == 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("cannot handle Ctrl+C: {e}"),
        ));
    }
    Ok(stop_requested())
}

pub fn is_out_of_space_code(code: i32) -> bool {
    code == ERROR_DISK_FULL as i32 || code == ERROR_HANDLE_DISK_FULL as i32
}

/// Windows has no call to flush every volume without administrator handles; benchmarks only
/// lose some evenness between steps.
pub fn sync_all_filesystems() {}
