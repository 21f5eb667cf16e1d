//! Cancelling a run from any process: the request is a flag on the run's row in the site
//! database, and every servicing process watches the rows of its own runs and trips their
//! in-memory flag, which the run checks between updates and in wimlib's progress callback.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::params;

use super::RunId;
use crate::site::{Database, Site};

/// How often a servicing process looks for cancel requests on its runs.
const POLL: Duration = Duration::from_millis(200);

#[derive(Default)]
pub struct CancelWatch {
    runs: Mutex<HashMap<RunId, Arc<AtomicBool>>>,
}

impl CancelWatch {
    pub fn register(&self, run_id: RunId) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        if let Ok(mut runs) = self.runs.lock() {
            runs.insert(run_id, flag.clone());
        }
        flag
    }

    pub fn unregister(&self, run_id: RunId) {
        if let Ok(mut runs) = self.runs.lock() {
            runs.remove(&run_id);
        }
    }

    fn watched(&self) -> Vec<RunId> {
        self.runs
            .lock()
            .map(|r| r.keys().copied().collect())
            .unwrap_or_default()
    }

    fn poll(&self, db: &Database) -> rusqlite::Result<()> {
        let watched = self.watched();
        if watched.is_empty() {
            return Ok(());
        }
        let mut stmt = db.prepare_cached(
            "SELECT id FROM servicing_runs WHERE cancel_requested = 1 AND status = 'In progress'",
        )?;
        let requested = stmt
            .query_map([], |r| r.get::<_, RunId>(0))?
            .collect::<rusqlite::Result<Vec<RunId>>>()?;
        let runs = self.runs.lock().map_err(|_| {
            rusqlite::Error::InvalidParameterName("cancel registry poisoned".into())
        })?;
        for id in requested {
            if let Some(flag) = runs.get(&id) {
                if !flag.swap(true, Ordering::Relaxed) {
                    tracing::warn!("servicing run {id}: cancel requested");
                }
            }
        }
        Ok(())
    }
}

/// Runs `work` while a thread watches the site database for cancel requests on the runs it
/// registers.
pub fn watching<R>(site: &Site, work: impl FnOnce(&CancelWatch) -> R) -> R {
    let watch = CancelWatch::default();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let db = match site.database() {
                Ok(db) => db,
                Err(e) => {
                    tracing::error!("cannot watch for cancel requests: {e}");
                    return;
                }
            };
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(POLL);
                if let Err(e) = watch.poll(&db) {
                    tracing::warn!("cannot read cancel requests: {}", db.error(e));
                }
            }
        });
        let result = work(&watch);
        done.store(true, Ordering::Relaxed);
        result
    })
}

/// Asks the run to stop at its next safe point; false when it is no longer In progress.
pub fn request(db: &Database, run_id: RunId) -> rusqlite::Result<bool> {
    db.execute(
        "UPDATE servicing_runs SET cancel_requested = 1 WHERE id = ?1 AND status = 'In progress'",
        params![run_id],
    )
    .map(|n| n == 1)
}
