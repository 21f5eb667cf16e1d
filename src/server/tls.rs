//! HTTPS with rustls, for any address other than loopback.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::Router;

use super::ServerError;

/// Serves `app` over TLS until `shutdown` completes; `announce` gets the bound address.
pub async fn serve(
    listen: SocketAddr,
    certificate: &Path,
    key: &Path,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    announce: impl FnOnce(&SocketAddr) + Send + 'static,
) -> Result<(), ServerError> {
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(certificate, key)
        .await
        .map_err(|e| ServerError::Tls {
            certificate: certificate.to_path_buf(),
            key: key.to_path_buf(),
            reason: e.to_string(),
        })?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let listening = handle.clone();
    tokio::spawn(async move {
        if let Some(addr) = listening.listening().await {
            announce(&addr);
        }
    });
    axum_server::bind_rustls(listen, config)
        .handle(handle)
        .serve(app.into_make_service())
        .await
        .map_err(|source| ServerError::Bind { listen, source })
}
