//! The staging folder of a run: `<servicing drive>/ConfigMgr_OfflineImageServicing/<run>/`.
//! It is removed when the run ends, whatever the outcome.

use std::path::{Path, PathBuf};

use crate::site::drive_holding;

pub struct Stage {
    dir: PathBuf,
}

impl Stage {
    pub fn create(staging_root: &Path, run_id: i64) -> std::io::Result<Stage> {
        let dir = staging_root.join(format!("run-{run_id}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        Ok(Stage { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn updates_dir(&self) -> PathBuf {
        self.dir.join("updates")
    }

    pub fn output(&self) -> PathBuf {
        self.dir.join("serviced.wim")
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(
                    "could not remove staging folder {}: {e}",
                    self.dir.display()
                );
            }
        }
    }
}

/// Free bytes on the drive holding `path`, with that drive's mount point.
pub fn free_space(path: &Path) -> Option<(PathBuf, u64)> {
    drive_holding(path).map(|d| (d.mount_point, d.free_bytes))
}

/// Are two paths on the same filesystem (so that a rename between them is atomic)?
pub fn same_filesystem(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev(),
        _ => false,
    }
}
