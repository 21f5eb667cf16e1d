//! Setup Dynamic Update packages: a CAB of Setup's own files (no update.mum, no manifest), which
//! Microsoft's media script expands into the media's `sources` folder, overwriting
//! (`expand Setup_DU.cab -F:* <media>\sources`). The site keeps each CAB once, by SHA-256,
//! under `<site>/Media/SetupUpdates/`.

use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{tree, MediaError, MEDIA_DIR};
use crate::fsutil::{copy_hashing, hash_file, now_rfc3339};
use crate::library::cabfolder;
use crate::site::{Database, Site};

/// A Setup Dynamic Update in the site.
#[derive(Debug, Clone, Serialize)]
pub struct SetupUpdate {
    pub id: String,
    pub file_name: String,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    /// How many files it puts into `sources`.
    pub files: u64,
    pub imported_at: String,
}

fn row(r: &rusqlite::Row) -> rusqlite::Result<SetupUpdate> {
    Ok(SetupUpdate {
        id: r.get(0)?,
        file_name: r.get(1)?,
        path: PathBuf::from(r.get::<_, String>(2)?),
        size: r.get::<_, i64>(3)? as u64,
        sha256: r.get(4)?,
        files: r.get::<_, i64>(5)? as u64,
        imported_at: r.get(6)?,
    })
}

const COLUMNS: &str = "id, file_name, path, size, sha256, files, imported_at";

pub fn list(db: &Database) -> Result<Vec<SetupUpdate>, MediaError> {
    let mut stmt = db
        .prepare(&format!("SELECT {COLUMNS} FROM setup_updates ORDER BY id"))
        .map_err(|e| db.error(e))?;
    let rows = stmt
        .query_map([], row)
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(|e| db.error(e))?;
    Ok(rows)
}

pub fn get(db: &Database, id: &str) -> Result<SetupUpdate, MediaError> {
    db.query_row(
        &format!("SELECT {COLUMNS} FROM setup_updates WHERE id = ?1"),
        [id],
        row,
    )
    .optional()
    .map_err(|e| db.error(e))?
    .ok_or_else(|| MediaError::SetupUpdateNotFound(id.to_string()))
}

/// The KB number in a Microsoft file name (`windows11.0-kb5044284-x64_….cab` → `KB5044284`).
fn kb_of(file_name: &str) -> Option<String> {
    let lower = file_name.to_ascii_lowercase();
    let at = lower.find("kb")?;
    let digits: String = lower[at + 2..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    (digits.len() >= 6).then(|| format!("KB{digits}"))
}

/// The members a Setup Dynamic Update CAB puts into `sources`; refuses a CAB that is not one.
fn members(path: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let mut names: Vec<(String, PathBuf)> = Vec::new();
    cabfolder::for_each(path, &mut |m, _| {
        let rel = tree::safe_relative(&m.name)
            .ok_or_else(|| format!("entry {:?} would be written outside sources", m.name))?;
        names.push((m.name.clone(), rel));
        Ok(())
    })?;
    if names.is_empty() {
        return Err("the CAB holds no files".into());
    }
    let has = |n: &str| names.iter().any(|(m, _)| m.eq_ignore_ascii_case(n));
    if has("update.mum") {
        return Err("it holds update.mum: it is a Windows (CBS) package, not a Setup Dynamic Update; import it with `ois update import`".into());
    }
    if has("update.toml") {
        return Err(
            "it holds update.toml: it is an ois package; import it with `ois update import`".into(),
        );
    }
    Ok(names)
}

/// Imports a Setup Dynamic Update CAB under `id` (default: the KB number in its file name).
pub fn import(
    site: &Site,
    db: &Database,
    cab: &Path,
    id: Option<&str>,
) -> Result<SetupUpdate, MediaError> {
    let err = |reason: String| MediaError::SetupUpdate {
        path: cab.to_path_buf(),
        reason,
    };
    let file_name = cab
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| err("not a file".into()))?;
    let id = match id {
        Some(id) => id.trim().to_string(),
        None => kb_of(&file_name)
            .ok_or_else(|| err("its file name holds no KB number: give one with --id".into()))?,
    };
    if get(db, &id).is_ok() {
        return Err(MediaError::SetupUpdateTaken(id));
    }
    let names = members(cab).map_err(err)?;
    let dir = site.root().join(MEDIA_DIR).join("SetupUpdates");
    std::fs::create_dir_all(&dir).map_err(|e| MediaError::io(&dir, e))?;
    let tmp = dir.join(format!(".{id}.importing"));
    let (sha256, size) = (|| {
        let mut out = std::fs::File::create(&tmp)?;
        let hashed = copy_hashing(&mut std::fs::File::open(cab)?, &mut out)?;
        out.sync_all()?;
        Ok(hashed)
    })()
    .map_err(|e: std::io::Error| {
        let _ = std::fs::remove_file(&tmp);
        MediaError::io(&tmp, e)
    })?;
    let stored = dir.join(format!("{sha256}.cab"));
    std::fs::rename(&tmp, &stored).map_err(|e| MediaError::io(&stored, e))?;
    db.execute(
        "INSERT INTO setup_updates (id, file_name, path, size, sha256, files, imported_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            id,
            file_name,
            stored.display().to_string(),
            size as i64,
            sha256,
            names.len() as i64,
            now_rfc3339()
        ],
    )
    .map_err(|e| db.error(e))?;
    tracing::info!(
        "imported Setup Dynamic Update {id} ({file_name}, {} files)",
        names.len()
    );
    get(db, &id)
}

/// Expands the update's files into `sources` of the media folder `root`, each replacing the
/// file of the same name (whatever its case) by rename: `root` may share files with the
/// original media by hard links, which must keep their bytes.
pub fn expand(update: &SetupUpdate, root: &Path) -> Result<Vec<String>, String> {
    let (sha256, _) =
        hash_file(&update.path).map_err(|e| format!("{}: {e}", update.path.display()))?;
    if sha256 != update.sha256 {
        return Err(format!(
            "Setup Dynamic Update {}: the stored CAB {} changed since it was imported; import it again",
            update.id,
            update.path.display()
        ));
    }
    let sources = tree::find(root, "sources").unwrap_or_else(|| root.join("sources"));
    let mut written = Vec::new();
    cabfolder::for_each(&update.path, &mut |m, data: &mut dyn Read| {
        let rel = tree::safe_relative(&m.name)
            .ok_or_else(|| format!("entry {:?} would be written outside sources", m.name))?;
        let rel_str = rel.to_string_lossy().replace('\\', "/");
        let target = tree::find(&sources, &rel_str).unwrap_or_else(|| sources.join(&rel));
        let parent = target.parent().unwrap_or(&sources).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = parent.join(format!(".{name}.ois-setup-update.tmp"));
        let done = (|| {
            let mut out = std::fs::File::create(&tmp)?;
            copy_hashing(data, &mut out)?;
            out.sync_all()?;
            std::fs::rename(&tmp, &target)
        })();
        if let Err(e) = done {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("{}: {e}", target.display()));
        }
        written.push(rel_str);
        Ok(())
    })
    .map_err(|e| format!("Setup Dynamic Update {}: {e}", update.id))?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::kb_of;

    #[test]
    fn the_id_of_a_setup_update_is_the_kb_number_in_its_file_name() {
        assert_eq!(
            kb_of("windows11.0-kb5044284-x64_0123abcd.cab").as_deref(),
            Some("KB5044284")
        );
        assert_eq!(kb_of("setup.cab"), None);
    }
}
