//! Distribution points (DPs): identified by NAL path, reached through one storage abstraction
//! (OpenDAL: a directory or share, WebDAV, later object storage), with Configuration
//! Manager's maintenance mode, redistribution of serviced images and content validation
//! (tables `distribution_points`, `dp_boundary_groups`, `dp_settings`, `dp_assignments`,
//! `distributions`).
//!
//! Entry points for the scheduler: [`distribute_image`], [`retry_due`], [`validate`],
//! [`upgrade_layouts`] and [`set_maintenance_mode`].

pub mod agent;
mod catalog;
pub mod chunks;
pub mod layout;
pub mod nal;
pub mod progress;
pub mod pull;
pub mod target;
mod transfer;
mod validate;
mod webdav;
mod wim_layout;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use catalog::{Distribution, DistributionPoint, DpId, MIGRATIONS};
pub use nal::Nal;
pub use validate::{validate, Validation};

use crate::hint::Hint;
use crate::image::{self, Image, ImageError, ImageId};
use crate::site::{Database, Site, SiteError};

/// `SetDPMaintenanceMode` results, as a Windows admin knows them.
pub mod hresult {
    pub const S_OK: u32 = 0;
    /// A malformed NAL path.
    pub const E_INVALIDARG: u32 = 0x8007_0057;
    /// No DP with that NAL path.
    pub const WBEM_E_NOT_FOUND: u32 = 0x8004_1002;
    /// A MODE other than 0 or 1.
    pub const WBEM_E_INVALID_PARAMETER: u32 = 0x8004_1008;
    /// Anything else (the site database could not be read or written).
    pub const E_FAIL: u32 = 0x8000_4005;

    pub fn name(code: u32) -> &'static str {
        match code {
            S_OK => "S_OK",
            E_INVALIDARG => "E_INVALIDARG",
            WBEM_E_NOT_FOUND => "WBEM_E_NOT_FOUND",
            WBEM_E_INVALID_PARAMETER => "WBEM_E_INVALID_PARAMETER",
            _ => "E_FAIL",
        }
    }
}

/// Transfers to one DP at once by default.
pub const DEFAULT_JOBS: usize = 4;
/// Tries of one transfer within one distribution, before it is left `Failed` for later.
const TRANSFER_ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum DistributionError {
    #[error("{0}")]
    MalformedNal(String),
    #[error("no distribution point {0}")]
    NotFound(String),
    #[error("distribution point {0} already exists")]
    AlreadyExists(String),
    #[error("invalid MODE {0:?}: use 1 to enable maintenance mode, 0 to disable it")]
    InvalidMode(String),
    #[error("distribution point {0} is in maintenance mode: its properties are read-only")]
    ReadOnly(String),
    #[error("distribution point {dp}: target {target:?}: {reason}")]
    Target {
        dp: String,
        target: String,
        reason: String,
    },
    #[error("distribution point {dp}: {message}")]
    Storage { dp: String, message: String },
    #[error(
        "image {0} is in provisioning mode (a servicing run holds it): it is not distributed \
         until the run ends"
    )]
    InProvisioningMode(String),
    #[error("{0}")]
    Usage(String),
    /// A dp-agent account acting for a DP other than the one it registered or claimed.
    #[error("{0}")]
    AgentScope(String),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Site(#[from] SiteError),
}

impl DistributionError {
    /// What to do about it.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            DistributionError::NotFound(_) => Some(Hint::ListDps),
            DistributionError::AlreadyExists(dp) => Some(Hint::ChangeDp { dp: dp.clone() }),
            DistributionError::ReadOnly(dp) => {
                Some(Hint::DisableMaintenanceMode { dp: dp.clone() })
            }
            DistributionError::Image(e) => e.hint(),
            DistributionError::Site(e) => e.hint(),
            _ => None,
        }
    }

    /// The HRESULT `SetDPMaintenanceMode` returns for this error.
    pub fn hresult(&self) -> u32 {
        match self {
            DistributionError::MalformedNal(_) => hresult::E_INVALIDARG,
            DistributionError::NotFound(_) => hresult::WBEM_E_NOT_FOUND,
            DistributionError::InvalidMode(_) => hresult::WBEM_E_INVALID_PARAMETER,
            _ => hresult::E_FAIL,
        }
    }
}

