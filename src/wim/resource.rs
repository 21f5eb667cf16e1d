//! Checking a WIM's blobs one by one, so a serviced WIM can be verified by what changed:
//! blobs written anew are decompressed and hashed, blobs copied raw from an already-verified
//! original are compared byte for byte with it (no decompression).

use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::fs::File;
use std::path::Path;

use sha1::{Digest, Sha1};
use wimlib_sys as sys;

use super::blob::{corrupt, hex, BlobReader, Layout};
use super::{Compression, TreeEntry, Wim, WimError};

/// One entry of a WIM's blob table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub sha1: [u8; 20],
    /// Where its resource starts in the file.
    pub offset: u64,
    /// Bytes it takes in the file (chunk table included).
    pub stored_size: u64,
    pub size: u64,
    pub compressed: bool,
    pub metadata: bool,
    /// Part of a solid resource (several blobs compressed together); `offset` is then the
    /// blob's place in the decompressed resource.
    pub solid: bool,
    /// Where the resource holding the blob starts in the file, and the bytes it takes there
    /// (the blob's own for a resource that is not solid).
    pub resource_offset: u64,
    pub resource_stored_size: u64,
    /// Stored in a WIM file (this one or a referenced one); false for data added from a file
    /// on disk that matched nothing already stored.
    pub in_wim: bool,
}

unsafe extern "C" fn collect(r: *const sys::wimlib_resource_entry, ctx: *mut c_void) -> c_int {
    // SAFETY: wimlib passes a valid entry; ctx is the Vec given by `blobs`.
    let (r, out) = unsafe { (&*r, &mut *(ctx as *mut Vec<Blob>)) };
    out.push(Blob {
        sha1: r.sha1_hash,
        offset: r.offset,
        stored_size: r.compressed_size,
        size: r.uncompressed_size,
        compressed: r.is_compressed() != 0,
        metadata: r.is_metadata() != 0,
        solid: r.packed() != 0,
        resource_offset: r.raw_resource_offset_in_wim,
        resource_stored_size: r.raw_resource_compressed_size,
        in_wim: r.part_number != 0,
    });
    0
}

unsafe extern "C" fn count_missing(e: *const sys::wimlib_dir_entry, ctx: *mut c_void) -> c_int {
    // SAFETY: as in `collect`; the stream array holds the unnamed stream plus the named ones.
    let (e, missing) = unsafe { (&*e, &mut *(ctx as *mut u64)) };
    let streams = unsafe { e.streams.as_slice(e.num_named_streams as usize + 1) };
    *missing += streams
        .iter()
        .filter(|s| s.resource.is_missing() != 0)
        .count() as u64;
    0
}

/// Collects the first `.0` metadata resources, then stops the iteration: wimlib lists each
/// image's metadata first, in image order.
unsafe extern "C" fn collect_metadata(
    r: *const sys::wimlib_resource_entry,
    ctx: *mut c_void,
) -> c_int {
    // SAFETY: ctx is the (usize, Vec) given by `metadata_blob`.
    let (wanted, out) = unsafe { &mut *(ctx as *mut (usize, Vec<Blob>)) };
    if unsafe { (*r).is_metadata() } == 0 {
        return 0;
    }
    unsafe { collect(r, out as *mut Vec<Blob> as *mut c_void) };
    if out.len() >= *wanted {
        STOP
    } else {
        0
    }
}

/// Returned by a callback to end wimlib's iteration early; no wimlib error has this code.
const STOP: c_int = 0x0015_7000;

impl Wim {
    /// The metadata resource of image `index`, as stored in the file.
    pub(super) fn metadata_blob(&self, index: u32) -> Result<Option<Blob>, WimError> {
        let mut state: (usize, Vec<Blob>) = (index as usize, Vec::new());
        let rc = unsafe {
            sys::wimlib_iterate_lookup_table(
                self.raw,
                0,
                Some(collect_metadata),
                &mut state as *mut (usize, Vec<Blob>) as *mut c_void,
            )
        };
        if rc != STOP {
            self.check("listing the blobs of", rc)?;
        }
        Ok(state.1.into_iter().nth(index as usize - 1))
    }

