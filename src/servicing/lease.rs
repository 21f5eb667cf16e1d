//! Provisioning mode of an image: while a run holds it, no other run touches the image. The
//! claim is one row in the site database, taken atomically.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::fsutil::now_rfc3339;
use crate::site::Database;

#[derive(Debug, Clone, Serialize)]
pub struct ProvisioningMode {
    pub since: String,
    pub run_id: Option<i64>,
    pub owner_pid: u32,
    pub owner_host: String,
}

pub fn host_name() -> String {
    sysinfo::System::host_name().unwrap_or_else(|| "localhost".into())
}

/// Puts the image into provisioning mode for this process; returns the current holder when
/// another run already has it.
pub fn enter(db: &Database, image_id: i64) -> rusqlite::Result<Result<(), ProvisioningMode>> {
    let inserted = db.execute(
        "INSERT OR IGNORE INTO provisioning (image_id, since, owner_pid, owner_host) VALUES (?1, ?2, ?3, ?4)",
        params![image_id, now_rfc3339(), std::process::id(), host_name()],
    )?;
    if inserted == 1 {
        return Ok(Ok(()));
    }
    Ok(Err(current(db, image_id)?.unwrap_or(ProvisioningMode {
        since: String::new(),
        run_id: None,
        owner_pid: 0,
        owner_host: String::new(),
    })))
}

pub fn attach_run(db: &Database, image_id: i64, run_id: i64) -> rusqlite::Result<()> {
    db.execute(
        "UPDATE provisioning SET run_id = ?2 WHERE image_id = ?1",
        params![image_id, run_id],
    )?;
    Ok(())
}

pub fn current(db: &Database, image_id: i64) -> rusqlite::Result<Option<ProvisioningMode>> {
    db.query_row(
        "SELECT since, run_id, owner_pid, owner_host FROM provisioning WHERE image_id = ?1",
        [image_id],
        |r| {
            Ok(ProvisioningMode {
                since: r.get(0)?,
                run_id: r.get(1)?,
                owner_pid: r.get(2)?,
                owner_host: r.get(3)?,
            })
        },
    )
    .optional()
}

pub fn leave(conn: &rusqlite::Connection, image_id: i64) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM provisioning WHERE image_id = ?1", [image_id])?;
    Ok(())
}
