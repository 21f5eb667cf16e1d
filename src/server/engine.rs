//! The server's only door into the engine: thin adapters over `ois::commands` and the engine
//! modules' public functions, as the CLI calls them. When the engine API gains typed ids and
//! views (`ois::commands::*`), these are re-pointed here and nowhere else.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use super::events::{ActiveRun, ServerEvent};
use super::problem::ApiError;
use super::AppState;
use crate::distribution::{self, DistributionPoint, DpOutcome, DpProperties, Nal};
use crate::image::{self, Image, ImageKind, IndexDetail};
use crate::library::cbs::CbsPackage;
use crate::library::{self, ArchFilter, ContentLibrary, ImportOutcome, PackageKind};
use crate::schedule::{self, scheduler, CancelOutcome, Schedule, ScheduleRequest, SchedulerEvent};
use crate::servicing::{self, recovery::Repair, RunRecord, ServiceOptions};
use crate::site::Site;

/// An image as the console's list shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImageRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub path: String,
    pub size_bytes: u64,
    pub scheduled_updates_date: Option<String>,
    pub scheduled_updates_status: String,
    pub provisioning_mode: bool,
    pub provisioning_since: Option<String>,
    pub last_serviced: Option<String>,
    pub imported_at: String,
}

pub fn image_rows(site: &Site) -> Result<Vec<ImageRow>, ApiError> {
    let db = site.database()?;
    let mut rows = Vec::new();
    for img in image::list(&db)? {
        let (status, next) = schedule::status(&db, img.id)?;
        let provisioning = servicing::lease::current(&db, img.id).map_err(|e| db.error(e))?;
        rows.push(ImageRow {
            id: img.id,
            name: img.name,
            kind: img.kind.as_str().to_string(),
            path: img.path.display().to_string(),
            size_bytes: img.size_bytes,
            scheduled_updates_date: next,
            scheduled_updates_status: status.as_str().to_string(),
            provisioning_mode: provisioning.is_some(),
            provisioning_since: provisioning.map(|p| p.since),
            last_serviced: img.serviced_at,
            imported_at: img.imported_at,
        });
    }
    Ok(rows)
}

pub fn image(site: &Site, id: i64) -> Result<Image, ApiError> {
    Ok(image::get(&site.database()?, id)?)
}

pub fn import_image(
    site: &Site,
    path: &Path,
    kind: &str,
    name: Option<&str>,
) -> Result<(Image, Vec<IndexDetail>), ApiError> {
    let kind: ImageKind = kind
        .parse()
        .map_err(|e| ApiError::bad_request(format!("kind: {e}")))?;
    let mut db = site.database()?;
    Ok(image::import(site, &mut db, path, kind, name)?)
}

pub fn image_view(site: &Site, id: i64) -> Result<crate::commands::ImageView, ApiError> {
    let img = image(site, id)?;
    Ok(crate::commands::image_view(site, &img.id.to_string())?)
}

pub fn remove_image(site: &Site, id: i64) -> Result<Image, ApiError> {
    let db = site.database()?;
    let img = image::get(&db, id)?;
    image::remove(&db, &img)?;
    Ok(img)
}

fn arch(text: Option<&str>) -> Result<ArchFilter, ApiError> {
    text.unwrap_or("all")
        .parse()
        .map_err(|e| ApiError::bad_request(format!("arch {e}")))
}

fn file_update_row(u: &library::Update) -> Value {
    let mut v = serde_json::to_value(u).unwrap_or_default();
    v["kind"] = json!(PackageKind::File.as_str());
    v["id"] = json!(u.id());
    v["title"] = json!(u.manifest.title);
    v["architecture"] = json!(u.manifest.architecture.to_string());
    v["classification"] = json!(u.manifest.classification);
    v
}

fn windows_row(p: &CbsPackage) -> Value {
    let mut v = serde_json::to_value(p).unwrap_or_default();
    v["id"] = json!(p.id());
    v["kind"] = json!(PackageKind::Cbs.as_str());
    v["title"] = json!(format!("{} {}", p.kind.label(), p.identity));
    v
}

