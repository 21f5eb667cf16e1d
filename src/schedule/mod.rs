//! Schedules of images (table `schedules`), their status as the console shows it, cancel, and
//! the scheduler loop that runs due servicing.

pub mod control;
pub mod scheduler;
pub mod timing;

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

pub use control::{cancel, leave_provisioning_mode, CancelOutcome};
pub use scheduler::{SchedulerEvent, SchedulerOptions};
pub use timing::Timing;

use crate::hint::Hint;
use crate::image::{Image, ImageError, ImageId};
use crate::library::UpdateId;
use crate::servicing::{self, lease, KindFilter, RunId, Selection, ServicingError, TargetFilter};
use crate::site::{Database, Migrations, SiteError};

pub static MIGRATIONS: Migrations = Migrations {
    module: "schedule",
    steps: &[
        "CREATE TABLE schedules (
            image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
            updates TEXT,
            timing TEXT NOT NULL,
            at_or_cron TEXT NOT NULL,
            next_run_at TEXT,
            continue_on_error INTEGER NOT NULL,
            update_dps INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            after_run_id INTEGER NOT NULL,
            claimed_pid INTEGER,
            claimed_host TEXT,
            claimed_at TEXT,
            last_run_id INTEGER);",
        // `--kind` of an all-applicable schedule. Schedules set before ois planned Windows
        // packages took file-level updates only, and keep doing so.
        "ALTER TABLE schedules ADD COLUMN kind TEXT NOT NULL DEFAULT 'file';",
        // `--target`: the image's own indexes, its nested images (Winre.wim), or both.
        "ALTER TABLE schedules ADD COLUMN target TEXT NOT NULL DEFAULT 'all';",
    ],
};

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("image {image}: {message}")]
    Invalid { image: String, message: String },
    #[error("image {0} is in provisioning mode: its schedule cannot change until the run ends")]
    InProvisioningMode(String),
    #[error("image {0} has no schedule")]
    NoSchedule(String),
    #[error("nothing to cancel: image {0} has no run in progress and no schedule")]
    NothingToCancel(String),
    #[error("run {run_id} of image {image} cannot be canceled: its process {pid} on this host no longer exists")]
    OwnerGone {
        image: String,
        run_id: RunId,
        pid: u32,
    },
    #[error(transparent)]
    Servicing(#[from] ServicingError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Site(#[from] SiteError),
}

impl ScheduleError {
    /// What to do about it.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            ScheduleError::InProvisioningMode(image) => Some(Hint::ShowImage {
                image: image.clone(),
            }),
            ScheduleError::OwnerGone { image, .. } => Some(Hint::LeaveProvisioningMode {
                image: image.clone(),
            }),
            ScheduleError::Servicing(e) => e.hint(),
            ScheduleError::Image(e) => e.hint(),
            ScheduleError::Site(e) => e.hint(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    pub image_id: ImageId,
    /// `AllApplicable` plans when the run starts: the monthly patch run.
    pub updates: Selection,
    pub timing: Timing,
    /// UTC; `None` when a cron expression never fires again.
    pub next_run_at: Option<String>,
    pub continue_on_error: bool,
    pub update_dps: bool,
    /// Which levels of the image each run services.
    pub target: TargetFilter,
    pub created_at: String,
    /// Runs with a larger id happened after this schedule was set.
    #[serde(skip)]
    pub after_run_id: RunId,
    /// The scheduler process that is running it now.
    pub claimed_by: Option<String>,
    pub last_run_id: Option<RunId>,
}

/// What the admin asks for with `ois image schedule`.
#[derive(Debug, Clone)]
pub struct ScheduleRequest {
    pub updates: Selection,
    pub timing: Timing,
    pub continue_on_error: bool,
    pub update_dps: bool,
    pub target: TargetFilter,
}

/// **Scheduled Updates Status**, as the console shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ScheduledStatus {
    None,
    Scheduled,
    #[serde(rename = "In progress")]
    InProgress,
    Successful,
    Failed,
    Canceled,
}

impl ScheduledStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduledStatus::None => "None",
            ScheduledStatus::Scheduled => "Scheduled",
            ScheduledStatus::InProgress => "In progress",
            ScheduledStatus::Successful => "Successful",
            ScheduledStatus::Failed => "Failed",
            ScheduledStatus::Canceled => "Canceled",
        }
    }
}

fn refuse_in_provisioning_mode(db: &Database, img: &Image) -> Result<(), ScheduleError> {
    if lease::current(db, img.id)
        .map_err(|e| db.error(e))?
        .is_some()
    {
        return Err(ScheduleError::InProvisioningMode(img.name.clone()));
    }
    Ok(())
}

fn last_run_id(db: &Database, image_id: ImageId) -> Result<RunId, SiteError> {
    db.query_row(
        "SELECT COALESCE(MAX(id), 0) FROM servicing_runs WHERE image_id = ?1",
        [image_id],
        |r| r.get(0),
    )
    .map_err(|e| db.error(e))
}

