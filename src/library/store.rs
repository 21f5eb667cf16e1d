//! Single-instance file store: every payload file once, named by its SHA-256.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::fsutil::copy_hashing;

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

    /// A private area beside the store where an import lands its payload before it is
    /// validated; removed when dropped. Being on the store's filesystem, adopting a file from
    /// it is a rename.
    pub fn incoming(&self) -> std::io::Result<tempfile::TempDir> {
        let dir = self.incoming_root();
        std::fs::create_dir_all(&dir)?;
        tempfile::tempdir_in(dir)
    }

    /// Copies a stream into `incoming` and returns the landed file with its SHA-256 and size.
    pub fn receive(
        incoming: &Path,
        n: usize,
        reader: &mut dyn Read,
    ) -> std::io::Result<(PathBuf, String, u64)> {
        let path = incoming.join(n.to_string());
        let mut out = File::create(&path)?;
        let (sha256, size) = copy_hashing(reader, &mut out)?;
        // Made durable all at once by `sync` before adoption: one flush, not one per file.
        Ok((path, sha256, size))
    }

    /// Moves a received file under its hash name, unless the store has it already. The file
    /// appears under that name only complete (after `sync`), so an interrupted import leaves
    /// nothing partial.
    pub fn adopt(&self, received: &Path, sha256: &str) -> std::io::Result<()> {
        let dest = self.path_of(sha256);
        if dest.is_file() {
            return Ok(());
        }
        let dir = dest.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir)?;
        std::fs::rename(received, &dest)
    }

    /// Flushes everything written to the store's filesystem: received files before they are
    /// adopted (so a name never points at a partial file), adoptions before the database
    /// records them. Cheaper than a flush per file and per directory for thousands of files.
    pub fn sync(&self) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let dir = File::open(&self.root)?;
        // SAFETY: a valid descriptor for the duration of the call.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
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
