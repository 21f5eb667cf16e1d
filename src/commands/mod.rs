//! The engine API: one operation per thing a front end does. Each opens the site database
//! once and returns a `Serialize` view, so the CLI (and the site server to come) only parse
//! arguments and render. Modelled on rustic_core's `commands/` layer.

mod image_changes;
mod image_view;
mod service;

pub use image_changes::{image_changes, Change, IndexChanges, KindTotal, RunChanges, Totals};
pub use image_view::{image_view, ImageView, ServicingView};
pub use service::{service, ServiceOutcome};

use crate::distribution::DistributionError;
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
}

impl From<ScheduleError> for CommandError {
    fn from(e: ScheduleError) -> Self {
        CommandError::Schedule(Box::new(e))
    }
}
