//! What a run changed in each index, file by file (table `run_file_changes`).
//!
//! The change is read from the image tree, not from the manifest: the paths one update's
//! wimlib call touches are listed before and after the call, and their difference, with the
//! call's renames followed, says what was added, replaced, deleted or renamed. A package that
//! "adds" a file the index already had replaced it; a delete of a folder deleted each file
//! under it. Folders are recorded only when empty (the files say the rest). Rows are written
//! only for a run that replaced the original, in the transaction that records its end: a run
//! that failed before that, or was canceled, changed nothing in the image and records nothing.

use std::collections::{BTreeMap, HashSet};

use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

use super::RunId;
use crate::image::ImageId;
use crate::registry::Hive;
use crate::site::{Database, SiteError};
use crate::wim::{TreeEntry, UpdateCommand, Wim, WimError};

/// What happened to one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    /// The path held a file before and holds other data now (an add over it, or a rename
    /// onto it: then `old_path` names where the new data came from).
    Replaced,
    Deleted,
    /// Moved from `old_path`; the data is the same.
    Renamed,
    /// A registry hive the update edited; its changes are in `run_registry_changes` (same
    /// run, update, index and hive).
    Registry,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 5] = [
        ChangeKind::Added,
        ChangeKind::Replaced,
        ChangeKind::Deleted,
        ChangeKind::Renamed,
        ChangeKind::Registry,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Replaced => "replaced",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Renamed => "renamed",
            ChangeKind::Registry => "registry",
        }
    }

    pub fn parse(s: &str) -> Option<ChangeKind> {
        ChangeKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One path an update changed on one index. Sizes are the uncompressed sizes of the unnamed
/// data stream, as the index's directory entries give them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    pub kind: ChangeKind,
    /// The path in the index after the change (for a deleted path, the path it had).
    pub path: String,
    /// Where a renamed path (or the data a rename put over a path) was before.
    pub old_path: Option<String>,
    /// An empty folder (created, deleted or renamed).
    pub is_dir: bool,
    pub size_before: Option<u64>,
    pub size_after: Option<u64>,
    /// For [`ChangeKind::Registry`]: the hive, as `run_registry_changes.hive` names it.
    pub hive: Option<String>,
}

/// The entries under the paths an update's wimlib call touches, by lower-case path (wimlib
/// compares paths without case, as Windows does).
type Tree = BTreeMap<String, TreeEntry>;

/// The touched paths of an index as they were before an update's wimlib call.
pub struct Before {
    roots: Vec<String>,
    tree: Tree,
}

fn key(path: &str) -> String {
    path.trim_start_matches('/').to_lowercase()
}

fn within(path: &str, root: &str) -> bool {
    path == root
        || (path.len() > root.len()
            && path.starts_with(root)
            && path.as_bytes()[root.len()] == b'/')
}

/// Every path under `roots`, each root with its subtree.
fn snapshot(wim: &Wim, index: u32, roots: &[String]) -> Result<Tree, WimError> {
    let mut tree = Tree::new();
    for root in roots {
        let entries = match wim.list(index, &format!("/{root}"), true) {
            Ok(entries) => entries,
            // Not there (yet, or any more): nothing to list. A parent that is a file is the
            // same for this purpose; wimlib refuses such an update itself.
            Err(e)
                if e.is_missing_path()
                    || e.code as u32 == wimlib_sys::wimlib_error_code_WIMLIB_ERR_NOTDIR =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        for entry in entries {
            tree.insert(key(&entry.path), entry);
        }
    }
    Ok(tree)
}

/// The paths a call touches: each add's target, each delete's path, each rename's both ends.
/// A path under another root is listed with that root.
fn roots(commands: &[UpdateCommand]) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for c in commands {
        match c {
            UpdateCommand::Add { target, .. } => all.push(key(target)),
            UpdateCommand::Delete { path } => all.push(key(path)),
            UpdateCommand::Rename { from, to } => {
                all.push(key(from));
                all.push(key(to));
            }
        }
    }
    all.sort();
    all.dedup();
    let mut out: Vec<String> = Vec::new();
    for root in all {
        // Sorted, so a parent comes right before the paths under it.
        if out.last().is_some_and(|parent| within(&root, parent)) {
            continue;
        }
        out.push(root);
    }
    out
}

