//! What an import or a run killed mid-way leaves in the content library: its incoming area,
//! half-made copies in `repeated/` and compressed payloads it never recorded. Each is named
//! with the process id of its maker; the next import (or run) removes those whose process is
//! gone, so a kill never leaves scratch behind for good.

use std::path::{Path, PathBuf};

use crate::fsutil::process_alive;
use crate::site::Database;

/// The id of the process that made a scratch entry, from its name; `None` for names that are
/// not scratch.
fn maker(name: &str) -> Option<u32> {
    // incoming/<pid>.<random>
    if let Some((pid, _)) = name.split_once('.') {
        if let Ok(pid) = pid.parse() {
            return Some(pid);
        }
    }
    // repeated/<id>/.<n>.<pid>-<unique>.partial and compressed/<id>.<c>.<chunk>.<pid>-<nanos>.wim
    let stem = name
        .strip_suffix(".partial")
        .or_else(|| name.strip_suffix(".wim"))?;
    let (_, tail) = stem.rsplit_once('.')?;
    let (pid, _) = tail.split_once('-')?;
    pid.parse().ok()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn dead_maker(path: &Path) -> bool {
    maker(&name_of(path)).is_some_and(|pid| pid != std::process::id() && !process_alive(pid))
}

/// Removes the scratch of dead processes under the library root; returns what it removed.
pub(super) fn sweep(root: &Path, db: &Database) -> Vec<PathBuf> {
    let mut doomed: Vec<PathBuf> = entries(&root.join("incoming"))
        .into_iter()
        .filter(|p| dead_maker(p))
        .collect();
    for dir in entries(&root.join("repeated")) {
        doomed.extend(
            entries(&dir)
                .into_iter()
                .filter(|p| name_of(p).ends_with(".partial") && dead_maker(p)),
        );
    }
    let recorded = |file: &str| {
        db.query_row(
            "SELECT COUNT(*) FROM compressed_payloads WHERE file = ?1",
            [file],
            |r| r.get::<_, i64>(0),
        )
        .map_or(true, |n| n > 0)
    };
    doomed.extend(
        entries(&root.join("compressed"))
            .into_iter()
            .filter(|p| dead_maker(p) && !recorded(&name_of(p))),
    );
    let mut removed = Vec::new();
    for path in doomed {
        let result = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match result {
            Ok(()) => removed.push(path),
            Err(e) => tracing::warn!(
                "cannot remove {} left by an interrupted import or run: {e}",
                path.display()
            ),
        }
    }
    if !removed.is_empty() {
        tracing::info!(
            "removed {} file(s) left in the content library by interrupted imports or runs",
            removed.len()
        );
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::maker;

    #[test]
    fn scratch_names_give_their_maker() {
        assert_eq!(maker("4711.AbC123"), Some(4711));
        assert_eq!(maker(".3-a.dll.4711-12.partial"), Some(4711));
        assert_eq!(maker("KB1.lzx.32768.4711-1733000000.wim"), Some(4711));
        assert_eq!(maker("KB1.lzx.32768.wim"), None);
        assert_eq!(maker("files"), None);
        assert_eq!(maker(".tmpAbC123"), None);
    }
}
