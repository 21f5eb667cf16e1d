//! The image catalog: registered WIM files, what each index holds, and the updates installed
//! in it (tables `images`, `image_indexes`, `installed_updates`).

pub mod detect;
pub mod hive;
pub mod inspect;
pub mod nested;
pub mod packages;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

pub use inspect::{IndexInfo, InspectError, WimContents};
pub use nested::{NestedError, NestedId, NestedImage, NestedParent};
pub use packages::InstalledPackage;

use crate::fsutil::{hash_file, now_rfc3339};
use crate::hint::Hint;
use crate::library::{Architecture, UpdateTarget};
use crate::servicing::RunId;
use crate::site::{Database, Migrations, Site, SiteError};
use crate::wim::{Progress, Wim};

pub static MIGRATIONS: Migrations = Migrations {
    module: "image",
    steps: &[
        "CREATE TABLE images (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            kind TEXT NOT NULL,
            path TEXT NOT NULL UNIQUE,
            size_bytes INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            compression TEXT NOT NULL,
            imported_at TEXT NOT NULL,
            serviced_at TEXT);
        CREATE TABLE image_indexes (
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            name TEXT NOT NULL,
            architecture TEXT,
            build INTEGER,
            version TEXT,
            edition TEXT,
            product_name TEXT,
            PRIMARY KEY (image_id, idx));
        CREATE TABLE installed_updates (
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            update_id TEXT NOT NULL COLLATE NOCASE,
            source TEXT NOT NULL,
            run_id INTEGER,
            installed_at TEXT NOT NULL,
            PRIMARY KEY (image_id, idx, update_id));",
        // The file content (by SHA-256) whose every blob ois has checked: at import, or by
        // the run that wrote it. Servicing verifies a rebuild of it by what changed.
        "CREATE TABLE verified_files (
            image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
            sha256 TEXT NOT NULL,
            verified_at TEXT NOT NULL);",
        // What Windows itself records: the revision and display version from the SOFTWARE
        // hive, and every Windows package with its CBS state.
        "ALTER TABLE image_indexes ADD COLUMN ubr INTEGER;
        ALTER TABLE image_indexes ADD COLUMN display_version TEXT;
        ALTER TABLE image_indexes ADD COLUMN packages_from TEXT;
        CREATE TABLE installed_packages (
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            identity TEXT NOT NULL COLLATE NOCASE,
            state INTEGER,
            installed INTEGER NOT NULL,
            source TEXT NOT NULL,
            PRIMARY KEY (image_id, idx, identity));",
        // WIM files inside the indexes (Winre.wim): see nested.rs.
        nested::MIGRATION,
    ],
};

crate::id::integer_id!(
    /// An image of the catalog (`images.id`).
    ImageId,
    "an image id"
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageKind {
    OsImage,
    OsUpgradePackage,
    /// boot.wim: index 1 Windows PE, index 2 Windows Setup; it takes WinPE updates.
    BootImage,
}

impl ImageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageKind::OsImage => "os-image",
            ImageKind::OsUpgradePackage => "os-upgrade-package",
            ImageKind::BootImage => "boot-image",
        }
    }

    /// The updates its indexes take (a package's `target`).
    pub fn update_target(self) -> UpdateTarget {
        match self {
            ImageKind::OsImage | ImageKind::OsUpgradePackage => UpdateTarget::Os,
            ImageKind::BootImage => UpdateTarget::Winpe,
        }
    }
}

impl std::str::FromStr for ImageKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "os-image" => Ok(ImageKind::OsImage),
            "os-upgrade-package" => Ok(ImageKind::OsUpgradePackage),
            "boot-image" => Ok(ImageKind::BootImage),
            _ => Err(format!(
                "{s:?}: use os-image, os-upgrade-package or boot-image"
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("no image {0:?} in the catalog")]
    NotFound(String),
    #[error("WIM file {} does not exist: check the path", .0.display())]
    MissingFile(PathBuf),
    #[error("{} is already registered as image {name:?}", path.display())]
    AlreadyRegistered { path: PathBuf, name: String },
    #[error("{} (image {name:?}) was registered by another process while this import ran", path.display())]
    RegisteredMeanwhile { path: PathBuf, name: String },
    #[error("an image named {0:?} is already registered")]
    NameTaken(String),
    #[error("cannot use WIM {}: {source}", path.display())]
    Unreadable { path: PathBuf, source: InspectError },
    // Boxed: it carries wimlib's error, and errors travel in every Result.
    #[error(transparent)]
    Nested(Box<NestedError>),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "image {0} is in provisioning mode (a servicing run holds it): wait for the run to end"
    )]
    InProvisioningMode(String),
    #[error(transparent)]
    Site(#[from] SiteError),
}

