//! The site: a directory holding `site.toml`, the site database, the content library, the
//! servicing staging folder (by default) and `logs/`.

mod config;
mod database;
mod drives;

use std::path::{Path, PathBuf};

pub use config::{ServerSettings, ServicingDrive, SiteConfig};
pub use database::{Database, Migrations, Schema};
pub use drives::{drive_holding, drive_of, list_drives, list_drives_with, Drive};

pub const CONFIG_FILE: &str = "site.toml";
pub const DATABASE_FILE: &str = "site.db";
pub const LIBRARY_DIR: &str = "ContentLibrary";
pub const LOGS_DIR: &str = "logs";
pub const STAGING_FOLDER: &str = "ConfigMgr_OfflineImageServicing";

#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("no site at {}: create one with `ois --site {} site init`", .0.display(), .0.display())]
    Missing(PathBuf),
    #[error("a site already exists at {}: use it, or choose another directory with --site", .0.display())]
    AlreadyExists(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: invalid site configuration: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error("the site database {} is {state}, but the site holds {evidence}: ois will not start a new, empty database over them. Restore site.db (with its site.db-wal) from a backup, or start a new site in another directory (`ois --site DIR site init`)", path.display())]
    DatabaseLost {
        path: PathBuf,
        state: &'static str,
        evidence: String,
    },
    #[error("the site database {} is damaged ({problem}): nothing was changed. Stop every ois process of this site and restore site.db (with its site.db-wal) from a backup", path.display())]
    DatabaseDamaged { path: PathBuf, problem: String },
    #[error("site database {}: {source}", path.display())]
    Database {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

impl SiteError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        SiteError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// An opened site. Cheap to clone and shareable between threads; each thread opens its own
/// database connection with [`Site::database`].
#[derive(Debug, Clone)]
pub struct Site {
    root: PathBuf,
    config: SiteConfig,
    schema: Schema,
}

impl Site {
    /// Creates a new site: directories, configuration and an up-to-date database.
    pub fn init(
        root: &Path,
        servicing_drive: ServicingDrive,
        schema: Schema,
    ) -> Result<Site, SiteError> {
        if root.join(CONFIG_FILE).exists() {
            return Err(SiteError::AlreadyExists(root.to_path_buf()));
        }
        for dir in [
            root.to_path_buf(),
            root.join(LIBRARY_DIR),
            root.join(LOGS_DIR),
        ] {
            std::fs::create_dir_all(&dir).map_err(|e| SiteError::io(&dir, e))?;
        }
        let root = std::fs::canonicalize(root).map_err(|e| SiteError::io(root, e))?;
        let config = SiteConfig {
            servicing_drive,
            ..SiteConfig::default()
        };
        config.save(&root.join(CONFIG_FILE))?;
        let site = Site {
            root,
            config,
            schema,
        };
        site.database()?;
        Ok(site)
    }

    /// Opens an existing site, migrating its database to this version of ois.
    pub fn open(root: &Path, schema: Schema) -> Result<Site, SiteError> {
        let config_path = root.join(CONFIG_FILE);
        if !config_path.is_file() {
            return Err(SiteError::Missing(root.to_path_buf()));
        }
        let root = std::fs::canonicalize(root).map_err(|e| SiteError::io(root, e))?;
        let config = SiteConfig::load(&config_path)?;
        Ok(Site {
            root,
            config,
            schema,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> &SiteConfig {
        &self.config
    }

    pub fn library_dir(&self) -> PathBuf {
        self.root.join(LIBRARY_DIR)
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.root.join(LOGS_DIR)
    }

    /// Opens a connection to the site database, applying pending migrations. A database that
    /// vanished (or was emptied) while the site still holds content is never silently recreated:
    /// the new one would know nothing of that content.
    pub fn database(&self) -> Result<Database, SiteError> {
        let path = self.root.join(DATABASE_FILE);
        let state = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("missing"),
            Ok(m) if m.len() == 0 => Some("empty"),
            _ => None,
        };
        if let Some(state) = state {
            if let Some(evidence) = self.content_without_database() {
                return Err(SiteError::DatabaseLost {
                    path,
                    state,
                    evidence,
                });
            }
        }
        Database::open(&path, self.schema)
    }

    /// What the site holds that only its database can account for: library files, run logs.
    fn content_without_database(&self) -> Option<String> {
        let count =
            |dir: PathBuf| -> usize { std::fs::read_dir(dir).map_or(0, |entries| entries.count()) };
        let library = count(self.library_dir().join("files"));
        let runs = count(self.logs_dir().join(crate::log::RUN_LOGS_DIR));
        let mut held = Vec::new();
        if library > 0 {
            held.push(format!(
                "a content library ({} has {library} entries)",
                self.library_dir().join("files").display()
            ));
        }
        if runs > 0 {
            held.push(format!("the logs of {runs} servicing run(s)"));
        }
        (!held.is_empty()).then(|| held.join(" and "))
    }

    /// The stage of one run: `<staging root>/<site tag>-run-N`. The tag (from the site's path)
    /// keeps two sites that share a servicing drive out of each other's stages.
    pub fn stage_dir(&self, run_id: i64) -> PathBuf {
        use sha2::Digest;
        let root = std::fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        let digest = sha2::Sha256::digest(root.to_string_lossy().as_bytes());
        let tag = crate::fsutil::hex(&digest[..4]);
        self.staging_root().join(format!("{tag}-run-{run_id}"))
    }

    /// The folder where servicing runs stage their work:
    /// `<servicing drive>/ConfigMgr_OfflineImageServicing`. A configured drive that does not
    /// exist behaves as Automatic (the site's own drive), as Configuration Manager does.
    pub fn staging_root(&self) -> PathBuf {
        match &self.config.servicing_drive {
            ServicingDrive::Auto => self.root.join(STAGING_FOLDER),
            ServicingDrive::Path(drive) if drive.is_dir() => drive.join(STAGING_FOLDER),
            ServicingDrive::Path(drive) => {
                tracing::warn!(
                    "servicing drive {} does not exist; using the site's drive (Automatic)",
                    drive.display()
                );
                self.root.join(STAGING_FOLDER)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_sharing_a_servicing_drive_get_their_own_stages() {
        let shared = tempfile::tempdir().expect("drive");
        let sites = tempfile::tempdir().expect("sites");
        let drive = ServicingDrive::Path(shared.path().to_path_buf());
        let a = Site::init(&sites.path().join("a"), drive.clone(), crate::SCHEMA).expect("site a");
        let b = Site::init(&sites.path().join("b"), drive, crate::SCHEMA).expect("site b");
        assert_eq!(a.staging_root(), b.staging_root());
        assert_ne!(a.stage_dir(1), b.stage_dir(1));
        assert_eq!(a.stage_dir(1), a.stage_dir(1));
        assert!(a
            .stage_dir(1)
            .starts_with(shared.path().join(STAGING_FOLDER)));
    }
}
