//! Installation media: a folder (or an ISO extracted into the site) holding
//! `sources/install.wim`, `sources/boot.wim` and Setup's files, registered with a record of
//! every file it holds; Setup Dynamic Update packages, whose files Setup takes from `sources`
//! (tables `media`, `media_files`, `setup_updates`, `media_setup_updates`).

pub mod iso;
pub mod setup_update;
pub mod tree;

use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

pub use setup_update::SetupUpdate;
pub use tree::MediaFile;

use crate::fsutil::now_rfc3339;
use crate::image::{self, ImageError, ImageId, ImageKind};
use crate::site::{Database, Migrations, Site, SiteError};

pub static MIGRATIONS: Migrations = Migrations {
    module: "media",
    steps: &["CREATE TABLE media (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            path TEXT NOT NULL UNIQUE,
            imported_from TEXT NOT NULL,
            install_image_id INTEGER NOT NULL REFERENCES images(id),
            boot_image_id INTEGER REFERENCES images(id),
            iso_path TEXT,
            iso_sha256 TEXT,
            iso_size INTEGER,
            imported_at TEXT NOT NULL,
            serviced_at TEXT);
        CREATE TABLE media_files (
            media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            size INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            PRIMARY KEY (media_id, path));
        CREATE TABLE setup_updates (
            id TEXT PRIMARY KEY COLLATE NOCASE,
            file_name TEXT NOT NULL,
            path TEXT NOT NULL,
            size INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            files INTEGER NOT NULL,
            imported_at TEXT NOT NULL);
        CREATE TABLE media_setup_updates (
            media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
            update_id TEXT NOT NULL COLLATE NOCASE,
            applied_at TEXT NOT NULL,
            PRIMARY KEY (media_id, update_id));"],
};

crate::id::integer_id!(
    /// An installation media of the site (`media.id`).
    MediaId,
    "a media id"
);

/// Where the site keeps the media it extracted from ISOs, and Setup Dynamic Update CABs.
pub const MEDIA_DIR: &str = "Media";

/// Where Setup's files are on every media.
pub const INSTALL_WIM: &str = "sources/install.wim";
pub const INSTALL_ESD: &str = "sources/install.esd";
pub const BOOT_WIM: &str = "sources/boot.wim";

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("no media {0:?} on the site: see `ois media list`")]
    NotFound(String),
    #[error("a media named {0:?} is already registered: choose another --name")]
    NameTaken(String),
    #[error("{} is already registered as media {name:?}", path.display())]
    AlreadyRegistered { path: PathBuf, name: String },
    #[error("{} does not exist: give an installation media folder or ISO", .0.display())]
    Missing(PathBuf),
    #[error("{} is not installation media: it has no sources folder with install.wim (the root of a Windows ISO or its copy is expected)", .0.display())]
    NotMedia(PathBuf),
    #[error("{} has no sources/install.wim: the media is incomplete; copy the whole media (or its ISO) again", .0.display())]
    NoInstallWim(PathBuf),
    #[error("{} holds sources/install.esd, which ois does not service: convert it, then import the media again: wimlib-imagex export install.esd all install.wim --compress=lzx (then delete install.esd)", .0.display())]
    InstallEsd(PathBuf),
    #[error("cannot read ISO {}: {reason}", path.display())]
    UnreadableIso { path: PathBuf, reason: String },
    #[error("media {media}: {} changed since ois recorded it ({what}): nothing was done; check who changed it, then register the media again (`ois media remove`, then `ois media import`)", path.display())]
    Changed {
        media: String,
        path: PathBuf,
        what: String,
    },
    #[error("Setup Dynamic Update {}: {reason}", path.display())]
    SetupUpdate { path: PathBuf, reason: String },
    #[error("no Setup Dynamic Update {0:?} on the site: import it with `ois media import-setup-update FILE.cab`")]
    SetupUpdateNotFound(String),
    #[error("image {image} is the {role} of media {media}: remove the media instead (`ois media remove {media}`), which forgets both of its images")]
    ImageOfMedia {
        image: String,
        role: &'static str,
        media: String,
    },
    #[error("a Setup Dynamic Update with id {0:?} is already imported")]
    SetupUpdateTaken(String),
    #[error("media {media}: the new media could not be written: {reason}; the original media is unchanged")]
    Build { media: String, reason: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("media {media}: {source}")]
    Image {
        media: String,
        // Boxed: the largest variant, and errors travel in every Result.
        #[source]
        source: Box<ImageError>,
    },
    #[error(transparent)]
    Site(#[from] SiteError),
}

