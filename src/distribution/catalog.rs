//! The DP catalog and the distribution status table, in the site database.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{layout, DistStatus, DistributionError, Nal};
use crate::fsutil::now_rfc3339;
use crate::image::ImageId;
use crate::site::{Database, Migrations};

pub static MIGRATIONS: Migrations = Migrations {
    module: "distribution",
    steps: &[
        "CREATE TABLE distribution_points (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            server TEXT NOT NULL UNIQUE COLLATE NOCASE,
            nal_type TEXT NOT NULL,
            site_code TEXT NOT NULL,
            target TEXT NOT NULL,
            description TEXT,
            maintenance_mode INTEGER NOT NULL DEFAULT 0,
            maintenance_since TEXT,
            layout_version INTEGER NOT NULL,
            added_at TEXT NOT NULL);
        CREATE TABLE dp_boundary_groups (
            dp_id INTEGER NOT NULL REFERENCES distribution_points(id) ON DELETE CASCADE,
            name TEXT NOT NULL COLLATE NOCASE,
            PRIMARY KEY (dp_id, name));
        CREATE TABLE dp_settings (
            dp_id INTEGER NOT NULL REFERENCES distribution_points(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            secret INTEGER NOT NULL,
            PRIMARY KEY (dp_id, key));
        CREATE TABLE dp_assignments (
            dp_id INTEGER NOT NULL REFERENCES distribution_points(id) ON DELETE CASCADE,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            PRIMARY KEY (dp_id, image_id));
        CREATE TABLE distributions (
            dp_id INTEGER NOT NULL REFERENCES distribution_points(id) ON DELETE CASCADE,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            sha256 TEXT NOT NULL,
            size_bytes INTEGER NOT NULL,
            status TEXT NOT NULL,
            error TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT,
            updated_at TEXT NOT NULL,
            installed_at TEXT,
            validated_at TEXT,
            PRIMARY KEY (dp_id, image_id, sha256));",
        "CREATE TABLE pull_dps (
            dp_id INTEGER PRIMARY KEY REFERENCES distribution_points(id) ON DELETE CASCADE,
            agent_version TEXT,
            last_contact TEXT,
            bytes_served INTEGER NOT NULL DEFAULT 0,
            last_fetch_bytes INTEGER,
            validation_requested_at TEXT);",
        // The dp-agent account that registered or claimed the DP: the only one of that role
        // that may act for it.
        "ALTER TABLE pull_dps ADD COLUMN agent_account TEXT;",
    ],
};

crate::id::integer_id!(
    /// A distribution point (`distribution_points.id`); admins name a DP by its NAL path.
    DpId,
    "a distribution point id"
);

/// A distribution point. Secret values are never part of it: only their names.
#[derive(Debug, Clone, Serialize)]
pub struct DistributionPoint {
    #[serde(skip)]
    pub id: DpId,
    pub nal_path: String,
    pub server: String,
    pub nal_type: String,
    pub site_code: String,
    pub target: String,
    pub description: Option<String>,
    pub boundary_groups: Vec<String>,
    pub settings: Vec<(String, String)>,
    pub secrets: Vec<String>,
    pub maintenance_mode: bool,
    pub maintenance_since: Option<String>,
    pub layout_version: u32,
    pub added_at: String,
    /// For a pull DP: what its agent last said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull: Option<super::pull::PullState>,
}

impl DistributionPoint {
    pub fn nal(&self) -> Nal {
        Nal {
            server: self.server.clone(),
            nal_type: self.nal_type.clone(),
            site_code: self.site_code.clone(),
        }
    }
}

/// One version of one image on one DP.
#[derive(Debug, Clone, Serialize)]
pub struct Distribution {
    /// The DP's id: the API and the console name a DP by it.
    pub dp_id: DpId,
    pub dp: String,
    pub server: String,
    pub image_id: ImageId,
    pub image: String,
    pub sha256: String,
    pub size_bytes: u64,
    pub status: DistStatus,
    pub error: Option<String>,
    pub attempts: u32,
    pub next_attempt_at: Option<String>,
    pub updated_at: String,
    pub installed_at: Option<String>,
    pub validated_at: Option<String>,
    /// This is the image's current version (the catalog's SHA-256).
    pub current: bool,
}

fn db_err(db: &Database) -> impl Fn(rusqlite::Error) -> DistributionError + '_ {
    move |e| DistributionError::Site(db.error(e))
}

