//! Where a WIM's resources lie in the file, for a chunk index cut at resource boundaries: a
//! servicing run adds and removes whole resources (file blobs, metadata) and rewrites the
//! tables, so cutting there makes every unchanged resource a chunk the DP already holds,
//! wherever the run removed blobs around it.

use std::path::Path;

use crate::wim::Wim;

/// A stretch of the file: a resource as stored (raw, compressed bytes), or what lies between
/// resources (the header, the blob table, the XML data, the integrity table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub offset: u64,
    pub length: u64,
    pub resource: bool,
}

/// The file cut into pieces that tile it exactly, in file order; `None` when wimlib cannot
/// read it as a WIM or its blob table points outside the file (the caller then cuts by
/// content alone).
pub fn pieces(path: &Path, file_size: u64) -> Option<Vec<Piece>> {
    let blobs = match Wim::open(path, false).and_then(|wim| wim.blobs()) {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!("{}: not cut at resource boundaries: {e}", path.display());
            return None;
        }
    };
    // Blobs of one solid resource share it: one piece per resource.
    let mut resources: Vec<(u64, u64)> = blobs
        .iter()
        .filter(|b| b.in_wim && b.resource_stored_size > 0)
        .map(|b| (b.resource_offset, b.resource_stored_size))
        .collect();
    resources.sort_unstable();
    resources.dedup();
    tile(&resources, file_size)
}

/// Pieces covering `0..file_size`: the resources and the gaps between them. A resource that
/// overlaps the one before it is left inside that one's piece rather than cut twice.
fn tile(resources: &[(u64, u64)], file_size: u64) -> Option<Vec<Piece>> {
    let mut out = Vec::with_capacity(resources.len() * 2 + 2);
    let mut cursor = 0u64;
    for &(offset, length) in resources {
        let end = offset.checked_add(length)?;
        if end > file_size {
            return None;
        }
        if offset < cursor {
            continue;
        }
        if offset > cursor {
            out.push(Piece {
                offset: cursor,
                length: offset - cursor,
                resource: false,
            });
        }
        out.push(Piece {
            offset,
            length,
            resource: true,
        });
        cursor = end;
    }
    if cursor < file_size {
        out.push(Piece {
            offset: cursor,
            length: file_size - cursor,
            resource: false,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_tile_the_file_with_gaps_between_resources() {
        let p = tile(&[(208, 100), (308, 50), (320, 10), (400, 20)], 500).expect("tiles");
        let spans: Vec<_> = p.iter().map(|p| (p.offset, p.length, p.resource)).collect();
        assert_eq!(
            spans,
            [
                (0, 208, false),
                (208, 100, true),
                (308, 50, true),
                (358, 42, false),
                (400, 20, true),
                (420, 80, false),
            ]
        );
        assert_eq!(tile(&[(450, 100)], 500), None, "past the end of the file");
    }
}
