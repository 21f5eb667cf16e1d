//! Who installs an update: each kind of update has its servicer, and a plan is checked against
//! the servicers of this host before anything is touched. File-level packages go through ois's
//! own in-memory servicer (wimlib, `run`/`apply`); Windows (CBS) packages need Windows' servicing
//! stack (DISM, see `dism`), which only a Windows host has.

use super::dism::{DismExe, DismRunner};
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
        Servicers::of_this_host().dism_unavailable()
    }
}

pub fn for_kind(kind: UpdateKind) -> &'static dyn Servicer {
    match kind {
        UpdateKind::File => &InMemory,
        UpdateKind::Windows => &Dism,
    }
}

/// Makes a DISM runner for one run (or one repair).
pub type DismFactory = dyn Fn() -> Box<dyn DismRunner> + Sync;

/// The servicers a run may use. On a Windows host with `dism.exe` DISM is the real one; tests
/// inject a runner that replays DISM transcripts, so the whole run takes the same path on
/// Linux. Only the choice of the real runner depends on the host.
#[derive(Clone, Copy)]
pub struct Servicers<'a> {
    dism: Option<&'a DismFactory>,
}

fn real_dism() -> Box<dyn DismRunner> {
    Box::new(DismExe)
}

impl Servicers<'static> {
    /// What this host has: DISM only on Windows, and only when `dism.exe` is there.
    pub fn of_this_host() -> Servicers<'static> {
        let dism: Option<&'static DismFactory> = if cfg!(windows) && DismExe::path().is_file() {
            Some(&real_dism)
        } else {
            None
        };
        Servicers { dism }
    }
}

impl<'a> Servicers<'a> {
    /// Windows packages go through `dism`, whatever the host.
    pub fn with_dism(dism: &'a DismFactory) -> Servicers<'a> {
        Servicers { dism: Some(dism) }
    }

    /// A runner for one run; `None` when this host cannot install Windows packages.
    pub fn dism_runner(&self) -> Option<Box<dyn DismRunner>> {
        self.dism.map(|make| make())
    }

    fn dism_unavailable(&self) -> Option<String> {
        if self.dism.is_some() {
            return None;
        }
        Some(if cfg!(windows) {
            format!(
                "installing a Windows package needs DISM, and {} is not on this host",
                DismExe::path().display()
            )
        } else {
            format!(
                "installing a Windows package needs Windows' servicing stack (DISM), and this host runs {}, not Windows",
                std::env::consts::OS
            )
        })
    }

    /// Refuses a plan these servicers cannot carry out, naming the packages and the way out.
    pub fn check(&self, plan: &Plan) -> Result<(), String> {
        let names: Vec<String> = plan
            .windows
            .iter()
            .map(|p| format!("{} ({}, {})", p.id, p.kind.label(), p.identity))
            .collect();
        self.check_windows_packages(&names)
    }

    fn check_windows_packages(&self, names: &[String]) -> Result<(), String> {
        if names.is_empty() {
            return Ok(());
        }
        let Some(why) = self.dism_unavailable() else {
            return Ok(());
        };
        Err(format!(
            "the plan holds Windows (CBS) packages: {}; {why}. Nothing was changed. Service the image on a Windows servicing host, or take only the file-level updates with `--all-applicable --kind file` (schedules take --kind too)",
            names.join(", ")
        ))
    }
}

/// Refuses a plan this host cannot carry out, naming the packages and the way out.
pub fn check(plan: &Plan) -> Result<(), String> {
    Servicers::of_this_host().check(plan)
}

/// Refuses at once a request that names Windows packages this host cannot install.
pub fn check_named(packages: &[CbsPackage]) -> Result<(), String> {
    let names: Vec<String> = packages
        .iter()
        .map(|p| format!("{} ({}, {})", p.id(), p.kind.label(), p.identity))
        .collect();
    Servicers::of_this_host().check_windows_packages(&names)
}
