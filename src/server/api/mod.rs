//! The JSON API (`/api/v1`): every engine operation, for the console and for scripts. The
//! route list is in `README-routes.md` beside this file and in the OpenAPI document served at
//! `/api/v1/openapi.json`, generated from the handlers below.

mod handlers;
mod runlog;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware;
use axum::routing::{get, post, put};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::OpenApi;

use super::auth::{self, Caller};
use super::problem::ApiError;
use super::AppState;

pub use runlog::LogLine;

pub fn router(state: AppState) -> Router<AppState> {
    use handlers::*;
    let protected = Router::new()
        .route("/events", get(events))
        .route("/dashboard", get(dashboard))
        .route("/audit", get(audit))
        .route("/images", get(images).post(import_image))
        .route("/images/{id}", get(image).delete(remove_image))
        .route("/images/{id}/applicable", get(applicable))
        .route("/images/{id}/schedule", put(schedule).delete(unschedule))
        .route("/images/{id}/service", post(service))
        .route("/images/{id}/cancel", post(cancel))
        .route("/images/{id}/repair", post(repair))
        .route("/images/{id}/runs", get(runs))
        .route("/images/{id}/runs/{run}/log", get(run_log))
        .route("/images/{id}/changes", get(changes))
        .route("/images/{id}/distribute", post(distribute))
        .route("/images/{id}/locate", get(locate))
        .route("/media", get(media_list))
        .route("/media/{name}", get(media))
        .route("/media/{name}/service", post(service_media))
        .route("/updates", get(updates).post(import_updates))
        .route("/updates/{id}", get(update))
        .route("/dps", get(dps).post(add_dp))
        .route("/dps/validate", post(validate_all))
        .route("/dps/retry", post(retry))
        .route("/dps/{id}", get(dp).patch(set_dp).delete(remove_dp))
        .route("/dps/{id}/maintenance-mode", put(maintenance_mode))
        .route("/dps/{id}/validate", post(validate_dp))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require));
    // A pull DP's agent may call these with a dp-agent account, and no other.
    let pull = Router::new()
        .route("/pull/register", post(pull_register))
        .route("/pull/{dp}/assignments", get(pull_assignments))
        .route(
            "/pull/{dp}/images/{image}/versions/{sha256}/chunks",
            get(pull_chunks),
        )
        .route(
            "/pull/{dp}/images/{image}/versions/{sha256}/content",
            get(pull_content),
        )
        .route("/pull/{dp}/report", post(pull_report))
        .route_layer(middleware::from_fn_with_state(state, auth::require_pull));
    Router::new()
        .route("/whoami", get(whoami))
        .route("/session", post(sign_in).delete(sign_out))
        .route("/openapi.json", get(openapi))
        .merge(protected)
        .merge(pull)
        .fallback(|| async { ApiError::not_found("no such API route: see /api/v1/openapi.json") })
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ois site server",
        description = "Offline servicing of Windows images: images, updates, schedules, distribution points. Errors are application/problem+json with a hint."
    ),
    paths(
        handlers::whoami,
        handlers::sign_in,
        handlers::sign_out,
        handlers::events,
        handlers::dashboard,
        handlers::audit,
        handlers::images,
        handlers::import_image,
        handlers::image,
        handlers::remove_image,
        handlers::applicable,
        handlers::schedule,
        handlers::unschedule,
        handlers::service,
        handlers::cancel,
        handlers::repair,
        handlers::runs,
        handlers::run_log,
        handlers::changes,
        handlers::distribute,
        handlers::locate,
        handlers::media_list,
        handlers::media,
        handlers::service_media,
        handlers::updates,
        handlers::import_updates,
        handlers::update,
        handlers::dps,
        handlers::add_dp,
        handlers::dp,
        handlers::set_dp,
        handlers::remove_dp,
        handlers::maintenance_mode,
        handlers::validate_dp,
        handlers::validate_all,
        handlers::retry,
        handlers::pull_register,
        handlers::pull_assignments,
        handlers::pull_chunks,
        handlers::pull_content,
        handlers::pull_report,
        super::adminservice::dp_info,
        super::adminservice::set_dp_maintenance_mode,
    ),
    components(schemas(super::problem::Problem, Caller, super::events::ServerEvent))
)]
pub struct ApiDoc;

/// A JSON body whose rejection is a problem document, not axum's plain text.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|axum::Json(v)| Body(v))
            .map_err(|e| ApiError::bad_request(format!("request body: {}", e.body_text())))
    }
}

/// Query parameters whose rejection is a problem document.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Params(v))
            .map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))
    }
}

/// Runs read-only engine work on a blocking thread.
pub(crate) async fn read<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || work(&state))
        .await
        .map_err(|e| ApiError::internal(format!("the operation's thread failed: {e}")))?
}

/// Runs a change on a blocking thread (long ones do not hold up the server) and records it in
/// the audit log: who, what, on what, and how it ended.
pub(crate) async fn change<T: Send + 'static>(
    state: &AppState,
    caller: &Caller,
    action: &'static str,
    target: String,
    work: impl FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let who = caller.name.clone();
    read(state, move |state| {
        let result = work(state);
        let error = result.as_ref().err().map(|e| e.detail.clone());
        let recorded = state
            .site
            .database()
            .and_then(|db| super::audit::record(&db, &who, action, &target, error.as_deref()));
        if let Err(e) = recorded {
            tracing::error!("audit: cannot record that {who} {action} {target}: {e}");
        }
        result
    })
    .await
}

/// A JSON answer.
pub(crate) fn json<T: Serialize>(value: &T) -> axum::response::Response {
    axum::Json(value).into_response()
}

use axum::response::IntoResponse;
