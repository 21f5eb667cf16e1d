//! The web console: static files embedded in the binary (no CDN, nothing fetched at run
//! time), served at `/`. The files live in `assets/`; `index.html` answers `/`.

use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use include_dir::{include_dir, Dir};

use super::AppState;

static ASSETS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/src/server/console/assets");

pub fn router() -> Router<AppState> {
    // A fallback, not a `/{*path}` route: a catch-all route would take unknown API paths too.
    Router::new()
        .route("/", get(|| async { asset("index.html") }))
        .fallback(|uri: Uri| async move {
            let path = uri.path().trim_start_matches('/');
            if path.starts_with("api/") || path.to_ascii_lowercase().starts_with("adminservice/") {
                return super::problem::ApiError::not_found(
                    "no such API route: see /api/v1/openapi.json",
                )
                .into_response();
            }
            asset(path)
        })
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn asset(path: &str) -> Response {
    match ASSETS.get_file(path) {
        Some(file) => (
            [
                (header::CONTENT_TYPE, content_type(path)),
                // The console is the only script the page runs.
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'self'; frame-ancestors 'none'",
                ),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            file.contents(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}
