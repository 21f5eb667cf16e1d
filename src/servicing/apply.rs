//! Applying staged updates to the indexes of an open WIM, in memory.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::Serialize;

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
}

/// Where the files an update adds are read from.
pub enum Sources {
    /// The payload laid out as in the package, under this folder.
    Tree(PathBuf),
    /// Each payload file read in place, by its lower-case path in the package.
    Files(BTreeMap<String, InPlace>),
}

impl Sources {
    pub fn files(files: Vec<InPlace>) -> Sources {
        Sources::Files(
            files
                .into_iter()
                .map(|f| (f.path.to_lowercase(), f))
                .collect(),
        )
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

/// wimlib commands for an update whose payload is at `sources`.
pub fn commands(update: &Update, sources: &Sources) -> Vec<UpdateCommand> {
    let mut out = Vec::new();
    for c in &update.manifest.changes {
        match c {
            Change::Add { source, target } => match sources {
                Sources::Tree(root) => out.push(UpdateCommand::Add {
                    source: root.join(source),
                    target: format!("/{target}"),
                }),
                Sources::Files(files) => {
                    out.extend(added(files, source, target).into_iter().map(|(target, f)| {
                        UpdateCommand::Add {
                            source: f.file.clone(),
                            target,
                        }
                    }))
                }
            },
            Change::Delete { path } => out.push(UpdateCommand::Delete {
                path: format!("/{path}"),
            }),
            Change::Rename { from, to } => out.push(UpdateCommand::Rename {
                from: format!("/{from}"),
                to: format!("/{to}"),
            }),
        }
    }
    out
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
pub fn apply(
    wim: &Wim,
    plan: &Plan,
    updates: &HashMap<String, (&Update, Sources)>,
    continue_on_error: bool,
    canceled: &dyn Fn() -> bool,
    check_index: &dyn Fn(u32) -> Result<(), String>,
    results: &mut Vec<UpdateResult>,
) -> Result<(), Stop> {
    for index_plan in &plan.indexes {
        check_index(index_plan.index).map_err(Stop::Refused)?;
        let mut failed_here: Vec<String> = Vec::new();
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
                None => wim
                    .update(index_plan.index, &commands(update, sources))
                    .map_err(|e| {
                        let detail = if e.details.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", e.details.join("; "))
                        };
                        format!("{}{detail}", e.message)
                    }),
            };
            match outcome {
                Ok(()) => {
                    tracing::info!("applied {id} to index {}", index_plan.index);
                    results.push(UpdateResult {
                        update: id.clone(),
                        index: index_plan.index,
                        applied: true,
                        error: None,
                    });
                }
                Err(error) => {
                    tracing::warn!("update {id} failed on index {}: {error}", index_plan.index);
                    results.push(UpdateResult {
                        update: id.clone(),
                        index: index_plan.index,
                        applied: false,
                        error: Some(error),
                    });
                    failed_here.push(id.clone());
                    if !continue_on_error {
                        return Err(Stop::Failed);
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            commands(&u, &sources),
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
}
