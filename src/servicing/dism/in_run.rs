//! The Windows packages of a servicing run. DISM changes the WIM it mounts in place, so it
//! works on a copy of the original in the run's stage: per index, mount at
//! `<stage>\mount\<index>`, add the planned packages in order, read the package list back,
//! unmount with /Commit (or /Discard). The run then applies its file-level changes in memory to
//! that copy and writes the one clean rebuild it verifies and puts in place, as for a
//! file-level run.
//!
//! DISM goes first because a cumulative update may replace the very files a file-level update
//! changes (the plan orders Windows packages before file-level updates for that reason), and
//! because DISM's /Commit appends to the WIM: ois's rebuild afterwards drops what DISM left
//! behind, so one write serves both.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::{service_index, DismError, DismRunner, IndexJob, PackageToAdd};
use crate::image::Image;
use crate::library::cbs::{CbsKind, CbsPackage};
use crate::library::ContentLibrary;
use crate::log::cmtrace::{self, RollingFile, Severity};
use crate::servicing::plan::Plan;
use crate::servicing::UpdateResult;

/// What the run needs to hand the Windows packages to DISM.
pub(crate) struct WindowsRun<'a> {
    pub library: &'a ContentLibrary,
    /// The content library's Windows packages.
    pub packages: &'a [CbsPackage],
    pub img: &'a Image,
    pub plan: &'a Plan,
    pub stage_dir: &'a Path,
    /// The run's own CMTrace log, which gets a copy of each index's DISM log.
    pub run_log: &'a Path,
    /// `remove_superseded_updates` in site.toml.
    pub remove_superseded: bool,
    pub canceled: &'a dyn Fn() -> bool,
}

/// The staged copy with every planned package committed.
pub(crate) struct Installed {
    pub staged_wim: PathBuf,
    /// One applied result per package and index, by the update id the plan uses.
    pub results: Vec<UpdateResult>,
}

/// Why the Windows packages did not all go in; the original image is untouched either way.
pub(crate) struct Stopped {
    pub canceled: bool,
    pub message: String,
    /// Committed indexes' packages (applied, never written) and the failed index's (failed).
    pub results: Vec<UpdateResult>,
}

impl Stopped {
    fn failed(message: String) -> Stopped {
        Stopped {
            canceled: false,
            message,
            results: Vec::new(),
        }
    }
}

/// What one `/Add-Package` installs, by plan id and identity.
struct Entry {
    members: Vec<(String, String)>,
    path: PathBuf,
    /// The checkpoint cumulative update whose folder this is.
    checkpoint_of: Option<String>,
    source_sha256: String,
}

/// The room the DISM part needs in the stage: a copy of the image and of each package.
pub(crate) fn room_needed(img: &Image, plan: &Plan, packages: &[CbsPackage]) -> u64 {
    if plan.windows.is_empty() {
        return 0;
    }
    let files: u64 = plan
        .windows
        .iter()
        .filter_map(|p| packages.iter().find(|c| c.identity == p.identity))
        .flat_map(|c| c.files.iter().map(|f| f.size))
        .sum();
    img.size_bytes + files
}

