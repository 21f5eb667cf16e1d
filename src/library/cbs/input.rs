//! What each path given to `update import` is, told by content rather than by name: an ois
//! package (a directory or CAB with `update.toml`), a Windows update file (an `.msu`, a CBS
//! `.cab` with the `.psf` beside it), or a folder of Windows update files (a month's download).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::container::{cab_entries, invalid, io, magic, CAB_MAGIC, WIM_MAGIC};
use crate::library::{LibraryError, MANIFEST_NAME};

/// What one path given to `update import` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file-level package (`update.toml`): a directory or a CAB.
    FileLevel(PathBuf),
    /// A Windows update file: an `.msu` or a CBS `.cab`, with its `.psf` when it has one.
    Cbs(Source),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub file: PathBuf,
    pub psf: Option<PathBuf>,
}

/// Sorts the paths given to `update import` into file-level packages and Windows update files.
pub fn expand(origins: &[PathBuf]) -> Result<Vec<Input>, LibraryError> {
    let mut out = Vec::new();
    for origin in origins {
        // Whatever cannot be read is left to the file-level reader, which says why.
        let Ok(meta) = std::fs::metadata(origin) else {
            out.push(Input::FileLevel(origin.clone()));
            continue;
        };
        if !meta.is_dir() {
            out.push(classify(origin, psf_beside(origin)));
            continue;
        }
        if has_file(origin, MANIFEST_NAME) {
            out.push(Input::FileLevel(origin.clone()));
            continue;
        }
        let month = month_folder(origin)?;
        if month.is_empty() {
            out.push(Input::FileLevel(origin.clone()));
        }
        out.extend(month);
    }
    Ok(out)
}

fn has_file(dir: &Path, name: &str) -> bool {
    std::fs::read_dir(dir).is_ok_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().eq_ignore_ascii_case(name))
    })
}

pub(super) fn extension_is(path: &Path, ext: &str) -> bool {
    path.extension()
        .is_some_and(|e| e.to_string_lossy().eq_ignore_ascii_case(ext))
}

pub(super) fn stem_lower(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

/// The `.psf` of the same base name beside a `.cab`, if there is one.
fn psf_beside(cab: &Path) -> Option<PathBuf> {
    if !extension_is(cab, "cab") {
        return None;
    }
    let dir = cab.parent().filter(|d| !d.as_os_str().is_empty());
    let stem = stem_lower(cab);
    std::fs::read_dir(dir.unwrap_or(Path::new(".")))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| extension_is(p, "psf") && stem_lower(p) == stem && p.is_file())
}

/// A file given alone: by content, not by name.
fn classify(path: &Path, psf: Option<PathBuf>) -> Input {
    let cbs = || {
        Input::Cbs(Source {
            file: path.to_path_buf(),
            psf: psf.clone(),
        })
    };
    match magic(path) {
        Ok(m) if &m == WIM_MAGIC => cbs(),
        Ok(m) if &m[..4] == CAB_MAGIC => match cab_entries(path) {
            Ok(entries)
                if entries
                    .iter()
                    .any(|e| e.name.eq_ignore_ascii_case(MANIFEST_NAME)) =>
            {
                Input::FileLevel(path.to_path_buf())
            }
            // A CAB without update.toml is a Windows update file, or says why it is not.
            Ok(_) => cbs(),
            Err(_) => Input::FileLevel(path.to_path_buf()),
        },
        _ => Input::FileLevel(path.to_path_buf()),
    }
}

/// Every `.msu` and `.cab` of a folder, each `.cab` with the `.psf` of its base name.
fn month_folder(dir: &Path) -> Result<Vec<Input>, LibraryError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut psfs: BTreeMap<String, PathBuf> = files
        .iter()
        .filter(|p| extension_is(p, "psf"))
        .map(|p| (stem_lower(p), p.clone()))
        .collect();
    let mut out = Vec::new();
    for f in &files {
        if extension_is(f, "msu") {
            out.push(classify(f, None));
        } else if extension_is(f, "cab") {
            out.push(classify(f, psfs.remove(&stem_lower(f))));
        }
    }
    if let Some(orphan) = psfs.into_values().next() {
        return Err(invalid(
            &orphan,
            "it has no .cab of the same base name beside it (an express package's payload goes with its .cab)",
        ));
    }
    Ok(out)
}