fn windows_listed(p: &CbsPackage, filter: Option<&str>, arch: ArchFilter) -> bool {
    p.matches_text(filter)
        && match p.arch_filter_value() {
            Some(a) => arch.matches(a),
            None => arch == ArchFilter::All,
        }
}

pub fn updates(
    site: &Site,
    filter: Option<&str>,
    arch_text: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let arch = arch(arch_text)?;
    let db = site.database()?;
    let library = ContentLibrary::new(site);
    let mut rows: Vec<Value> = library
        .list(&db, filter, arch)?
        .iter()
        .map(file_update_row)
        .collect();
    rows.extend(
        library
            .windows_packages(&db)?
            .iter()
            .filter(|p| windows_listed(p, filter, arch))
            .map(windows_row),
    );
    Ok(rows)
}

pub fn update(site: &Site, key: &str) -> Result<Vec<Value>, ApiError> {
    let db = site.database()?;
    let library = ContentLibrary::new(site);
    let mut rows: Vec<Value> = library
        .all(&db)?
        .iter()
        .filter(|u| u.id().eq_ignore_ascii_case(key.trim()))
        .map(|u| {
            let mut v = file_update_row(u);
            v["files"] = json!(u.files);
            v
        })
        .collect();
    rows.extend(
        library
            .windows_packages(&db)?
            .iter()
            .filter(|p| p.is_named(key))
            .map(windows_row),
    );
    if rows.is_empty() {
        return Err(library::LibraryError::UnknownUpdate(key.to_string()).into());
    }
    Ok(rows)
}

pub fn applicable(
    site: &Site,
    id: i64,
    filter: Option<&str>,
    arch_text: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let arch = arch(arch_text)?;
    let db = site.database()?;
    let img = image::get(&db, id)?;
    let indexes = image::indexes(&db, &img)?;
    let library = ContentLibrary::new(site);
    let all = library.all(&db)?;
    let windows = library.windows_packages(&db)?;
    let mut rows: Vec<Value> = servicing::applicable(&indexes, &all)
        .into_iter()
        .filter(|u| {
            arch.matches(u.manifest.architecture) && library::matches_text(&u.manifest, filter)
        })
        .map(file_update_row)
        .collect();
    rows.extend(
        servicing::plan::windows::applicable(&indexes, &windows)
            .into_iter()
            .filter(|p| windows_listed(p, filter, arch))
            .map(windows_row),
    );
    Ok(rows)
}

/// Imports packages already on the server (a path, or an upload landed in the site).
pub fn import_updates(site: &Site, paths: &[PathBuf]) -> Result<Vec<ImportOutcome>, ApiError> {
    let mut db = site.database()?;
    let library = ContentLibrary::new(site);
    let outcomes = library.import(&mut db, paths)?;
    // As `ois update import`: payloads compressed once, here, for the registered images.
    let compressions = image::compressions(&db)?;
    if !compressions.is_empty() {
        for u in library.all(&db)? {
            if outcomes.iter().any(|o| o.id.eq_ignore_ascii_case(u.id())) {
                if let Err(e) = library.prepare_compressed(&db, &u, &compressions) {
                    tracing::warn!(
                        "update {}: payload not compressed ahead ({e}); servicing will",
                        u.id()
                    );
                }
            }
        }
    }
    Ok(outcomes)
}

/// Where uploads land before they are imported: inside the site, never in `$TMPDIR`.
pub fn upload_dir(site: &Site) -> PathBuf {
    site.library_dir().join("incoming")
}

pub fn set_schedule(site: &Site, id: i64, request: &ScheduleRequest) -> Result<Schedule, ApiError> {
    let db = site.database()?;
    let img = image::get(&db, id)?;
    Ok(schedule::set(&db, &img, request)?)
}

pub fn unschedule(site: &Site, id: i64) -> Result<(), ApiError> {
    let db = site.database()?;
    let img = image::get(&db, id)?;
    Ok(schedule::remove(&db, &img)?)
}

