//! Servicing runs: plan, stage, apply to every index in memory, write a clean new WIM, verify,
//! replace the original atomically, record (tables `servicing_runs`, `run_updates`,
//! `provisioning`).

mod added;
mod apply;
mod assemble;
pub mod cancel;
pub mod changes;
mod commit;
pub mod dism;
mod hives;
pub mod lease;
pub mod nested;
mod passes;
pub mod plan;
pub mod recovery;
mod run;
pub mod servicer;
mod stage;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rusqlite::params;
use serde::Serialize;

pub use apply::UpdateResult;
pub use nested::{NestedOutcome, NestedPlan, NestedUpdateResult, TargetFilter};
pub use plan::{applicable, Catalog, IndexPlan, KindFilter, Plan, PlanError, Selection};
pub use run::RunEvent;

use crate::hint::Hint;
use crate::image::{self, Image, ImageError, ImageId};
use crate::library::{ContentLibrary, LibraryError};
use crate::site::{Database, Migrations, Site, SiteError};

pub static MIGRATIONS: Migrations = Migrations {
    module: "servicing",
    steps: &[
        "CREATE TABLE servicing_runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            status TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            continue_on_error INTEGER NOT NULL,
            size_before INTEGER,
            size_after INTEGER,
            stage_dir TEXT,
            error TEXT,
            owner_pid INTEGER,
            owner_host TEXT);
        CREATE TABLE run_updates (
            run_id INTEGER NOT NULL REFERENCES servicing_runs(id) ON DELETE CASCADE,
            update_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            result TEXT NOT NULL,
            error TEXT,
            PRIMARY KEY (run_id, update_id, idx));
        CREATE TABLE provisioning (
            image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
            run_id INTEGER,
            since TEXT NOT NULL,
            owner_pid INTEGER NOT NULL,
            owner_host TEXT NOT NULL);",
        // Cancel from another process, and the run's own log (ois's dism.log).
        "ALTER TABLE servicing_runs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE servicing_runs ADD COLUMN log_path TEXT;",
        // What each update's registry changes did on each index.
        "CREATE TABLE run_registry_changes (
            run_id INTEGER NOT NULL REFERENCES servicing_runs(id) ON DELETE CASCADE,
            update_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            position INTEGER NOT NULL,
            hive TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT,
            action TEXT NOT NULL,
            before TEXT,
            after TEXT,
            PRIMARY KEY (run_id, update_id, idx, position));",
        // What each update changed in each index's tree (see changes.rs); a `registry` row's
        // values are the run_registry_changes of the same run, update, index and hive.
        "CREATE TABLE run_file_changes (
            run_id INTEGER NOT NULL REFERENCES servicing_runs(id) ON DELETE CASCADE,
            update_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            position INTEGER NOT NULL,
            kind TEXT NOT NULL,
            path TEXT NOT NULL,
            old_path TEXT,
            is_dir INTEGER NOT NULL,
            size_before INTEGER,
            size_after INTEGER,
            hive TEXT,
            PRIMARY KEY (run_id, update_id, idx, position));",
        // What a run did to the nested images (Winre.wim) of its image: see nested.rs.
        nested::MIGRATION,
    ],
};

crate::id::integer_id!(
    /// A servicing run (`servicing_runs.id`).
    RunId,
    "a run id"
);

