//! The image catalog as the console lists it, and registering or forgetting an image.

use std::path::Path;

use serde::Serialize;

use super::CommandError;
use crate::image::{self, Image, ImageKind, IndexDetail, NestedImage};
use crate::schedule::{self, ScheduledStatus};
use crate::servicing::{self, lease::ProvisioningMode};
use crate::site::{Database, Site};

/// One image in the list of Operating System Images, with the console's columns.
#[derive(Debug, Clone, Serialize)]
pub struct ImageSummary {
    /// Id, name, kind, path, size, last serviced (`serviced_at`) and the file's identity.
    #[serde(flatten)]
    pub image: Image,
    /// How many indexes the WIM holds.
    pub indexes: usize,
    pub scheduled_updates_date: Option<String>,
    pub scheduled_updates_status: ScheduledStatus,
    pub provisioning_mode: Option<ProvisioningMode>,
    /// How the image's last run ended (`In progress` while one runs).
    pub last_run_status: Option<String>,
}

/// A newly registered image and what its indexes hold.
#[derive(Debug, Clone, Serialize)]
pub struct ImportedImage {
    pub image: Image,
    pub indexes: Vec<IndexDetail>,
    /// The WIMs found inside its indexes (Winre.wim), with why one cannot be serviced.
    pub nested: Vec<NestedImage>,
}

/// Every registered image, in id order.
pub fn list_images(site: &Site) -> Result<Vec<ImageSummary>, CommandError> {
    let db = site.database()?;
    image::list(&db)?
        .into_iter()
        .map(|img| summary(&db, img))
        .collect()
}

fn summary(db: &Database, image: Image) -> Result<ImageSummary, CommandError> {
    let (scheduled_updates_status, scheduled_updates_date) = schedule::status(db, image.id)?;
    Ok(ImageSummary {
        indexes: image::index_count(db, image.id)?,
        provisioning_mode: servicing::lease::current(db, image.id).map_err(|e| db.error(e))?,
        last_run_status: servicing::last_run_status(db, image.id)?,
        scheduled_updates_date,
        scheduled_updates_status,
        image,
    })
}

/// Registers the WIM file `wim` with its nested images: Winre.wim, and the `nested` paths
/// (see [`image::import_with_nested`]).
pub fn import_image(
    site: &Site,
    wim: &Path,
    kind: ImageKind,
    name: Option<&str>,
    nested: &[String],
) -> Result<ImportedImage, CommandError> {
    let mut db = site.database()?;
    let (image, indexes) = image::import_with_nested(site, &mut db, wim, kind, name, nested)?;
    let nested = image::nested_images(&db, &image)?;
    Ok(ImportedImage {
        image,
        indexes,
        nested,
    })
}

/// Forgets the image `key` (id or name) and its history; the WIM file stays.
pub fn remove_image(site: &Site, key: &str) -> Result<Image, CommandError> {
    let db = site.database()?;
    let image = image::find(&db, key)?;
    image::remove(&db, &image)?;
    Ok(image)
}

/// The images `keys` (ids or names) name, in order: what a front end resolves before it
/// services them.
pub fn find_images(site: &Site, keys: &[String]) -> Result<Vec<Image>, CommandError> {
    let db = site.database()?;
    Ok(keys
        .iter()
        .map(|k| image::find(&db, k))
        .collect::<Result<_, _>>()?)
}
