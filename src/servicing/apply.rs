//! Applying staged updates to the indexes of an open WIM, in memory.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::changes;
use super::hives::HiveEdits;
use super::plan::Plan;
use crate::library::{Change, InPlace, Update};
use crate::wim::{UpdateCommand, Wim};

/// The result of one update on one index.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateResult {
    pub update: String,
    pub index: u32,
    pub applied: bool,
    pub error: Option<String>,
    /// The registry changes it made on that index.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub registry: Vec<crate::registry::Applied>,
    /// What it changed in the index's tree, as read back from wimlib. Kept out of the
    /// run's JSON (a cumulative update changes thousands of files): `ois image changes`
    /// shows it.
    #[serde(skip)]
    pub files: Vec<super::changes::FileChange>,
}

/// Where the files an update adds are read from: each payload file (in place in the library,
/// or a checked copy in the stage) by its lower-case path in the package.
pub struct Sources {
    pub files: BTreeMap<String, InPlace>,
}

impl Sources {
    pub fn files(files: Vec<InPlace>) -> Sources {
        Sources {
            files: files
                .into_iter()
                .map(|f| (f.path.to_lowercase(), f))
                .collect(),
        }
    }
}

/// The in-place files an add of `source` at `target` lays down, with their image paths. The
/// package's own rule (see library validation): the file of that path, or else every file
/// under that folder; wimlib creates the missing folders.
pub fn added<'f>(
    files: &'f BTreeMap<String, InPlace>,
    source: &str,
    target: &str,
) -> Vec<(String, &'f InPlace)> {
    let wanted = source.to_lowercase();
    if let Some(f) = files.get(&wanted) {
        return vec![(format!("/{target}"), f)];
    }
    let prefix = format!("{wanted}/");
    files
        .range(prefix.clone()..)
        .take_while(|(key, _)| key.starts_with(&prefix))
        .filter_map(|(_, f)| Some((format!("/{target}/{}", f.path.get(source.len() + 1..)?), f)))
        .collect()
}

/// wimlib commands for an update whose payload is at `sources`. Each placement of a payload
/// file reads a file of its own: wimlib turns source files sharing an inode within one call
/// into hard links, and the image must get independent files.
pub fn commands(update: &Update, sources: &Sources) -> Result<Vec<UpdateCommand>, String> {
    let mut out = Vec::new();
    let mut placed: HashMap<String, usize> = HashMap::new();
    for c in &update.manifest.changes {
        match c {
            Change::Add { source, target } => {
                for (target, f) in added(&sources.files, source, target) {
                    let k = placed.entry(f.path.to_lowercase()).or_default();
                    let file = f.placement(*k).ok_or_else(|| {
                        format!(
                            "the content library has no separate copy for placement {} of {}: import the package of {} again",
                            *k + 1,
                            f.path,
                            update.id()
                        )
                    })?;
                    *k += 1;
                    out.push(UpdateCommand::Add {
                        source: file.to_path_buf(),
                        target,
                    });
                }
            }
            Change::Delete { path } => out.push(UpdateCommand::Delete {
                path: format!("/{path}"),
            }),
            Change::Rename { from, to, .. } => out.push(UpdateCommand::Rename {
                from: format!("/{from}"),
                to: format!("/{to}"),
            }),
        }
    }
    Ok(out)
}

/// Refuses an update whose rename would overwrite an existing path without `replace = true`
/// (wimlib's rename replaces its destination silently). The index as earlier updates left it
/// is asked, following this update's own earlier changes: a path it deleted or renamed away is
/// free, one it added or renamed to is taken.
pub fn check_renames(wim: &Wim, index: u32, update: &Update) -> Result<(), String> {
    let within = |set: &[String], path: &str| {
        set.iter()
            .any(|p| path == p || path.starts_with(&format!("{p}/")))
    };
    let (mut freed, mut taken): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for change in &update.manifest.changes {
        match change {
            Change::Add { target, .. } => taken.push(target.to_lowercase()),
            Change::Delete { path } => freed.push(path.to_lowercase()),
            Change::Rename { from, to, replace } => {
                let (from_key, to_key) = (from.to_lowercase(), to.to_lowercase());
                // Only the case of the name changes: the same file.
                let exists = from_key != to_key
                    && (within(&taken, &to_key)
                        || (!within(&freed, &to_key)
                            && wim
                                .entry(index, &format!("/{to}"))
                                .map_err(|e| e.to_string())?
                                .is_some()));
                if exists && !replace {
                    return Err(format!(
                        "rename {from} to {to}: {to} already exists in index {index}; the package must set `replace = true` on this change to overwrite it"
                    ));
                }
                freed.push(from_key);
                taken.push(to_key);
            }
        }
    }
    Ok(())
}

