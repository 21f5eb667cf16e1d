//! The image catalog as the console lists it, and registering or forgetting an image.

use std::path::Path;

use serde::Serialize;

use super::CommandError;
use crate::image::{self, Image, ImageKind, IndexDetail, NestedImage};
use crate::library::{ContentLibrary, PreparedPayloads};
use crate::schedule::{self, ScheduledStatus};
use crate::servicing::{self, lease::ProvisioningMode};
use crate::site::{Database, Site};
use crate::wim::Wim;

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
    /// Update payloads compressed for the image's compression type at its import, so that
    /// its first run does not compress them.
    pub compressed_payloads: PreparedPayloads,
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
/// (see [`image::import_with_nested`]). Then compresses the payloads of the updates that can
/// apply to it for its compression type if the library has none yet (an image of a type no
/// other image had): done here, where the admin expects to wait, rather than in the middle of
/// its first servicing run. Nothing of that fails the import.
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
    let compressed_payloads = prepare_payloads(site, &db, &image, &indexes);
    Ok(ImportedImage {
        image,
        indexes,
        nested,
        compressed_payloads,
    })
}

pub(super) fn prepare_payloads(
    site: &Site,
    db: &Database,
    image: &Image,
    indexes: &[IndexDetail],
) -> PreparedPayloads {
    let header = match Wim::open(&image.path, false) {
        Ok(w) => w.header(),
        Err(e) => {
            tracing::warn!(
                "image {}: cannot read its header to compress payloads ahead ({e}); its first \
                 run compresses them",
                image.name
            );
            return PreparedPayloads::default();
        }
    };
    let Some(compression) = header.compression else {
        return PreparedPayloads::default();
    };
    let library = ContentLibrary::new(site);
    let updates = match library.all(db) {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(
                "image {}: cannot list the library's updates to compress payloads ahead ({e}); \
                 its first run compresses them",
                image.name
            );
            return PreparedPayloads::default();
        }
    };
    let applicable = servicing::applicable(indexes, &updates);
    library.prepare_for_image(db, &image.name, &applicable, compression, header.chunk_size)
}

/// Forgets the image `key` (id or name) and its history; the WIM file stays.
pub fn remove_image(site: &Site, key: &str) -> Result<Image, CommandError> {
    let db = site.database()?;
    let image = image::find(&db, key)?;
    crate::media::check_image_removable(&db, &image)
        .map_err(|e| CommandError::Media(Box::new(e)))?;
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