/// Status of one image version on one DP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DistStatus {
    Pending,
    #[serde(rename = "In progress")]
    InProgress,
    Installed,
    Failed,
}

impl DistStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DistStatus::Pending => "Pending",
            DistStatus::InProgress => "In progress",
            DistStatus::Installed => "Installed",
            DistStatus::Failed => "Failed",
        }
    }
}

impl std::str::FromStr for DistStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "Pending" => Ok(DistStatus::Pending),
            "In progress" => Ok(DistStatus::InProgress),
            "Installed" => Ok(DistStatus::Installed),
            "Failed" => Ok(DistStatus::Failed),
            _ => Err(format!("unknown distribution status {s:?}")),
        }
    }
}

/// Delay before a failed distribution is due again: 1, 2, 4 … minutes, at most an hour.
pub fn retry_backoff(attempts: u32) -> chrono::TimeDelta {
    let minutes = 1i64 << attempts.saturating_sub(1).min(6);
    chrono::TimeDelta::minutes(minutes.min(60))
}

fn parse_nal(s: &str) -> Result<Nal, DistributionError> {
    Nal::parse(s).map_err(DistributionError::MalformedNal)
}

/// Properties given to `dp add` / `dp set`.
#[derive(Debug, Clone, Default)]
pub struct DpProperties {
    pub target: Option<String>,
    pub description: Option<String>,
    pub add_boundary_groups: Vec<String>,
    pub remove_boundary_groups: Vec<String>,
    /// Storage options that are not secret (e.g. `region`).
    pub settings: Vec<(String, String)>,
    /// Credentials (e.g. `username`, `password`, `token`): stored, never shown or logged.
    pub secrets: Vec<(String, String)>,
}

impl DpProperties {
    fn is_empty(&self) -> bool {
        self.target.is_none()
            && self.description.is_none()
            && self.add_boundary_groups.is_empty()
            && self.remove_boundary_groups.is_empty()
            && self.settings.is_empty()
            && self.secrets.is_empty()
    }
}

fn check_target(nal: &Nal, t: &str) -> Result<(), DistributionError> {
    let checked = if pull::is_pull(t) {
        pull::check_target(t)
    } else {
        target::parse(t).map(|_| ())
    };
    checked.map_err(|reason| DistributionError::Target {
        dp: nal.to_string(),
        target: t.to_string(),
        reason,
    })
}

/// A write transaction on `db`'s own connection: the catalog's statements on `db` run inside
/// it until it is committed (dropped, it rolls back).
fn immediate(db: &Database) -> Result<rusqlite::Transaction<'_>, DistributionError> {
    rusqlite::Transaction::new_unchecked(db, rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| DistributionError::Site(db.error(e)))
}

fn apply_properties(db: &Database, dp_id: DpId, p: &DpProperties) -> Result<(), DistributionError> {
    if let Some(t) = &p.target {
        catalog::set_target(db, dp_id, t.trim())?;
    }
    if let Some(d) = &p.description {
        catalog::set_description(db, dp_id, Some(d.as_str()).filter(|d| !d.is_empty()))?;
    }
    for g in &p.add_boundary_groups {
        catalog::add_boundary_group(db, dp_id, g.trim())?;
    }
    for g in &p.remove_boundary_groups {
        catalog::remove_boundary_group(db, dp_id, g.trim())?;
    }
    for (k, v) in &p.settings {
        catalog::set_setting(db, dp_id, k, v, false)?;
    }
    for (k, v) in &p.secrets {
        catalog::set_setting(db, dp_id, k, v, true)?;
    }
    Ok(())
}