impl Before {
    /// Lists what `commands` are about to touch on `index`.
    pub fn read(wim: &Wim, index: u32, commands: &[UpdateCommand]) -> Result<Before, WimError> {
        let roots = roots(commands);
        let tree = snapshot(wim, index, &roots)?;
        Ok(Before { roots, tree })
    }

    /// What the call did, read from the index after wimlib applied `commands`. `hives` are
    /// the targets of the registry edits among them (image path and hive name).
    pub fn changes(
        &self,
        wim: &Wim,
        index: u32,
        commands: &[UpdateCommand],
        hives: &[(String, &'static str)],
    ) -> Result<Vec<FileChange>, WimError> {
        let after = snapshot(wim, index, &self.roots)?;
        let hives: BTreeMap<String, &'static str> =
            hives.iter().map(|(p, h)| (key(p), *h)).collect();
        Ok(difference(&self.tree, &after, commands, &hives))
    }
}

/// Where the data at a path after the call comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// The entry that was at this (lower-case) path before the call.
    Was(String),
    Added,
}

/// Follows the commands over the paths listed before the call: where each one's data went.
fn follow(before: &Tree, commands: &[UpdateCommand]) -> BTreeMap<String, Origin> {
    let mut state: BTreeMap<String, Origin> = before
        .keys()
        .map(|k| (k.clone(), Origin::Was(k.clone())))
        .collect();
    let take_subtree = |state: &mut BTreeMap<String, Origin>, root: &str| {
        let keys: Vec<String> = state
            .range(root.to_string()..)
            .take_while(|(k, _)| k.starts_with(root))
            .filter(|(k, _)| within(k, root))
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| state.remove(&k).map(|o| (k, o)))
            .collect::<Vec<_>>()
    };
    for c in commands {
        match c {
            UpdateCommand::Add { target, .. } => {
                state.insert(key(target), Origin::Added);
            }
            UpdateCommand::Delete { path } => {
                take_subtree(&mut state, &key(path));
            }
            UpdateCommand::Rename { from, to } => {
                let (from, to) = (key(from), key(to));
                if from == to {
                    continue;
                }
                let moved = take_subtree(&mut state, &from);
                take_subtree(&mut state, &to);
                for (k, origin) in moved {
                    state.insert(format!("{to}{}", &k[from.len()..]), origin);
                }
            }
        }
    }
    state
}

/// An entry with nothing under it in its tree.
fn is_empty_dir(tree: &Tree, k: &str, entry: &TreeEntry) -> bool {
    entry.is_dir
        && !tree
            .range(format!("{k}/")..)
            .next()
            .is_some_and(|(next, _)| within(next, k))
}

