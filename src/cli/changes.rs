//! `ois image changes`: what a run changed in each index, per index a summary then the list.

use clap::Args;

use super::commands::CliError;
use super::render::{self, bytes};
use ois::commands::{self, IndexChanges, RunChanges};
use ois::servicing::changes::{ChangeKind, FileChange};
use ois::site::Site;

#[derive(Args, Debug)]
pub struct ChangesArgs {
    /// Image (id or name)
    pub image: String,
    /// The run (its id, as `ois image show` lists runs) [default: the last run that changed
    /// the image]
    #[arg(long)]
    pub run: Option<ois::servicing::RunId>,
    #[arg(long)]
    pub json: bool,
}

pub(super) fn show(site: &Site, args: &ChangesArgs) -> Result<u8, CliError> {
    let view = commands::image_changes(site, &args.image, args.run)?;
    if args.json {
        render::json(&view);
    } else {
        print(&view);
    }
    Ok(0)
}

fn print(view: &RunChanges) {
    let Some(run_id) = view.run_id else {
        println!("Image {}: no servicing run has changed it yet", view.image);
        return;
    };
    let status = view.status.as_deref().unwrap_or("-");
    if view.indexes.is_empty() {
        println!(
            "Run {run_id} of image {} ({status}) changed nothing in the image",
            view.image
        );
        return;
    }
    println!(
        "Run {run_id} of image {} ({status}, started {}{})",
        view.image,
        view.started_at.as_deref().unwrap_or("-"),
        view.finished_at
            .as_deref()
            .map_or(String::new(), |f| format!(", finished {f}"))
    );
    for index in &view.indexes {
        println!();
        println!("Index {} ({}): {}", index.index, index.name, summary(index));
        let rows: Vec<Vec<String>> = index
            .changes
            .iter()
            .map(|c| {
                vec![
                    c.change.kind.as_str().to_string(),
                    c.update.clone(),
                    path(&c.change),
                    sizes(&c.change),
                ]
            })
            .collect();
        render::table(&["Kind", "Update", "Path", "Size (bytes)"], &rows);
    }
}

/// Counts and bytes per kind, the kinds the index has.
fn summary(index: &IndexChanges) -> String {
    let parts: Vec<String> = ChangeKind::ALL
        .into_iter()
        .filter_map(|kind| {
            let t = index.totals.get(kind);
            (t.count > 0).then(|| match kind {
                ChangeKind::Added => format!("{} added ({})", t.count, bytes(t.bytes_after)),
                ChangeKind::Deleted => {
                    format!("{} deleted ({})", t.count, bytes(t.bytes_before))
                }
                ChangeKind::Renamed => {
                    format!("{} renamed ({})", t.count, bytes(t.bytes_after))
                }
                ChangeKind::Replaced => format!(
                    "{} replaced ({} -> {})",
                    t.count,
                    bytes(t.bytes_before),
                    bytes(t.bytes_after)
                ),
                ChangeKind::Registry => format!(
                    "{} registry hive(s) edited ({} -> {})",
                    t.count,
                    bytes(t.bytes_before),
                    bytes(t.bytes_after)
                ),
            })
        })
        .collect();
    parts.join(", ")
}

fn path(c: &FileChange) -> String {
    let dir = if c.is_dir { "/" } else { "" };
    match (&c.old_path, &c.hive) {
        (Some(old), _) => format!("{old}{dir} -> {}{dir}", c.path),
        (None, Some(hive)) => format!("{} ({hive}; see `ois image show`)", c.path),
        (None, None) => format!("{}{dir}", c.path),
    }
}

fn sizes(c: &FileChange) -> String {
    let size = |s: Option<u64>| s.map_or_else(|| "-".to_string(), |s| s.to_string());
    match c.kind {
        ChangeKind::Renamed => size(c.size_after),
        _ => format!("{} -> {}", size(c.size_before), size(c.size_after)),
    }
}
