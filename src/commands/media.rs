//! Installation media: registering it, and servicing it as one run: its boot.wim and
//! install.wim through the same servicing engine as `ois service`, Setup Dynamic Updates into
//! `sources`, then a new media folder and ISO, swapped in only once complete and verified.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use super::CommandError;
use crate::fsutil::hash_file;
use crate::image::{self, Image, ImageId};
use crate::library::ContentLibrary;
use crate::media::{self, iso, setup_update, tree, Media, MediaError, MediaFile, SetupUpdate};
use crate::servicing::{
    self, Catalog, ImageOutcome, RunEvent, RunStatus, Selection, ServiceOptions, ServicingError,
};
use crate::site::Site;

/// A media with what it holds.
#[derive(Debug, Clone, Serialize)]
pub struct MediaView {
    #[serde(flatten)]
    pub media: Media,
    pub install_image: String,
    pub boot_image: Option<String>,
    pub setup_updates: Vec<String>,
    pub files: Vec<MediaFile>,
}

fn view(site: &Site, media: Media, files: Vec<MediaFile>) -> Result<MediaView, CommandError> {
    let db = site.database()?;
    let name = |id: ImageId| image::get(&db, id).map(|i| i.name);
    Ok(MediaView {
        install_image: name(media.install_image_id)?,
        boot_image: media.boot_image_id.map(name).transpose()?,
        setup_updates: media::applied_setup_updates(&db, media.id)?,
        files,
        media,
    })
}

/// Registers the media folder or ISO `source` as `name` (see [`media::import`]).
pub fn import_media(site: &Site, source: &Path, name: &str) -> Result<MediaView, CommandError> {
    let mut db = site.database()?;
    let (media, files) = media::import(site, &mut db, source, name)?;
    // The media's images get their compressed payloads now, as any imported image does.
    for id in std::iter::once(media.install_image_id).chain(media.boot_image_id) {
        let image = crate::image::find(&db, &id.to_string())?;
        let indexes = crate::image::indexes(&db, &image)?;
        super::images::prepare_payloads(site, &db, &image, &indexes);
    }
    drop(db);
    view(site, media, files)
}

pub fn list_media(site: &Site) -> Result<Vec<Media>, CommandError> {
    let db = site.database()?;
    Ok(media::list(&db)?)
}

pub fn show_media(site: &Site, key: &str) -> Result<MediaView, CommandError> {
    let db = site.database()?;
    let media = media::find(&db, key)?;
    let files = media::files(&db, media.id)?;
    drop(db);
    view(site, media, files)
}

/// Forgets the media and its images; its files stay.
pub fn remove_media(site: &Site, key: &str) -> Result<Media, CommandError> {
    let mut db = site.database()?;
    let media = media::find(&db, key)?;
    media::remove(&mut db, &media)?;
    Ok(media)
}

pub fn import_setup_update(
    site: &Site,
    cab: &Path,
    id: Option<&str>,
) -> Result<SetupUpdate, CommandError> {
    let db = site.database()?;
    Ok(setup_update::import(site, &db, cab, id)?)
}

pub fn list_setup_updates(site: &Site) -> Result<Vec<SetupUpdate>, CommandError> {
    let db = site.database()?;
    Ok(setup_update::list(&db)?)
}

/// Sends the media's images (boot.wim and install.wim, each its current version) to `dps`
/// (NAL paths, which become assigned to them), or to the DPs that hold or are assigned them:
/// what a deployment boots and applies from a DP, through the same transfers, states and
/// maintenance mode as `ois image distribute`.
pub fn distribute_media(
    site: &Site,
    key: &str,
    dps: &[String],
    jobs: usize,
) -> Result<Vec<super::Distributed>, CommandError> {
    let media = media::find(&site.database()?, key)?;
    [media.boot_image_id, Some(media.install_image_id)]
        .into_iter()
        .flatten()
        .map(|id| super::distribute_image(site, &id.to_string(), dps, jobs))
        .collect()
}

