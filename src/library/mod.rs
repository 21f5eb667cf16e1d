//! The content library: update packages validated once, their payload stored once by SHA-256,
//! their metadata in the site database (tables `updates`, `update_files`).

pub(crate) mod cabfolder;
pub mod cbs;
mod compressed;
mod leftovers;
pub mod manifest;
mod package;
mod store;
mod update_id;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use compressed::{CompressedPayload, PreparedPayloads};
pub use manifest::AppliesTo;
pub use manifest::{Architecture, Change, Manifest, UpdateTarget};
pub use package::MANIFEST_NAME;
pub use update_id::UpdateId;

use crate::fsutil::{hex, now_rfc3339};
use crate::hint::Hint;
use crate::site::{Database, Migrations, Site, SiteError};
use package::Package;
use store::FileStore;

pub static MIGRATIONS: Migrations = Migrations {
    module: "library",
    steps: &[
        "CREATE TABLE updates (
            id TEXT PRIMARY KEY COLLATE NOCASE,
            title TEXT NOT NULL,
            classification TEXT,
            architecture TEXT NOT NULL,
            manifest TEXT NOT NULL,
            digest TEXT NOT NULL,
            source TEXT NOT NULL,
            size_bytes INTEGER NOT NULL,
            imported_at TEXT NOT NULL);
        CREATE TABLE update_files (
            update_id TEXT NOT NULL REFERENCES updates(id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size_bytes INTEGER NOT NULL,
            PRIMARY KEY (update_id, path));",
        "CREATE TABLE compressed_payloads (
            update_id TEXT NOT NULL REFERENCES updates(id) ON DELETE CASCADE,
            compression TEXT NOT NULL,
            chunk_size INTEGER NOT NULL,
            file TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            built_at TEXT NOT NULL,
            PRIMARY KEY (update_id, compression, chunk_size));",
        // Windows (CBS) packages: their identity in parts, their parents with the version
        // comparisons, and the original files stored unchanged (see `cbs`).
        "CREATE TABLE cbs_packages (
            identity TEXT PRIMARY KEY COLLATE NOCASE,
            kb TEXT COLLATE NOCASE,
            name TEXT NOT NULL,
            public_key_token TEXT NOT NULL,
            processor_architecture TEXT NOT NULL,
            language TEXT NOT NULL,
            version TEXT NOT NULL,
            kind TEXT NOT NULL,
            release_type TEXT,
            classification TEXT,
            architecture TEXT NOT NULL,
            restart TEXT,
            express INTEGER NOT NULL,
            container TEXT NOT NULL,
            source TEXT NOT NULL,
            source_sha256 TEXT NOT NULL,
            member TEXT,
            details TEXT NOT NULL,
            imported_at TEXT NOT NULL);
        CREATE INDEX cbs_packages_kb ON cbs_packages(kb);
        CREATE TABLE cbs_parents (
            identity TEXT NOT NULL REFERENCES cbs_packages(identity) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            name TEXT NOT NULL,
            public_key_token TEXT NOT NULL,
            processor_architecture TEXT NOT NULL,
            language TEXT NOT NULL,
            version TEXT NOT NULL,
            build_compare TEXT,
            revision_compare TEXT,
            integrate TEXT,
            disposition TEXT,
            PRIMARY KEY (identity, position));
        CREATE TABLE cbs_files (
            identity TEXT NOT NULL REFERENCES cbs_packages(identity) ON DELETE CASCADE,
            role TEXT NOT NULL,
            name TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size_bytes INTEGER NOT NULL,
            PRIMARY KEY (identity, role, name));",
    ],
};

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("package {} is not valid:\n  - {}\nFix the package and import it again; nothing was imported.", origin.display(), problems.join("\n  - "))]
    InvalidPackage {
        origin: PathBuf,
        problems: Vec<String>,
    },
    #[error("update {id} is already in the content library with different content ({}): give the changed package a new id; nothing was imported", origin.display())]
    Conflict { id: String, origin: PathBuf },
    #[error("update {id} was imported by another process while this import ran, with different content ({}): give the changed package a new id; nothing was imported", origin.display())]
    ImportedElsewhere { id: String, origin: PathBuf },
    #[error("update {id} is given twice ({} and {}); nothing was imported", first.display(), second.display())]
    DuplicateInBatch {
        id: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("Windows update file {}: {reason}; nothing was imported", file.display())]
    InvalidWindowsPackage { file: PathBuf, reason: String },
    #[error("Windows package {identity} is already in the content library from {stored}, and {} is a different file with the same identity: remove one of them from what you import; nothing was imported", new.display())]
    WindowsPackageConflict {
        identity: String,
        stored: String,
        new: PathBuf,
    },
    #[error("update {0} is not in the content library")]
    UnknownUpdate(String),
    #[error("content library file {} ({path} of update {id}) is damaged (SHA-256 {hashes}): import the package again to repair it", file.display())]
    Damaged {
        id: String,
        path: String,
        file: PathBuf,
        /// What the file hashes to, and what it should.
        hashes: String,
    },
    #[error("content library file {path} of update {id} is missing: import the package again to repair it")]
    Missing { id: String, path: String },
    #[error("package {} {detail}, more than import_max_expanded_gib ({limit} bytes, site.toml): raise the setting if the package is genuine; nothing was imported", origin.display())]
    TooLarge {
        origin: PathBuf,
        detail: String,
        limit: u64,
    },
    #[error("package {} needs {needed} bytes in the content library, but its disk ({}) has {free} bytes free: free space there and import again; nothing was imported", origin.display(), mount.display())]
    NoRoom {
        origin: PathBuf,
        needed: u64,
        mount: PathBuf,
        free: u64,
    },
    #[error("the content library's disk is full ({}) while importing {}: free space there and import again; nothing was imported", library.display(), origin.display())]
    LibraryFull { library: PathBuf, origin: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Site(#[from] SiteError),
}

impl LibraryError {
    /// What to do about it.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            LibraryError::UnknownUpdate(id) => {
                Some(Hint::FindOrImportUpdate { update: id.clone() })
            }
            LibraryError::Site(e) => e.hint(),
            _ => None,
        }
    }
}

