//! Leaving provisioning mode after a run that did not end by itself (killed, power loss, hung):
//! the whole repair, as `SetClientProvisioningMode $false` does more than flip a flag. It
//! releases the lease, removes the stage and any partial output, checks the original WIM
//! against its recorded hash and ends the run with the reason.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::lease::{self, Owner, ProvisioningMode};
use super::servicer::Servicers;
use super::RunId;
use super::{cancel, RunStatus, ServicingError};
use crate::fsutil::{hash_file, now_rfc3339};
use crate::image::{self, detect, Image, ImageId};
use crate::site::{Database, Site};
use crate::wim::Wim;

/// Why provisioning mode is being cleared.
#[derive(Debug, Clone, Copy)]
pub enum Trigger {
    /// `ois image set-provisioning-mode IMAGE false`.
    Admin,
    /// In provisioning mode longer than `provisioning_max_minutes`.
    Timeout { max_minutes: f64 },
    /// The process that held it, on this host, no longer exists.
    OwnerGone,
}

/// What the state of the original WIM turned out to be.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub enum Original {
    /// Byte-identical to what the catalog recorded.
    Intact,
    /// The run had already put its verified output in place when it died; the catalog now
    /// records that file.
    Serviced,
    /// Neither the recorded file nor the run's output: register it again.
    Changed,
    Missing,
}

#[derive(Debug, Clone, Serialize)]
pub struct Repair {
    pub image: String,
    /// The run that held provisioning mode, if one did.
    pub run_id: Option<RunId>,
    /// Runs left In progress without provisioning mode (their process died before or while
    /// it was taken), ended by this repair too.
    pub orphaned_runs: Vec<RunId>,
    pub since: String,
    pub owner: String,
    pub removed: Vec<PathBuf>,
    pub original: Original,
    pub run_status: RunStatus,
    pub reason: String,
}

/// A run recorded In progress that no provisioning mode points at.
#[derive(Debug, Clone)]
struct OrphanedRun {
    id: RunId,
    started_at: String,
    owner_pid: u32,
    owner_host: String,
}

impl OrphanedRun {
    fn owner(&self) -> Owner {
        ProvisioningMode {
            since: self.started_at.clone(),
            run_id: Some(self.id),
            owner_pid: self.owner_pid,
            owner_host: self.owner_host.clone(),
        }
        .owner()
    }
}

