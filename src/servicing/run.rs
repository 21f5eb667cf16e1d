//! One servicing run of one image, from provisioning mode to the recorded result.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use rusqlite::{params, OptionalExtension};

use super::added::check_added_data;
use super::apply::{self, Stop, UpdateResult};
use super::assemble;
use super::cancel::CancelWatch;
use super::nested::{self, NestedPlan, NestedRun, NestedStop};
use super::plan::{Catalog, KindFilter, Plan};
use super::servicer::Servicers;
use super::stage::{free_space, same_filesystem, stage_updates, Stage};
use super::{
    commit, is_canceled, lease, passes, FailedUpdate, ImageOutcome, RunId, RunStatus,
    ServiceOptions,
};
use crate::fsutil::{hash_file, now_rfc3339};
use crate::image::{self, detect, Image};
use crate::library::cbs::CbsPackage;
use crate::library::{ContentLibrary, Update};
use crate::site::{Database, Site};
use crate::wim::{Progress, ProgressEvent, UpdateCommand, Wim, WimError};

/// The compression level of what a run itself compresses: see where it is set.
const METADATA_LEVEL: u32 = 20;

/// What a run reports while it works.
#[derive(Debug, Clone, Copy)]
pub enum RunEvent {
    Step(&'static str),
    Write { done: u64, total: u64 },
    Finished(RunStatus),
}

/// A run that ended early: its status and the message for the admin.
struct Ended(RunStatus, String);

impl From<String> for Ended {
    fn from(m: String) -> Self {
        Ended(RunStatus::Failed, m)
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    site: &Site,
    library: &ContentLibrary,
    catalog: Catalog,
    img: &Image,
    plan: &Plan,
    nested: &[NestedPlan],
    options: &ServiceOptions,
    watch: &CancelWatch,
    observer: &(dyn Fn(&str, RunEvent) + Sync),
    before_replace: super::BeforeReplace,
    servicers: Servicers,
) -> ImageOutcome {
    let started = Instant::now();
    let mut outcome = ImageOutcome {
        image: img.name.clone(),
        image_id: img.id,
        status: RunStatus::Failed,
        run_id: None,
        applied: Vec::new(),
        not_written: Vec::new(),
        failed: Vec::new(),
        superseded: plan.superseded.iter().map(|(d, _)| d.clone()).collect(),
        error: None,
        size_before: img.size_bytes,
        size_after: img.size_bytes,
        seconds: 0.0,
        results: Vec::new(),
        nested: Vec::new(),
    };
    let updates = catalog.files;
    let result = start(
        site,
        catalog,
        img,
        plan,
        nested,
        options,
        servicers,
        &mut outcome,
    )
    .and_then(|claimed| {
        let Claimed {
            db,
            img,
            plan,
            nested,
        } = claimed;
        let run_id = outcome.run_id.unwrap_or_default();
        let log = crate::log::run_log_path(&site.logs_dir(), run_id);
        let span =
            tracing::info_span!("servicing_run", run_id = run_id.get(), log = %log.display());
        let _entered = span.enter();
        log_plan(&img, &plan, options);
        if options.selection == super::Selection::AllApplicable(KindFilter::File) {
            log_windows_packages_not_planned(catalog);
        }
        let requested = watch.register(run_id);
        let canceled = || is_canceled(&options.cancel) || is_canceled(&requested);
        let result = service(
            site,
            &db,
            library,
            updates,
            (catalog.windows, servicers),
            &img,
            &plan,
            &nested,
            options,
            &canceled,
            observer,
            before_replace,
            &mut outcome,
        );
        watch.unregister(run_id);
        // After DISM, planning reads the installed packages from the image, not from DISM's
        // word.
        let windows_state = match &result {
            Ok(_) if !plan.windows.is_empty() => super::dism::in_run::read_back(&img),
            _ => None,
        };
        finish(&db, &img, &mut outcome, result, windows_state.as_ref())
    });
    if let Err(Ended(status, message)) = result {
        tracing::error!(
            "servicing of image {} ended {}: {message}",
            img.name,
            status.as_str()
        );
        outcome.status = status;
        outcome.error = Some(message);
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    observer(&img.name, RunEvent::Finished(outcome.status));
    outcome
}

/// A run that holds provisioning mode, with the image record and plan it was claimed for.
struct Claimed {
    db: Database,
    img: Image,
    plan: Plan,
    nested: Vec<NestedPlan>,
}

/// What one attempt to claim the image gave.
enum Claim {
    Run(RunId),
    Held(lease::ProvisioningMode),
    /// The image record changed since it was planned (another run of ois serviced it).
    Stale,
}

/// How many times a plan gone stale is made again before giving up.
const CLAIM_ATTEMPTS: usize = 3;

/// Enters provisioning mode and records the run as In progress. The plan was made before the
/// image was claimed; when another run serviced the image in between, it is made again from
/// the record that run left.
#[allow(clippy::too_many_arguments)]
fn start(
    site: &Site,
    catalog: Catalog,
    img: &Image,
    plan: &Plan,
    nested: &[NestedPlan],
    options: &ServiceOptions,
    servicers: Servicers,
    outcome: &mut ImageOutcome,
) -> Result<Claimed, Ended> {
    let db = site.database().map_err(|e| e.to_string())?;
    let mut img = img.clone();
    let mut plan = plan.clone();
    let mut nested = nested.to_vec();
    for _ in 0..CLAIM_ATTEMPTS {
        if plan.is_empty() && nested.is_empty() {
            outcome.status = RunStatus::Successful;
            return Err(Ended(
                RunStatus::Successful,
                "nothing to apply: the image is up to date".into(),
            ));
        }
        match claim(site, &db, &img, options.continue_on_error)
            .map_err(|e| Ended::from(db.error(e).to_string()))?
        {
            Claim::Run(run_id) => {
                outcome.run_id = Some(run_id);
                tracing::info!(
                    "servicing run {run_id} started for image {} ({})",
                    img.name,
                    img.path.display()
                );
                return Ok(Claimed {
                    db,
                    img,
                    plan,
                    nested,
                });
            }
            Claim::Held(holder) => {
                return Err(Ended(
                    RunStatus::Failed,
                    format!(
                        "image {} is already being serviced: it is in provisioning mode since {} (process {} on {}); wait for that run to end",
                        img.name, holder.since, holder.owner_pid, holder.owner_host
                    ),
                ))
            }
            Claim::Stale => {
                let fresh = image::get(&db, img.id).map_err(|e| e.to_string())?;
                tracing::info!(
                    "image {} was serviced since this run was planned: planning again",
                    img.name
                );
                let indexes = image::indexes(&db, &fresh).map_err(|e| e.to_string())?;
                (plan, nested) = nested::plan_image(
                    &db,
                    &fresh,
                    &indexes,
                    catalog,
                    &options.selection,
                    options.target,
                )
                .and_then(|(p, n)| {
                    servicers
                        .check(&p)
                        .map(|()| (p, n))
                        .map_err(Into::into)
                })
                .map_err(|reason| format!("cannot service image {}: {reason}", fresh.name))?;
                outcome.superseded = plan.superseded.iter().map(|(d, _)| d.clone()).collect();
                outcome.size_before = fresh.size_bytes;
                outcome.size_after = fresh.size_bytes;
                img = fresh;
            }
        }
    }
    Err(format!(
        "image {} kept changing while this run was starting: run it again",
        img.name
    )
    .into())
}

/// Provisioning mode and the run's row are one state change: a process killed between two
/// separate statements would leave a run In progress that no lease points at.
fn claim(
    site: &Site,
    db: &Database,
    img: &Image,
    continue_on_error: bool,
) -> rusqlite::Result<Claim> {
    let tx = rusqlite::Transaction::new_unchecked(db, rusqlite::TransactionBehavior::Immediate)?;
    let recorded: Option<String> = tx
        .query_row("SELECT sha256 FROM images WHERE id = ?1", [img.id], |r| {
            r.get(0)
        })
        .optional()?;
    if recorded.as_deref() != Some(img.sha256.as_str()) {
        return Ok(Claim::Stale);
    }
    if let Err(holder) = lease::enter(&tx, img.id)? {
        return Ok(Claim::Held(holder));
    }
    tx.execute(
        "INSERT INTO servicing_runs (image_id, status, started_at, continue_on_error, size_before, owner_pid, owner_host)
         VALUES (?1, 'In progress', ?2, ?3, ?4, ?5, ?6)",
        params![img.id, now_rfc3339(), continue_on_error, img.size_bytes as i64, std::process::id(), lease::host_name()],
    )?;
    let run_id = RunId::new(tx.last_insert_rowid());
    lease::attach_run(&tx, img.id, run_id)?;
    tx.execute(
        "UPDATE servicing_runs SET stage_dir = ?2, log_path = ?3 WHERE id = ?1",
        params![
            run_id,
            site.stage_dir(run_id).to_string_lossy(),
            crate::log::run_log_path(&site.logs_dir(), run_id).to_string_lossy()
        ],
    )?;
    tx.commit()?;
    Ok(Claim::Run(run_id))
}

#[allow(clippy::too_many_arguments)]
fn service(
    site: &Site,
    db: &Database,
    library: &ContentLibrary,
    updates: &[Update],
    (windows_packages, servicers): (&[CbsPackage], Servicers),
    img: &Image,
    plan: &Plan,
    nested_plans: &[NestedPlan],
    options: &ServiceOptions,
    canceled: &dyn Fn() -> bool,
    observer: &(dyn Fn(&str, RunEvent) + Sync),
    before_replace: super::BeforeReplace,
    outcome: &mut ImageOutcome,
) -> Result<(String, u64), Ended> {
    let run_id = outcome.run_id.unwrap_or_default();
    let step = |s: &'static str| {
        tracing::info!("image {}: {s}", img.name);
        observer(&img.name, RunEvent::Step(s));
    };
    let name = &img.name;
    let stop_if_canceled = || {
        if canceled() {
            Err(Ended(
                RunStatus::Canceled,
                "canceled before the image was changed".into(),
            ))
        } else {
            Ok(())
        }
    };

    step("checking the original image");
    let original_state = check_original(img)?;
    stop_if_canceled()?;
    // The full hash runs beside staging, applying and writing, on the core wimlib leaves
    // idle; it is checked before the original is used as verified or replaced.
    let original_hash = {
        let path = img.path.clone();
        std::thread::spawn(move || hash_file(&path))
    };

    let staging_root = site.staging_root();
    let stage = Stage::create(site.stage_dir(run_id)).map_err(|e| {
        format!(
            "cannot create the staging folder in {}: {e}",
            staging_root.display()
        )
    })?;
    let by_id: HashMap<String, &Update> =
        updates.iter().map(|u| (u.id().to_lowercase(), u)).collect();
    let selected: Vec<&Update> = plan
        .order
        .iter()
        .filter_map(|id| by_id.get(&id.to_lowercase()).copied())
        .collect();
    // A nested image is read out and written again in the stage.
    let nested_room: u64 = nested_plans.iter().map(|n| 2 * n.nested.size_bytes).sum();
    let windows_room = super::dism::in_run::room_needed(img, plan, windows_packages);
    check_free_space(site, img, &stage, &selected, nested_room + windows_room)?;
    stop_if_canceled()?;

    step("opening the image");
    let wim = Wim::open(&img.path, false).map_err(|e| wim_message(name, &e))?;
    let count = wim.header().image_count;
    let known = plan.indexes.len() as u32;
    if count != known {
        return Err(format!(
            "image {name} now holds {count} indexes but {known} were registered: the file changed outside ois; register it again (`ois image remove`, then `ois image import`)"
        )
        .into());
    }
    let memory = passes::metadata_memory(&wim).map_err(|e| wim_message(name, &e))?;
    let passes = passes::passes(plan, &memory, site.config().metadata_memory_bytes());
    if passes.len() > 1 {
        tracing::info!(
            "the changed indexes' trees need about {} MiB, over metadata_memory_mib = {}: servicing in {} passes",
            plan.indexes
                .iter()
                .filter(|i| !i.updates.is_empty())
                .filter_map(|i| memory.get((i.index as usize).checked_sub(1)?))
                .sum::<u64>()
                >> 20,
            site.config().metadata_memory_mib,
            passes.len()
        );
    }
    stop_if_canceled()?;

    step("staging updates from the content library");
    let staged = stage_updates(&stage, db, library, &wim, &selected)?;
    let references = &staged.references;
    let payloads: Vec<&Path> = references.iter().map(|r| r.path.as_path()).collect();
    stop_if_canceled()?;

    let mut on_progress = |event| {
        if let ProgressEvent::Write { done, total } = event {
            observer(name, RunEvent::Write { done, total });
        }
        if canceled() {
            Progress::Abort
        } else {
            Progress::Continue
        }
    };
    let mut nested_done = Vec::new();
    if !nested_plans.is_empty() {
        step("servicing the nested images");
        let nested_run = NestedRun {
            db,
            library,
            updates,
            image_name: name,
            stage_dir: stage.dir(),
            integrity: site.config().integrity_table,
            continue_on_error: options.continue_on_error,
            canceled,
        };
        for np in nested_plans {
            outcome.nested.push(nested::outcome_for(np));
            let Some(slot) = outcome.nested.last_mut() else {
                continue;
            };
            let done = nested::service(&nested_run, &wim, np, slot, &mut on_progress);
            match done {
                Ok(done) => nested_done.push(done),
                Err(NestedStop::Canceled(m)) => return Err(Ended(RunStatus::Canceled, m)),
                Err(NestedStop::Failed(m)) => return Err(m.into()),
            }
        }
    }
    let put_back = nested::put_back(&nested_done);
    let nested_sha1s: Vec<[u8; 20]> = nested_done.iter().map(|n| n.sha1).collect();

    let run_log = crate::log::run_log_path(&site.logs_dir(), run_id);
    let windows = windows_packages_first(
        &super::dism::in_run::WindowsRun {
            library,
            packages: windows_packages,
            img,
            plan,
            stage_dir: stage.dir(),
            run_log: &run_log,
            remove_superseded: site.config().remove_superseded_updates,
            canceled,
        },
        servicers,
        &step,
        outcome,
    )?;
    // The in-memory changes and the rebuild start from DISM's committed copy.
    let wim = match &windows {
        Some(done) => {
            drop(wim);
            let staged = Wim::open(&done.staged_wim, false).map_err(|e| wim_message(name, &e))?;
            staged
                .reference(&payloads)
                .map_err(|e| wim_message(name, &e))?;
            staged
        }
        None => wim,
    };

    let output = stage.output();
    let mut results: Vec<UpdateResult> = windows
        .as_ref()
        .map_or_else(Vec::new, |w| w.results.clone());
    let assembled = passes.len() > 1;
    let boot_index = wim.header().boot_index;
    // Later passes take their indexes from what the first one started from: DISM's copy
    // when Windows packages went in first.
    let pass_source = windows
        .as_ref()
        .map_or(img.path.as_path(), |w| w.staged_wim.as_path());
    let mut opened = Some(wim);
    let mut hives = super::hives::HiveEdits::new(stage.dir());
    for (n, pass) in passes.iter().enumerate() {
        let last = n + 1 == passes.len();
        let wim = match opened.take() {
            Some(wim) if assembled => {
                // The first pass writes its own indexes only; each later one adds its indexes
                // to that file, so no index is written twice and no tree waits for the end.
                let keep = pass.indexes.last().map_or(0, |i| i.index);
                wim.keep_leading_images(keep)
                    .map_err(|e| wim_message(name, &e))?;
                wim
            }
            Some(wim) => wim,
            None => assemble::next_part(pass_source, &output, pass, &payloads)
                .map_err(|e| format!("image {name}: {e}"))?,
        };
        if passes.len() > 1 {
            let indexes: Vec<String> = pass.indexes.iter().map(|i| i.index.to_string()).collect();
            tracing::info!(
                "pass {} of {}: index(es) {}",
                n + 1,
                passes.len(),
                indexes.join(", ")
            );
        }
        step("applying updates");
        let before = results.len();
        let applied = apply::apply(
            &wim,
            pass,
            &staged.sources,
            options.continue_on_error,
            canceled,
            // Each index is checked as it is loaded for its updates: wimlib keeps only the
            // current (or a changed) image in memory, so a separate pass would load every
            // index twice.
            &|index| {
                crate::image::inspect::check_loads_whole(&wim, index)
                    .map_err(|e| format!("image {name}: {e}"))
            },
            &mut hives,
            &mut results,
        );
        summarise(&results, outcome);
        outcome.results = results.clone();
        match applied {
            Ok(()) => {}
            Err(Stop::Canceled) => {
                return Err(Ended(
                    RunStatus::Canceled,
                    "canceled; the original image is unchanged".into(),
                ))
            }
            Err(Stop::Refused(message)) => return Err(message.into()),
            Err(Stop::Failed) => {
                let f = outcome.failed.first().cloned().unwrap_or(FailedUpdate {
                    id: "?".into(),
                    error: String::new(),
                });
                return Err(format!(
                    "update {} failed: {}; the original image is unchanged (use --continue-on-error to skip failing updates)",
                    f.id, f.error
                )
                .into());
            }
        }
        let in_pass = |index: u32| pass.indexes.iter().any(|i| i.index == index);
        let put_back_here: Vec<&(u32, UpdateCommand)> =
            put_back.iter().filter(|(i, _)| in_pass(*i)).collect();
        if !put_back_here.is_empty() {
            // Each serviced nested image goes back at every place that held it, as part of
            // the parent's apply: one source file, so the write keeps one blob of it.
            for (index, command) in &put_back_here {
                crate::image::inspect::check_loads_whole(&wim, *index)
                    .map_err(|e| format!("image {name}: {e}"))?;
                wim.update(*index, std::slice::from_ref(command))
                    .map_err(|e| {
                        format!(
                            "image {name}: cannot put the serviced nested image back into index {index}: {e}; the original image is unchanged"
                        )
                    })?;
            }
        }
        if last && results.iter().all(|r| !r.applied) && put_back.is_empty() {
            return Err(
                "no update could be applied; the original image is unchanged"
                    .to_string()
                    .into(),
            );
        }

        record_in_wim(db, img, &wim, pass, &results).map_err(|e| wim_message(name, &e))?;
        let nested_here = !put_back_here.is_empty();
        let changed = pass
            .indexes
            .iter()
            .find(|i| !i.updates.is_empty())
            .map(|i| i.index)
            .or_else(|| put_back_here.first().map(|(i, _)| *i));
        // Hashed now, so that data found in the references resolves to them, and so that the
        // check below knows the hives the run wrote by their SHA-1.
        let added_data = !references.is_empty() || hives.wrote_any() || nested_here;
        if let (true, Some(first)) = (added_data, changed) {
            wim.hash_added_data(first)
                .map_err(|e| wim_message(name, &e))?;
        }
        let mut hive_data = hives.written_sha1s(&wim)?;
        // The serviced nested images are the run's own verified data too.
        if nested_here {
            hive_data.extend(nested_sha1s.iter().copied());
        }
        check_added_data(&wim, &staged, &hive_data, &results[before..])?;

        step("writing the serviced image");
        // Payloads come compressed (once, at full level) from the library and are copied raw;
        // what is left to compress is the rewritten metadata of every index (about 1 % of
        // the WIM), which near-optimal LZX made the slowest part of the run: a lazy level is
        // several times faster for a few percent more on those few MiB.
        crate::wim::set_write_level(METADATA_LEVEL);
        let integrity = last && site.config().integrity_table;
        let written = if n == 0 {
            wim.write_unsynced(&output, integrity, 0, &mut on_progress)
        } else {
            assemble::add_part(
                wim,
                &output,
                last.then_some(boot_index),
                integrity,
                &mut on_progress,
            )
        };
        if let Err(e) = written {
            if e.is_aborted() {
                return Err(Ended(
                    RunStatus::Canceled,
                    "canceled while writing; the original image is unchanged".into(),
                ));
            }
            return Err(wim_message(name, &e).into());
        }
    }

    step("verifying the serviced image");
    // The new file goes to disk while it is verified (from the page cache), not before; the
    // original is replaced only once both are done.
    let flushing = {
        let path = output.clone();
        std::thread::spawn(move || crate::platform::sync_file(&path))
    };
    check_original_hash(img, original_hash)?;
    // What DISM wrote is in no verified file: the whole output is checked.
    let verified_base =
        windows.is_none() && image::verified_sha256(db, img.id).is_some_and(|v| v == img.sha256);
    let base = verified_base.then_some(img.path.as_path());
    let output_hash =
        commit::verify(&output, base, references, count, &mut on_progress).map_err(|e| {
            if e.is_aborted() {
                return Ended(
                    RunStatus::Canceled,
                    "canceled while verifying the serviced image; the original image is unchanged"
                        .into(),
                );
            }
            Ended::from(format!(
                "the serviced image failed verification, so the original was kept unchanged: {}",
                wim_message(name, &e)
            ))
        })?;

    if canceled() {
        return Err(Ended(
            RunStatus::Canceled,
            "canceled before the original was replaced; it is unchanged".into(),
        ));
    }
    if metadata_state(&img.path) != Some(original_state) {
        return Err(format!(
            "{} changed on disk during servicing; it was left as it is",
            img.path.display()
        )
        .into());
    }
    // A repair (by an admin or the provisioning timeout) ends the run; it must not then
    // replace the original behind the repair's back.
    if !lease::held_by(db, img.id, Some(run_id)).unwrap_or(false) {
        return Err(format!(
            "image {name} left provisioning mode during the run (repaired by an admin or the timeout); the original was kept unchanged"
        )
        .into());
    }
    flushing
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the flushing thread panicked")))
        .map_err(|e| {
            format!(
                "cannot flush the serviced image {} to disk: {e}; the original is unchanged",
                output.display()
            )
        })?;
    before_replace(img, &output, &output_hash.0)
        .map_err(|e| format!("{e}; the original image is unchanged"))?;
    step("replacing the original image");
    let replaced = commit::replace(&output, &img.path, run_id, &output_hash).map_err(|e| {
        format!(
            "cannot replace {}: {e}; the original is unchanged",
            img.path.display()
        )
    })?;
    drop(stage);
    Ok(replaced)
}

/// The hook of the DISM servicer: installs the plan's Windows packages into a staged copy
/// (`dism::in_run`) before any in-memory change; `None` when the plan has none.
fn windows_packages_first(
    windows: &super::dism::in_run::WindowsRun,
    servicers: Servicers,
    step: &dyn Fn(&'static str),
    outcome: &mut ImageOutcome,
) -> Result<Option<super::dism::in_run::Installed>, Ended> {
    if windows.plan.windows.is_empty() {
        return Ok(None);
    }
    step("installing Windows packages with DISM");
    super::dism::in_run::install(windows, servicers.dism_runner()).map_err(|stopped| {
        summarise(&stopped.results, outcome);
        outcome.results = stopped.results;
        let status = if stopped.canceled {
            RunStatus::Canceled
        } else {
            RunStatus::Failed
        };
        Ended(status, stopped.message)
    })
}

/// Records the end of the run; on success also the new image state, in one transaction.
fn finish(
    db: &Database,
    img: &Image,
    outcome: &mut ImageOutcome,
    result: Result<(String, u64), Ended>,
    windows_state: Option<&image::WimContents>,
) -> Result<(), Ended> {
    let run_id = outcome.run_id.unwrap_or_default();
    // What the nested images took counts as the run's own applied and failed updates.
    for n in &outcome.nested {
        for id in &n.applied {
            if !outcome.applied.contains(id) {
                outcome.applied.push(id.clone());
            }
        }
        outcome.failed.extend(n.failed.iter().cloned());
    }
    let (status, error, replaced) = match &result {
        Ok(r) if outcome.failed.is_empty() => (RunStatus::Successful, None, Some(r.clone())),
        Ok(r) => {
            let n = outcome.failed.len();
            (
                RunStatus::Failed,
                Some(format!("{n} update(s) failed and were skipped (continue on error); the others were applied")),
                Some(r.clone()),
            )
        }
        Err(Ended(status, message)) => (*status, Some(message.clone()), None),
    };
    let log_written = db
        .query_row(
            "SELECT log_path FROM servicing_runs WHERE id = ?1",
            [run_id],
            |r| r.get::<_, Option<String>>(0),
        )
        .ok()
        .flatten()
        .is_some_and(|p| Path::new(&p).is_file());
    let recorded = (|| -> rusqlite::Result<()> {
        // This connection runs no other transaction, so the unchecked form is safe here.
        let tx = db.unchecked_transaction()?;
        if let Some((sha256, size)) = &replaced {
            let mut installed: HashMap<u32, BTreeSet<String>> = HashMap::new();
            for r in outcome.results.iter().filter(|r| r.applied) {
                installed
                    .entry(r.index)
                    .or_default()
                    .insert(r.update.clone());
            }
            let installed: Vec<(u32, BTreeSet<String>)> = installed.into_iter().collect();
            image::record_servicing(&tx, img.id, sha256, *size, run_id, &installed)?;
            if let Some(contents) = windows_state {
                image::record_windows_state(&tx, img.id, contents)?;
            }
            outcome.size_after = *size;
        }
        for r in &outcome.results {
            // An update applied in memory is installed only once the new image replaced the
            // original; otherwise the image does not have it, whatever apply said.
            let (result, error) = match (r.applied, &replaced) {
                (true, Some(_)) => (super::RESULT_APPLIED, None),
                (true, None) => (super::RESULT_NOT_WRITTEN, error.clone()),
                (false, _) => (super::RESULT_FAILED, r.error.clone()),
            };
            tx.execute(
                "INSERT OR REPLACE INTO run_updates (run_id, update_id, idx, result, error) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![run_id, r.update, r.index, result, error],
            )?;
            for (position, c) in r.registry.iter().enumerate() {
                tx.execute(
                    "INSERT OR REPLACE INTO run_registry_changes (run_id, update_id, idx, position, hive, key, value, action, before, after)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![run_id, r.update, r.index, position as i64, c.hive.as_str(), c.key, c.value, c.action, c.before, c.after],
                )?;
            }
        }
        super::nested::record(
            &tx,
            run_id,
            &outcome.nested,
            replaced.is_some(),
            error.as_deref(),
        )?;
        // What the run changed is what the image now holds: a run that did not replace the
        // original changed nothing.
        if replaced.is_some() {
            let timer = Instant::now();
            let rows =
                super::changes::record(&tx, run_id, outcome.results.iter().filter(|r| r.applied))?;
            tracing::info!(
                "recorded {rows} file change(s) of run {run_id} in {} ms",
                timer.elapsed().as_millis()
            );
        }
        tx.execute(
            "UPDATE servicing_runs SET status = ?2, finished_at = ?3, size_after = ?4, error = ?5 WHERE id = ?1",
            params![run_id, status.as_str(), now_rfc3339(), outcome.size_after as i64, error],
        )?;
        // A log that could not be written (a read-only logs folder) is not named.
        tx.execute(
            "UPDATE servicing_runs SET log_path = NULL WHERE id = ?1 AND log_path IS NOT NULL AND ?2 = 0",
            params![run_id, log_written],
        )?;
        lease::leave(&tx, img.id, Some(run_id))?;
        tx.commit()
    })();
    if replaced.is_none() {
        outcome.not_written = std::mem::take(&mut outcome.applied);
    }
    if let Err(e) = recorded {
        return Err(Ended(
            RunStatus::Failed,
            format!("the run could not be recorded: {}", db.error(e)),
        ));
    }
    tracing::info!(
        "servicing run {run_id} of image {} ended {}",
        img.name,
        status.as_str()
    );
    match result {
        Ok(_) if status == RunStatus::Successful => {
            outcome.status = RunStatus::Successful;
            Ok(())
        }
        Ok(_) => Err(Ended(status, error.unwrap_or_default())),
        Err(e) => Err(e),
    }
}

fn log_plan(img: &Image, plan: &Plan, options: &ServiceOptions) {
    tracing::info!(
        "servicing image {} ({}), continue on error: {}",
        img.name,
        img.path.display(),
        options.continue_on_error
    );
    for index in &plan.indexes {
        tracing::info!(
            "index {}: updates to apply in order: {}",
            index.index,
            if index.updates.is_empty() {
                "none".to_string()
            } else {
                index.updates.join(", ")
            }
        );
    }
    for (id, by) in &plan.superseded {
        tracing::info!("{id} is superseded by {by}: not applied");
    }
}

/// `--all-applicable --kind file` plans file-level updates only: the run log names the
/// Windows (CBS) packages it left out.
fn log_windows_packages_not_planned(catalog: Catalog) {
    if catalog.windows.is_empty() {
        return;
    }
    let ids: Vec<&str> = catalog.windows.iter().map(|p| p.id()).collect();
    tracing::info!(
        "--kind file: the Windows (CBS) packages of the content library are left out ({})",
        ids.join(", ")
    );
}

fn summarise(results: &[UpdateResult], outcome: &mut ImageOutcome) {
    let mut order: Vec<&str> = Vec::new();
    for r in results {
        if !order.contains(&r.update.as_str()) {
            order.push(&r.update);
        }
    }
    outcome.applied.clear();
    outcome.failed.clear();
    for id in order {
        let mine: Vec<&UpdateResult> = results.iter().filter(|r| r.update == id).collect();
        match mine.iter().find(|r| !r.applied) {
            None => outcome.applied.push(id.to_string()),
            Some(f) => outcome.failed.push(FailedUpdate {
                id: id.to_string(),
                error: format!("index {}: {}", f.index, f.error.clone().unwrap_or_default()),
            }),
        }
    }
}

/// Carries the installed set in the WIM's own XML, so the file keeps its history when it moves.
fn record_in_wim(
    db: &Database,
    img: &Image,
    wim: &Wim,
    pass: &Plan,
    results: &[UpdateResult],
) -> Result<(), WimError> {
    let mut indexes = image::indexes(db, img).map_err(|e| {
        WimError::io(
            &img.path,
            "reading the catalog for",
            std::io::Error::other(e.to_string()),
        )
    })?;
    // A pass's WIM holds that pass's indexes and those written before it.
    indexes.retain(|i| pass.indexes.iter().any(|p| p.index == i.info.index));
    record_installed(wim, &indexes, results)
}

/// Writes each index's installed set (recorded, already in the XML, and applied by this run)
/// into `OIS/INSTALLEDUPDATES`, with `OIS/LASTSERVICED`: for images and nested images alike.
pub(super) fn record_installed(
    wim: &Wim,
    indexes: &[image::IndexDetail],
    results: &[UpdateResult],
) -> Result<(), WimError> {
    let now = now_rfc3339();
    for idx in indexes {
        let mut ids: BTreeSet<String> = idx.installed.iter().map(|u| u.id.clone()).collect();
        ids.extend(detect::from_record(wim, idx.info.index));
        ids.extend(
            results
                .iter()
                .filter(|r| r.applied && r.index == idx.info.index)
                .map(|r| r.update.clone()),
        );
        let value = ids.into_iter().collect::<Vec<_>>().join(" ");
        wim.set_property(idx.info.index, detect::RECORD_PROPERTY, Some(&value))?;
        wim.set_property(idx.info.index, detect::SERVICED_PROPERTY, Some(&now))?;
    }
    Ok(())
}

type FileState = (u64, Option<SystemTime>);

fn metadata_state(path: &Path) -> Option<FileState> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.len(), m.modified().ok()))
}

