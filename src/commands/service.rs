//! Servicing images, then sending each new version to its distribution points when asked:
//! what `ois service --update-dps` and a schedule with "update distribution points" do.

use super::CommandError;
use crate::distribution::{self, DistributionError, DpOutcome};
use crate::image::ImageId;
use crate::servicing::{self, ImageOutcome, RunEvent, RunStatus, ServiceOptions};
use crate::site::Site;

/// One image's run, and its distribution when one was asked for and the run succeeded.
#[derive(Debug)]
pub struct ServiceOutcome {
    pub outcome: ImageOutcome,
    /// `None`: not asked for, or the run did not succeed (only a new version is sent).
    pub distributed: Option<Result<Vec<DpOutcome>, DistributionError>>,
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
            let distributed = (update_dps && outcome.status == RunStatus::Successful).then(|| {
                distribution::distribute_image(site, outcome.image_id, None).inspect_err(|e| {
                    tracing::error!(
                        "image {}: distribution after servicing failed: {e}",
                        outcome.image
                    )
                })
            });
            ServiceOutcome {
                outcome,
                distributed,
            }
        })
        .collect())
}