/// A payload file of an update, as stored.
#[derive(Debug, Clone, Serialize)]
pub struct PayloadFile {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

#[cfg(test)]
impl Update {
    /// An update of the given manifest text, with no files (for unit tests).
    pub fn from_manifest(text: &str) -> Update {
        Update {
            manifest: manifest::parse(text).expect("manifest"),
            size_bytes: 0,
            imported_at: String::new(),
            source: String::new(),
            files: Vec::new(),
        }
    }
}

/// A payload file as a run reads it: its path in the package, the file that holds it, and the
/// SHA-256 that file must have. wimlib captures source files sharing an inode within one update
/// call as hard links, so every placement of a content in an update reads a file of its own:
/// `file` for the first placement of this package file, `copies` for the further ones (the
/// same file added at several targets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InPlace {
    pub path: String,
    pub file: PathBuf,
    pub sha256: String,
    pub copies: Vec<PathBuf>,
}

impl InPlace {
    /// The file to read for placement `k` (0-based) of this package file in its update.
    pub fn placement(&self, k: usize) -> Option<&Path> {
        match k {
            0 => Some(&self.file),
            k => self.copies.get(k - 1).map(PathBuf::as_path),
        }
    }
}

/// How many times each payload file (by lower-case package path) is placed by the adds of a
/// manifest, under the package rule: the file of that path, or else every file under that
/// folder (as servicing's `added` lays them down).
pub fn placements(manifest: &Manifest, files: &[PayloadFile]) -> HashMap<String, usize> {
    let by_path: BTreeMap<String, ()> = files.iter().map(|f| (f.path.to_lowercase(), ())).collect();
    let mut uses: HashMap<String, usize> = HashMap::new();
    for change in &manifest.changes {
        let Change::Add { source, .. } = change else {
            continue;
        };
        let wanted = source.to_lowercase();
        if by_path.contains_key(&wanted) {
            *uses.entry(wanted).or_default() += 1;
            continue;
        }
        let prefix = format!("{wanted}/");
        for (path, ()) in by_path
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
        {
            *uses.entry(path.clone()).or_default() += 1;
        }
    }
    uses
}

/// An update in the content library.
#[derive(Debug, Clone, Serialize)]
pub struct Update {
    #[serde(flatten)]
    pub manifest: Manifest,
    pub size_bytes: u64,
    pub imported_at: String,
    pub source: String,
    #[serde(skip)]
    pub files: Vec<PayloadFile>,
}

impl Update {
    pub fn id(&self) -> &str {
        &self.manifest.id
    }
}

/// Which architectures to list: one, or all. Neutral updates match every architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchFilter {
    All,
    Only(Architecture),
}

impl std::str::FromStr for ArchFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("all") {
            return Ok(ArchFilter::All);
        }
        match Architecture::parse(s) {
            Some(Architecture::Neutral) | None => Err(format!("{s:?}: use x86, x64, arm64 or all")),
            Some(a) => Ok(ArchFilter::Only(a)),
        }
    }
}

impl ArchFilter {
    pub fn matches(self, arch: Architecture) -> bool {
        match self {
            ArchFilter::All => true,
            ArchFilter::Only(a) => arch == a || arch == Architecture::Neutral,
        }
    }
}

/// Case-insensitive match of `filter` in an update's id, title and classification.
pub fn matches_text(m: &Manifest, filter: Option<&str>) -> bool {
    let Some(f) = filter.map(str::to_lowercase) else {
        return true;
    };
    m.id.to_lowercase().contains(&f)
        || m.title.to_lowercase().contains(&f)
        || m.classification
            .as_deref()
            .is_some_and(|c| c.to_lowercase().contains(&f))
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub enum ImportStatus {
    Imported,
    AlreadyPresent,
}

/// The two kinds of package the library holds: ois's file-level packages (`update.toml`) and
/// Windows' own CBS packages (`.msu`, `.cab` with `update.mum`).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PackageKind {
    File,
    Cbs,
}

impl PackageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PackageKind::File => "file",
            PackageKind::Cbs => "cbs",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportOutcome {
    pub id: String,
    pub title: String,
    pub kind: PackageKind,
    pub status: ImportStatus,
    pub files: usize,
    pub bytes: u64,
}

/// A package that passed validation, with its payload hashed.
struct Validated {
    package: Package,
    manifest: Manifest,
    /// Each payload file with where it landed in the library's incoming area (nowhere when
    /// its content was received or stored already).
    files: Vec<(PayloadFile, Option<PathBuf>)>,
    digest: String,
}

pub struct ContentLibrary {
    store: FileStore,
    /// `import_max_expanded_gib`, in bytes.
    max_expanded: u64,
}

impl ContentLibrary {
    pub fn new(site: &Site) -> Self {
        ContentLibrary {
            store: FileStore::new(site.library_dir()),
            max_expanded: site.config().import_max_expanded_bytes(),
        }
    }