/// Installs the plan's Windows packages into a staged copy of the image; `None` when the plan
/// has none. `runner` is `None` on a host without DISM (the plan check refuses such plans
/// before a run starts, so this only guards against a caller that skipped it).
pub(crate) fn install(
    run: &WindowsRun,
    runner: Option<Box<dyn DismRunner + '_>>,
) -> Result<Option<Installed>, Stopped> {
    if run.plan.windows.is_empty() {
        return Ok(None);
    }
    let Some(mut runner) = runner else {
        return Err(Stopped::failed(
            "the plan holds Windows packages and this host has no DISM; the original image is unchanged".into(),
        ));
    };
    let staged_wim = run.stage_dir.join("staged.wim");
    copy_original(run.img, &staged_wim).map_err(Stopped::failed)?;
    let entries = stage_packages(run).map_err(Stopped::failed)?;
    let mut results: Vec<UpdateResult> = Vec::new();
    for index in run.plan.indexes.iter() {
        let planned = &index.windows_packages;
        if planned.is_empty() {
            continue;
        }
        let packages: Vec<(Vec<String>, PackageToAdd)> = entries
            .iter()
            .filter_map(|e| {
                let here: Vec<&(String, String)> = e
                    .members
                    .iter()
                    .filter(|(id, _)| planned.contains(id))
                    .collect();
                (!here.is_empty()).then(|| {
                    (
                        here.iter().map(|(id, _)| id.clone()).collect(),
                        PackageToAdd {
                            identities: here.iter().map(|(_, i)| i.clone()).collect(),
                            path: e.path.clone(),
                        },
                    )
                })
            })
            .collect();
        let job = IndexJob {
            image: staged_wim.clone(),
            index: index.index,
            mount_dir: run.stage_dir.join("mount").join(index.index.to_string()),
            log: run.stage_dir.join(format!("dism-{}.log", index.index)),
            packages: packages.iter().map(|(_, p)| p.clone()).collect(),
            remove_superseded: run.remove_superseded,
            ssu_in_library: servicing_stack_in_library(run, &packages),
        };
        tracing::info!(
            "index {}: installing with DISM, in order: {}",
            index.index,
            planned.join(", ")
        );
        let serviced = service_index(runner.as_mut(), &job, run.canceled);
        copy_dism_log(&job.log, run.run_log, index.index);
        let id_of = |identity: &str| {
            packages
                .iter()
                .flat_map(|(ids, p)| ids.iter().zip(&p.identities))
                .find(|(_, i)| i.eq_ignore_ascii_case(identity))
                .map_or_else(|| identity.to_string(), |(id, _)| id.clone())
        };
        match serviced {
            Ok(done) => {
                for p in &done.packages {
                    tracing::info!(
                        "index {}: {} ({}): {}",
                        index.index,
                        id_of(&p.identity),
                        p.identity,
                        p.outcome
                    );
                    results.push(UpdateResult {
                        update: id_of(&p.identity),
                        index: index.index,
                        applied: true,
                        error: None,
                        registry: Vec::new(),
                        files: Vec::new(),
                    });
                }
                tracing::info!(
                    "index {}: DISM lists {} package(s) after the update(s); every one it reported installed is among them",
                    index.index,
                    done.listed.len()
                );
            }
            Err(e) => {
                let canceled = matches!(e, DismError::Canceled { .. });
                let message = format!(
                    "index {}: {e}; the original image is unchanged",
                    index.index
                );
                if !canceled {
                    for id in planned {
                        results.push(UpdateResult {
                            update: id.clone(),
                            index: index.index,
                            applied: false,
                            error: Some(e.to_string()),
                            registry: Vec::new(),
                            files: Vec::new(),
                        });
                    }
                }
                return Err(Stopped {
                    canceled,
                    message,
                    results,
                });
            }
        }
    }
    // The folders are empty once unmounted; the packages are copies. The stage itself goes
    // when the run ends.
    let _ = std::fs::remove_dir_all(run.stage_dir.join("mount"));
    let _ = std::fs::remove_dir_all(run.stage_dir.join("packages"));
    Ok(Some(Installed {
        staged_wim,
        results,
    }))
}

/// Copies the original into the stage, checking the copy is the registered file: DISM must
/// never mount the original.
fn copy_original(img: &Image, to: &Path) -> Result<(), String> {
    let copied = File::open(&img.path).and_then(|mut from| {
        let mut into = File::create(to)?;
        crate::fsutil::copy_hashing(&mut from, &mut into)
    });
    match copied {
        Ok((sha256, _)) if sha256 == img.sha256 => Ok(()),
        Ok(_) => Err(format!(
            "{} changed on disk since ois registered it (its SHA-256 differs): nothing was done; check who changed it, then register it again (`ois image remove`, then `ois image import`)",
            img.path.display()
        )),
        Err(e) => Err(format!(
            "cannot copy image {} ({}) into the stage {} for DISM: {e}; the original image is unchanged",
            img.name,
            img.path.display(),
            to.display()
        )),
    }
}

/// Lays the planned packages out for DISM under `<stage>\packages\<n>`: each package's
/// original files (the `.psf` beside its `.cab`), a checkpoint cumulative update in one folder
/// with every base the plan pulled in for it, and an `.msu` that holds several planned
/// packages (a servicing stack with its cumulative update) given once.
fn stage_packages(run: &WindowsRun) -> Result<Vec<Entry>, String> {
    let root = run.stage_dir.join("packages");
    let mut entries: Vec<Entry> = Vec::new();
    for planned in &run.plan.windows {
        let package = run
            .packages
            .iter()
            .find(|p| p.identity == planned.identity)
            .ok_or_else(|| {
                format!(
                    "Windows package {} ({}) left the content library after the run was planned: import it again; the original image is unchanged",
                    planned.id, planned.identity
                )
            })?;
        let member = (planned.id.clone(), planned.identity.clone());
        let joins = entries
            .iter()
            .position(|e| match &planned.checkpoint_base_of {
                Some(of) => e.checkpoint_of.as_deref() == Some(of.as_str()),
                None => {
                    e.checkpoint_of.as_deref() == Some(planned.id.as_str())
                        || e.source_sha256 == package.source_sha256
                }
            });
        let folder = match joins {
            Some(n) => root.join(n.to_string()),
            None => root.join(entries.len().to_string()),
        };
        let main = link_originals(run.library, package, &folder)?;
        match joins {
            Some(n) => {
                let e = &mut entries[n];
                if !e.members.contains(&member) {
                    e.members.push(member);
                }
                // Several packages from several files: DISM takes the folder.
                if e.source_sha256 != package.source_sha256 {
                    e.path = folder;
                }
            }
            None => entries.push(Entry {
                members: vec![member],
                path: main,
                checkpoint_of: planned.checkpoint_base_of.clone(),
                source_sha256: package.source_sha256.clone(),
            }),
        }
    }
    Ok(entries)
}