/// Adds a DP. `props.target` is required.
pub fn add(
    site: &Site,
    nal_path: &str,
    props: &DpProperties,
) -> Result<DistributionPoint, DistributionError> {
    let nal = parse_nal(nal_path)?;
    let target = props
        .target
        .as_deref()
        .ok_or_else(|| DistributionError::Usage("a DP needs a --target".into()))?;
    check_target(&nal, target)?;
    let db = site.database()?;
    // The DP and its properties appear together or not at all.
    let tx = immediate(&db)?;
    if catalog::find_optional(&db, &nal)?.is_some() {
        return Err(DistributionError::AlreadyExists(nal.to_string()));
    }
    let id = catalog::insert(&db, &nal, target.trim())?;
    apply_properties(&db, id, props)?;
    tx.commit().map_err(|e| db.error(e))?;
    tracing::info!("added distribution point {nal} (target {})", target.trim());
    catalog::find(&db, &nal)
}

/// Changes a DP's properties; refused while it is in maintenance mode.
pub fn set(
    site: &Site,
    nal_path: &str,
    props: &DpProperties,
) -> Result<DistributionPoint, DistributionError> {
    let nal = parse_nal(nal_path)?;
    let db = site.database()?;
    // All the changes or none, and maintenance mode cannot be enabled between its check and
    // the changes.
    let tx = immediate(&db)?;
    let dp = catalog::find(&db, &nal)?;
    if dp.maintenance_mode {
        return Err(DistributionError::ReadOnly(dp.nal_path));
    }
    if props.is_empty() {
        return Err(DistributionError::Usage(
            "nothing to change: give --target, --description, --add-boundary-group, \
             --remove-boundary-group, --setting or --secret"
                .into(),
        ));
    }
    if let Some(t) = &props.target {
        check_target(&nal, t)?;
    }
    apply_properties(&db, dp.id, props)?;
    tx.commit().map_err(|e| db.error(e))?;
    tracing::info!(
        "changed the properties of distribution point {}",
        dp.nal_path
    );
    catalog::find(&db, &nal)
}

/// Forgets a DP and its distribution records. Content on the DP is left where it is.
pub fn remove(site: &Site, nal_path: &str) -> Result<DistributionPoint, DistributionError> {
    let nal = parse_nal(nal_path)?;
    let db = site.database()?;
    let dp = catalog::find(&db, &nal)?;
    catalog::remove(&db, dp.id)?;
    tracing::info!("removed distribution point {}", dp.nal_path);
    Ok(dp)
}

pub fn list(site: &Site) -> Result<Vec<DistributionPoint>, DistributionError> {
    catalog::list(&site.database()?)
}

/// A DP and every image version recorded on it.
pub fn show(
    site: &Site,
    nal_path: &str,
) -> Result<(DistributionPoint, Vec<Distribution>), DistributionError> {
    let nal = parse_nal(nal_path)?;
    let db = site.database()?;
    let dp = catalog::find(&db, &nal)?;
    let dists = catalog::for_dp(&db, dp.id)?;
    Ok((dp, dists))
}

/// Every DP's record of an image, for `image show`.
pub fn image_distributions(
    db: &Database,
    image_id: ImageId,
) -> Result<Vec<Distribution>, DistributionError> {
    catalog::for_image(db, image_id)
}

/// What a maintenance-mode change did.
#[derive(Debug, Clone, Serialize)]
pub struct MaintenanceChange {
    pub dp: String,
    pub mode: u32,
    /// False when the DP already was in that mode.
    pub changed: bool,
    /// Images that no DP outside maintenance mode can serve any more.
    pub unserved_images: Vec<String>,
}

/// `SetDPMaintenanceMode(NALPath, Mode)`: 0 on success, else an HRESULT (see [`hresult`]).
/// Pending distributions to the DP are not sent by this call: call [`send_pending`] after
/// mode 0, or let the scheduler's [`retry_due`] pick them up.
pub fn set_maintenance_mode(site: &Site, nal_path: &str, mode: u32) -> u32 {
    match change_maintenance_mode(site, nal_path, mode) {
        Ok(_) => hresult::S_OK,
        Err(e) => {
            tracing::error!("SetDPMaintenanceMode({nal_path}, {mode}) failed: {e}");
            e.hresult()
        }
    }
}