    /// Imports packages: every package is validated and hashed before anything is stored.
    /// Removes what imports and runs killed mid-way left in the library.
    pub fn sweep_leftovers(&self, db: &Database) -> Vec<PathBuf> {
        leftovers::sweep(self.store.root(), db)
    }

    pub fn import(
        &self,
        db: &mut Database,
        origins: &[PathBuf],
    ) -> Result<Vec<ImportOutcome>, LibraryError> {
        let mut validated = Vec::new();
        let mut seen: HashMap<String, PathBuf> = HashMap::new();
        let mut received = HashSet::new();
        self.sweep_leftovers(db);
        // Every payload file is read once: hashed while it lands here.
        let incoming = self.store.incoming().map_err(|e| LibraryError::Io {
            path: self.store.incoming_root(),
            source: e,
        })?;
        // Declared after `incoming`, so dropped (its writers joined) before that is removed.
        let lander = store::Lander::start();
        let inputs = cbs::input::expand(origins)?;
        let mut windows = Vec::new();
        for (n, input) in inputs.iter().enumerate() {
            let origin = match input {
                cbs::input::Input::FileLevel(origin) => origin,
                cbs::input::Input::Cbs(source) => {
                    let read = cbs::container::read(
                        self.max_expanded,
                        source,
                        &incoming.path().join(n.to_string()),
                    )
                    .map_err(|e| match e {
                        LibraryError::Io { source: io, .. } if is_disk_full(&io) => {
                            LibraryError::LibraryFull {
                                library: self.store.root().to_path_buf(),
                                origin: source.file.clone(),
                            }
                        }
                        e => e,
                    });
                    match read {
                        Ok(r) => windows.push(r),
                        Err(e) => {
                            return Err(lander
                                .finish()
                                .err()
                                .map_or(e, |w| self.write_error(&incoming, &source.file, w)))
                        }
                    }
                    continue;
                }
            };
            let v = validate(
                &self.store,
                self.max_expanded,
                origin,
                &incoming.path().join(n.to_string()),
                &mut received,
                &lander,
            );
            let v = match v {
                Ok(v) => v,
                // A failed write is the cause of whatever failed after it.
                Err(e) => {
                    return Err(lander
                        .finish()
                        .err()
                        .map_or(e, |w| self.write_error(&incoming, origin, w)))
                }
            };
            if let Some(first) = seen.insert(v.manifest.id.to_lowercase(), origin.clone()) {
                return Err(LibraryError::DuplicateInBatch {
                    id: v.manifest.id,
                    first,
                    second: origin.clone(),
                });
            }
            validated.push(v);
        }
        let mut outcomes = Vec::new();
        let mut to_store = Vec::new();
        let mut repairs = Vec::new();
        for v in validated {
            let existing: Option<String> = db
                .query_row(
                    "SELECT digest FROM updates WHERE id = ?1",
                    [&v.manifest.id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| db.error(e))?;
            let outcome = ImportOutcome {
                id: v.manifest.id.clone(),
                title: v.manifest.title.clone(),
                kind: PackageKind::File,
                status: ImportStatus::Imported,
                files: v.files.len(),
                bytes: v.files.iter().map(|(f, _)| f.size).sum(),
            };
            match existing {
                Some(d) if d == v.digest => {
                    outcomes.push(ImportOutcome {
                        status: ImportStatus::AlreadyPresent,
                        ..outcome
                    });
                    // What landed is content the store lacks or holds damaged: the repair.
                    repairs.push(v);
                }
                Some(_) => {
                    return Err(LibraryError::Conflict {
                        id: v.manifest.id,
                        origin: v.package.origin,
                    })
                }
                None => {
                    to_store.push((outcomes.len(), v));
                    outcomes.push(outcome);
                }
            }
        }
        let windows_new = self.check_windows(db, &windows, &mut outcomes)?;
        let sync = |store: &FileStore| {
            store.sync().map_err(|e| LibraryError::Io {
                path: store.root().to_path_buf(),
                source: e,
            })
        };
        lander
            .finish()
            .map_err(|e| self.write_error(&incoming, Path::new("the packages"), e))?;
        sync(&self.store)?;
        for v in &repairs {
            let n = v.files.iter().filter(|(_, r)| r.is_some()).count();
            if n > 0 {
                tracing::warn!(
                    "update {}: {n} file(s) of the content library were missing or damaged; restored from {}",
                    v.manifest.id,
                    v.package.origin.display()
                );
            }
        }
        for v in to_store.iter().map(|(_, v)| v).chain(&repairs) {
            for (f, received) in v.files.iter().filter_map(|(f, r)| Some((f, r.as_ref()?))) {
                self.store
                    .adopt(received, &f.sha256)
                    .map_err(|e| LibraryError::Io {
                        path: received.to_path_buf(),
                        source: e,
                    })?;
            }
        }
        for r in &windows {
            for (f, landed) in &r.originals {
                if !self.store.holds(&f.sha256) {
                    self.store
                        .adopt(landed, &f.sha256)
                        .map_err(|e| LibraryError::Io {
                            path: landed.clone(),
                            source: e,
                        })?;
                }
            }
        }
        sync(&self.store)?;
        let now = now_rfc3339();
        let db_path = db.path().to_path_buf();
        let db_error = |e| SiteError::Database {
            path: db_path.clone(),
            source: e,
        };
        let tx = db.transaction().map_err(db_error)?;
        for (at, v) in &to_store {
            let m = &v.manifest;
            let json = serde_json::to_string(m).map_err(|e| LibraryError::Io {
                path: v.package.origin.clone(),
                source: std::io::Error::other(e),
            })?;
            let record = Record {
                manifest: m,
                json: &json,
                digest: &v.digest,
                origin: &v.package.origin,
                files: v.files.iter().map(|(f, _)| f).collect(),
                now: &now,
            };
            match record.insert(&tx).map_err(db_error)? {
                Inserted::New => tracing::info!(
                    "imported update {} ({}) from {}",
                    m.id,
                    m.title,
                    v.package.origin.display()
                ),
                // Another process imported the same package since this one looked.
                Inserted::Same => outcomes[*at].status = ImportStatus::AlreadyPresent,
                Inserted::Different => {
                    return Err(LibraryError::ImportedElsewhere {
                        id: m.id.clone(),
                        origin: v.package.origin.clone(),
                    })
                }
            }
        }
        for (at, p) in windows_new {
            let p = cbs::CbsPackage {
                imported_at: now.clone(),
                ..p.clone()
            };
            match cbs::insert(&tx, &p).map_err(db_error)? {
                cbs::Recorded::New => tracing::info!(
                    "imported Windows package {} ({}, {}) from {}",
                    p.identity,
                    p.id(),
                    p.kind.label(),
                    p.source
                ),
                cbs::Recorded::Same => outcomes[at].status = ImportStatus::AlreadyPresent,
                cbs::Recorded::Different(stored) => {
                    return Err(LibraryError::WindowsPackageConflict {
                        identity: p.identity.clone(),
                        stored,
                        new: PathBuf::from(&p.source),
                    })
                }
            }
        }
        tx.commit().map_err(db_error)?;
        Ok(outcomes)
    }
}

/// An update's rows, as one import records them.
struct Record<'a> {
    manifest: &'a Manifest,
    json: &'a str,
    digest: &'a str,
    origin: &'a Path,
    files: Vec<&'a PayloadFile>,
    now: &'a str,
}