#[derive(Debug, thiserror::Error)]
pub enum ServicingError {
    #[error("cannot service image {image}: {reason}")]
    Plan { image: String, reason: PlanError },
    #[error("image {image} is being serviced by run {run_id} in process {pid} on {host}, which is still running")]
    RunAlive {
        image: String,
        run_id: RunId,
        pid: u32,
        host: String,
    },
    #[error("image {image} has no servicing run {run_id}")]
    UnknownRun { image: String, run_id: RunId },
    #[error(transparent)]
    Library(#[from] LibraryError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Site(#[from] SiteError),
}

impl ServicingError {
    /// What to do about it.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            ServicingError::Plan { reason, .. } => reason.hint.clone(),
            ServicingError::RunAlive { image, .. } => Some(Hint::CancelRun {
                image: image.clone(),
            }),
            ServicingError::UnknownRun { image, .. } => Some(Hint::ShowImage {
                image: image.clone(),
            }),
            ServicingError::Library(e) => e.hint(),
            ServicingError::Image(e) => e.hint(),
            ServicingError::Site(e) => e.hint(),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RunStatus {
    #[serde(rename = "In progress")]
    InProgress,
    Successful,
    Failed,
    Canceled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::InProgress => "In progress",
            RunStatus::Successful => "Successful",
            RunStatus::Failed => "Failed",
            RunStatus::Canceled => "Canceled",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedUpdate {
    pub id: String,
    pub error: String,
}

/// What happened to one image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageOutcome {
    pub image: String,
    pub image_id: ImageId,
    pub status: RunStatus,
    pub run_id: Option<RunId>,
    /// Updates written into the image: only those of a run that replaced the original.
    pub applied: Vec<String>,
    /// Updates applied in memory by a run that ended before its image replaced the original.
    pub not_written: Vec<String>,
    pub failed: Vec<FailedUpdate>,
    pub superseded: Vec<String>,
    pub error: Option<String>,
    pub size_before: u64,
    pub size_after: u64,
    pub seconds: f64,
    pub results: Vec<UpdateResult>,
    /// What the run did to each nested image (Winre.wim) it serviced.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nested: Vec<NestedOutcome>,
}

#[derive(Debug, Clone)]
pub struct ServiceOptions {
    pub selection: Selection,
    pub continue_on_error: bool,
    /// Which levels are serviced: the image's own indexes, its nested images, or both.
    pub target: TargetFilter,
    /// Images serviced at once.
    pub jobs: usize,
    pub cancel: Arc<AtomicBool>,
}

/// A sensible number of images to service at once: bounded by CPUs and by free memory
/// (wimlib's compressors take a few hundred MiB per image at most).
pub fn default_jobs(images: usize) -> usize {
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let by_memory = (sys.available_memory() / (512 << 20)).max(1) as usize;
    cpus.min(by_memory).min(images.max(1)).max(1)
}

/// What a caller does with a run's serviced and verified WIM (its path in the stage, its
/// SHA-256) before it replaces the original. An error ends the run Failed with the original
/// unchanged: media servicing builds and checks the whole new media here, so a media that
/// cannot be completed leaves its images as they were.
pub type BeforeReplace<'a> =
    &'a (dyn Fn(&Image, &std::path::Path, &str) -> Result<(), String> + Sync);

/// Services images: every plan is made first, so an impossible request touches nothing; then
/// the images run in parallel, each on one thread of a pool of `jobs`.
pub fn service(
    site: &Site,
    images: &[ImageId],
    options: &ServiceOptions,
    observer: &(dyn Fn(&str, RunEvent) + Sync),
) -> Result<Vec<ImageOutcome>, ServicingError> {
    service_with(site, images, options, observer, &|_, _, _| Ok(()))
}

/// [`service`], calling `before_replace` with each run's verified WIM before it replaces the
/// original.
pub fn service_with(
    site: &Site,
    images: &[ImageId],
    options: &ServiceOptions,
    observer: &(dyn Fn(&str, RunEvent) + Sync),
    before_replace: BeforeReplace,
) -> Result<Vec<ImageOutcome>, ServicingError> {
    service_by(
        site,
        images,
        options,
        observer,
        before_replace,
        servicer::Servicers::of_this_host(),
    )
}

/// [`service_with`], by the given servicers rather than this host's: how a test drives whole
/// runs through the DISM servicer with a runner that replays DISM transcripts.
pub fn service_by(
    site: &Site,
    images: &[ImageId],
    options: &ServiceOptions,
    observer: &(dyn Fn(&str, RunEvent) + Sync),
    before_replace: BeforeReplace,
    servicers: servicer::Servicers,
) -> Result<Vec<ImageOutcome>, ServicingError> {
    let db = site.database()?;
    let library = ContentLibrary::new(site);
    library.sweep_leftovers(&db);
    let updates = library.all(&db)?;
    let windows = crate::library::cbs::all(&db)?;
    let catalog = Catalog {
        files: &updates,
        windows: &windows,
    };
    // Every plan is made and checked against this host's servicers before any image is
    // touched: a Windows package here refuses the whole request.
    let mut jobs: Vec<(Image, Plan, Vec<NestedPlan>)> = Vec::new();
    for &id in images {
        let img = image::get(&db, id)?;
        if jobs.iter().any(|(i, _, _)| i.id == img.id) {
            continue;
        }
        let indexes = image::indexes(&db, &img)?;
        let (p, nested) = nested::plan_image(
            &db,
            &img,
            &indexes,
            catalog,
            &options.selection,
            options.target,
        )
        .and_then(|(p, n)| {
            servicers
                .check(&p)
                .map(|()| (p, n))
                .map_err(PlanError::from)
        })
        .map_err(|reason| ServicingError::Plan {
            image: img.name.clone(),
            reason,
        })?;
        jobs.push((img, p, nested));
    }
    drop(db);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.jobs.max(1))
        .thread_name(|i| format!("servicing-{i}"))
        .build()
        .map_err(|e| SiteError::Io {
            path: PathBuf::from("thread pool"),
            source: std::io::Error::other(e),
        })?;
    let outcomes = cancel::watching(site, |watch| {
        pool.install(|| {
            use rayon::prelude::*;
            jobs.par_iter()
                .map(|(img, p, nested)| {
                    run::run(
                        site,
                        &library,
                        catalog,
                        img,
                        p,
                        nested,
                        options,
                        watch,
                        observer,
                        before_replace,
                        servicers,
                    )
                })
                .collect::<Vec<_>>()
        })
    });
    Ok(outcomes)
}

/// `run_updates.result`: the update is in the image the run wrote.
const RESULT_APPLIED: &str = "Applied";
/// `run_updates.result`: it failed on that index.
const RESULT_FAILED: &str = "Failed";
/// `run_updates.result`: applied in memory, but the run ended before its image replaced the
/// original, so the image does not have it.
const RESULT_NOT_WRITTEN: &str = "Not written";

/// How an update result's error begins when the update was applied in memory by a run that
/// then ended before its image replaced the original.
pub const NOT_WRITTEN: &str = "applied in memory, not written";

/// A past run of an image, for `image show`.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: RunId,
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub size_before: Option<u64>,
    pub size_after: Option<u64>,
    pub error: Option<String>,
    /// The run's own log, ois's `dism.log`.
    pub log_path: Option<String>,
    pub updates: Vec<UpdateResult>,
    /// Its results on nested images (Winre.wim), with the parent indexes each went back into.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nested_updates: Vec<NestedUpdateResult>,
}