/// Runs one statement; returns how many rows it changed.
fn execute(
    db: &Database,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<usize, DistributionError> {
    db.execute(sql, args).map_err(db_err(db))
}

/// [`execute`] for a statement whose row count does not matter.
fn run(db: &Database, sql: &str, args: impl rusqlite::Params) -> Result<(), DistributionError> {
    execute(db, sql, args).map(|_| ())
}

const DP_COLUMNS: &str = "id, server, nal_type, site_code, target, description, maintenance_mode, maintenance_since, layout_version, added_at";

fn row_to_dp(r: &rusqlite::Row) -> rusqlite::Result<DistributionPoint> {
    let nal = Nal {
        server: r.get(1)?,
        nal_type: r.get(2)?,
        site_code: r.get(3)?,
    };
    Ok(DistributionPoint {
        id: r.get(0)?,
        nal_path: nal.to_string(),
        server: nal.server,
        nal_type: nal.nal_type,
        site_code: nal.site_code,
        target: r.get(4)?,
        description: r.get(5)?,
        boundary_groups: Vec::new(),
        settings: Vec::new(),
        secrets: Vec::new(),
        maintenance_mode: r.get::<_, i64>(6)? != 0,
        maintenance_since: r.get(7)?,
        layout_version: r.get(8)?,
        added_at: r.get(9)?,
        pull: None,
    })
}

fn fill(db: &Database, mut dp: DistributionPoint) -> Result<DistributionPoint, DistributionError> {
    let mut stmt = db
        .prepare("SELECT name FROM dp_boundary_groups WHERE dp_id = ?1 ORDER BY name")
        .map_err(db_err(db))?;
    dp.boundary_groups = stmt
        .query_map([dp.id], |r| r.get(0))
        .and_then(|r| r.collect::<Result<Vec<String>, _>>())
        .map_err(db_err(db))?;
    let mut stmt = db
        .prepare("SELECT key, value, secret FROM dp_settings WHERE dp_id = ?1 ORDER BY key")
        .map_err(db_err(db))?;
    let rows = stmt
        .query_map([dp.id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)? != 0,
            ))
        })
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(db_err(db))?;
    for (k, v, secret) in rows {
        if secret {
            dp.secrets.push(k);
        } else {
            dp.settings.push((k, v));
        }
    }
    if super::pull::is_pull(&dp.target) {
        dp.pull = Some(super::pull::state(db, dp.id)?.unwrap_or_default());
    }
    Ok(dp)
}

pub fn find_optional(
    db: &Database,
    nal: &Nal,
) -> Result<Option<DistributionPoint>, DistributionError> {
    let dp = db
        .query_row(
            &format!("SELECT {DP_COLUMNS} FROM distribution_points WHERE server = ?1"),
            [&nal.server],
            row_to_dp,
        )
        .optional()
        .map_err(db_err(db))?;
    dp.map(|dp| fill(db, dp)).transpose()
}

pub fn find(db: &Database, nal: &Nal) -> Result<DistributionPoint, DistributionError> {
    find_optional(db, nal)?.ok_or_else(|| DistributionError::NotFound(nal.to_string()))
}

pub fn list(db: &Database) -> Result<Vec<DistributionPoint>, DistributionError> {
    let mut stmt = db
        .prepare(&format!(
            "SELECT {DP_COLUMNS} FROM distribution_points ORDER BY server"
        ))
        .map_err(db_err(db))?;
    let dps = stmt
        .query_map([], row_to_dp)
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(db_err(db))?;
    dps.into_iter().map(|dp| fill(db, dp)).collect()
}