impl From<NestedError> for ImageError {
    fn from(e: NestedError) -> Self {
        ImageError::Nested(Box::new(e))
    }
}

impl ImageError {
    /// What to do about it.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            ImageError::NotFound(_) => Some(Hint::ListImages),
            ImageError::RegisteredMeanwhile { .. } => Some(Hint::ListImagesOrRename),
            ImageError::NameTaken(_) => Some(Hint::RenameImage),
            ImageError::Site(e) => e.hint(),
            _ => None,
        }
    }
}

/// A registered image.
#[derive(Debug, Clone, Serialize)]
pub struct Image {
    pub id: ImageId,
    pub name: String,
    pub kind: ImageKind,
    pub path: PathBuf,
    pub size_bytes: u64,
    pub sha256: String,
    pub compression: String,
    pub imported_at: String,
    pub serviced_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InstalledUpdate {
    pub id: String,
    /// `windows-package` (found in the image), `ois-record` (carried in the WIM XML) or
    /// `servicing` (applied by a run of this site).
    pub source: String,
    pub run_id: Option<RunId>,
    pub installed_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct IndexDetail {
    #[serde(flatten)]
    pub info: IndexInfo,
    pub installed: Vec<InstalledUpdate>,
    /// Windows packages with their state (`image show`); empty for an image registered before
    /// ois read them.
    pub packages: Vec<InstalledPackage>,
    /// The updates it takes: `os`, `winpe` (a boot image) or `winre` (a nested recovery image).
    pub target: UpdateTarget,
}

impl IndexDetail {
    pub fn is_installed(&self, id: &str) -> bool {
        self.installed.iter().any(|u| u.id.eq_ignore_ascii_case(id))
    }
}

pub fn import(
    site: &Site,
    db: &mut Database,
    path: &Path,
    kind: ImageKind,
    name: Option<&str>,
) -> Result<(Image, Vec<IndexDetail>), ImageError> {
    import_with_nested(site, db, path, kind, name, &[])
}

/// Registers a WIM file with its nested images: Winre.wim in every index, and the `nested`
/// paths the admin names (each must be a `.wim` some index holds). A nested image that is
/// damaged or unsafe is registered with its reason and cannot be serviced; the parent is
/// registered all the same (a warning says so).
pub fn import_with_nested(
    site: &Site,
    db: &mut Database,
    path: &Path,
    kind: ImageKind,
    name: Option<&str>,
    nested: &[String],
) -> Result<(Image, Vec<IndexDetail>), ImageError> {
    if !path.is_file() {
        return Err(ImageError::MissingFile(path.to_path_buf()));
    }
    let path = std::fs::canonicalize(path).map_err(|e| ImageError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let name = match name {
        Some(n) => n.trim().to_string(),
        None => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into()),
    };
    if let Some(existing) = find_by_path(db, &path)? {
        return Err(ImageError::AlreadyRegistered {
            path,
            name: existing.name,
        });
    }
    if find_optional(db, &name)?.is_some() || name.is_empty() || name.parse::<i64>().is_ok() {
        return Err(ImageError::NameTaken(name));
    }
    let contents = inspect::inspect(&path).map_err(|source| ImageError::Unreadable {
        path: path.clone(),
        source,
    })?;
    let (sha256, size) = hash_file(&path).map_err(|e| ImageError::Io {
        path: path.clone(),
        source: e,
    })?;
    // Every blob checked once here, so servicing can verify by what it changes. A damaged
    // file still registers (removing it is the admin's call); its first run verifies in full
    // and refuses it.
    let verified = Wim::open(&path, true)
        .and_then(|w| w.verify(&mut |_| Progress::Continue))
        .map_err(|e| tracing::warn!("{} failed verification: {e}", path.display()))
        .is_ok();
    let found = nested::detect(&path, &site.staging_root(), nested)?;
    let now = now_rfc3339();
    let db_error = |e| SiteError::Database {
        path: site.root().join(crate::site::DATABASE_FILE),
        source: e,
    };
    let tx = db.transaction().map_err(db_error)?;
    tx.execute(
        "INSERT INTO images (name, kind, path, size_bytes, sha256, compression, imported_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            name,
            kind.as_str(),
            path.display().to_string(),
            size as i64,
            sha256,
            contents.compression.map_or("unknown", |c| c.as_str()),
            now
        ],
    )
    .map_err(|e| match e.sqlite_error_code() {
        // Another import registered this file or name since it was looked up.
        Some(rusqlite::ErrorCode::ConstraintViolation) => ImageError::RegisteredMeanwhile {
            path: path.clone(),
            name: name.clone(),
        },
        _ => db_error(e).into(),
    })?;
    let id = ImageId::new(tx.last_insert_rowid());
    if verified {
        mark_verified(&tx, id, &sha256).map_err(db_error)?;
    }
    for ((info, installed), packages) in contents
        .indexes
        .iter()
        .zip(&contents.installed)
        .zip(&contents.packages)
    {
        tx.execute(
            "INSERT INTO image_indexes (image_id, idx, name, architecture, build, version, edition, product_name,
                ubr, display_version, packages_from)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                id,
                info.index,
                info.name,
                info.architecture.map(|a| a.as_str()),
                info.build,
                info.version,
                info.edition,
                info.product_name,
                info.ubr,
                info.display_version,
                info.packages_from
            ],
        )
        .map_err(db_error)?;
        for p in packages {
            tx.execute(
                "INSERT OR IGNORE INTO installed_packages (image_id, idx, identity, state, installed, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, info.index, p.identity, p.state, p.installed, p.source],
            )
            .map_err(db_error)?;
        }
        for (update, source) in installed {
            tx.execute(
                "INSERT OR IGNORE INTO installed_updates (image_id, idx, update_id, source, installed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, info.index, update, source, now],
            )
            .map_err(db_error)?;
        }
    }
    nested::record(&tx, id, &found).map_err(db_error)?;
    tx.commit().map_err(db_error)?;
    tracing::info!(
        "registered image {name} ({}) with {} index(es)",
        path.display(),
        contents.indexes.len()
    );
    let image = get(db, id)?;
    let indexes = indexes(db, &image)?;
    Ok((image, indexes))
}

