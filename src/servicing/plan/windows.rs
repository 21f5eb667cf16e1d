//! Planning Windows (CBS) packages: which apply to an index, which it already has, which
//! supersede which, the checkpoint rule, and the order Microsoft's media guidance gives.
//!
//! The rules follow what CBS declares and what W10UI does (see WINDOWS-PACKAGES.md); DISM
//! itself was not run against them here.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use super::PlanError;
use crate::hint::Hint;
use crate::image::IndexDetail;
use crate::library::cbs::{compare, CbsIdentity, CbsKind, CbsPackage, CbsVersion};
use crate::library::Architecture;

/// A Windows package a plan installs, and why it is there.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedPackage {
    /// The KB, else the identity (what `update list` shows).
    pub id: String,
    pub identity: String,
    pub kind: CbsKind,
    /// Set when the plan pulled it in: the checkpoint cumulative update another one needs.
    pub checkpoint_base_of: Option<String>,
}

fn is_rollup(name: &str) -> bool {
    name.eq_ignore_ascii_case("Package_for_RollupFix")
}

fn is_foundation(name: &str) -> bool {
    name.eq_ignore_ascii_case("Microsoft-Windows-Foundation-Package")
}

/// A cumulative update's version is `build.revision.x.y`: `22621.4460.1.15` brings build
/// 22621 to revision (UBR) 4460.
fn cu_level(p: &CbsPackage) -> (u32, u32) {
    let v = p.identity_parts.version().0;
    (v[0], v[1])
}

/// Where a checkpoint-based cumulative update declares its base: a `Package_for_RollupFix`
/// parent, or a foundation parent that asks for a revision above RTM (`10.0.26100.1742`, GE).
/// Returns the base's build and revision.
pub fn checkpoint_base(p: &CbsPackage) -> Option<(u32, u32)> {
    if p.kind != CbsKind::CumulativeUpdate {
        return None;
    }
    p.parents.iter().find_map(|parent| {
        let v = parent.identity.version();
        if is_rollup(&parent.identity.name) {
            Some((v.0[0], v.0[1]))
        } else if is_foundation(&parent.identity.name)
            && v.revision() > 1
            && parent
                .revision_compare
                .as_deref()
                .is_none_or(|c| c.eq_ignore_ascii_case("GE"))
        {
            Some((v.build(), v.revision()))
        } else {
            None
        }
    })
}

/// An index as planning looks at it: its installed packages parsed once and found by name (a
/// real index has 2,000 of them, and every package of the library is checked against each).
pub struct Target<'a> {
    pub index: &'a IndexDetail,
    by_name: HashMap<String, Vec<CbsIdentity>>,
    servicing_stacks: Vec<CbsIdentity>,
    level: Option<(u32, u32)>,
}