/// What recording an update found: imports in several processes race between looking an id up
/// and inserting it, and the loser must not fail on the database's constraint.
#[derive(Debug, PartialEq, Eq)]
enum Inserted {
    New,
    /// Recorded meanwhile by another import, with this content.
    Same,
    /// Recorded meanwhile by another import, with other content.
    Different,
}

impl Record<'_> {
    fn insert(&self, tx: &rusqlite::Transaction) -> rusqlite::Result<Inserted> {
        let m = self.manifest;
        let size: u64 = self.files.iter().map(|f| f.size).sum();
        let added = tx.execute(
            "INSERT INTO updates (id, title, classification, architecture, manifest, digest, source, size_bytes, imported_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (id) DO NOTHING",
            params![m.id, m.title, m.classification, m.architecture.as_str(), self.json, self.digest,
                self.origin.display().to_string(), size as i64, self.now],
        )?;
        if added == 0 {
            let digest: String =
                tx.query_row("SELECT digest FROM updates WHERE id = ?1", [&m.id], |r| {
                    r.get(0)
                })?;
            return Ok(if digest == self.digest {
                Inserted::Same
            } else {
                Inserted::Different
            });
        }
        for f in &self.files {
            tx.execute(
                "INSERT INTO update_files (update_id, path, sha256, size_bytes) VALUES (?1, ?2, ?3, ?4)",
                params![m.id, f.path, f.sha256, f.size as i64],
            )?;
        }
        Ok(Inserted::New)
    }
}