/// Services one image now (on the calling, blocking thread), publishing its progress.
pub fn service(
    state: &AppState,
    id: i64,
    selection: servicing::Selection,
    continue_on_error: bool,
    update_dps: bool,
) -> Result<Value, ApiError> {
    let img = image(&state.site, id)?;
    let options = ServiceOptions {
        selection,
        continue_on_error,
        jobs: 1,
        // Server shutdown cancels the run at its next safe point.
        cancel: state.stop.clone(),
    };
    state.events.publish(ServerEvent::RunStarted {
        image: img.name.clone(),
        source: "api".into(),
    });
    let observer = state.events.observer("api");
    let served = crate::commands::service(
        &state.site,
        &[img.id.to_string()],
        &options,
        update_dps,
        &observer,
    );
    let mut outcomes = match served {
        Ok(o) => o,
        Err(e) => {
            state.events.publish(ServerEvent::RunFinished {
                image: img.name.clone(),
                status: "Failed".into(),
                run_id: None,
            });
            return Err(e.into());
        }
    };
    let Some(done) = outcomes.pop() else {
        return Err(ApiError::internal(format!(
            "servicing image {} returned no outcome",
            img.name
        )));
    };
    // The observer saw no Finished when nothing ran (nothing applicable).
    state.events.publish(ServerEvent::RunFinished {
        image: img.name.clone(),
        status: done.outcome.status.as_str().into(),
        run_id: done.outcome.run_id,
    });
    let mut v = serde_json::to_value(&done.outcome).unwrap_or_default();
    if let Some(d) = done.distributed {
        v["distribution"] = match d {
            Ok(outcomes) => json!(outcomes),
            Err(e) => json!({"error": e.to_string()}),
        };
    }
    Ok(v)
}

pub fn cancel(site: &Site, id: i64, wait: Duration) -> Result<CancelOutcome, ApiError> {
    let img = image(site, id)?;
    Ok(schedule::cancel(site, &img, wait)?)
}

pub fn repair(site: &Site, id: i64) -> Result<Option<Repair>, ApiError> {
    let img = image(site, id)?;
    Ok(schedule::leave_provisioning_mode(site, &img)?)
}

pub fn runs(site: &Site, id: i64) -> Result<Vec<RunRecord>, ApiError> {
    let db = site.database()?;
    let img = image::get(&db, id)?;
    Ok(servicing::history(&db, img.id)?)
}

/// The log file of run `run_id` of image `id`.
pub fn run_log_path(site: &Site, id: i64, run_id: i64) -> Result<PathBuf, ApiError> {
    let run = runs(site, id)?
        .into_iter()
        .find(|r| r.id == run_id)
        .ok_or_else(|| ApiError::not_found(format!("image {id} has no run {run_id}")))?;
    run.log_path.map(PathBuf::from).ok_or_else(|| {
        ApiError::not_found(format!(
            "run {run_id} of image {id} has no log (it could not be written)"
        ))
    })
}

/// A DP with the id the API names it by. Secret values are never in it, only their names.
#[derive(Debug, Clone, Serialize)]
pub struct DpView {
    pub id: i64,
    #[serde(flatten)]
    pub dp: DistributionPoint,
}

pub fn dps(site: &Site) -> Result<Vec<DpView>, ApiError> {
    Ok(distribution::list(site)?
        .into_iter()
        .map(|dp| DpView { id: dp.id, dp })
        .collect())
}

pub fn dp(site: &Site, id: i64) -> Result<DistributionPoint, ApiError> {
    distribution::list(site)?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or_else(|| {
            ApiError::not_found(format!("no distribution point {id}: see GET /api/v1/dps"))
        })
}

pub fn dp_show(site: &Site, id: i64) -> Result<Value, ApiError> {
    let dp = dp(site, id)?;
    let (dp, distributions) = distribution::show(site, &dp.nal_path)?;
    Ok(json!({"dp": DpView { id: dp.id, dp }, "distributions": distributions}))
}

