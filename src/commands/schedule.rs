//! Scheduled servicing of an image: schedule, unschedule, cancel (Cancel Scheduled Updates),
//! and the repair that takes an image out of provisioning mode.

use std::time::Duration;

use serde::Serialize;

use super::CommandError;
use crate::image::{self, Image};
use crate::schedule::{self, timing, CancelOutcome, Schedule, ScheduleRequest, Timing};
use crate::servicing::recovery::Repair;
use crate::site::Site;

/// When a schedule runs, as the admin gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// As soon as a scheduler runs.
    Now,
    /// Once, at RFC 3339 or local `YYYY-MM-DD HH:MM`; a time already past runs at once.
    At(String),
    /// Recurring: a cron expression with seconds, or the classic five fields.
    Cron(String),
}

impl When {
    /// The timing to store, or why the time or expression is not one.
    pub fn timing(&self) -> Result<Timing, String> {
        Ok(match self {
            When::Cron(expression) => {
                timing::parse_cron(expression)?;
                Timing::Cron {
                    expression: expression.trim().to_string(),
                }
            }
            When::At(text) => Timing::Once {
                at: timing::stamp(timing::parse_at(text)?),
            },
            When::Now => Timing::Once {
                at: timing::stamp(chrono::Utc::now()),
            },
        })
    }
}

/// An image and its schedule as set.
#[derive(Debug, Clone, Serialize)]
pub struct Scheduled {
    pub image: Image,
    pub schedule: Schedule,
}

/// Sets the schedule of the image `key` (id or name), replacing any it had: what the
/// Schedule Updates wizard asks for.
pub fn schedule_updates(
    site: &Site,
    key: &str,
    request: &ScheduleRequest,
) -> Result<Scheduled, CommandError> {
    let db = site.database()?;
    let image = image::find(&db, key)?;
    let schedule = schedule::set(&db, &image, request)?;
    Ok(Scheduled { image, schedule })
}

/// Removes the schedule of the image `key`.
pub fn unschedule(site: &Site, key: &str) -> Result<Image, CommandError> {
    let db = site.database()?;
    let image = image::find(&db, key)?;
    schedule::remove(&db, &image)?;
    Ok(image)
}

/// What Cancel Scheduled Updates did to an image.
#[derive(Debug, Clone, Serialize)]
pub struct Canceled {
    pub image: Image,
    pub outcome: CancelOutcome,
}

/// Cancels the image's run in progress (from any process), waiting up to `wait` for it to
/// stop; or drops its pending scheduled run.
pub fn cancel(site: &Site, key: &str, wait: Duration) -> Result<Canceled, CommandError> {
    let image = image::find(&site.database()?, key)?;
    let outcome = schedule::cancel(site, &image, wait)?;
    Ok(Canceled { image, outcome })
}

/// What taking an image out of provisioning mode did.
#[derive(Debug, Clone, Serialize)]
pub struct Repaired {
    pub image: Image,
    /// `None`: the image was not in provisioning mode; nothing was done.
    pub repair: Option<Repair>,
}

/// Takes the image `key` out of provisioning mode after a run that died (`set-provisioning-
/// mode false`): the whole repair, then its schedule may run again.
pub fn leave_provisioning_mode(site: &Site, key: &str) -> Result<Repaired, CommandError> {
    let image = image::find(&site.database()?, key)?;
    let repair = schedule::leave_provisioning_mode(site, &image)?;
    Ok(Repaired { image, repair })
}
