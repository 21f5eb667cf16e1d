//! Nested images (Winre.wim) serviced within their parent's run: planned from the nested
//! image's own installed set, read out of the parent alone, serviced with the same engine
//! (apply, full rebuild, verify) in the run's stage, then put back at every place of the
//! parent that held it as part of the parent's apply, before its single write, verification
//! and replace (table `run_nested_updates`).

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use super::apply::{self, Stop, UpdateResult};
use super::hives::HiveEdits;
use super::plan::{self, Catalog, KindFilter, Plan, PlanError, Selection};
use super::stage::{stage_updates, Stage};
use super::{commit, FailedUpdate, RunId};
use crate::image::nested::{self, NestedId, NestedImage};
use crate::image::{Image, IndexDetail};
use crate::library::{ContentLibrary, Update, UpdateTarget};
use crate::site::Database;
use crate::wim::{Progress, ProgressEvent, UpdateCommand, Wim};

/// Run results on nested images: per update and nested index, with the parent indexes the
/// nested image was put back into.
pub const MIGRATION: &str = "CREATE TABLE run_nested_updates (
        run_id INTEGER NOT NULL REFERENCES servicing_runs(id) ON DELETE CASCADE,
        nested_id INTEGER NOT NULL,
        nested_path TEXT NOT NULL,
        parent_indexes TEXT NOT NULL,
        update_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        result TEXT NOT NULL,
        error TEXT,
        PRIMARY KEY (run_id, nested_id, update_id, idx));";

/// Which levels of an image a run services (`--target`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetFilter {
    /// The image's own indexes and its nested images, each update where its `target` says.
    #[default]
    All,
    /// The image's own indexes only (the OS of an os-image, WinPE of a boot image).
    Os,
    /// The nested recovery images only.
    Winre,
}

impl TargetFilter {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetFilter::All => "all",
            TargetFilter::Os => "os",
            TargetFilter::Winre => "winre",
        }
    }

    fn own(self) -> bool {
        self != TargetFilter::Winre
    }

    fn nested(self) -> bool {
        self != TargetFilter::Os
    }
}

impl std::str::FromStr for TargetFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(TargetFilter::All),
            "os" => Ok(TargetFilter::Os),
            "winre" => Ok(TargetFilter::Winre),
            other => Err(format!("{other:?}: use winre, os or all")),
        }
    }
}

/// What a run applies to one nested image.
#[derive(Debug, Clone)]
pub struct NestedPlan {
    pub nested: NestedImage,
    pub plan: Plan,
}

/// What a run did to one nested image.
#[derive(Debug, Clone, Serialize)]
pub struct NestedOutcome {
    pub nested_id: NestedId,
    pub path: String,
    pub parent_indexes: Vec<u32>,
    pub applied: Vec<String>,
    pub failed: Vec<FailedUpdate>,
    pub results: Vec<UpdateResult>,
    /// SHA-1 and size of the serviced nested WIM, once written and verified.
    #[serde(skip)]
    pub written: Option<(String, u64)>,
}

fn empty_plan(indexes: &[IndexDetail]) -> Plan {
    Plan {
        indexes: indexes
            .iter()
            .map(|i| plan::IndexPlan {
                index: i.info.index,
                updates: Vec::new(),
                windows_packages: Vec::new(),
            })
            .collect(),
        superseded: Vec::new(),
        order: Vec::new(),
        windows: Vec::new(),
    }
}

