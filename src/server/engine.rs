//! The server's door into the engine: thin adapters over the engine API (`ois::commands`),
//! which the CLI uses too. They keep the JSON shapes the console reads, name DPs by id, and
//! publish progress on the server's event stream.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use super::events::{ActiveRun, ServerEvent};
use super::problem::ApiError;
use super::AppState;
use crate::commands::{self, UpdateQuery, UpdateSummary};
use crate::distribution::{self, DistributionPoint, DpId, DpOutcome, DpProperties};
use crate::hint::Hint;
use crate::image::{self, Image, ImageId, ImageKind};
use crate::library::ImportOutcome;
use crate::schedule::{self, CancelOutcome, Schedule, ScheduleRequest, SchedulerEvent};
use crate::servicing::{self, recovery::Repair, RunId, RunRecord, ServiceOptions};
use crate::site::Site;

/// An image as the console's list shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImageRow {
    #[schema(value_type = i64)]
    pub id: ImageId,
    pub name: String,
    pub kind: String,
    pub path: String,
    pub size_bytes: u64,
    pub indexes: usize,
    pub scheduled_updates_date: Option<String>,
    pub scheduled_updates_status: String,
    pub provisioning_mode: bool,
    pub provisioning_since: Option<String>,
    pub last_serviced: Option<String>,
    pub last_run_status: Option<String>,
    pub imported_at: String,
}

pub fn image_rows(site: &Site) -> Result<Vec<ImageRow>, ApiError> {
    Ok(commands::list_images(site)?
        .into_iter()
        .map(|s| ImageRow {
            id: s.image.id,
            name: s.image.name,
            kind: s.image.kind.as_str().to_string(),
            path: s.image.path.display().to_string(),
            size_bytes: s.image.size_bytes,
            indexes: s.indexes,
            scheduled_updates_date: s.scheduled_updates_date,
            scheduled_updates_status: s.scheduled_updates_status.as_str().to_string(),
            provisioning_mode: s.provisioning_mode.is_some(),
            provisioning_since: s.provisioning_mode.map(|p| p.since),
            last_serviced: s.image.serviced_at,
            last_run_status: s.last_run_status,
            imported_at: s.image.imported_at,
        })
        .collect())
}

/// The image `key` (id or name, as in the CLI).
pub fn image(site: &Site, key: &str) -> Result<Image, ApiError> {
    commands::find_images(site, &[key.to_string()])?
        .pop()
        .ok_or_else(|| ApiError::not_found(format!("no image {key:?} in the catalog")))
}

pub fn import_image(
    site: &Site,
    path: &Path,
    kind: &str,
    name: Option<&str>,
    nested: &[String],
) -> Result<commands::ImportedImage, ApiError> {
    let kind: ImageKind = kind
        .parse()
        .map_err(|e| ApiError::bad_request(format!("kind: {e}")))?;
    Ok(commands::import_image(site, path, kind, name, nested)?)
}

pub fn image_view(site: &Site, key: &str) -> Result<commands::ImageView, ApiError> {
    Ok(commands::image_view(site, key)?)
}

pub fn image_changes(
    site: &Site,
    key: &str,
    run: Option<RunId>,
) -> Result<commands::RunChanges, ApiError> {
    Ok(commands::image_changes(site, key, run)?)
}

pub fn remove_image(site: &Site, key: &str) -> Result<Image, ApiError> {
    Ok(commands::remove_image(site, key)?)
}

fn query(filter: Option<&str>, arch: Option<&str>) -> Result<UpdateQuery, ApiError> {
    Ok(UpdateQuery {
        filter: filter.map(str::to_string),
        architecture: arch
            .unwrap_or("all")
            .parse()
            .map_err(|e| ApiError::bad_request(format!("arch {e}")))?,
    })
}