/// [`set_maintenance_mode`] with the details: the error, and the images left unserved.
pub fn change_maintenance_mode(
    site: &Site,
    nal_path: &str,
    mode: u32,
) -> Result<MaintenanceChange, DistributionError> {
    let nal = parse_nal(nal_path)?;
    if mode > 1 {
        return Err(DistributionError::InvalidMode(mode.to_string()));
    }
    let db = site.database()?;
    let dp = catalog::find(&db, &nal)?;
    let unserved_images = if mode == 1 {
        unserved_without(&db, dp.id)?
    } else {
        Vec::new()
    };
    let changed = catalog::set_maintenance(&db, dp.id, mode == 1)?;
    // Info, not warn: callers get the list and tell the admin in their own words.
    for image in &unserved_images {
        tracing::info!(
            "maintenance mode on {}: image {image} has no other distribution point that can serve it",
            dp.server
        );
    }
    tracing::info!(
        "maintenance mode of {} set to {mode}{}",
        dp.nal_path,
        if changed { "" } else { " (unchanged)" }
    );
    Ok(MaintenanceChange {
        dp: dp.nal_path,
        mode,
        changed,
        unserved_images,
    })
}

/// Images whose current version only this DP serves (among DPs outside maintenance mode).
fn unserved_without(db: &Database, dp_id: DpId) -> Result<Vec<String>, DistributionError> {
    let mut stmt = db
        .prepare(
            "SELECT i.name FROM distributions x JOIN images i ON i.id = x.image_id
             WHERE x.dp_id = ?1 AND x.status = 'Installed' AND x.sha256 = i.sha256
               AND NOT EXISTS (
                 SELECT 1 FROM distributions y JOIN distribution_points d ON d.id = y.dp_id
                 WHERE y.image_id = x.image_id AND y.sha256 = i.sha256 AND y.status = 'Installed'
                   AND y.dp_id != ?1 AND d.maintenance_mode = 0)
             ORDER BY i.name",
        )
        .map_err(|e| db.error(e))?;
    let names = stmt
        .query_map([dp_id], |r| r.get(0))
        .and_then(|r| r.collect::<Result<Vec<String>, _>>())
        .map_err(|e| db.error(e))?;
    Ok(names)
}

/// Where a client may download an image from.
#[derive(Debug, Clone, Serialize)]
pub struct ContentLocation {
    pub dp: String,
    pub server: String,
    pub location: String,
    pub sha256: String,
    pub boundary_groups: Vec<String>,
}

/// The content location answer: DPs outside maintenance mode that hold the image's current
/// version, optionally only those in a boundary group.
pub fn locate(
    site: &Site,
    image_key: &str,
    boundary_group: Option<&str>,
) -> Result<Vec<ContentLocation>, DistributionError> {
    let db = site.database()?;
    let img = image::find(&db, image_key)?;
    let dps = catalog::list(&db)?;
    let mut out = Vec::new();
    for d in catalog::for_image(&db, img.id)? {
        if !d.current || d.status != DistStatus::Installed {
            continue;
        }
        let Some(dp) = dps
            .iter()
            .find(|p| p.server.eq_ignore_ascii_case(&d.server))
        else {
            continue;
        };
        if dp.maintenance_mode {
            continue;
        }
        if let Some(g) = boundary_group {
            if !dp.boundary_groups.iter().any(|b| b.eq_ignore_ascii_case(g)) {
                continue;
            }
        }
        out.push(ContentLocation {
            dp: dp.nal_path.clone(),
            server: dp.server.clone(),
            location: match pull::agent_url(&dp.target) {
                Some(url) => target::location(url, &layout::content_path(img.id, &d.sha256)),
                None => target::location(&dp.target, &layout::content_path(img.id, &d.sha256)),
            },
            sha256: d.sha256.clone(),
            boundary_groups: dp.boundary_groups.clone(),
        });
    }
    Ok(out)
}

/// What one distribution did on one DP.
#[derive(Debug, Clone, Serialize)]
pub struct DpOutcome {
    pub dp: String,
    pub image: String,
    pub sha256: String,
    pub status: DistStatus,
    /// `sent`, `already installed`, `identical content found`, `waiting: maintenance mode`,
    /// or `failed`.
    pub action: String,
    pub bytes_sent: u64,
    pub error: Option<String>,
    pub seconds: f64,
}