pub fn dp_add(site: &Site, nal_path: &str, props: &DpProperties) -> Result<DpView, ApiError> {
    let dp = distribution::add(site, nal_path, props)?;
    Ok(DpView { id: dp.id, dp })
}

pub fn dp_set(site: &Site, id: i64, props: &DpProperties) -> Result<DpView, ApiError> {
    let nal = dp(site, id)?.nal_path;
    let dp = distribution::set(site, &nal, props)?;
    Ok(DpView { id: dp.id, dp })
}

pub fn dp_remove(site: &Site, id: i64) -> Result<DistributionPoint, ApiError> {
    let nal = dp(site, id)?.nal_path;
    Ok(distribution::remove(site, &nal)?)
}

/// `SetDPMaintenanceMode`, then (mode 0) what was waiting for the DP is sent, as the CLI does.
pub fn maintenance_mode(
    site: &Site,
    nal_path: &str,
    mode: u32,
) -> Result<(distribution::MaintenanceChange, Vec<DpOutcome>), distribution::DistributionError> {
    Nal::parse(nal_path).map_err(distribution::DistributionError::MalformedNal)?;
    let change = distribution::change_maintenance_mode(site, nal_path, mode)?;
    let sent = if change.mode == 0 {
        distribution::send_pending(site, nal_path)?
    } else {
        Vec::new()
    };
    Ok((change, sent))
}

pub fn validate(site: &Site, id: Option<i64>) -> Result<Vec<distribution::Validation>, ApiError> {
    let nal = match id {
        Some(id) => Some(dp(site, id)?.nal()),
        None => None,
    };
    Ok(distribution::validate(site, nal.as_ref())?)
}

pub fn retry(site: &Site) -> Result<Vec<DpOutcome>, ApiError> {
    Ok(distribution::retry_due(site)?)
}

pub fn distribute(state: &AppState, id: i64, dp_ids: &[i64]) -> Result<Vec<DpOutcome>, ApiError> {
    let site = &state.site;
    let img = image(site, id)?;
    let nals: Vec<Nal> = dp_ids
        .iter()
        .map(|d| dp(site, *d).map(|dp| dp.nal()))
        .collect::<Result<_, _>>()?;
    state.events.publish(ServerEvent::DistributionStarted {
        image: img.name.clone(),
    });
    let outcomes = distribution::distribute_image(
        site,
        img.id,
        (!nals.is_empty()).then_some(nals.as_slice()),
    )?;
    state.events.publish(ServerEvent::DistributionFinished {
        image: img.name.clone(),
        outcomes: outcomes.clone(),
    });
    if outcomes.is_empty() {
        return Err(ApiError::bad_request(format!(
            "image {} is on no distribution point and assigned to none: name DPs in \"dps\"",
            img.name
        )));
    }
    Ok(outcomes)
}

pub fn locate(
    site: &Site,
    id: i64,
    boundary_group: Option<&str>,
) -> Result<Vec<distribution::ContentLocation>, ApiError> {
    let img = image(site, id)?;
    Ok(distribution::locate(
        site,
        &img.id.to_string(),
        boundary_group,
    )?)
}

