//! Provisioning mode of an image: while a run holds it, no other run touches the image. The
//! claim is one row in the site database, taken atomically.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::RunId;
use crate::fsutil::now_rfc3339;
use crate::image::ImageId;
use crate::site::Database;

#[derive(Debug, Clone, Serialize)]
pub struct ProvisioningMode {
    pub since: String,
    pub run_id: Option<RunId>,
    pub owner_pid: u32,
    pub owner_host: String,
}

pub fn host_name() -> String {
    sysinfo::System::host_name().unwrap_or_else(|| "localhost".into())
}

/// Puts the image into provisioning mode for this process; returns the current holder when
/// another run already has it.
pub fn enter(
    db: &rusqlite::Connection,
    image_id: ImageId,
) -> rusqlite::Result<Result<(), ProvisioningMode>> {
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

pub fn attach_run(
    db: &rusqlite::Connection,
    image_id: ImageId,
    run_id: RunId,
) -> rusqlite::Result<()> {
    db.execute(
        "UPDATE provisioning SET run_id = ?2 WHERE image_id = ?1",
        params![image_id, run_id],
    )?;
    Ok(())
}

pub fn current(
    db: &rusqlite::Connection,
    image_id: ImageId,
) -> rusqlite::Result<Option<ProvisioningMode>> {
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

/// Is provisioning mode of the image still held by this run? A repair (by an admin or the
/// timeout) may have taken it away while the run worked.
pub fn held_by(
    conn: &rusqlite::Connection,
    image_id: ImageId,
    run_id: Option<RunId>,
) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) FROM provisioning WHERE image_id = ?1 AND run_id IS ?2",
        params![image_id, run_id],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// Leaves provisioning mode, only if this run still holds it.
pub fn leave(
    conn: &rusqlite::Connection,
    image_id: ImageId,
    run_id: Option<RunId>,
) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM provisioning WHERE image_id = ?1 AND run_id IS ?2",
        params![image_id, run_id],
    )?;
    Ok(())
}

/// Every image in provisioning mode.
pub fn all(db: &Database) -> rusqlite::Result<Vec<(ImageId, ProvisioningMode)>> {
    let mut stmt = db.prepare(
        "SELECT image_id, since, run_id, owner_pid, owner_host FROM provisioning ORDER BY image_id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            ProvisioningMode {
                since: r.get(1)?,
                run_id: r.get(2)?,
                owner_pid: r.get(3)?,
                owner_host: r.get(4)?,
            },
        ))
    })?;
    rows.collect()
}

/// What can be known about the process that holds provisioning mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Alive,
    /// It ended (or its pid now belongs to a process started later).
    Gone,
    /// It runs on another host, which this one cannot see.
    Unknown,
}

impl ProvisioningMode {
    pub fn owner(&self) -> Owner {
        if self.owner_host != host_name() {
            return Owner::Unknown;
        }
        process_state(self.owner_pid, &self.since)
    }

    /// How long the image has been in provisioning mode.
    pub fn age(&self) -> std::time::Duration {
        chrono::DateTime::parse_from_rfc3339(&self.since)
            .ok()
            .and_then(|t| {
                (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                    .to_std()
                    .ok()
            })
            .unwrap_or_default()
    }
}

/// Whether process `pid` on this host is the one that entered provisioning mode at `since`:
/// a pid reused by a later process, or a zombie, counts as gone.
pub fn process_state(pid: u32, since: &str) -> Owner {
    use sysinfo::{Pid, ProcessStatus, ProcessesToUpdate, System};
    let pid = Pid::from_u32(pid);
    let mut sys = System::new();
    sys.refresh_processes(ProcessesToUpdate::Some(&[pid]), true);
    let Some(process) = sys.process(pid) else {
        return Owner::Gone;
    };
    if matches!(
        process.status(),
        ProcessStatus::Zombie | ProcessStatus::Dead
    ) {
        return Owner::Gone;
    }
    let entered = chrono::DateTime::parse_from_rfc3339(since)
        .map(|t| t.timestamp().max(0) as u64)
        .unwrap_or(u64::MAX);
    // start_time has a one-second resolution, and `since` too.
    if process.start_time() > entered.saturating_add(1) {
        return Owner::Gone;
    }
    Owner::Alive
}
