//! The scheduler: runs due servicing, several images at once, and heals images left in
//! provisioning mode. Several schedulers may run on one site: each claims a due schedule with
//! one conditional UPDATE in the site database, so an image is serviced once per due run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rusqlite::params;

use super::{timing, Schedule, ScheduleError, Timing};
use crate::distribution::{self, DpOutcome, Validation};
use crate::image::{self, ImageId};
use crate::servicing::lease::{self, Owner};
use crate::servicing::recovery::{self, Repair, Trigger};
use crate::servicing::{self, ImageOutcome, RunStatus, ServiceOptions};
use crate::site::{Database, Site, SiteError};

/// How often the scheduler looks at the site database.
const TICK: Duration = Duration::from_millis(250);

/// How often failed or waiting distributions are retried (each has its own backoff too).
const DISTRIBUTION_RETRY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Do what is due now, then return.
    pub once: bool,
    /// Images serviced at once.
    pub jobs: usize,
    /// Set by SIGINT/SIGTERM: claim nothing more, cancel active runs (they roll back), return.
    pub stop: Arc<AtomicBool>,
}

#[derive(Debug)]
pub enum SchedulerEvent {
    RunStarted {
        image: String,
        schedule: Schedule,
    },
    /// A scheduled run's progress (a front end shows it live).
    Progress {
        image: String,
        event: servicing::RunEvent,
    },
    RunFinished(ImageOutcome),
    /// A scheduled run that could not start (for example an update no longer in the library).
    RunNotStarted {
        image: String,
        error: String,
    },
    Repaired(Repair),
    /// The serviced image went to the distribution points (`--update-dps`), or a retry ran.
    Distributed(Vec<DpOutcome>),
    /// Scheduled content validation (`content_validation_cron`) ran.
    Validated(Vec<Validation>),
    Error(String),
}

/// The result of one scheduled run, handed from its thread to the loop.
struct Finished {
    schedule: Schedule,
    image: String,
    outcome: Option<ImageOutcome>,
    distributed: Option<Result<Vec<DpOutcome>, String>>,
}

