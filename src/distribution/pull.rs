//! Pull DPs, on the site's side: a DP whose agent (`ois dp agent`) fetches its content from the
//! site instead of the site pushing it. Its target is `pull+http(s)://HOST:PORT`, the address
//! the agent serves clients from. The table `pull_dps` keeps what the agent last said: when it
//! was last seen, its version, what it fetched, and whether the site asked it to validate.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{
    catalog, immediate, parse_nal, DistStatus, DistributionError, DistributionPoint, DpId,
};
use crate::fsutil::now_rfc3339;
use crate::image::{self, Image, ImageId};
use crate::site::{Database, Site};

/// The scheme prefix of a pull DP's target.
pub const TARGET_PREFIX: &str = "pull+";

pub fn is_pull(target: &str) -> bool {
    target.trim().starts_with(TARGET_PREFIX)
}

/// The URL clients reach the agent at, from a pull target.
pub fn agent_url(target: &str) -> Option<&str> {
    let url = target.trim().strip_prefix(TARGET_PREFIX)?;
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    (!rest.is_empty() && !rest.starts_with('/') && !rest.contains('@')).then_some(url)
}

pub fn check_target(target: &str) -> Result<(), String> {
    agent_url(target).map(|_| ()).ok_or_else(|| {
        "a pull DP's target is pull+http(s)://HOST[:PORT], where its agent serves clients \
         (no credentials in it)"
            .into()
    })
}

/// What the site knows of a pull DP's agent.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PullState {
    pub agent_version: Option<String>,
    /// When the agent last asked for its assignments or reported.
    pub last_contact: Option<String>,
    /// Bytes the site has served this DP (chunk indexes and content), since it was added.
    pub bytes_served: u64,
    /// Bytes the agent fetched for the last version it installed.
    pub last_fetch_bytes: Option<u64>,
    /// Set while the site waits for the agent to re-hash its content.
    pub validation_requested_at: Option<String>,
    /// The dp-agent account that registered or claimed the DP (none for an admin's token).
    pub agent_account: Option<String>,
}

pub fn state(db: &Database, dp_id: DpId) -> Result<Option<PullState>, DistributionError> {
    db.query_row(
        "SELECT agent_version, last_contact, bytes_served, last_fetch_bytes, validation_requested_at,
                agent_account
         FROM pull_dps WHERE dp_id = ?1",
        [dp_id],
        |r| {
            Ok(PullState {
                agent_version: r.get(0)?,
                last_contact: r.get(1)?,
                bytes_served: r.get::<_, i64>(2)? as u64,
                last_fetch_bytes: r.get::<_, Option<i64>>(3)?.map(|b| b as u64),
                validation_requested_at: r.get(4)?,
                agent_account: r.get(5)?,
            })
        },
    )
    .optional()
    .map_err(|e| DistributionError::Site(db.error(e)))
}

fn run(db: &Database, sql: &str, args: impl rusqlite::Params) -> Result<(), DistributionError> {
    db.execute(sql, args)
        .map(|_| ())
        .map_err(|e| DistributionError::Site(db.error(e)))
}

fn ensure_row(db: &Database, dp_id: DpId) -> Result<(), DistributionError> {
    run(
        db,
        "INSERT OR IGNORE INTO pull_dps (dp_id) VALUES (?1)",
        [dp_id],
    )
}

/// The DP a dp-agent account registered or claimed, if any.
fn agent_dp(db: &Database, account: &str) -> Result<Option<DpId>, DistributionError> {
    db.query_row(
        "SELECT dp_id FROM pull_dps WHERE agent_account = ?1 COLLATE NOCASE",
        [account],
        |r| r.get(0),
    )
    .optional()
    .map_err(|e| DistributionError::Site(db.error(e)))
}

/// Refuses a dp-agent account acting for a DP it did not register or claim.
pub fn check_agent(db: &Database, dp_id: DpId, account: &str) -> Result<(), DistributionError> {
    match agent_dp(db, account)? {
        Some(own) if own == dp_id => Ok(()),
        Some(own) => Err(DistributionError::AgentScope(format!(
            "account {account} is the agent of distribution point {own}: it cannot act for \
             distribution point {dp_id}"
        ))),
        None => Err(DistributionError::AgentScope(format!(
            "account {account} has registered no distribution point: register first \
             (POST /api/v1/pull/register)"
        ))),
    }
}