    /// The bytes of image `index`'s metadata resource as stored in the file; None for an
    /// image that is not in the file yet, or whose metadata is in the file it was exported from.
    pub(super) fn stored_metadata(&self, index: u32) -> Result<Option<Vec<u8>>, WimError> {
        if index > self.images_in_file {
            return Ok(None);
        }
        let Some(blob) = self.metadata_blob(index)?.filter(|b| b.in_wim) else {
            return Ok(None);
        };
        let header = self.header();
        let layout = Layout {
            compression: header.compression,
            chunk_size: header.chunk_size,
            pipable: header.is_pipable,
        };
        let mut reader = BlobReader::open(self.path(), layout)?;
        let mut out = Vec::with_capacity(blob.size as usize);
        reader.read(&blob, &mut |bytes| {
            out.extend_from_slice(bytes);
            Ok(())
        })?;
        Ok(Some(out))
    }

    /// Every blob of the blob table, metadata resources included.
    pub fn blobs(&self) -> Result<Vec<Blob>, WimError> {
        let mut out: Vec<Blob> = Vec::new();
        let rc = unsafe {
            sys::wimlib_iterate_lookup_table(
                self.raw,
                0,
                Some(collect),
                &mut out as *mut Vec<Blob> as *mut c_void,
            )
        };
        self.check("listing the blobs of", rc)?;
        Ok(out)
    }

    /// A reader of this WIM's files, for the few read whole (package manifests).
    pub fn files(&self) -> Result<FileReader<'_>, WimError> {
        let header = self.header();
        let layout = Layout {
            compression: header.compression,
            chunk_size: header.chunk_size,
            pipable: header.is_pipable,
        };
        let blobs = self
            .blobs()?
            .into_iter()
            .filter(|b| !b.metadata && b.in_wim)
            .map(|b| (b.sha1, b))
            .collect();
        Ok(FileReader {
            blobs,
            reader: BlobReader::open(self.path(), layout)?,
        })
    }

    /// Streams of an image whose blob is not in the blob table (a WIM that cannot be applied).
    pub fn missing_streams(&self, index: u32) -> Result<u64, WimError> {
        let mut missing = 0u64;
        super::tree::walk(
            self,
            "listing the streams of",
            index,
            "/",
            sys::WIMLIB_ITERATE_DIR_TREE_FLAG_RECURSIVE,
            count_missing,
            &mut missing,
        )?;
        Ok(missing)
    }
}

/// Reads whole files of a WIM straight from its blobs: nothing is extracted to disk.
pub struct FileReader<'a> {
    blobs: HashMap<[u8; 20], Blob>,
    reader: BlobReader<'a>,
}

impl FileReader<'_> {
    /// The data of `entry` (its unnamed stream), refused when it is over `limit` bytes.
    pub fn read(&mut self, entry: &TreeEntry, limit: u64) -> Result<Vec<u8>, WimError> {
        if entry.sha1 == [0u8; 20] {
            return Ok(Vec::new());
        }
        let size = self.blob(entry)?.size;
        if size > limit {
            return Err(corrupt(
                self.reader.path(),
                format!("{} is {size} bytes, over {limit}", entry.path),
            ));
        }
        let mut out = Vec::with_capacity(size as usize);
        self.stream(entry, &mut |bytes| {
            out.extend_from_slice(bytes);
            Ok(())
        })?;
        Ok(out)
    }

    fn blob(&self, entry: &TreeEntry) -> Result<Blob, WimError> {
        self.blobs.get(&entry.sha1).cloned().ok_or_else(|| {
            corrupt(
                self.reader.path(),
                format!("{} has no data in the blob table", entry.path),
            )
        })
    }

    /// Streams the data of `entry` (its unnamed stream) to `sink`, chunk by chunk: for files
    /// too large to hold whole (the packages inside a WIM-format update).
    pub fn stream(
        &mut self,
        entry: &TreeEntry,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), WimError>,
    ) -> Result<(), WimError> {
        if entry.sha1 == [0u8; 20] {
            return Ok(());
        }
        let blob = self.blob(entry)?;
        self.reader.read(&blob, sink)
    }
}