pub fn history(db: &Database, image_id: ImageId) -> Result<Vec<RunRecord>, SiteError> {
    let mut stmt = db
        .prepare(
            "SELECT id, status, started_at, finished_at, size_before, size_after, error, log_path
             FROM servicing_runs WHERE image_id = ?1 ORDER BY id DESC",
        )
        .map_err(|e| db.error(e))?;
    let mut runs = stmt
        .query_map([image_id], |r| {
            Ok(RunRecord {
                id: r.get(0)?,
                status: r.get(1)?,
                started_at: r.get(2)?,
                finished_at: r.get(3)?,
                size_before: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
                size_after: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
                error: r.get(6)?,
                log_path: r.get(7)?,
                updates: Vec::new(),
                nested_updates: Vec::new(),
            })
        })
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(|e| db.error(e))?;
    let mut stmt = db
        .prepare("SELECT update_id, idx, result, error FROM run_updates WHERE run_id = ?1 ORDER BY idx, rowid")
        .map_err(|e| db.error(e))?;
    for run in &mut runs {
        run.updates = stmt
            .query_map(params![run.id], |r| {
                let result: String = r.get(2)?;
                let error: Option<String> = r.get(3)?;
                Ok(UpdateResult {
                    update: r.get(0)?,
                    index: r.get(1)?,
                    registry: Vec::new(),
                    files: Vec::new(),
                    applied: result == RESULT_APPLIED,
                    error: if result == RESULT_NOT_WRITTEN {
                        Some(format!(
                            "{NOT_WRITTEN}: {}",
                            error.unwrap_or_else(|| {
                                "the run ended before the serviced image replaced the original"
                                    .into()
                            })
                        ))
                    } else {
                        error
                    },
                })
            })
            .and_then(|r| r.collect::<Result<Vec<_>, _>>())
            .map_err(|e| db.error(e))?;
    }
    for run in &mut runs {
        run.nested_updates = nested::run_results(db, run.id).map_err(|e| db.error(e))?;
    }
    let mut stmt = db
        .prepare(
            "SELECT update_id, idx, hive, key, value, action, before, after FROM run_registry_changes
             WHERE run_id = ?1 ORDER BY idx, update_id, position",
        )
        .map_err(|e| db.error(e))?;
    for run in &mut runs {
        let changes = stmt
            .query_map(params![run.id], |r| {
                let hive: String = r.get(2)?;
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u32>(1)?,
                    crate::registry::Applied {
                        hive: crate::registry::Hive::parse(&hive)
                            .unwrap_or(crate::registry::Hive::Software),
                        key: r.get(3)?,
                        value: r.get(4)?,
                        action: r.get(5)?,
                        before: r.get(6)?,
                        after: r.get(7)?,
                    },
                ))
            })
            .and_then(|r| r.collect::<Result<Vec<_>, _>>())
            .map_err(|e| db.error(e))?;
        for (update, index, change) in changes {
            if let Some(u) = run
                .updates
                .iter_mut()
                .find(|u| u.update == update && u.index == index)
            {
                u.registry.push(change);
            }
        }
    }
    Ok(runs)
}

