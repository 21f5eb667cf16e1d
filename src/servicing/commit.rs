//! Writing the serviced WIM, verifying it, and putting it in place of the original.

use std::fs::File;
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;

use std::collections::HashMap;

use super::RunId;
use crate::fsutil::{copy_hashing, hash_file, sync_dir};
use crate::library::CompressedPayload;
use crate::wim::{same_bytes, verify_blobs, Blob, Progress, ProgressEvent, Wim, WimError};

/// Verifies the written WIM, and hashes it meanwhile on another core; returns its SHA-256 and
/// size. With `verified_original` (the original, whose bytes match a file ois verified
/// before), only what the write produced anew is decompressed: see [`verify_changes`].
/// Otherwise, or when the WIM has solid resources, every blob is decompressed and hashed.
pub fn verify(
    path: &Path,
    verified_original: Option<&Path>,
    references: &[CompressedPayload],
    expected_images: u32,
    sink: &mut dyn FnMut(ProgressEvent) -> Progress,
) -> Result<(String, u64), WimError> {
    std::thread::scope(|scope| {
        let hashing = scope.spawn(|| hash_file(path));
        let checked = match verified_original {
            Some(original) => verify_changes(path, original, references, expected_images),
            None => Ok(false),
        }
        .and_then(|done| {
            if done {
                return Ok(());
            }
            let wim = open_counted(path, expected_images, true)?;
            wim.verify(sink)
        });
        let hashed = hashing
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("hashing thread panicked")));
        checked?;
        hashed.map_err(|e| WimError::io(path, "hashing", e))
    })
}

/// Opens the written WIM afresh, optionally checking its integrity table, and its image count.
fn open_counted(path: &Path, expected_images: u32, integrity: bool) -> Result<Wim, WimError> {
    let wim = Wim::open(path, integrity)?;
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
    Ok(wim)
}

