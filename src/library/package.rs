//! Reading an update package: a directory, or a CAB file with the same layout.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::manifest::package_path;

pub const MANIFEST_NAME: &str = "update.toml";

/// A file inside a package, by its normalised package path.
#[derive(Debug, Clone)]
pub struct PackageFile {
    pub path: String,
    pub size: u64,
    /// Where to read it: a real file for directory packages, the CAB entry name otherwise.
    location: Location,
}

#[derive(Debug, Clone)]
enum Location {
    File(PathBuf),
    Cab(String),
}

/// A package opened for reading; nothing is copied yet.
pub struct Package {
    pub origin: PathBuf,
    cab: Option<PathBuf>,
    /// Keyed by lower-cased path: package paths match case-insensitively, as on Windows.
    files: BTreeMap<String, PackageFile>,
}

impl Package {
    pub fn open(origin: &Path) -> Result<Package, String> {
        let meta = std::fs::metadata(origin).map_err(|e| e.to_string())?;
        let (cab, entries) = if meta.is_dir() {
            (None, walk_directory(origin)?)
        } else {
            (Some(origin.to_path_buf()), list_cab(origin)?)
        };
        let mut files = BTreeMap::new();
        for f in entries {
            let key = f.path.to_lowercase();
            if files.insert(key, f.clone()).is_some() {
                return Err(format!(
                    "{} appears twice in the package (names are case-insensitive)",
                    f.path
                ));
            }
        }
        Ok(Package {
            origin: origin.to_path_buf(),
            cab,
            files,
        })
    }

    pub fn file(&self, path: &str) -> Option<&PackageFile> {
        self.files.get(&path.to_lowercase())
    }

    /// The files under a directory of the package (empty when it is not a directory).
    pub fn files_under(&self, dir: &str) -> Vec<&PackageFile> {
        let prefix = format!("{}/", dir.to_lowercase());
        self.files
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, f)| f)
            .collect()
    }

    /// Every file of the package.
    pub fn files_under_root(&self) -> Vec<&PackageFile> {
        self.files.values().collect()
    }

    pub fn read_manifest(&self) -> Result<String, String> {
        let f = self
            .file(MANIFEST_NAME)
            .ok_or_else(|| format!("no {MANIFEST_NAME} at the root of the package"))?;
        if f.size > super::manifest::MAX_MANIFEST_BYTES {
            return Err(format!(
                "{MANIFEST_NAME} is {} bytes; the limit is 1 MiB",
                f.size
            ));
        }
        let mut text = String::new();
        self.reader(f)?
            .read_to_string(&mut text)
            .map_err(|e| format!("{MANIFEST_NAME}: {e}"))?;
        Ok(text)
    }

    /// Streams the content of `wanted` files to `each`, in the order that reads the package
    /// fastest: a CAB folder is decompressed once, not once per file, and no entry is ever
    /// held whole in memory.
    pub fn read_each(
        &self,
        wanted: &[&PackageFile],
        each: &mut dyn FnMut(&PackageFile, &mut dyn Read) -> Result<(), String>,
    ) -> Result<(), String> {
        if let Some(cab_path) = &self.cab {
            let by_name: std::collections::HashMap<&str, &PackageFile> = wanted
                .iter()
                .filter_map(|f| match &f.location {
                    Location::Cab(name) => Some((name.as_str(), *f)),
                    Location::File(_) => None,
                })
                .collect();
            let mut seen = 0usize;
            super::cabfolder::for_each(cab_path, &mut |m, r| match by_name.get(m.name.as_str()) {
                Some(f) => {
                    seen += 1;
                    each(f, r)
                }
                None => Ok(()),
            })
            .map_err(|e| format!("reading the CAB: {e}"))?;
            if seen != wanted.len() {
                return Err("the CAB's file table changed while it was read".into());
            }
            return Ok(());
        }
        for f in wanted {
            let mut r = self.reader(f)?;
            each(f, &mut r)?;
        }
        Ok(())
    }

    /// Streams a file's content; a CAB entry (only the manifest, bounded by
    /// [`super::manifest::MAX_MANIFEST_BYTES`]) is read through the `cab` crate.
    fn reader(&self, f: &PackageFile) -> Result<Box<dyn Read + '_>, String> {
        match &f.location {
            Location::File(p) => Ok(Box::new(BufReader::new(
                File::open(p).map_err(|e| format!("{}: {e}", p.display()))?,
            ))),
            Location::Cab(name) => {
                let cab_path = self
                    .cab
                    .as_ref()
                    .ok_or("internal: CAB entry without a CAB")?;
                let file = File::open(cab_path).map_err(|e| e.to_string())?;
                let mut cabinet =
                    cab::Cabinet::new(BufReader::new(file)).map_err(|e| e.to_string())?;
                let mut data = Vec::new();
                cabinet
                    .read_file(name)
                    .and_then(|r| {
                        r.take(super::manifest::MAX_MANIFEST_BYTES + 1)
                            .read_to_end(&mut data)
                    })
                    .map_err(|e| format!("{name} in the CAB: {e}"))?;
                Ok(Box::new(std::io::Cursor::new(data)))
            }
        }
    }
}

