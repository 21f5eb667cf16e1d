//! What a pull DP fetches for one servicing run: the new version's chunks that the old version
//! does not have (plus the chunk index), against the whole file a push DP receives, and
//! against the compressed size of what really changed in the WIM (new blobs and metadata,
//! from `wimlib-imagex info --blobs`).

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use serde::Serialize;

use super::BenchError;
use crate::distribution::chunks::{self, ChunkIndex};

/// How both versions are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cutting {
    /// At WIM resource boundaries, FastCDC within pieces bigger than the maximum (the agent's).
    Resources,
    /// FastCDC over the whole file (the agent's before chunk index format 2).
    Content,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeltaReport {
    pub old_bytes: u64,
    pub new_bytes: u64,
    pub cutting: Cutting,
    pub chunk_sizes: (u32, u32, u32),
    pub chunks: usize,
    /// What a pull DP holding the old version fetches: missing chunks and the index.
    pub delta_bytes: u64,
    pub index_bytes: u64,
    /// Range requests after adjacent chunks are coalesced.
    pub requests: usize,
    /// Compressed bytes of blobs the old WIM lacks, metadata resources included.
    pub changed_bytes: u64,
    /// `delta_bytes / changed_bytes`: the goal is at most 1.2.
    pub delta_over_changed: f64,
    /// What a delta would save a directory or WebDAV DP, which receives the whole file.
    pub saved_fraction: f64,
}

/// `(sha1, compressed size, is metadata)` per blob of a WIM.
fn blobs(wim: &Path) -> Result<Vec<(String, u64, bool)>, BenchError> {
    let out = Command::new("wimlib-imagex")
        .arg("info")
        .arg(wim)
        .arg("--blobs")
        .output()
        .map_err(|e| BenchError::Invalid(format!("wimlib-imagex info {}: {e}", wim.display())))?;
    if !out.status.success() {
        return Err(BenchError::Invalid(format!(
            "wimlib-imagex info {} --blobs failed: {}",
            wim.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut v = Vec::new();
    let (mut size, mut sha, mut metadata) = (None, None, false);
    // Blocks of "Key = value" lines, one block per blob, separated by blank lines.
    for line in text.lines().chain(std::iter::once("")) {
        let line = line.trim();
        if line.is_empty() {
            if let (Some(s), Some(h)) = (size.take(), sha.take()) {
                v.push((h, s, metadata));
            }
            metadata = false;
            continue;
        }
        let Some((k, val)) = line.split_once('=') else {
            continue;
        };
        match k.trim() {
            "Compressed size" => size = val.split_whitespace().next().and_then(|n| n.parse().ok()),
            "Hash" => sha = Some(val.trim().to_string()),
            "Flags" => metadata = val.contains("WIM_RESHDR_FLAG_METADATA"),
            _ => {}
        }
    }
    Ok(v)
}

fn delta(old: &ChunkIndex, new: &ChunkIndex) -> (u64, usize) {
    let have: HashSet<[u8; 32]> = old.chunks.iter().map(|c| c.sha256).collect();
    let (mut bytes, mut requests, mut previous_missing) = (0u64, 0usize, false);
    for c in &new.chunks {
        let missing = !have.contains(&c.sha256);
        if missing {
            bytes += u64::from(c.length);
            if !previous_missing {
                requests += 1;
            }
        }
        previous_missing = missing;
    }
    (bytes, requests)
}

/// Measures the delta from `old` to `new`, cut as `cutting` says with FastCDC sizes
/// `min/avg/max` (bytes).
pub fn measure(
    old: &Path,
    new: &Path,
    cutting: Cutting,
    sizes: (u32, u32, u32),
) -> Result<DeltaReport, BenchError> {
    let (min, avg, max) = sizes;
    let chunk = |p: &Path| match cutting {
        Cutting::Content => {
            chunks::build_with(p, min, avg, max).map_err(|e| BenchError::Invalid(e.to_string()))
        }
        Cutting::Resources => chunks::build_resources_with(p, sizes)
            .ok_or_else(|| {
                BenchError::Invalid(format!(
                    "{}: wimlib cannot read it as a WIM, so it cannot be cut at its resources",
                    p.display()
                ))
            })?
            .map_err(|e| BenchError::Invalid(e.to_string())),
    };
    let (io, in_) = (chunk(old)?, chunk(new)?);
    let index_bytes = in_.to_bytes().len() as u64;
    let (missing, requests) = delta(&io, &in_);
    let known: HashSet<String> = blobs(old)?.into_iter().map(|(h, _, _)| h).collect();
    let changed_bytes: u64 = blobs(new)?
        .into_iter()
        .filter(|(h, _, metadata)| *metadata || !known.contains(h))
        .map(|(_, s, _)| s)
        .sum();
    let delta_bytes = missing + index_bytes;
    Ok(DeltaReport {
        old_bytes: io.size,
        new_bytes: in_.size,
        cutting,
        chunk_sizes: sizes,
        chunks: in_.chunks.len(),
        delta_bytes,
        index_bytes,
        requests,
        changed_bytes,
        delta_over_changed: delta_bytes as f64 / changed_bytes.max(1) as f64,
        saved_fraction: 1.0 - delta_bytes as f64 / in_.size.max(1) as f64,
    })
}