impl ContentLibrary {
    /// Decides what each Windows package read is: new, the same file again (a no-op), or a
    /// different file claiming an identity the library (or this batch) already has.
    fn check_windows<'w>(
        &self,
        db: &Database,
        windows: &'w [cbs::container::ReadSource],
        outcomes: &mut Vec<ImportOutcome>,
    ) -> Result<Vec<(usize, &'w cbs::CbsPackage)>, LibraryError> {
        let mut seen: HashMap<String, (&str, &Path)> = HashMap::new();
        let mut new = Vec::new();
        for r in windows {
            for p in &r.packages {
                let key = p.identity.to_lowercase();
                if let Some((sha, first)) = seen.get(&key) {
                    // The same file given twice (alone and in its folder) is imported once.
                    if *sha == p.source_sha256 {
                        continue;
                    }
                    return Err(LibraryError::WindowsPackageConflict {
                        identity: p.identity.clone(),
                        stored: format!("{} (given in this import)", first.display()),
                        new: r.origin.clone(),
                    });
                }
                seen.insert(key, (&p.source_sha256, &r.origin));
                let outcome = ImportOutcome {
                    id: p.id().to_string(),
                    title: format!("{} {}", p.kind.label(), p.identity),
                    kind: PackageKind::Cbs,
                    status: ImportStatus::Imported,
                    files: p.files.len(),
                    bytes: p.files.iter().map(|f| f.size).sum(),
                };
                match cbs::recorded(db, &p.identity)? {
                    Some((sha, _)) if sha == p.source_sha256 => outcomes.push(ImportOutcome {
                        status: ImportStatus::AlreadyPresent,
                        ..outcome
                    }),
                    Some((_, stored)) => {
                        return Err(LibraryError::WindowsPackageConflict {
                            identity: p.identity.clone(),
                            stored,
                            new: r.origin.clone(),
                        })
                    }
                    None => {
                        new.push((outcomes.len(), p));
                        outcomes.push(outcome);
                    }
                }
            }
        }
        Ok(new)
    }

    /// Where the store keeps an original file of a Windows package (`.msu`, `.cab`, `.psf`),
    /// unchanged: DISM is given copies of these. `None` when the store does not hold it.
    pub fn original_file(&self, file: &cbs::OriginalFile) -> Option<PathBuf> {
        self.store
            .contains(&file.sha256)
            .then(|| self.store.path_of(&file.sha256))
    }

    /// Every Windows (CBS) package in the library, by KB then identity.
    pub fn windows_packages(&self, db: &Database) -> Result<Vec<cbs::CbsPackage>, LibraryError> {
        cbs::all(db)
    }

    /// A failed write into the library: a full disk names the library, not the package.
    fn write_error(
        &self,
        incoming: &tempfile::TempDir,
        origin: &Path,
        e: std::io::Error,
    ) -> LibraryError {
        if is_disk_full(&e) {
            LibraryError::LibraryFull {
                library: self.store.root().to_path_buf(),
                origin: origin.to_path_buf(),
            }
        } else {
            io_error(incoming, e)
        }
    }

    /// Every update in the library, ordered by id.
    pub fn all(&self, db: &Database) -> Result<Vec<Update>, LibraryError> {
        let mut stmt = db
            .prepare(
                "SELECT manifest, size_bytes, imported_at, source, id FROM updates ORDER BY id",
            )
            .map_err(|e| db.error(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| db.error(e))?;
        let mut files = self.files(db)?;
        let mut out = Vec::with_capacity(rows.len());
        for (json, size, imported_at, source, id) in rows {
            let manifest: Manifest = serde_json::from_str(&json).map_err(|e| LibraryError::Io {
                path: PathBuf::from(format!("site database, update {id}")),
                source: std::io::Error::other(e),
            })?;
            out.push(Update {
                files: files.remove(&id.to_lowercase()).unwrap_or_default(),
                manifest,
                size_bytes: size as u64,
                imported_at,
                source,
            });
        }
        Ok(out)
    }

    fn files(&self, db: &Database) -> Result<HashMap<String, Vec<PayloadFile>>, LibraryError> {
        let mut stmt = db
            .prepare("SELECT update_id, path, sha256, size_bytes FROM update_files ORDER BY update_id, path")
            .map_err(|e| db.error(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    PayloadFile {
                        path: r.get(1)?,
                        sha256: r.get(2)?,
                        size: r.get::<_, i64>(3)? as u64,
                    },
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| db.error(e))?;
        let mut map: HashMap<String, Vec<PayloadFile>> = HashMap::new();
        for (id, f) in rows {
            map.entry(id.to_lowercase()).or_default().push(f);
        }
        Ok(map)
    }

    pub fn list(
        &self,
        db: &Database,
        filter: Option<&str>,
        arch: ArchFilter,
    ) -> Result<Vec<Update>, LibraryError> {
        Ok(self
            .all(db)?
            .into_iter()
            .filter(|u| arch.matches(u.manifest.architecture) && matches_text(&u.manifest, filter))
            .collect())
    }

    /// Where each payload file of `update` can be read in place: the store's own file for the
    /// first placement of a content, and for every further placement (a repeated content, or
    /// one file added at several targets) a copy of its own kept beside the store: wimlib
    /// captures files sharing an inode as hard links, and each placement must stay a file of
    /// its own in the image. Such copies are made once, hash-checked. A run reads these only
    /// with the update's compressed payload referenced.
    pub fn direct_sources(&self, update: &Update) -> Result<Vec<InPlace>, LibraryError> {
        self.sources_in_place(update, false)
    }

    /// Makes the copies [`Self::direct_sources`] reads, replacing any that is damaged.
    pub(crate) fn refresh_repeated(&self, update: &Update) -> Result<(), LibraryError> {
        self.sources_in_place(update, true).map(|_| ())
    }

    fn sources_in_place(
        &self,
        update: &Update,
        recheck: bool,
    ) -> Result<Vec<InPlace>, LibraryError> {
        let uses = placements(&update.manifest, &update.files);
        let mut seen = HashSet::new();
        let mut sources = Vec::with_capacity(update.files.len());
        for (n, f) in update.files.iter().enumerate() {
            if !self.store.contains(&f.sha256) {
                return Err(LibraryError::Missing {
                    id: update.id().to_string(),
                    path: f.path.clone(),
                });
            }
            let file = if seen.insert(f.sha256.as_str()) {
                self.store.path_of(&f.sha256)
            } else {
                self.repeated_copy(update, f, &n.to_string(), recheck)?
            };
            let more = uses
                .get(&f.path.to_lowercase())
                .map_or(0, |u| u.saturating_sub(1));
            let copies = (1..=more)
                .map(|k| self.repeated_copy(update, f, &format!("{n}.{k}"), recheck))
                .collect::<Result<Vec<_>, _>>()?;
            sources.push(InPlace {
                path: f.path.clone(),
                file,
                sha256: f.sha256.clone(),
                copies,
            });
        }
        Ok(sources)
    }

    fn repeated_copy(
        &self,
        update: &Update,
        f: &PayloadFile,
        name: &str,
        recheck: bool,
    ) -> Result<PathBuf, LibraryError> {
        let dir = self.store.root().join("repeated").join(update.id());
        let copy = dir.join(format!("{name}-{}", &f.sha256[..16]));
        let sound = || {
            !recheck || crate::fsutil::hash_file(&copy).is_ok_and(|(actual, _)| actual == f.sha256)
        };
        if copy.is_file() && sound() {
            return Ok(copy);
        }
        // Made under a name of its own and renamed over: a concurrent run never reads half a
        // copy, nor finds it gone.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let unique = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let partial = dir.join(format!(".{name}.{}-{unique}.partial", std::process::id()));
        self.copy_checked(update, f, &partial)?;
        std::fs::rename(&partial, &copy).map_err(|e| LibraryError::Io {
            path: copy.clone(),
            source: e,
        })?;
        Ok(copy)
    }

    /// Each distinct content of `update`'s payload with its store file, SHA-256 checked.
    pub(crate) fn checked_contents(
        &self,
        update: &Update,
    ) -> Result<BTreeMap<String, PathBuf>, LibraryError> {
        let mut contents = BTreeMap::new();
        for f in &update.files {
            if contents.contains_key(&f.sha256) {
                continue;
            }
            let path = self.store.path_of(&f.sha256);
            let (actual, _) = crate::fsutil::hash_file(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => LibraryError::Missing {
                    id: update.id().to_string(),
                    path: f.path.clone(),
                },
                _ => LibraryError::Io {
                    path: path.clone(),
                    source: e,
                },
            })?;
            if actual != f.sha256 {
                return Err(LibraryError::Damaged {
                    id: update.id().to_string(),
                    path: f.path.clone(),
                    file: path.clone(),
                    hashes: format!("{actual}, expected {}", f.sha256),
                });
            }
            contents.insert(f.sha256.clone(), path);
        }
        Ok(contents)
    }

    /// Copies an update's payload out of the library into `dest`, checking every hash: each
    /// placement of a payload file in its own copy (under `<id>/<k>/`, k the placement), so no
    /// two placements share an inode.
    pub fn stage(&self, update: &Update, dest: &Path) -> Result<Vec<InPlace>, LibraryError> {
        let root = dest.join(update.id());
        let uses = placements(&update.manifest, &update.files);
        let mut sources = Vec::with_capacity(update.files.len());
        for f in &update.files {
            if !self.store.contains(&f.sha256) {
                return Err(LibraryError::Missing {
                    id: update.id().to_string(),
                    path: f.path.clone(),
                });
            }
            let count = uses
                .get(&f.path.to_lowercase())
                .copied()
                .unwrap_or(1)
                .max(1);
            let mut staged = Vec::with_capacity(count);
            for k in 0..count {
                let target = root.join(k.to_string()).join(&f.path);
                self.copy_checked(update, f, &target)?;
                staged.push(target);
            }
            let file = staged.remove(0);
            sources.push(InPlace {
                path: f.path.clone(),
                file,
                sha256: f.sha256.clone(),
                copies: staged,
            });
        }
        Ok(sources)
    }

    /// Copies one payload file of `update` out of the store to `target`, checking its hash.
    fn copy_checked(
        &self,
        update: &Update,
        f: &PayloadFile,
        target: &Path,
    ) -> Result<(), LibraryError> {
        let copied = self
            .store
            .copy_out(&f.sha256, target)
            .map_err(|e| LibraryError::Io {
                path: target.to_path_buf(),
                source: e,
            })?;
        copied.map_err(|actual| LibraryError::Damaged {
            id: update.id().to_string(),
            path: f.path.clone(),
            file: self.store.path_of(&f.sha256),
            hashes: format!("{actual}, expected {}", f.sha256),
        })
    }
}