/// What a media run is asked to do.
#[derive(Debug, Clone)]
pub struct MediaServiceOptions {
    /// How the media's images are serviced, as `ois service` takes it (updates, continue on
    /// error, cancel); with named updates, each image takes those that apply to it. `jobs`
    /// is not used: the images run one inside the other.
    pub service: ServiceOptions,
    /// Setup Dynamic Updates to expand into `sources`, in order.
    pub setup_updates: Vec<String>,
    /// Where the ISO goes [default: `<site>/Media/<name>.iso`].
    pub iso: Option<PathBuf>,
}

/// The ISO a media run wrote.
#[derive(Debug, Clone, Serialize)]
pub struct IsoView {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub boot: Vec<iso::BootEntry>,
    pub seconds: f64,
}

/// What a media run did.
#[derive(Debug, Clone, Serialize)]
pub struct MediaServiced {
    pub media: String,
    pub status: RunStatus,
    pub error: Option<String>,
    /// The runs of its images (an image with nothing to apply has none).
    pub images: Vec<ImageOutcome>,
    pub setup_updates: Vec<String>,
    /// Files of `sources` the Setup Dynamic Updates wrote.
    pub setup_files: Vec<String>,
    pub iso: Option<IsoView>,
    pub files: usize,
}

/// One image of the media to service, with the selection it takes.
struct Job {
    image: Image,
    selection: Selection,
}

/// A WIM of the media that its run serviced and verified, not yet in place of the original.
#[derive(Debug, Clone)]
struct ServicedWim {
    /// The original in the media folder.
    original: PathBuf,
    /// The run's verified output, in its stage.
    serviced: PathBuf,
    sha256: String,
}

/// The last step of a media run: builds the new media from every serviced WIM.
type BuildStep<'a> = &'a (dyn Fn(&[ServicedWim]) -> Result<(), String> + Sync);

/// What the last step of the run produced, kept until the runs have recorded.
struct Built {
    files: Vec<MediaFile>,
    iso: IsoView,
    setup_files: Vec<String>,
}

