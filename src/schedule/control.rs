//! What an admin does to a running or scheduled image: cancel it, or take it out of
//! provisioning mode after a run that died.

use std::time::{Duration, Instant};

use rusqlite::params;
use serde::Serialize;

use super::{scheduler, timing, ScheduleError, Timing};
use crate::image::Image;
use crate::servicing::lease::{self, Owner};
use crate::servicing::recovery::{self, Repair, Trigger};
use crate::servicing::{self, cancel as run_cancel, RunId, RunStatus};
use crate::site::Site;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "canceled", rename_all = "snake_case")]
pub enum CancelOutcome {
    /// The run stopped; `status` is how it ended (a run past its last safe point finishes).
    Run {
        run_id: RunId,
        status: String,
        message: Option<String>,
    },
    /// The run was asked to stop and had not yet when the wait ended.
    Requested { run_id: RunId },
    /// Only scheduled: the pending run was dropped; a recurring schedule moves to its next time.
    Scheduled {
        run_id: RunId,
        next_run_at: Option<String>,
    },
}

/// Cancels the image's run in progress (from any process), waiting up to `wait` for it to
/// stop; or drops its pending scheduled run.
pub fn cancel(site: &Site, img: &Image, wait: Duration) -> Result<CancelOutcome, ScheduleError> {
    let db = site.database()?;
    if let Some(run_id) = servicing::active_run(&db, img.id)? {
        if let Some(mode) = lease::current(&db, img.id).map_err(|e| db.error(e))? {
            if mode.run_id == Some(run_id) && mode.owner() == Owner::Gone {
                return Err(ScheduleError::OwnerGone {
                    image: img.name.clone(),
                    run_id,
                    pid: mode.owner_pid,
                });
            }
        }
        run_cancel::request(&db, run_id).map_err(|e| db.error(e))?;
        tracing::warn!("image {}: cancel of run {run_id} requested", img.name);
        let deadline = Instant::now() + wait;
        loop {
            match servicing::run_status(&db, run_id)? {
                Some((status, message)) if status != RunStatus::InProgress.as_str() => {
                    return Ok(CancelOutcome::Run {
                        run_id,
                        status,
                        message,
                    })
                }
                _ if Instant::now() >= deadline => return Ok(CancelOutcome::Requested { run_id }),
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
    let Some(schedule) = super::get(&db, img.id)? else {
        return Err(ScheduleError::NothingToCancel(img.name.clone()));
    };
    let next = match &schedule.timing {
        Timing::Once { .. } => None,
        Timing::Cron { .. } => {
            let due = schedule
                .next_run_at
                .as_deref()
                .and_then(timing::parse_stamp)
                .unwrap_or_else(chrono::Utc::now);
            schedule.timing.following(due).unwrap_or(None)
        }
    };
    let tx = db.unchecked_transaction().map_err(|e| db.error(e))?;
    match next {
        None => tx.execute("DELETE FROM schedules WHERE image_id = ?1", [img.id]),
        Some(t) => tx.execute(
            "UPDATE schedules SET next_run_at = ?2 WHERE image_id = ?1",
            params![img.id, timing::stamp(t)],
        ),
    }
    .map_err(|e| db.error(e))?;
    let run_id = servicing::record_unstarted(
        &db,
        img.id,
        RunStatus::Canceled,
        "the scheduled run was canceled before it started",
    )?;
    tx.commit().map_err(|e| db.error(e))?;
    tracing::warn!("image {}: pending scheduled run canceled", img.name);
    Ok(CancelOutcome::Scheduled {
        run_id,
        next_run_at: next.map(timing::stamp),
    })
}

/// `ois image set-provisioning-mode IMAGE false`: the whole repair, then the image's schedule
/// may run again. `None` when the image was not in provisioning mode.
pub fn leave_provisioning_mode(site: &Site, img: &Image) -> Result<Option<Repair>, ScheduleError> {
    let repair = recovery::repair(site, img, Trigger::Admin)?;
    if repair.is_some() {
        let db = site.database()?;
        scheduler::release_claim(&db, img.id)?;
    }
    Ok(repair)
}