/// An update as the console lists it: the engine's summary with its id, title, architecture
/// and classification at the top whatever its kind.
fn update_row(u: &UpdateSummary) -> Value {
    let mut v = serde_json::to_value(u).unwrap_or_default();
    v["id"] = json!(u.id());
    v["kind"] = json!(u.kind().as_str());
    v["title"] = json!(u.title());
    v["architecture"] = json!(u.architecture());
    v["classification"] = json!(u.classification());
    v
}

pub fn updates(
    site: &Site,
    filter: Option<&str>,
    arch: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let query = query(filter, arch)?;
    Ok(commands::list_updates(site, &query)?
        .iter()
        .map(update_row)
        .collect())
}

pub fn update(site: &Site, key: &str) -> Result<Vec<Value>, ApiError> {
    Ok(commands::show_update(site, key)?
        .iter()
        .map(update_row)
        .collect())
}

pub fn applicable(
    site: &Site,
    key: &str,
    filter: Option<&str>,
    arch: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let query = query(filter, arch)?;
    Ok(commands::applicable_updates(site, key, &query)?
        .iter()
        .map(update_row)
        .collect())
}

/// Imports packages already on the server (a path, or an upload landed in the site).
pub fn import_updates(site: &Site, paths: &[PathBuf]) -> Result<Vec<ImportOutcome>, ApiError> {
    Ok(commands::import_updates(site, paths)?)
}

/// Where uploads land before they are imported: inside the site, never in `$TMPDIR`.
pub fn upload_dir(site: &Site) -> PathBuf {
    site.library_dir().join("incoming")
}

pub fn set_schedule(
    site: &Site,
    key: &str,
    request: &ScheduleRequest,
) -> Result<Schedule, ApiError> {
    Ok(commands::schedule_updates(site, key, request)?.schedule)
}

pub fn unschedule(site: &Site, key: &str) -> Result<(), ApiError> {
    commands::unschedule(site, key)?;
    Ok(())
}

/// Services one image now (on the calling, blocking thread), publishing its progress.
pub fn service(
    state: &AppState,
    key: &str,
    selection: servicing::Selection,
    target: servicing::TargetFilter,
    continue_on_error: bool,
    update_dps: bool,
) -> Result<commands::ServiceOutcome, ApiError> {
    let img = image(&state.site, key)?;
    let options = ServiceOptions {
        selection,
        continue_on_error,
        target,
        jobs: 1,
        // Server shutdown cancels the run at its next safe point.
        cancel: state.stop.clone(),
    };
    state.events.publish(ServerEvent::RunStarted {
        image: img.name.clone(),
        source: "api".into(),
    });
    let observer = state.events.observer("api");
    let served = commands::service(&state.site, &[img.id], &options, update_dps, &observer);
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
    Ok(done)
}

pub fn cancel(site: &Site, key: &str, wait: Duration) -> Result<CancelOutcome, ApiError> {
    Ok(commands::cancel(site, key, wait)?.outcome)
}

pub fn repair(site: &Site, key: &str) -> Result<Option<Repair>, ApiError> {
    Ok(commands::leave_provisioning_mode(site, key)?.repair)
}

pub fn runs(site: &Site, key: &str) -> Result<Vec<RunRecord>, ApiError> {
    Ok(commands::image_runs(site, key)?)
}

/// The log file of run `run_id` of image `key`.
pub fn run_log_path(site: &Site, key: &str, run_id: RunId) -> Result<PathBuf, ApiError> {
    let run = runs(site, key)?
        .into_iter()
        .find(|r| r.id == run_id)
        .ok_or_else(|| ApiError::not_found(format!("image {key} has no run {run_id}")))?;
    run.log_path.map(PathBuf::from).ok_or_else(|| {
        ApiError::not_found(format!(
            "run {run_id} of image {key} has no log (it could not be written)"
        ))
    })
}

/// A DP with the id the API names it by. Secret values are never in it, only their names.
#[derive(Debug, Clone, Serialize)]
pub struct DpView {
    pub id: DpId,
    #[serde(flatten)]
    pub dp: DistributionPoint,
}