fn row_to_image(r: &rusqlite::Row) -> rusqlite::Result<Image> {
    let kind: String = r.get(2)?;
    Ok(Image {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: kind.parse().unwrap_or(ImageKind::OsImage),
        path: PathBuf::from(r.get::<_, String>(3)?),
        size_bytes: r.get::<_, i64>(4)? as u64,
        sha256: r.get(5)?,
        compression: r.get(6)?,
        imported_at: r.get(7)?,
        serviced_at: r.get(8)?,
    })
}

const IMAGE_COLUMNS: &str =
    "id, name, kind, path, size_bytes, sha256, compression, imported_at, serviced_at";

fn find_by_path(db: &Database, path: &Path) -> Result<Option<Image>, ImageError> {
    db.query_row(
        &format!("SELECT {IMAGE_COLUMNS} FROM images WHERE path = ?1"),
        [path.display().to_string()],
        row_to_image,
    )
    .optional()
    .map_err(|e| db.error(e).into())
}

fn find_optional(db: &Database, key: &str) -> Result<Option<Image>, ImageError> {
    let by_id = key.parse::<ImageId>().ok();
    db.query_row(
        &format!("SELECT {IMAGE_COLUMNS} FROM images WHERE id = ?1 OR name = ?2 ORDER BY id = ?1 DESC LIMIT 1"),
        params![by_id, key],
        row_to_image,
    )
    .optional()
    .map_err(|e| db.error(e).into())
}

