//! Planning a servicing run: which updates go to which index, in which order. File-level
//! updates (ois's own packages) are planned here; Windows (CBS) packages in [`windows`].

pub mod windows;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::hint::Hint;
use crate::image::IndexDetail;
use crate::library::cbs::CbsPackage;
use crate::library::{Manifest, Update, UpdateId};

pub use windows::PlannedPackage;

/// Which kinds of update `--all-applicable` takes (`--kind`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KindFilter {
    #[default]
    All,
    /// ois's own file-level packages only: what a host without DISM can install.
    File,
    /// Windows (CBS) packages only.
    Cbs,
}

impl KindFilter {
    pub fn as_str(self) -> &'static str {
        match self {
            KindFilter::All => "all",
            KindFilter::File => "file",
            KindFilter::Cbs => "cbs",
        }
    }

    fn files(self) -> bool {
        self != KindFilter::Cbs
    }

    fn windows(self) -> bool {
        self != KindFilter::File
    }
}

impl std::str::FromStr for KindFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(KindFilter::All),
            "file" => Ok(KindFilter::File),
            "cbs" => Ok(KindFilter::Cbs),
            other => Err(format!("{other:?}: use file, cbs or all")),
        }
    }
}

/// Which updates a run takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// The updates by id (an update id, a KB or a Windows package identity).
    Updates(Vec<UpdateId>),
    AllApplicable(KindFilter),
}

/// What a plan chooses from: the content library's file-level updates and Windows packages.
#[derive(Debug, Clone, Copy)]
pub struct Catalog<'a> {
    pub files: &'a [Update],
    pub windows: &'a [CbsPackage],
}

/// The updates to apply to one index, in order.
#[derive(Debug, Clone, Serialize)]
pub struct IndexPlan {
    pub index: u32,
    /// File-level updates, applied in memory by ois.
    pub updates: Vec<String>,
    /// Windows packages, installed before the file-level updates by Windows' servicing stack.
    pub windows_packages: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub indexes: Vec<IndexPlan>,
    /// Selected updates dropped because another selected update supersedes them: (dropped, by).
    pub superseded: Vec<(String, String)>,
    /// Every update the plan applies somewhere, in application order (Windows packages first).
    pub order: Vec<String>,
    /// The Windows packages of `order`, in order, with why each is there.
    pub windows: Vec<PlannedPackage>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.indexes
            .iter()
            .all(|i| i.updates.is_empty() && i.windows_packages.is_empty())
    }
}

/// Does an update target this index (architecture, build range, edition)?
pub fn targets(m: &Manifest, index: &IndexDetail) -> bool {
    use crate::library::Architecture::Neutral;
    let info = &index.info;
    if m.target != index.target {
        return false;
    }
    if m.architecture != Neutral && info.architecture != Some(m.architecture) {
        return false;
    }
    let a = &m.applies_to;
    if a.min_build.is_some() || a.max_build.is_some() {
        let Some(build) = info.build else {
            return false;
        };
        if a.min_build.is_some_and(|lo| build < lo) || a.max_build.is_some_and(|hi| build > hi) {
            return false;
        }
    }
    if !a.editions.is_empty() {
        let Some(edition) = &info.edition else {
            return false;
        };
        if !a.editions.iter().any(|e| e.eq_ignore_ascii_case(edition)) {
            return false;
        }
    }
    true
}

/// Supersedence as the library knows it, followed transitively.
struct Supersedence<'a> {
    direct: HashMap<String, &'a [String]>,
}

impl<'a> Supersedence<'a> {
    fn new(library: &'a [Update]) -> Self {
        Supersedence {
            direct: library
                .iter()
                .map(|u| (u.id().to_lowercase(), u.manifest.supersedes.as_slice()))
                .collect(),
        }
    }

    /// Every update that `id` supersedes, directly or through others.
    fn closure(&self, id: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut stack = vec![id.to_lowercase()];
        while let Some(cur) = stack.pop() {
            for s in self.direct.get(&cur).copied().unwrap_or_default() {
                if out.insert(s.to_lowercase()) {
                    stack.push(s.to_lowercase());
                }
            }
        }
        out
    }