/// The agent's registration: adds the pull DP under its NAL path, or claims the one an admin
/// added (with a pull target), recording the address it serves clients from. `agent` is the
/// dp-agent account registering, bound to this DP from now on: it may claim no other DP, nor
/// one another agent account holds (admin accounts are bound to nothing).
pub fn register(
    site: &Site,
    nal_path: &str,
    url: &str,
    agent_version: &str,
    agent: Option<&str>,
) -> Result<DistributionPoint, DistributionError> {
    let nal = parse_nal(nal_path)?;
    let target = format!("{TARGET_PREFIX}{}", url.trim().trim_end_matches('/'));
    check_target(&target).map_err(|reason| DistributionError::Target {
        dp: nal.to_string(),
        target: target.clone(),
        reason,
    })?;
    let db = site.database()?;
    let tx = immediate(&db)?;
    let existing = catalog::find_optional(&db, &nal)?;
    if let Some(account) = agent {
        let holder: Option<String> = match &existing {
            Some(dp) => db
                .query_row(
                    "SELECT agent_account FROM pull_dps WHERE dp_id = ?1",
                    [dp.id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| db.error(e))?
                .flatten(),
            None => None,
        };
        if let Some(other) = holder.filter(|h| !h.eq_ignore_ascii_case(account)) {
            return Err(DistributionError::AgentScope(format!(
                "distribution point {nal} belongs to agent account {other}: account {account} \
                 cannot claim it"
            )));
        }
        if let Some(own) = agent_dp(&db, account)? {
            if existing.as_ref().is_none_or(|dp| dp.id != own) {
                return Err(DistributionError::AgentScope(format!(
                    "account {account} is already the agent of distribution point {own}: an \
                     agent account serves one DP; add another account for {nal}"
                )));
            }
        }
    }
    let dp = match existing {
        None => {
            let id = catalog::insert(&db, &nal, &target)?;
            tracing::info!("pull DP {nal} registered by its agent at {url}");
            id
        }
        Some(dp) if !is_pull(&dp.target) => {
            return Err(DistributionError::Target {
                dp: dp.nal_path,
                target: dp.target,
                reason: "this DP receives pushed content: an agent cannot claim it (remove it \
                         or register the agent under another NAL path)"
                    .into(),
            })
        }
        Some(dp) if dp.target != target => {
            // Its address is a property: read-only in maintenance mode, as for any DP.
            if dp.maintenance_mode {
                return Err(DistributionError::ReadOnly(dp.nal_path));
            }
            catalog::set_target(&db, dp.id, &target)?;
            tracing::info!("pull DP {} now serves clients at {url}", dp.nal_path);
            dp.id
        }
        Some(dp) => dp.id,
    };
    ensure_row(&db, dp)?;
    run(
        &db,
        "UPDATE pull_dps SET agent_version = ?2, last_contact = ?3 WHERE dp_id = ?1",
        params![dp, agent_version, now_rfc3339()],
    )?;
    if let Some(account) = agent {
        run(
            &db,
            "UPDATE pull_dps SET agent_account = ?2 WHERE dp_id = ?1",
            params![dp, account],
        )?;
    }
    tx.commit().map_err(|e| db.error(e))?;
    catalog::find(&db, &nal)
}

/// A pull DP by id; an error for a DP that is not one.
pub fn find(db: &Database, dp_id: DpId) -> Result<DistributionPoint, DistributionError> {
    let dp = catalog::list(db)?
        .into_iter()
        .find(|d| d.id == dp_id)
        .ok_or_else(|| DistributionError::NotFound(format!("with id {dp_id}")))?;
    if !is_pull(&dp.target) {
        return Err(DistributionError::Usage(format!(
            "distribution point {} is not a pull DP (target {}): its content is pushed",
            dp.nal_path, dp.target
        )));
    }
    Ok(dp)
}

/// One image version a pull DP should hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Assignment {
    pub image_id: ImageId,
    pub image: String,
    pub sha256: String,
    pub size_bytes: u64,
    /// What the site has recorded for it on this DP.
    pub status: Option<String>,
}

/// What the agent is told on each poll.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Assignments {
    pub dp_id: DpId,
    pub maintenance_mode: bool,
    /// Nothing while the DP is in maintenance mode.
    pub assignments: Vec<Assignment>,
    /// Re-hash what you hold and report it.
    pub validate: bool,
}

