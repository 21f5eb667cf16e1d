//! Live progress for `GET /api/v1/events`: servicing runs (started by the in-process scheduler
//! or through the API) and distributions publish here; each SSE client gets what happens from
//! when it connects, and the dashboard reads what runs now.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::{broadcast, watch};

use crate::distribution::progress::{self, ActiveTransfer};
use crate::distribution::DpOutcome;
use crate::servicing::RunEvent;

/// Events an SSE client may miss if it reads slower than runs progress; it is told how many.
const BACKLOG: usize = 1024;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ServerEvent {
    /// `source`: `scheduler` or `api`.
    RunStarted {
        image: String,
        source: String,
    },
    RunStep {
        image: String,
        step: String,
    },
    /// The new WIM being written: bytes done of total.
    RunProgress {
        image: String,
        done: u64,
        total: u64,
        percent: u8,
    },
    RunFinished {
        image: String,
        status: String,
        #[schema(value_type = Option<i64>)]
        run_id: Option<crate::servicing::RunId>,
    },
    DistributionStarted {
        image: String,
    },
    /// One transfer of an image to a DP under way in this process: bytes sent of total.
    TransferProgress {
        image: String,
        dp: String,
        sent: u64,
        total: u64,
        percent: u8,
    },
    DistributionFinished {
        image: String,
        #[schema(value_type = Vec<Object>)]
        outcomes: Vec<DpOutcome>,
    },
    ValidationFinished {
        checked: usize,
        failed: usize,
    },
    Repaired {
        image: String,
        reason: String,
    },
    Error {
        message: String,
    },
}

/// A run in this process, as the dashboard shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ActiveRun {
    pub image: String,
    pub source: String,
    pub step: Option<String>,
    pub percent: Option<u8>,
}

#[derive(Clone)]
pub struct Broadcaster {
    sender: broadcast::Sender<ServerEvent>,
    active: Arc<Mutex<BTreeMap<String, ActiveRun>>>,
    shutdown: Arc<watch::Sender<bool>>,
}

impl Broadcaster {
    pub fn new() -> Broadcaster {
        Broadcaster {
            sender: broadcast::channel(BACKLOG).0,
            active: Arc::default(),
            shutdown: Arc::new(watch::channel(false).0),
        }
    }

    pub fn publish(&self, event: ServerEvent) {
        if let Ok(mut active) = self.active.lock() {
            match &event {
                ServerEvent::RunStarted { image, source } => {
                    active.insert(
                        image.clone(),
                        ActiveRun {
                            image: image.clone(),
                            source: source.clone(),
                            step: None,
                            percent: None,
                        },
                    );
                }
                ServerEvent::RunStep { image, step } => {
                    if let Some(run) = active.get_mut(image) {
                        run.step = Some(step.clone());
                    }
                }
                ServerEvent::RunProgress { image, percent, .. } => {
                    if let Some(run) = active.get_mut(image) {
                        run.percent = Some(*percent);
                    }
                }
                ServerEvent::RunFinished { image, .. } => {
                    active.remove(image);
                }
                _ => {}
            }
        }
        // No subscriber is not an error: nobody is watching.
        let _ = self.sender.send(event);
    }

    /// A servicing observer that publishes a run's events; write progress only when its
    /// percentage changes (wimlib reports every chunk).
    pub fn observer(&self, source: &'static str) -> impl Fn(&str, RunEvent) + Sync + Send {
        let this = self.clone();
        let last = Mutex::new(BTreeMap::<String, u8>::new());
        move |image: &str, event: RunEvent| match event {
            RunEvent::Step(step) => {
                let first = last
                    .lock()
                    .map(|mut l| l.insert(image.to_string(), u8::MAX).is_none())
                    .unwrap_or(false);
                if first
                    && !this
                        .active
                        .lock()
                        .map(|a| a.contains_key(image))
                        .unwrap_or(true)
                {
                    this.publish(ServerEvent::RunStarted {
                        image: image.to_string(),
                        source: source.to_string(),
                    });
                }
                this.publish(ServerEvent::RunStep {
                    image: image.to_string(),
                    step: step.to_string(),
                });
            }
            RunEvent::Write { done, total } if total > 0 => {
                let percent = (done.saturating_mul(100) / total).min(100) as u8;
                let changed = last
                    .lock()
                    .map(|mut l| l.insert(image.to_string(), percent) != Some(percent))
                    .unwrap_or(true);
                if changed {
                    this.publish(ServerEvent::RunProgress {
                        image: image.to_string(),
                        done,
                        total,
                        percent,
                    });
                }
            }
            RunEvent::Write { .. } => {}
            RunEvent::Finished(status) => {
                if let Ok(mut l) = last.lock() {
                    l.remove(image);
                }
                this.publish(ServerEvent::RunFinished {
                    image: image.to_string(),
                    status: status.as_str().to_string(),
                    run_id: None,
                });
            }
        }
    }

    pub fn subscribe(&self) -> (broadcast::Receiver<ServerEvent>, watch::Receiver<bool>) {
        (self.sender.subscribe(), self.shutdown.subscribe())
    }

    pub fn active(&self) -> Vec<ActiveRun> {
        self.active
            .lock()
            .map(|a| a.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Ends every event stream, so the server can shut down (they never end by themselves).
    pub fn close(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl Default for Broadcaster {
    fn default() -> Self {
        Broadcaster::new()
    }
}

/// Publishes the progress of this process's transfers to DPs (whoever started them: the API,
/// the scheduler, a maintenance-mode change) twice a second while any changes.
pub async fn stream_transfers(events: Broadcaster) {
    let mut last: Vec<ActiveTransfer> = Vec::new();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tick.tick().await;
        let now = progress::active();
        for t in now.iter().filter(|t| !last.contains(t)) {
            events.publish(ServerEvent::TransferProgress {
                image: t.image.clone(),
                dp: t.dp.clone(),
                sent: t.sent,
                total: t.total,
                percent: percent(t.sent, t.total),
            });
        }
        last = now;
    }
}

/// Of an empty transfer: all of it.
pub fn percent(done: u64, total: u64) -> u8 {
    done.saturating_mul(100)
        .checked_div(total)
        .map_or(100, |p| p.min(100) as u8)
}