/// Compares the touched paths before and after the call. Folders that still hold files are
/// left out: their files are recorded.
fn difference(
    before: &Tree,
    after: &Tree,
    commands: &[UpdateCommand],
    hives: &BTreeMap<String, &'static str>,
) -> Vec<FileChange> {
    let followed = follow(before, commands);
    let origin = |k: &str| followed.get(k).cloned().unwrap_or(Origin::Added);
    // The data of these entries is still in the index (at the same path or another).
    let kept: HashSet<String> = after
        .keys()
        .filter_map(|k| match origin(k) {
            Origin::Was(old) => Some(old),
            Origin::Added => None,
        })
        .collect();
    let mut out: Vec<FileChange> = Vec::new();
    for (k, entry) in after {
        let listed = entry.is_dir && !is_empty_dir(after, k, entry);
        // What was at this path before, if its data is gone now (overwritten).
        let overwritten = before
            .get(k)
            .filter(|b| !b.is_dir && !kept.contains(k.as_str()));
        let change = match origin(k) {
            Origin::Was(old) if old == *k => continue,
            Origin::Was(old) => {
                let Some(was) = before.get(&old) else {
                    continue;
                };
                if listed {
                    continue;
                }
                FileChange {
                    kind: if overwritten.is_some() {
                        ChangeKind::Replaced
                    } else {
                        ChangeKind::Renamed
                    },
                    path: entry.path.clone(),
                    old_path: Some(was.path.clone()),
                    is_dir: entry.is_dir,
                    size_before: Some(overwritten.unwrap_or(was).size),
                    size_after: Some(entry.size),
                    hive: None,
                }
            }
            Origin::Added => {
                if listed || (entry.is_dir && before.get(k).is_some_and(|b| b.is_dir)) {
                    continue;
                }
                let hive = hives.get(k).map(|h| h.to_string());
                let kind = match (&hive, overwritten) {
                    (Some(_), _) => ChangeKind::Registry,
                    (None, Some(_)) => ChangeKind::Replaced,
                    (None, None) => ChangeKind::Added,
                };
                FileChange {
                    kind,
                    path: entry.path.clone(),
                    old_path: None,
                    is_dir: entry.is_dir,
                    size_before: overwritten.map(|b| b.size),
                    size_after: Some(entry.size),
                    hive,
                }
            }
        };
        out.push(change);
    }
    for (k, entry) in before {
        if kept.contains(k) || after.contains_key(k) {
            continue;
        }
        if entry.is_dir && !is_empty_dir(before, k, entry) {
            continue;
        }
        out.push(FileChange {
            kind: ChangeKind::Deleted,
            path: entry.path.clone(),
            old_path: None,
            is_dir: entry.is_dir,
            size_before: Some(entry.size),
            size_after: None,
            hive: None,
        });
    }
    out.sort_by(|a, b| key(&a.path).cmp(&key(&b.path)).then(a.kind.cmp(&b.kind)));
    out
}

/// Records the changes of each update on each index, with one prepared statement, in the
/// transaction that ends the run.
pub fn record<'a>(
    tx: &Transaction,
    run_id: RunId,
    results: impl IntoIterator<Item = &'a super::UpdateResult>,
) -> rusqlite::Result<usize> {
    let mut stmt = tx.prepare(
        "INSERT OR REPLACE INTO run_file_changes
         (run_id, update_id, idx, position, kind, path, old_path, is_dir, size_before, size_after, hive)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    let mut n = 0;
    for r in results {
        for (position, c) in r.files.iter().enumerate() {
            stmt.execute(params![
                run_id,
                r.update,
                r.index,
                position as i64,
                c.kind.as_str(),
                c.path,
                c.old_path,
                c.is_dir,
                c.size_before.map(|s| s as i64),
                c.size_after.map(|s| s as i64),
                c.hive,
            ])?;
            n += 1;
        }
    }
    Ok(n)
}

/// One recorded change, with the index and the update that made it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedChange {
    pub index: u32,
    pub update: String,
    #[serde(flatten)]
    pub change: FileChange,
}

/// What run `run_id` changed, in the order it changed it (index by index, update by update).
pub fn recorded(db: &Database, run_id: RunId) -> Result<Vec<RecordedChange>, SiteError> {
    let mut stmt = db
        .prepare(
            "SELECT idx, update_id, kind, path, old_path, is_dir, size_before, size_after, hive
             FROM run_file_changes WHERE run_id = ?1 ORDER BY idx, rowid",
        )
        .map_err(|e| db.error(e))?;
    stmt.query_map([run_id], |r| {
        let kind: String = r.get(2)?;
        Ok(RecordedChange {
            index: r.get(0)?,
            update: r.get(1)?,
            change: FileChange {
                kind: ChangeKind::parse(&kind).ok_or_else(|| {
                    rusqlite::Error::FromSqlConversionFailure(
                        2,
                        rusqlite::types::Type::Text,
                        format!("unknown change kind {kind:?} in run_file_changes").into(),
                    )
                })?,
                path: r.get(3)?,
                old_path: r.get(4)?,
                is_dir: r.get(5)?,
                size_before: r.get::<_, Option<i64>>(6)?.map(|s| s as u64),
                size_after: r.get::<_, Option<i64>>(7)?.map(|s| s as u64),
                hive: r.get(8)?,
            },
        })
    })
    .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
    .map_err(|e| db.error(e))
}

