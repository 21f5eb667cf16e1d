//! `ois dp agent`: the service on a pull DP. It registers with the site under its NAL path,
//! polls for the image versions assigned to it (backing off while the site is unreachable),
//! installs each new version as a delta against the one it holds ([`fetch`]), reports what it
//! did, re-hashes its content when the site asks, and serves what it holds to clients over
//! HTTP with range requests ([`serve`]).
//!
//! Under its root: `ois/images/<image id>/<sha256>.wim` (and `.sha256`), the layout push DPs
//! have, which is all it serves; `.ois-agent/partial/` holds downloads in progress with their
//! journals, `.ois-agent/chunks/` the chunk indexes of what it holds.

mod fetch;
mod serve;
mod site;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::distribution::pull::{Assignment, Report, ValidationReport, VersionReport};
use crate::distribution::DpId;
use crate::image::ImageId;

pub use fetch::held_versions;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("ois dp agent --listen {listen}: cannot listen there: {source}")]
    Bind {
        listen: SocketAddr,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {reason} (is --site-url right and the site server running?)")]
    Site { what: String, reason: String },
    #[error("{what}: the site answered {status}: {detail}")]
    Refused {
        what: String,
        status: u16,
        detail: String,
    },
    /// The site moved on to a newer version: start over with it.
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    Corrupt(String),
    #[error("the agent's HTTP server: {0}")]
    Runtime(String),
}

/// What `ois dp agent` is given.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub site_url: String,
    pub token: String,
    pub root: PathBuf,
    pub listen: SocketAddr,
    pub nal_path: String,
    /// The URL clients reach this agent at; by default `http://` and the address it listens on.
    pub advertise: Option<String>,
    /// Between polls of the site.
    pub poll: Duration,
    /// Fetch at most this many bytes a second.
    pub max_rate: Option<u64>,
}

/// Where things live under the agent's root.
pub struct Paths {
    root: PathBuf,
}

impl Paths {
    pub fn new(root: PathBuf) -> Paths {
        Paths { root }
    }

    /// What clients are served: the root's `ois/`.
    pub fn served(&self) -> PathBuf {
        self.root.join("ois")
    }

    pub fn image_dir(&self, image: ImageId) -> PathBuf {
        self.served().join("images").join(image.to_string())
    }

    pub fn partial_dir(&self, image: ImageId) -> PathBuf {
        self.root
            .join(".ois-agent")
            .join("partial")
            .join(image.to_string())
    }

    pub fn chunk_cache(&self, image: ImageId, sha256: &str) -> PathBuf {
        self.root
            .join(".ois-agent")
            .join("chunks")
            .join(image.to_string())
            .join(format!("{sha256}.chunks"))
    }
}

/// Waits between polls: the poll interval, and after errors 2, 4, 8 … seconds up to five
/// minutes, so an unreachable site is not hammered.
struct Backoff {
    poll: Duration,
    failures: u32,
}

impl Backoff {
    fn next(&mut self, ok: bool) -> Duration {
        if ok {
            self.failures = 0;
            return self.poll;
        }
        self.failures += 1;
        Duration::from_secs(1u64 << self.failures.min(8)).min(Duration::from_secs(300))
    }
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let until = std::time::Instant::now() + d;
    while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the agent until `stop` is set.
pub fn run(options: &AgentOptions, stop: Arc<AtomicBool>) -> Result<(), AgentError> {
    let paths = Paths::new(options.root.clone());
    let served = paths.served();
    std::fs::create_dir_all(&served).map_err(|source| AgentError::Io {
        path: served.clone(),
        source,
    })?;
    let addr = serve::start(options.listen, served, stop.clone())?;
    let url = options
        .advertise
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    tracing::info!("pull DP agent serving {} at {url}", options.root.display());
    // Tests and service managers read the address (a port of 0 picks a free one).
    println!("serving on {url}");
    let site = site::SiteClient::new(&options.site_url, &options.token)?;
    let mut agent = Agent {
        site,
        paths,
        options,
        url,
        dp: None,
        throttle: fetch::Throttle::new(options.max_rate),
    };
    let mut backoff = Backoff {
        poll: options.poll,
        failures: 0,
    };
    while !stop.load(Ordering::Relaxed) {
        let ok = match agent.cycle(&stop) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("pull DP agent: {e}");
                false
            }
        };
        sleep_unless_stopped(backoff.next(ok), &stop);
    }
    tracing::info!("pull DP agent stopped");
    Ok(())
}

