//! Content-defined chunk indexes of image versions (FastCDC 2020): the site publishes one per
//! version, a pull DP computes one for the version it holds, and only the chunks it lacks
//! cross the network. Chunk boundaries follow the content, so bytes inserted or removed in one
//! place shift no boundary elsewhere.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Chunk sizes: 4 KiB minimum, 16 KiB on average, 64 KiB at most. On the bench image's
/// monthly run (`ois bench delta`) a serviced WIM differs from the last one by a group of new
/// blobs and by hundreds of scattered removed ones, each of which costs about one chunk:
/// 16/64/256 KiB fetched 3.9 times what changed, 4/16/64 KiB 2.1 times with an index of 0.4%
/// of the file, and smaller chunks saved little more while the index doubled each time.
pub const MIN_SIZE: u32 = 4 * 1024;
pub const AVG_SIZE: u32 = 16 * 1024;
pub const MAX_SIZE: u32 = 64 * 1024;

/// Version of the index format; an index of another format is rebuilt.
const FORMAT: u32 = 1;

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

/// A file cut into content-defined chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkIndex {
    pub size: u64,
    /// SHA-256 of the whole file, hex.
    pub sha256: String,
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
    pub chunks: Vec<Chunk>,
}

/// On the wire and on disk: offsets follow from the lengths, so only lengths and hashes are
/// written (about 75 bytes a chunk in JSON).
#[derive(Serialize, Deserialize)]
struct Wire {
    format: u32,
    size: u64,
    sha256: String,
    min_size: u32,
    avg_size: u32,
    max_size: u32,
    /// `[length, sha256 hex]` per chunk, in file order.
    chunks: Vec<(u32, String)>,
}

impl ChunkIndex {
    pub fn to_json(&self) -> Vec<u8> {
        let wire = Wire {
            format: FORMAT,
            size: self.size,
            sha256: self.sha256.clone(),
            min_size: self.min_size,
            avg_size: self.avg_size,
            max_size: self.max_size,
            chunks: self
                .chunks
                .iter()
                .map(|c| (c.length, crate::fsutil::hex(&c.sha256)))
                .collect(),
        };
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Reads an index; `None` when it is not one (of this format), or its chunks do not add
    /// up to its size.
    pub fn from_json(bytes: &[u8]) -> Option<ChunkIndex> {
        let wire: Wire = serde_json::from_slice(bytes).ok()?;
        if wire.format != FORMAT {
            return None;
        }
        let mut offset = 0u64;
        let mut chunks = Vec::with_capacity(wire.chunks.len());
        for (length, hex) in wire.chunks {
            chunks.push(Chunk {
                offset,
                length,
                sha256: parse_hex32(&hex)?,
            });
            offset += u64::from(length);
        }
        (offset == wire.size).then_some(ChunkIndex {
            size: wire.size,
            sha256: wire.sha256,
            min_size: wire.min_size,
            avg_size: wire.avg_size,
            max_size: wire.max_size,
            chunks,
        })
    }

    /// Whether `other` was cut with the same sizes (only then can chunks match).
    pub fn same_cut(&self, other: &ChunkIndex) -> bool {
        (self.min_size, self.avg_size, self.max_size)
            == (other.min_size, other.avg_size, other.max_size)
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

/// Cuts `path` into chunks with the default sizes, streaming it (memory stays at a few chunks).
pub fn build(path: &Path) -> Result<ChunkIndex, ChunkError> {
    build_with(path, MIN_SIZE, AVG_SIZE, MAX_SIZE)
}

/// [`build`] with chosen chunk sizes (for measurements).
pub fn build_with(path: &Path, min: u32, avg: u32, max: u32) -> Result<ChunkIndex, ChunkError> {
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
    let mut size = 0u64;
    for chunk in fastcdc::v2020::StreamCDC::new(&mut reader, min, avg, max) {
        let chunk = chunk.map_err(|e| ChunkError::Chunk {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        size = chunk.offset + chunk.length as u64;
        chunks.push(Chunk {
            offset: chunk.offset,
            length: chunk.length as u32,
            sha256: Sha256::digest(&chunk.data).into(),
        });
    }
    Ok(ChunkIndex {
        size,
        sha256: crate::fsutil::hex(&reader.hasher.finalize()),
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
        if let Some(index) = ChunkIndex::from_json(&bytes) {
            if index.sha256 == sha256 && index.avg_size == AVG_SIZE {
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
    write_atomically(cache, &index.to_json())?;
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
        let round = ChunkIndex::from_json(&ib.to_json()).expect("round trip");
        assert_eq!(round, ib);
    }
}