fn open_operator(
    db: &Database,
    dp: &DistributionPoint,
) -> Result<target::Storage, DistributionError> {
    let secrets = catalog::secrets(db, dp.id)?;
    target::storage(&dp.target, &dp.settings, &secrets).map_err(|reason| {
        DistributionError::Target {
            dp: dp.nal_path.clone(),
            target: dp.target.clone(),
            reason,
        }
    })
}

/// Sends an image's current version to `dps`, or to every DP that holds the image or is
/// assigned to it; DPs named in `dps` become assigned to the image. Runs up to
/// [`DEFAULT_JOBS`] transfers at once; one failing DP never stops the others. DPs in
/// maintenance mode get a `Pending` record and nothing else.
pub fn distribute_image(
    site: &Site,
    image_id: ImageId,
    dps: Option<&[Nal]>,
) -> Result<Vec<DpOutcome>, DistributionError> {
    distribute_image_with(site, image_id, dps, DEFAULT_JOBS)
}

/// [`distribute_image`] with a bound on parallel transfers.
pub fn distribute_image_with(
    site: &Site,
    image_id: ImageId,
    dps: Option<&[Nal]>,
    jobs: usize,
) -> Result<Vec<DpOutcome>, DistributionError> {
    let db = site.database()?;
    let img = image::get(&db, image_id)?;
    if crate::servicing::lease::current(&db, img.id)
        .map_err(|e| db.error(e))?
        .is_some()
    {
        return Err(DistributionError::InProvisioningMode(img.name));
    }
    let targets = match dps {
        Some(nals) => {
            let mut v = Vec::new();
            for nal in nals {
                let dp = catalog::find(&db, nal)?;
                catalog::assign(&db, dp.id, img.id)?;
                if !v.iter().any(|d: &DistributionPoint| d.id == dp.id) {
                    v.push(dp);
                }
            }
            v
        }
        None => catalog::dps_for_image(&db, img.id)?,
    };
    drop(db);
    let pulled = targets.iter().any(|dp| pull::is_pull(&dp.target));
    // The pull DPs' chunk index is built while the push DPs receive the file.
    std::thread::scope(|scope| {
        if pulled {
            scope.spawn(|| pull::prepare_index(site, img.id));
        }
        run_pool(jobs, targets.len(), |i| {
            distribute_to(site, &img, &targets[i])
        })
    })
}

fn run_pool(
    jobs: usize,
    n: usize,
    f: impl Fn(usize) -> DpOutcome + Sync + Send,
) -> Result<Vec<DpOutcome>, DistributionError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.clamp(1, n))
        .thread_name(|i| format!("distribution-{i}"))
        .build()
        .map_err(|e| SiteError::Io {
            path: PathBuf::from("thread pool"),
            source: std::io::Error::other(e),
        })?;
    Ok(pool.install(|| {
        use rayon::prelude::*;
        (0..n).into_par_iter().map(f).collect()
    }))
}