/// One run as the dashboard draws it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunPoint {
    pub id: i64,
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub seconds: Option<f64>,
    pub size_before: Option<u64>,
    pub size_after: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImageRuns {
    pub id: i64,
    pub name: String,
    /// The last runs, oldest first (a chart's x axis).
    pub runs: Vec<RunPoint>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Dashboard {
    pub images: Vec<ImageRuns>,
    pub runs_by_status: BTreeMap<String, usize>,
    /// `Maintenance mode` / `Active` DPs, and distributions by status.
    pub dps_by_state: BTreeMap<String, usize>,
    /// Runs of this server (with progress) and runs In progress in other processes.
    pub running: Vec<ActiveRun>,
}

fn seconds_between(a: &str, b: &str) -> Option<f64> {
    let a = chrono::DateTime::parse_from_rfc3339(a).ok()?;
    let b = chrono::DateTime::parse_from_rfc3339(b).ok()?;
    Some((b - a).num_milliseconds() as f64 / 1000.0)
}

pub fn dashboard(state: &AppState, last: usize) -> Result<Dashboard, ApiError> {
    let site = &state.site;
    let db = site.database()?;
    let mut running = state.events.active();
    let mut images = Vec::new();
    let mut runs_by_status = BTreeMap::new();
    for img in image::list(&db)? {
        let history = servicing::history(&db, img.id)?;
        for r in &history {
            *runs_by_status.entry(r.status.clone()).or_insert(0) += 1;
        }
        if history
            .iter()
            .any(|r| r.status == servicing::RunStatus::InProgress.as_str())
            && !running.iter().any(|a| a.image == img.name)
        {
            running.push(ActiveRun {
                image: img.name.clone(),
                source: "another process".into(),
                step: None,
                percent: None,
            });
        }
        let mut runs: Vec<RunPoint> = history
            .into_iter()
            .take(last)
            .map(|r| RunPoint {
                seconds: r
                    .finished_at
                    .as_deref()
                    .and_then(|f| seconds_between(&r.started_at, f)),
                id: r.id,
                status: r.status,
                started_at: r.started_at,
                finished_at: r.finished_at,
                size_before: r.size_before,
                size_after: r.size_after,
            })
            .collect();
        runs.reverse();
        images.push(ImageRuns {
            id: img.id,
            name: img.name,
            runs,
        });
    }
    drop(db);
    let mut dps_by_state = BTreeMap::new();
    for dp in distribution::list(site)? {
        let state = if dp.maintenance_mode {
            "Maintenance mode"
        } else {
            "Active"
        };
        *dps_by_state.entry(state.to_string()).or_insert(0) += 1;
        for d in distribution::show(site, &dp.nal_path)?.1 {
            *dps_by_state
                .entry(d.status.as_str().to_string())
                .or_insert(0) += 1;
        }
    }
    Ok(Dashboard {
        images,
        runs_by_status,
        dps_by_state,
        running,
    })
}

/// The scheduler, in this process, until the server stops; its progress on the event stream.
pub fn run_scheduler(state: &AppState, jobs: usize) -> Result<(), String> {
    let options = schedule::SchedulerOptions {
        once: false,
        jobs,
        stop: state.stop.clone(),
    };
    let events = state.events.clone();
    let observer = events.observer("scheduler");
    let on_event = |event: SchedulerEvent| match event {
        SchedulerEvent::RunStarted { image, .. } => events.publish(ServerEvent::RunStarted {
            image,
            source: "scheduler".into(),
        }),
        SchedulerEvent::Progress { image, event } => observer(&image, event),
        SchedulerEvent::RunFinished(o) => events.publish(ServerEvent::RunFinished {
            image: o.image,
            status: o.status.as_str().into(),
            run_id: o.run_id,
        }),
        SchedulerEvent::RunNotStarted { image, error } => {
            events.publish(ServerEvent::RunFinished {
                image: image.clone(),
                status: "Failed".into(),
                run_id: None,
            });
            events.publish(ServerEvent::Error {
                message: format!("{image}: the scheduled run could not start: {error}"),
            })
        }
        SchedulerEvent::Repaired(r) => events.publish(ServerEvent::Repaired {
            image: r.image,
            reason: r.reason,
        }),
        SchedulerEvent::Distributed(outcomes) => {
            if let Some(first) = outcomes.first() {
                events.publish(ServerEvent::DistributionFinished {
                    image: first.image.clone(),
                    outcomes,
                })
            }
        }
        SchedulerEvent::Validated(results) => events.publish(ServerEvent::ValidationFinished {
            checked: results.len(),
            failed: results.iter().filter(|v| !v.ok).count(),
        }),
        SchedulerEvent::Error(message) => events.publish(ServerEvent::Error { message }),
    };
    scheduler::run(&state.site, &options, &on_event).map_err(|e| e.to_string())
}