fn is_disk_full(e: &std::io::Error) -> bool {
    crate::platform::is_out_of_space(e)
}

/// A package's reader, counting what it yields against what the package may still expand to:
/// declared sizes can lie (a file that grows while read), so the bound holds while writing too.
struct Bounded<'r> {
    inner: &'r mut dyn std::io::Read,
    left: &'r std::cell::Cell<u64>,
    exceeded: &'r std::cell::Cell<bool>,
}

impl std::io::Read for Bounded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.left.get().checked_sub(n as u64) {
            Some(left) => {
                self.left.set(left);
                Ok(n)
            }
            None => {
                self.exceeded.set(true);
                Err(std::io::Error::other(
                    "the package expands past import_max_expanded_gib",
                ))
            }
        }
    }
}

/// What a package's adds lay down in an image, each target counted: every placement becomes a
/// file of its own (in the image, and as a copy in `repeated/` when servicing reads in place).
fn laid_down(manifest: &Manifest, package: &Package) -> u64 {
    let mut total = 0u64;
    for change in &manifest.changes {
        if let Change::Add { source, .. } = change {
            let bytes = match package.file(source) {
                Some(f) => f.size,
                None => package.files_under(source).iter().map(|f| f.size).sum(),
            };
            total = total.saturating_add(bytes);
        }
    }
    total
}

fn io_error(incoming: &tempfile::TempDir, e: std::io::Error) -> LibraryError {
    LibraryError::Io {
        path: incoming.path().to_path_buf(),
        source: e,
    }
}