fn distribute_to(site: &Site, img: &Image, dp: &DistributionPoint) -> DpOutcome {
    let started = Instant::now();
    let mut outcome = DpOutcome {
        dp: dp.nal_path.clone(),
        image: img.name.clone(),
        sha256: img.sha256.clone(),
        status: DistStatus::Failed,
        action: "failed".into(),
        bytes_sent: 0,
        error: None,
        seconds: 0.0,
    };
    if let Err(e) = try_distribute_to(site, img, dp, &mut outcome) {
        tracing::error!(
            "distribution of image {} to {} failed: {e}",
            img.name,
            dp.server
        );
        outcome.status = DistStatus::Failed;
        outcome.action = "failed".into();
        outcome.error = Some(e.to_string());
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    outcome
}

fn try_distribute_to(
    site: &Site,
    img: &Image,
    dp: &DistributionPoint,
    outcome: &mut DpOutcome,
) -> Result<(), DistributionError> {
    let db = site.database()?;
    let (sha, size) = (img.sha256.as_str(), img.size_bytes);
    let current = catalog::status(&db, dp.id, img.id, sha)?;
    if current == Some(DistStatus::Installed) {
        outcome.status = DistStatus::Installed;
        outcome.action = "already installed".into();
        return Ok(());
    }
    if dp.maintenance_mode {
        if current.is_none() {
            catalog::set_status(&db, dp.id, img.id, sha, size, DistStatus::Pending, None)?;
        }
        tracing::info!(
            "image {} waits for {}: the DP is in maintenance mode",
            img.name,
            dp.server
        );
        outcome.status = current.unwrap_or(DistStatus::Pending);
        outcome.action = "waiting: maintenance mode".into();
        return Ok(());
    }
    if pull::is_pull(&dp.target) {
        if current.is_none() {
            catalog::set_status(&db, dp.id, img.id, sha, size, DistStatus::Pending, None)?;
        }
        outcome.status = current.unwrap_or(DistStatus::Pending);
        outcome.action = "waiting: the pull DP's agent fetches it".into();
        return Ok(());
    }
    catalog::set_status(&db, dp.id, img.id, sha, size, DistStatus::InProgress, None)?;
    let result = open_operator(&db, dp).and_then(|op| {
        upgrade_layout(&db, dp, &op)?;
        let tracker = progress::start(&img.name, &dp.server, size);
        let mut attempt = 1;
        loop {
            match transfer::send(&op, &img.path, img.id, sha, size, &tracker) {
                Ok(sent) => return Ok((op, sent)),
                Err(e) if e.retry && attempt < TRANSFER_ATTEMPTS => {
                    let wait = Duration::from_secs(1 << (attempt - 1));
                    tracing::warn!(
                        "sending image {} to {} (try {attempt} of {TRANSFER_ATTEMPTS}) failed: {e}; \
                         trying again in {} s",
                        img.name,
                        dp.server,
                        wait.as_secs()
                    );
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                Err(failure) => {
                    return Err(DistributionError::Storage {
                        dp: dp.nal_path.clone(),
                        message: format!("image {}: {failure}", img.name),
                    })
                }
            }
        }
    });
    let (op, sent) = match result {
        Ok(r) => r,
        Err(e) => {
            let message = e.to_string();
            catalog::set_status(
                &db,
                dp.id,
                img.id,
                sha,
                size,
                DistStatus::Failed,
                Some(&message),
            )?;
            return Err(e);
        }
    };
    catalog::set_status(&db, dp.id, img.id, sha, size, DistStatus::Installed, None)?;
    outcome.status = DistStatus::Installed;
    match sent {
        transfer::Sent::Sent(n) => {
            outcome.action = "sent".into();
            outcome.bytes_sent = n;
        }
        transfer::Sent::AlreadyThere => outcome.action = "identical content found".into(),
    }
    tracing::info!(
        "image {} ({}) is installed on {} ({})",
        img.name,
        sha,
        dp.server,
        outcome.action
    );
    // Only now that the new version is in place do older ones go.
    for (old, _) in catalog::other_versions(&db, dp.id, img.id, sha)? {
        match transfer::remove_version(&op, img.id, &old) {
            Ok(()) => {
                catalog::delete_version(&db, dp.id, img.id, &old)?;
                tracing::info!(
                    "removed version {old} of image {} from {}",
                    img.name,
                    dp.server
                );
            }
            Err(e) => tracing::warn!(
                "could not remove version {old} of image {} from {} (tried again next time): {e}",
                img.name,
                dp.server
            ),
        }
    }
    Ok(())
}

fn upgrade_layout(
    db: &Database,
    dp: &DistributionPoint,
    op: &opendal::blocking::Operator,
) -> Result<bool, DistributionError> {
    if dp.layout_version >= layout::LAYOUT_VERSION {
        return Ok(false);
    }
    let installed: Vec<(ImageId, String)> = catalog::for_dp(db, dp.id)?
        .into_iter()
        .filter(|d| d.status == DistStatus::Installed)
        .map(|d| (d.image_id, d.sha256))
        .collect();
    layout::migrate(op, dp.layout_version, &installed).map_err(|e| DistributionError::Storage {
        dp: dp.nal_path.clone(),
        message: format!(
            "cannot move content from layout {} to {}: {e}",
            dp.layout_version,
            layout::LAYOUT_VERSION
        ),
    })?;
    catalog::set_layout_version(db, dp.id, layout::LAYOUT_VERSION)?;
    tracing::info!(
        "content layout of {} upgraded from {} to {}",
        dp.server,
        dp.layout_version,
        layout::LAYOUT_VERSION
    );
    Ok(true)
}

/// The layout upgrade of one DP.
#[derive(Debug, Clone, Serialize)]
pub struct LayoutUpgrade {
    pub dp: String,
    pub from: u32,
    pub to: u32,
    pub error: Option<String>,
}

/// Moves every DP whose content has an older layout to the current one, DPs in maintenance
/// mode included (a site upgrade still updates them). Run after upgrading ois.
pub fn upgrade_layouts(site: &Site) -> Result<Vec<LayoutUpgrade>, DistributionError> {
    let db = site.database()?;
    let mut out = Vec::new();
    for dp in catalog::list(&db)? {
        if dp.layout_version >= layout::LAYOUT_VERSION {
            continue;
        }
        let result = open_operator(&db, &dp).and_then(|op| upgrade_layout(&db, &dp, &op));
        out.push(LayoutUpgrade {
            dp: dp.nal_path.clone(),
            from: dp.layout_version,
            to: layout::LAYOUT_VERSION,
            error: result.err().map(|e| e.to_string()),
        });
    }
    Ok(out)
}

/// Sends what is due: `Pending` and `Failed` distributions of current image versions whose
/// backoff has passed, on DPs outside maintenance mode, skipping images in provisioning mode.
/// For the scheduler, every few minutes.
pub fn retry_due(site: &Site) -> Result<Vec<DpOutcome>, DistributionError> {
    let now = crate::fsutil::now_rfc3339();
    send_outstanding(
        site,
        |d| {
            d.next_attempt_at
                .as_deref()
                .is_none_or(|t| t <= now.as_str())
        },
        None,
    )
}

/// Sends every outstanding distribution to one DP now, ignoring backoff: what waited while the
/// DP was in maintenance mode, or failed earlier.
pub fn send_pending(site: &Site, nal_path: &str) -> Result<Vec<DpOutcome>, DistributionError> {
    let nal = parse_nal(nal_path)?;
    send_outstanding(site, |_| true, Some(&nal))
}

fn send_outstanding(
    site: &Site,
    due: impl Fn(&Distribution) -> bool,
    only: Option<&Nal>,
) -> Result<Vec<DpOutcome>, DistributionError> {
    let db = site.database()?;
    let dps = catalog::list(&db)?;
    let stale = (chrono::Utc::now() - chrono::TimeDelta::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut by_image: Vec<(ImageId, Vec<Nal>)> = Vec::new();
    for (d, image_id) in catalog::outstanding(&db)? {
        let Some(dp) = dps
            .iter()
            .find(|p| p.server.eq_ignore_ascii_case(&d.server))
        else {
            continue;
        };
        if dp.maintenance_mode || only.is_some_and(|n| !n.server.eq_ignore_ascii_case(&dp.server)) {
            continue;
        }
        // A transfer "In progress" for an hour belongs to a process that is gone.
        if d.status == DistStatus::InProgress && d.updated_at.as_str() > stale.as_str() {
            continue;
        }
        if !due(&d) {
            continue;
        }
        match by_image.iter_mut().find(|(i, _)| *i == image_id) {
            Some((_, v)) => v.push(dp.nal()),
            None => by_image.push((image_id, vec![dp.nal()])),
        }
    }
    drop(db);
    let mut out = Vec::new();
    for (image_id, nals) in by_image {
        match distribute_image(site, image_id, Some(&nals)) {
            Ok(v) => out.extend(v),
            Err(DistributionError::InProvisioningMode(name)) => {
                tracing::info!("image {name} is in provisioning mode: its distribution waits");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