/// The current versions of the images assigned to the DP (or recorded on it), and records the
/// agent's contact. In maintenance mode the list is empty: the site distributes no content to
/// the DP, but validation still runs.
pub fn assignments(site: &Site, dp_id: DpId) -> Result<Assignments, DistributionError> {
    let db = site.database()?;
    let dp = find(&db, dp_id)?;
    ensure_row(&db, dp.id)?;
    run(
        &db,
        "UPDATE pull_dps SET last_contact = ?2 WHERE dp_id = ?1",
        params![dp.id, now_rfc3339()],
    )?;
    let validate = state(&db, dp.id)?.is_some_and(|s| s.validation_requested_at.is_some());
    let mut out = Assignments {
        dp_id: dp.id,
        maintenance_mode: dp.maintenance_mode,
        assignments: Vec::new(),
        validate,
    };
    if dp.maintenance_mode {
        return Ok(out);
    }
    let mut stmt = db
        .prepare(
            "SELECT image_id FROM dp_assignments WHERE dp_id = ?1
             UNION SELECT image_id FROM distributions WHERE dp_id = ?1",
        )
        .map_err(|e| db.error(e))?;
    let ids = stmt
        .query_map([dp.id], |r| r.get::<_, ImageId>(0))
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(|e| db.error(e))?;
    for id in ids {
        let img = image::get(&db, id)?;
        // An image a servicing run holds is not handed out until the run ends.
        if crate::servicing::lease::current(&db, img.id)
            .map_err(|e| db.error(e))?
            .is_some()
        {
            continue;
        }
        let status = catalog::status(&db, dp.id, img.id, &img.sha256)?;
        if status.is_none() {
            catalog::set_status(
                &db,
                dp.id,
                img.id,
                &img.sha256,
                img.size_bytes,
                DistStatus::Pending,
                None,
            )?;
        }
        out.assignments.push(Assignment {
            image_id: img.id,
            image: img.name,
            sha256: img.sha256,
            size_bytes: img.size_bytes,
            status: Some(status.unwrap_or(DistStatus::Pending).as_str().to_string()),
        });
    }
    Ok(out)
}

/// Why a version cannot be served to a pull DP.
#[derive(Debug, thiserror::Error)]
pub enum ServeRefusal {
    #[error(
        "version {sha256} of image {image} is no longer served: the site holds only the current \
         version ({current}); fetch that one"
    )]
    Gone {
        image: String,
        sha256: String,
        current: String,
    },
    #[error("distribution point {0} is in maintenance mode: the site sends it no content")]
    Maintenance(String),
    #[error(transparent)]
    Distribution(#[from] DistributionError),
}

/// The image whose current version is `sha256`, for a pull DP outside maintenance mode.
pub fn servable(
    site: &Site,
    dp_id: DpId,
    image_id: ImageId,
    sha256: &str,
) -> Result<Image, ServeRefusal> {
    let db = site.database().map_err(DistributionError::from)?;
    let dp = find(&db, dp_id)?;
    if dp.maintenance_mode {
        return Err(ServeRefusal::Maintenance(dp.nal_path));
    }
    let img = image::get(&db, image_id).map_err(DistributionError::from)?;
    if !img.sha256.eq_ignore_ascii_case(sha256) {
        return Err(ServeRefusal::Gone {
            image: img.name,
            sha256: sha256.to_string(),
            current: img.sha256,
        });
    }
    Ok(img)
}

/// The chunk index of an image's current version, kept under
/// `<site>/ChunkIndex/<image id>/<sha256>.chunks` (indexes of older versions are removed):
/// built when the version is published ([`prepare_index`]), or else on the first request.
pub fn chunk_index(site: &Site, img: &Image) -> Result<Vec<u8>, DistributionError> {
    let dir = site.root().join("ChunkIndex").join(img.id.to_string());
    let cache = dir.join(format!("{}.chunks", img.sha256));
    let index = super::chunks::cached(&img.path, &img.sha256, &cache).map_err(|e| {
        DistributionError::Storage {
            dp: "the site".into(),
            message: format!("chunk index of image {}: {e}", img.name),
        }
    })?;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            if e.path() != cache {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(index.to_bytes())
}

/// Builds the chunk index of an image's current version when a pull DP holds the image or is
/// assigned it, so no agent's request waits while the site reads the whole file. A failure is
/// logged, not returned: the first request builds the index then.
pub fn prepare_index(site: &Site, image_id: ImageId) {
    let prepared = (|| -> Result<Option<Image>, DistributionError> {
        let db = site.database()?;
        let img = image::get(&db, image_id)?;
        let pulled = catalog::dps_for_image(&db, img.id)?
            .iter()
            .any(|dp| is_pull(&dp.target));
        drop(db);
        if !pulled {
            return Ok(None);
        }
        chunk_index(site, &img)?;
        Ok(Some(img))
    })();
    match prepared {
        Ok(Some(img)) => tracing::info!(
            "chunk index of image {} version {} ready for its pull DPs",
            img.name,
            img.sha256
        ),
        Ok(None) => {}
        Err(e) => tracing::warn!(
            "the chunk index of image {image_id} was not built now (the first pull DP to ask \
             builds it): {e}"
        ),
    }
}

/// Adds to the bytes the site has served a pull DP.
pub fn count_served(site: &Site, dp_id: DpId, bytes: u64) -> Result<(), DistributionError> {
    let db = site.database()?;
    ensure_row(&db, dp_id)?;
    run(
        &db,
        "UPDATE pull_dps SET bytes_served = bytes_served + ?2 WHERE dp_id = ?1",
        params![dp_id, bytes as i64],
    )
}

/// What the agent reports about one version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionReport {
    pub image_id: ImageId,
    pub sha256: String,
    /// `In progress`, `Installed` or `Failed`.
    pub status: String,
    pub error: Option<String>,
    /// Bytes fetched from the site for this version (with `Installed`).
    pub bytes_fetched: Option<u64>,
}

