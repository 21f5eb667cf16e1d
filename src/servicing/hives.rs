//! The registry changes of a run: each hive is read out of the index (or taken from what this
//! run already put there), changed in the stage by [`crate::registry`], and added back to the
//! index as a changed file, in the same wimlib call as the update's file changes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::library::Update;
use crate::registry::{self, Applied, Hive, RegistryOp};
use crate::wim::{UpdateCommand, Wim};

/// The most of a hive a run reads out of an index (real SOFTWARE hives are 50–150 MiB).
const MAX_HIVE_BYTES: u64 = crate::image::hive::MAX_HIVE_BYTES;

/// The hives a run has changed, by index.
pub struct HiveEdits {
    dir: PathBuf,
    /// (index, lower-case image path) → the file holding that path's content in this run,
    /// for paths this run's own file or registry changes set.
    current: HashMap<(u32, String), PathBuf>,
    /// Where hives were written (index, image path): data the run adds that is not from the
    /// library.
    written: HashSet<(u32, String)>,
    count: usize,
}

/// What one update's registry changes on one index come to, held until wimlib applied them.
pub struct Edit {
    pub commands: Vec<UpdateCommand>,
    pub applied: Vec<Applied>,
    current: Vec<((u32, String), PathBuf)>,
    written: Vec<(u32, String)>,
}

impl HiveEdits {
    pub fn new(stage_dir: &Path) -> HiveEdits {
        HiveEdits {
            dir: stage_dir.join("registry"),
            current: HashMap::new(),
            written: HashSet::new(),
            count: 0,
        }
    }

    /// Did this run write any hive?
    pub fn wrote_any(&self) -> bool {
        !self.written.is_empty()
    }

    /// The SHA-1s of the hives this run wrote, which the in-place check accepts as the run's
    /// own data: read from the image once wimlib hashed the added data (hashing the files here
    /// too would read every hive twice).
    pub fn written_sha1s(&self, wim: &Wim) -> Result<HashSet<[u8; 20]>, String> {
        let mut out = HashSet::new();
        for (index, path) in &self.written {
            if let Some(entry) = wim
                .entry(*index, &format!("/{path}"))
                .map_err(|e| e.to_string())?
            {
                out.insert(entry.sha1);
            }
        }
        Ok(out)
    }

    /// The registry changes of `update` on `index`, after its `file_commands`.
    pub fn edit(
        &mut self,
        wim: &Wim,
        index: u32,
        update: &Update,
        file_commands: &[UpdateCommand],
    ) -> Result<Option<Edit>, String> {
        let mut by_hive: BTreeMap<&'static str, (Hive, Vec<RegistryOp>)> = BTreeMap::new();
        for op in update.manifest.registry_ops() {
            by_hive
                .entry(op.hive().as_str())
                .or_insert_with(|| (op.hive(), Vec::new()))
                .1
                .push(op.clone());
        }
        if by_hive.is_empty() {
            return Ok(None);
        }
        // Where this update's own file changes put things, over what the run did before.
        let mut current = self.current.clone();
        follow(&mut current, index, file_commands);
        let mut edit = Edit {
            commands: Vec::new(),
            applied: Vec::new(),
            current: Vec::new(),
            written: Vec::new(),
        };
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        for (hive, ops) in by_hive.into_values() {
            let target = hive.image_path();
            let key = (index, target.to_lowercase());
            let origin = format!("{target} in index {index} of {}", wim.path().display());
            self.count += 1;
            let input = match current.get(&key) {
                Some(path) => path.clone(),
                None => self.extract(wim, index, target, &origin)?,
            };
            let output = self.dir.join(format!(
                "index{index}-{}-{}.hive",
                hive.as_str(),
                self.count
            ));
            let applied = registry::apply(&input, &output, &ops, &origin).map_err(|e| {
                let _ = std::fs::remove_file(&output);
                e.to_string()
            })?;
            edit.written.push((index, target.to_string()));
            edit.commands.push(UpdateCommand::Add {
                source: output.clone(),
                target: format!("/{target}"),
            });
            edit.current.push((key, output));
            edit.applied.extend(applied);
        }
        Ok(Some(edit))
    }

    /// Records an edit wimlib applied, and the update's file changes before it.
    pub fn commit(&mut self, index: u32, file_commands: &[UpdateCommand], edit: Option<Edit>) {
        follow(&mut self.current, index, file_commands);
        if let Some(edit) = edit {
            self.current.extend(edit.current);
            self.written.extend(edit.written);
        }
    }

    /// Copies the hive at `target` out of the index into the stage.
    fn extract(
        &self,
        wim: &Wim,
        index: u32,
        target: &str,
        origin: &str,
    ) -> Result<PathBuf, String> {
        let entry = wim
            .entry(index, &format!("/{target}"))
            .map_err(|e| format!("cannot read {origin}: {e}"))?
            .ok_or_else(|| {
                format!("{origin} does not exist: the update changes that hive, so the index must have it (is it a Windows image?)")
            })?;
        if entry.size > MAX_HIVE_BYTES {
            return Err(format!(
                "{origin} is {} bytes, over the {} MiB ois reads of a hive",
                entry.size,
                MAX_HIVE_BYTES >> 20
            ));
        }
        let path = self
            .dir
            .join(format!("index{index}-original-{}.hive", self.count));
        let mut file = std::fs::File::create(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let mut files = wim.files().map_err(|e| e.to_string())?;
        let mut io_error = None;
        files
            .stream(&entry, &mut |bytes| {
                file.write_all(bytes).map_err(|e| {
                    let message = format!("cannot write {}: {e}", path.display());
                    io_error = Some(message.clone());
                    crate::wim::WimError::io(&path, "writing", e)
                })
            })
            .map_err(|e| {
                io_error
                    .take()
                    .unwrap_or_else(|| format!("cannot read {origin}: {e}"))
            })?;
        Ok(path)
    }
}

/// Follows file commands: an add puts its source's content at the target, a delete removes
/// it, a rename moves it (and what was under it).
fn follow(current: &mut HashMap<(u32, String), PathBuf>, index: u32, commands: &[UpdateCommand]) {
    for c in commands {
        match c {
            UpdateCommand::Add { source, target } => {
                let target = target.trim_start_matches('/').to_lowercase();
                current.insert((index, target), source.clone());
            }
            UpdateCommand::Delete { path } => {
                let path = path.trim_start_matches('/').to_lowercase();
                let prefix = format!("{path}/");
                current.retain(|(i, p), _| *i != index || (*p != path && !p.starts_with(&prefix)));
            }
            UpdateCommand::Rename { from, to } => {
                let from = from.trim_start_matches('/').to_lowercase();
                let to = to.trim_start_matches('/').to_lowercase();
                let prefix = format!("{from}/");
                let moved: Vec<((u32, String), PathBuf)> = current
                    .iter()
                    .filter(|((i, p), _)| *i == index && (*p == from || p.starts_with(&prefix)))
                    .map(|((i, p), f)| ((*i, format!("{to}{}", &p[from.len()..])), f.clone()))
                    .collect();
                current.retain(|(i, p), _| *i != index || (*p != from && !p.starts_with(&prefix)));
                current.extend(moved);
            }
        }
    }
}