/// Refuses a cabinet that is one part of a multi-cabinet set (header flags "previous" or
/// "next"): its folders continue in other files, which an update package never needs, and
/// reading one part alone cannot stream its entries.
pub(super) fn refuse_cabinet_sets(path: &Path) -> Result<(), String> {
    const FLAG_PREV: u16 = 1;
    const FLAG_NEXT: u16 = 2;
    let mut header = [0u8; 36];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(|e| format!("not a readable CAB file ({e})"))?;
    let flags = u16::from_le_bytes([header[30], header[31]]);
    if &header[..4] == b"MSCF" && flags & (FLAG_PREV | FLAG_NEXT) != 0 {
        let which = match (flags & FLAG_PREV != 0, flags & FLAG_NEXT != 0) {
            (true, true) => "it continues another cabinet and continues in a next one",
            (true, false) => "it continues a previous cabinet",
            _ => "it continues in a next cabinet",
        };
        return Err(format!(
            "{} is one part of a multi-cabinet set ({which}); an update package must be a single CAB file: rebuild it as one cabinet",
            path.display()
        ));
    }
    Ok(())
}

fn list_cab(path: &Path) -> Result<Vec<PackageFile>, String> {
    refuse_cabinet_sets(path)?;
    let file = File::open(path).map_err(|e| e.to_string())?;
    let cabinet = cab::Cabinet::new(BufReader::new(file))
        .map_err(|e| format!("not a readable CAB file ({e})"))?;
    let mut out = Vec::new();
    for folder in cabinet.folder_entries() {
        for entry in folder.file_entries() {
            let name = entry.name().to_string();
            let normalised = package_path(&name).map_err(|e| format!("CAB entry {name:?}: {e}"))?;
            out.push(PackageFile {
                path: normalised,
                size: u64::from(entry.uncompressed_size()),
                location: Location::Cab(name),
            });
        }
    }
    Ok(out)
}

/// Walks a directory package. Links are followed only when they stay inside the package.
fn walk_directory(root: &Path) -> Result<Vec<PackageFile>, String> {
    let canonical_root = std::fs::canonicalize(root).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut visited = HashSet::new();
    let mut stack = vec![(canonical_root.clone(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        if !visited.insert(dir.clone()) {
            continue;
        }
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel_path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let path = entry.path();
            let file_type = entry
                .file_type()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let target = if file_type.is_symlink() {
                let resolved = std::fs::canonicalize(&path)
                    .map_err(|e| format!("link {rel_path} cannot be resolved: {e}"))?;
                if !resolved.starts_with(&canonical_root) {
                    return Err(format!(
                        "link {rel_path} points outside the package, to {}",
                        resolved.display()
                    ));
                }
                resolved
            } else {
                path.clone()
            };
            let meta = std::fs::metadata(&target).map_err(|e| format!("{rel_path}: {e}"))?;
            if meta.is_dir() {
                stack.push((target, rel_path));
            } else if meta.is_file() {
                let normalised =
                    package_path(&rel_path).map_err(|e| format!("{rel_path:?}: {e}"))?;
                out.push(PackageFile {
                    path: normalised,
                    size: meta.len(),
                    location: Location::File(target),
                });
            } else {
                return Err(format!("{rel_path} is neither a file nor a directory"));
            }
        }
    }
    Ok(out)
}
