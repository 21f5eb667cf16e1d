//! The staging folder of a run: `<servicing drive>/ConfigMgr_OfflineImageServicing/<run>/`.
//! It is removed when the run ends, whatever the outcome.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::apply::Sources;
use crate::library::{Change, CompressedPayload, ContentLibrary, Update};
use crate::site::{drive_holding, Database};
use crate::wim::Wim;

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

/// The updates of a run ready to apply, and the compressed payloads the write copies from.
pub struct Staged<'u> {
    /// By lower-case update id: the update and where its added files are read from.
    pub sources: HashMap<String, (&'u Update, Sources)>,
    pub references: Vec<CompressedPayload>,
    /// Added files are read in place from the library rather than from checked copies: the
    /// data they add must then be found in the references
    /// ([`super::added::check_added_data`]).
    pub in_place: bool,
}

/// Prepares the updates for `wim`. When every update that adds files has a compressed payload
/// for the image's compression (the usual case: built at import), its files are read in place
/// from the library, which costs neither a copy nor a folder tree per run, and the payloads
/// are referenced so the write copies them raw. Otherwise every file is copied out of the
/// library into the stage and its SHA-256 checked.
pub fn stage_updates<'u>(
    stage: &Stage,
    db: &Database,
    library: &ContentLibrary,
    wim: &Wim,
    selected: &[&'u Update],
) -> Result<Staged<'u>, String> {
    let header = wim.header();
    let adds = |u: &Update| {
        u.manifest
            .changes
            .iter()
            .any(|c| matches!(c, Change::Add { .. }))
    };
    let mut staged = Staged {
        sources: HashMap::new(),
        references: Vec::new(),
        in_place: false,
    };
    if let Some(compression) = header.compression {
        let mut complete = true;
        for u in selected.iter().filter(|u| adds(u)) {
            match library.compressed_payload(db, u, compression, header.chunk_size) {
                Ok(Some(p)) => staged.references.push(p),
                Ok(None) => complete = false,
                Err(e) => {
                    tracing::warn!("update {}: no compressed payload ({e})", u.id());
                    complete = false;
                }
            }
        }
        let paths: Vec<&Path> = staged.references.iter().map(|r| r.path.as_path()).collect();
        match wim.reference(&paths) {
            Ok(()) if complete => {
                for u in selected {
                    let files = library.direct_sources(u).map_err(|e| e.to_string())?;
                    staged
                        .sources
                        .insert(u.id().to_lowercase(), (*u, Sources::files(files)));
                }
                staged.in_place = true;
                return Ok(staged);
            }
            Ok(()) => tracing::info!("compressing the payload here: staging checked copies"),
            Err(e) => {
                tracing::warn!(
                    "cannot reference the compressed payloads ({e}); compressing the payload here"
                );
                staged.references.clear();
            }
        }
    }
    for u in selected {
        let files = library
            .stage(u, &stage.updates_dir())
            .map_err(|e| e.to_string())?;
        staged
            .sources
            .insert(u.id().to_lowercase(), (*u, Sources::files(files)));
    }
    Ok(staged)
}

/// Free bytes on the drive holding `path`, with that drive's mount point.
pub fn free_space(path: &Path) -> Option<(PathBuf, u64)> {
    drive_holding(path).map(|d| (d.mount_point, d.free_bytes))
}

/// Are two paths on the same filesystem (so that a rename between them is atomic)?
pub fn same_filesystem(a: &Path, b: &Path) -> bool {
    crate::platform::same_volume(a, b)
}