/// An image by its id, as the engine holds it (no round trip through a name or a string).
pub fn get(db: &Database, id: ImageId) -> Result<Image, ImageError> {
    db.query_row(
        &format!("SELECT {IMAGE_COLUMNS} FROM images WHERE id = ?1"),
        [id],
        row_to_image,
    )
    .optional()
    .map_err(|e| db.error(e))?
    .ok_or_else(|| ImageError::NotFound(id.to_string()))
}

/// An image by id or name, as an admin gives it.
pub fn find(db: &Database, key: &str) -> Result<Image, ImageError> {
    find_optional(db, key)?.ok_or_else(|| ImageError::NotFound(key.to_string()))
}

pub fn list(db: &Database) -> Result<Vec<Image>, ImageError> {
    let mut stmt = db
        .prepare(&format!("SELECT {IMAGE_COLUMNS} FROM images ORDER BY id"))
        .map_err(|e| db.error(e))?;
    let rows = stmt
        .query_map([], row_to_image)
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(|e| db.error(e))?;
    Ok(rows)
}

/// How many indexes an image holds.
pub fn index_count(db: &Database, id: ImageId) -> Result<usize, ImageError> {
    db.query_row(
        "SELECT COUNT(*) FROM image_indexes WHERE image_id = ?1",
        [id],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as usize)
    .map_err(|e| db.error(e).into())
}

/// The indexes of an image with their installed updates.
pub fn indexes(db: &Database, image: &Image) -> Result<Vec<IndexDetail>, ImageError> {
    let mut stmt = db
        .prepare(
            "SELECT idx, name, architecture, build, version, edition, product_name, ubr,
                display_version, packages_from
             FROM image_indexes WHERE image_id = ?1 ORDER BY idx",
        )
        .map_err(|e| db.error(e))?;
    let infos = stmt
        .query_map([image.id], |r| {
            Ok(IndexInfo {
                index: r.get(0)?,
                name: r.get(1)?,
                architecture: r
                    .get::<_, Option<String>>(2)?
                    .and_then(|a| Architecture::parse(&a)),
                build: r.get(3)?,
                version: r.get(4)?,
                edition: r.get(5)?,
                product_name: r.get(6)?,
                ubr: r.get(7)?,
                display_version: r.get(8)?,
                packages_from: r.get(9)?,
            })
        })
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(|e| db.error(e))?;
    let mut stmt = db
        .prepare(
            "SELECT idx, update_id, source, run_id, installed_at FROM installed_updates
             WHERE image_id = ?1 ORDER BY idx, update_id",
        )
        .map_err(|e| db.error(e))?;
    let installed = stmt
        .query_map([image.id], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                InstalledUpdate {
                    id: r.get(1)?,
                    source: r.get(2)?,
                    run_id: r.get(3)?,
                    installed_at: r.get(4)?,
                },
            ))
        })
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(|e| db.error(e))?;
    let mut stmt = db
        .prepare(
            "SELECT idx, identity, state, installed, source FROM installed_packages
             WHERE image_id = ?1 ORDER BY idx, identity",
        )
        .map_err(|e| db.error(e))?;
    let mut packages: Vec<(u32, InstalledPackage)> = stmt
        .query_map([image.id], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                InstalledPackage {
                    identity: r.get(1)?,
                    state: r.get(2)?,
                    installed: r.get(3)?,
                    source: r.get(4)?,
                },
            ))
        })
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(|e| db.error(e))?;
    Ok(infos
        .into_iter()
        .map(|info| {
            let installed = installed
                .iter()
                .filter(|(i, _)| *i == info.index)
                .map(|(_, u)| u.clone())
                .collect();
            let (mine, rest): (Vec<_>, Vec<_>) =
                packages.drain(..).partition(|(i, _)| *i == info.index);
            packages = rest;
            IndexDetail {
                info,
                installed,
                packages: mine.into_iter().map(|(_, p)| p).collect(),
                target: image.kind.update_target(),
            }
        })
        .collect())
}