pub fn run(
    site: &Site,
    options: &SchedulerOptions,
    on_event: &(dyn Fn(SchedulerEvent) + Sync),
) -> Result<(), ScheduleError> {
    let db = site.database()?;
    let config = site.config();
    let started = Utc::now();
    let mut next_timeout_check = Instant::now();
    let validation = config
        .content_validation_cron
        .as_deref()
        .map(|expression| Timing::Cron {
            expression: expression.to_string(),
        });
    let mut next_validation = match &validation {
        Some(t) => t.first().map_err(|message| ScheduleError::Invalid {
            image: "(site.toml content_validation_cron)".into(),
            message,
        })?,
        None => None,
    };
    let mut next_retry = Instant::now() + DISTRIBUTION_RETRY;
    tracing::info!(
        "scheduler started (process {}, {} image(s) at once{})",
        std::process::id(),
        options.jobs,
        if options.once { ", once" } else { "" }
    );
    std::thread::scope(|scope| -> Result<(), ScheduleError> {
        let mut active: Vec<std::thread::ScopedJoinHandle<'_, Finished>> = Vec::new();
        // Validation and retries re-read or send whole images: off the loop, one at a time.
        let mut background: Option<std::thread::ScopedJoinHandle<'_, SchedulerEvent>> = None;
        loop {
            let stopping = options.stop.load(Ordering::Relaxed);
            let mut still_running = Vec::new();
            for handle in active.drain(..) {
                if !handle.is_finished() {
                    still_running.push(handle);
                    continue;
                }
                match handle.join() {
                    Ok(done) => complete(&db, done, stopping, on_event)?,
                    Err(_) => on_event(SchedulerEvent::Error(
                        "a servicing thread panicked; its image may need `ois image set-provisioning-mode IMAGE false`".into(),
                    )),
                }
            }
            active = still_running;
            if background.as_ref().is_some_and(|h| h.is_finished()) {
                if let Some(Ok(event)) = background.take().map(|h| h.join()) {
                    on_event(event);
                }
            }
            if stopping {
                if active.is_empty() && background.is_none() {
                    break;
                }
                std::thread::sleep(TICK);
                continue;
            }

            let check_timeouts = Instant::now() >= next_timeout_check;
            if check_timeouts {
                next_timeout_check = Instant::now() + config.provisioning_check_interval();
            }
            repair_stuck(site, &db, check_timeouts, on_event)?;
            release_stale_claims(&db, config.provisioning_max_age())?;

            let now = if options.once { started } else { Utc::now() };
            let mut claimed_any = false;
            for schedule in super::due(&db, now)? {
                if active.len() >= options.jobs.max(1) {
                    break;
                }
                if !claim(&db, &schedule, now)? {
                    continue;
                }
                claimed_any = true;
                let img = image::get(&db, schedule.image_id)?;
                on_event(SchedulerEvent::RunStarted {
                    image: img.name.clone(),
                    schedule: schedule.clone(),
                });
                let stop = options.stop.clone();
                active
                    .push(scope.spawn(move || {
                        service_scheduled(site, schedule, img.name, stop, on_event)
                    }));
            }
            if background.is_none() {
                if next_validation.is_some_and(|t| t <= Utc::now()) {
                    next_validation = validation
                        .as_ref()
                        .and_then(|t| t.following(Utc::now()).ok().flatten());
                    background = Some(scope.spawn(|| validate_content(site)));
                } else if !options.once && Instant::now() >= next_retry {
                    next_retry = Instant::now() + DISTRIBUTION_RETRY;
                    background = Some(scope.spawn(|| retry_distributions(site)));
                }
            }
            if options.once && active.is_empty() && !claimed_any && background.is_none() {
                break;
            }
            std::thread::sleep(TICK);
        }
        Ok(())
    })?;
    tracing::info!("scheduler stopped");
    Ok(())
}

fn service_scheduled(
    site: &Site,
    schedule: Schedule,
    image: String,
    stop: Arc<AtomicBool>,
    on_event: &(dyn Fn(SchedulerEvent) + Sync),
) -> Finished {
    let options = ServiceOptions {
        selection: schedule.updates.clone(),
        continue_on_error: schedule.continue_on_error,
        target: schedule.target,
        jobs: 1,
        cancel: stop,
    };
    // Only a successful run has a new version worth sending.
    let served = crate::commands::service(
        site,
        &[schedule.image_id],
        &options,
        schedule.update_dps,
        &|image, event| {
            on_event(SchedulerEvent::Progress {
                image: image.to_string(),
                event,
            })
        },
    );
    let (outcome, distributed) = match served {
        Ok(mut outcomes) => match outcomes.pop() {
            Some(done) => {
                let distributed = match (done.distributed, done.distribution_error) {
                    (_, Some(e)) => Some(Err(e)),
                    (sent, None) => sent.map(Ok),
                };
                (Some(done.outcome), distributed)
            }
            None => (None, None),
        },
        Err(e) => {
            tracing::error!("scheduled servicing of image {image} could not start: {e}");
            let recorded = site.database().and_then(|db| {
                servicing::record_unstarted(
                    &db,
                    schedule.image_id,
                    RunStatus::Failed,
                    &e.to_string(),
                )
            });
            if let Err(r) = recorded {
                tracing::error!("cannot record the failed start of image {image}: {r}");
            }
            (None, None)
        }
    };
    Finished {
        schedule,
        image,
        outcome,
        distributed,
    }
}

fn validate_content(site: &Site) -> SchedulerEvent {
    tracing::info!("scheduled content validation of every distribution point");
    match distribution::validate(site, None) {
        Ok(results) => SchedulerEvent::Validated(results),
        Err(e) => SchedulerEvent::Error(format!("content validation failed: {e}")),
    }
}