/// Services the media `key`: see the module's description. The image runs are nested so that
/// each replaces its original only after the whole new media is written and verified: the
/// first run, at the point where it would replace its WIM, starts the next, and the innermost
/// builds the media with every serviced WIM. A failure anywhere ends every run with its
/// original unchanged.
pub fn service_media(
    site: &Site,
    key: &str,
    options: &MediaServiceOptions,
    observer: &(dyn Fn(&str, RunEvent) + Sync),
) -> Result<MediaServiced, CommandError> {
    let db = site.database()?;
    let media = media::find(&db, key)?;
    let recorded = media::files(&db, media.id)?;
    media::check_unchanged(&media, &recorded)?;
    let updates: Vec<SetupUpdate> = options
        .setup_updates
        .iter()
        .map(|id| setup_update::get(&db, id))
        .collect::<Result<_, _>>()?;
    let mut images = Vec::new();
    for id in [media.boot_image_id, Some(media.install_image_id)]
        .into_iter()
        .flatten()
    {
        images.push(image::get(&db, id)?);
    }
    let jobs = plan_jobs(site, &images, &options.service.selection)?;
    drop(db);
    let iso_path = options
        .iso
        .clone()
        .unwrap_or_else(|| media::site_folder(site, &media.name).with_extension("iso"));
    let iso_path = absolute(&iso_path);

    let built: Mutex<Option<Built>> = Mutex::new(None);
    let build_error: Mutex<Option<String>> = Mutex::new(None);
    let outcomes: Mutex<Vec<ImageOutcome>> = Mutex::new(Vec::new());
    let service_options = ServiceOptions {
        jobs: 1,
        ..options.service.clone()
    };
    let build = |wims: &[ServicedWim]| -> Result<(), String> {
        match build_media(&media, &recorded, wims, &updates, &iso_path) {
            Ok(done) => {
                *built.lock().unwrap_or_else(|e| e.into_inner()) = Some(done);
                Ok(())
            }
            Err(e) => {
                *build_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.clone());
                Err(e)
            }
        }
    };
    let nested = run_nested(
        site,
        &jobs,
        &service_options,
        observer,
        &outcomes,
        &build,
        Vec::new(),
    );
    let images = outcomes.into_inner().unwrap_or_else(|e| e.into_inner());
    let built = built.into_inner().unwrap_or_else(|e| e.into_inner());
    let build_error = build_error.into_inner().unwrap_or_else(|e| e.into_inner());
    let failed = nested.err().or_else(|| {
        images
            .iter()
            .find(|o| o.status != RunStatus::Successful)
            .map(|o| format!("image {}: {}", o.image, o.error.clone().unwrap_or_default()))
    });
    let mut result = MediaServiced {
        media: media.name.clone(),
        status: RunStatus::Failed,
        error: None,
        images,
        setup_updates: Vec::new(),
        setup_files: Vec::new(),
        iso: None,
        files: 0,
    };
    match (built, failed) {
        (Some(built), None) => {
            let db = site.database()?;
            let serviced = media::Serviced {
                files: built.files,
                iso: Some((
                    built.iso.path.clone(),
                    built.iso.sha256.clone(),
                    built.iso.size,
                )),
                setup_updates: options.setup_updates.clone(),
            };
            media::record_serviced(&db, &media, &serviced)?;
            result.status = RunStatus::Successful;
            result.setup_updates = options.setup_updates.clone();
            result.setup_files = built.setup_files;
            result.files = serviced.files.len();
            result.iso = Some(built.iso);
        }
        (built, failed) => {
            // The media was swapped in but an image run failed to record: the site's records
            // no longer match the media; say so rather than hide it.
            let swapped = built.is_some();
            let message = failed.unwrap_or_else(|| "the new media was not written".into());
            result.error = Some(if let Some(e) = build_error {
                e
            } else if swapped {
                format!("{message}; the new media is in place but its record was not updated: run `ois media show {}` and register it again if it differs", media.name)
            } else {
                format!("{message}; the original media is unchanged")
            });
            result.status = if result
                .images
                .iter()
                .any(|o| o.status == RunStatus::Canceled)
            {
                RunStatus::Canceled
            } else {
                RunStatus::Failed
            };
        }
    }
    Ok(result)
}

/// Each image with the updates it takes: with named updates, those that apply to it (an
/// update named for the media need not apply to WinPE). An image with nothing to apply is
/// left out; every plan is checked here, so an impossible request touches nothing.
fn plan_jobs(
    site: &Site,
    images: &[Image],
    selection: &Selection,
) -> Result<Vec<Job>, CommandError> {
    let db = site.database()?;
    let library = ContentLibrary::new(site);
    let updates = library.all(&db)?;
    let windows = crate::library::cbs::all(&db)?;
    let catalog = Catalog {
        files: &updates,
        windows: &windows,
    };
    let mut jobs = Vec::new();
    let mut taken: Vec<String> = Vec::new();
    for (n, img) in images.iter().enumerate() {
        let indexes = image::indexes(&db, img)?;
        let selection = match selection {
            Selection::Updates(ids) => {
                let applicable = servicing::applicable(&indexes, &updates);
                let is_file = |id: &str| updates.iter().any(|u| u.id().eq_ignore_ascii_case(id));
                let last = n + 1 == images.len();
                let mine: Vec<_> = ids
                    .iter()
                    .filter(|id| {
                        !is_file(id.as_str())
                            || applicable.iter().any(|u| u.id().eq_ignore_ascii_case(id.as_str()))
                            // The last image (install.wim) takes what no image took, so the
                            // planner says why it applies nowhere.
                            || (last && !taken.iter().any(|t| t.eq_ignore_ascii_case(id.as_str())))
                    })
                    .cloned()
                    .collect();
                taken.extend(mine.iter().map(|i| i.as_str().to_string()));
                if mine.is_empty() {
                    continue;
                }
                Selection::Updates(mine)
            }
            other => other.clone(),
        };
        let plan = servicing::plan::plan(&indexes, catalog, &selection)
            .and_then(|p| {
                servicing::servicer::check(&p)
                    .map(|()| p)
                    .map_err(Into::into)
            })
            .map_err(|reason| ServicingError::Plan {
                image: img.name.clone(),
                reason,
            })?;
        if !plan.is_empty() {
            jobs.push(Job {
                image: img.clone(),
                selection,
            });
        }
    }
    Ok(jobs)
}

