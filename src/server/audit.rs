//! The audit log (table `server_audit`): every change made through the server, with who made
//! it, when, what, on which target and how it ended; each also a line in
//! `OfflineServicingMgr.log`.

use rusqlite::params;
use serde::Serialize;

use crate::fsutil::now_rfc3339;
use crate::site::{Database, SiteError};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    /// UTC, RFC 3339.
    pub at: String,
    pub who: String,
    pub action: String,
    pub target: String,
    /// `succeeded` or `failed`.
    pub result: String,
    /// The error of a failed change.
    pub detail: Option<String>,
}

pub fn record(
    db: &Database,
    who: &str,
    action: &str,
    target: &str,
    error: Option<&str>,
) -> Result<(), SiteError> {
    let result = if error.is_some() {
        "failed"
    } else {
        "succeeded"
    };
    db.execute(
        "INSERT INTO server_audit (at, who, action, target, result, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![now_rfc3339(), who, action, target, result, error],
    )
    .map_err(|e| db.error(e))?;
    match error {
        None => tracing::info!("audit: {who} {action} {target}: {result}"),
        Some(e) => tracing::warn!("audit: {who} {action} {target}: {result}: {e}"),
    }
    Ok(())
}

/// The newest `limit` entries, newest first.
pub fn list(db: &Database, limit: u32) -> Result<Vec<AuditEntry>, SiteError> {
    let mut stmt = db
        .prepare(
            "SELECT id, at, who, action, target, result, detail FROM server_audit
             ORDER BY id DESC LIMIT ?1",
        )
        .map_err(|e| db.error(e))?;
    let rows = stmt
        .query_map([limit], |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                at: r.get(1)?,
                who: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
                result: r.get(5)?,
                detail: r.get(6)?,
            })
        })
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(|e| db.error(e))?;
    Ok(rows)
}
