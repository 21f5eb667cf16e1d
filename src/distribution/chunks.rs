//! Chunk indexes of image versions: the site publishes one per version, a pull DP computes one
//! for the version it holds, and only the chunks it lacks cross the network.
//!
//! A WIM is cut at its resource boundaries ([`super::wim_layout`]): each resource as stored is
//! one chunk (a big one is cut within by FastCDC 2020, so ranges and resumes stay bounded), and
//! so is each stretch between resources (header, blob table, XML, integrity table). A servicing
//! run adds and removes whole resources, so every resource it kept is a chunk the DP holds,
//! however many blobs were removed around it. A file wimlib cannot read is cut by content
//! alone (FastCDC 2020 over the whole file).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::wim_layout::{self, Piece};

/// Chunk sizes of a file cut by content alone: 4 KiB minimum, 16 KiB on average, 64 KiB at
/// most. On the bench image's monthly run (`ois bench delta`) that fetched 2.05 times what
/// changed (2.24 on the 1 GiB × 4 shape): each removed blob costs about one chunk.
pub const MIN_SIZE: u32 = 4 * 1024;
pub const AVG_SIZE: u32 = 16 * 1024;
pub const MAX_SIZE: u32 = 64 * 1024;

/// Chunk sizes within a resource (or a gap) bigger than `RESOURCE_MAX`: smaller pieces are one
/// chunk each. A resource is kept or replaced whole, so big chunks cost no reuse; they keep
/// the index small and each range request and journal entry bounded. On the bench image's
/// monthly run the delta is 1.04 times what changed, index included, with 64/256/1024 and with
/// 16/64/256 KiB alike (the same chunks fetched; the index 148 KB against 177 KB).
pub const RESOURCE_MIN: u32 = 64 * 1024;
pub const RESOURCE_AVG: u32 = 256 * 1024;
pub const RESOURCE_MAX: u32 = 1024 * 1024;

/// Version of the index format; an index of another format is rebuilt. 1 was JSON and cut by
/// content alone; 2 is binary and cuts WIMs at their resources.
const FORMAT: u32 = 2;
const MAGIC: &[u8; 8] = b"OISCHUNK";

#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot chunk {}: {reason}", path.display())]
    Chunk { path: PathBuf, reason: String },
    #[error("cannot write the chunk index {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} has SHA-256 {actual}, not {expected}: the file changed since it was recorded; \
         run `ois image show` and validate it",
        path.display()
    )]
    Changed {
        path: PathBuf,
        expected: String,
        actual: String,
    },
}

/// One chunk: where it is in the file and what it hashes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub offset: u64,
    pub length: u32,
    pub sha256: [u8; 32],
}

/// How a file was cut into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// At the WIM's resource boundaries; pieces bigger than the maximum cut by FastCDC within.
    Resources,
    /// FastCDC over the whole file.
    Content,
}

/// A file cut into chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkIndex {
    pub size: u64,
    /// SHA-256 of the whole file, hex.
    pub sha256: String,
    pub cut: Cut,
    /// FastCDC sizes (within big pieces for [`Cut::Resources`]).
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
    pub chunks: Vec<Chunk>,
}

/// Appends `n` as LEB128: a chunk's length takes 2 or 3 bytes instead of 4.
fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads what the wire format holds, refusing anything short or malformed.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn hash(&mut self) -> Option<[u8; 32]> {
        self.take(32)?.try_into().ok()
    }
    fn varint(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.take(1)?.first()?;
            n |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }
}