/// The agent's re-hash of one version it holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidationReport {
    pub image_id: ImageId,
    pub sha256: String,
    pub ok: bool,
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    #[serde(default)]
    pub versions: Vec<VersionReport>,
    /// Present when the agent answers a validation request.
    pub validations: Option<Vec<ValidationReport>>,
}

/// Records an agent's report. `Installed` makes the version the DP's only one (the agent
/// removed the older ones when the new one was in place).
pub fn record_report(site: &Site, dp_id: DpId, report: &Report) -> Result<(), DistributionError> {
    let db = site.database()?;
    let dp = find(&db, dp_id)?;
    ensure_row(&db, dp.id)?;
    run(
        &db,
        "UPDATE pull_dps SET last_contact = ?2 WHERE dp_id = ?1",
        params![dp.id, now_rfc3339()],
    )?;
    for v in &report.versions {
        let status: DistStatus = v.status.parse().map_err(DistributionError::Usage)?;
        let img = image::get(&db, v.image_id)?;
        let size = if img.sha256 == v.sha256 {
            img.size_bytes
        } else {
            0
        };
        catalog::set_status(
            &db,
            dp.id,
            img.id,
            &v.sha256,
            size,
            status,
            v.error.as_deref(),
        )?;
        match status {
            DistStatus::Installed => {
                for (old, _) in catalog::other_versions(&db, dp.id, img.id, &v.sha256)? {
                    catalog::delete_version(&db, dp.id, img.id, &old)?;
                }
                if let Some(b) = v.bytes_fetched {
                    run(
                        &db,
                        "UPDATE pull_dps SET last_fetch_bytes = ?2 WHERE dp_id = ?1",
                        params![dp.id, b as i64],
                    )?;
                }
                tracing::info!(
                    "image {} ({}) is installed on pull DP {} ({} bytes fetched)",
                    img.name,
                    v.sha256,
                    dp.server,
                    v.bytes_fetched.unwrap_or(0)
                );
            }
            DistStatus::Failed => tracing::warn!(
                "pull DP {} failed to install image {} ({}): {}",
                dp.server,
                img.name,
                v.sha256,
                v.error.as_deref().unwrap_or("no reason given")
            ),
            _ => {}
        }
    }
    if let Some(validations) = &report.validations {
        for v in validations {
            let img = image::get(&db, v.image_id)?;
            if !v.ok {
                let problem = v.problem.as_deref().unwrap_or("the content differs");
                tracing::warn!(
                    "content validation on {} failed for image {}: {problem}",
                    dp.server,
                    img.name
                );
                catalog::set_status(
                    &db,
                    dp.id,
                    img.id,
                    &v.sha256,
                    img.size_bytes,
                    DistStatus::Failed,
                    Some(&format!("content validation: {problem}")),
                )?;
            }
            catalog::mark_validated(&db, dp.id, img.id, &v.sha256)?;
        }
        run(
            &db,
            "UPDATE pull_dps SET validation_requested_at = NULL WHERE dp_id = ?1",
            [dp.id],
        )?;
    }
    Ok(())
}

/// Asks a pull DP's agent to re-hash its content (it answers with its next report).
pub fn request_validation(db: &Database, dp_id: DpId) -> Result<(), DistributionError> {
    ensure_row(db, dp_id)?;
    run(
        db,
        "UPDATE pull_dps SET validation_requested_at = COALESCE(validation_requested_at, ?2)
         WHERE dp_id = ?1",
        params![dp_id, now_rfc3339()],
    )
}
