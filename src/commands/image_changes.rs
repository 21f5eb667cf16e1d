//! What a servicing run changed in each index of an image: the files added, replaced, deleted
//! and renamed, and the registry hives edited, with their sizes, as the engine recorded them
//! at run time.

use serde::Serialize;

use super::CommandError;
use crate::image::{self, ImageId};
use crate::servicing::changes::{self, ChangeKind, RecordedChange};
use crate::servicing::{RunId, ServicingError};
use crate::site::Site;

/// One run's changes to one image.
#[derive(Debug, Clone, Serialize)]
pub struct RunChanges {
    pub image: String,
    pub image_id: ImageId,
    /// None when no run has changed the image yet.
    pub run_id: Option<RunId>,
    pub status: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Only the indexes the run changed.
    pub indexes: Vec<IndexChanges>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IndexChanges {
    pub index: u32,
    /// The index's name in the WIM (its edition).
    pub name: String,
    pub totals: Totals,
    /// In the order the run made them: update by update, each by path.
    pub changes: Vec<Change>,
}

/// One change, with the update that made it.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub update: String,
    #[serde(flatten)]
    pub change: changes::FileChange,
}

/// Counts and bytes per kind of change.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub added: KindTotal,
    pub replaced: KindTotal,
    pub deleted: KindTotal,
    pub renamed: KindTotal,
    /// Registry hives edited.
    pub registry: KindTotal,
}

/// How many paths, and their sizes before and after (an added path counts in
/// `bytes_after` only, a deleted one in `bytes_before` only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KindTotal {
    pub count: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

impl Totals {
    pub fn get(&self, kind: ChangeKind) -> &KindTotal {
        match kind {
            ChangeKind::Added => &self.added,
            ChangeKind::Replaced => &self.replaced,
            ChangeKind::Deleted => &self.deleted,
            ChangeKind::Renamed => &self.renamed,
            ChangeKind::Registry => &self.registry,
        }
    }

    fn add(&mut self, change: &changes::FileChange) {
        let total = match change.kind {
            ChangeKind::Added => &mut self.added,
            ChangeKind::Replaced => &mut self.replaced,
            ChangeKind::Deleted => &mut self.deleted,
            ChangeKind::Renamed => &mut self.renamed,
            ChangeKind::Registry => &mut self.registry,
        };
        total.count += 1;
        total.bytes_before += change.size_before.unwrap_or(0);
        total.bytes_after += change.size_after.unwrap_or(0);
    }
}

/// What `run` (default: the image's last run that changed something) changed in the image
/// `image_key` (id or name).
pub fn image_changes(
    site: &Site,
    image_key: &str,
    run: Option<RunId>,
) -> Result<RunChanges, CommandError> {
    let db = site.database()?;
    let img = image::find(&db, image_key)?;
    let run_id = match run {
        Some(id) => Some(id),
        None => changes::last_changing_run(&db, img.id)?,
    };
    let mut view = RunChanges {
        image: img.name.clone(),
        image_id: img.id,
        run_id,
        status: None,
        started_at: None,
        finished_at: None,
        indexes: Vec::new(),
    };
    let Some(run_id) = run_id else {
        return Ok(view);
    };
    let record =
        changes::run_of_image(&db, img.id, run_id)?.ok_or_else(|| ServicingError::UnknownRun {
            image: img.name.clone(),
            run_id,
        })?;
    view.status = Some(record.status);
    view.started_at = Some(record.started_at);
    view.finished_at = record.finished_at;
    let names = image::indexes(&db, &img)?;
    for RecordedChange {
        index,
        update,
        change,
    } in changes::recorded(&db, run_id)?
    {
        if view.indexes.last().is_none_or(|i| i.index != index) {
            view.indexes.push(IndexChanges {
                index,
                name: names
                    .iter()
                    .find(|i| i.info.index == index)
                    .map(|i| i.info.name.clone())
                    .unwrap_or_default(),
                totals: Totals::default(),
                changes: Vec::new(),
            });
        }
        if let Some(current) = view.indexes.last_mut() {
            current.totals.add(&change);
            current.changes.push(Change { update, change });
        }
    }
    Ok(view)
}