fn retry_distributions(site: &Site) -> SchedulerEvent {
    match distribution::retry_due(site) {
        Ok(outcomes) => SchedulerEvent::Distributed(outcomes),
        Err(e) => SchedulerEvent::Error(format!("retrying distributions failed: {e}")),
    }
}

/// Claims a due schedule for this process; false when another scheduler was first or the
/// image is busy (a manual run holds provisioning mode: the schedule waits for it).
fn claim(
    db: &Database,
    schedule: &Schedule,
    now: chrono::DateTime<Utc>,
) -> Result<bool, SiteError> {
    if lease::current(db, schedule.image_id)
        .map_err(|e| db.error(e))?
        .is_some()
    {
        return Ok(false);
    }
    let n = db
        .execute(
            "UPDATE schedules SET claimed_pid = ?2, claimed_host = ?3, claimed_at = ?4
             WHERE image_id = ?1 AND claimed_pid IS NULL AND next_run_at IS NOT NULL AND next_run_at <= ?5",
            params![
                schedule.image_id,
                std::process::id(),
                lease::host_name(),
                timing::stamp(Utc::now()),
                timing::stamp(now)
            ],
        )
        .map_err(|e| db.error(e))?;
    Ok(n == 1)
}

/// After a run: a one-time schedule is done, a recurring one moves to its next time. A run
/// canceled because the scheduler is stopping keeps its schedule, to run at the next start.
fn complete(
    db: &Database,
    done: Finished,
    stopping: bool,
    on_event: &(dyn Fn(SchedulerEvent) + Sync),
) -> Result<(), ScheduleError> {
    let canceled = done
        .outcome
        .as_ref()
        .is_none_or(|o| o.status == RunStatus::Canceled);
    let image_id = done.schedule.image_id;
    let mut run_id = done.outcome.as_ref().and_then(|o| o.run_id);
    match &done.outcome {
        Some(o) => {
            if o.run_id.is_none() && o.status == RunStatus::Successful {
                // Nothing was applicable: say so in the history, or the month's run is invisible.
                run_id = Some(servicing::record_unstarted(
                    db,
                    image_id,
                    RunStatus::Successful,
                    o.error.as_deref().unwrap_or("nothing to apply"),
                )?);
            }
            on_event(SchedulerEvent::RunFinished(o.clone()));
        }
        None => on_event(SchedulerEvent::RunNotStarted {
            image: done.image.clone(),
            error: "see the run in `ois image show`".into(),
        }),
    }
    match &done.distributed {
        Some(Ok(outcomes)) => on_event(SchedulerEvent::Distributed(outcomes.clone())),
        Some(Err(e)) => on_event(SchedulerEvent::Error(format!(
            "image {}: distribution after servicing failed: {e}",
            done.image
        ))),
        None => {}
    }
    let mine = "image_id = ?1 AND claimed_pid = ?2 AND claimed_host = ?3";
    let me = (image_id, std::process::id(), lease::host_name());
    if stopping && canceled {
        db.execute(
            &format!("UPDATE schedules SET claimed_pid = NULL, claimed_host = NULL, claimed_at = NULL WHERE {mine}"),
            params![me.0, me.1, me.2],
        )
        .map_err(|e| db.error(e))?;
        return Ok(());
    }
    let due = done
        .schedule
        .next_run_at
        .as_deref()
        .and_then(timing::parse_stamp)
        .unwrap_or_else(Utc::now);
    let following = done.schedule.timing.following(due).unwrap_or(None);
    match following {
        None => db.execute(
            &format!("DELETE FROM schedules WHERE {mine}"),
            params![me.0, me.1, me.2],
        ),
        Some(next) => db.execute(
            &format!(
                "UPDATE schedules SET next_run_at = ?4, last_run_id = ?5, claimed_pid = NULL,
                 claimed_host = NULL, claimed_at = NULL WHERE {mine}"
            ),
            params![me.0, me.1, me.2, timing::stamp(next), run_id],
        ),
    }
    .map_err(|e| db.error(e))?;
    Ok(())
}