    /// The installed update on this index that supersedes `id`, if any.
    fn superseded_on(&self, id: &str, index: &IndexDetail) -> Option<String> {
        let id = id.to_lowercase();
        index
            .installed
            .iter()
            .find(|i| self.closure(&i.id).contains(&id))
            .map(|i| i.id.clone())
    }
}

/// Why an update is not needed on an index; `None` when it is.
fn not_needed(u: &Update, index: &IndexDetail, sup: &Supersedence) -> Option<String> {
    if !targets(&u.manifest, index) {
        return Some(format!("does not target index {}", index.info.index));
    }
    if index.is_installed(u.id()) {
        return Some(format!(
            "is already installed on index {}",
            index.info.index
        ));
    }
    sup.superseded_on(u.id(), index).map(|by| {
        format!(
            "is superseded on index {} by installed {by}",
            index.info.index
        )
    })
}

/// Updates that apply to at least one index and are not installed there, minus those
/// superseded by an installed update.
pub fn applicable<'a>(indexes: &[IndexDetail], library: &'a [Update]) -> Vec<&'a Update> {
    let sup = Supersedence::new(library);
    library
        .iter()
        .filter(|u| indexes.iter().any(|i| not_needed(u, i, &sup).is_none()))
        .collect()
}

/// Why a selection cannot be applied to an image, and what to do about it when that is more
/// than changing the selection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct PlanError {
    pub reason: String,
    pub hint: Option<Hint>,
}

impl From<String> for PlanError {
    fn from(reason: String) -> Self {
        PlanError { reason, hint: None }
    }
}

/// Builds the plan, or explains why the selection cannot be applied.
pub fn plan(
    indexes: &[IndexDetail],
    catalog: Catalog,
    selection: &Selection,
) -> Result<Plan, PlanError> {
    let library = catalog.files;
    let targets = windows::Target::all(indexes);
    let sup = Supersedence::new(library);
    let by_id: HashMap<String, &Update> =
        library.iter().map(|u| (u.id().to_lowercase(), u)).collect();
    let (mut selected, windows_selected): (Vec<&Update>, Vec<&CbsPackage>) = match selection {
        Selection::AllApplicable(kind) => (
            if kind.files() {
                applicable(indexes, library)
            } else {
                Vec::new()
            },
            if kind.windows() {
                windows::applicable_to(&targets, catalog.windows)
            } else {
                Vec::new()
            },
        ),
        Selection::Updates(ids) => {
            let mut out: Vec<&Update> = Vec::new();
            let mut packages: Vec<&CbsPackage> = Vec::new();
            for id in ids {
                if let Some(u) = by_id.get(&id.as_str().trim().to_lowercase()) {
                    if !out.iter().any(|o| o.id().eq_ignore_ascii_case(u.id())) {
                        out.push(u);
                    }
                    continue;
                }
                let named: Vec<&CbsPackage> = catalog
                    .windows
                    .iter()
                    .filter(|p| p.is_named(id.as_str()))
                    .collect();
                if named.is_empty() {
                    return Err(PlanError {
                        reason: format!("update {id} is not in the content library"),
                        hint: Some(Hint::FindOrImportUpdate {
                            update: id.as_str().trim().to_string(),
                        }),
                    });
                }
                for p in named {
                    if !packages.iter().any(|q| q.identity == p.identity) {
                        packages.push(p);
                    }
                }
            }
            for u in &out {
                if indexes.iter().all(|i| not_needed(u, i, &sup).is_some()) {
                    let reasons: Vec<String> = indexes
                        .iter()
                        .filter_map(|i| not_needed(u, i, &sup))
                        .collect();
                    return Err(format!(
                        "update {} applies to no index of this image: it {}",
                        u.id(),
                        reasons.join("; ")
                    )
                    .into());
                }
            }
            for p in &packages {
                if targets.iter().all(|t| windows::not_needed(p, t).is_some()) {
                    let reasons: Vec<String> = targets
                        .iter()
                        .filter_map(|t| windows::not_needed(p, t))
                        .collect();
                    return Err(format!(
                        "update {} ({}) applies to no index of this image: it {}",
                        p.id(),
                        p.identity,
                        reasons.join("; ")
                    )
                    .into());
                }
            }
            (out, packages)
        }
    };
    let windows_plan = windows::plan(&targets, catalog.windows, windows_selected)?;

    // A selected update superseded by another selected one is dropped.
    let mut superseded = windows_plan.superseded.clone();
    let closures: Vec<(String, BTreeSet<String>)> = selected
        .iter()
        .map(|u| (u.id().to_string(), sup.closure(u.id())))
        .collect();
    selected.retain(|u| {
        let lower = u.id().to_lowercase();
        match closures
            .iter()
            .find(|(by, c)| c.contains(&lower) && !by.eq_ignore_ascii_case(u.id()))
        {
            Some((by, _)) => {
                superseded.push((u.id().to_string(), by.clone()));
                false
            }
            None => true,
        }
    });

    let order = order_by_requires(&selected)?;
    let mut plans = Vec::new();
    for (index, windows_packages) in indexes.iter().zip(windows_plan.per_index) {
        let mut updates: Vec<String> = Vec::new();
        for u in &order {
            if not_needed(u, index, &sup).is_some() {
                continue;
            }
            for r in &u.manifest.requires {
                let satisfied = index.is_installed(r)
                    || sup.superseded_on(r, index).is_some()
                    || updates.iter().any(|p| p.eq_ignore_ascii_case(r))
                    || windows_packages.iter().any(|p| p.eq_ignore_ascii_case(r));
                if !satisfied {
                    return Err(format!(
                        "update {} requires {r}, which is neither installed on index {} nor applied earlier in this run: add {r} to the selected updates",
                        u.id(),
                        index.info.index
                    )
                    .into());
                }
            }
            updates.push(u.id().to_string());
        }
        plans.push(IndexPlan {
            index: index.info.index,
            updates,
            windows_packages,
        });
    }
    let mut all_order: Vec<String> = windows_plan.packages.iter().map(|p| p.id.clone()).collect();
    all_order.dedup();
    all_order.extend(
        order
            .iter()
            .map(|u| u.id().to_string())
            .filter(|id| plans.iter().any(|p| p.updates.contains(id))),
    );
    Ok(Plan {
        indexes: plans,
        superseded,
        order: all_order,
        windows: windows_plan.packages,
    })
}