impl MediaError {
    pub fn hint(&self) -> Option<crate::hint::Hint> {
        match self {
            MediaError::Image { source, .. } => source.hint(),
            MediaError::Site(e) => e.hint(),
            _ => None,
        }
    }

    fn io(path: &Path, source: std::io::Error) -> Self {
        MediaError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A registered installation media.
#[derive(Debug, Clone, Serialize)]
pub struct Media {
    pub id: MediaId,
    pub name: String,
    /// The media folder: where it was registered, or the site's copy of an ISO.
    pub path: PathBuf,
    /// The folder or ISO it was imported from.
    pub imported_from: String,
    pub install_image_id: ImageId,
    pub boot_image_id: Option<ImageId>,
    /// The last ISO ois wrote of it.
    pub iso_path: Option<PathBuf>,
    pub iso_sha256: Option<String>,
    pub iso_size: Option<u64>,
    pub imported_at: String,
    pub serviced_at: Option<String>,
}

const COLUMNS: &str = "id, name, path, imported_from, install_image_id, boot_image_id, iso_path, iso_sha256, iso_size, imported_at, serviced_at";

fn row_to_media(r: &rusqlite::Row) -> rusqlite::Result<Media> {
    Ok(Media {
        id: r.get(0)?,
        name: r.get(1)?,
        path: PathBuf::from(r.get::<_, String>(2)?),
        imported_from: r.get(3)?,
        install_image_id: r.get(4)?,
        boot_image_id: r.get(5)?,
        iso_path: r.get::<_, Option<String>>(6)?.map(PathBuf::from),
        iso_sha256: r.get(7)?,
        iso_size: r.get::<_, Option<i64>>(8)?.map(|v| v as u64),
        imported_at: r.get(9)?,
        serviced_at: r.get(10)?,
    })
}

/// A media by id or name.
pub fn find(db: &Database, key: &str) -> Result<Media, MediaError> {
    let by_id = key.parse::<MediaId>().ok();
    db.query_row(
        &format!(
            "SELECT {COLUMNS} FROM media WHERE id = ?1 OR name = ?2 ORDER BY id = ?1 DESC LIMIT 1"
        ),
        params![by_id, key],
        row_to_media,
    )
    .optional()
    .map_err(|e| db.error(e))?
    .ok_or_else(|| MediaError::NotFound(key.to_string()))
}

/// Refuses to let an image of a media be forgotten on its own: the media record needs it.
pub fn check_image_removable(db: &Database, image: &crate::image::Image) -> Result<(), MediaError> {
    for m in list(db)? {
        let role = if m.install_image_id == image.id {
            "install.wim"
        } else if m.boot_image_id == Some(image.id) {
            "boot.wim"
        } else {
            continue;
        };
        return Err(MediaError::ImageOfMedia {
            image: image.name.clone(),
            role,
            media: m.name,
        });
    }
    Ok(())
}

pub fn list(db: &Database) -> Result<Vec<Media>, MediaError> {
    let mut stmt = db
        .prepare(&format!("SELECT {COLUMNS} FROM media ORDER BY id"))
        .map_err(|e| db.error(e))?;
    let rows = stmt
        .query_map([], row_to_media)
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(|e| db.error(e))?;
    Ok(rows)
}

/// The media's record of its files, by path.
pub fn files(db: &Database, id: MediaId) -> Result<Vec<MediaFile>, MediaError> {
    let mut stmt = db
        .prepare("SELECT path, size, sha256 FROM media_files WHERE media_id = ?1 ORDER BY path")
        .map_err(|e| db.error(e))?;
    let rows = stmt
        .query_map([id], |r| {
            Ok(MediaFile {
                path: r.get(0)?,
                size: r.get::<_, i64>(1)? as u64,
                sha256: r.get(2)?,
            })
        })
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(|e| db.error(e))?;
    Ok(rows)
}

/// The Setup Dynamic Updates applied to the media, in id order.
pub fn applied_setup_updates(db: &Database, id: MediaId) -> Result<Vec<String>, MediaError> {
    let mut stmt = db
        .prepare("SELECT update_id FROM media_setup_updates WHERE media_id = ?1 ORDER BY update_id")
        .map_err(|e| db.error(e))?;
    let rows = stmt
        .query_map([id], |r| r.get(0))
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(|e| db.error(e))?;
    Ok(rows)
}

/// The media folder's Setup files, checked: install.wim (refusing an .esd), boot.wim if any.
pub struct Layout {
    pub root: PathBuf,
    pub install_wim: PathBuf,
    pub boot_wim: Option<PathBuf>,
}

pub fn layout(root: &Path) -> Result<Layout, MediaError> {
    if let Some(install_wim) = tree::find(root, INSTALL_WIM).filter(|p| p.is_file()) {
        return Ok(Layout {
            root: root.to_path_buf(),
            install_wim,
            boot_wim: tree::find(root, BOOT_WIM).filter(|p| p.is_file()),
        });
    }
    if tree::find(root, INSTALL_ESD).is_some_and(|p| p.is_file()) {
        return Err(MediaError::InstallEsd(root.to_path_buf()));
    }
    let sources = tree::find(root, "sources").is_some_and(|p| p.is_dir());
    let setup = tree::find(root, "setup.exe").is_some_and(|p| p.is_file());
    if sources || setup {
        Err(MediaError::NoInstallWim(root.to_path_buf()))
    } else {
        Err(MediaError::NotMedia(root.to_path_buf()))
    }
}

/// The folder where the site keeps an ISO's files: `<site>/Media/<name>`.
pub fn site_folder(site: &Site, name: &str) -> PathBuf {
    site.root().join(MEDIA_DIR).join(name)
}

/// Registers the media at `source` (a folder, registered where it is, or an ISO, extracted
/// into the site) under `name`, with its images and the record of its files.
pub fn import(
    site: &Site,
    db: &mut Database,
    source: &Path,
    name: &str,
) -> Result<(Media, Vec<MediaFile>), MediaError> {
    let name = name.trim();
    if name.is_empty()
        || name.parse::<i64>().is_ok()
        || name.contains(['/', '\\'])
        || name.starts_with('.')
    {
        return Err(MediaError::NameTaken(name.to_string()));
    }
    if find(db, name).is_ok() {
        return Err(MediaError::NameTaken(name.to_string()));
    }
    let meta = std::fs::metadata(source).map_err(|_| MediaError::Missing(source.to_path_buf()))?;
    let source = std::fs::canonicalize(source).map_err(|e| MediaError::io(source, e))?;
    let (root, extracted) = if meta.is_dir() {
        (source.clone(), false)
    } else {
        (extract_iso(site, &source, name)?, true)
    };
    let registered = register(site, db, &source, &root, name);
    if registered.is_err() && extracted {
        let _ = std::fs::remove_dir_all(&root);
    }
    registered
}

fn extract_iso(site: &Site, iso: &Path, name: &str) -> Result<PathBuf, MediaError> {
    let dest = site_folder(site, name);
    if dest.exists() {
        return Err(MediaError::Io {
            path: dest,
            source: std::io::Error::other(
                "a folder of that name already exists in the site's Media folder: remove it or choose another --name",
            ),
        });
    }
    let parent = dest.parent().unwrap_or(site.root()).to_path_buf();
    std::fs::create_dir_all(&parent).map_err(|e| MediaError::io(&parent, e))?;
    // Extracted beside, then renamed: a folder at the final path is always a whole media.
    let partial = parent.join(format!(".{name}.ois-import"));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).map_err(|e| MediaError::io(&partial, e))?;
    let done = iso::extract(iso, &partial)
        .map_err(|reason| MediaError::UnreadableIso {
            path: iso.to_path_buf(),
            reason,
        })
        .and_then(|()| {
            // An extraction that gave nothing Setup-like is not a media ISO.
            layout(&partial).map_err(|e| match e {
                MediaError::NotMedia(_) => MediaError::UnreadableIso {
                    path: iso.to_path_buf(),
                    reason: "it holds no installation media (no sources/install.wim)".into(),
                },
                MediaError::NoInstallWim(_) => MediaError::NoInstallWim(iso.to_path_buf()),
                MediaError::InstallEsd(_) => MediaError::InstallEsd(iso.to_path_buf()),
                e => e,
            })
        })
        .and_then(|_| std::fs::rename(&partial, &dest).map_err(|e| MediaError::io(&dest, e)));
    if let Err(e) = done {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(e);
    }
    Ok(dest)
}

fn register(
    site: &Site,
    db: &mut Database,
    source: &Path,
    root: &Path,
    name: &str,
) -> Result<(Media, Vec<MediaFile>), MediaError> {
    let existing: Option<String> = db
        .query_row(
            "SELECT name FROM media WHERE path = ?1",
            [root.display().to_string()],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| db.error(e))?;
    if let Some(existing) = existing {
        return Err(MediaError::AlreadyRegistered {
            path: root.to_path_buf(),
            name: existing,
        });
    }
    let layout = layout(root)?;
    let files = tree::record(root).map_err(|e| MediaError::io(root, e))?;
    let image_error = |source| MediaError::Image {
        media: name.to_string(),
        source: Box::new(source),
    };
    let (install, _) = image::import(
        site,
        db,
        &layout.install_wim,
        ImageKind::OsImage,
        Some(&format!("{name}-install")),
    )
    .map_err(image_error)?;
    let boot = match &layout.boot_wim {
        Some(path) => {
            match image::import(
                site,
                db,
                path,
                ImageKind::BootImage,
                Some(&format!("{name}-boot")),
            ) {
                Ok((boot, _)) => Some(boot),
                Err(e) => {
                    let _ = image::remove(db, &install);
                    return Err(image_error(e));
                }
            }
        }
        None => None,
    };
    let recorded = (|| -> rusqlite::Result<MediaId> {
        let tx = db.transaction()?;
        tx.execute(
            "INSERT INTO media (name, path, imported_from, install_image_id, boot_image_id, imported_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                name,
                root.display().to_string(),
                source.display().to_string(),
                install.id,
                boot.as_ref().map(|b| b.id),
                now_rfc3339()
            ],
        )?;
        let id = MediaId::new(tx.last_insert_rowid());
        write_files(&tx, id, &files)?;
        tx.commit()?;
        Ok(id)
    })();
    let id = match recorded {
        Ok(id) => id,
        Err(e) => {
            let _ = image::remove(db, &install);
            if let Some(boot) = &boot {
                let _ = image::remove(db, boot);
            }
            return Err(db.error(e).into());
        }
    };
    tracing::info!(
        "registered media {name} ({}): {} files, install.wim as image {}{}",
        root.display(),
        files.len(),
        install.name,
        boot.as_ref()
            .map(|b| format!(", boot.wim as image {}", b.name))
            .unwrap_or_default()
    );
    let media = find(db, &id.to_string())?;
    Ok((media, files))
}

