//! Update payloads compressed once per compression type: a small WIM per update that servicing
//! references, so wimlib copies the payload's compressed chunks raw into every image it goes
//! to instead of compressing it again for each (table `compressed_payloads`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{ContentLibrary, LibraryError, Update};
use crate::fsutil::{hash_file, now_rfc3339};
use crate::library::Change;
use crate::site::Database;
use crate::wim::{Compression, Progress, UpdateCommand, Wim};

/// Builds are serialised: images serviced in parallel wait for the one build they share.
static BUILDING: Mutex<()> = Mutex::new(());

/// wimlib's default chunk size for a compression type: the only one a fresh WIM is built with.
fn default_chunk(c: Compression) -> Option<u32> {
    match c {
        Compression::Xpress | Compression::Lzx => Some(32 << 10),
        Compression::Lzms => Some(128 << 10),
        Compression::None => None,
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> LibraryError + '_ {
    move |e| LibraryError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

fn wim_err(path: &Path) -> impl Fn(crate::wim::WimError) -> LibraryError + '_ {
    move |e| LibraryError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// What registering an image built ahead of its first run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PreparedPayloads {
    /// The image's compression type.
    pub compression: String,
    /// Updates whose payload was compressed for it.
    pub built: Vec<String>,
    /// Updates whose payload could not be: their first run compresses it.
    pub failed: Vec<String>,
}

/// A compressed payload ready to be referenced: its file and the SHA-256 it had when checked.
#[derive(Debug, Clone)]
pub struct CompressedPayload {
    pub path: PathBuf,
    pub sha256: String,
}

impl ContentLibrary {
    /// The update's payload as a WIM compressed with `compression` and `chunk_size`, built from
    /// the library's files (hash-checked first) when the library has none yet. The file is
    /// verified in full when built and its SHA-256 checked on every later use. None when the
    /// update adds nothing or the chunk size is not the type's default.
    pub fn compressed_payload(
        &self,
        db: &Database,
        update: &Update,
        compression: Compression,
        chunk_size: u32,
    ) -> Result<Option<CompressedPayload>, LibraryError> {
        if default_chunk(compression) != Some(chunk_size)
            || !update
                .manifest
                .changes
                .iter()
                .any(|c| matches!(c, Change::Add { .. }))
        {
            return Ok(None);
        }
        let _building = BUILDING.lock().unwrap_or_else(|p| p.into_inner());
        let known: Option<(String, String)> = db
            .query_row(
                "SELECT file, sha256 FROM compressed_payloads WHERE update_id = ?1 AND compression = ?2 AND chunk_size = ?3",
                params![update.id(), compression.as_str(), chunk_size],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| db.error(e))?;
        if let Some((file, sha256)) = known {
            let path = self.compressed_dir().join(&file);
            match hash_file(&path) {
                Ok((actual, _)) if actual == sha256 => {
                    return Ok(Some(CompressedPayload { path, sha256 }))
                }
                _ => tracing::warn!(
                    "compressed payload {} of update {} is missing or damaged; building it again",
                    path.display(),
                    update.id()
                ),
            }
        }
        // What is compressed here serves every later run by content hash: it must be the
        // library's true payload.
        let contents = self.checked_contents(update)?;
        let dir = self.compressed_dir();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        // A name of its own per build: a concurrent build elsewhere never overwrites this one.
        let file = format!(
            "{}.{}.{chunk_size}.{}-{nanos}.wim",
            update.id(),
            compression.as_str(),
            std::process::id()
        );
        let path = dir.join(&file);
        tracing::info!(
            "compressing the payload of {} once ({})",
            update.id(),
            compression.as_str()
        );
        // Compressed once for every image it goes to: worth wimlib's best (default) level.
        crate::wim::set_write_level(0);
        let wim = Wim::create(compression).map_err(wim_err(&path))?;
        // Only the data matters (runs find it by SHA-1), so each distinct content is one file
        // named by its hash, read in place from the store: no folder tree to lay out.
        let commands: Vec<UpdateCommand> = contents
            .into_iter()
            .map(|(sha256, source)| UpdateCommand::Add {
                source,
                target: format!("/{sha256}"),
            })
            .collect();
        let built = wim
            .add_empty_image(update.id())
            .and_then(|index| wim.update(index, &commands))
            .and_then(|()| wim.write(&path, false, 0, &mut |_| Progress::Continue))
            .and_then(|()| crate::wim::verify_file(&path, cores()));
        drop(wim);
        if let Err(e) = built {
            let _ = std::fs::remove_file(&path);
            return Err(wim_err(&path)(e));
        }
        let (sha256, _) = hash_file(&path).map_err(io(&path))?;
        db.execute(
            "INSERT OR REPLACE INTO compressed_payloads (update_id, compression, chunk_size, file, sha256, built_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![update.id(), compression.as_str(), chunk_size, file, sha256, now_rfc3339()],
        )
        .map_err(|e| db.error(e))?;
        Ok(Some(CompressedPayload { path, sha256 }))
    }

    /// Compresses the payload of `update` for each compression type in use, at import, so
    /// that servicing finds it ready.
    pub fn prepare_compressed(
        &self,
        db: &Database,
        update: &Update,
        compressions: &[Compression],
    ) -> Result<(), LibraryError> {
        for &c in compressions {
            if let Some(chunk) = default_chunk(c) {
                self.compressed_payload(db, update, c, chunk)?;
            }
        }
        // The copies runs read in place, made now rather than by the first run, and checked on
        // every import of the update (which is how a damaged library is repaired).
        self.refresh_repeated(update)
    }

    /// Builds the compressed payloads an image just registered would otherwise build in its
    /// first run: for each of `updates` (those that can apply to it) that adds files and has
    /// none yet for the image's `compression` and `chunk_size`. A build that fails is logged
    /// and left to first use, as before: it never fails the caller.
    pub fn prepare_for_image(
        &self,
        db: &Database,
        image: &str,
        updates: &[&Update],
        compression: Compression,
        chunk_size: u32,
    ) -> PreparedPayloads {
        let mut prepared = PreparedPayloads {
            compression: compression.as_str().to_string(),
            built: Vec::new(),
            failed: Vec::new(),
        };
        if default_chunk(compression) != Some(chunk_size) {
            tracing::info!(
                "image {image}: chunk size {chunk_size} is not {}'s default: its runs stage \
                 checked copies of the payloads instead of compressed ones",
                compression.as_str()
            );
            return prepared;
        }
        let missing: Vec<&Update> = updates
            .iter()
            .copied()
            .filter(|u| {
                u.manifest
                    .changes
                    .iter()
                    .any(|c| matches!(c, Change::Add { .. }))
            })
            .filter(|u| !self.has_compressed(db, u, compression, chunk_size))
            .collect();
        for (i, u) in missing.iter().enumerate() {
            tracing::info!(
                "image {image}: compressing the payloads its runs need ({} of {}: {}, {})",
                i + 1,
                missing.len(),
                u.id(),
                compression.as_str()
            );
            match self.compressed_payload(db, u, compression, chunk_size) {
                Ok(Some(_)) => prepared.built.push(u.id().to_string()),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(
                        "image {image}: the {} payload of update {} was not compressed ahead \
                         ({e}); its first run compresses it",
                        compression.as_str(),
                        u.id()
                    );
                    prepared.failed.push(u.id().to_string());
                }
            }
        }
        prepared
    }

    /// Whether the library records a payload for the update, compression and chunk size (its
    /// file is checked when used).
    fn has_compressed(
        &self,
        db: &Database,
        update: &Update,
        compression: Compression,
        chunk_size: u32,
    ) -> bool {
        db.query_row(
            "SELECT 1 FROM compressed_payloads WHERE update_id = ?1 AND compression = ?2 AND chunk_size = ?3",
            params![update.id(), compression.as_str(), chunk_size],
            |_| Ok(()),
        )
        .optional()
        .is_ok_and(|r| r.is_some())
    }

    fn compressed_dir(&self) -> PathBuf {
        self.store.root().join("compressed")
    }
}
