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

pub fn list_drives() -> Vec<Drive> {
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
    drives.sort_by(|a, b| a.mount_point.cmp(&b.mount_point));
    drives.dedup_by(|a, b| a.mount_point == b.mount_point);
    drives
}

/// The drive holding `path` (its nearest existing ancestor): the longest mount point prefix.
pub fn drive_of<'a>(drives: &'a [Drive], path: &Path) -> Option<&'a Drive> {
    let mut probe = path.to_path_buf();
    let resolved = loop {
        if let Ok(p) = std::fs::canonicalize(&probe) {
            break p;
        }
        if !probe.pop() {
            break path.to_path_buf();
        }
    };
    drives
        .iter()
        .filter(|d| resolved.starts_with(&d.mount_point))
        .max_by_key(|d| d.mount_point.as_os_str().len())
}