/// Puts a package's original files into `folder` under their own names (a hard link to the
/// store where it can, a copy otherwise); returns the file DISM adds: the `.msu`, else the
/// `.cab`.
fn link_originals(
    library: &ContentLibrary,
    package: &CbsPackage,
    folder: &Path,
) -> Result<PathBuf, String> {
    let fail = |what: String| {
        format!(
            "cannot stage Windows package {} ({}) for DISM: {what}; the original image is unchanged",
            package.id(),
            package.identity
        )
    };
    std::fs::create_dir_all(folder).map_err(|e| fail(format!("{}: {e}", folder.display())))?;
    let mut main: Option<PathBuf> = None;
    for f in &package.files {
        let name = Path::new(&f.name)
            .file_name()
            .ok_or_else(|| fail(format!("its file name {:?} is not a file name", f.name)))?;
        let stored = library.original_file(f).ok_or_else(|| {
            fail(format!(
                "the content library no longer holds {} (SHA-256 {}): import the package again",
                f.name, f.sha256
            ))
        })?;
        let at = folder.join(name);
        if !at.exists() && std::fs::hard_link(&stored, &at).is_err() {
            std::fs::copy(&stored, &at)
                .map_err(|e| fail(format!("copying {} to {}: {e}", f.name, at.display())))?;
        }
        match f.role.as_str() {
            "msu" => main = Some(at),
            "cab" if main.is_none() => main = Some(at),
            _ => {}
        }
    }
    main.ok_or_else(|| fail("the library records no .msu or .cab for it".into()))
}

/// The newest servicing stack update of the library for the packages' architecture, named
/// when DISM asks for a newer stack.
fn servicing_stack_in_library(
    run: &WindowsRun,
    packages: &[(Vec<String>, PackageToAdd)],
) -> Option<String> {
    let arch = packages
        .iter()
        .flat_map(|(_, p)| &p.identities)
        .find_map(|i| run.packages.iter().find(|c| &c.identity == i))
        .map(|c| c.identity_parts.processor_architecture.to_ascii_lowercase());
    run.packages
        .iter()
        .filter(|c| c.kind == CbsKind::ServicingStack)
        .filter(|c| {
            arch.as_deref().is_none_or(|a| {
                c.identity_parts
                    .processor_architecture
                    .eq_ignore_ascii_case(a)
            })
        })
        .max_by_key(|c| c.identity_parts.version())
        .map(|c| c.id().to_string())
}

/// Appends a DISM log (an index's, or the repair's: `index` 0) to the run's CMTrace log, one
/// line each with component `DISM`, so the run log tells the whole story. A log DISM did not
/// write is said so.
pub(crate) fn copy_dism_log(dism_log: &Path, run_log: &Path, index: u32) {
    let bytes = match std::fs::read(dism_log) {
        Ok(b) => b,
        Err(e) => {
            let of = if index == 0 {
                "the repair".to_string()
            } else {
                format!("index {index}")
            };
            tracing::warn!(
                "{of}: no DISM log to copy into the run log ({}: {e})",
                dism_log.display()
            );
            return;
        }
    };
    let text = decode(&bytes);
    let file = dism_log
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let thread = crate::platform::thread_id();
    let now = chrono::Local::now();
    let mut out = String::new();
    for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        out.push_str(&cmtrace::line(
            line,
            now,
            "DISM",
            severity(line),
            thread,
            &file,
        ));
    }
    if let Some(dir) = run_log.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = RollingFile::new(run_log, 0).append(&out) {
        tracing::warn!(
            "cannot copy {} into the run log {}: {e}",
            dism_log.display(),
            run_log.display()
        );
    }
}

/// DISM's log is UTF-16 with a byte order mark on some hosts, UTF-8 (or ANSI) on others.
fn decode(bytes: &[u8]) -> String {
    match bytes {
        [0xff, 0xfe, rest @ ..] => {
            let units: Vec<u16> = rest
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        [0xef, 0xbb, 0xbf, rest @ ..] => String::from_utf8_lossy(rest).into_owned(),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// `2024-11-12 10:00:01, Error                 DISM   …`: the level is the second field.
fn severity(line: &str) -> Severity {
    let level = line.split(',').nth(1).map(str::trim_start).unwrap_or("");
    if level.starts_with("Error") {
        Severity::Error
    } else if level.starts_with("Warning") {
        Severity::Warning
    } else {
        Severity::Info
    }
}

/// The serviced image's Windows state read back from the file that replaced the original
/// (the same reader as `image import`): what DISM installed counts once the image shows it.
/// `None`, with a warning, when it cannot be read; the next import or run reads it then.
pub(crate) fn read_back(img: &Image) -> Option<crate::image::WimContents> {
    crate::image::inspect::inspect(&img.path)
        .map_err(|e| {
            tracing::warn!(
                "cannot read the Windows packages back from the serviced image {} ({}): {e}; `ois image applicable` may list what was installed until it is read again",
                img.name,
                img.path.display()
            )
        })
        .ok()
}
