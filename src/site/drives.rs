//! The machine's drives, as the servicing-drive setting sees them.

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

/// The drive holding `path`: its mount point (a drive root such as `D:\\` on Windows) and
/// its space as the filesystem reports it right now.
pub fn drive_holding(path: &Path) -> Option<Drive> {
    let path = existing(path)?;
    let mount = crate::platform::volume_root(&path)?;
    let space = crate::platform::space(&path)?;
    let file_system = crate::platform::file_system(&mount).unwrap_or_else(|| "unknown".into());
    Some(Drive {
        mount_point: mount,
        file_system,
        total_bytes: space.total_bytes,
        free_bytes: space.free_bytes,
    })
}

/// The listed drive holding `path`: the longest mount point prefix.
pub fn drive_of<'a>(drives: &'a [Drive], path: &Path) -> Option<&'a Drive> {
    let resolved = existing(path).unwrap_or_else(|| path.to_path_buf());
    drives
        .iter()
        .filter(|d| resolved.starts_with(&d.mount_point))
        .max_by_key(|d| d.mount_point.as_os_str().len())
}
