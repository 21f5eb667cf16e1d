//! The handlers of `/api/v1`, one file per group of routes. Each parses, calls an adapter of
//! `server::engine` on a blocking thread, and answers JSON or a problem.

mod dps;
mod images;
mod media;
mod monitoring;
mod prelude;
mod pull;
mod session;
mod updates;

pub use dps::*;
pub use images::*;
pub use media::*;
pub use monitoring::*;
pub use pull::*;
pub use session::*;
pub use updates::*;

use serde::Deserialize;

use crate::server::problem::ApiError;

/// `?filter=&arch=` of the update lists.
#[derive(Deserialize)]
pub struct UpdateQuery {
    filter: Option<String>,
    arch: Option<String>,
}

pub(super) fn id_of<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, ApiError> {
    text.trim()
        .parse()
        .map_err(|_| ApiError::not_found(format!("no {what} {text:?}: ids are numbers")))
}