/// Sets (or replaces) the image's schedule.
pub fn set(
    db: &Database,
    img: &Image,
    request: &ScheduleRequest,
) -> Result<Schedule, ScheduleError> {
    refuse_in_provisioning_mode(db, img)?;
    let invalid = |message: String| ScheduleError::Invalid {
        image: img.name.clone(),
        message,
    };
    if let Selection::Updates(ids) = &request.updates {
        if ids.is_empty() {
            return Err(invalid(
                "no update given: use --updates ID,... or --all-applicable".into(),
            ));
        }
        let named = crate::library::cbs::named(db, ids)
            .map_err(|e| ScheduleError::Servicing(ServicingError::Library(e)))?;
        servicing::servicer::check_named(&named).map_err(&invalid)?;
    }
    let next = request
        .timing
        .first()
        .map_err(&invalid)?
        .ok_or_else(|| invalid(format!("{} never runs", request.timing.describe())))?;
    let (kind, value) = match &request.timing {
        Timing::Once { at } => ("once", at.clone()),
        Timing::Cron { expression } => ("cron", expression.clone()),
    };
    let (updates, update_kind) = match &request.updates {
        Selection::AllApplicable(kind) => (None, *kind),
        Selection::Updates(ids) => (
            Some(
                ids.iter()
                    .map(UpdateId::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            KindFilter::All,
        ),
    };
    let after = last_run_id(db, img.id)?;
    db.execute(
        "INSERT OR REPLACE INTO schedules (image_id, updates, timing, at_or_cron, next_run_at,
            continue_on_error, update_dps, created_at, after_run_id, kind, target)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            img.id,
            updates,
            kind,
            value,
            timing::stamp(next),
            request.continue_on_error,
            request.update_dps,
            timing::stamp(Utc::now()),
            after,
            update_kind.as_str(),
            request.target.as_str()
        ],
    )
    .map_err(|e| db.error(e))?;
    tracing::info!(
        "image {}: servicing scheduled {} (next run {}), updates: {}",
        img.name,
        request.timing.describe(),
        timing::stamp(next),
        updates
            .clone()
            .unwrap_or_else(|| format!("all applicable (kind {})", update_kind.as_str()))
    );
    get(db, img.id)?.ok_or_else(|| ScheduleError::NoSchedule(img.name.clone()))
}

pub fn remove(db: &Database, img: &Image) -> Result<(), ScheduleError> {
    refuse_in_provisioning_mode(db, img)?;
    let n = db
        .execute("DELETE FROM schedules WHERE image_id = ?1", [img.id])
        .map_err(|e| db.error(e))?;
    if n == 0 {
        return Err(ScheduleError::NoSchedule(img.name.clone()));
    }
    tracing::info!("image {}: schedule removed", img.name);
    Ok(())
}

const COLUMNS: &str = "image_id, updates, timing, at_or_cron, next_run_at, continue_on_error,
    update_dps, created_at, after_run_id, claimed_pid, claimed_host, last_run_id, kind, target";

fn from_row(r: &rusqlite::Row) -> rusqlite::Result<Schedule> {
    let updates: Option<String> = r.get(1)?;
    let kind: String = r.get(2)?;
    let value: String = r.get(3)?;
    let pid: Option<u32> = r.get(9)?;
    let host: Option<String> = r.get(10)?;
    Ok(Schedule {
        image_id: r.get(0)?,
        updates: match updates {
            None => Selection::AllApplicable(
                r.get::<_, String>(12)?.parse().unwrap_or(KindFilter::File),
            ),
            Some(ids) => Selection::Updates(ids.split(',').map(UpdateId::from).collect()),
        },
        timing: if kind == "cron" {
            Timing::Cron { expression: value }
        } else {
            Timing::Once { at: value }
        },
        next_run_at: r.get(4)?,
        continue_on_error: r.get(5)?,
        update_dps: r.get(6)?,
        target: r.get::<_, String>(13)?.parse().unwrap_or_default(),
        created_at: r.get(7)?,
        after_run_id: r.get(8)?,
        claimed_by: pid.zip(host).map(|(p, h)| format!("process {p} on {h}")),
        last_run_id: r.get(11)?,
    })
}

pub fn get(db: &Database, image_id: ImageId) -> Result<Option<Schedule>, SiteError> {
    db.query_row(
        &format!("SELECT {COLUMNS} FROM schedules WHERE image_id = ?1"),
        [image_id],
        from_row,
    )
    .optional()
    .map_err(|e| db.error(e))
}

/// **Scheduled Updates Status** and **Scheduled Updates Date** of an image.
pub fn status(
    db: &Database,
    image_id: ImageId,
) -> Result<(ScheduledStatus, Option<String>), SiteError> {
    let schedule = get(db, image_id)?;
    let next = schedule.as_ref().and_then(|s| s.next_run_at.clone());
    if servicing::active_run(db, image_id)?.is_some() {
        return Ok((ScheduledStatus::InProgress, next));
    }
    let last: Option<(RunId, String)> = db
        .query_row(
            "SELECT id, status FROM servicing_runs WHERE image_id = ?1 ORDER BY id DESC LIMIT 1",
            [image_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(|e| db.error(e))?;
    let status = match (&schedule, last) {
        (Some(s), last) if last.as_ref().is_none_or(|(id, _)| *id <= s.after_run_id) => {
            ScheduledStatus::Scheduled
        }
        (_, Some((_, status))) => match status.as_str() {
            "Successful" => ScheduledStatus::Successful,
            "Canceled" => ScheduledStatus::Canceled,
            _ => ScheduledStatus::Failed,
        },
        (Some(_), None) => ScheduledStatus::Scheduled,
        (None, None) => ScheduledStatus::None,
    };
    Ok((status, next))
}

/// Schedules due at `now` and not claimed by a scheduler.
pub fn due(db: &Database, now: DateTime<Utc>) -> Result<Vec<Schedule>, SiteError> {
    let mut stmt = db
        .prepare(&format!(
            "SELECT {COLUMNS} FROM schedules
             WHERE claimed_pid IS NULL AND next_run_at IS NOT NULL AND next_run_at <= ?1
             ORDER BY next_run_at, image_id"
        ))
        .map_err(|e| db.error(e))?;
    let rows = stmt
        .query_map([timing::stamp(now)], from_row)
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(|e| db.error(e))?;
    Ok(rows)
}