/// Reads a package, validates its manifest against its files and hashes its payload.
fn validate(
    store: &FileStore,
    max_expanded: u64,
    origin: &Path,
    incoming: &Path,
    received: &mut HashSet<String>,
    lander: &store::Lander,
) -> Result<Validated, LibraryError> {
    let invalid = |problems: Vec<String>| LibraryError::InvalidPackage {
        origin: origin.to_path_buf(),
        problems,
    };
    let package = Package::open(origin).map_err(|e| invalid(vec![e]))?;
    let text = package.read_manifest().map_err(|e| invalid(vec![e]))?;
    let mut manifest = manifest::parse(&text).map_err(invalid)?;
    read_registry_imports(&package, &mut manifest).map_err(invalid)?;
    let mut problems = Vec::new();
    let mut payload: BTreeMap<String, String> = BTreeMap::new();
    let mut targets: HashSet<String> = HashSet::new();
    let mut claim = |target: String, problems: &mut Vec<String>| {
        if !targets.insert(target.to_lowercase()) {
            problems.push(format!("{target} is the target of more than one change"));
        }
    };
    for change in &manifest.changes {
        match change {
            Change::Add { source, target } => {
                if source.eq_ignore_ascii_case(MANIFEST_NAME) {
                    problems.push(format!("{MANIFEST_NAME} cannot be a payload"));
                } else if let Some(f) = package.file(source) {
                    payload.insert(f.path.to_lowercase(), f.path.clone());
                    claim(target.clone(), &mut problems);
                } else {
                    let under = package.files_under(source);
                    if under.is_empty() {
                        problems.push(format!("payload {source} is missing from the package"));
                    }
                    for f in under {
                        payload.insert(f.path.to_lowercase(), f.path.clone());
                        claim(
                            format!("{target}/{}", &f.path[source.len() + 1..]),
                            &mut problems,
                        );
                    }
                }
            }
            Change::Rename { to, .. } => claim(to.clone(), &mut problems),
            Change::Delete { .. } => {}
        }
    }
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let mut wanted = Vec::with_capacity(payload.len());
    for path in payload.values() {
        wanted.push(
            package
                .file(path)
                .ok_or_else(|| invalid(vec![format!("payload {path} is missing")]))?,
        );
    }
    // Bounded before anything is written, from what the package declares.
    let too_large = |detail: String| LibraryError::TooLarge {
        origin: origin.to_path_buf(),
        detail,
        limit: max_expanded,
    };
    let declared = wanted
        .iter()
        .fold(0u64, |sum, f| sum.saturating_add(f.size));
    if declared > max_expanded {
        return Err(too_large(format!("declares {declared} bytes of payload")));
    }
    let placed = laid_down(&manifest, &package);
    if placed > max_expanded {
        return Err(too_large(format!(
            "adds {placed} bytes to an image (each target counted)"
        )));
    }
    if let Some(drive) = crate::site::drive_holding(store.root()) {
        if declared > drive.free_bytes {
            return Err(LibraryError::NoRoom {
                origin: origin.to_path_buf(),
                needed: declared,
                mount: drive.mount_point,
                free: drive.free_bytes,
            });
        }
    }
    let mut files = Vec::new();
    std::fs::create_dir_all(incoming).map_err(|e| LibraryError::Io {
        path: incoming.to_path_buf(),
        source: e,
    })?;
    // Received in the package's own order (fast for CABs), listed in path order (the digest's).
    let mut received_files: BTreeMap<String, (PayloadFile, Option<PathBuf>)> = BTreeMap::new();
    let mut io_error = None;
    let left = std::cell::Cell::new(max_expanded);
    let exceeded = std::cell::Cell::new(false);
    package
        .read_each(&wanted, &mut |f, reader| match store.receive(
            incoming,
            received_files.len(),
            f.size,
            &mut Bounded {
                inner: reader,
                left: &left,
                exceeded: &exceeded,
            },
            received,
            lander,
        ) {
            Ok((landed, sha256, size)) => {
                let file = PayloadFile {
                    path: f.path.clone(),
                    sha256,
                    size,
                };
                received_files.insert(f.path.to_lowercase(), (file, landed));
                Ok(())
            }
            Err(e) => {
                let message = e.to_string();
                io_error = Some(if exceeded.get() {
                    too_large(format!(
                        "expanded past the bound while {} was written",
                        f.path
                    ))
                } else if is_disk_full(&e) {
                    LibraryError::LibraryFull {
                        library: store.root().to_path_buf(),
                        origin: origin.to_path_buf(),
                    }
                } else {
                    LibraryError::Io {
                        path: origin.join(&f.path),
                        source: e,
                    }
                });
                Err(message)
            }
        })
        .map_err(|e| io_error.take().unwrap_or_else(|| invalid(vec![e])))?;
    files.extend(received_files.into_values());
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(&manifest).unwrap_or_default());
    for (f, _) in &files {
        hasher.update(format!("{}\0{}\0{}\n", f.path, f.sha256, f.size));
    }
    Ok(Validated {
        package,
        manifest,
        files,
        digest: hex(&hasher.finalize()),
    })
}

/// The most a `.reg` file of a package may be: real baselines are a few hundred KiB.
const MAX_REG_BYTES: u64 = 64 << 20;