/// Orders updates so that each comes after the selected updates it requires; otherwise by id.
fn order_by_requires<'a>(selected: &[&'a Update]) -> Result<Vec<&'a Update>, String> {
    let mut remaining: BTreeMap<String, &Update> = selected
        .iter()
        .map(|u| (u.id().to_lowercase(), *u))
        .collect();
    let mut out = Vec::new();
    while !remaining.is_empty() {
        let ready: Vec<String> = remaining
            .iter()
            .filter(|(_, u)| {
                u.manifest
                    .requires
                    .iter()
                    .all(|r| !remaining.contains_key(&r.to_lowercase()))
            })
            .map(|(k, _)| k.clone())
            .collect();
        if ready.is_empty() {
            let ids: Vec<&str> = remaining.values().map(|u| u.id()).collect();
            return Err(format!(
                "updates {} require each other in a cycle: fix their manifests",
                ids.join(", ")
            ));
        }
        for k in ready {
            if let Some(u) = remaining.remove(&k) {
                out.push(u);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{IndexInfo, InstalledUpdate};
    use crate::library::{AppliesTo, Architecture, Change};

    fn files(lib: &[Update]) -> Catalog<'_> {
        Catalog {
            files: lib,
            windows: &[],
        }
    }

    fn update(id: &str, arch: Architecture, supersedes: &[&str], requires: &[&str]) -> Update {
        Update {
            manifest: Manifest {
                id: id.into(),
                title: format!("title {id}"),
                classification: None,
                architecture: arch,
                supersedes: supersedes.iter().map(|s| s.to_string()).collect(),
                requires: requires.iter().map(|s| s.to_string()).collect(),
                applies_to: AppliesTo::default(),
                target: Default::default(),
                changes: vec![Change::Delete { path: "x".into() }],
                registry: Vec::new(),
            },
            size_bytes: 0,
            imported_at: String::new(),
            source: String::new(),
            files: vec![],
        }
    }

    fn index(n: u32, arch: Architecture, edition: &str, installed: &[&str]) -> IndexDetail {
        IndexDetail {
            info: IndexInfo {
                index: n,
                name: format!("i{n}"),
                architecture: Some(arch),
                build: Some(22631),
                version: None,
                edition: Some(edition.into()),
                product_name: None,
                ubr: None,
                display_version: None,
                packages_from: None,
            },
            installed: installed
                .iter()
                .map(|id| InstalledUpdate {
                    id: id.to_string(),
                    source: "test".into(),
                    run_id: None,
                    installed_at: String::new(),
                })
                .collect(),
            packages: Vec::new(),
            target: Default::default(),
        }
    }

    #[test]
    fn requires_orders_first_and_superseded_drops() {
        use Architecture::*;
        let lib = vec![
            update("KB3", X64, &["KB1"], &["KB2"]),
            update("KB2", X64, &[], &[]),
            update("KB1", X64, &[], &[]),
            update("KB9", X86, &[], &[]),
        ];
        let idx = vec![
            index(1, X64, "Professional", &[]),
            index(2, X64, "Enterprise", &[]),
        ];
        let p = plan(
            &idx,
            files(&lib),
            &Selection::AllApplicable(KindFilter::All),
        )
        .expect("plan");
        assert_eq!(p.order, vec!["KB2", "KB3"]);
        assert_eq!(p.superseded, vec![("KB1".to_string(), "KB3".to_string())]);
        assert_eq!(p.indexes[1].updates, vec!["KB2", "KB3"]);
    }

    #[test]
    fn explicit_update_for_no_index_is_an_error() {
        use Architecture::*;
        let lib = vec![update("KB9", X86, &[], &[]), update("KB1", X64, &[], &[])];
        let idx = vec![index(1, X64, "Professional", &["KB1"])];
        let err = plan(&idx, files(&lib), &Selection::Updates(vec!["KB9".into()])).unwrap_err();
        assert!(err.reason.contains("applies to no index"), "{err}");
        let err = plan(&idx, files(&lib), &Selection::Updates(vec!["KB1".into()])).unwrap_err();
        assert!(err.reason.contains("already installed"), "{err}");
        let err = plan(&idx, files(&lib), &Selection::Updates(vec!["KB404".into()])).unwrap_err();
        assert!(err.reason.contains("not in the content library"), "{err}");
        assert_eq!(
            err.hint,
            Some(Hint::FindOrImportUpdate {
                update: "KB404".into()
            })
        );
        assert!(!err.reason.contains("ois "), "{err}");
    }

    #[test]
    fn installed_supersedes_transitively() {
        use Architecture::*;
        let lib = vec![
            update("KB1", X64, &[], &[]),
            update("KB2", X64, &["KB1"], &[]),
            update("KB3", X64, &["KB2"], &[]),
        ];
        let idx = vec![index(1, X64, "Professional", &["KB3"])];
        assert!(applicable(&idx, &lib).is_empty());
    }

    #[test]
    fn missing_requirement_is_explained() {
        use Architecture::*;
        let lib = vec![
            update("KB2", X64, &[], &["KB1"]),
            update("KB1", X64, &[], &[]),
        ];
        let idx = vec![index(1, X64, "Professional", &[])];
        let err = plan(&idx, files(&lib), &Selection::Updates(vec!["KB2".into()])).unwrap_err();
        assert!(err.reason.contains("requires KB1"), "{err}");
        let ok = plan(
            &idx,
            files(&lib),
            &Selection::Updates(vec!["KB2".into(), "KB1".into()]),
        )
        .expect("plan");
        assert_eq!(ok.order, vec!["KB1", "KB2"]);
    }

    #[test]
    fn editions_and_builds_filter() {
        use Architecture::*;
        let mut u = update("KB5", X64, &[], &[]);
        u.manifest.applies_to = AppliesTo {
            min_build: Some(22000),
            max_build: Some(22631),
            editions: vec!["enterprise".into()],
        };
        let idx = vec![
            index(1, X64, "Professional", &[]),
            index(2, X64, "Enterprise", &[]),
        ];
        let p = plan(
            &idx,
            files(std::slice::from_ref(&u)),
            &Selection::AllApplicable(KindFilter::All),
        )
        .expect("plan");
        assert!(p.indexes[0].updates.is_empty());
        assert_eq!(p.indexes[1].updates, vec!["KB5"]);
    }
}
