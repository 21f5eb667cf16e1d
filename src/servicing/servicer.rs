//! Who installs an update: each kind of update has its servicer, and a plan is checked against
//! the servicers of this host before anything is touched. File-level packages go through ois's
//! own in-memory servicer (wimlib, `run`/`apply`); Windows (CBS) packages need Windows' servicing
//! stack, which the Windows servicing host issue brings (DISM) and no Linux host has.

use super::plan::Plan;
use crate::library::cbs::CbsPackage;

/// The two kinds of update a plan holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    /// ois's own packages (`update.toml`): files added, replaced or deleted.
    File,
    /// Microsoft's `.msu`/`.cab` packages.
    Windows,
}

pub trait Servicer: Sync {
    fn name(&self) -> &'static str;
    /// Why this host cannot install updates with it; `None` when it can.
    fn unavailable(&self) -> Option<String>;
}

/// File-level packages, applied to every index in memory and written as a new WIM.
pub struct InMemory;

impl Servicer for InMemory {
    fn name(&self) -> &'static str {
        "ois in-memory servicer (wimlib)"
    }

    fn unavailable(&self) -> Option<String> {
        None
    }
}

/// Windows packages, installed by DISM into a mounted index.
pub struct Dism;

impl Servicer for Dism {
    fn name(&self) -> &'static str {
        "DISM"
    }

    fn unavailable(&self) -> Option<String> {
        Some(if cfg!(windows) {
            "installing a Windows package needs DISM, which this build of ois does not drive yet"
                .into()
        } else {
            format!(
                "installing a Windows package needs Windows' servicing stack (DISM), and this host runs {}, not Windows",
                std::env::consts::OS
            )
        })
    }
}

pub fn for_kind(kind: UpdateKind) -> &'static dyn Servicer {
    match kind {
        UpdateKind::File => &InMemory,
        UpdateKind::Windows => &Dism,
    }
}

/// Refuses a plan this host cannot carry out, naming the packages and the way out.
pub fn check(plan: &Plan) -> Result<(), String> {
    let names: Vec<String> = plan
        .windows
        .iter()
        .map(|p| format!("{} ({}, {})", p.id, p.kind.label(), p.identity))
        .collect();
    check_windows_packages(&names)
}

/// Refuses at once a request that names Windows packages this host cannot install.
pub fn check_named(packages: &[CbsPackage]) -> Result<(), String> {
    let names: Vec<String> = packages
        .iter()
        .map(|p| format!("{} ({}, {})", p.id(), p.kind.label(), p.identity))
        .collect();
    check_windows_packages(&names)
}

fn check_windows_packages(names: &[String]) -> Result<(), String> {
    if names.is_empty() {
        return Ok(());
    }
    let Some(why) = for_kind(UpdateKind::Windows).unavailable() else {
        return Ok(());
    };
    Err(format!(
        "the plan holds Windows (CBS) packages: {}; {why}. Nothing was changed. Service the image on a Windows servicing host, or take only the file-level updates with `--all-applicable --kind file` (schedules take --kind too)",
        names.join(", ")
    ))
}