fn write_files(
    tx: &rusqlite::Transaction,
    id: MediaId,
    files: &[MediaFile],
) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM media_files WHERE media_id = ?1", [id])?;
    let mut stmt = tx.prepare(
        "INSERT INTO media_files (media_id, path, size, sha256) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for f in files {
        stmt.execute(params![id, f.path, f.size as i64, f.sha256])?;
    }
    Ok(())
}

/// Checks the media folder against its record by the size of every file (the WIMs are checked
/// in full by their servicing runs; the new media is checked in full by SHA-256).
pub fn check_unchanged(media: &Media, recorded: &[MediaFile]) -> Result<(), MediaError> {
    let changed = |path: PathBuf, what: String| MediaError::Changed {
        media: media.name.clone(),
        path,
        what,
    };
    let mut on_disk: Vec<(String, u64)> = Vec::new();
    collect_sizes(&media.path, &media.path, &mut on_disk)
        .map_err(|e| changed(media.path.clone(), e.to_string()))?;
    on_disk.sort();
    for f in recorded {
        match on_disk.binary_search_by(|(p, _)| p.as_str().cmp(&f.path)) {
            Ok(i) if on_disk[i].1 == f.size => {}
            Ok(i) => {
                return Err(changed(
                    media.path.join(&f.path),
                    format!("{} bytes, {} recorded", on_disk[i].1, f.size),
                ))
            }
            Err(_) => return Err(changed(media.path.join(&f.path), "missing".into())),
        }
    }
    if let Some((extra, _)) = on_disk.iter().find(|(p, _)| {
        recorded
            .binary_search_by(|f| f.path.as_str().cmp(p))
            .is_err()
    }) {
        return Err(changed(media.path.join(extra), "not in the record".into()));
    }
    Ok(())
}