/// Secret values of a DP, for building its storage operator only.
pub fn secrets(db: &Database, dp_id: DpId) -> Result<Vec<(String, String)>, DistributionError> {
    let mut stmt = db
        .prepare("SELECT key, value FROM dp_settings WHERE dp_id = ?1 AND secret = 1")
        .map_err(db_err(db))?;
    let rows = stmt
        .query_map([dp_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(db_err(db))?;
    Ok(rows)
}

pub fn insert(db: &Database, nal: &Nal, target: &str) -> Result<DpId, DistributionError> {
    execute(
        db,
        "INSERT INTO distribution_points (server, nal_type, site_code, target, layout_version, added_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![nal.server, nal.nal_type, nal.site_code, target, layout::LAYOUT_VERSION, now_rfc3339()],
    )?;
    Ok(DpId::new(db.last_insert_rowid()))
}

pub fn set_target(db: &Database, dp_id: DpId, target: &str) -> Result<(), DistributionError> {
    run(
        db,
        "UPDATE distribution_points SET target = ?2 WHERE id = ?1",
        params![dp_id, target],
    )
}

pub fn set_description(
    db: &Database,
    dp_id: DpId,
    description: Option<&str>,
) -> Result<(), DistributionError> {
    run(
        db,
        "UPDATE distribution_points SET description = ?2 WHERE id = ?1",
        params![dp_id, description],
    )
}

pub fn add_boundary_group(db: &Database, dp_id: DpId, name: &str) -> Result<(), DistributionError> {
    run(
        db,
        "INSERT OR IGNORE INTO dp_boundary_groups (dp_id, name) VALUES (?1, ?2)",
        params![dp_id, name],
    )
}

pub fn remove_boundary_group(
    db: &Database,
    dp_id: DpId,
    name: &str,
) -> Result<(), DistributionError> {
    run(
        db,
        "DELETE FROM dp_boundary_groups WHERE dp_id = ?1 AND name = ?2",
        params![dp_id, name],
    )
}

pub fn set_setting(
    db: &Database,
    dp_id: DpId,
    key: &str,
    value: &str,
    secret: bool,
) -> Result<(), DistributionError> {
    run(
        db,
        "INSERT INTO dp_settings (dp_id, key, value, secret) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(dp_id, key) DO UPDATE SET value = excluded.value, secret = excluded.secret",
        params![dp_id, key, value, secret as i64],
    )
}

pub fn remove(db: &Database, dp_id: DpId) -> Result<(), DistributionError> {
    run(db, "DELETE FROM distribution_points WHERE id = ?1", [dp_id])
}

pub fn set_maintenance(db: &Database, dp_id: DpId, on: bool) -> Result<bool, DistributionError> {
    let changed = execute(
        db,
        "UPDATE distribution_points SET maintenance_mode = ?2,
            maintenance_since = CASE WHEN ?2 = 1 THEN ?3 ELSE NULL END
         WHERE id = ?1 AND maintenance_mode != ?2",
        params![dp_id, on as i64, now_rfc3339()],
    )?;
    Ok(changed == 1)
}

pub fn set_layout_version(db: &Database, dp_id: DpId, v: u32) -> Result<(), DistributionError> {
    run(
        db,
        "UPDATE distribution_points SET layout_version = ?2 WHERE id = ?1",
        params![dp_id, v],
    )
}

pub fn assign(db: &Database, dp_id: DpId, image_id: ImageId) -> Result<(), DistributionError> {
    run(
        db,
        "INSERT OR IGNORE INTO dp_assignments (dp_id, image_id) VALUES (?1, ?2)",
        params![dp_id, image_id],
    )
}

/// DPs that hold the image (any version) or are assigned to it.
pub fn dps_for_image(
    db: &Database,
    image_id: ImageId,
) -> Result<Vec<DistributionPoint>, DistributionError> {
    let mut stmt = db
        .prepare(&format!(
            "SELECT {DP_COLUMNS} FROM distribution_points WHERE id IN (
                SELECT dp_id FROM dp_assignments WHERE image_id = ?1
                UNION SELECT dp_id FROM distributions WHERE image_id = ?1)
             ORDER BY server"
        ))
        .map_err(db_err(db))?;
    let dps = stmt
        .query_map([image_id], row_to_dp)
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(db_err(db))?;
    dps.into_iter().map(|dp| fill(db, dp)).collect()
}

const DIST_SELECT: &str = "SELECT d.server, d.nal_type, d.site_code, x.image_id, i.name, x.sha256,
        x.size_bytes, x.status, x.error, x.attempts, x.next_attempt_at, x.updated_at,
        x.installed_at, x.validated_at, x.sha256 = i.sha256, x.dp_id
    FROM distributions x
    JOIN distribution_points d ON d.id = x.dp_id
    JOIN images i ON i.id = x.image_id";

fn row_to_dist(r: &rusqlite::Row) -> rusqlite::Result<Distribution> {
    let nal = Nal {
        server: r.get(0)?,
        nal_type: r.get(1)?,
        site_code: r.get(2)?,
    };
    let status: String = r.get(7)?;
    Ok(Distribution {
        dp_id: r.get(15)?,
        dp: nal.to_string(),
        server: nal.server,
        image_id: r.get(3)?,
        image: r.get(4)?,
        sha256: r.get(5)?,
        size_bytes: r.get::<_, i64>(6)? as u64,
        status: status.parse().unwrap_or(DistStatus::Failed),
        error: r.get(8)?,
        attempts: r.get(9)?,
        next_attempt_at: r.get(10)?,
        updated_at: r.get(11)?,
        installed_at: r.get(12)?,
        validated_at: r.get(13)?,
        current: r.get(14)?,
    })
}

fn query_dists(
    db: &Database,
    filter: &str,
    arg: impl rusqlite::ToSql,
) -> Result<Vec<Distribution>, DistributionError> {
    let mut stmt = db
        .prepare(&format!(
            "{DIST_SELECT} WHERE {filter} ORDER BY i.name, d.server, x.updated_at"
        ))
        .map_err(db_err(db))?;
    let rows = stmt
        .query_map([arg], row_to_dist)
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(db_err(db))?;
    Ok(rows)
}

pub fn for_image(db: &Database, image_id: ImageId) -> Result<Vec<Distribution>, DistributionError> {
    query_dists(db, "x.image_id = ?1", image_id)
}

pub fn for_dp(db: &Database, dp_id: DpId) -> Result<Vec<Distribution>, DistributionError> {
    query_dists(db, "x.dp_id = ?1", dp_id)
}

/// Every row still to send: Pending or Failed, of an image's current version.
pub fn outstanding(db: &Database) -> Result<Vec<(Distribution, ImageId)>, DistributionError> {
    let mut stmt = db
        .prepare(&format!(
            "{DIST_SELECT} WHERE x.status IN ('Pending', 'Failed', 'In progress')
               AND x.sha256 = i.sha256 ORDER BY i.name, d.server"
        ))
        .map_err(db_err(db))?;
    let rows = stmt
        .query_map([], row_to_dist)
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(db_err(db))?;
    Ok(rows.into_iter().map(|d| (d.clone(), d.image_id)).collect())
}

/// The status of one version on one DP, if it has a row.
pub fn status(
    db: &Database,
    dp_id: DpId,
    image_id: ImageId,
    sha256: &str,
) -> Result<Option<DistStatus>, DistributionError> {
    let s: Option<String> = db
        .query_row(
            "SELECT status FROM distributions WHERE dp_id = ?1 AND image_id = ?2 AND sha256 = ?3",
            params![dp_id, image_id, sha256],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err(db))?;
    Ok(s.map(|s| s.parse().unwrap_or(DistStatus::Failed)))
}

/// Records a version's status; `Pending` rows are created when missing.
pub fn set_status(
    db: &Database,
    dp_id: DpId,
    image_id: ImageId,
    sha256: &str,
    size: u64,
    status: DistStatus,
    error: Option<&str>,
) -> Result<(), DistributionError> {
    let now = now_rfc3339();
    db.execute(
        "INSERT INTO distributions (dp_id, image_id, sha256, size_bytes, status, error, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(dp_id, image_id, sha256) DO UPDATE SET
            status = excluded.status, error = excluded.error, updated_at = excluded.updated_at",
        params![
            dp_id,
            image_id,
            sha256,
            size as i64,
            status.as_str(),
            error,
            now
        ],
    )
    .map_err(db_err(db))?;
    match status {
        DistStatus::Installed => {
            db.execute(
                "UPDATE distributions SET installed_at = ?4, attempts = 0, next_attempt_at = NULL
                 WHERE dp_id = ?1 AND image_id = ?2 AND sha256 = ?3",
                params![dp_id, image_id, sha256, now],
            )
            .map_err(db_err(db))?;
        }
        DistStatus::Failed => {
            let attempts: u32 = db
                .query_row(
                    "UPDATE distributions SET attempts = attempts + 1
                     WHERE dp_id = ?1 AND image_id = ?2 AND sha256 = ?3 RETURNING attempts",
                    params![dp_id, image_id, sha256],
                    |r| r.get(0),
                )
                .map_err(db_err(db))?;
            let next = chrono::Utc::now() + super::retry_backoff(attempts);
            db.execute(
                "UPDATE distributions SET next_attempt_at = ?4
                 WHERE dp_id = ?1 AND image_id = ?2 AND sha256 = ?3",
                params![
                    dp_id,
                    image_id,
                    sha256,
                    next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ],
            )
            .map_err(db_err(db))?;
        }
        _ => {}
    }
    Ok(())
}

pub fn mark_validated(
    db: &Database,
    dp_id: DpId,
    image_id: ImageId,
    sha256: &str,
) -> Result<(), DistributionError> {
    run(
        db,
        "UPDATE distributions SET validated_at = ?4 WHERE dp_id = ?1 AND image_id = ?2 AND sha256 = ?3",
        params![dp_id, image_id, sha256, now_rfc3339()],
    )
}

/// Versions of an image on a DP other than `keep`: `(sha256, status)`.
pub fn other_versions(
    db: &Database,
    dp_id: DpId,
    image_id: ImageId,
    keep: &str,
) -> Result<Vec<(String, DistStatus)>, DistributionError> {
    let mut stmt = db
        .prepare(
            "SELECT sha256, status FROM distributions WHERE dp_id = ?1 AND image_id = ?2 AND sha256 != ?3",
        )
        .map_err(db_err(db))?;
    let rows = stmt
        .query_map(params![dp_id, image_id, keep], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(db_err(db))?;
    Ok(rows
        .into_iter()
        .map(|(s, st)| (s, st.parse().unwrap_or(DistStatus::Failed)))
        .collect())
}

pub fn delete_version(
    db: &Database,
    dp_id: DpId,
    image_id: ImageId,
    sha256: &str,
) -> Result<(), DistributionError> {
    run(
        db,
        "DELETE FROM distributions WHERE dp_id = ?1 AND image_id = ?2 AND sha256 = ?3",
        params![dp_id, image_id, sha256],
    )
}
