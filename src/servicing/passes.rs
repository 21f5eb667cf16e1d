//! Bounding a run's memory: wimlib holds the metadata of every index it changed until the
//! write, so the indexes of an image whose metadata would not fit the site's budget together
//! are serviced in several passes of consecutive indexes, assembled into one file
//! (`assemble`): each index is written once, whatever the number of passes.

use super::plan::{IndexPlan, Plan};
use crate::wim::{Wim, WimError};

/// wimlib's in-memory tree of an index, per byte of its uncompressed metadata resource. On the
/// generated 2 GiB image (4 indexes of 45,740 files, 10.8 MB of metadata each) a run peaked at
/// 136 MiB holding the 4 trees and at 78 MiB holding one: about 19 MiB, 1.8 bytes per byte.
const MEMORY_PER_METADATA_BYTE: u64 = 2;

/// The memory each index's tree takes once loaded, in index order. Read before
/// anything is changed: the blob table lists each image's metadata first, in image order.
pub fn metadata_memory(wim: &Wim) -> Result<Vec<u64>, WimError> {
    let count = wim.header().image_count as usize;
    Ok(wim
        .blobs()?
        .iter()
        .filter(|b| b.metadata)
        .take(count)
        .map(|b| b.size * MEMORY_PER_METADATA_BYTE)
        .collect())
}

/// The plan split into passes, in index order, each holding indexes to change whose trees fit
/// `budget` bytes together; an index over the budget alone gets a pass of its own. Passes hold
/// consecutive indexes, since each adds its indexes after those of the passes before it.
/// Indexes with nothing to apply go with the pass they fall in: they are only checked, and
/// wimlib frees an unchanged index when it moves to the next.
pub fn passes(plan: &Plan, memory: &[u64], budget: u64) -> Vec<Plan> {
    let mut passes: Vec<Vec<IndexPlan>> = vec![Vec::new()];
    let mut used = 0u64;
    for index in &plan.indexes {
        if index.updates.is_empty() {
            if let Some(current) = passes.last_mut() {
                current.push(index.clone());
            }
            continue;
        }
        let need = (index.index as usize)
            .checked_sub(1)
            .and_then(|k| memory.get(k))
            .copied()
            .unwrap_or(0);
        let current_changes = passes
            .last()
            .is_some_and(|p| p.iter().any(|i| !i.updates.is_empty()));
        if current_changes && used.saturating_add(need) > budget {
            passes.push(Vec::new());
            used = 0;
        }
        used = used.saturating_add(need);
        if let Some(last) = passes.last_mut() {
            last.push(index.clone());
        }
    }
    passes
        .into_iter()
        .map(|mut indexes| {
            indexes.sort_by_key(|i| i.index);
            Plan {
                indexes,
                ..plan.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(updates: &[usize]) -> Plan {
        Plan {
            indexes: updates
                .iter()
                .enumerate()
                .map(|(n, &k)| IndexPlan {
                    index: n as u32 + 1,
                    updates: (0..k).map(|u| format!("KB{u}")).collect(),
                    windows_packages: Vec::new(),
                })
                .collect(),
            superseded: Vec::new(),
            order: vec!["KB0".into()],
            windows: Vec::new(),
        }
    }

    fn shape(passes: &[Plan]) -> Vec<Vec<u32>> {
        passes
            .iter()
            .map(|p| p.indexes.iter().map(|i| i.index).collect())
            .collect()
    }

    #[test]
    fn indexes_are_grouped_by_the_memory_of_their_trees() {
        let p = plan(&[1, 1, 1, 1]);
        assert_eq!(
            shape(&passes(&p, &[10, 10, 10, 10], 100)),
            vec![vec![1, 2, 3, 4]]
        );
        assert_eq!(
            shape(&passes(&p, &[10, 10, 10, 10], 25)),
            vec![vec![1, 2], vec![3, 4]]
        );
        assert_eq!(
            shape(&passes(&p, &[10, 50, 10, 10], 25)),
            vec![vec![1], vec![2], vec![3, 4]],
            "an index over the budget has a pass of its own"
        );
        assert_eq!(
            shape(&passes(&p, &[10, 10, 10, 10], 0)),
            vec![vec![1], vec![2], vec![3], vec![4]]
        );
    }

    #[test]
    fn passes_hold_consecutive_indexes_with_the_unchanged_ones_where_they_fall() {
        let p = plan(&[0, 1, 0, 1]);
        assert_eq!(
            shape(&passes(&p, &[10, 10, 10, 10], 15)),
            vec![vec![1, 2, 3], vec![4]]
        );
        let p = plan(&[1, 0, 1, 0]);
        assert_eq!(
            shape(&passes(&p, &[10, 10, 10, 10], 15)),
            vec![vec![1, 2], vec![3, 4]]
        );
        let nothing = plan(&[0, 0]);
        assert_eq!(shape(&passes(&nothing, &[10, 10], 0)), vec![vec![1, 2]]);
    }
}