/// Why applying stopped early.
pub enum Stop {
    /// An update failed and the run does not continue on error.
    Failed,
    Canceled,
    /// An index cannot be serviced safely (the message says why).
    Refused(String),
}

/// Applies the plan index by index, each after `check_index` accepted it. Each update is one
/// wimlib call, so it is applied whole or not at all on an index. An update whose
/// prerequisite failed on an index is skipped there.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    wim: &Wim,
    plan: &Plan,
    updates: &HashMap<String, (&Update, Sources)>,
    continue_on_error: bool,
    canceled: &dyn Fn() -> bool,
    check_index: &dyn Fn(u32) -> Result<(), String>,
    hives: &mut HiveEdits,
    results: &mut Vec<UpdateResult>,
) -> Result<(), Stop> {
    for index_plan in &plan.indexes {
        check_index(index_plan.index).map_err(Stop::Refused)?;
        let mut failed_here: Vec<String> = Vec::new();
        // What reading the tree before and after each call costs, for the run log.
        let mut reading = std::time::Duration::ZERO;
        for id in &index_plan.updates {
            if canceled() {
                return Err(Stop::Canceled);
            }
            let Some((update, sources)) = updates.get(&id.to_lowercase()) else {
                continue;
            };
            let blocked_by = update
                .manifest
                .requires
                .iter()
                .find(|r| failed_here.iter().any(|f| f.eq_ignore_ascii_case(r)));
            let outcome = match blocked_by {
                Some(r) => Err(format!(
                    "not applied: it requires {r}, which failed on this index"
                )),
                None => check_renames(wim, index_plan.index, update)
                    .and_then(|()| commands(update, sources))
                    .and_then(|files| {
                        // Registry changes go in the same wimlib call: the update is whole
                        // on the index, or not there at all.
                        let edit = hives.edit(wim, index_plan.index, update, &files)?;
                        let mut all = files.clone();
                        all.extend(edit.iter().flat_map(|e| e.commands.iter().cloned()));
                        let timer = std::time::Instant::now();
                        let before = changes::Before::read(wim, index_plan.index, &all)
                            .map_err(|e| e.to_string())?;
                        reading += timer.elapsed();
                        wim.update(index_plan.index, &all).map_err(|e| {
                            let detail = if e.details.is_empty() {
                                String::new()
                            } else {
                                format!(" ({})", e.details.join("; "))
                            };
                            format!("{}{detail}", e.message)
                        })?;
                        let applied = edit.as_ref().map(|e| e.applied.clone()).unwrap_or_default();
                        let hive_targets = edit
                            .as_ref()
                            .map(|e| changes::hive_targets(&e.commands))
                            .unwrap_or_default();
                        hives.commit(index_plan.index, &files, edit);
                        // The update is in the index now: a failure to read back what it did
                        // leaves its changes unrecorded, not the update failed.
                        let timer = std::time::Instant::now();
                        let changed = before
                            .changes(wim, index_plan.index, &all, &hive_targets)
                            .unwrap_or_else(|e| {
                                tracing::warn!(
                                    "the file changes of {id} on index {} could not be read back, so they are not recorded: {e}",
                                    index_plan.index
                                );
                                Vec::new()
                            });
                        reading += timer.elapsed();
                        Ok((applied, changed))
                    }),
            };
            match outcome {
                Ok((registry, files)) => {
                    tracing::info!(
                        "applied {id} to index {}: {} path(s) changed",
                        index_plan.index,
                        files.len()
                    );
                    for change in &registry {
                        tracing::info!(
                            "{id} on index {}: {} {}\\{}{}{}",
                            index_plan.index,
                            change.action,
                            change.hive.as_str(),
                            change.key,
                            change
                                .value
                                .as_deref()
                                .map_or(String::new(), |v| format!(" value {v:?}")),
                            match (&change.before, &change.after) {
                                (Some(b), Some(a)) => format!(": {b} -> {a}"),
                                (None, Some(a)) => format!(": {a}"),
                                (Some(b), None) => format!(" (was {b})"),
                                (None, None) => String::new(),
                            }
                        );
                    }
                    results.push(UpdateResult {
                        update: id.clone(),
                        index: index_plan.index,
                        applied: true,
                        error: None,
                        registry,
                        files,
                    });
                }
                Err(error) => {
                    tracing::warn!("update {id} failed on index {}: {error}", index_plan.index);
                    results.push(UpdateResult {
                        update: id.clone(),
                        index: index_plan.index,
                        applied: false,
                        error: Some(error),
                        registry: Vec::new(),
                        files: Vec::new(),
                    });
                    failed_here.push(id.clone());
                    if !continue_on_error {
                        return Err(Stop::Failed);
                    }
                }
            }
        }
        if !index_plan.updates.is_empty() {
            tracing::info!(
                "index {}: the changed paths were read from the tree in {} ms",
                index_plan.index,
                reading.as_millis()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn update(text: &str) -> Update {
        Update::from_manifest(text)
    }

    #[test]
    fn in_place_sources_follow_the_package_rule_for_files_and_folders() {
        let u = update(
            r#"id = "KB1"
title = "t"
architecture = "x64"
[[change]]
add = "Payload/Kernel32.dll"
at = "Windows/System32/kernel32.dll"
[[change]]
add = "payload/inf"
at = "Windows/INF"
[[change]]
delete = "Windows/Temp/x.log"
"#,
        );
        let file = |path: &str, file: &str| InPlace {
            path: path.into(),
            file: PathBuf::from(file),
            sha256: String::new(),
            copies: Vec::new(),
        };
        let sources = Sources::files(vec![
            file("payload/kernel32.dll", "/s/k"),
            file("payload/INF/usb.inf", "/s/u"),
            file("payload/inf/sub/Net.inf", "/s/n"),
            file("payload/information.txt", "/s/i"),
        ]);
        let add = |source: &str, target: &str| UpdateCommand::Add {
            source: PathBuf::from(source),
            target: target.into(),
        };
        assert_eq!(
            commands(&u, &sources).expect("commands"),
            vec![
                add("/s/k", "/Windows/System32/kernel32.dll"),
                add("/s/n", "/Windows/INF/sub/Net.inf"),
                add("/s/u", "/Windows/INF/usb.inf"),
                UpdateCommand::Delete {
                    path: "/Windows/Temp/x.log".into()
                },
            ]
        );
    }

    #[test]
    fn each_placement_of_one_payload_file_reads_a_file_of_its_own() {
        let u = update(
            r#"id = "KB1"
title = "t"
architecture = "x64"
[[change]]
add = "payload/x.dll"
at = "Windows/System32/x.dll"
[[change]]
add = "payload"
at = "Windows/SysWOW64"
"#,
        );
        let sources = Sources::files(vec![InPlace {
            path: "payload/x.dll".into(),
            file: PathBuf::from("/store/x"),
            sha256: String::new(),
            copies: vec![PathBuf::from("/repeated/x.1")],
        }]);
        let add = |source: &str, target: &str| UpdateCommand::Add {
            source: PathBuf::from(source),
            target: target.into(),
        };
        assert_eq!(
            commands(&u, &sources).expect("commands"),
            vec![
                add("/store/x", "/Windows/System32/x.dll"),
                add("/repeated/x.1", "/Windows/SysWOW64/x.dll"),
            ]
        );
        // Never the same file twice in one call: without a copy the update is refused.
        let short = Sources::files(vec![InPlace {
            copies: Vec::new(),
            ..sources.files["payload/x.dll"].clone()
        }]);
        let err = commands(&u, &short).expect_err("no second copy");
        assert!(err.contains("placement 2 of payload/x.dll"), "{err}");
    }
}