pub fn dps(site: &Site) -> Result<Vec<DpView>, ApiError> {
    Ok(commands::list_dps(site)?
        .into_iter()
        .map(|dp| DpView { id: dp.id, dp })
        .collect())
}

pub fn dp(site: &Site, id: DpId) -> Result<DistributionPoint, ApiError> {
    commands::list_dps(site)?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or_else(|| {
            ApiError::not_found(format!("no distribution point {id}")).next_step(Hint::ListDps)
        })
}

pub fn dp_show(site: &Site, id: DpId) -> Result<Value, ApiError> {
    let nal = dp(site, id)?.nal_path;
    let view = commands::show_dp(site, &nal)?;
    Ok(json!({"dp": DpView { id: view.dp.id, dp: view.dp }, "distributions": view.distributions}))
}

pub fn dp_add(site: &Site, nal_path: &str, props: &DpProperties) -> Result<DpView, ApiError> {
    let dp = commands::add_dp(site, nal_path, props)?;
    Ok(DpView { id: dp.id, dp })
}

pub fn dp_set(site: &Site, id: DpId, props: &DpProperties) -> Result<DpView, ApiError> {
    let nal = dp(site, id)?.nal_path;
    let dp = commands::set_dp(site, &nal, props)?;
    Ok(DpView { id: dp.id, dp })
}

pub fn dp_remove(site: &Site, id: DpId) -> Result<DistributionPoint, ApiError> {
    let nal = dp(site, id)?.nal_path;
    Ok(commands::remove_dp(site, &nal)?)
}

/// `SetDPMaintenanceMode(NALPath, Mode)` with the mode as given, as the CLI calls it: the
/// engine checks the arguments in the WMI method's order and answers its HRESULTs.
pub fn maintenance_mode(
    site: &Site,
    nal_path: &str,
    mode: &str,
) -> Result<commands::MaintenanceModeSet, commands::MaintenanceModeFailed> {
    commands::set_maintenance_mode(site, nal_path, mode)
}

pub fn validate(site: &Site, id: Option<DpId>) -> Result<Vec<distribution::Validation>, ApiError> {
    let nal = match id {
        Some(id) => Some(dp(site, id)?.nal_path),
        None => None,
    };
    Ok(commands::validate_dps(site, nal.as_deref())?)
}

pub fn retry(site: &Site) -> Result<Vec<DpOutcome>, ApiError> {
    Ok(commands::retry_distributions(site)?)
}

pub fn distribute(
    state: &AppState,
    key: &str,
    dp_ids: &[DpId],
) -> Result<Vec<DpOutcome>, ApiError> {
    let site = &state.site;
    let img = image(site, key)?;
    let nals: Vec<String> = dp_ids
        .iter()
        .map(|d| dp(site, *d).map(|dp| dp.nal_path))
        .collect::<Result<_, _>>()?;
    state.events.publish(ServerEvent::DistributionStarted {
        image: img.name.clone(),
    });
    let outcomes = commands::distribute_image(site, key, &nals, 1)?.outcomes;
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
    key: &str,
    boundary_group: Option<&str>,
) -> Result<Vec<distribution::ContentLocation>, ApiError> {
    Ok(commands::locate_content(site, key, boundary_group)?)
}

/// One run as the dashboard draws it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunPoint {
    #[schema(value_type = i64)]
    pub id: RunId,
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub seconds: Option<f64>,
    pub size_before: Option<u64>,
    pub size_after: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImageRuns {
    #[schema(value_type = i64)]
    pub id: ImageId,
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
    /// Runs of this server (with progress), runs In progress in other processes, and this
    /// server's transfers to DPs (source `transfer to DP`).
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
    running.extend(
        distribution::progress::active()
            .into_iter()
            .map(|t| ActiveRun {
                step: Some(format!("sending {} of {} bytes", t.sent, t.total)),
                percent: Some(super::events::percent(t.sent, t.total)),
                source: format!("transfer to {}", t.dp),
                image: t.image,
            }),
    );
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
    commands::run_scheduler(&state.site, &options, &on_event).map_err(|e| e.to_string())
}
