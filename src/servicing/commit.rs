//! Writing the serviced WIM, verifying it, and putting it in place of the original.

use std::fs::File;
use std::path::Path;

use crate::fsutil::{copy_hashing, hash_file, sync_dir};
use crate::wim::{Progress, ProgressEvent, Wim, WimError};

/// Opens the written WIM afresh (checking its integrity table) and verifies every blob and
/// metadata resource, so a damaged source or a bad write cannot replace the original.
pub fn verify(
    path: &Path,
    expected_images: u32,
    sink: &mut dyn FnMut(ProgressEvent) -> Progress,
) -> Result<(), WimError> {
    let wim = Wim::open(path, true)?;
    let count = wim.header().image_count;
    if count != expected_images {
        return Err(WimError::io(
            path,
            "verifying",
            std::io::Error::other(format!(
                "it holds {count} images instead of {expected_images}"
            )),
        ));
    }
    wim.verify(sink)
}

/// Atomically replaces `original` with `new`. A rename when both are on one filesystem;
/// otherwise a copy into a temporary file beside the original, then a rename. Returns the
/// SHA-256 and size of the file now in place.
pub fn replace(new: &Path, original: &Path, run_id: i64) -> std::io::Result<(String, u64)> {
    let parent = original.parent().unwrap_or(Path::new("."));
    let permissions = std::fs::metadata(original)?.permissions();
    if super::stage::same_filesystem(new.parent().unwrap_or(Path::new(".")), parent) {
        let (sha256, size) = hash_file(new)?;
        std::fs::set_permissions(new, permissions)?;
        std::fs::rename(new, original)?;
        sync_dir(parent)?;
        return Ok((sha256, size));
    }
    let name = original
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.ois-run-{run_id}.tmp"));
    let result = (|| {
        let mut out = File::create(&tmp)?;
        let (sha256, size) = copy_hashing(&mut File::open(new)?, &mut out)?;
        out.sync_all()?;
        drop(out);
        std::fs::set_permissions(&tmp, permissions)?;
        std::fs::rename(&tmp, original)?;
        sync_dir(parent)?;
        Ok((sha256, size))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
