//! Nested images: WIM files inside an image's indexes, above all the recovery environment at
//! `Windows/System32/Recovery/Winre.wim` (tables `nested_images`, `nested_image_parents`,
//! `nested_indexes`, `nested_installed_updates`).
//!
//! A nested image is one blob of its parent, named by its SHA-1: the same Winre.wim in every
//! index (the usual, single-instanced case) is one nested image held by several indexes, and
//! a different blob in some index is a second one.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::{params, Transaction};
use serde::Serialize;

use super::inspect::{self, IndexInfo, WimContents};
use super::{ImageId, IndexDetail, InstalledUpdate};
use crate::fsutil::now_rfc3339;
use crate::library::{manifest, Architecture, UpdateTarget};
use crate::servicing::RunId;
use crate::site::Database;
use crate::wim::{Progress, TreeEntry, Wim, WimError};

/// Where Windows keeps its recovery environment in an installed image.
pub const WINRE_PATH: &str = "Windows/System32/Recovery/Winre.wim";

/// The tables, created by the image module's migrations.
pub const MIGRATION: &str = "CREATE TABLE nested_images (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        sha1 TEXT NOT NULL,
        size_bytes INTEGER NOT NULL,
        compression TEXT,
        error TEXT,
        UNIQUE (image_id, sha1));
    CREATE TABLE nested_image_parents (
        nested_id INTEGER NOT NULL REFERENCES nested_images(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        path TEXT NOT NULL,
        PRIMARY KEY (nested_id, idx, path));
    CREATE TABLE nested_indexes (
        nested_id INTEGER NOT NULL REFERENCES nested_images(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        name TEXT NOT NULL,
        architecture TEXT,
        build INTEGER,
        version TEXT,
        edition TEXT,
        product_name TEXT,
        PRIMARY KEY (nested_id, idx));
    CREATE TABLE nested_installed_updates (
        nested_id INTEGER NOT NULL REFERENCES nested_images(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        update_id TEXT NOT NULL COLLATE NOCASE,
        source TEXT NOT NULL,
        run_id INTEGER,
        installed_at TEXT NOT NULL,
        PRIMARY KEY (nested_id, idx, update_id));";

crate::id::integer_id!(
    /// A nested image (`nested_images.id`).
    NestedId,
    "a nested image id"
);

/// One place a nested image is held: an index of the parent and the path there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NestedParent {
    pub index: u32,
    pub path: String,
}

/// A nested image of a registered image.
#[derive(Debug, Clone, Serialize)]
pub struct NestedImage {
    pub id: NestedId,
    #[serde(skip)]
    pub image_id: ImageId,
    /// Its path in the parent, as the first index holding it spells it.
    pub path: String,
    /// SHA-1 of the nested WIM file: its blob in the parent.
    pub sha1: String,
    pub size_bytes: u64,
    pub compression: Option<String>,
    /// Why it cannot be serviced (a damaged or unsafe nested WIM); its indexes are then unknown.
    pub error: Option<String>,
    pub parents: Vec<NestedParent>,
    pub indexes: Vec<IndexDetail>,
}

impl NestedImage {
    pub fn parent_indexes(&self) -> Vec<u32> {
        let mut out: Vec<u32> = self.parents.iter().map(|p| p.index).collect();
        out.dedup();
        out
    }

    /// `Windows/System32/Recovery/Winre.wim in index(es) 1, 2`: how messages name it.
    pub fn label(&self) -> String {
        format!(
            "{} in index(es) {}",
            self.path,
            join(&self.parent_indexes())
        )
    }
}

fn join(indexes: &[u32]) -> String {
    indexes
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why the nested images of a WIM cannot be looked for.
#[derive(Debug, thiserror::Error)]
pub enum NestedError {
    #[error("--nested {path:?}: {reason}; name a .wim file inside the image, e.g. Windows/System32/Recovery/Winre.wim")]
    BadPath { path: String, reason: String },
    #[error("--nested {path}: no index of {} holds that file; check the path (it is inside the image)", parent.display())]
    NotFound { path: String, parent: PathBuf },
    #[error("cannot look for nested images in {}: {source}", parent.display())]
    Parent { parent: PathBuf, source: WimError },
    #[error("cannot read a nested image of {} into {}: {source}", parent.display(), dir.display())]
    Stage {
        parent: PathBuf,
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// A nested WIM found in a parent, inspected.
#[derive(Debug)]
pub struct Found {
    pub sha1: [u8; 20],
    pub path: String,
    pub size: u64,
    pub parents: Vec<NestedParent>,
    /// What it holds, or why it cannot be used (naming the parent, the indexes and the path).
    pub contents: Result<WimContents, String>,
}

/// The paths looked for: Winre.wim, then those the admin named, normalised.
fn wanted_paths(extra: &[String]) -> Result<Vec<String>, NestedError> {
    let mut out = vec![WINRE_PATH.to_string()];
    for p in extra {
        let path = manifest::image_path(p).map_err(|reason| NestedError::BadPath {
            path: p.clone(),
            reason,
        })?;
        if !path.to_ascii_lowercase().ends_with(".wim") {
            return Err(NestedError::BadPath {
                path: p.clone(),
                reason: "not a .wim file".into(),
            });
        }
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&path)) {
            out.push(path);
        }
    }
    Ok(out)
}

/// Finds the nested WIMs of `parent` (every index: Winre.wim and the `extra` paths, compared
/// without case as Windows does) and inspects each distinct blob once. Each is read out of
/// the parent alone (nothing else is extracted) into a temporary file under `scratch`, which
/// is removed before this returns. A nested WIM that is damaged or unsafe is found with its
/// reason, not refused: the parent stays usable without it.
pub fn detect(parent: &Path, scratch: &Path, extra: &[String]) -> Result<Vec<Found>, NestedError> {
    let paths = wanted_paths(extra)?;
    let wim_error = |source| NestedError::Parent {
        parent: parent.to_path_buf(),
        source,
    };
    let wim = Wim::open(parent, false).map_err(wim_error)?;
    let count = wim.header().image_count;
    let mut groups: Vec<(TreeEntry, Vec<NestedParent>)> = Vec::new();
    for p in &paths[1..] {
        let held = (1..=count).any(|i| {
            wim.entry(i, &format!("/{p}"))
                .ok()
                .flatten()
                .is_some_and(|e| !e.is_dir)
        });
        if !held {
            return Err(NestedError::NotFound {
                path: p.clone(),
                parent: parent.to_path_buf(),
            });
        }
    }
    for index in 1..=count {
        for p in &paths {
            let Some(entry) = wim.entry(index, &format!("/{p}")).map_err(wim_error)? else {
                continue;
            };
            if entry.is_dir {
                continue;
            }
            let place = NestedParent {
                index,
                path: entry.path.clone(),
            };
            match groups.iter_mut().find(|(e, _)| e.sha1 == entry.sha1) {
                Some((_, parents)) => {
                    if !parents.contains(&place) {
                        parents.push(place)
                    }
                }
                None => groups.push((entry, vec![place])),
            }
        }
    }
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(scratch).map_err(|source| NestedError::Stage {
        parent: parent.to_path_buf(),
        dir: scratch.to_path_buf(),
        source,
    })?;
    let mut files = wim.files().map_err(wim_error)?;
    let mut found = Vec::new();
    for (entry, parents) in groups {
        let indexes: Vec<u32> = parents.iter().map(|p| p.index).collect();
        let label = format!(
            "nested image {} in index(es) {} of {}",
            entry.path,
            join(&indexes),
            parent.display()
        );
        let contents = read_out(&mut files, &entry, scratch)
            .map_err(|source| NestedError::Stage {
                parent: parent.to_path_buf(),
                dir: scratch.to_path_buf(),
                source,
            })?
            .and_then(|tmp| inspect_file(tmp.path(), &label));
        if let Err(reason) = &contents {
            tracing::warn!("{reason}; the image is registered without it");
        }
        found.push(Found {
            sha1: entry.sha1,
            path: entry.path.clone(),
            size: entry.size,
            parents,
            contents,
        });
    }
    Ok(found)
}

/// The nested WIM's data, copied out of the parent's blob into a temporary file. The outer
/// error is the scratch folder's; the inner one the parent's data (the nested image is then
/// unusable, as a damaged one is).
fn read_out(
    files: &mut crate::wim::FileReader<'_>,
    entry: &TreeEntry,
    scratch: &Path,
) -> std::io::Result<Result<tempfile::NamedTempFile, String>> {
    let tmp = tempfile::Builder::new()
        .prefix("import-nested-")
        .suffix(".wim")
        .tempfile_in(scratch)?;
    let write = extract_to(files, entry, tmp.path());
    Ok(write.map(|()| tmp).map_err(|e| e.to_string()))
}

/// Writes the data of `entry` (a nested WIM) to `dest`, straight from its blob.
pub fn extract_to(
    files: &mut crate::wim::FileReader<'_>,
    entry: &TreeEntry,
    dest: &Path,
) -> Result<(), WimError> {
    let file = std::fs::File::create(dest).map_err(|e| WimError::io(dest, "creating", e))?;
    let mut out = std::io::BufWriter::new(file);
    files.stream(entry, &mut |bytes| {
        out.write_all(bytes)
            .map_err(|e| WimError::io(dest, "writing", e))
    })?;
    out.flush().map_err(|e| WimError::io(dest, "writing", e))
}

/// Inspects a nested WIM read out to `path` as an image is inspected (indexes, architecture,
/// build, installed updates, entries wimlib would drop) and checks every blob. Messages name
/// the nested image by `label`, not by the temporary file.
pub fn inspect_file(path: &Path, label: &str) -> Result<WimContents, String> {
    let named = |e: String| {
        let text = e.replace(&path.display().to_string(), label);
        if text.contains(label) {
            text
        } else {
            format!("{label}: {text}")
        }
    };
    let contents = inspect::inspect(path).map_err(|e| {
        named(format!(
            "{e}; the nested WIM cannot be serviced (it is damaged or holds unsafe entries): replace it with a clean capture"
        ))
    })?;
    Wim::open(path, true)
        .and_then(|w| w.verify(&mut |_| Progress::Continue))
        .map_err(|e| {
            named(format!(
                "{e}; the nested WIM is damaged: replace it with a good copy"
            ))
        })?;
    Ok(contents)
}

/// Registers what [`detect`] found for image `image_id`, in the import's transaction.
pub fn record(tx: &Transaction, image_id: ImageId, found: &[Found]) -> rusqlite::Result<()> {
    let now = now_rfc3339();
    for f in found {
        let (compression, error) = match &f.contents {
            Ok(c) => (c.compression.map(|c| c.as_str()), None),
            Err(e) => (None, Some(e.as_str())),
        };
        tx.execute(
            "INSERT INTO nested_images (image_id, path, sha1, size_bytes, compression, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                image_id,
                f.path,
                hex(&f.sha1),
                f.size as i64,
                compression,
                error
            ],
        )?;
        let id = NestedId::new(tx.last_insert_rowid());
        for p in &f.parents {
            tx.execute(
                "INSERT OR IGNORE INTO nested_image_parents (nested_id, idx, path) VALUES (?1, ?2, ?3)",
                params![id, p.index, p.path],
            )?;
        }
        let Ok(contents) = &f.contents else {
            continue;
        };
        for (info, installed) in contents.indexes.iter().zip(&contents.installed) {
            tx.execute(
                "INSERT INTO nested_indexes (nested_id, idx, name, architecture, build, version, edition, product_name)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    id,
                    info.index,
                    info.name,
                    info.architecture.map(|a| a.as_str()),
                    info.build,
                    info.version,
                    info.edition,
                    info.product_name
                ],
            )?;
            for (update, source) in installed {
                tx.execute(
                    "INSERT OR IGNORE INTO nested_installed_updates (nested_id, idx, update_id, source, installed_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, info.index, update, source, now],
                )?;
            }
        }
    }
    Ok(())
}

/// The nested images of an image, with their parents, indexes and installed updates.
pub fn for_image(db: &Database, image_id: ImageId) -> rusqlite::Result<Vec<NestedImage>> {
    let mut stmt = db.prepare(
        "SELECT id, path, sha1, size_bytes, compression, error FROM nested_images
         WHERE image_id = ?1 ORDER BY id",
    )?;
    let mut out = stmt
        .query_map([image_id], |r| {
            Ok(NestedImage {
                id: r.get(0)?,
                image_id,
                path: r.get(1)?,
                sha1: r.get(2)?,
                size_bytes: r.get::<_, i64>(3)? as u64,
                compression: r.get(4)?,
                error: r.get(5)?,
                parents: Vec::new(),
                indexes: Vec::new(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut parents = db.prepare(
        "SELECT idx, path FROM nested_image_parents WHERE nested_id = ?1 ORDER BY idx, path",
    )?;
    let mut indexes = db.prepare(
        "SELECT idx, name, architecture, build, version, edition, product_name
         FROM nested_indexes WHERE nested_id = ?1 ORDER BY idx",
    )?;
    let mut installed = db.prepare(
        "SELECT update_id, source, run_id, installed_at FROM nested_installed_updates
         WHERE nested_id = ?1 AND idx = ?2 ORDER BY update_id",
    )?;
    for n in &mut out {
        n.parents = parents
            .query_map([n.id], |r| {
                Ok(NestedParent {
                    index: r.get(0)?,
                    path: r.get(1)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let infos = indexes
            .query_map([n.id], |r| {
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
                    ubr: None,
                    display_version: None,
                    packages_from: None,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for info in infos {
            let updates = installed
                .query_map(params![n.id, info.index], |r| {
                    Ok(InstalledUpdate {
                        id: r.get(0)?,
                        source: r.get(1)?,
                        run_id: r.get(2)?,
                        installed_at: r.get(3)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            n.indexes.push(IndexDetail {
                info,
                installed: updates,
                packages: Vec::new(),
                target: UpdateTarget::Winre,
            });
        }
    }
    Ok(out)
}

/// Records a nested image a run serviced: its new blob, and what each of its indexes gained.
pub fn record_servicing(
    tx: &Transaction,
    nested_id: NestedId,
    sha1: &str,
    size: u64,
    run_id: RunId,
    installed: &[(u32, BTreeSet<String>)],
) -> rusqlite::Result<()> {
    let now = now_rfc3339();
    tx.execute(
        "UPDATE nested_images SET sha1 = ?2, size_bytes = ?3 WHERE id = ?1",
        params![nested_id, sha1, size as i64],
    )?;
    for (index, ids) in installed {
        for id in ids {
            tx.execute(
                "INSERT OR REPLACE INTO nested_installed_updates (nested_id, idx, update_id, source, run_id, installed_at)
                 VALUES (?1, ?2, ?3, 'servicing', ?4, ?5)",
                params![nested_id, index, id, run_id, now],
            )?;
        }
    }
    Ok(())
}

/// Lower-case hex, as blob SHA-1s are stored.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