/// Decompresses each blob of `blobs` (resources of the WIM at `path`, in the original or the
/// pipable layout) and checks its SHA-1, as wimlib's own verification does for every blob.
pub fn verify_blobs(
    path: &Path,
    blobs: &[&Blob],
    compression: Compression,
    chunk_size: u32,
) -> Result<(), WimError> {
    let layout = Layout {
        compression: Some(compression),
        chunk_size,
        pipable: is_pipable_file(path)?,
    };
    let mut reader = BlobReader::open(path, layout)?;
    for b in blobs {
        let mut hasher = Sha1::new();
        reader
            .read(b, &mut |bytes| {
                hasher.update(bytes);
                Ok(())
            })
            .map_err(|e| WimError {
                operation: "verifying",
                ..e
            })?;
        if hasher.finalize().as_slice() != b.sha1 {
            return Err(WimError {
                operation: "verifying",
                ..corrupt(
                    path,
                    format!("blob {} does not match its SHA-1", hex(&b.sha1)),
                )
            });
        }
    }
    Ok(())
}

/// wimlib's pipable WIMs start with their own magic instead of `MSWIM`.
fn is_pipable_file(path: &Path) -> Result<bool, WimError> {
    let mut magic = [0u8; 8];
    File::open(path)
        .and_then(|f| crate::platform::read_exact_at(&f, &mut magic, 0))
        .map_err(|e| WimError::io(path, "verifying", e))?;
    Ok(&magic == b"WLPWM\0\0\0")
}

/// Verifies a whole WIM as [`Wim::verify`] does (every image's metadata loads, SHA-1 checked;
/// every blob decompresses to its SHA-1), with the blobs shared among `threads`.
pub fn verify_file(path: &Path, threads: usize) -> Result<(), WimError> {
    let wim = Wim::open(path, false)?;
    let header = wim.header();
    for index in 1..=header.image_count {
        wim.load_image_checked(index)?;
    }
    let blobs = wim.blobs()?;
    let Some(compression) = header.compression else {
        return wim.verify(&mut |_| super::Progress::Continue);
    };
    if blobs.iter().any(|b| b.solid) {
        return wim.verify(&mut |_| super::Progress::Continue);
    }
    drop(wim);
    let mut data: Vec<&Blob> = blobs.iter().filter(|b| !b.metadata).collect();
    data.sort_by_key(|b| std::cmp::Reverse(b.stored_size));
    // Largest first, each to the least loaded share.
    let threads = threads.max(1);
    let mut shares: Vec<(u64, Vec<&Blob>)> = vec![(0, Vec::new()); threads];
    for b in data {
        if let Some(share) = shares.iter_mut().min_by_key(|(load, _)| *load) {
            share.0 += b.stored_size;
            share.1.push(b);
        }
    }
    std::thread::scope(|scope| {
        let running: Vec<_> = shares
            .iter()
            .map(|(_, share)| {
                scope.spawn(move || verify_blobs(path, share, compression, header.chunk_size))
            })
            .collect();
        running.into_iter().try_for_each(|t| {
            t.join().unwrap_or_else(|_| {
                Err(WimError::io(
                    path,
                    "verifying",
                    std::io::Error::other("a verifying thread panicked"),
                ))
            })
        })
    })
}

/// Are `len` bytes at `a_at` in `a` the same as at `b_at` in `b`?
/// `buffers` are reused across calls: allocating them per blob cost more than comparing.
pub fn same_bytes(
    a: &File,
    a_at: u64,
    b: &File,
    b_at: u64,
    len: u64,
    buffers: &mut (Vec<u8>, Vec<u8>),
) -> std::io::Result<bool> {
    let (x, y) = (&mut buffers.0, &mut buffers.1);
    let mut done = 0;
    while done < len {
        let n = (len - done).min(x.len() as u64) as usize;
        crate::platform::read_exact_at(a, &mut x[..n], a_at + done)?;
        crate::platform::read_exact_at(b, &mut y[..n], b_at + done)?;
        if x[..n] != y[..n] {
            return Ok(false);
        }
        done += n as u64;
    }
    Ok(true)
}
