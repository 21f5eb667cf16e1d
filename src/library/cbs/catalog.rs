//! The tables `cbs_packages`, `cbs_parents` and `cbs_files`: what import records of each CBS
//! package, and what servicing asks of them.

use rusqlite::params;

use super::CbsPackage;
use crate::library::{LibraryError, UpdateId};
use crate::site::Database;

/// What recording a package found (imports in several processes race between looking an
/// identity up and inserting it).
#[derive(Debug, PartialEq, Eq)]
pub(in crate::library) enum Recorded {
    New,
    /// Recorded meanwhile from the same file.
    Same,
    /// Recorded meanwhile from another file; its source.
    Different(String),
}

pub(in crate::library) fn insert(
    tx: &rusqlite::Transaction,
    p: &CbsPackage,
) -> Result<Recorded, rusqlite::Error> {
    let details = serde_json::to_string(p)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let id = &p.identity_parts;
    let added = tx.execute(
        "INSERT INTO cbs_packages (identity, kb, name, public_key_token, processor_architecture,
            language, version, kind, release_type, classification, architecture, restart,
            express, container, source, source_sha256, member, details, imported_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
         ON CONFLICT (identity) DO NOTHING",
        params![
            p.identity,
            p.kb,
            id.name,
            id.public_key_token,
            id.processor_architecture,
            id.language,
            id.version,
            serde_json::to_value(p.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string)),
            p.release_type,
            p.classification,
            p.architecture,
            p.restart,
            p.express,
            p.container.as_str(),
            p.source,
            p.source_sha256,
            p.member,
            details,
            p.imported_at
        ],
    )?;
    if added == 0 {
        let (sha, source): (String, String) = tx.query_row(
            "SELECT source_sha256, source FROM cbs_packages WHERE identity = ?1",
            [&p.identity],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        return Ok(if sha == p.source_sha256 {
            Recorded::Same
        } else {
            Recorded::Different(source)
        });
    }
    for (n, parent) in p.parents.iter().enumerate() {
        let i = &parent.identity;
        tx.execute(
            "INSERT INTO cbs_parents (identity, position, name, public_key_token,
                processor_architecture, language, version, build_compare, revision_compare,
                integrate, disposition)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                p.identity,
                n as i64,
                i.name,
                i.public_key_token,
                i.processor_architecture,
                i.language,
                i.version,
                parent.build_compare,
                parent.revision_compare,
                parent.integrate,
                parent.disposition
            ],
        )?;
    }
    for f in &p.files {
        tx.execute(
            "INSERT INTO cbs_files (identity, role, name, sha256, size_bytes)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![p.identity, f.role, f.name, f.sha256, f.size as i64],
        )?;
    }
    Ok(Recorded::New)
}

/// The package recorded under `identity`: its source file and that file's SHA-256.
pub(in crate::library) fn recorded(
    db: &Database,
    identity: &str,
) -> Result<Option<(String, String)>, LibraryError> {
    use rusqlite::OptionalExtension;
    Ok(db
        .query_row(
            "SELECT source_sha256, source FROM cbs_packages WHERE identity = ?1",
            [identity],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(|e| db.error(e))?)
}

/// Every CBS package in the library, by KB then identity.
pub fn all(db: &Database) -> Result<Vec<CbsPackage>, LibraryError> {
    let mut stmt = db
        .prepare("SELECT identity, details FROM cbs_packages ORDER BY kb, identity")
        .map_err(|e| db.error(e))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(|e| db.error(e))?;
    rows.into_iter()
        .map(|(identity, json)| {
            serde_json::from_str(&json).map_err(|e| LibraryError::Io {
                path: format!("site database, package {identity}").into(),
                source: std::io::Error::other(e),
            })
        })
        .collect()
}

/// The Windows packages that `ids` name (an id that names a file-level update is that update),
/// so a request can be checked against the host's servicers before it is planned.
pub fn named(db: &Database, ids: &[UpdateId]) -> Result<Vec<CbsPackage>, LibraryError> {
    let mut windows: Option<Vec<CbsPackage>> = None;
    let mut out: Vec<CbsPackage> = Vec::new();
    for id in ids {
        let file_level: i64 = db
            .query_row(
                "SELECT count(*) FROM updates WHERE id = ?1",
                [id.as_str().trim()],
                |r| r.get(0),
            )
            .map_err(|e| db.error(e))?;
        if file_level > 0 {
            continue;
        }
        let packages = match &windows {
            Some(p) => p,
            None => windows.insert(all(db)?),
        };
        for p in packages.iter().filter(|p| p.is_named(id.as_str())) {
            if !out.iter().any(|o| o.identity == p.identity) {
                out.push(p.clone());
            }
        }
    }
    Ok(out)
}