fn collect_sizes(root: &Path, dir: &Path, out: &mut Vec<(String, u64)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            collect_sizes(root, &entry.path(), out)?;
        } else {
            let rel = entry.path();
            let rel = rel.strip_prefix(root).unwrap_or(&rel);
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push((parts.join("/"), meta.len()));
        }
    }
    Ok(())
}

/// What a media run wrote: the new files, the ISO, the Setup Dynamic Updates applied.
pub struct Serviced {
    pub files: Vec<MediaFile>,
    pub iso: Option<(PathBuf, String, u64)>,
    pub setup_updates: Vec<String>,
}

/// Records a media run in one transaction.
pub fn record_serviced(
    db: &Database,
    media: &Media,
    serviced: &Serviced,
) -> Result<(), MediaError> {
    let done = (|| -> rusqlite::Result<()> {
        let tx = db.unchecked_transaction()?;
        let now = now_rfc3339();
        write_files(&tx, media.id, &serviced.files)?;
        if let Some((path, sha256, size)) = &serviced.iso {
            tx.execute(
                "UPDATE media SET iso_path = ?2, iso_sha256 = ?3, iso_size = ?4 WHERE id = ?1",
                params![media.id, path.display().to_string(), sha256, *size as i64],
            )?;
        }
        tx.execute(
            "UPDATE media SET serviced_at = ?2 WHERE id = ?1",
            params![media.id, now],
        )?;
        for id in &serviced.setup_updates {
            tx.execute(
                "INSERT OR REPLACE INTO media_setup_updates (media_id, update_id, applied_at) VALUES (?1, ?2, ?3)",
                params![media.id, id, now],
            )?;
        }
        tx.commit()
    })();
    done.map_err(|e| db.error(e).into())
}

/// Forgets a media and its images (the files stay).
pub fn remove(db: &mut Database, media: &Media) -> Result<(), MediaError> {
    let image_error = |source| MediaError::Image {
        media: media.name.clone(),
        source: Box::new(source),
    };
    db.execute("DELETE FROM media WHERE id = ?1", [media.id])
        .map_err(|e| db.error(e))?;
    for id in [Some(media.install_image_id), media.boot_image_id]
        .into_iter()
        .flatten()
    {
        if let Ok(img) = image::get(db, id) {
            image::remove(db, &img).map_err(image_error)?;
        }
    }
    Ok(())
}