/// The plans of a run of `img`: its own indexes, and each nested image that has something to
/// apply. An explicitly selected update goes where its `target` says; one that applies nowhere
/// there is an error before anything is touched.
pub fn plan_image(
    db: &Database,
    img: &Image,
    indexes: &[IndexDetail],
    catalog: Catalog,
    selection: &Selection,
    target: TargetFilter,
) -> Result<(Plan, Vec<NestedPlan>), PlanError> {
    let nested_images = if target.nested() {
        nested::for_image(db, img.id).map_err(|e| PlanError::from(db.error(e).to_string()))?
    } else {
        Vec::new()
    };
    let usable: Vec<&NestedImage> = nested_images.iter().filter(|n| n.error.is_none()).collect();
    let files_only = Catalog {
        files: catalog.files,
        windows: &[],
    };
    let is_winre = |id: &str| {
        catalog
            .files
            .iter()
            .find(|u| u.id().eq_ignore_ascii_case(id.trim()))
            .is_some_and(|u| u.manifest.target == UpdateTarget::Winre)
    };
    match selection {
        Selection::AllApplicable(kind) => {
            let own = if target.own() {
                plan::plan(indexes, catalog, selection)?
            } else {
                empty_plan(indexes)
            };
            let mut plans = Vec::new();
            if *kind != KindFilter::Cbs {
                for n in usable {
                    let p = plan::plan(
                        &n.indexes,
                        files_only,
                        &Selection::AllApplicable(KindFilter::File),
                    )
                    .map_err(|e| in_nested(n, e))?;
                    if !p.is_empty() {
                        plans.push(NestedPlan {
                            nested: n.clone(),
                            plan: p,
                        });
                    }
                }
            }
            Ok((own, plans))
        }
        Selection::Updates(ids) => {
            let (winre, own_ids): (Vec<_>, Vec<_>) =
                ids.iter().cloned().partition(|id| is_winre(id.as_str()));
            if let (false, Some(id)) = (target.own(), own_ids.first()) {
                return Err(format!(
                    "update {id} is for image {}'s own indexes, but --target winre services only its nested images: use --target all",
                    img.name
                )
                .into());
            }
            if let (false, Some(id)) = (target.nested(), winre.first()) {
                return Err(format!(
                    "update {id} targets WinRE, but --target os leaves the nested images of image {} alone: use --target all",
                    img.name
                )
                .into());
            }
            let own = if own_ids.is_empty() {
                empty_plan(indexes)
            } else {
                plan::plan(indexes, catalog, &Selection::Updates(own_ids))?
            };
            if winre.is_empty() {
                return Ok((own, Vec::new()));
            }
            if usable.is_empty() {
                let why: Vec<String> = nested_images
                    .iter()
                    .filter_map(|n| n.error.clone())
                    .collect();
                return Err(format!(
                    "update {} targets WinRE, but image {} has no nested image that can be serviced{}",
                    winre[0],
                    img.name,
                    if why.is_empty() {
                        " (no Winre.wim was found at import; name other nested WIMs with `ois image import --nested PATH`)".to_string()
                    } else {
                        format!(": {}", why.join("; "))
                    }
                )
                .into());
            }
            let mut plans = Vec::new();
            let mut covered: BTreeSet<String> = BTreeSet::new();
            for n in &usable {
                let applicable: BTreeSet<String> = plan::applicable(&n.indexes, catalog.files)
                    .iter()
                    .map(|u| u.id().to_lowercase())
                    .collect();
                let mine: Vec<_> = winre
                    .iter()
                    .filter(|id| applicable.contains(&id.as_str().trim().to_lowercase()))
                    .cloned()
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                covered.extend(mine.iter().map(|id| id.as_str().trim().to_lowercase()));
                let p = plan::plan(&n.indexes, files_only, &Selection::Updates(mine))
                    .map_err(|e| in_nested(n, e))?;
                plans.push(NestedPlan {
                    nested: (*n).clone(),
                    plan: p,
                });
            }
            if let Some(id) = winre
                .iter()
                .find(|id| !covered.contains(&id.as_str().trim().to_lowercase()))
            {
                // The planner says why, on the first nested image.
                let n = usable[0];
                return Err(
                    match plan::plan(
                        &n.indexes,
                        files_only,
                        &Selection::Updates(vec![id.clone()]),
                    ) {
                        Err(e) => in_nested(n, e),
                        Ok(_) => format!(
                            "update {id} applies to no nested image of image {}",
                            img.name
                        )
                        .into(),
                    },
                );
            }
            Ok((own, plans))
        }
    }
}

fn in_nested(n: &NestedImage, e: PlanError) -> PlanError {
    PlanError {
        reason: format!("nested image {}: {}", n.label(), e.reason),
        hint: e.hint,
    }
}

/// Why servicing a nested image stopped.
pub enum NestedStop {
    Canceled(String),
    Failed(String),
}

/// A nested image serviced in the run's stage: the new WIM, kept until the parent is written
/// (wimlib reads an added file when it writes).
pub struct NestedServiced {
    pub nested: NestedImage,
    pub output: PathBuf,
    pub sha1: [u8; 20],
    _stage: Stage,
}

/// Everything a nested image's servicing needs from the run.
pub struct NestedRun<'a> {
    pub db: &'a Database,
    pub library: &'a ContentLibrary,
    pub updates: &'a [Update],
    pub image_name: &'a str,
    pub stage_dir: &'a Path,
    pub integrity: bool,
    pub continue_on_error: bool,
    pub canceled: &'a dyn Fn() -> bool,
}