/// The image's last run that changed something in it.
pub fn last_changing_run(db: &Database, image_id: ImageId) -> Result<Option<RunId>, SiteError> {
    db.query_row(
        "SELECT id FROM servicing_runs r WHERE image_id = ?1
         AND EXISTS (SELECT 1 FROM run_file_changes c WHERE c.run_id = r.id)
         ORDER BY id DESC LIMIT 1",
        [image_id],
        |r| r.get(0),
    )
    .optional()
    .map_err(|e| db.error(e))
}

/// A run of an image: its status, start and end.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// Run `run_id`, if it is a run of image `image_id`.
pub fn run_of_image(
    db: &Database,
    image_id: ImageId,
    run_id: RunId,
) -> Result<Option<RunSummary>, SiteError> {
    db.query_row(
        "SELECT status, started_at, finished_at FROM servicing_runs WHERE id = ?1 AND image_id = ?2",
        params![run_id, image_id],
        |r| {
            Ok(RunSummary {
                status: r.get(0)?,
                started_at: r.get(1)?,
                finished_at: r.get(2)?,
            })
        },
    )
    .optional()
    .map_err(|e| db.error(e))
}

/// The hive a registry edit's wimlib command writes, by the command's target.
pub fn hive_targets(commands: &[UpdateCommand]) -> Vec<(String, &'static str)> {
    commands
        .iter()
        .filter_map(|c| match c {
            UpdateCommand::Add { target, .. } => Hive::ALL
                .into_iter()
                .find(|h| key(h.image_path()) == key(target))
                .map(|h| (target.clone(), h.as_str())),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn file(path: &str, size: u64) -> (String, TreeEntry) {
        (
            key(path),
            TreeEntry {
                path: path.into(),
                is_dir: false,
                size,
                links: 1,
                sha1: [0; 20],
            },
        )
    }

    fn dir(path: &str) -> (String, TreeEntry) {
        (
            key(path),
            TreeEntry {
                path: path.into(),
                is_dir: true,
                size: 0,
                links: 1,
                sha1: [0; 20],
            },
        )
    }

    fn add(target: &str) -> UpdateCommand {
        UpdateCommand::Add {
            source: PathBuf::from("/stage/x"),
            target: format!("/{target}"),
        }
    }

    fn rename(from: &str, to: &str) -> UpdateCommand {
        UpdateCommand::Rename {
            from: format!("/{from}"),
            to: format!("/{to}"),
        }
    }

    fn change(
        kind: ChangeKind,
        path: &str,
        old_path: Option<&str>,
        before: Option<u64>,
        after: Option<u64>,
    ) -> FileChange {
        FileChange {
            kind,
            path: path.into(),
            old_path: old_path.map(String::from),
            is_dir: false,
            size_before: before,
            size_after: after,
            hive: None,
        }
    }

    #[test]
    fn roots_under_another_root_are_listed_with_it() {
        let commands = [
            UpdateCommand::Delete {
                path: "/Windows/Temp".into(),
            },
            add("windows/temp/new.log"),
            rename("Windows/a.dll", "Windows/b.dll"),
            add("Windows/TEMPLATES/x"),
        ];
        assert_eq!(
            roots(&commands),
            [
                "windows/a.dll",
                "windows/b.dll",
                "windows/temp",
                "windows/templates/x"
            ]
        );
    }

    /// What the tree says, not what the manifest asked: an add over a file replaced it, a
    /// delete of a folder deleted each file under it (and its empty folders), a rename kept
    /// the size.
    #[test]
    fn the_difference_follows_what_the_tree_holds() {
        let before: Tree = [
            file("Windows/System32/ntoskrnl.exe", 100),
            dir("Windows/Temp"),
            file("Windows/Temp/a.log", 10),
            dir("Windows/Temp/Empty"),
            dir("Windows/Temp/Sub"),
            file("Windows/Temp/Sub/b.log", 20),
            file("Windows/old.dll", 30),
        ]
        .into();
        let after: Tree = [
            file("Windows/System32/ntoskrnl.exe", 110),
            file("Windows/System32/new.sys", 5),
            file("Windows/new.dll", 30),
        ]
        .into();
        let commands = [
            add("Windows/System32/ntoskrnl.exe"),
            add("Windows/System32/new.sys"),
            UpdateCommand::Delete {
                path: "/Windows/Temp".into(),
            },
            rename("Windows/old.dll", "Windows/new.dll"),
        ];
        let got = difference(&before, &after, &commands, &BTreeMap::new());
        let mut empty = change(
            ChangeKind::Deleted,
            "Windows/Temp/Empty",
            None,
            Some(0),
            None,
        );
        empty.is_dir = true;
        assert_eq!(
            got,
            [
                change(
                    ChangeKind::Renamed,
                    "Windows/new.dll",
                    Some("Windows/old.dll"),
                    Some(30),
                    Some(30)
                ),
                change(
                    ChangeKind::Added,
                    "Windows/System32/new.sys",
                    None,
                    None,
                    Some(5)
                ),
                change(
                    ChangeKind::Replaced,
                    "Windows/System32/ntoskrnl.exe",
                    None,
                    Some(100),
                    Some(110)
                ),
                change(
                    ChangeKind::Deleted,
                    "Windows/Temp/a.log",
                    None,
                    Some(10),
                    None
                ),
                empty,
                change(
                    ChangeKind::Deleted,
                    "Windows/Temp/Sub/b.log",
                    None,
                    Some(20),
                    None
                ),
            ]
        );
    }

    /// A rename onto an existing file replaced that file's data; a renamed folder is its
    /// files, each from its old path; a swap through a third name loses nothing.
    #[test]
    fn renames_over_files_replace_them_and_swaps_are_renames() {
        let before: Tree = [
            file("a", 1),
            file("b", 2),
            dir("d"),
            file("d/x", 3),
            file("keep", 4),
            file("gone", 5),
        ]
        .into();
        let after: Tree = [
            file("a", 2),
            file("b", 1),
            dir("e"),
            file("e/x", 3),
            file("keep", 5),
        ]
        .into();
        let commands = [
            rename("a", "t"),
            rename("b", "a"),
            rename("t", "b"),
            rename("d", "e"),
            rename("gone", "keep"),
        ];
        let got = difference(&before, &after, &commands, &BTreeMap::new());
        assert_eq!(
            got,
            [
                change(ChangeKind::Renamed, "a", Some("b"), Some(2), Some(2)),
                change(ChangeKind::Renamed, "b", Some("a"), Some(1), Some(1)),
                change(ChangeKind::Renamed, "e/x", Some("d/x"), Some(3), Some(3)),
                change(ChangeKind::Replaced, "keep", Some("gone"), Some(4), Some(5)),
            ]
        );
    }

    #[test]
    fn an_edited_hive_is_a_registry_change_and_a_file_over_it_is_not() {
        let hive = Hive::Software.image_path();
        let before: Tree = [file(hive, 8192)].into();
        let after: Tree = [file(hive, 12288)].into();
        let commands = [add(hive)];
        let targets = hive_targets(&commands);
        assert_eq!(targets, [(format!("/{hive}"), "SOFTWARE")]);
        let hives: BTreeMap<String, &'static str> =
            targets.iter().map(|(p, h)| (key(p), *h)).collect();
        let got = difference(&before, &after, &commands, &hives);
        assert_eq!(
            got,
            [FileChange {
                hive: Some("SOFTWARE".into()),
                ..change(ChangeKind::Registry, hive, None, Some(8192), Some(12288))
            }]
        );
        let plain = difference(&before, &after, &commands, &BTreeMap::new());
        assert_eq!(plain[0].kind, ChangeKind::Replaced);
    }
}
