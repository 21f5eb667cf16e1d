//! One index through DISM: mount, add each planned package in order, optionally remove
//! superseded components, check the installed state, unmount with /Commit; any failure or a
//! cancel unmounts with /Discard, so the staged copy is never left half changed.

use std::path::{Path, PathBuf};

use super::commands::{DismCommand, UnmountMode};
use super::exit::DismOutcome;
use super::output::{installed_packages, mounted_images, InstalledPackage};
use super::{DismError, DismRunner};

/// What to do to one index of the staged copy.
#[derive(Debug, Clone)]
pub struct IndexJob {
    /// The staged copy (never the original image).
    pub image: PathBuf,
    pub index: u32,
    /// `<drive>\ConfigMgr_OfflineImageServicing\<run>\mount\<index>`.
    pub mount_dir: PathBuf,
    /// Where DISM writes its log (the run's folder).
    pub log: PathBuf,
    /// In plan order (servicing stack first).
    pub packages: Vec<PackageToAdd>,
    /// `/Cleanup-Image /StartComponentCleanup /ResetBase` before unmounting.
    pub remove_superseded: bool,
    /// The library's servicing stack update, named when DISM asks for a newer one.
    pub ssu_in_library: Option<String>,
}

/// One `/Add-Package`: a `.msu` or `.cab` (its `.psf` beside it), or a folder holding a
/// checkpoint cumulative update with every base it needs, which DISM adds in one pass.
#[derive(Debug, Clone)]
pub struct PackageToAdd {
    /// Every package identity the path installs (a folder: the bases and the update).
    pub identities: Vec<String>,
    pub path: PathBuf,
}

