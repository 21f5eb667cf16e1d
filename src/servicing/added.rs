//! The checks on what a run adds when it reads the library's files in place: before anything is
//! written, every added path must hold the bytes its package ships, as the verified compressed
//! payload has them. A library file that was damaged or swapped for another is refused here.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::apply::{added, UpdateResult};
use super::stage::Staged;
use crate::library::{Change, CompressedPayload};
use crate::wim::Wim;

/// What one added path must hold once the run's changes are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    path: String,
    update: String,
    sha256: String,
}

/// Checks, after wimlib hashed the added files, that each of them is known data and that each
/// added path holds the content its package ships there. Only for in-place sources: checked
/// copies had their SHA-256 checked when staged.
pub fn check_added_data(
    wim: &Wim,
    staged: &Staged,
    hives: &HashSet<[u8; 20]>,
    results: &[UpdateResult],
) -> Result<(), String> {
    if !staged.in_place {
        return Ok(());
    }
    let damaged = |detail: String| {
        let mut ids: Vec<&str> = staged.sources.values().map(|(u, _)| u.id()).collect();
        ids.sort_unstable();
        format!(
            "{detail}: the content library is damaged or was changed; import the package(s) of {} again to repair it (the original image is unchanged)",
            ids.join(", ")
        )
    };
    let strays = wim
        .blobs()
        .map_err(|e| e.to_string())?
        .into_iter()
        // The hives the run's registry changes wrote are its own data, not the library's.
        .filter(|b| !b.metadata && !b.in_wim && !hives.contains(&b.sha1))
        .count();
    if strays > 0 {
        return Err(damaged(format!(
            "{strays} file(s) in the content library differ from the verified payload: {}",
            differing_files(staged).join(", ")
        )));
    }
    // Known data is not enough: a library file swapped for another of the same payload would
    // put the wrong (known) bytes at a path.
    let sha1s = payload_sha1s(&staged.references)?;
    let mut checked = 0;
    for (index, paths) in expected(results, staged) {
        checked += paths.len();
        for e in paths.values() {
            let want = sha1s.get(&e.sha256);
            let have = wim.entry(index, &e.path).map_err(|err| err.to_string())?;
            if want.is_none() || have.as_ref().map(|h| &h.sha1) != want {
                return Err(damaged(format!(
                    "index {index}: {} would not hold the file update {} ships there (SHA-256 {})",
                    e.path, e.update, e.sha256
                )));
            }
        }
    }
    tracing::info!("{checked} added path(s) hold what their packages ship");
    Ok(())
}

/// The library files of the run that do not hash to what their package shipped, each with its
/// update and package path (hashed only once something is known to be wrong).
fn differing_files(staged: &Staged) -> Vec<String> {
    let mut out = Vec::new();
    for (update, sources) in staged.sources.values() {
        for f in sources.files.values() {
            for file in std::iter::once(&f.file).chain(&f.copies) {
                let sound = crate::fsutil::hash_file(file).is_ok_and(|(h, _)| h == f.sha256);
                if !sound {
                    out.push(format!(
                        "{} ({} of update {})",
                        file.display(),
                        f.path,
                        update.id()
                    ));
                }
            }
        }
    }
    out.sort();
    out
}

/// The SHA-1 of each content of the compressed payloads, by SHA-256: each content is one file
/// named by its SHA-256 in the payload's image.
fn payload_sha1s(references: &[CompressedPayload]) -> Result<HashMap<String, [u8; 20]>, String> {
    let mut out = HashMap::new();
    for r in references {
        let payload = Wim::open(&r.path, false).map_err(|e| e.to_string())?;
        for entry in payload.list(1, "/", false).map_err(|e| e.to_string())? {
            out.insert(entry.path, entry.sha1);
        }
    }
    Ok(out)
}

/// What each added path must hold, by index and lower-case image path: the updates applied
/// there, each change in order, so a later add, delete or rename wins as it does in the image.
fn expected(
    results: &[UpdateResult],
    staged: &Staged,
) -> BTreeMap<u32, BTreeMap<String, Expected>> {
    let mut by_index: BTreeMap<u32, BTreeMap<String, Expected>> = BTreeMap::new();
    for r in results.iter().filter(|r| r.applied) {
        let Some((update, sources)) = staged.sources.get(&r.update.to_lowercase()) else {
            continue;
        };
        let paths = by_index.entry(r.index).or_default();
        for change in &update.manifest.changes {
            match change {
                Change::Add { source, target } => {
                    for (path, f) in added(&sources.files, source, target) {
                        let e = Expected {
                            path,
                            update: update.id().to_string(),
                            sha256: f.sha256.clone(),
                        };
                        paths.insert(e.path.to_lowercase(), e);
                    }
                }
                Change::Delete { path } => {
                    for key in under(paths, &format!("/{path}")) {
                        paths.remove(&key);
                    }
                }
                Change::Rename { from, to, .. } => {
                    let from = format!("/{from}").to_lowercase();
                    // A rename onto an existing path (allowed with `replace = true`) leaves
                    // nothing of what was added there, whatever it moves.
                    let onto = format!("/{to}").to_lowercase();
                    if onto != from {
                        for key in under(paths, &onto) {
                            paths.remove(&key);
                        }
                    }
                    for key in under(paths, &from) {
                        if let Some(mut e) = paths.remove(&key) {
                            e.path = format!("/{to}{}", &key[from.len()..]);
                            paths.insert(e.path.to_lowercase(), e);
                        }
                    }
                }
            }
        }
    }
    by_index
}