impl ChunkIndex {
    /// The index on the wire and on disk, binary: a header (magic, format, cut, sizes, file
    /// size, SHA-256, chunk count), then per chunk its length (LEB128) and SHA-256; offsets
    /// follow from the lengths. About 34 bytes a chunk, where JSON took 75: a real
    /// install.wim has some 100,000 resources, and the index counts in what a delta costs.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80 + self.chunks.len() * 35);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.push(match self.cut {
            Cut::Content => 0,
            Cut::Resources => 1,
        });
        for n in [self.min_size, self.avg_size, self.max_size] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&parse_hex32(&self.sha256).unwrap_or([0; 32]));
        out.extend_from_slice(&(self.chunks.len() as u64).to_le_bytes());
        for c in &self.chunks {
            put_varint(&mut out, u64::from(c.length));
            out.extend_from_slice(&c.sha256);
        }
        out
    }

    /// Reads an index; `None` when it is not one (of this format), or its chunks do not add
    /// up to its size.
    pub fn from_bytes(bytes: &[u8]) -> Option<ChunkIndex> {
        let mut r = Cursor(bytes);
        if r.take(MAGIC.len())? != MAGIC || r.u32()? != FORMAT {
            return None;
        }
        let cut = match r.take(1)?.first()? {
            0 => Cut::Content,
            1 => Cut::Resources,
            _ => return None,
        };
        let (min_size, avg_size, max_size) = (r.u32()?, r.u32()?, r.u32()?);
        let size = r.u64()?;
        let sha256 = crate::fsutil::hex(&r.hash()?);
        let count = r.u64()?;
        // Each chunk takes at least 33 bytes: a count beyond that is a damaged index, not an
        // allocation to make.
        if count > (r.0.len() / 33) as u64 {
            return None;
        }
        let mut chunks = Vec::with_capacity(count as usize);
        let mut offset = 0u64;
        for _ in 0..count {
            let length = u32::try_from(r.varint()?).ok().filter(|l| *l > 0)?;
            chunks.push(Chunk {
                offset,
                length,
                sha256: r.hash()?,
            });
            offset = offset.checked_add(u64::from(length))?;
        }
        (offset == size && r.0.is_empty()).then_some(ChunkIndex {
            size,
            sha256,
            cut,
            min_size,
            avg_size,
            max_size,
            chunks,
        })
    }

    /// Whether `other` was cut the same way (only then can chunks match).
    pub fn same_cut(&self, other: &ChunkIndex) -> bool {
        (self.cut, self.min_size, self.avg_size, self.max_size)
            == (other.cut, other.min_size, other.avg_size, other.max_size)
    }

    /// Whether this index was cut the way [`build`] cuts today (else a cached one is rebuilt).
    fn is_current(&self) -> bool {
        let sizes = (self.min_size, self.avg_size, self.max_size);
        match self.cut {
            Cut::Resources => sizes == (RESOURCE_MIN, RESOURCE_AVG, RESOURCE_MAX),
            Cut::Content => sizes == (MIN_SIZE, AVG_SIZE, MAX_SIZE),
        }
    }
}

/// Reads `buf.len()` bytes at `offset`. Seek and read on a shared `&File`: portable, where
/// positioned reads differ between Unix and Windows.
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut f = file;
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(buf)
}

