//! What this process is sending to distribution points right now, for a front end that shows
//! live progress (the site server polls it and streams it). Process-wide, like a metrics
//! registry: a transfer starts deep in the distribution code whether the CLI, the scheduler or
//! the server asked for it, and none of them should have to thread an observer through.

use std::sync::Mutex;

use serde::Serialize;

/// One transfer under way: bytes of the image sent to the DP so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveTransfer {
    pub image: String,
    /// The DP's server name.
    pub dp: String,
    pub sent: u64,
    pub total: u64,
}

static ACTIVE: Mutex<Vec<(u64, ActiveTransfer)>> = Mutex::new(Vec::new());
static NEXT: Mutex<u64> = Mutex::new(0);

/// The transfers under way in this process, oldest first.
pub fn active() -> Vec<ActiveTransfer> {
    ACTIVE
        .lock()
        .map(|a| a.iter().map(|(_, t)| t.clone()).collect())
        .unwrap_or_default()
}

/// A transfer's entry in [`active`], removed when dropped (sent, failed or abandoned alike).
pub struct Tracker {
    key: u64,
}

/// Registers a transfer of `total` bytes of `image` to `dp`.
pub fn start(image: &str, dp: &str, total: u64) -> Tracker {
    let key = NEXT
        .lock()
        .map(|mut n| {
            *n += 1;
            *n
        })
        .unwrap_or(0);
    if let Ok(mut a) = ACTIVE.lock() {
        a.push((
            key,
            ActiveTransfer {
                image: image.to_string(),
                dp: dp.to_string(),
                sent: 0,
                total,
            },
        ));
    }
    Tracker { key }
}

impl Tracker {
    /// `sent` bytes are on their way now (a retry starts again from 0).
    pub fn set(&self, sent: u64) {
        if let Ok(mut a) = ACTIVE.lock() {
            if let Some((_, t)) = a.iter_mut().find(|(k, _)| *k == self.key) {
                t.sent = sent;
            }
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if let Ok(mut a) = ACTIVE.lock() {
            a.retain(|(k, _)| *k != self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_is_listed_with_its_progress_until_its_tracker_is_dropped() {
        let tracker = start("golden-progress-test", "dp9", 100);
        tracker.set(40);
        let mine = |t: &ActiveTransfer| t.image == "golden-progress-test";
        assert_eq!(
            active().into_iter().filter(mine).collect::<Vec<_>>(),
            vec![ActiveTransfer {
                image: "golden-progress-test".into(),
                dp: "dp9".into(),
                sent: 40,
                total: 100,
            }]
        );
        drop(tracker);
        assert!(!active().iter().any(mine));
    }
}
