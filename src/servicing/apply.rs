//! Applying staged updates to the indexes of an open WIM, in memory.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

use super::plan::Plan;
use crate::library::{Change, Update};
use crate::wim::{UpdateCommand, Wim};

/// The result of one update on one index.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateResult {
    pub update: String,
    pub index: u32,
    pub applied: bool,
    pub error: Option<String>,
}

/// wimlib commands for an update whose payload is staged at `root`.
pub fn commands(update: &Update, root: &std::path::Path) -> Vec<UpdateCommand> {
    update
        .manifest
        .changes
        .iter()
        .map(|c| match c {
            Change::Add { source, target } => UpdateCommand::Add {
                source: root.join(source),
                target: format!("/{target}"),
            },
            Change::Delete { path } => UpdateCommand::Delete {
                path: format!("/{path}"),
            },
            Change::Rename { from, to } => UpdateCommand::Rename {
                from: format!("/{from}"),
                to: format!("/{to}"),
            },
        })
        .collect()
}

/// Why applying stopped early.
pub enum Stop {
    /// An update failed and the run does not continue on error.
    Failed,
    Canceled,
}

/// Applies the plan index by index. Each update is one wimlib call, so it is applied whole or
/// not at all on an index. An update whose prerequisite failed on an index is skipped there.
pub fn apply(
    wim: &Wim,
    plan: &Plan,
    updates: &HashMap<String, (&Update, PathBuf)>,
    continue_on_error: bool,
    canceled: &dyn Fn() -> bool,
    results: &mut Vec<UpdateResult>,
) -> Result<(), Stop> {
    for index_plan in &plan.indexes {
        let mut failed_here: Vec<String> = Vec::new();
        for id in &index_plan.updates {
            if canceled() {
                return Err(Stop::Canceled);
            }
            let Some((update, root)) = updates.get(&id.to_lowercase()) else {
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
                    .update(index_plan.index, &commands(update, root))
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
