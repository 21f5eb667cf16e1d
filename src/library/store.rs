//! Single-instance file store: every payload file once, named by its SHA-256.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::fsutil::copy_hashing;

/// Files up to this size are received through memory (see [`FileStore::receive`]); with at
/// most [`IN_FLIGHT`] of them queued, at most 128 MiB wait to be written.
const IN_MEMORY: u64 = 8 << 20;
const IN_FLIGHT: usize = 16;

/// Writes received files on threads of their own, so that reading and hashing a package
/// overlaps creating its files. Each writer has its own folder: creating files in one folder
/// is serialised by the kernel, in several it is not (and on a filesystem that has just
/// deleted many files, finding a free inode is the slow part of an import).
pub struct Lander {
    writers: Vec<Writer>,
    next: std::cell::Cell<usize>,
}

struct Writer {
    queue: Option<std::sync::mpsc::SyncSender<(PathBuf, Vec<u8>)>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Lander {
    pub fn start() -> Lander {
        let count = std::thread::available_parallelism().map_or(1, |n| n.get());
        let writers = (0..count)
            .map(|_| {
                let (queue, files) =
                    std::sync::mpsc::sync_channel::<(PathBuf, Vec<u8>)>(IN_FLIGHT / count);
                let thread = std::thread::spawn(move || {
                    for (path, bytes) in files {
                        let written = match path.parent() {
                            Some(dir) if !dir.exists() => std::fs::create_dir_all(dir),
                            _ => Ok(()),
                        }
                        .and_then(|()| std::fs::write(&path, &bytes));
                        written.map_err(|e| {
                            std::io::Error::new(
                                e.kind(),
                                format!("writing {}: {e}", path.display()),
                            )
                        })?;
                    }
                    Ok(())
                });
                Writer {
                    queue: Some(queue),
                    thread: Some(thread),
                }
            })
            .collect();
        Lander {
            writers,
            next: std::cell::Cell::new(0),
        }
    }

    /// Queues `bytes` for writing as file `n` under `dir`; returns the path it will have.
    fn land(&self, dir: &Path, n: usize, bytes: Vec<u8>) -> std::io::Result<PathBuf> {
        let k = self.next.get() % self.writers.len().max(1);
        self.next.set(k + 1);
        let path = dir.join(format!("w{k}")).join(n.to_string());
        let sent = self.writers[k]
            .queue
            .as_ref()
            .map(|q| q.send((path.clone(), bytes)));
        match sent {
            Some(Ok(())) => Ok(path),
            // The writer stopped on an error, which `finish` reports.
            _ => Err(std::io::Error::other("the file writer stopped")),
        }
    }

    /// Waits until every file is written; the first error if one was not.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> std::io::Result<()> {
        for w in &mut self.writers {
            drop(w.queue.take());
        }
        let mut result = Ok(());
        for w in &mut self.writers {
            let done = match w.thread.take().map(|t| t.join()) {
                None => Ok(()),
                Some(Ok(r)) => r,
                Some(Err(_)) => Err(std::io::Error::other("a file writer panicked")),
            };
            if result.is_ok() {
                result = done;
            }
        }
        result
    }
}

impl Drop for Lander {
    fn drop(&mut self) {
        // Nothing may still be writing into the incoming area once it is removed.
        let _ = self.stop();
    }
}

pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    pub fn new(root: PathBuf) -> Self {
        FileStore { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn incoming_root(&self) -> PathBuf {
        self.root.join("incoming")
    }

    pub fn path_of(&self, sha256: &str) -> PathBuf {
        self.root.join("files").join(&sha256[..2]).join(sha256)
    }

    pub fn contains(&self, sha256: &str) -> bool {
        self.path_of(sha256).is_file()
    }

    /// Does the store hold this content intact? (A damaged or missing file is replaced by the
    /// next import that brings the content.)
    pub fn holds(&self, sha256: &str) -> bool {
        crate::fsutil::hash_file(&self.path_of(sha256)).is_ok_and(|(actual, _)| actual == sha256)
    }

    /// A private area beside the store where an import lands its payload before it is
    /// validated; removed when dropped. Being on the store's filesystem, adopting a file from
    /// it is a rename.
    pub fn incoming(&self) -> std::io::Result<tempfile::TempDir> {
        let dir = self.incoming_root();
        std::fs::create_dir_all(&dir)?;
        // Named by this process, so the next import can tell a dead import's area from a live one's.
        tempfile::Builder::new()
            .prefix(&format!("{}.", std::process::id()))
            .tempdir_in(dir)
    }

    /// Lands a stream in `incoming` and returns the landed file with its SHA-256 and size. A
    /// file of up to [`IN_MEMORY`] bytes is hashed before anything is written, so content
    /// already received (`received`) or already stored lands nowhere (None), and the rest is
    /// written by `lander` while the package is read on: on a busy filesystem, creating files
    /// is the costly part of an import.
    pub fn receive(
        &self,
        incoming: &Path,
        n: usize,
        size: u64,
        reader: &mut dyn Read,
        received: &mut HashSet<String>,
        lander: &Lander,
    ) -> std::io::Result<(Option<PathBuf>, String, u64)> {
        if size > IN_MEMORY {
            let path = incoming.join(n.to_string());
            let mut out = File::create(&path)?;
            let (sha256, size) = copy_hashing(reader, &mut out)?;
            received.insert(sha256.clone());
            return Ok((Some(path), sha256, size));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        reader.take(IN_MEMORY + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > IN_MEMORY {
            return Err(std::io::Error::other(format!(
                "the package said {size} bytes but the file is larger"
            )));
        }
        let sha256 = crate::fsutil::hex(&Sha256::digest(&bytes));
        let size = bytes.len() as u64;
        if received.contains(&sha256) || self.holds(&sha256) {
            return Ok((None, sha256, size));
        }
        // Made durable all at once by `sync` before adoption: one flush, not one per file.
        let path = lander.land(incoming, n, bytes)?;
        received.insert(sha256.clone());
        Ok((Some(path), sha256, size))
    }

    /// Moves a received file under its hash name, replacing a damaged one. The file appears
    /// under that name only complete (after `sync`), so an interrupted import leaves nothing
    /// partial.
    pub fn adopt(&self, received: &Path, sha256: &str) -> std::io::Result<()> {
        let dest = self.path_of(sha256);
        let dir = dest.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir)?;
        std::fs::rename(received, &dest)
    }

    /// Flushes everything written to the store's filesystem: received files before they are
    /// adopted (so a name never points at a partial file), adoptions before the database
    /// records them. Cheaper than a flush per file and per directory for thousands of files.
    pub fn sync(&self) -> std::io::Result<()> {
        crate::platform::sync_volume(&self.root)
    }

    /// Copies a stored file to `dest`, re-checking its hash on the way.
    pub fn copy_out(&self, sha256: &str, dest: &Path) -> std::io::Result<Result<(), String>> {
        let mut src = File::open(self.path_of(sha256))?;
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut out = File::create(dest)?;
        let (actual, _) = copy_hashing(&mut src, &mut out)?;
        if actual != sha256 {
            return Ok(Err(actual));
        }
        Ok(Ok(()))
    }
}