/// The original must be the file that was registered: same size here, same SHA-256 checked by
/// [`check_original_hash`] before anything relies on it.
fn check_original(img: &Image) -> Result<FileState, Ended> {
    let state = metadata_state(&img.path).ok_or_else(|| {
        format!("WIM file {} of image {} is missing: restore it, or register the new location (`ois image remove`, then `ois image import`)", img.path.display(), img.name)
    })?;
    if state.0 != img.size_bytes {
        return Err(changed(img));
    }
    Ok(state)
}

/// The full check of the original, hashed in the background since the run started.
fn check_original_hash(
    img: &Image,
    hashing: std::thread::JoinHandle<std::io::Result<(String, u64)>>,
) -> Result<(), Ended> {
    let hashed = hashing
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the hashing thread panicked")));
    let (sha256, _) = hashed.map_err(|e| format!("cannot read {}: {e}", img.path.display()))?;
    if sha256 != img.sha256 {
        return Err(changed(img));
    }
    Ok(())
}

fn changed(img: &Image) -> Ended {
    Ended::from(format!(
        "{} changed on disk since ois registered it (size or SHA-256 differ): nothing was done; check who changed it, then register it again (`ois image remove`, then `ois image import`)",
        img.path.display()
    ))
}

/// The run needs room for the staged payload and a full new WIM in the stage, and, when the
/// stage is on another filesystem, for a second copy beside the original.
fn check_free_space(
    site: &Site,
    img: &Image,
    stage: &Stage,
    selected: &[&Update],
    extra: u64,
) -> Result<(), Ended> {
    let payload: u64 = selected.iter().map(|u| u.size_bytes).sum();
    let reserve = site.config().free_space_reserve_bytes();
    let need_stage = img.size_bytes + 2 * payload + reserve + extra;
    let mut checks: Vec<(PathBuf, u64)> = vec![(stage.dir().to_path_buf(), need_stage)];
    let original_dir = img.path.parent().unwrap_or(Path::new("/")).to_path_buf();
    if !same_filesystem(stage.dir(), &original_dir) {
        checks.push((original_dir, img.size_bytes + payload + reserve));
    }
    for (n, (path, need)) in checks.into_iter().enumerate() {
        if let Some((drive, free)) = free_space(&path) {
            if free < need {
                // The stage can move to another drive; the copy beside the image cannot.
                let remedy = if n == 0 {
                    "free some space or choose another servicing drive (servicing_drive in site.toml)"
                } else {
                    "the serviced image is copied beside the original before it replaces it, so free space on that drive"
                };
                return Err(format!(
                    "not enough free space on {} (for {}) to service image {}: {} MiB needed, {} MiB free; {remedy}",
                    drive.display(),
                    path.display(),
                    img.name,
                    need.div_ceil(1 << 20),
                    free >> 20
                )
                .into());
            }
        }
    }
    Ok(())
}

