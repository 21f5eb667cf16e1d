//! The machine's drives, as the servicing-drive setting sees them.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Drive {
    pub mount_point: PathBuf,
    pub file_system: String,
    pub total_bytes: u64,
    pub free_bytes: u64,
}

/// The drives sysinfo reports, plus the one holding `also` when sysinfo leaves it out (it
/// skips RAM-backed and network filesystems, which can still be a servicing drive).
pub fn list_drives_with(also: Option<&Path>) -> Vec<Drive> {
    let disks = sysinfo::Disks::new_with_refreshed_list();
    let mut drives: Vec<Drive> = disks
        .list()
        .iter()
        .map(|d| Drive {
            mount_point: d.mount_point().to_path_buf(),
            file_system: d.file_system().to_string_lossy().into_owned(),
            total_bytes: d.total_space(),
            free_bytes: d.available_space(),
        })
        .collect();
    if let Some(drive) = also.and_then(drive_holding) {
        if !drives.iter().any(|d| d.mount_point == drive.mount_point) {
            drives.push(drive);
        }
    }
    drives.sort_by(|a, b| a.mount_point.cmp(&b.mount_point));
    drives.dedup_by(|a, b| a.mount_point == b.mount_point);
    drives
}

pub fn list_drives() -> Vec<Drive> {
    list_drives_with(None)
}

/// The nearest existing ancestor of `path` (a staging folder may not exist yet).
fn existing(path: &Path) -> Option<PathBuf> {
    let mut probe = path.to_path_buf();
    loop {
        if let Ok(p) = std::fs::canonicalize(&probe) {
            return Some(p);
        }
        if !probe.pop() {
            return None;
        }
    }
}

/// The drive holding `path`: its mount point (the highest ancestor on the same device) and
/// its space as the filesystem reports it right now.
pub fn drive_holding(path: &Path) -> Option<Drive> {
    let path = existing(path)?;
    let dev = std::fs::metadata(&path).ok()?.dev();
    let mut mount = path.clone();
    while let Some(parent) = mount.parent() {
        if std::fs::metadata(parent).ok()?.dev() != dev {
            break;
        }
        mount = parent.to_path_buf();
    }
    let (total_bytes, free_bytes) = space(&path)?;
    let file_system = std::fs::read_to_string("/proc/self/mounts")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                let mut f = l.split_whitespace();
                let (_, point, fs) = (f.next()?, f.next()?, f.next()?);
                (Path::new(point) == mount).then(|| fs.to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    Some(Drive {
        mount_point: mount,
        file_system,
        total_bytes,
        free_bytes,
    })
}

/// Total and available bytes of the filesystem holding `path`.
fn space(path: &Path) -> Option<(u64, u64)> {
    let cpath = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the struct for a valid NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(cpath.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let unit = st.f_frsize as u64;
    Some((st.f_blocks as u64 * unit, st.f_bavail as u64 * unit))
}

/// The listed drive holding `path`: the longest mount point prefix.
pub fn drive_of<'a>(drives: &'a [Drive], path: &Path) -> Option<&'a Drive> {
    let resolved = existing(path).unwrap_or_else(|| path.to_path_buf());
    drives
        .iter()
        .filter(|d| resolved.starts_with(&d.mount_point))
        .max_by_key(|d| d.mount_point.as_os_str().len())
}