/// Services one nested image: read out of `parent` into the stage, apply, write, verify.
/// `outcome` collects its results whatever happens.
pub fn service(
    run: &NestedRun,
    parent: &Wim,
    np: &NestedPlan,
    outcome: &mut NestedOutcome,
    sink: &mut dyn FnMut(ProgressEvent) -> Progress,
) -> Result<NestedServiced, NestedStop> {
    let n = &np.nested;
    let level = format!("nested image {} of image {}", n.label(), run.image_name);
    let failed =
        |m: String| NestedStop::Failed(format!("{level}: {m}; the original image is unchanged"));
    let stage = Stage::create(run.stage_dir.join(format!("nested-{}", n.id)))
        .map_err(|e| failed(format!("cannot create its staging folder: {e}")))?;
    let first = n
        .parents
        .first()
        .ok_or_else(|| failed("no index holds it".into()))?;
    let entry = parent
        .entry(first.index, &format!("/{}", first.path))
        .map_err(|e| failed(e.to_string()))?
        .filter(|e| nested::hex(&e.sha1) == n.sha1)
        .ok_or_else(|| {
            failed(format!(
                "index {} no longer holds it at {}: the image changed since it was registered; register it again (`ois image remove`, then `ois image import`)",
                first.index, first.path
            ))
        })?;
    let original = stage.dir().join("original.wim");
    let mut files = parent.files().map_err(|e| failed(e.to_string()))?;
    nested::extract_to(&mut files, &entry, &original).map_err(|e| failed(e.to_string()))?;
    drop(files);

    let wim = Wim::open(&original, false).map_err(|e| failed(e.to_string()))?;
    let count = wim.header().image_count;
    if count as usize != n.indexes.len() {
        return Err(failed(format!(
            "it holds {count} indexes but {} were registered",
            n.indexes.len()
        )));
    }
    let by_id: HashMap<String, &Update> = run
        .updates
        .iter()
        .map(|u| (u.id().to_lowercase(), u))
        .collect();
    let selected: Vec<&Update> = np
        .plan
        .order
        .iter()
        .filter_map(|id| by_id.get(&id.to_lowercase()).copied())
        .collect();
    let staged = stage_updates(&stage, run.db, run.library, &wim, &selected).map_err(failed)?;
    let mut hives = HiveEdits::new(stage.dir());
    let applied = apply::apply(
        &wim,
        &np.plan,
        &staged.sources,
        run.continue_on_error,
        run.canceled,
        &|index| {
            crate::image::inspect::check_loads_whole(&wim, index)
                .map_err(|e| format!("{level}: {e}"))
        },
        &mut hives,
        &mut outcome.results,
    );
    summarise(outcome);
    match applied {
        Ok(()) => {}
        Err(Stop::Canceled) => {
            return Err(NestedStop::Canceled(
                "canceled; the original image is unchanged".into(),
            ))
        }
        Err(Stop::Refused(m)) => return Err(NestedStop::Failed(m)),
        Err(Stop::Failed) => {
            let f = outcome.failed.first().cloned().unwrap_or(FailedUpdate {
                id: "?".into(),
                error: String::new(),
            });
            return Err(failed(format!(
                "update {} failed: {} (use --continue-on-error to skip failing updates)",
                f.id, f.error
            )));
        }
    }
    if outcome.results.iter().all(|r| !r.applied) {
        return Err(failed("no update could be applied".into()));
    }
    record_in_wim(&wim, n, &outcome.results).map_err(|e| failed(e.to_string()))?;
    let changed = np.plan.indexes.iter().find(|i| !i.updates.is_empty());
    if let (true, Some(first)) = (!staged.references.is_empty() || hives.wrote_any(), changed) {
        wim.hash_added_data(first.index)
            .map_err(|e| failed(e.to_string()))?;
    }
    let hive_data = hives.written_sha1s(&wim).map_err(failed)?;
    super::added::check_added_data(&wim, &staged, &hive_data, &outcome.results).map_err(failed)?;
    let output = stage.dir().join("serviced.wim");
    let written = wim.write(&output, run.integrity, 0, sink);
    drop(wim);
    if let Err(e) = written {
        if e.is_aborted() {
            return Err(NestedStop::Canceled(
                "canceled while writing a nested image; the original image is unchanged".into(),
            ));
        }
        return Err(failed(format!("writing it: {e}")));
    }
    let (_, size) =
        commit::verify(&output, None, &staged.references, count, sink).map_err(|e| {
            if e.is_aborted() {
                NestedStop::Canceled(
                    "canceled while verifying a nested image; the original image is unchanged"
                        .into(),
                )
            } else {
                failed(format!(
                    "the serviced nested image failed verification: {e}"
                ))
            }
        })?;
    let sha1 = sha1_of(&output).map_err(|e| failed(format!("{}: {e}", output.display())))?;
    outcome.written = Some((nested::hex(&sha1), size));
    tracing::info!(
        "{level}: serviced ({} bytes, SHA-1 {}); it goes back into index(es) {}",
        size,
        nested::hex(&sha1),
        n.parent_indexes()
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(NestedServiced {
        nested: n.clone(),
        output,
        sha1,
        _stage: stage,
    })
}

/// The commands that put a serviced nested image back, per parent index.
pub fn put_back(serviced: &[NestedServiced]) -> Vec<(u32, UpdateCommand)> {
    serviced
        .iter()
        .flat_map(|s| {
            s.nested.parents.iter().map(|p| {
                (
                    p.index,
                    UpdateCommand::Add {
                        source: s.output.clone(),
                        target: format!("/{}", p.path),
                    },
                )
            })
        })
        .collect()
}

fn sha1_of(path: &Path) -> std::io::Result<[u8; 20]> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

fn summarise(outcome: &mut NestedOutcome) {
    outcome.applied.clear();
    outcome.failed.clear();
    let mut order: Vec<String> = Vec::new();
    for r in &outcome.results {
        if !order.contains(&r.update) {
            order.push(r.update.clone());
        }
    }
    for id in order {
        match outcome
            .results
            .iter()
            .find(|r| r.update == id && !r.applied)
        {
            None => outcome.applied.push(id),
            Some(f) => outcome.failed.push(FailedUpdate {
                id: id.clone(),
                error: format!(
                    "nested image {} index {}: {}",
                    outcome.path,
                    f.index,
                    f.error.clone().unwrap_or_default()
                ),
            }),
        }
    }
}

/// Carries the nested image's installed set in its own XML, so a fresh site detects it.
fn record_in_wim(
    wim: &Wim,
    n: &NestedImage,
    results: &[UpdateResult],
) -> Result<(), crate::wim::WimError> {
    super::run::record_installed(wim, &n.indexes, results)
}

/// A fresh outcome for a nested plan.
pub fn outcome_for(np: &NestedPlan) -> NestedOutcome {
    NestedOutcome {
        nested_id: np.nested.id,
        path: np.nested.path.clone(),
        parent_indexes: np.nested.parent_indexes(),
        applied: Vec::new(),
        failed: Vec::new(),
        results: Vec::new(),
        written: None,
    }
}

/// Records the nested results of a run, and, when the run replaced the original, each
/// nested image's new blob and installed set (in the transaction that ends the run).
pub fn record(
    tx: &rusqlite::Transaction,
    run_id: RunId,
    outcomes: &[NestedOutcome],
    replaced: bool,
    error: Option<&str>,
) -> rusqlite::Result<()> {
    for o in outcomes {
        let parents = o
            .parent_indexes
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        for r in &o.results {
            let (result, err) = match (r.applied, replaced) {
                (true, true) => (super::RESULT_APPLIED, None),
                (true, false) => (super::RESULT_NOT_WRITTEN, error.map(str::to_string)),
                (false, _) => (super::RESULT_FAILED, r.error.clone()),
            };
            tx.execute(
                "INSERT OR REPLACE INTO run_nested_updates (run_id, nested_id, nested_path, parent_indexes, update_id, idx, result, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                rusqlite::params![run_id, o.nested_id, o.path, parents, r.update, r.index, result, err],
            )?;
        }
        if let (true, Some((sha1, size))) = (replaced, &o.written) {
            let mut installed: HashMap<u32, BTreeSet<String>> = HashMap::new();
            for r in o.results.iter().filter(|r| r.applied) {
                installed
                    .entry(r.index)
                    .or_default()
                    .insert(r.update.clone());
            }
            let installed: Vec<(u32, BTreeSet<String>)> = installed.into_iter().collect();
            nested::record_servicing(tx, o.nested_id, sha1, *size, run_id, &installed)?;
        }
    }
    Ok(())
}

/// One update's result on one index of a nested image, as a run recorded it.
#[derive(Debug, Clone, Serialize)]
pub struct NestedUpdateResult {
    pub nested_id: NestedId,
    pub path: String,
    pub parent_indexes: Vec<u32>,
    pub update: String,
    pub index: u32,
    pub applied: bool,
    pub error: Option<String>,
}

/// The nested results of a run, for its history.
pub fn run_results(db: &Database, run_id: RunId) -> rusqlite::Result<Vec<NestedUpdateResult>> {
    let mut stmt = db.prepare(
        "SELECT nested_id, nested_path, parent_indexes, update_id, idx, result, error
         FROM run_nested_updates WHERE run_id = ?1 ORDER BY nested_id, idx, rowid",
    )?;
    let rows = stmt
        .query_map([run_id], |r| {
            let parents: String = r.get(2)?;
            let result: String = r.get(5)?;
            let error: Option<String> = r.get(6)?;
            Ok(NestedUpdateResult {
                nested_id: r.get(0)?,
                path: r.get(1)?,
                parent_indexes: parents.split(',').filter_map(|p| p.parse().ok()).collect(),
                update: r.get(3)?,
                index: r.get(4)?,
                applied: result == super::RESULT_APPLIED,
                error: if result == super::RESULT_NOT_WRITTEN {
                    Some(format!(
                        "{}: {}",
                        super::NOT_WRITTEN,
                        error.unwrap_or_default()
                    ))
                } else {
                    error
                },
            })
        })?
        .collect();
    rows
}