/// Verifies a rebuild of a verified original by what changed. wimlib copies a blob's
/// compressed bytes raw when it keeps it (from the original, or from a referenced compressed
/// payload); such a blob is sound when its bytes equal its source's, which were verified (the
/// payloads when built; their SHA-256 is checked again here, after the comparison). Every other blob is decompressed and its SHA-1 checked;
/// every image's metadata is loaded (wimlib checks its SHA-1) and every stream must have its
/// blob. Returns false, having checked nothing conclusive, when the layout does not allow it.
fn verify_changes(
    path: &Path,
    original: &Path,
    references: &[CompressedPayload],
    expected_images: u32,
) -> Result<bool, WimError> {
    // No second pass for the integrity table: wimlib computed it from the file as written,
    // and every resource it covers is compared or hashed below (the header, blob table and
    // XML are parsed at open, each image's metadata is SHA-1 checked as it loads).
    let new = open_counted(path, expected_images, false)?;
    let old = Wim::open(original, false)?;
    let sources: Vec<&Path> = std::iter::once(original)
        .chain(references.iter().map(|r| r.path.as_path()))
        .collect();
    let (nh, oh) = (new.header(), old.header());
    let Some(compression) = nh.compression else {
        return Ok(false);
    };
    if nh.compression != oh.compression || nh.chunk_size != oh.chunk_size {
        return Ok(false);
    }
    for index in 1..=nh.image_count {
        let dropped = new.load_image_checked(index)?;
        let missing = new.missing_streams(index)?;
        if !dropped.is_empty() || missing > 0 {
            return Err(WimError::io(
                path,
                "verifying",
                std::io::Error::other(format!(
                    "image {index} lost entries or data ({} dropped, {missing} missing)",
                    dropped.len()
                )),
            ));
        }
    }
    let blobs = new.blobs()?;
    let mut source_blobs = vec![old.blobs()?];
    drop(old);
    for r in references {
        let w = Wim::open(&r.path, false)?;
        if w.header().compression != nh.compression || w.header().chunk_size != nh.chunk_size {
            return Ok(false);
        }
        source_blobs.push(w.blobs()?);
    }
    if blobs
        .iter()
        .chain(source_blobs.iter().flatten())
        .any(|b| b.solid)
    {
        return Ok(false);
    }
    // Each blob's first source wins: the original, then the payloads in order.
    let mut kept: HashMap<[u8; 20], (usize, &Blob)> = HashMap::new();
    for (n, list) in source_blobs.iter().enumerate() {
        for b in list.iter().filter(|b| !b.metadata) {
            kept.entry(b.sha1).or_insert((n, b));
        }
    }
    let mut copied = Vec::new();
    let mut written = Vec::new();
    for b in blobs.iter().filter(|b| !b.metadata) {
        match kept.get(&b.sha1) {
            Some((n, o))
                if o.stored_size == b.stored_size
                    && o.size == b.size
                    && o.compressed == b.compressed =>
            {
                copied.push((*n, o.offset, b.offset, b.stored_size, b));
            }
            _ => written.push(b),
        }
    }
    tracing::info!(
        "verifying {} blob(s) written anew, comparing {} copied from the original or a payload",
        written.len(),
        copied.len()
    );
    // A blob recompressed to the same size is not a copy: when its bytes differ from its
    // source's, it is decompressed and hashed like the new ones.
    let differ = std::thread::scope(|scope| {
        let comparing = scope.spawn(|| -> Result<Vec<usize>, WimError> {
            let io = |p: &Path| {
                let p = p.to_path_buf();
                move |e| WimError::io(&p, "verifying", e)
            };
            let files = sources
                .iter()
                .map(|p| File::open(p).map_err(io(p)))
                .collect::<Result<Vec<_>, _>>()?;
            let b = File::open(path).map_err(io(path))?;
            let mut buffers = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
            let mut differ = Vec::new();
            for (k, (n, from, to, len, _)) in copied.iter().enumerate() {
                if !same_bytes(&files[*n], *from, &b, *to, *len, &mut buffers).map_err(io(path))? {
                    differ.push(k);
                }
            }
            Ok(differ)
        });
        let checked = verify_blobs(path, &written, compression, nh.chunk_size);
        let compared = comparing.join().unwrap_or_else(|_| {
            Err(WimError::io(
                path,
                "verifying",
                std::io::Error::other("panicked"),
            ))
        });
        checked.and(compared)
    })?;
    let recompressed: Vec<&Blob> = differ.iter().map(|&k| copied[k].4).collect();
    verify_blobs(path, &recompressed, compression, nh.chunk_size)?;
    for r in references {
        let (sha256, _) = hash_file(&r.path).map_err(|e| WimError::io(&r.path, "verifying", e))?;
        if sha256 != r.sha256 {
            return Err(WimError::io(
                &r.path,
                "verifying",
                std::io::Error::other("the compressed payload changed while it was used"),
            ));
        }
    }
    Ok(true)
}

