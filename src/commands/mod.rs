//! The engine API: one operation per thing a front end does. Each opens the site database
//! once and returns a `Serialize` view, so the CLI (and the site server to come) only parse
//! arguments and render. Modelled on rustic_core's `commands/` layer.

mod distribution;
mod image_changes;
mod image_view;
mod images;
mod media;
mod schedule;
mod service;
mod updates;

pub use distribution::{
    add_dp, distribute_image, list_dps, locate_content, remove_dp, retry_distributions, set_dp,
    set_maintenance_mode, show_dp, upgrade_dp_layouts, validate_dps, Distributed, DpView,
    MaintenanceModeFailed, MaintenanceModeSet,
};
pub use image_changes::{image_changes, Change, IndexChanges, KindTotal, RunChanges, Totals};
pub use image_view::{image_runs, image_view, ImageView, InstalledUpdates, ServicingView};
pub use images::{
    find_images, import_image, list_images, remove_image, ImageSummary, ImportedImage,
};
pub use media::{
    distribute_media, import_media, import_setup_update, list_media, list_setup_updates,
    remove_media, service_media, show_media, IsoView, MediaServiceOptions, MediaServiced,
    MediaView,
};
pub use schedule::{
    cancel, leave_provisioning_mode, schedule_updates, unschedule, Canceled, Repaired, Scheduled,
    When,
};
pub use service::{run_scheduler, service, ServiceOutcome};
pub use updates::{
    applicable_updates, import_updates, list_updates, show_update, UpdateQuery, UpdateSummary,
};

use crate::distribution::DistributionError;
use crate::hint::Hint;
use crate::image::ImageError;
use crate::library::LibraryError;
use crate::schedule::ScheduleError;
use crate::servicing::ServicingError;
use crate::site::SiteError;

/// What an operation can fail with: the error of the engine module that failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Library(#[from] LibraryError),
    #[error(transparent)]
    Servicing(#[from] ServicingError),
    // Boxed: the largest of them, and errors travel in every Result.
    #[error(transparent)]
    Schedule(Box<ScheduleError>),
    #[error(transparent)]
    Distribution(#[from] DistributionError),
    #[error(transparent)]
    Site(#[from] SiteError),
    #[error(transparent)]
    Media(Box<crate::media::MediaError>),
}

impl CommandError {
    /// What to do about it: the failing module's hint.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            CommandError::Image(e) => e.hint(),
            CommandError::Library(e) => e.hint(),
            CommandError::Servicing(e) => e.hint(),
            CommandError::Schedule(e) => e.hint(),
            CommandError::Distribution(e) => e.hint(),
            CommandError::Site(e) => e.hint(),
            CommandError::Media(e) => e.hint(),
        }
    }
}

impl From<ScheduleError> for CommandError {
    fn from(e: ScheduleError) -> Self {
        CommandError::Schedule(Box::new(e))
    }
}