/// Repairs images whose run's process is gone (at once) or that passed the provisioning
/// timeout (when `check_timeouts`), then lets their schedule run again.
fn repair_stuck(
    site: &Site,
    db: &Database,
    check_timeouts: bool,
    on_event: &(dyn Fn(SchedulerEvent) + Sync),
) -> Result<(), ScheduleError> {
    let max_age = site.config().provisioning_max_age();
    // Runs left In progress without provisioning mode by a process that is gone.
    for image_id in recovery::images_with_orphaned_runs(db).map_err(|e| db.error(e))? {
        if lease::current(db, image_id)
            .map_err(|e| db.error(e))?
            .is_some()
        {
            continue;
        }
        let img = image::get(db, image_id)?;
        match recovery::repair(site, &img, Trigger::OwnerGone) {
            Ok(Some(repair)) => on_event(SchedulerEvent::Repaired(repair)),
            Ok(None) => {}
            Err(e) => on_event(SchedulerEvent::Error(format!(
                "cannot repair image {}: {e}",
                img.name
            ))),
        }
    }
    for (image_id, mode) in lease::all(db).map_err(|e| db.error(e))? {
        // This scheduler's own runs are progressing under its eyes (a run here may take
        // longer than a short timeout); the timeout is for runs of processes it cannot see.
        if mode.owner_pid == std::process::id() && mode.owner_host == lease::host_name() {
            continue;
        }
        let trigger = if mode.owner() == Owner::Gone {
            Trigger::OwnerGone
        } else if check_timeouts && mode.age() > max_age {
            Trigger::Timeout {
                max_minutes: max_age.as_secs_f64() / 60.0,
            }
        } else {
            continue;
        };
        let img = image::get(db, image_id)?;
        match recovery::repair(site, &img, trigger) {
            Ok(Some(repair)) => {
                release_claim(db, image_id)?;
                on_event(SchedulerEvent::Repaired(repair));
            }
            Ok(None) => {}
            Err(e) => on_event(SchedulerEvent::Error(format!(
                "cannot repair image {}: {e}",
                img.name
            ))),
        }
    }
    Ok(())
}

pub(super) fn release_claim(db: &Database, image_id: ImageId) -> Result<(), SiteError> {
    db.execute(
        "UPDATE schedules SET claimed_pid = NULL, claimed_host = NULL, claimed_at = NULL WHERE image_id = ?1",
        [image_id],
    )
    .map_err(|e| db.error(e))?;
    Ok(())
}

/// A claim whose scheduler died before its run entered provisioning mode would hold the
/// schedule forever: release it when its process is gone, or, on another host, when it is
/// older than the provisioning timeout.
fn release_stale_claims(db: &Database, max_age: Duration) -> Result<(), SiteError> {
    let mut stmt = db
        .prepare(
            "SELECT s.image_id, s.claimed_pid, s.claimed_host, s.claimed_at FROM schedules s
             WHERE s.claimed_pid IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM provisioning p WHERE p.image_id = s.image_id)",
        )
        .map_err(|e| db.error(e))?;
    let claims = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, ImageId>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(|e| db.error(e))?;
    for (image_id, pid, host, at) in claims {
        let stale = if host == lease::host_name() {
            lease::process_state(pid, &at) == Owner::Gone
        } else {
            timing::parse_stamp(&at)
                .and_then(|t| (Utc::now() - t).to_std().ok())
                .is_some_and(|age| age > max_age)
        };
        if stale {
            tracing::warn!("releasing the schedule of image {image_id}: its scheduler (process {pid} on {host}) is gone");
            release_claim(db, image_id)?;
        }
    }
    Ok(())
}
