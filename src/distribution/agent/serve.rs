//! The agent's HTTP server: what it holds, to clients, with range requests (tower-http's
//! `ServeDir`). Only `ois/` under the root is served: partial downloads live outside it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::AgentError;

/// Starts serving `dir` at `/ois/` on its own thread; returns the address it listens on.
pub fn start(
    listen: SocketAddr,
    dir: PathBuf,
    stop: Arc<AtomicBool>,
) -> Result<SocketAddr, AgentError> {
    let listener = std::net::TcpListener::bind(listen)
        .map_err(|source| AgentError::Bind { listen, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| AgentError::Bind { listen, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| AgentError::Bind { listen, source })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ois-agent-http")
        .enable_all()
        .build()
        .map_err(|e| AgentError::Runtime(e.to_string()))?;
    std::thread::Builder::new()
        .name("ois-agent-server".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("pull DP agent: cannot serve on {addr}: {e}");
                        return;
                    }
                };
                let app = axum::Router::new()
                    .nest_service("/ois", tower_http::services::ServeDir::new(dir));
                let shutdown = async move {
                    while !stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                };
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    tracing::error!("pull DP agent: the HTTP server stopped: {e}");
                }
            })
        })
        .map_err(|e| AgentError::Runtime(e.to_string()))?;
    Ok(addr)
}
