//! The staging folder of a run: `<servicing drive>/ConfigMgr_OfflineImageServicing/<run>/`.
//! It is removed when the run ends, whatever the outcome.

use std::path::{Path, PathBuf};

use crate::site::drive_holding;

pub struct Stage {
    dir: PathBuf,
}

impl Stage {
    /// Creates the run's stage. An existing folder of that name is not this run's (run ids
    /// are never reused), so it is left alone and the run stops.
    pub fn create(dir: PathBuf) -> std::io::Result<Stage> {
        if dir.exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{} already exists and is not this run's: remove it if no servicing uses it",
                    dir.display()
                ),
            ));
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
