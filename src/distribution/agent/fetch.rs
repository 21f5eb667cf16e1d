//! Installing one image version on the agent as a delta: chunks the agent already holds (in
//! the version it has) are copied locally, the others are fetched with range requests
//! (adjacent ones in one request), each chunk is checked against its SHA-256, and progress is
//! journaled so a restarted agent resumes where it stopped. The file moves into place only
//! once its whole SHA-256 is right: clients never see a partial file.

use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::site::SiteClient;
use super::{AgentError, Paths};
use crate::distribution::chunks::{self, Chunk, ChunkIndex};
use crate::distribution::pull::Assignment;
use crate::distribution::DpId;

/// Adjacent missing chunks are fetched together, up to this many bytes a request.
const MAX_RANGE: u64 = 8 << 20;
/// Tries of one chunk whose bytes do not match its hash.
const CHUNK_ATTEMPTS: u32 = 3;

/// What an install cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fetched {
    /// Bytes received from the site: the chunk index and the content.
    pub bytes: u64,
    /// Bytes copied from the version the agent already held.
    pub reused: u64,
}

/// Keeps the fetch rate under a limit (bytes a second), for DPs behind a slow WAN link.
pub struct Throttle {
    limit: Option<u64>,
    started: Instant,
    sent: u64,
}

impl Throttle {
    pub fn new(limit: Option<u64>) -> Throttle {
        Throttle {
            limit,
            started: Instant::now(),
            sent: 0,
        }
    }

    fn before(&mut self, bytes: u64) {
        let Some(limit) = self.limit.filter(|l| *l > 0) else {
            return;
        };
        self.sent += bytes;
        let due = std::time::Duration::from_secs_f64(self.sent as f64 / limit as f64);
        if let Some(wait) = due.checked_sub(self.started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> AgentError + '_ {
    move |source| AgentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn hash_of(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// The versions of an image the agent holds: `(sha256, path)`.
pub fn held_versions(paths: &Paths, image: crate::image::ImageId) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(paths.image_dir(image)) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(sha) = name.strip_suffix(".wim") {
                if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                    out.push((sha.to_string(), e.path()));
                }
            }
        }
    }
    out.sort();
    out
}

/// Chunks of the version the agent holds, by hash: `(path, offset, length)`.
fn local_chunks(
    paths: &Paths,
    a: &Assignment,
    target: &ChunkIndex,
) -> HashMap<[u8; 32], (PathBuf, u64, u32)> {
    let mut map = HashMap::new();
    for (sha, path) in held_versions(paths, a.image_id) {
        if sha == a.sha256 {
            continue;
        }
        let cache = paths.chunk_cache(a.image_id, &sha);
        match chunks::cached(&path, &sha, &cache) {
            Ok(index) if index.same_cut(target) => {
                for c in index.chunks {
                    map.entry(c.sha256)
                        .or_insert((path.clone(), c.offset, c.length));
                }
            }
            Ok(_) => tracing::info!(
                "{} was cut with other chunk sizes than the site's: none of it is reused",
                path.display()
            ),
            // A damaged local copy only means more to fetch.
            Err(e) => tracing::warn!("cannot reuse {}: {e}", path.display()),
        }
    }
    map
}