pub fn is_canceled(flag: &AtomicBool) -> bool {
    flag.load(Ordering::Relaxed)
}

/// Records a run that never started (the plan failed, or the admin canceled it while it was
/// only scheduled), so the image's status tells what happened.
pub fn record_unstarted(
    db: &Database,
    image_id: ImageId,
    status: RunStatus,
    message: &str,
) -> Result<RunId, SiteError> {
    let now = crate::fsutil::now_rfc3339();
    db.execute(
        "INSERT INTO servicing_runs (image_id, status, started_at, finished_at, continue_on_error, error)
         VALUES (?1, ?2, ?3, ?3, 0, ?4)",
        params![image_id, status.as_str(), now, message],
    )
    .map_err(|e| db.error(e))?;
    Ok(RunId::new(db.last_insert_rowid()))
}

/// The run of the image that is In progress, if any.
pub fn active_run(db: &Database, image_id: ImageId) -> Result<Option<RunId>, SiteError> {
    use rusqlite::OptionalExtension;
    db.query_row(
        "SELECT id FROM servicing_runs WHERE image_id = ?1 AND status = 'In progress' ORDER BY id DESC LIMIT 1",
        [image_id],
        |r| r.get(0),
    )
    .optional()
    .map_err(|e| db.error(e))
}

/// How the image's last run ended, or `In progress`.
pub fn last_run_status(db: &Database, image_id: ImageId) -> Result<Option<String>, SiteError> {
    use rusqlite::OptionalExtension;
    db.query_row(
        "SELECT status FROM servicing_runs WHERE image_id = ?1 ORDER BY id DESC LIMIT 1",
        [image_id],
        |r| r.get(0),
    )
    .optional()
    .map_err(|e| db.error(e))
}

/// The status of a run by id.
pub fn run_status(
    db: &Database,
    run_id: RunId,
) -> Result<Option<(String, Option<String>)>, SiteError> {
    use rusqlite::OptionalExtension;
    db.query_row(
        "SELECT status, error FROM servicing_runs WHERE id = ?1",
        [run_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
    .map_err(|e| db.error(e))
}