/// The nested images of an image (see [`nested`]).
pub fn nested_images(db: &Database, image: &Image) -> Result<Vec<NestedImage>, ImageError> {
    nested::for_image(db, image.id).map_err(|e| db.error(e).into())
}

/// Removes an image from the catalog (the WIM file stays). Refused while a run holds it.
pub fn remove(db: &Database, image: &Image) -> Result<(), ImageError> {
    let removed = db
        .execute(
            "DELETE FROM images WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM provisioning WHERE image_id = ?1)",
            [image.id],
        )
        .map_err(|e| db.error(e))?;
    if removed == 0 {
        return Err(ImageError::InProvisioningMode(image.name.clone()));
    }
    tracing::info!(
        "removed image {} from the catalog; {} was left in place",
        image.name,
        image.path.display()
    );
    Ok(())
}

/// The compression types of the registered images.
pub fn compressions(db: &Database) -> Result<Vec<crate::wim::Compression>, ImageError> {
    let mut stmt = db
        .prepare("SELECT DISTINCT compression FROM images")
        .map_err(|e| db.error(e))?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(|e| db.error(e))?;
    Ok(names
        .iter()
        .filter_map(|n| serde_json::from_value(serde_json::Value::String(n.clone())).ok())
        .collect())
}

fn mark_verified(
    conn: &rusqlite::Connection,
    image_id: ImageId,
    sha256: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO verified_files (image_id, sha256, verified_at) VALUES (?1, ?2, ?3)",
        params![image_id, sha256, now_rfc3339()],
    )?;
    Ok(())
}

/// The SHA-256 of the image's file content that ois verified in full, if any.
pub fn verified_sha256(db: &Database, image_id: ImageId) -> Option<String> {
    db.query_row(
        "SELECT sha256 FROM verified_files WHERE image_id = ?1",
        [image_id],
        |r| r.get(0),
    )
    .optional()
    .ok()
    .flatten()
}

/// Records a serviced image: its new file hash and size, and what each index gained.
/// Records what each index now holds, as read from the image itself (its build, revision,
/// edition and Windows packages): after DISM installed Windows packages, planning must see
/// them from the image, as it does after an import.
pub fn record_windows_state(
    tx: &Transaction,
    image_id: ImageId,
    contents: &WimContents,
) -> rusqlite::Result<()> {
    for (info, packages) in contents.indexes.iter().zip(&contents.packages) {
        tx.execute(
            "UPDATE image_indexes SET build = ?3, version = ?4, edition = ?5, product_name = ?6,
                ubr = ?7, display_version = ?8, packages_from = ?9
             WHERE image_id = ?1 AND idx = ?2",
            params![
                image_id,
                info.index,
                info.build,
                info.version,
                info.edition,
                info.product_name,
                info.ubr,
                info.display_version,
                info.packages_from
            ],
        )?;
        tx.execute(
            "DELETE FROM installed_packages WHERE image_id = ?1 AND idx = ?2",
            params![image_id, info.index],
        )?;
        for p in packages {
            tx.execute(
                "INSERT OR IGNORE INTO installed_packages (image_id, idx, identity, state, installed, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![image_id, info.index, p.identity, p.state, p.installed, p.source],
            )?;
        }
    }
    Ok(())
}

pub fn record_servicing(
    tx: &Transaction,
    image_id: ImageId,
    sha256: &str,
    size: u64,
    run_id: RunId,
    installed: &[(u32, BTreeSet<String>)],
) -> rusqlite::Result<()> {
    let now = now_rfc3339();
    tx.execute(
        "UPDATE images SET sha256 = ?2, size_bytes = ?3, serviced_at = ?4 WHERE id = ?1",
        params![image_id, sha256, size as i64, now],
    )?;
    // Servicing replaces an image only with a file it verified.
    mark_verified(tx, image_id, sha256)?;
    for (index, ids) in installed {
        for id in ids {
            tx.execute(
                "INSERT OR REPLACE INTO installed_updates (image_id, idx, update_id, source, run_id, installed_at)
                 VALUES (?1, ?2, ?3, 'servicing', ?4, ?5)",
                params![image_id, index, id, run_id, now],
            )?;
        }
    }
    Ok(())
}