/// Writes `data` at `offset` (see [`read_at`]).
pub fn write_at(file: &File, data: &[u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = file;
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(data)
}

fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Hashes everything read through it: the whole file's SHA-256 comes with its chunks, in one
/// pass.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Cuts `path` the way the site publishes it: a WIM at its resources, anything else by
/// content. Streams the file (memory stays at a few chunks).
pub fn build(path: &Path) -> Result<ChunkIndex, ChunkError> {
    let size = std::fs::metadata(path)
        .map_err(|source| ChunkError::Read {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    match wim_layout::pieces(path, size) {
        Some(pieces) => build_pieces(path, &pieces, (RESOURCE_MIN, RESOURCE_AVG, RESOURCE_MAX)),
        None => build_with(path, MIN_SIZE, AVG_SIZE, MAX_SIZE),
    }
}

/// Cuts `path` at its WIM resources with chosen sizes within big pieces (for measurements);
/// `None` when wimlib cannot read it.
pub fn build_resources_with(
    path: &Path,
    sizes: (u32, u32, u32),
) -> Option<Result<ChunkIndex, ChunkError>> {
    let size = std::fs::metadata(path).ok()?.len();
    let pieces = wim_layout::pieces(path, size)?;
    Some(build_pieces(path, &pieces, sizes))
}

/// Cuts `path` by content alone with chosen chunk sizes.
pub fn build_with(path: &Path, min: u32, avg: u32, max: u32) -> Result<ChunkIndex, ChunkError> {
    let size = std::fs::metadata(path)
        .map_err(|source| ChunkError::Read {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    let whole = [Piece {
        offset: 0,
        length: size,
        resource: false,
    }];
    let mut index = cut_pieces(path, &whole, (min, avg, max), 0)?;
    index.cut = Cut::Content;
    Ok(index)
}

fn build_pieces(
    path: &Path,
    pieces: &[Piece],
    sizes: (u32, u32, u32),
) -> Result<ChunkIndex, ChunkError> {
    cut_pieces(path, pieces, sizes, sizes.2)
}

/// Reads the file once, in order: each piece of at most `whole_up_to` bytes is one chunk, a
/// bigger one is cut within by FastCDC with `sizes`.
fn cut_pieces(
    path: &Path,
    pieces: &[Piece],
    (min, avg, max): (u32, u32, u32),
    whole_up_to: u32,
) -> Result<ChunkIndex, ChunkError> {
    let read_err = |source| ChunkError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let mut reader = HashingReader {
        inner: BufReader::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
    };
    let mut chunks = Vec::new();
    let mut buf = Vec::new();
    let mut size = 0u64;
    for piece in pieces.iter().filter(|p| p.length > 0) {
        if piece.length <= u64::from(whole_up_to) {
            buf.resize(piece.length as usize, 0);
            reader.read_exact(&mut buf).map_err(read_err)?;
            chunks.push(Chunk {
                offset: piece.offset,
                length: piece.length as u32,
                sha256: Sha256::digest(&buf).into(),
            });
        } else {
            let within = (&mut reader).take(piece.length);
            let mut cut = 0u64;
            for chunk in fastcdc::v2020::StreamCDC::new(within, min, avg, max) {
                let chunk = chunk.map_err(|e| ChunkError::Chunk {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
                chunks.push(Chunk {
                    offset: piece.offset + chunk.offset,
                    length: chunk.length as u32,
                    sha256: Sha256::digest(&chunk.data).into(),
                });
                cut += chunk.length as u64;
            }
            if cut != piece.length {
                return Err(ChunkError::Chunk {
                    path: path.to_path_buf(),
                    reason: format!(
                        "the file ended {} bytes into a {}-byte stretch at offset {}: it \
                         changed while it was read",
                        cut, piece.length, piece.offset
                    ),
                });
            }
        }
        size = piece.offset + piece.length;
    }
    Ok(ChunkIndex {
        size,
        sha256: crate::fsutil::hex(&reader.hasher.finalize()),
        cut: Cut::Resources,
        min_size: min,
        avg_size: avg,
        max_size: max,
        chunks,
    })
}

/// The index of `path`, whose SHA-256 must be `sha256`: read from `cache` when it is there,
/// else built and written there (atomically: concurrent builders each rename a whole file).
pub fn cached(path: &Path, sha256: &str, cache: &Path) -> Result<ChunkIndex, ChunkError> {
    if let Ok(bytes) = std::fs::read(cache) {
        if let Some(index) = ChunkIndex::from_bytes(&bytes) {
            if index.sha256 == sha256 && index.is_current() {
                return Ok(index);
            }
        }
    }
    let index = build(path)?;
    if index.sha256 != sha256 {
        return Err(ChunkError::Changed {
            path: path.to_path_buf(),
            expected: sha256.to_string(),
            actual: index.sha256,
        });
    }
    write_atomically(cache, &index.to_bytes())?;
    Ok(index)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ChunkError> {
    let write_err = |source| ChunkError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(write_err)?;
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(write_err)?;
    std::fs::write(tmp.path(), bytes).map_err(write_err)?;
    tmp.persist(path).map_err(|e| write_err(e.error))?;
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn an_insertion_changes_only_the_chunks_around_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let base = pseudo_random(4 << 20, 7);
        let mut changed = base.clone();
        changed.splice(1_000_000..1_000_000, pseudo_random(5000, 9));
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, &base).expect("a");
        std::fs::write(&b, &changed).expect("b");
        let (ia, ib) = (build(&a).expect("index a"), build(&b).expect("index b"));
        assert_eq!(ia.size, base.len() as u64);
        assert_eq!(ia.sha256, crate::fsutil::hex(&Sha256::digest(&base)));
        let known: std::collections::HashSet<_> = ia.chunks.iter().map(|c| c.sha256).collect();
        let new_bytes: u64 = ib
            .chunks
            .iter()
            .filter(|c| !known.contains(&c.sha256))
            .map(|c| u64::from(c.length))
            .sum();
        assert!(
            new_bytes < 3 * u64::from(MAX_SIZE),
            "{new_bytes} bytes of new chunks"
        );
        let round = ChunkIndex::from_bytes(&ib.to_bytes()).expect("round trip");
        assert_eq!(round, ib);
        assert_eq!(ib.cut, Cut::Content, "not a WIM: cut by content");
        let mut damaged = ib.to_bytes();
        damaged.truncate(damaged.len() - 1);
        assert_eq!(ChunkIndex::from_bytes(&damaged), None);
    }

    fn bench_tree(root: &Path, files: &[(String, Vec<u8>)]) {
        let refs: Vec<(&str, Vec<u8>)> =
            files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
        crate::sample::write_tree(root, &refs).expect("tree");
    }

    fn wim_of(dir: &Path, name: &str, files: &[(String, Vec<u8>)]) -> std::path::PathBuf {
        let tree = dir.join(format!("{name}-tree"));
        bench_tree(&tree, files);
        let wim = dir.join(format!("{name}.wim"));
        crate::sample::build_wim(
            &wim,
            crate::wim::Compression::Lzx,
            &[crate::sample::IndexSpec {
                name: "Pro",
                edition: "Professional",
                architecture: crate::library::Architecture::X64,
                build: 22631,
                tree: &tree,
            }],
        )
        .expect("wim");
        wim
    }

    fn missing_bytes(old: &ChunkIndex, new: &ChunkIndex) -> u64 {
        let have: std::collections::HashSet<_> = old.chunks.iter().map(|c| c.sha256).collect();
        new.chunks
            .iter()
            .filter(|c| !have.contains(&c.sha256))
            .map(|c| u64::from(c.length))
            .sum()
    }

    /// A servicing run removes blobs scattered through the ones it keeps: cut by content, each
    /// removal cost about one chunk; cut at resources, it costs nothing.
    #[test]
    fn unchanged_resources_are_reused_whatever_was_removed_around_them() {
        let dir = tempfile::tempdir().expect("tmp");
        let files: Vec<(String, Vec<u8>)> = (0..200u64)
            .map(|i| {
                let len = 2048 + (i as usize * 7919) % 30_000;
                (
                    format!("Windows/System32/f{i:03}.dll"),
                    crate::sample::filler(i + 1, len),
                )
            })
            .collect();
        let old = wim_of(dir.path(), "old", &files);
        let mut next: Vec<_> = files
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 10 != 3)
            .map(|(_, f)| f.clone())
            .collect();
        for i in 0..5u64 {
            next.push((
                format!("Windows/System32/new{i}.dll"),
                crate::sample::filler(1000 + i, 20_000),
            ));
        }
        let new = wim_of(dir.path(), "new", &next);

        let (io, in_) = (build(&old).expect("old"), build(&new).expect("new"));
        assert_eq!(in_.size, std::fs::metadata(&new).expect("size").len());
        assert_eq!(
            in_.sha256,
            crate::fsutil::hex(&Sha256::digest(std::fs::read(&new).expect("new")))
        );
        // What changed: the new file blobs and the metadata, as stored; and what lies between
        // resources (header, tables), which every write rewrites.
        let blobs = |p: &Path| {
            crate::wim::Wim::open(p, false)
                .expect("open")
                .blobs()
                .expect("blobs")
        };
        let known: std::collections::HashSet<_> = blobs(&old).iter().map(|b| b.sha1).collect();
        let new_blobs = blobs(&new);
        let changed: u64 = new_blobs
            .iter()
            .filter(|b| b.metadata || !known.contains(&b.sha1))
            .map(|b| b.resource_stored_size)
            .sum();
        let in_resources: u64 = new_blobs.iter().map(|b| b.resource_stored_size).sum();
        let between = in_.size - in_resources;
        let missing = missing_bytes(&io, &in_);
        assert!(
            missing <= changed + between,
            "{missing} bytes of new chunks; {changed} bytes changed, {between} between resources"
        );
        assert_eq!(in_.cut, Cut::Resources);
        let by_content = missing_bytes(
            &build_with(&old, MIN_SIZE, AVG_SIZE, MAX_SIZE).expect("old by content"),
            &build_with(&new, MIN_SIZE, AVG_SIZE, MAX_SIZE).expect("new by content"),
        );
        assert!(
            by_content > missing,
            "{by_content} by content, {missing} by resource"
        );
        let round = ChunkIndex::from_bytes(&in_.to_bytes()).expect("round trip");
        assert_eq!(round, in_);
    }
}
