//! An image serviced in several passes (when the changed indexes' trees would not fit the
//! memory budget together) is assembled in one file: the first pass writes its indexes, and
//! each later pass adds its own to that file in place. Every index is written once, as in a
//! single-pass run, and the result is as clean: no hole, no stale data.

use std::path::Path;

use super::plan::Plan;
use crate::image::inspect::{check_loads_whole, InspectError};
use crate::wim::{Progress, ProgressEvent, Wim, WimError};

/// Opens the file the earlier passes wrote, with the indexes of `pass` added from the original
/// unchanged, ready for the pass's updates; the compressed payloads are referenced so that
/// their data is copied raw.
pub fn next_part(
    original: &Path,
    assembled: &Path,
    pass: &Plan,
    payloads: &[&Path],
) -> Result<Wim, InspectError> {
    let dest = Wim::open_for_compaction(assembled)?;
    dest.reference(payloads)?;
    let source = Wim::open(original, false)?;
    for index in &pass.indexes {
        check_loads_whole(&source, index.index)?;
        source.export_image_to(index.index, &dest)?;
    }
    let added = dest.header().image_count;
    if let Some(last) = pass.indexes.last().filter(|i| i.index != added) {
        return Err(WimError::io(
            assembled,
            "assembling",
            std::io::Error::other(format!(
                "index {} landed at {added}: the passes are not in index order",
                last.index
            )),
        )
        .into());
    }
    // wimlib keeps the original's file open for the exported indexes; they can be changed
    // only once no other WIM shares them.
    drop(source);
    Ok(dest)
}

/// Writes a later pass into the assembled file: in place, its indexes' data and metadata
/// after what is there. `boot_index` (the original's) is set on the last pass, since the
/// first pass may have left the boot index out. When wimlib cannot compact the file, the pass
/// writes a new one beside it and renames it over.
pub fn add_part(
    wim: Wim,
    assembled: &Path,
    boot_index: Option<u32>,
    integrity: bool,
    sink: &mut dyn FnMut(ProgressEvent) -> Progress,
) -> Result<(), WimError> {
    if let Some(boot) = boot_index {
        wim.set_boot_index(boot)?;
    }
    if wim.compact(integrity, sink)? {
        return Ok(());
    }
    tracing::info!(
        "{} cannot be compacted in place; writing it anew",
        assembled.display()
    );
    let fresh = assembled.with_extension("wim.next");
    wim.write_unsynced(&fresh, integrity, 0, sink)?;
    drop(wim);
    std::fs::rename(&fresh, assembled).map_err(|e| WimError::io(assembled, "writing", e))
}
