//! The site server (`ois serve`): a JSON API over the engine (`/api/v1`), routes shaped like
//! Configuration Manager's AdminService (`/AdminService`), server-sent events with live
//! progress, and the web console (embedded static files at `/`). Optionally the scheduler runs
//! in the same process, so one service unit runs a whole site.
//!
//! Security: loopback by default; any other address needs TLS (`[server]` in site.toml) and
//! accounts (`ois site user add`). See [`auth`] for who may do what.

pub mod accounts;
mod adminservice;
pub mod api;
pub mod audit;
mod auth;
mod console;
mod engine;
mod events;
mod problem;
mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::Router;

pub use accounts::{Account, AccountError, Role};
pub use events::ServerEvent;

use crate::site::{Migrations, Site, SiteError};

/// The server's tables: accounts and the audit log.
pub static MIGRATIONS: Migrations = Migrations {
    module: "server",
    steps: &["CREATE TABLE server_accounts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            role TEXT NOT NULL,
            token_hash TEXT NOT NULL,
            created_at TEXT NOT NULL);
        CREATE TABLE server_audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            who TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            result TEXT NOT NULL,
            detail TEXT);"],
};

/// The default address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8530";

#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub listen: SocketAddr,
    /// Run the scheduler in this process too.
    pub scheduler: bool,
    /// Images the in-process scheduler services at once.
    pub jobs: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("ois serve --listen {listen}: a non-loopback address needs TLS: set tls_certificate and tls_key under [server] in {} (PEM files), or listen on 127.0.0.1", config.display())]
    TlsRequired {
        listen: SocketAddr,
        config: std::path::PathBuf,
    },
    #[error("ois serve --listen {0}: a non-loopback address needs accounts, and the site has none: add one with `ois site user add NAME --role admin`")]
    NoAccounts(SocketAddr),
    #[error("TLS certificate or key ({}, {}): {reason}", certificate.display(), key.display())]
    Tls {
        certificate: std::path::PathBuf,
        key: std::path::PathBuf,
        reason: String,
    },
    #[error("cannot listen on {listen}: {source}")]
    Bind {
        listen: SocketAddr,
        source: std::io::Error,
    },
    #[error("the server stopped: {0}")]
    Io(#[from] std::io::Error),
    #[error("the in-process scheduler failed: {0}")]
    Scheduler(String),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Site(#[from] SiteError),
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub(crate) site: Site,
    /// Live progress of runs and transfers, for `GET /api/v1/events`.
    pub(crate) events: events::Broadcaster,
    /// Sessions of the console (cookie), held in memory: a restart logs everyone out.
    pub(crate) sessions: auth::Sessions,
    /// Whether requests may come from outside this machine (then accounts are required).
    pub(crate) loopback: bool,
    /// Cookies are marked `Secure` when the server speaks TLS.
    pub(crate) tls: bool,
    /// Set on SIGINT/SIGTERM: runs started through the server stop at their next safe point.
    pub(crate) stop: Arc<AtomicBool>,
}

impl AppState {
    pub(crate) fn new(site: Site, loopback: bool, tls: bool) -> AppState {
        AppState {
            site,
            events: events::Broadcaster::new(),
            sessions: auth::Sessions::default(),
            loopback,
            tls,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Every route: the API, the AdminService routes and the console.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .nest("/api/v1", api::router(state.clone()))
        .nest(adminservice::PREFIX, adminservice::router(state.clone()))
        .merge(console::router())
        .with_state(state);
    // Routing is case-sensitive; AdminService route names are not. The path is rewritten
    // before routing, which a layer on the routes themselves would be too late for.
    Router::new().fallback_service(tower::ServiceExt::map_request(
        routes,
        lowercase_adminservice,
    ))
}

fn lowercase_adminservice(mut request: axum::extract::Request) -> axum::extract::Request {
    let uri = request.uri();
    let path = uri.path();
    let is_adminservice = path
        .get(..adminservice::PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(adminservice::PREFIX));
    if is_adminservice && path.bytes().any(|b| b.is_ascii_uppercase()) {
        let lowered = match uri.query() {
            Some(q) => format!("{}?{q}", path.to_ascii_lowercase()),
            None => path.to_ascii_lowercase(),
        };
        if let Ok(new) = lowered.parse() {
            *request.uri_mut() = new;
        }
    }
    request
}

/// Serves the site until SIGINT or SIGTERM. With `options.scheduler`, the scheduler runs in
/// this process; on the signal it claims nothing more, its active runs and those started
/// through the API are canceled at their next safe point (the original stays byte-identical,
/// the run is recorded Canceled), and the server returns once they have ended.
pub fn serve(site_root: &std::path::Path, options: ServerOptions) -> Result<(), ServerError> {
    let site = Site::open(site_root, crate::SCHEMA)?;
    let loopback = options.listen.ip().is_loopback();
    let tls = if loopback {
        None
    } else {
        let settings = &site.config().server;
        let (Some(certificate), Some(key)) = (&settings.tls_certificate, &settings.tls_key) else {
            return Err(ServerError::TlsRequired {
                listen: options.listen,
                config: site.root().join(crate::site::CONFIG_FILE),
            });
        };
        if accounts::list(&site.database()?)?.is_empty() {
            return Err(ServerError::NoAccounts(options.listen));
        }
        Some((site.root().join(certificate), site.root().join(key)))
    };
    let state = AppState::new(site.clone(), loopback, tls.is_some());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let scheduler = options.scheduler.then(|| {
        let state = state.clone();
        let jobs = options.jobs;
        std::thread::spawn(move || engine::run_scheduler(&state, jobs))
    });
    let served = runtime.block_on(async {
        tokio::spawn(events::stream_transfers(state.events.clone()));
        let app = router(state.clone());
        let shutdown = {
            let state = state.clone();
            async move {
                wait_for_signal().await;
                tracing::info!("site server stopping: runs in progress are canceled");
                state.stop.store(true, Ordering::Relaxed);
                state.events.close();
            }
        };
        match tls {
            None => {
                let listener = tokio::net::TcpListener::bind(options.listen)
                    .await
                    .map_err(|source| ServerError::Bind {
                        listen: options.listen,
                        source,
                    })?;
                announce(&site, &listener.local_addr()?, false, options.scheduler);
                axum::serve(listener, app.into_make_service())
                    .with_graceful_shutdown(shutdown)
                    .await?;
            }
            Some((certificate, key)) => {
                let (site, scheduler) = (site.clone(), options.scheduler);
                tls::serve(
                    options.listen,
                    &certificate,
                    &key,
                    app,
                    shutdown,
                    move |addr| announce(&site, addr, true, scheduler),
                )
                .await?;
            }
        }
        Ok::<(), ServerError>(())
    });
    // Whatever ended the server, the scheduler and the runs must stop too.
    state.stop.store(true, Ordering::Relaxed);
    let scheduled = scheduler.map(|h| {
        h.join()
            .unwrap_or_else(|_| Err("the scheduler thread panicked".into()))
    });
    // Runs started through the API are on blocking threads: the runtime waits for them.
    runtime.shutdown_timeout(std::time::Duration::from_secs(600));
    tracing::info!("site server stopped");
    served?;
    if let Some(Err(e)) = scheduled {
        return Err(ServerError::Scheduler(e));
    }
    Ok(())
}

fn announce(site: &Site, addr: &SocketAddr, tls: bool, scheduler: bool) {
    let scheme = if tls { "https" } else { "http" };
    tracing::info!(
        "site server for {} listening on {scheme}://{addr}{}",
        site.root().display(),
        if scheduler { " with the scheduler" } else { "" }
    );
    // Tests and service managers read the address (a port of 0 picks a free one).
    println!("listening on {scheme}://{addr}");
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("cannot handle SIGTERM: {e}");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        // A Windows service's stop control raises the platform's stop flag (`ois
        // service-host`); Ctrl+C raises it too once the console handler is set.
        let stop = crate::platform::stop_requested();
        let stopped = async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = stopped => {}
        }
    }
}
