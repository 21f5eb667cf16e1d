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

    pub fn path_of(&self, sha256: &str) -> PathBuf {
        self.root.join("files").join(&sha256[..2]).join(sha256)
    }

    pub fn contains(&self, sha256: &str) -> bool {
        self.path_of(sha256).is_file()
    }

    /// Stores a stream whose hash is known; the stored file appears only once complete and
    /// checked, so an interrupted import leaves no partial file under a hash name.
    pub fn put(&self, expected_sha256: &str, reader: &mut dyn Read) -> std::io::Result<()> {
        let dest = self.path_of(expected_sha256);
        if dest.is_file() {
            return Ok(());
        }
        let dir = dest.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        let (actual, _) = copy_hashing(reader, tmp.as_file_mut())?;
        if actual != expected_sha256 {
            return Err(std::io::Error::other(format!(
                "the file changed while it was imported (SHA-256 {actual}, expected {expected_sha256})"
            )));
        }
        tmp.as_file().sync_all()?;
        tmp.persist(&dest).map_err(|e| e.error)?;
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