/// Services `jobs[0]`; at the point where its run would replace the original, services the
/// rest the same way, and the innermost step builds the media from every serviced WIM.
fn run_nested(
    site: &Site,
    jobs: &[Job],
    options: &ServiceOptions,
    observer: &(dyn Fn(&str, RunEvent) + Sync),
    outcomes: &Mutex<Vec<ImageOutcome>>,
    build: BuildStep,
    wims: Vec<ServicedWim>,
) -> Result<(), String> {
    let Some((job, rest)) = jobs.split_first() else {
        return build(&wims);
    };
    let reached = Mutex::new(None::<Result<(), String>>);
    let before_replace = |img: &Image, output: &Path, sha256: &str| -> Result<(), String> {
        let mut wims = wims.clone();
        wims.push(ServicedWim {
            original: img.path.clone(),
            serviced: output.to_path_buf(),
            sha256: sha256.to_string(),
        });
        let inner = run_nested(site, rest, options, observer, outcomes, build, wims);
        *reached.lock().unwrap_or_else(|e| e.into_inner()) = Some(inner.clone());
        inner
    };
    // Cancel from the CLI reaches every run through the shared flag.
    let options = ServiceOptions {
        selection: job.selection.clone(),
        ..options.clone()
    };
    let outcome =
        servicing::service_with(site, &[job.image.id], &options, observer, &before_replace)
            .map_err(|e| e.to_string())?;
    let mut outcome_list = outcome;
    let reached = reached.into_inner().unwrap_or_else(|e| e.into_inner());
    let mine = outcome_list.pop();
    let result = match (&mine, reached) {
        (_, Some(inner)) => inner,
        // The run ended before it had a serviced WIM: nothing was built.
        (Some(o), None) => Err(format!(
            "image {}: {}",
            o.image,
            o.error.clone().unwrap_or_else(|| o.status.as_str().into())
        )),
        (None, None) => Err(format!("image {} was not serviced", job.image.name)),
    };
    if let Some(o) = mine {
        outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(0, o);
    }
    result
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Writes the new media beside the original (`.<name>.ois-new`, hard links of the unchanged
/// files), puts the serviced WIMs and the Setup Dynamic Updates in it, checks every file by
/// SHA-256, writes and checks the ISO, and only then swaps the new folder in for the original
/// in one step.
fn build_media(
    media: &Media,
    recorded: &[MediaFile],
    wims: &[ServicedWim],
    updates: &[SetupUpdate],
    iso_path: &Path,
) -> Result<Built, String> {
    let root = &media.path;
    let parent = root
        .parent()
        .ok_or_else(|| format!("{} has no parent folder", root.display()))?;
    let folder = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let new = parent.join(format!(".{folder}.ois-new"));
    let partial_iso = iso_path.with_file_name(format!(
        ".{}.ois-partial",
        iso_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "media.iso".into())
    ));
    let result = (|| -> Result<Built, String> {
        if new.exists() {
            std::fs::remove_dir_all(&new).map_err(|e| format!("{}: {e}", new.display()))?;
        }
        tree::link_tree(root, &new).map_err(|e| format!("laying out {}: {e}", new.display()))?;
        for wim in wims {
            let rel = wim
                .original
                .strip_prefix(root)
                .map_err(|_| format!("{} is not in the media folder", wim.original.display()))?;
            tree::replace_with(&wim.serviced, &new.join(rel))
                .map_err(|e| format!("{}: {e}", new.join(rel).display()))?;
        }
        let mut setup_files = Vec::new();
        for u in updates {
            setup_files.extend(setup_update::expand(u, &new)?);
        }
        let files = tree::record(&new).map_err(|e| format!("checking {}: {e}", new.display()))?;
        verify_new(root, recorded, wims, &setup_files, &files)?;
        let iso = write_iso(media, &new, iso_path, &partial_iso)?;
        tree::exchange(&new, root).map_err(|e| {
            format!(
                "cannot swap {} in for {}: {e}",
                new.display(),
                root.display()
            )
        })?;
        // `new` now holds the original media.
        if let Err(e) = std::fs::remove_dir_all(&new) {
            tracing::warn!("the previous media stays at {}: {e}", new.display());
        }
        let _ = crate::fsutil::sync_dir(parent);
        Ok(Built {
            files,
            iso,
            setup_files,
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&new);
        let _ = std::fs::remove_file(&partial_iso);
    }
    result.map_err(|reason| {
        MediaError::Build {
            media: media.name.clone(),
            reason,
        }
        .to_string()
    })
}

/// The new folder holds exactly what the run produced: each serviced WIM with the SHA-256 its
/// run verified, each file a Setup Dynamic Update wrote, and every other file as recorded.
fn verify_new(
    root: &Path,
    recorded: &[MediaFile],
    wims: &[ServicedWim],
    setup_files: &[String],
    files: &[MediaFile],
) -> Result<(), String> {
    let rel = |p: &Path| {
        p.strip_prefix(root)
            .map(|r| {
                r.components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_default()
    };
    let find = |path: &str| files.iter().find(|f| f.path == path);
    for wim in wims {
        let path = rel(&wim.original);
        match find(&path) {
            Some(f) if f.sha256 == wim.sha256 => {}
            _ => return Err(format!("{path} in the new media is not the serviced image")),
        }
    }
    let written = |path: &str| {
        setup_files.iter().any(|s| {
            path.to_ascii_lowercase()
                .ends_with(&format!("sources/{}", s.to_ascii_lowercase()))
        })
    };
    for r in recorded {
        if wims.iter().any(|w| rel(&w.original) == r.path) || written(&r.path) {
            continue;
        }
        match find(&r.path) {
            Some(f) if f.sha256 == r.sha256 => {}
            _ => {
                return Err(format!(
                "{} differs from the original media's record: the original changed during the run",
                r.path
            ))
            }
        }
    }
    Ok(())
}

fn write_iso(
    media: &Media,
    dir: &Path,
    iso_path: &Path,
    partial: &Path,
) -> Result<IsoView, String> {
    let started = std::time::Instant::now();
    let rel = |p: PathBuf| {
        p.strip_prefix(dir)
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let bios = tree::find(dir, iso::BIOS_BOOT)
        .filter(|p| p.is_file())
        .map(rel)
        .ok_or_else(|| {
            format!(
                "the media has no {}: it cannot boot from an ISO",
                iso::BIOS_BOOT
            )
        })?;
    let uefi = tree::find(dir, iso::UEFI_BOOT)
        .filter(|p| p.is_file())
        .map(rel);
    if let Some(parent) = iso_path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let _ = std::fs::remove_file(partial);
    iso::build(
        dir,
        partial,
        &iso::volume_id(&media.name),
        &bios,
        uefi.as_deref(),
    )
    .map_err(|e| format!("writing the ISO {}: {e}", iso_path.display()))?;
    let boot = iso::boot_entries(partial).map_err(|e| format!("checking the ISO: {e}"))?;
    let has = |platform: &str| boot.iter().any(|b| b.platform == platform);
    if !has("BIOS") || (uefi.is_some() && !has("UEFI")) {
        return Err(format!(
            "the ISO written lacks a boot entry (found {boot:?}); it was not kept"
        ));
    }
    let (sha256, size) = hash_file(partial).map_err(|e| format!("{}: {e}", partial.display()))?;
    std::fs::File::open(partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    std::fs::rename(partial, iso_path).map_err(|e| format!("{}: {e}", iso_path.display()))?;
    Ok(IsoView {
        path: iso_path.to_path_buf(),
        sha256,
        size,
        boot,
        seconds: started.elapsed().as_secs_f64(),
    })
}

impl From<MediaError> for CommandError {
    fn from(e: MediaError) -> Self {
        CommandError::Media(Box::new(e))
    }
}