/// Atomically replaces `original` with `new`, whose SHA-256 and size `verified` were taken
/// while it was verified. A rename when both are on one filesystem; otherwise a copy into a
/// temporary file beside the original, checked against `verified`, then a rename. Returns the
/// SHA-256 and size of the file now in place.
pub fn replace(
    new: &Path,
    original: &Path,
    run_id: RunId,
    verified: &(String, u64),
) -> std::io::Result<(String, u64)> {
    let parent = original.parent().unwrap_or(Path::new("."));
    let permissions = std::fs::metadata(original)?.permissions();
    if super::stage::same_filesystem(new.parent().unwrap_or(Path::new(".")), parent) {
        std::fs::set_permissions(new, permissions)?;
        crate::platform::replace_file(new, original)?;
        sync_dir(parent)?;
        return Ok(verified.clone());
    }
    let name = original
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.ois-run-{run_id}.tmp"));
    let result = (|| {
        let mut out = File::create(&tmp)?;
        let (sha256, size) = copy_hashing(&mut File::open(new)?, &mut out)?;
        if (&sha256, size) != (&verified.0, verified.1) {
            return Err(std::io::Error::other(
                "the copy beside the original differs from the verified image",
            ));
        }
        out.sync_all()?;
        drop(out);
        std::fs::set_permissions(&tmp, permissions)?;
        crate::platform::replace_file(&tmp, original)?;
        sync_dir(parent)?;
        Ok((sha256, size))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{filler, write_tree};
    use crate::wim::{Compression, UpdateCommand};

    /// An original with two files and a rebuild that adds a third; returns both paths and the
    /// blobs of the rebuild that were copied from the original and written anew.
    fn original_and_rebuild(
        dir: &Path,
        integrity: bool,
    ) -> (PathBuf, PathBuf, Vec<Blob>, Vec<Blob>) {
        let tree = dir.join("tree");
        write_tree(
            &tree,
            &[
                ("Windows/a.dll", filler(1, 200 * 1024)),
                ("Windows/b.dll", filler(2, 90 * 1024)),
            ],
        )
        .expect("tree");
        let original = dir.join("original.wim");
        let wim = Wim::create(Compression::Lzx).expect("create");
        wim.add_image(&tree, "one").expect("add");
        wim.write(&original, false, 0, &mut |_| Progress::Continue)
            .expect("write");
        drop(wim);
        let payload = dir.join("new.dll");
        std::fs::write(&payload, filler(3, 150 * 1024)).expect("payload");
        let wim = Wim::open(&original, false).expect("open");
        wim.update(
            1,
            &[UpdateCommand::Add {
                source: payload,
                target: "/Windows/new.dll".into(),
            }],
        )
        .expect("update");
        let rebuilt = dir.join("rebuilt.wim");
        wim.write(&rebuilt, integrity, 0, &mut |_| Progress::Continue)
            .expect("write");
        drop(wim);
        let old: Vec<[u8; 20]> = Wim::open(&original, false)
            .expect("open")
            .blobs()
            .expect("blobs")
            .iter()
            .map(|b| b.sha1)
            .collect();
        let (copied, written) = Wim::open(&rebuilt, false)
            .expect("open")
            .blobs()
            .expect("blobs")
            .into_iter()
            .filter(|b| !b.metadata)
            .partition(|b| old.contains(&b.sha1));
        (original, rebuilt, copied, written)
    }

    fn flip(path: &Path, at: u64) {
        let mut bytes = std::fs::read(path).expect("read");
        bytes[at as usize] ^= 0x40;
        std::fs::write(path, bytes).expect("write");
    }

    fn check(rebuilt: &Path, original: &Path) -> Result<(String, u64), WimError> {
        verify(rebuilt, Some(original), &[], 1, &mut |_| Progress::Continue)
    }

    #[test]
    fn a_sound_rebuild_verifies_by_its_changes_and_is_hashed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (original, rebuilt, copied, written) = original_and_rebuild(dir.path(), true);
        assert_eq!(copied.len(), 2);
        assert_eq!(written.len(), 1);
        assert!(verify_changes(&rebuilt, &original, &[], 1).expect("verify"));
        assert_eq!(
            check(&rebuilt, &original).expect("verify"),
            hash_file(&rebuilt).expect("hash")
        );
    }

    #[test]
    fn damage_in_a_copied_blob_is_caught() {
        let dir = tempfile::tempdir().expect("tempdir");
        // No integrity table, which would betray the damage first: the blob check must.
        let (original, rebuilt, copied, _) = original_and_rebuild(dir.path(), false);
        let b = &copied[0];
        flip(&rebuilt, b.offset + b.stored_size / 2);
        let err = verify_changes(&rebuilt, &original, &[], 1).expect_err("damage caught");
        assert!(err.is_corruption(), "{err}");
        let cmp = same_bytes(
            &File::open(&original).expect("open"),
            Wim::open(&original, false)
                .expect("open")
                .blobs()
                .expect("blobs")
                .iter()
                .find(|o| o.sha1 == b.sha1)
                .expect("blob")
                .offset,
            &File::open(&rebuilt).expect("open"),
            b.offset,
            b.stored_size,
            &mut (vec![0; 1 << 20], vec![0; 1 << 20]),
        )
        .expect("compare");
        assert!(!cmp);
    }

    #[test]
    fn damage_in_a_new_blob_is_caught() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (original, rebuilt, _, written) = original_and_rebuild(dir.path(), false);
        let b = &written[0];
        flip(&rebuilt, b.offset + b.stored_size - 10);
        let err = verify_blobs(&rebuilt, &[b], Compression::Lzx, 32768).expect_err("caught");
        assert!(err.is_corruption(), "{err}");
        assert!(check(&rebuilt, &original).is_err());
    }
}
