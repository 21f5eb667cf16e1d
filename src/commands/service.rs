//! Servicing images, then sending each new version to its distribution points when asked:
//! what `ois service --update-dps` and a schedule with "update distribution points" do.

use serde::Serialize;

use super::CommandError;
use crate::distribution::{self, DpOutcome};
use crate::image::ImageId;
use crate::schedule::{scheduler, SchedulerEvent, SchedulerOptions};
use crate::servicing::{self, ImageOutcome, RunEvent, RunStatus, ServiceOptions};
use crate::site::Site;

/// One image's run, and its distribution when one was asked for and the run succeeded.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceOutcome {
    #[serde(flatten)]
    pub outcome: ImageOutcome,
    /// Where the new version went; `None`: not asked for, the run did not succeed (only a new
    /// version is sent), or the distribution failed as a whole (`distribution_error`).
    pub distributed: Option<Vec<DpOutcome>>,
    /// Why the new version could not be sent at all (the run's result stands).
    pub distribution_error: Option<String>,
}

/// Services `images` (see [`servicing::service`]); with `update_dps`, each image whose run
/// succeeded then goes to the distribution points that hold it or are assigned it.
pub fn service(
    site: &Site,
    images: &[ImageId],
    options: &ServiceOptions,
    update_dps: bool,
    observer: &(dyn Fn(&str, RunEvent) + Sync),
) -> Result<Vec<ServiceOutcome>, CommandError> {
    let outcomes = servicing::service(site, images, options, observer)?;
    Ok(outcomes
        .into_iter()
        .map(|outcome| {
            let succeeded = outcome.status == RunStatus::Successful;
            // Pull DPs' agents see the new version at their next poll, sent or not: its chunk
            // index is built now rather than on their first request.
            if succeeded && !update_dps {
                distribution::pull::prepare_index(site, outcome.image_id);
            }
            let sent = (update_dps && succeeded)
                .then(|| distribution::distribute_image(site, outcome.image_id, None));
            let (distributed, distribution_error) = match sent {
                None => (None, None),
                Some(Ok(sent)) => (Some(sent), None),
                Some(Err(e)) => {
                    tracing::error!(
                        "image {}: distribution after servicing failed: {e}",
                        outcome.image
                    );
                    (None, Some(e.to_string()))
                }
            };
            ServiceOutcome {
                outcome,
                distributed,
                distribution_error,
            }
        })
        .collect())
}

/// Runs due schedules until `options.stop` (or, with `options.once`, what is due now): the
/// scheduler loop, each run through [`service`] (see [`scheduler::run`]).
pub fn run_scheduler(
    site: &Site,
    options: &SchedulerOptions,
    on_event: &(dyn Fn(SchedulerEvent) + Sync),
) -> Result<(), CommandError> {
    Ok(scheduler::run(site, options, on_event)?)
}
