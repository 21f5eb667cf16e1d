//! Content validation: re-hash what each DP holds against the site database. It runs on DPs
//! in maintenance mode too, as Configuration Manager's scheduled validation does.

use serde::Serialize;

use super::{catalog, layout, open_operator, transfer, DistStatus, DistributionError, Nal};
use crate::site::Site;

/// The check of one installed version on one DP.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    pub dp: String,
    pub image: String,
    pub sha256: String,
    pub ok: bool,
    /// What differs, when not ok.
    pub problem: Option<String>,
    /// A pull DP's agent re-hashes its content itself: the site asked it to, and records its
    /// answer when it comes (`validated_at`, or `Failed` with what differs).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub requested: bool,
}

/// Validates every installed version on `dp`, or on every DP. Mismatches become `Failed` with
/// what differs, and are due for redistribution (when the DP is not in maintenance mode).
pub fn validate(site: &Site, dp: Option<&Nal>) -> Result<Vec<Validation>, DistributionError> {
    let db = site.database()?;
    let dps = match dp {
        Some(nal) => vec![catalog::find(&db, nal)?],
        None => catalog::list(&db)?,
    };
    let mut out = Vec::new();
    for dp in &dps {
        let rows: Vec<_> = catalog::for_dp(&db, dp.id)?
            .into_iter()
            .filter(|d| d.status == DistStatus::Installed)
            .collect();
        if rows.is_empty() {
            continue;
        }
        if super::pull::is_pull(&dp.target) {
            super::pull::request_validation(&db, dp.id)?;
            out.extend(rows.iter().map(|row| Validation {
                dp: dp.nal_path.clone(),
                image: row.image.clone(),
                sha256: row.sha256.clone(),
                ok: true,
                problem: None,
                requested: true,
            }));
            continue;
        }
        let op = open_operator(&db, dp);
        for row in rows {
            let path = layout::content_path(row.image_id, &row.sha256);
            let problem = match &op {
                Err(e) => Some(e.to_string()),
                Ok(op) => match transfer::hash_remote(op, &path) {
                    Err(e) => Some(e.message),
                    Ok((h, len)) if h == row.sha256 && len == row.size_bytes => None,
                    Ok((h, len)) => Some(format!(
                        "{path} has SHA-256 {h} ({len} bytes); the site database expects {} ({} bytes)",
                        row.sha256, row.size_bytes
                    )),
                },
            };
            match &problem {
                None => catalog::mark_validated(&db, dp.id, row.image_id, &row.sha256)?,
                Some(p) => {
                    tracing::warn!(
                        "content validation on {} failed for image {}: {p}",
                        dp.server,
                        row.image
                    );
                    catalog::set_status(
                        &db,
                        dp.id,
                        row.image_id,
                        &row.sha256,
                        row.size_bytes,
                        DistStatus::Failed,
                        Some(&format!("content validation: {p}")),
                    )?;
                    catalog::mark_validated(&db, dp.id, row.image_id, &row.sha256)?;
                }
            }
            out.push(Validation {
                dp: dp.nal_path.clone(),
                image: row.image.clone(),
                sha256: row.sha256.clone(),
                ok: problem.is_none(),
                problem,
                requested: false,
            });
        }
    }
    Ok(out)
}