/// Reads each `.reg` file a `[[registry]] import` names into the changes it makes, so the
/// stored manifest holds them and a malformed file refuses the package at import.
fn read_registry_imports(package: &Package, manifest: &mut Manifest) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    for entry in &mut manifest.registry {
        let manifest::RegistryEntry::Import { source, ops } = entry else {
            continue;
        };
        let Some(file) = package.file(source) else {
            problems.push(format!(
                "registry import {source} is missing from the package"
            ));
            continue;
        };
        if file.size > MAX_REG_BYTES {
            problems.push(format!(
                "registry import {source} is {} bytes, over the {} MiB a .reg file may be",
                file.size,
                MAX_REG_BYTES >> 20
            ));
            continue;
        }
        let mut bytes = Vec::new();
        let read = package.read_each(&[file], &mut |_, r| {
            std::io::Read::read_to_end(&mut std::io::Read::take(r, MAX_REG_BYTES + 1), &mut bytes)
                .map(|_| ())
                .map_err(|e| format!("reading {source}: {e}"))
        });
        if let Err(e) = read {
            problems.push(e);
            continue;
        }
        match crate::registry::parse_reg(&bytes, source) {
            Ok(parsed) if parsed.is_empty() => {
                problems.push(format!("registry import {source} changes nothing"))
            }
            Ok(parsed) => *ops = parsed,
            Err(e) => problems.push(e.to_string()),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Reads a package (directory or CAB), writes its files under `dest` and returns its parsed
/// manifest: what other tools need to apply the same package (benchmark baselines).
pub fn unpack(origin: &Path, dest: &Path) -> Result<Manifest, LibraryError> {
    let invalid = |problems: Vec<String>| LibraryError::InvalidPackage {
        origin: origin.to_path_buf(),
        problems,
    };
    let package = Package::open(origin).map_err(|e| invalid(vec![e]))?;
    let manifest = manifest::parse(&package.read_manifest().map_err(|e| invalid(vec![e]))?)
        .map_err(invalid)?;
    let all: Vec<&package::PackageFile> = package.files_under_root();
    package
        .read_each(&all, &mut |f, reader| {
            let target = dest.join(&f.path);
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            let mut out =
                std::fs::File::create(&target).map_err(|e| format!("{}: {e}", target.display()))?;
            std::io::copy(reader, &mut out).map_err(|e| format!("{}: {e}", target.display()))?;
            Ok(())
        })
        .map_err(|e| invalid(vec![e]))?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that grows after the package was listed yields more than it declared: the bound
    /// holds while writing, not only against the declared sizes.
    #[test]
    fn the_expansion_bound_holds_while_writing_when_declared_sizes_lie() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStore::new(dir.path().join("lib"));
        let incoming = store.incoming().expect("incoming");
        let lander = store::Lander::start();
        let left = std::cell::Cell::new(1000);
        let exceeded = std::cell::Cell::new(false);
        let mut grown = std::io::Cursor::new(vec![1u8; 5000]);
        let received = store.receive(
            incoming.path(),
            0,
            10,
            &mut Bounded {
                inner: &mut grown,
                left: &left,
                exceeded: &exceeded,
            },
            &mut HashSet::new(),
            &lander,
        );
        let err = received.expect_err("past the bound");
        assert!(err.to_string().contains("import_max_expanded_gib"), "{err}");
        assert!(exceeded.get());
        lander.finish().expect("writers");
        // What stayed within the bound is counted, and passes.
        let left = std::cell::Cell::new(1000);
        let exceeded = std::cell::Cell::new(false);
        let lander = store::Lander::start();
        let (_, _, size) = store
            .receive(
                incoming.path(),
                1,
                600,
                &mut Bounded {
                    inner: &mut std::io::Cursor::new(vec![2u8; 600]),
                    left: &left,
                    exceeded: &exceeded,
                },
                &mut HashSet::new(),
                &lander,
            )
            .expect("within the bound");
        assert_eq!((size, left.get(), exceeded.get()), (600, 400, false));
    }

    #[cfg(unix)]
    #[test]
    fn a_full_disk_is_recognised_whatever_reported_it() {
        assert!(is_disk_full(&std::io::Error::from_raw_os_error(
            libc::ENOSPC
        )));
        assert!(is_disk_full(&std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            "writing x"
        )));
        assert!(!is_disk_full(&std::io::Error::other("x")));
    }

    /// Two imports of one id race between looking it up and inserting it: the one that inserts
    /// second finds the row instead of failing on the constraint.
    #[test]
    fn an_update_recorded_meanwhile_by_another_import_is_told_apart_by_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let site = Site::init(
            &dir.path().join("site"),
            crate::site::ServicingDrive::Auto,
            crate::SCHEMA,
        )
        .expect("site");
        let mut db = site.database().expect("db");
        let manifest = manifest::parse(
            "id = \"KB1\"\ntitle = \"t\"\narchitecture = \"x64\"\n[[change]]\ndelete = \"a\"\n",
        )
        .expect("manifest");
        let file = PayloadFile {
            path: "payload/a".into(),
            sha256: "00".repeat(32),
            size: 1,
        };
        let record = |digest: &'static str| Record {
            manifest: &manifest,
            json: "{}",
            digest,
            origin: Path::new("/packages/KB1"),
            files: vec![&file],
            now: "now",
        };
        let tx = db.transaction().expect("tx");
        assert_eq!(record("d1").insert(&tx).expect("insert"), Inserted::New);
        assert_eq!(record("d1").insert(&tx).expect("again"), Inserted::Same);
        assert_eq!(
            record("d2").insert(&tx).expect("other"),
            Inserted::Different
        );
        tx.commit().expect("commit");
        let files: i64 = db
            .query_row("SELECT count(*) FROM update_files", [], |r| r.get(0))
            .expect("count");
        assert_eq!(files, 1, "the payload rows are recorded once");
        let message = LibraryError::ImportedElsewhere {
            id: "KB1".into(),
            origin: "/packages/KB1".into(),
        }
        .to_string();
        assert!(
            message.contains("update KB1 was imported by another process")
                && message.contains("/packages/KB1"),
            "{message}"
        );
    }
}