/// The keys at `path` or below it (image paths compare without case, as on Windows).
fn under(paths: &BTreeMap<String, Expected>, path: &str) -> Vec<String> {
    let path = path.to_lowercase();
    let below = format!("{path}/");
    paths
        .range(path.clone()..)
        .take_while(|(k, _)| k.starts_with(&path))
        .filter(|(k, _)| **k == path || k.starts_with(&below))
        .map(|(k, _)| k.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::{InPlace, Update};
    use crate::servicing::apply::Sources;

    fn update(text: &str) -> Update {
        Update::from_manifest(text)
    }

    fn applied(update: &str, index: u32) -> UpdateResult {
        UpdateResult {
            update: update.into(),
            index,
            applied: true,
            error: None,
            registry: Vec::new(),
            files: Vec::new(),
        }
    }

    #[test]
    fn later_changes_of_the_run_decide_what_an_added_path_must_hold() {
        let cu = update(
            r#"id = "KB1"
title = "t"
architecture = "x64"
[[change]]
add = "payload/a.dll"
at = "Windows/System32/a.dll"
[[change]]
add = "payload/inf"
at = "Windows/INF"
"#,
        );
        let cleanup = update(
            r#"id = "KB2"
title = "t"
architecture = "x64"
[[change]]
delete = "windows/inf/old"
[[change]]
rename = "Windows/System32/A.dll"
to = "Windows/System32/b.dll"
"#,
        );
        let file = |path: &str, sha256: &str| InPlace {
            path: path.into(),
            file: std::path::PathBuf::from(format!("/store/{sha256}")),
            sha256: sha256.into(),
            copies: Vec::new(),
        };
        let staged = Staged {
            sources: HashMap::from([
                (
                    "kb1".to_string(),
                    (
                        &cu,
                        Sources::files(vec![
                            file("payload/a.dll", "aa"),
                            file("payload/inf/new/x.inf", "11"),
                            file("payload/inf/old/y.inf", "22"),
                            file("payload/inf/oldest.inf", "33"),
                        ]),
                    ),
                ),
                ("kb2".to_string(), (&cleanup, Sources::files(Vec::new()))),
            ]),
            references: Vec::new(),
            in_place: true,
        };
        let failed = UpdateResult {
            applied: false,
            ..applied("KB2", 2)
        };
        let results = [
            applied("KB1", 1),
            applied("KB2", 1),
            applied("KB1", 2),
            failed,
        ];
        let by_index = expected(&results, &staged);
        let paths = |index: u32| -> Vec<(String, String)> {
            by_index[&index]
                .values()
                .map(|e| (e.path.clone(), e.sha256.clone()))
                .collect()
        };
        let pair = |p: &str, h: &str| (p.to_string(), h.to_string());
        assert_eq!(
            paths(1),
            vec![
                pair("/Windows/INF/new/x.inf", "11"),
                pair("/Windows/INF/oldest.inf", "33"),
                pair("/Windows/System32/b.dll", "aa"),
            ],
            "the folder delete spares a sibling of a similar name; the rename moves the add"
        );
        assert_eq!(
            paths(2),
            vec![
                pair("/Windows/INF/new/x.inf", "11"),
                pair("/Windows/INF/old/y.inf", "22"),
                pair("/Windows/INF/oldest.inf", "33"),
                pair("/Windows/System32/a.dll", "aa"),
            ],
            "an update that failed on an index changed nothing there"
        );
    }

    #[test]
    fn a_replacing_rename_leaves_nothing_of_what_was_added_at_its_destination() {
        let cu = update(
            r#"id = "KB1"
title = "t"
architecture = "x64"
[[change]]
add = "payload/a.dll"
at = "Windows/System32/a.dll"
"#,
        );
        let swap = update(
            r#"id = "KB2"
title = "t"
architecture = "x64"
[[change]]
rename = "Windows/System32/b.dll"
to = "Windows/System32/A.dll"
replace = true
"#,
        );
        let staged = Staged {
            sources: HashMap::from([
                (
                    "kb1".to_string(),
                    (
                        &cu,
                        Sources::files(vec![InPlace {
                            path: "payload/a.dll".into(),
                            file: std::path::PathBuf::from("/store/aa"),
                            sha256: "aa".into(),
                            copies: Vec::new(),
                        }]),
                    ),
                ),
                ("kb2".to_string(), (&swap, Sources::files(Vec::new()))),
            ]),
            references: Vec::new(),
            in_place: true,
        };
        let by_index = expected(&[applied("KB1", 1), applied("KB2", 1)], &staged);
        assert!(
            by_index[&1].is_empty(),
            "the image's own b.dll now holds that path: {:?}",
            by_index[&1]
        );
    }
}