struct Agent<'a> {
    site: site::SiteClient,
    paths: Paths,
    options: &'a AgentOptions,
    url: String,
    dp: Option<DpId>,
    throttle: fetch::Throttle,
}

impl Agent<'_> {
    fn report_version(&self, dp: DpId, v: VersionReport) -> Result<(), AgentError> {
        self.site.report(
            dp,
            &Report {
                versions: vec![v],
                validations: None,
            },
        )
    }

    fn cycle(&mut self, stop: &AtomicBool) -> Result<(), AgentError> {
        let dp = match self.dp {
            Some(dp) => dp,
            None => {
                let dp = self.site.register(&self.options.nal_path, &self.url)?;
                tracing::info!(
                    "registered with {} as pull DP {} (id {dp})",
                    self.options.site_url,
                    self.options.nal_path
                );
                self.dp = Some(dp);
                dp
            }
        };
        let assigned = match self.site.assignments(dp) {
            Err(AgentError::Refused { status: 404, .. }) => {
                // Removed on the site: register again.
                self.dp = None;
                return Ok(());
            }
            other => other?,
        };
        if assigned.validate {
            self.validate(dp)?;
        }
        for a in &assigned.assignments {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            self.hold(dp, a)?;
        }
        Ok(())
    }

    /// Makes sure the agent holds version `a`, and that the site knows it.
    fn hold(&mut self, dp: DpId, a: &Assignment) -> Result<(), AgentError> {
        let held = self
            .paths
            .image_dir(a.image_id)
            .join(format!("{}.wim", a.sha256));
        let installed = |bytes| VersionReport {
            image_id: a.image_id,
            sha256: a.sha256.clone(),
            status: "Installed".into(),
            error: None,
            bytes_fetched: bytes,
        };
        if held.exists() {
            if a.status.as_deref() != Some("Installed") {
                self.report_version(dp, installed(None))?;
            }
            return Ok(());
        }
        tracing::info!(
            "fetching image {} version {} ({} bytes) as a delta",
            a.image,
            a.sha256,
            a.size_bytes
        );
        self.report_version(
            dp,
            VersionReport {
                status: "In progress".into(),
                ..installed(None)
            },
        )?;
        match fetch::install(&self.site, dp, &self.paths, a, &mut self.throttle) {
            Ok(f) => {
                tracing::info!(
                    "image {} version {} is in place: {} bytes fetched, {} reused",
                    a.image,
                    a.sha256,
                    f.bytes,
                    f.reused
                );
                self.report_version(dp, installed(Some(f.bytes)))
            }
            Err(AgentError::Gone(why)) => {
                // Not a failure: the next poll names the version to fetch.
                tracing::info!("image {}: {why}", a.image);
                Ok(())
            }
            Err(e) => {
                let _ = self.report_version(
                    dp,
                    VersionReport {
                        status: "Failed".into(),
                        error: Some(e.to_string()),
                        ..installed(None)
                    },
                );
                Err(e)
            }
        }
    }

    /// Re-hashes every version held and reports the results.
    fn validate(&self, dp: DpId) -> Result<(), AgentError> {
        let mut validations = Vec::new();
        let images = std::fs::read_dir(self.paths.served().join("images"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<ImageId>().ok());
        for image in images {
            for (sha, path) in held_versions(&self.paths, image) {
                let problem = fetch::validate(&path, &sha);
                if let Some(p) = &problem {
                    // Clients must not get damaged content: it goes, and the next poll
                    // fetches the version again.
                    tracing::warn!("content validation: {p}: removing it");
                    if let Err(e) = std::fs::remove_file(&path) {
                        tracing::warn!("cannot remove {}: {e}", path.display());
                    }
                }
                validations.push(ValidationReport {
                    image_id: image,
                    sha256: sha,
                    ok: problem.is_none(),
                    problem,
                });
            }
        }
        tracing::info!(
            "content validation: {} version(s) re-hashed",
            validations.len()
        );
        self.site.report(
            dp,
            &Report {
                versions: Vec::new(),
                validations: Some(validations),
            },
        )
    }
}