fn wim_message(image: &str, e: &WimError) -> String {
    if e.is_out_of_space() {
        format!("image {image}: the disk filled up while {} {}: free space and run again; the original image is unchanged", e.operation, e.path.display())
    } else if e.is_corruption() {
        format!("image {image}: {e}: the WIM is damaged; restore it from a good copy (or re-export it with DISM /Export-Image) and register it again")
    } else {
        format!("image {image}: {e}")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use super::*;
    use crate::image::ImageKind;
    use crate::servicing::{plan, Selection};
    use crate::site::ServicingDrive;

    fn options(selection: Selection) -> ServiceOptions {
        ServiceOptions {
            selection,
            continue_on_error: false,
            target: Default::default(),
            jobs: 1,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A run planned before another run of ois serviced the image, and started after it, is
    /// planned again from the new record rather than refused as "changed on disk".
    #[test]
    fn a_plan_made_before_another_run_serviced_the_image_is_made_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let site = Site::init(
            &dir.path().join("site"),
            ServicingDrive::Auto,
            crate::SCHEMA,
        )
        .expect("site");
        let packages = crate::sample::sample_packages(&dir.path().join("packages")).expect("pkgs");
        let library = ContentLibrary::new(&site);
        let mut db = site.database().expect("db");
        library.import(&mut db, &packages).expect("import packages");
        let wim = dir.path().join("golden.wim");
        crate::sample::golden_image(&dir.path().join("scratch"), &wim).expect("golden");
        let (stale, _) =
            crate::image::import(&site, &mut db, &wim, ImageKind::OsImage, Some("golden"))
                .expect("import image");
        let updates = library.all(&db).expect("updates");
        let catalog = Catalog {
            files: &updates,
            windows: &[],
        };
        let all = options(Selection::AllApplicable(KindFilter::All));
        let stale_plan = plan::plan(
            &image::indexes(&db, &stale).expect("indexes"),
            catalog,
            &all.selection,
        )
        .expect("plan");
        assert!(stale_plan.order.iter().any(|u| u == "KB5040000"));

        // Another run services the stack update in between.
        let first = options(Selection::Updates(vec!["KB5040000".into()]));
        let done =
            crate::servicing::service(&site, &[stale.id], &first, &|_, _| {}).expect("first run");
        assert_eq!(done[0].status, RunStatus::Successful, "{:?}", done[0].error);

        let watch = CancelWatch::default();
        let outcome = run(
            &site,
            &library,
            catalog,
            &stale,
            &stale_plan,
            &[],
            &all,
            &watch,
            &|_, _| {},
            &|_, _, _| Ok(()),
            Servicers::of_this_host(),
        );
        assert_eq!(outcome.status, RunStatus::Successful, "{:?}", outcome.error);
        assert!(
            !outcome.applied.contains(&"KB5040000".to_string()),
            "{:?}",
            outcome.applied
        );
        assert!(
            outcome.applied.contains(&"KB5040001".to_string()),
            "{:?}",
            outcome.applied
        );
        let fresh = image::find(&db, "golden").expect("image");
        let installed = image::indexes(&db, &fresh).expect("indexes");
        assert!(installed
            .iter()
            .all(|i| i.is_installed("KB5040000") && i.is_installed("KB5040001")));
    }
}