impl<'a> Target<'a> {
    pub fn of(index: &'a IndexDetail) -> Target<'a> {
        let mut by_name: HashMap<String, Vec<CbsIdentity>> = HashMap::new();
        let mut servicing_stacks = Vec::new();
        for id in index
            .packages
            .iter()
            .filter(|p| p.installed)
            .filter_map(|p| p.parts())
        {
            if CbsKind::of(&id.name, false) == CbsKind::ServicingStack {
                servicing_stacks.push(id.clone());
            }
            by_name
                .entry(id.name.to_ascii_lowercase())
                .or_default()
                .push(id);
        }
        let mut target = Target {
            index,
            by_name,
            servicing_stacks,
            level: None,
        };
        target.level = target.compute_level();
        target
    }

    pub fn all(indexes: &'a [IndexDetail]) -> Vec<Target<'a>> {
        indexes.iter().map(Target::of).collect()
    }

    fn named(&self, name: &str) -> &[CbsIdentity] {
        self.by_name
            .get(&name.to_ascii_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// The build and revision the index is at: the hive's UBR, else the highest installed
    /// cumulative update of its build, else the WIM XML's SPBUILD (which DISM sets to the UBR).
    fn compute_level(&self) -> Option<(u32, u32)> {
        let build = self.index.info.build?;
        let from_cu = self
            .named("Package_for_RollupFix")
            .iter()
            .map(|id| id.version().0)
            .filter(|v| v[0] == build)
            .map(|v| v[1])
            .max();
        let from_xml = self
            .index
            .info
            .version
            .as_deref()
            .and_then(|v| v.parse::<CbsVersion>().ok())
            .map(|v| v.revision());
        let revision = self.index.info.ubr.or(from_cu).or(from_xml).unwrap_or(0);
        Some((build, revision.max(from_cu.unwrap_or(0))))
    }

    pub fn level(&self) -> Option<(u32, u32)> {
        self.level
    }
}

fn arch_matches(p: &CbsPackage, index: &IndexDetail) -> bool {
    match p.arch_filter_value() {
        Some(Architecture::Neutral) => true,
        Some(a) => index.info.architecture == Some(a),
        None => false,
    }
}

/// Is a parent present in the index at the version the package asks? A checkpoint parent is
/// not an applicability test (the checkpoint rule handles it), so it counts as met.
fn parent_met(
    p: &CbsPackage,
    parent: &crate::library::cbs::ParentRequirement,
    target: &Target,
) -> Result<bool, String> {
    let name = &parent.identity.name;
    if p.kind == CbsKind::CumulativeUpdate && is_rollup(name) {
        return Ok(true);
    }
    let checkpoint_foundation =
        p.kind == CbsKind::CumulativeUpdate && is_foundation(name) && checkpoint_base(p).is_some();
    let want = parent.identity.version();
    for have in target.named(name) {
        if !(parent.identity.processor_architecture.is_empty()
            || have
                .processor_architecture
                .eq_ignore_ascii_case(&parent.identity.processor_architecture))
        {
            continue;
        }
        let v = have.version();
        let build = compare(parent.build_compare.as_deref(), v.build(), want.build())?;
        let revision = checkpoint_foundation
            || compare(
                parent.revision_compare.as_deref(),
                v.revision(),
                want.revision(),
            )?;
        if build && revision {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Why a package is not needed on an index; `None` when it is.
pub fn not_needed(p: &CbsPackage, target: &Target) -> Option<String> {
    let index = target.index;
    let n = index.info.index;
    if !arch_matches(p, index) {
        return Some(format!(
            "is for {}, and index {n} is {}",
            p.architecture,
            index
                .info
                .architecture
                .map_or("of unknown architecture", |a| a.as_str())
        ));
    }
    if p.kind == CbsKind::CumulativeUpdate {
        let (build, revision) = cu_level(p);
        if let Some((have_build, have_revision)) = target.level() {
            if have_build != build {
                return Some(format!(
                    "is for build {build}, and index {n} is build {have_build}"
                ));
            }
            if have_revision == revision {
                return Some(format!(
                    "is installed on index {n} (it is at {build}.{revision})"
                ));
            }
            if have_revision > revision {
                return Some(format!(
                    "is superseded on index {n}, which is at {build}.{have_revision}"
                ));
            }
        }
    }
    let own = &p.identity_parts;
    let stacks: &[CbsIdentity] = if p.kind == CbsKind::ServicingStack {
        &target.servicing_stacks
    } else {
        &[]
    };
    for have in target.named(&own.name).iter().chain(stacks) {
        let same_line = have.same_package(own)
            || (p.kind == CbsKind::ServicingStack
                && have
                    .processor_architecture
                    .eq_ignore_ascii_case(&own.processor_architecture));
        if !same_line {
            continue;
        }
        if have.version() == own.version() && have.name.eq_ignore_ascii_case(&own.name) {
            return Some(format!("is installed on index {n}"));
        }
        if have.version() >= own.version() {
            return Some(format!("is superseded on index {n} by installed {have}"));
        }
    }
    if !p.parents.is_empty() {
        let mut met = false;
        for parent in &p.parents {
            match parent_met(p, parent, target) {
                Ok(true) => {
                    met = true;
                    break;
                }
                Ok(false) => {}
                Err(e) => return Some(format!("declares a parent ois cannot evaluate: {e}")),
            }
        }
        if !met {
            let names: Vec<String> = p
                .parents
                .iter()
                .map(|x| {
                    format!(
                        "{} {}{}",
                        x.identity.name,
                        x.identity.version,
                        x.build_compare
                            .as_deref()
                            .map_or(String::new(), |c| format!(" (build {c})"))
                    )
                })
                .collect();
            return Some(format!(
                "needs {} in index {n}, which it does not have",
                names.join(" or ")
            ));
        }
    }
    None
}

/// Does `a` make `b` unnecessary? A higher cumulative update of the same build replaces every
/// lower one; a higher servicing stack every lower one.
pub fn supersedes(a: &CbsPackage, b: &CbsPackage) -> bool {
    if a.kind != b.kind
        || !a
            .identity_parts
            .processor_architecture
            .eq_ignore_ascii_case(&b.identity_parts.processor_architecture)
    {
        return false;
    }
    match a.kind {
        CbsKind::CumulativeUpdate => {
            let (ab, ar) = cu_level(a);
            let (bb, br) = cu_level(b);
            ab == bb && ar > br
        }
        CbsKind::ServicingStack => a.identity_parts.version() > b.identity_parts.version(),
        _ => false,
    }
}

/// Order of installation: servicing stack first, the rest, the cumulative update last but
/// before .NET (Microsoft's "Update Windows installation media" order).
fn rank(kind: CbsKind) -> u8 {
    match kind {
        CbsKind::ServicingStack => 0,
        CbsKind::Other | CbsKind::SafeOs => 1,
        CbsKind::CumulativeUpdate => 2,
        CbsKind::DotNet => 3,
    }
}

fn sort(packages: &mut [&CbsPackage]) {
    packages.sort_by(|a, b| {
        (rank(a.kind), a.identity_parts.version(), &a.identity).cmp(&(
            rank(b.kind),
            b.identity_parts.version(),
            &b.identity,
        ))
    });
}

/// Packages needed on at least one index, without those a higher needed one supersedes.
pub fn applicable<'a>(indexes: &[IndexDetail], library: &'a [CbsPackage]) -> Vec<&'a CbsPackage> {
    applicable_to(&Target::all(indexes), library)
}

pub fn applicable_to<'a>(targets: &[Target], library: &'a [CbsPackage]) -> Vec<&'a CbsPackage> {
    let needed: Vec<&CbsPackage> = library
        .iter()
        .filter(|p| targets.iter().any(|t| not_needed(p, t).is_none()))
        .collect();
    let mut out: Vec<&CbsPackage> = needed
        .iter()
        .filter(|p| !needed.iter().any(|q| supersedes(q, p)))
        .copied()
        .collect();
    sort(&mut out);
    out
}

/// The Windows part of a plan.
#[derive(Debug, Default)]
pub struct WindowsPlan {
    /// In installation order.
    pub packages: Vec<PlannedPackage>,
    /// Per index (in the order given), the ids to install there, in order.
    pub per_index: Vec<Vec<String>>,
    /// (dropped, by): selected packages another selected one supersedes.
    pub superseded: Vec<(String, String)>,
}

/// Plans the selected packages (already resolved from ids, or every applicable one): drops the
/// superseded, pulls in checkpoint bases, orders, and lists per index.
pub fn plan(
    targets: &[Target],
    library: &[CbsPackage],
    mut selected: Vec<&CbsPackage>,
) -> Result<WindowsPlan, PlanError> {
    let mut out = WindowsPlan::default();
    // A checkpoint base selected with the update built on it stays: it is not superseded.
    let bases: Vec<(u32, u32)> = selected.iter().filter_map(|p| checkpoint_base(p)).collect();
    let snapshot = selected.clone();
    selected.retain(|p| {
        let is_base = p.kind == CbsKind::CumulativeUpdate && bases.contains(&cu_level(p));
        match snapshot.iter().find(|q| supersedes(q, p)) {
            Some(by) if !is_base => {
                out.superseded
                    .push((p.id().to_string(), by.id().to_string()));
                false
            }
            _ => true,
        }
    });
    let mut pulled: Vec<(&CbsPackage, String)> = Vec::new();
    let mut queue: Vec<&CbsPackage> = selected.clone();
    while let Some(cu) = queue.pop() {
        let Some((build, revision)) = checkpoint_base(cu) else {
            continue;
        };
        for target in targets.iter().filter(|t| not_needed(cu, t).is_none()) {
            let index = target.index;
            let at = target.level();
            if at.is_some_and(|(b, r)| b == build && r >= revision) {
                continue;
            }
            let brings_base = |p: &&CbsPackage| {
                p.kind == CbsKind::CumulativeUpdate && {
                    let (b, r) = cu_level(p);
                    b == build && r >= revision && r < cu_level(cu).1
                }
            };
            if selected.iter().any(brings_base) || pulled.iter().any(|(p, _)| brings_base(p)) {
                continue;
            }
            let base = library.iter().find(|p| {
                p.kind == CbsKind::CumulativeUpdate
                    && cu_level(p) == (build, revision)
                    && p.identity_parts
                        .processor_architecture
                        .eq_ignore_ascii_case(&cu.identity_parts.processor_architecture)
            });
            match base {
                Some(base) => {
                    tracing::info!(
                        "{} is built on checkpoint cumulative update {} ({build}.{revision}): adding it to the plan",
                        cu.id(),
                        base.id()
                    );
                    pulled.push((base, cu.id().to_string()));
                    queue.push(base);
                }
                None => {
                    return Err(PlanError {
                        reason: format!(
                            "{} ({}) is a checkpoint-based cumulative update: it needs the checkpoint cumulative update for {build}.{revision} first, and index {} is at {}, no selected update brings it there and the content library has no cumulative update {build}.{revision}: download that checkpoint update (the Microsoft Update Catalog lists it as this update's prerequisite)",
                            cu.id(),
                            cu.identity,
                            index.info.index,
                            at.map_or("an unknown revision".into(), |(b, r)| format!("{b}.{r}"))
                        ),
                        hint: Some(Hint::ImportUpdate),
                    });
                }
            }
        }
    }
    let mut all: Vec<&CbsPackage> = selected.clone();
    all.extend(pulled.iter().map(|(p, _)| *p));
    sort(&mut all);
    let mut seen = BTreeSet::new();
    all.retain(|p| seen.insert(p.identity.to_ascii_lowercase()));
    for target in targets {
        out.per_index.push(
            all.iter()
                .filter(|p| not_needed(p, target).is_none())
                .map(|p| p.id().to_string())
                .collect(),
        );
    }
    out.packages = all
        .iter()
        .filter(|p| targets.iter().any(|t| not_needed(p, t).is_none()))
        .map(|p| PlannedPackage {
            id: p.id().to_string(),
            identity: p.identity.clone(),
            kind: p.kind,
            checkpoint_base_of: pulled
                .iter()
                .find(|(q, _)| q.identity == p.identity)
                .map(|(_, of)| of.clone()),
        })
        .collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{IndexInfo, InstalledPackage};
    use crate::library::cbs::ParentRequirement;

    const TOKEN: &str = "31bf3856ad364e35";

    fn identity(name: &str, version: &str) -> CbsIdentity {
        CbsIdentity {
            name: name.into(),
            public_key_token: TOKEN.into(),
            processor_architecture: "amd64".into(),
            language: String::new(),
            version: version.into(),
        }
    }

    fn parent(name: &str, version: &str, build: &str, revision: &str) -> ParentRequirement {
        ParentRequirement {
            identity: identity(name, version),
            build_compare: Some(build.into()),
            revision_compare: Some(revision.into()),
            integrate: None,
            disposition: None,
        }
    }

    fn foundation(version: &str) -> ParentRequirement {
        parent("Microsoft-Windows-Foundation-Package", version, "EQ", "GE")
    }

    fn package(kb: &str, name: &str, version: &str, parents: Vec<ParentRequirement>) -> CbsPackage {
        CbsPackage::planned(Some(kb.into()), identity(name, version), parents)
    }

    fn cu(kb: &str, build: u32, revision: u32) -> CbsPackage {
        package(
            kb,
            "Package_for_RollupFix",
            &format!("{build}.{revision}.1.7"),
            vec![foundation(&format!("10.0.{build}.1"))],
        )
    }

    /// An index with the given packages installed (state 0x70) and `staged` ones (0x40).
    fn index(
        n: u32,
        build: u32,
        ubr: Option<u32>,
        installed: &[&str],
        staged: &[&str],
    ) -> IndexDetail {
        let mut packages: Vec<InstalledPackage> = installed
            .iter()
            .map(|i| InstalledPackage {
                identity: i.to_string(),
                state: Some(0x70),
                installed: true,
                source: "hive".into(),
            })
            .collect();
        packages.extend(staged.iter().map(|i| InstalledPackage {
            identity: i.to_string(),
            state: Some(0x40),
            installed: false,
            source: "hive".into(),
        }));
        IndexDetail {
            info: IndexInfo {
                index: n,
                name: format!("i{n}"),
                architecture: Some(Architecture::X64),
                build: Some(build),
                version: None,
                edition: Some("Professional".into()),
                product_name: None,
                ubr,
                display_version: None,
                packages_from: None,
            },
            installed: Vec::new(),
            packages,
            target: Default::default(),
        }
    }

    fn foundation_installed(build: u32) -> String {
        format!("Microsoft-Windows-Foundation-Package~{TOKEN}~amd64~~10.0.{build}.1")
    }

    fn ids(list: &[&CbsPackage]) -> Vec<String> {
        list.iter().map(|p| p.id().to_string()).collect()
    }

    #[test]
    fn the_applicable_list_follows_the_index_revision() {
        let f = foundation_installed(22621);
        let library = vec![
            cu("KB4317", 22621, 4317),
            cu("KB4460", 22621, 4460),
            cu("KB4602", 22621, 4602),
            cu("KB26100", 26100, 2314),
        ];
        let at = |ubr| vec![index(1, 22621, Some(ubr), &[&f], &[])];
        assert_eq!(ids(&applicable(&at(4317), &library)), ["KB4602"]);
        assert_eq!(ids(&applicable(&at(4460), &library)), ["KB4602"]);
        assert!(applicable(&at(4602), &library).is_empty());
        assert!(applicable(&at(4700), &library).is_empty());
        let reason = not_needed(&library[3], &Target::of(&at(4317)[0])).expect("other build");
        assert!(reason.contains("build 26100"), "{reason}");
        let reason = not_needed(&library[1], &Target::of(&at(4460)[0])).expect("installed");
        assert!(reason.contains("is installed"), "{reason}");
        let reason = not_needed(&library[0], &Target::of(&at(4460)[0])).expect("superseded");
        assert!(reason.contains("superseded"), "{reason}");
    }

    #[test]
    fn installed_means_installed_or_permanent_state() {
        let f = foundation_installed(22621);
        let kb = package(
            "KB5001",
            "Package_for_KB5001",
            "10.0.1.2",
            vec![foundation("10.0.22621.1")],
        );
        let own = kb.identity.clone();
        let higher = format!("Package_for_KB5001~{TOKEN}~amd64~~10.0.1.3");
        let present = index(1, 22621, None, &[&f, &own], &[]);
        assert!(not_needed(&kb, &Target::of(&present))
            .expect("installed")
            .contains("is installed"));
        let newer = index(1, 22621, None, &[&f, &higher], &[]);
        assert!(not_needed(&kb, &Target::of(&newer))
            .expect("newer")
            .contains("superseded on index 1 by installed"));
        let staged = index(1, 22621, None, &[&f], &[&own]);
        assert_eq!(
            not_needed(&kb, &Target::of(&staged)),
            None,
            "staged (0x40) is not installed"
        );
    }

    #[test]
    fn a_package_applies_only_where_a_parent_is_present() {
        let f = foundation_installed(22621);
        let enterprise = format!("Microsoft-Windows-EnterpriseEdition~{TOKEN}~amd64~~10.0.22621.1");
        let only_enterprise = package(
            "KB7",
            "Package_for_KB7",
            "10.0.1.0",
            vec![parent(
                "Microsoft-Windows-EnterpriseEdition",
                "10.0.22621.1",
                "EQ",
                "GE",
            )],
        );
        let pro = index(1, 22621, None, &[&f], &[]);
        let ent = index(2, 22621, None, &[&f, &enterprise], &[]);
        let reason = not_needed(&only_enterprise, &Target::of(&pro)).expect("pro");
        assert!(
            reason.contains("Microsoft-Windows-EnterpriseEdition"),
            "{reason}"
        );
        assert_eq!(not_needed(&only_enterprise, &Target::of(&ent)), None);
        let other_build = package(
            "KB8",
            "Package_for_KB8",
            "10.0.1.0",
            vec![foundation("10.0.19041.1")],
        );
        assert!(
            not_needed(&other_build, &Target::of(&pro)).is_some(),
            "buildCompare EQ"
        );
        let mut arm = package("KB9", "Package_for_KB9", "10.0.1.0", vec![]);
        arm.architecture = "arm64".into();
        assert!(not_needed(&arm, &Target::of(&pro))
            .expect("arch")
            .contains("arm64"));
    }

    #[test]
    fn servicing_stack_first_cumulative_update_before_dotnet() {
        let f = foundation_installed(22621);
        let library = vec![
            package("KBNET", "Package_for_DotNetRollup_481", "10.0.4.0", vec![]),
            cu("KBCU", 22621, 4602),
            package("KBX", "Package_for_KB5002", "10.0.1.0", vec![]),
            package(
                "KBSSU",
                "Package_for_ServicingStack_4600",
                "22621.4600.1.0",
                vec![],
            ),
        ];
        let idx = vec![index(1, 22621, Some(4460), &[&f], &[])];
        let p = plan(&Target::all(&idx), &library, applicable(&idx, &library)).expect("plan");
        let order: Vec<&str> = p.packages.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(order, ["KBSSU", "KBX", "KBCU", "KBNET"]);
        assert_eq!(p.per_index[0], order);
    }

    #[test]
    fn a_higher_selected_update_supersedes_a_lower_one() {
        let f = foundation_installed(22621);
        let library = vec![cu("KB4460", 22621, 4460), cu("KB4602", 22621, 4602)];
        let idx = vec![index(1, 22621, Some(4317), &[&f], &[])];
        let p = plan(&Target::all(&idx), &library, library.iter().collect()).expect("plan");
        assert_eq!(p.superseded, [("KB4460".to_string(), "KB4602".to_string())]);
        assert_eq!(p.per_index[0], ["KB4602"]);
        let ssu_old = package("S1", "Package_for_ServicingStack_1", "22621.1.1.0", vec![]);
        let ssu_new = package("S2", "Package_for_ServicingStack_2", "22621.2.1.0", vec![]);
        assert!(supersedes(&ssu_new, &ssu_old));
        let installed_ssu = index(1, 22621, None, &[&f, &ssu_new.identity], &[]);
        assert!(not_needed(&ssu_old, &Target::of(&installed_ssu))
            .expect("superseded")
            .contains("superseded"));
    }

    fn checkpoint_based(kb: &str, revision: u32, base: u32) -> CbsPackage {
        package(
            kb,
            "Package_for_RollupFix",
            &format!("26100.{revision}.1.7"),
            vec![foundation(&format!("10.0.26100.{base}"))],
        )
    }

    #[test]
    fn a_checkpoint_base_is_pulled_in_or_named() {
        let f = foundation_installed(26100);
        let later = checkpoint_based("KB5044284", 2314, 1742);
        assert_eq!(checkpoint_base(&later), Some((26100, 1742)));
        let base = cu("KB5043080", 26100, 1742);
        let rtm = vec![index(1, 26100, Some(1), &[&f], &[])];

        // The base is in the library: the plan takes it first.
        let library = vec![base.clone(), later.clone()];
        assert_eq!(ids(&applicable(&rtm, &library)), ["KB5044284"]);
        let p = plan(&Target::all(&rtm), &library, applicable(&rtm, &library)).expect("plan");
        let order: Vec<&str> = p.packages.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(order, ["KB5043080", "KB5044284"]);
        assert_eq!(
            p.packages[0].checkpoint_base_of.as_deref(),
            Some("KB5044284")
        );

        // Selected together, the base is not dropped as superseded.
        let p = plan(&Target::all(&rtm), &library, library.iter().collect()).expect("plan");
        assert!(p.superseded.is_empty());
        assert_eq!(p.per_index[0], ["KB5043080", "KB5044284"]);

        // The index already has the base: nothing is pulled in.
        let at_base = vec![index(1, 26100, Some(1742), &[&f], &[])];
        let p = plan(&Target::all(&at_base), &library, vec![&later]).expect("plan");
        assert_eq!(p.per_index[0], ["KB5044284"]);

        // Neither installed, nor selected, nor in the library: refused, naming the base.
        let alone = vec![later.clone()];
        let err = plan(&Target::all(&rtm), &alone, vec![&alone[0]]).unwrap_err();
        assert!(
            err.reason
                .contains("checkpoint cumulative update for 26100.1742"),
            "{err}"
        );
        assert!(err.reason.contains("KB5044284"), "{err}");
        assert_eq!(err.hint, Some(Hint::ImportUpdate));
    }
}