/// Runs of the image In progress other than `held`, whose process cannot still be working on
/// them: gone, or (when `include_unknown`) on another host.
fn orphaned_runs(
    db: &Database,
    image_id: ImageId,
    held: Option<RunId>,
    include_unknown: bool,
) -> rusqlite::Result<Vec<OrphanedRun>> {
    let mut stmt = db.prepare(
        "SELECT id, started_at, COALESCE(owner_pid, 0), COALESCE(owner_host, '') FROM servicing_runs
         WHERE image_id = ?1 AND status = 'In progress' AND id IS NOT ?2 ORDER BY id",
    )?;
    let runs = stmt
        .query_map(params![image_id, held], |r| {
            Ok(OrphanedRun {
                id: r.get(0)?,
                started_at: r.get(1)?,
                owner_pid: r.get(2)?,
                owner_host: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(runs
        .into_iter()
        .filter(|r| match r.owner() {
            Owner::Alive => false,
            Owner::Gone => true,
            Owner::Unknown => include_unknown,
        })
        .collect())
}

/// Images with a run In progress that no provisioning mode holds and whose process on this
/// host is gone: the scheduler repairs them as it does stuck provisioning modes.
pub fn images_with_orphaned_runs(db: &Database) -> rusqlite::Result<Vec<ImageId>> {
    let mut stmt = db.prepare(
        "SELECT DISTINCT r.image_id FROM servicing_runs r
         WHERE r.status = 'In progress'
           AND NOT EXISTS (SELECT 1 FROM provisioning p WHERE p.image_id = r.image_id AND p.run_id IS r.id)
         ORDER BY r.image_id",
    )?;
    let ids = stmt
        .query_map([], |r| r.get::<_, ImageId>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::new();
    for id in ids {
        let held = lease::current(db, id)?.and_then(|m| m.run_id);
        if !orphaned_runs(db, id, held, false)?.is_empty() {
            out.push(id);
        }
    }
    Ok(out)
}

/// Repairs the image if it is in provisioning mode or has runs left In progress by a process
/// that is gone; `None` when there is nothing to repair.
pub fn repair(
    site: &Site,
    img: &Image,
    trigger: Trigger,
) -> Result<Option<Repair>, ServicingError> {
    repair_by(site, img, trigger, Servicers::of_this_host())
}

/// [`repair`], with the given servicers: with DISM, the runs' stale mounts are discarded
/// before their stage is removed (a test injects a transcript runner).
pub fn repair_by(
    site: &Site,
    img: &Image,
    trigger: Trigger,
    servicers: Servicers,
) -> Result<Option<Repair>, ServicingError> {
    let db = site.database()?;
    let mode = lease::current(&db, img.id).map_err(|e| db.error(e))?;
    let held = mode.as_ref().and_then(|m| m.run_id);
    let orphans = orphaned_runs(&db, img.id, held, matches!(trigger, Trigger::Admin))
        .map_err(|e| db.error(e))?;
    let mode = match (mode, orphans.first()) {
        (Some(mode), _) => mode,
        (None, None) => return Ok(None),
        // No provisioning mode, only runs whose process died: repair as if the first held it.
        (None, Some(first)) => ProvisioningMode {
            since: first.started_at.clone(),
            run_id: None,
            owner_pid: first.owner_pid,
            owner_host: first.owner_host.clone(),
        },
    };
    let owner = mode.owner();
    if matches!(trigger, Trigger::Admin) && owner == Owner::Alive {
        return Err(ServicingError::RunAlive {
            image: img.name.clone(),
            run_id: mode.run_id.unwrap_or_default(),
            pid: mode.owner_pid,
            host: mode.owner_host.clone(),
        });
    }
    let why = match trigger {
        Trigger::Admin => "provisioning mode was cleared by an administrator".to_string(),
        Trigger::Timeout { max_minutes } => format!(
            "the image was in provisioning mode longer than {max_minutes} minutes (provisioning_max_minutes)"
        ),
        Trigger::OwnerGone => format!(
            "the servicing process {} on {} ended without finishing the run",
            mode.owner_pid, mode.owner_host
        ),
    };
    let run_label = mode
        .run_id
        .map_or_else(|| "no run".to_string(), |id| format!("run {id}"));
    tracing::warn!(
        "repairing image {}: in provisioning mode since {} ({run_label}, process {} on {}): {why}",
        img.name,
        mode.since,
        mode.owner_pid,
        mode.owner_host
    );
    let orphan_ids: Vec<RunId> = orphans.iter().map(|r| r.id).collect();
    if !orphan_ids.is_empty() {
        tracing::warn!(
            "image {}: run(s) {} were left In progress without provisioning mode by a process that is gone; ending them",
            img.name,
            orphan_ids.iter().map(RunId::to_string).collect::<Vec<_>>().join(", ")
        );
    }
    let runs: Vec<RunId> = mode
        .run_id
        .into_iter()
        .chain(orphan_ids.iter().copied())
        .collect();
    // A hung owner that wakes up must stop rather than go on writing.
    for run_id in &runs {
        cancel::request(&db, *run_id).map_err(|e| db.error(e))?;
    }
    // An index DISM still has mounted in the stage must be discarded before the stage goes:
    // deleting files under a live mount would not unmount it.
    if let Some(mut dism) = servicers.dism_runner() {
        for run_id in &runs {
            discard_stale_mounts(site, &db, dism.as_mut(), *run_id);
        }
    }
    let removed: Vec<PathBuf> = runs
        .iter()
        .flat_map(|run_id| remove_leftovers(site, &db, img, *run_id))
        .collect();
    let (original, adoption) = check_original(img, &db, mode.run_id)?;
    let (run_status, outcome) = match &original {
        Original::Intact => (RunStatus::Failed, "the original image is intact".to_string()),
        Original::Serviced => (
            RunStatus::Successful,
            "the serviced image was already in place and verified; the catalog now records it"
                .to_string(),
        ),
        Original::Changed => (
            RunStatus::Failed,
            format!(
                "{} does not match its recorded SHA-256 and is not this run's output: check it, then register it again (`ois image remove`, then `ois image import`)",
                img.path.display()
            ),
        ),
        Original::Missing => (
            RunStatus::Failed,
            format!("{} is missing: restore it", img.path.display()),
        ),
    };
    let reason = format!("{why}; {outcome}");
    let orphan_reason = format!(
        "the servicing process ended before the run took provisioning mode, or without finishing it; {}",
        if original == Original::Serviced { "the image holds a later run's result".to_string() } else { outcome.clone() }
    );
    let recorded = (|| -> rusqlite::Result<()> {
        let tx = db.unchecked_transaction()?;
        if let Some(run_id) = mode.run_id {
            tx.execute(
                "UPDATE servicing_runs SET status = ?2, finished_at = ?3, error = ?4
                 WHERE id = ?1 AND status = 'In progress'",
                params![run_id, run_status.as_str(), now_rfc3339(), reason],
            )?;
        }
        for run_id in &orphan_ids {
            tx.execute(
                "UPDATE servicing_runs SET status = 'Failed', finished_at = ?2, error = ?3
                 WHERE id = ?1 AND status = 'In progress'",
                params![run_id, now_rfc3339(), orphan_reason],
            )?;
        }
        if let Some(a) = &adoption {
            image::record_servicing(
                &tx,
                img.id,
                &a.sha256,
                a.size,
                mode.run_id.unwrap_or_default(),
                &a.installed,
            )?;
        }
        tx.execute("DELETE FROM provisioning WHERE image_id = ?1", [img.id])?;
        tx.commit()
    })();
    recorded.map_err(|e| db.error(e))?;
    tracing::warn!(
        "image {} left provisioning mode: {reason}; removed {}",
        img.name,
        if removed.is_empty() {
            "nothing".to_string()
        } else {
            removed
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    Ok(Some(Repair {
        image: img.name.clone(),
        run_id: mode.run_id,
        orphaned_runs: orphan_ids,
        since: mode.since.clone(),
        owner: format!("process {} on {}", mode.owner_pid, mode.owner_host),
        removed,
        original,
        run_status,
        reason,
    }))
}

/// The run's stage folders: the one its site gives it, and the one it recorded.
fn stage_dirs(site: &Site, db: &Database, run_id: RunId) -> Vec<PathBuf> {
    let recorded: Option<String> = db
        .query_row(
            "SELECT stage_dir FROM servicing_runs WHERE id = ?1",
            [run_id],
            |r| r.get(0),
        )
        .optional()
        .ok()
        .flatten()
        .flatten();
    let mut dirs = vec![site.stage_dir(run_id)];
    if let Some(dir) = recorded.map(PathBuf::from) {
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// Discards what DISM still has mounted in the run's stage and runs `/Cleanup-Wim`; its log
/// goes into the run's log. A failure is logged: the admin is told to clean up by hand.
fn discard_stale_mounts(
    site: &Site,
    db: &Database,
    dism: &mut dyn super::dism::DismRunner,
    run_id: RunId,
) {
    let run_log = crate::log::run_log_path(&site.logs_dir(), run_id);
    let dism_log = run_log.with_file_name(format!("run-{run_id}-repair-dism.log"));
    if let Some(dir) = dism_log.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    for stage in stage_dirs(site, db, run_id) {
        match super::dism::clean_stale_mounts(dism, &stage, &dism_log) {
            Ok(discarded) => {
                for dir in discarded {
                    tracing::warn!(
                        "run {run_id}: discarded the stale DISM mount {}",
                        dir.display()
                    );
                }
            }
            Err(e) => tracing::error!(
                "run {run_id}: cannot clean DISM's stale mounts under {}: {e}; run `dism /Get-MountedWimInfo`, `dism /Unmount-Image /MountDir:<dir> /Discard` and `dism /Cleanup-Wim` as administrator",
                stage.display()
            ),
        }
    }
    super::dism::in_run::copy_dism_log(&dism_log, &run_log, 0);
    let _ = std::fs::remove_file(&dism_log);
}

/// The run's stage folder and the copy it may have been writing beside the original.
fn remove_leftovers(site: &Site, db: &Database, img: &Image, run_id: RunId) -> Vec<PathBuf> {
    let mut candidates = stage_dirs(site, db, run_id);
    if let (Some(parent), Some(name)) = (img.path.parent(), img.path.file_name()) {
        candidates.push(parent.join(format!(".{}.ois-run-{run_id}.tmp", name.to_string_lossy())));
    }
    let mut removed = Vec::new();
    for path in candidates {
        let result = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else if path.exists() {
            std::fs::remove_file(&path)
        } else {
            continue;
        };
        match result {
            Ok(()) => removed.push(path),
            Err(e) => tracing::error!("cannot remove {}: {e}; remove it by hand", path.display()),
        }
    }
    removed
}

/// A serviced file found in place of the original, to record as the image.
struct Adoption {
    sha256: String,
    size: u64,
    installed: Vec<(u32, BTreeSet<String>)>,
}

fn check_original(
    img: &Image,
    db: &Database,
    run_id: Option<RunId>,
) -> Result<(Original, Option<Adoption>), ServicingError> {
    if !img.path.exists() {
        return Ok((Original::Missing, None));
    }
    let (sha256, size) = hash_file(&img.path).map_err(|e| ServicingError::Plan {
        image: img.name.clone(),
        reason: format!("cannot read {}: {e}", img.path.display()).into(),
    })?;
    if sha256 == img.sha256 {
        return Ok((Original::Intact, None));
    }
    let started: Option<String> = match run_id {
        Some(run_id) => db
            .query_row(
                "SELECT started_at FROM servicing_runs WHERE id = ?1",
                [run_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db.error(e))?,
        None => None,
    };
    let installed = started.and_then(|s| installed_by_run(&img.path, &s));
    Ok(match installed {
        Some(installed) => (
            Original::Serviced,
            Some(Adoption {
                sha256,
                size,
                installed,
            }),
        ),
        None => (Original::Changed, None),
    })
}

/// The run renames its verified output over the original before it records anything, so a
/// process that died in between leaves a sound WIM whose own record says this run serviced
/// every index; returns that record.
fn installed_by_run(path: &Path, run_started: &str) -> Option<Vec<(u32, BTreeSet<String>)>> {
    let wim = Wim::open(path, true).ok()?;
    let count = wim.header().image_count;
    let by_run = (1..=count).all(|i| {
        wim.property(i, detect::SERVICED_PROPERTY)
            .is_some_and(|at| at.as_str() >= run_started)
    });
    by_run.then(|| {
        (1..=count)
            .map(|i| (i, detect::from_record(&wim, i)))
            .collect()
    })
}