impl PackageToAdd {
    pub fn one(identity: impl Into<String>, path: impl Into<PathBuf>) -> PackageToAdd {
        PackageToAdd {
            identities: vec![identity.into()],
            path: path.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageResult {
    pub identity: String,
    pub outcome: DismOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexResult {
    pub packages: Vec<PackageResult>,
    /// The mounted index's package list (`/Get-Packages`) after the packages went in.
    pub listed: Vec<InstalledPackage>,
}

fn run(
    runner: &mut dyn DismRunner,
    command: &DismCommand,
    log: &Path,
    ssu: Option<&str>,
) -> Result<DismOutcome, DismError> {
    let args = command.args(log);
    tracing::info!("dism.exe {}", args.join(" "));
    let out = runner.run(&args).map_err(|source| DismError::Start {
        doing: command.describe(),
        source,
    })?;
    for line in out.stdout.lines().filter(|l| l.starts_with("Error")) {
        tracing::warn!(target: "dism", "{}", line.trim());
    }
    Ok(DismOutcome::from_code(out.code, ssu))
}

fn require(
    runner: &mut dyn DismRunner,
    command: &DismCommand,
    log: &Path,
) -> Result<(), DismError> {
    match run(runner, command, log, None)? {
        o if o.installed() => Ok(()),
        outcome => Err(DismError::Failed {
            doing: command.describe(),
            outcome,
        }),
    }
}

/// Services one index; `canceled` is asked before each package.
pub fn service_index(
    runner: &mut dyn DismRunner,
    job: &IndexJob,
    canceled: &dyn Fn() -> bool,
) -> Result<IndexResult, DismError> {
    if let Err(e) = std::fs::create_dir_all(&job.mount_dir) {
        return Err(DismError::Start {
            doing: format!("creating the mount folder {}", job.mount_dir.display()),
            source: e,
        });
    }
    require(
        runner,
        &DismCommand::Mount {
            image: job.image.clone(),
            index: job.index,
            mount_dir: job.mount_dir.clone(),
        },
        &job.log,
    )?;
    let result = while_mounted(runner, job, canceled);
    let mode = if result.is_ok() {
        UnmountMode::Commit
    } else {
        UnmountMode::Discard
    };
    let unmount = require(
        runner,
        &DismCommand::Unmount {
            mount_dir: job.mount_dir.clone(),
            mode,
        },
        &job.log,
    );
    // The first failure is the one to report; a failed discard after it is logged.
    match (result, unmount) {
        (Ok(r), Ok(())) => Ok(r),
        (Ok(_), Err(e)) => Err(e),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(discard)) => {
            tracing::error!("{discard}");
            Err(e)
        }
    }
}

fn while_mounted(
    runner: &mut dyn DismRunner,
    job: &IndexJob,
    canceled: &dyn Fn() -> bool,
) -> Result<IndexResult, DismError> {
    let mut results = Vec::new();
    for package in &job.packages {
        let names = package.identities.join(" with ");
        if canceled() {
            return Err(DismError::Canceled {
                index: job.index,
                package: names,
            });
        }
        let command = DismCommand::AddPackage {
            mount_dir: job.mount_dir.clone(),
            package: package.path.clone(),
        };
        let outcome = run(runner, &command, &job.log, job.ssu_in_library.as_deref())?;
        if !outcome.installed() {
            return Err(DismError::Failed {
                doing: format!("adding {names} to index {}", job.index),
                outcome,
            });
        }
        results.extend(package.identities.iter().map(|identity| PackageResult {
            identity: identity.clone(),
            outcome: outcome.clone(),
        }));
    }
    if job.remove_superseded {
        require(
            runner,
            &DismCommand::Cleanup {
                mount_dir: job.mount_dir.clone(),
            },
            &job.log,
        )?;
    }
    // The exit code is not trusted alone: every package reported installed must be listed.
    let listing = DismCommand::GetPackages {
        mount_dir: job.mount_dir.clone(),
    };
    let args = listing.args(&job.log);
    let out = runner.run(&args).map_err(|source| DismError::Start {
        doing: listing.describe(),
        source,
    })?;
    let outcome = DismOutcome::from_code(out.code, None);
    if !outcome.installed() {
        return Err(DismError::Failed {
            doing: listing.describe(),
            outcome,
        });
    }
    let listed = installed_packages(&out.stdout);
    for r in &results {
        let found = listed
            .iter()
            .any(|p| p.is_installed() && p.identity.eq_ignore_ascii_case(&r.identity));
        if !found {
            return Err(DismError::NotInstalled {
                index: job.index,
                identity: r.identity.clone(),
            });
        }
    }
    Ok(IndexResult {
        packages: results,
        listed,
    })
}

/// The repair's part: discards every mount under `staging_root` that DISM still lists (an
/// interrupted run's), runs `/Cleanup-Wim`, and removes the mount folders. Returns the mount
/// folders it discarded; mounts elsewhere (another tool's) are left alone.
pub fn clean_stale_mounts(
    runner: &mut dyn DismRunner,
    staging_root: &Path,
    log: &Path,
) -> Result<Vec<PathBuf>, DismError> {
    let listing = DismCommand::GetMountedWimInfo;
    let out = runner
        .run(&listing.args(log))
        .map_err(|source| DismError::Start {
            doing: listing.describe(),
            source,
        })?;
    let ours: Vec<PathBuf> = mounted_images(&out.stdout)
        .into_iter()
        .map(|m| m.mount_dir)
        .filter(|d| is_under(d, staging_root))
        .collect();
    for dir in &ours {
        let discard = DismCommand::Unmount {
            mount_dir: dir.clone(),
            mode: UnmountMode::Discard,
        };
        if let Err(e) = require(runner, &discard, log) {
            tracing::warn!("{e}; /Cleanup-Wim follows");
        }
    }
    require(runner, &DismCommand::CleanupWim, log)?;
    for dir in &ours {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(ours)
}

/// Is `path` the folder `root` or inside it, as Windows compares paths (either slash, any
/// case)? A plain prefix test would take run 12's mounts for run 1's.
fn is_under(path: &Path, root: &Path) -> bool {
    let norm = |p: &Path| {
        p.to_string_lossy()
            .replace('/', "\\")
            .trim_end_matches('\\')
            .to_ascii_lowercase()
    };
    let (path, root) = (norm(path), norm(root));
    path == root || path.starts_with(&format!("{root}\\"))
}