/// The chunks a journal says are written: one index a line. A torn last line is ignored.
fn read_journal(path: &Path) -> BTreeSet<usize> {
    let Ok(file) = File::open(path) else {
        return BTreeSet::new();
    };
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

struct Partial {
    file: File,
    path: PathBuf,
    journal: File,
    journal_path: PathBuf,
    done: BTreeSet<usize>,
}

impl Partial {
    fn open(paths: &Paths, a: &Assignment, size: u64) -> Result<Partial, AgentError> {
        let dir = paths.partial_dir(a.image_id);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join(format!("{}.wim", a.sha256));
        let journal_path = dir.join(format!("{}.journal", a.sha256));
        let resumed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        file.set_len(size).map_err(io_err(&path))?;
        let done = if resumed {
            read_journal(&journal_path)
        } else {
            BTreeSet::new()
        };
        let journal = OpenOptions::new()
            .create(true)
            .append(true)
            .truncate(false)
            .open(&journal_path)
            .map_err(io_err(&journal_path))?;
        if !resumed {
            journal.set_len(0).map_err(io_err(&journal_path))?;
        }
        Ok(Partial {
            file,
            path,
            journal,
            journal_path,
            done,
        })
    }

    /// Writes a checked chunk, then journals it: the journal never names bytes not written.
    fn put(&mut self, i: usize, chunk: &Chunk, data: &[u8]) -> Result<(), AgentError> {
        chunks::write_at(&self.file, data, chunk.offset).map_err(io_err(&self.path))?;
        writeln!(self.journal, "{i}").map_err(io_err(&self.journal_path))?;
        self.done.insert(i);
        Ok(())
    }

    fn read(&self, chunk: &Chunk) -> Result<Vec<u8>, AgentError> {
        let mut buf = vec![0u8; chunk.length as usize];
        chunks::read_at(&self.file, &mut buf, chunk.offset).map_err(io_err(&self.path))?;
        Ok(buf)
    }

    fn whole_sha256(&self) -> Result<String, AgentError> {
        let mut reader =
            BufReader::with_capacity(1 << 20, File::open(&self.path).map_err(io_err(&self.path))?);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader.read(&mut buf).map_err(io_err(&self.path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(crate::fsutil::hex(&hasher.finalize()))
    }
}

/// Runs of adjacent chunk numbers, each at most [`MAX_RANGE`] bytes.
fn coalesce(index: &ChunkIndex, missing: &[usize]) -> Vec<Vec<usize>> {
    let mut runs: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0u64;
    for &i in missing {
        let len = u64::from(index.chunks[i].length);
        match runs.last_mut() {
            Some(run) if run.last() == Some(&(i - 1)) && bytes + len <= MAX_RANGE => {
                run.push(i);
                bytes += len;
            }
            _ => {
                runs.push(vec![i]);
                bytes = len;
            }
        }
    }
    runs
}

struct Job<'a> {
    site: &'a SiteClient,
    dp: DpId,
    a: &'a Assignment,
    index: &'a ChunkIndex,
    throttle: &'a mut Throttle,
    fetched: Fetched,
}

impl Job<'_> {
    fn fetch(&mut self, start: u64, end: u64) -> Result<Vec<u8>, AgentError> {
        self.throttle.before(end - start + 1);
        let data = self
            .site
            .range(self.dp, self.a.image_id, &self.a.sha256, start, end)?;
        self.fetched.bytes += data.len() as u64;
        if data.len() as u64 != end - start + 1 {
            return Err(AgentError::Site {
                what: format!("fetching bytes {start}-{end} of image {}", self.a.image),
                reason: format!("{} bytes came instead of {}", data.len(), end - start + 1),
            });
        }
        Ok(data)
    }

    /// Fetches one chunk alone until its bytes match its hash.
    fn fetch_chunk(&mut self, partial: &mut Partial, i: usize) -> Result<(), AgentError> {
        let c = self.index.chunks[i];
        for attempt in 1..=CHUNK_ATTEMPTS {
            let data = self.fetch(c.offset, c.offset + u64::from(c.length) - 1)?;
            if hash_of(&data) == c.sha256 {
                return partial.put(i, &c, &data);
            }
            tracing::warn!(
                "chunk {i} of image {} (offset {}, {} bytes) came corrupted (try {attempt} of \
                 {CHUNK_ATTEMPTS})",
                self.a.image,
                c.offset,
                c.length
            );
        }
        Err(AgentError::Corrupt(format!(
            "chunk {i} of image {} version {} (offset {}) never matched its SHA-256 in \
             {CHUNK_ATTEMPTS} tries: the site's copy may have changed; run content validation \
             on the site",
            self.a.image, self.a.sha256, c.offset
        )))
    }

    fn fetch_run(&mut self, partial: &mut Partial, run: &[usize]) -> Result<(), AgentError> {
        let (first, last) = (
            self.index.chunks[run[0]],
            self.index.chunks[run[run.len() - 1]],
        );
        let data = self.fetch(first.offset, last.offset + u64::from(last.length) - 1)?;
        let mut corrupted = Vec::new();
        for &i in run {
            let c = self.index.chunks[i];
            let at = (c.offset - first.offset) as usize;
            let bytes = &data[at..at + c.length as usize];
            if hash_of(bytes) == c.sha256 {
                partial.put(i, &c, bytes)?;
            } else {
                tracing::warn!(
                    "chunk {i} of image {} (offset {}) came corrupted: fetching it again",
                    self.a.image,
                    c.offset
                );
                corrupted.push(i);
            }
        }
        for i in corrupted {
            self.fetch_chunk(partial, i)?;
        }
        Ok(())
    }
}

/// Installs version `a` under the agent's root, as a delta against what it holds.
pub fn install(
    site: &SiteClient,
    dp: DpId,
    paths: &Paths,
    a: &Assignment,
    throttle: &mut Throttle,
) -> Result<Fetched, AgentError> {
    let (index, index_bytes) = site.chunk_index(dp, a.image_id, &a.sha256)?;
    if index.sha256 != a.sha256 || index.size != a.size_bytes {
        return Err(AgentError::Site {
            what: format!("the chunk index of image {}", a.image),
            reason: format!(
                "it describes {} ({} bytes), not the assigned {} ({} bytes)",
                index.sha256, index.size, a.sha256, a.size_bytes
            ),
        });
    }
    let mut partial = Partial::open(paths, a, index.size)?;
    if !partial.done.is_empty() {
        tracing::info!(
            "resuming image {} version {}: {} of {} chunks already written",
            a.image,
            a.sha256,
            partial.done.len(),
            index.chunks.len()
        );
    }
    let mut job = Job {
        site,
        dp,
        a,
        index: &index,
        throttle,
        fetched: Fetched {
            bytes: index_bytes,
            reused: 0,
        },
    };
    let local = local_chunks(paths, a, &index);
    let mut missing = Vec::new();
    let mut open_files: HashMap<PathBuf, File> = HashMap::new();
    for (i, c) in index.chunks.iter().enumerate() {
        if partial.done.contains(&i) {
            continue;
        }
        if let Some((path, offset, length)) = local.get(&c.sha256) {
            let file = match open_files.get(path) {
                Some(f) => f,
                None => {
                    let f = File::open(path).map_err(io_err(path))?;
                    open_files.entry(path.clone()).or_insert(f)
                }
            };
            let mut buf = vec![0u8; *length as usize];
            chunks::read_at(file, &mut buf, *offset).map_err(io_err(path))?;
            // The held copy is checked as it is read: a damaged one is fetched instead.
            if hash_of(&buf) == c.sha256 {
                partial.put(i, c, &buf)?;
                job.fetched.reused += u64::from(c.length);
                continue;
            }
        }
        missing.push(i);
    }
    for run in coalesce(&index, &missing) {
        job.fetch_run(&mut partial, &run)?;
    }
    // The journal trusts what was written before a crash; the whole hash checks it, and any
    // chunk damaged since is found and fetched again.
    if partial.whole_sha256()? != a.sha256 {
        let mut bad = Vec::new();
        for (i, c) in index.chunks.iter().enumerate() {
            if hash_of(&partial.read(c)?) != c.sha256 {
                bad.push(i);
            }
        }
        tracing::warn!(
            "image {} version {}: {} chunk(s) in the partial file do not match their hash \
             (changed on disk since they were written): fetching them again",
            a.image,
            a.sha256,
            bad.len()
        );
        for i in bad {
            partial.done.remove(&i);
            job.fetch_chunk(&mut partial, i)?;
        }
        let actual = partial.whole_sha256()?;
        if actual != a.sha256 {
            return Err(AgentError::Corrupt(format!(
                "image {} rebuilt from its chunks hashes to {actual}, not {}: the chunk index \
                 does not describe the file; run content validation on the site",
                a.image, a.sha256
            )));
        }
    }
    let fetched = job.fetched;
    put_in_place(paths, a, &partial, &index)?;
    Ok(fetched)
}

/// Moves the checked file into place atomically, writes its `.sha256` beside it, then removes
/// the older versions: until this moment clients kept getting the old one.
fn put_in_place(
    paths: &Paths,
    a: &Assignment,
    partial: &Partial,
    index: &ChunkIndex,
) -> Result<(), AgentError> {
    partial.file.sync_all().map_err(io_err(&partial.path))?;
    let dir = paths.image_dir(a.image_id);
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let dest = dir.join(format!("{}.wim", a.sha256));
    let sidecar = dir.join(format!("{}.wim.sha256", a.sha256));
    std::fs::write(&sidecar, format!("{}  {}.wim\n", a.sha256, a.sha256))
        .map_err(io_err(&sidecar))?;
    std::fs::rename(&partial.path, &dest).map_err(io_err(&dest))?;
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    let _ = std::fs::remove_file(&partial.journal_path);
    // The site's index describes the new file: the next delta starts from it.
    let cache = paths.chunk_cache(a.image_id, &a.sha256);
    if let Some(parent) = cache.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::write(&cache, index.to_bytes());
    for (sha, path) in held_versions(paths, a.image_id) {
        if sha != a.sha256 {
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(dir.join(format!("{sha}.wim.sha256")));
            let cache = paths.chunk_cache(a.image_id, &sha);
            let _ = std::fs::remove_file(&cache);
            // An index of format 1 (JSON), left by an agent before resource-cut indexes.
            let _ = std::fs::remove_file(cache.with_extension("json"));
        }
    }
    Ok(())
}

/// Re-hashes a held version: `None` when it matches, else what differs.
pub fn validate(path: &Path, sha256: &str) -> Option<String> {
    let hashed = (|| -> std::io::Result<String> {
        let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
        let mut hasher = Sha256::new();
        std::io::copy(&mut reader, &mut hasher)?;
        Ok(crate::fsutil::hex(&hasher.finalize()))
    })();
    match hashed {
        Ok(h) if h == sha256 => None,
        Ok(h) => Some(format!(
            "{} has SHA-256 {h}; the site expects {sha256}",
            path.display()
        )),
        Err(e) => Some(format!("cannot read {}: {e}", path.display())),
    }
}
