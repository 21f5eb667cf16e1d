//! The handlers of `/api/v1`. Each parses, calls an adapter of `server::engine` on a blocking
//! thread, and answers JSON or a problem.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::stream::Stream;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{change, json, read, Body, Params};
use crate::distribution::{DpId, DpProperties};
use crate::library::UpdateId;
use crate::schedule::{timing, ScheduleRequest, Timing};
use crate::server::auth::{self, Caller};
use crate::server::problem::ApiError;
use crate::server::{accounts, audit, engine, AppState};
use crate::servicing::{KindFilter, Selection};

fn id_of<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, ApiError> {
    text.trim()
        .parse()
        .map_err(|_| ApiError::not_found(format!("no {what} {text:?}: ids are numbers")))
}

// ---- who is calling -------------------------------------------------------------------

#[utoipa::path(get, path = "/api/v1/whoami", tag = "session",
    responses((status = 200, body = Caller), (status = 401, body = crate::server::problem::Problem)))]
pub async fn whoami(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    Ok(json(&auth::identify(&state, &headers).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct SignIn {
    /// An account's API token (`ois site user add`).
    token: String,
}

#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = SignIn,
    responses((status = 200, description = "signed in; sets the ois_session cookie", body = Caller), (status = 401)))]
pub async fn sign_in(
    State(state): State<AppState>,
    Body(body): Body<SignIn>,
) -> Result<Response, ApiError> {
    let site = state.site.clone();
    let verified = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let db = site.database()?;
        Ok(accounts::verify(&db, body.token.trim())?)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    let Some((account, hash)) = verified else {
        tracing::warn!("site server: a sign-in with a token that matches no account was refused");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the token matches no account",
        )
        .hint("check the token `ois site user add` printed; an admin can issue a new one"));
    };
    let (session, csrf_token) = state.sessions.open(account.id, hash)?;
    let caller = Caller {
        name: account.name,
        role: account.role,
        via: auth::Via::Session,
        csrf_token: Some(csrf_token),
    };
    let cookie = format!(
        "{}={session}; Path=/; HttpOnly; SameSite=Strict{}",
        auth::SESSION_COOKIE,
        if state.tls { "; Secure" } else { "" }
    );
    Ok(([(header::SET_COOKIE, cookie)], axum::Json(caller)).into_response())
}

#[utoipa::path(delete, path = "/api/v1/session", tag = "session", responses((status = 204)))]
pub async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = auth::session_cookie(&headers) {
        state.sessions.close(&id);
    }
    let cookie = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        auth::SESSION_COOKIE
    );
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
}

pub async fn openapi() -> Response {
    json(&<super::ApiDoc as utoipa::OpenApi>::openapi())
}

// ---- events, dashboard, audit ---------------------------------------------------------

#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    responses((status = 200, description = "text/event-stream of ServerEvent", content_type = "text/event-stream")))]
pub async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (receiver, shutdown) = state.events.subscribe();
    let stream = futures_util::stream::unfold(
        (receiver, shutdown),
        |(mut receiver, mut shutdown)| async move {
            use tokio::sync::broadcast::error::RecvError;
            if *shutdown.borrow() {
                return None;
            }
            let event = tokio::select! {
                r = receiver.recv() => r,
                _ = shutdown.changed() => return None,
            };
            let sse = match event {
                Ok(e) => {
                    let name = serde_json::to_value(&e)
                        .ok()
                        .and_then(|v| v["event"].as_str().map(str::to_string))
                        .unwrap_or_else(|| "event".into());
                    Event::default()
                        .event(name)
                        .data(serde_json::to_string(&e).unwrap_or_default())
                }
                Err(RecvError::Lagged(n)) => Event::default()
                    .event("lagged")
                    .data(format!("{{\"event\":\"lagged\",\"missed\":{n}}}")),
                Err(RecvError::Closed) => return None,
            };
            Some((Ok(sse), (receiver, shutdown)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[derive(Deserialize)]
pub struct DashboardQuery {
    runs: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/dashboard", tag = "dashboard",
    params(("runs" = Option<usize>, Query, description = "runs per image (default 10)")),
    responses((status = 200, body = engine::Dashboard)))]
pub async fn dashboard(
    State(state): State<AppState>,
    Params(q): Params<DashboardQuery>,
) -> Result<Response, ApiError> {
    let last = q.runs.unwrap_or(10).clamp(1, 1000);
    Ok(json(
        &read(&state, move |s| engine::dashboard(s, last)).await?,
    ))
}

#[derive(Deserialize)]
pub struct AuditQuery {
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    params(("limit" = Option<u32>, Query, description = "entries (default 200)")),
    responses((status = 200, body = Vec<audit::AuditEntry>)))]
pub async fn audit(
    State(state): State<AppState>,
    Params(q): Params<AuditQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(200).clamp(1, 10_000);
    Ok(json(
        &read(&state, move |s| {
            Ok(audit::list(&s.site.database()?, limit)?)
        })
        .await?,
    ))
}

// ---- images ---------------------------------------------------------------------------

#[utoipa::path(get, path = "/api/v1/images", tag = "images", responses((status = 200, body = Vec<engine::ImageRow>)))]
pub async fn images(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(json(&read(&state, |s| engine::image_rows(&s.site)).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct ImportImage {
    /// The WIM's path on the server.
    #[schema(value_type = String)]
    path: PathBuf,
    /// `os-image` (default) or `os-upgrade-package`.
    kind: Option<String>,
    name: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/images", tag = "images", request_body = ImportImage,
    responses((status = 201, description = "{image, indexes}"), (status = 400), (status = 409)))]
pub async fn import_image(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(body): Body<ImportImage>,
) -> Result<Response, ApiError> {
    let target = body.path.display().to_string();
    let imported = change(&state, &caller, "import image", target, move |s| {
        engine::import_image(
            &s.site,
            &body.path,
            body.kind.as_deref().unwrap_or("os-image"),
            body.name.as_deref(),
        )
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(imported)).into_response())
}

#[utoipa::path(get, path = "/api/v1/images/{id}", tag = "images",
    params(("id" = String, Path, description = "image id or name")), responses((status = 200, description = "the image view"), (status = 404)))]
pub async fn image(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(json(
        &read(&state, move |s| engine::image_view(&s.site, &id)).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/images/{id}", tag = "images",
    params(("id" = String, Path, description = "image id or name")), responses((status = 204), (status = 404)))]
pub async fn remove_image(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    change(
        &state,
        &caller,
        "remove image",
        format!("image {id}"),
        move |s| engine::remove_image(&s.site, &id),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
pub struct UpdateQuery {
    filter: Option<String>,
    arch: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/images/{id}/applicable", tag = "images",
    params(("id" = String, Path, description = "image id or name"), ("filter" = Option<String>, Query), ("arch" = Option<String>, Query, description = "x86, x64, arm64 or all")),
    responses((status = 200, description = "update rows")))]
pub async fn applicable(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Params(q): Params<UpdateQuery>,
) -> Result<Response, ApiError> {
    Ok(json(
        &read(&state, move |s| {
            engine::applicable(
                &s.site,
                &id,
                q.filter.as_deref().filter(|f| !f.is_empty()),
                q.arch.as_deref(),
            )
        })
        .await?,
    ))
}

/// Which updates a run takes.
#[derive(Deserialize, ToSchema, Default)]
pub struct SelectionBody {
    #[serde(default)]
    updates: Vec<String>,
    #[serde(default)]
    all_applicable: bool,
    /// With all_applicable: `file`, `cbs` or `all` (default).
    kind: Option<String>,
    #[serde(default)]
    continue_on_error: bool,
    /// Send the serviced image to its distribution points after a successful run.
    #[serde(default)]
    update_dps: bool,
}

impl SelectionBody {
    fn selection(&self) -> Result<Selection, ApiError> {
        match (self.all_applicable, self.updates.is_empty()) {
            (true, true) => {
                let kind: KindFilter = match &self.kind {
                    Some(k) => k
                        .parse()
                        .map_err(|e: String| ApiError::bad_request(format!("kind: {e}")))?,
                    None => KindFilter::default(),
                };
                Ok(Selection::AllApplicable(kind))
            }
            (false, false) if self.kind.is_none() => Ok(Selection::Updates(
                self.updates
                    .iter()
                    .map(|u| UpdateId::from(u.as_str()))
                    .collect(),
            )),
            (false, false) => Err(ApiError::bad_request(
                "kind goes with all_applicable, not with updates",
            )),
            (true, false) => Err(ApiError::bad_request(
                "give either updates or all_applicable, not both",
            )),
            (false, true) => Err(ApiError::bad_request(
                "give updates (a list of ids) or all_applicable: true",
            )),
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct ScheduleBody {
    #[serde(flatten)]
    selection: SelectionBody,
    /// As soon as the scheduler runs.
    #[serde(default)]
    now: bool,
    /// Once: RFC 3339 or local `YYYY-MM-DD HH:MM`.
    at: Option<String>,
    /// Recurring: `sec min hour day-of-month month day-of-week`, or the classic five fields.
    cron: Option<String>,
}

#[utoipa::path(put, path = "/api/v1/images/{id}/schedule", tag = "images", request_body = ScheduleBody,
    params(("id" = String, Path, description = "image id or name")), responses((status = 200, description = "the schedule"), (status = 400), (status = 409)))]
pub async fn schedule(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Body(body): Body<ScheduleBody>,
) -> Result<Response, ApiError> {
    let timing = match (body.now, &body.at, &body.cron) {
        (true, None, None) => Timing::Once {
            at: timing::stamp(chrono::Utc::now()),
        },
        (false, Some(at), None) => Timing::Once {
            at: timing::stamp(
                timing::parse_at(at).map_err(|e| ApiError::bad_request(format!("at: {e}")))?,
            ),
        },
        (false, None, Some(cron)) => {
            timing::parse_cron(cron).map_err(|e| ApiError::bad_request(format!("cron: {e}")))?;
            Timing::Cron {
                expression: cron.trim().to_string(),
            }
        }
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of now: true, at or cron",
            ))
        }
    };
    let request = ScheduleRequest {
        updates: body.selection.selection()?,
        timing,
        continue_on_error: body.selection.continue_on_error,
        update_dps: body.selection.update_dps,
    };
    let saved = change(
        &state,
        &caller,
        "schedule updates",
        format!("image {id}"),
        move |s| engine::set_schedule(&s.site, &id, &request),
    )
    .await?;
    Ok(json(&saved))
}

#[utoipa::path(delete, path = "/api/v1/images/{id}/schedule", tag = "images",
    params(("id" = String, Path, description = "image id or name")), responses((status = 204), (status = 404), (status = 409)))]
pub async fn unschedule(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    change(
        &state,
        &caller,
        "remove schedule",
        format!("image {id}"),
        move |s| engine::unschedule(&s.site, &id),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/api/v1/images/{id}/service", tag = "images", request_body = SelectionBody,
    params(("id" = String, Path, description = "image id or name")), responses((status = 200, description = "the run's outcome, as `ois service --json`"), (status = 400), (status = 409)))]
pub async fn service(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Body(body): Body<SelectionBody>,
) -> Result<Response, ApiError> {
    let selection = body.selection()?;
    let outcome = change(
        &state,
        &caller,
        "service now",
        format!("image {id}"),
        move |s| engine::service(s, &id, selection, body.continue_on_error, body.update_dps),
    )
    .await?;
    Ok(json(&outcome))
}

#[derive(Deserialize, ToSchema, Default)]
pub struct CancelBody {
    /// Seconds to wait for the run to stop (default 30).
    wait_seconds: Option<u64>,
}

#[utoipa::path(post, path = "/api/v1/images/{id}/cancel", tag = "images", request_body = CancelBody,
    params(("id" = String, Path, description = "image id or name")), responses((status = 200, description = "how the run ended"), (status = 409)))]
pub async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Option<axum::Json<CancelBody>>,
) -> Result<Response, ApiError> {
    let wait = Duration::from_secs(body.and_then(|b| b.0.wait_seconds).unwrap_or(30).min(600));
    let outcome = change(
        &state,
        &caller,
        "cancel scheduled updates",
        format!("image {id}"),
        move |s| engine::cancel(&s.site, &id, wait),
    )
    .await?;
    Ok(json(&outcome))
}

#[utoipa::path(post, path = "/api/v1/images/{id}/repair", tag = "images",
    params(("id" = String, Path, description = "image id or name")), responses((status = 200, description = "{repaired, repair}"), (status = 409)))]
pub async fn repair(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let repair = change(
        &state,
        &caller,
        "leave provisioning mode",
        format!("image {id}"),
        move |s| engine::repair(&s.site, &id),
    )
    .await?;
    Ok(json(
        &serde_json::json!({"repaired": repair.is_some(), "repair": repair}),
    ))
}

#[utoipa::path(get, path = "/api/v1/images/{id}/runs", tag = "images",
    params(("id" = String, Path, description = "image id or name")), responses((status = 200, description = "run records, newest first")))]
pub async fn runs(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(json(
        &read(&state, move |s| engine::runs(&s.site, &id)).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/images/{id}/runs/{run}/log", tag = "images",
    params(("id" = String, Path, description = "image id or name"), ("run" = i64, Path)),
    responses((status = 200, body = Vec<super::LogLine>), (status = 404)))]
pub async fn run_log(
    State(state): State<AppState>,
    Path((id, run)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let run = id_of(&run, "run")?;
    Ok(json(
        &read(&state, move |s| {
            let path = engine::run_log_path(&s.site, &id, run)?;
            let text = std::fs::read(&path).map_err(|e| {
                ApiError::not_found(format!("the log of run {run} ({}): {e}", path.display()))
            })?;
            Ok(super::runlog::parse(&String::from_utf8_lossy(&text)))
        })
        .await?,
    ))
}

#[derive(Deserialize)]
pub struct ChangesQuery {
    run: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/images/{id}/changes", tag = "images",
    params(("id" = String, Path, description = "image id or name"), ("run" = Option<i64>, Query, description = "default: the image's last run that changed something")),
    responses((status = 200, description = "per index: each file added, replaced, deleted or renamed, with sizes, and totals per kind"), (status = 404)))]
pub async fn changes(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Params(q): Params<ChangesQuery>,
) -> Result<Response, ApiError> {
    let run = match q.run.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => Some(id_of(r, "run")?),
        None => None,
    };
    Ok(json(
        &read(&state, move |s| engine::image_changes(&s.site, &id, run)).await?,
    ))
}

#[derive(Deserialize, ToSchema, Default)]
pub struct DistributeBody {
    /// DP ids; default every DP that holds the image or is assigned to it.
    #[serde(default)]
    #[schema(value_type = Vec<i64>)]
    dps: Vec<DpId>,
}

#[utoipa::path(post, path = "/api/v1/images/{id}/distribute", tag = "images", request_body = DistributeBody,
    params(("id" = String, Path, description = "image id or name")), responses((status = 200, description = "one outcome per DP")))]
pub async fn distribute(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Option<axum::Json<DistributeBody>>,
) -> Result<Response, ApiError> {
    let dps = body.map(|b| b.0.dps).unwrap_or_default();
    let outcomes = change(
        &state,
        &caller,
        "distribute",
        format!("image {id}"),
        move |s| engine::distribute(s, &id, &dps),
    )
    .await?;
    Ok(json(&outcomes))
}

#[derive(Deserialize)]
pub struct LocateQuery {
    boundary_group: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/images/{id}/locate", tag = "images",
    params(("id" = String, Path, description = "image id or name"), ("boundary_group" = Option<String>, Query)), responses((status = 200, description = "content locations")))]
pub async fn locate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Params(q): Params<LocateQuery>,
) -> Result<Response, ApiError> {
    Ok(json(
        &read(&state, move |s| {
            engine::locate(&s.site, &id, q.boundary_group.as_deref())
        })
        .await?,
    ))
}

// ---- updates --------------------------------------------------------------------------

#[utoipa::path(get, path = "/api/v1/updates", tag = "updates",
    params(("filter" = Option<String>, Query), ("arch" = Option<String>, Query)), responses((status = 200, description = "update rows")))]
pub async fn updates(
    State(state): State<AppState>,
    Params(q): Params<UpdateQuery>,
) -> Result<Response, ApiError> {
    Ok(json(
        &read(&state, move |s| {
            engine::updates(
                &s.site,
                q.filter.as_deref().filter(|f| !f.is_empty()),
                q.arch.as_deref(),
            )
        })
        .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/updates/{id}", tag = "updates",
    params(("id" = String, Path, description = "update id, KB or CBS identity")), responses((status = 200), (status = 404)))]
pub async fn update(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    Ok(json(
        &read(&state, move |s| engine::update(&s.site, &key)).await?,
    ))
}

/// The largest upload taken (a cumulative update is a few GiB).
pub const UPLOAD_LIMIT: usize = 4 << 30;

#[derive(Deserialize)]
pub struct UploadQuery {
    name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct ImportPath {
    /// A package, Windows update file or folder on the server.
    #[schema(value_type = String)]
    path: PathBuf,
}

#[utoipa::path(post, path = "/api/v1/updates", tag = "updates",
    params(("name" = Option<String>, Query, description = "file name of an upload (.cab, .msu)")),
    request_body(content = ImportPath, description = "application/json {path} on the server, or the file itself as application/octet-stream"),
    responses((status = 200, description = "import outcomes"), (status = 400), (status = 409), (status = 413)))]
pub async fn import_updates(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Params(q): Params<UploadQuery>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if is_json {
        let bytes = axum::body::to_bytes(body, 64 << 10)
            .await
            .map_err(|e| ApiError::bad_request(format!("request body: {e}")))?;
        let ImportPath { path } = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("request body: {e}")))?;
        let target = path.display().to_string();
        let outcomes = change(&state, &caller, "import updates", target, move |s| {
            engine::import_updates(&s.site, &[path])
        })
        .await?;
        return Ok(json(&outcomes));
    }
    let name = q
        .name
        .filter(|n| !n.is_empty() && !n.contains(['/', '\\']) && !n.starts_with('.'))
        .ok_or_else(|| {
            ApiError::bad_request(
                "an upload needs ?name=FILE (a file name such as KB5040001.cab, no path)",
            )
        })?;
    // The upload lands inside the site (never in $TMPDIR), in a folder of its own, under its
    // own name (the importer tells packages apart by name and content); the folder goes when
    // the import is done.
    let incoming = engine::upload_dir(&state.site);
    let dir = std::fs::create_dir_all(&incoming)
        .and_then(|()| {
            tempfile::Builder::new()
                .prefix(&format!("upload-{}-", std::process::id()))
                .tempdir_in(&incoming)
        })
        .map_err(|e| ApiError::internal(format!("{}: {e}", incoming.display())))?;
    let file = dir.path().join(&name);
    receive(body, &file).await?;
    let target = format!("upload {name}");
    let outcomes = change(&state, &caller, "import updates", target, move |s| {
        let outcomes = engine::import_updates(&s.site, std::slice::from_ref(&file))
            .map_err(|e| as_uploaded(e, dir.path()));
        drop(dir);
        outcomes
    })
    .await?;
    Ok(json(&outcomes))
}

/// The importer names the file where the server kept it (a temporary folder in the content
/// library); the user knows it by the name they uploaded, which is its name in that folder.
fn as_uploaded(mut e: ApiError, folder: &std::path::Path) -> ApiError {
    let prefix = format!("{}{}", folder.display(), std::path::MAIN_SEPARATOR);
    e.detail = e.detail.replace(&prefix, "");
    e.hint = e.hint.map(|h| h.replace(&prefix, ""));
    e
}

/// Streams a request body into `file`, refusing more than [`UPLOAD_LIMIT`] bytes.
async fn receive(body: axum::body::Body, file: &std::path::Path) -> Result<(), ApiError> {
    use futures_util::StreamExt;
    use std::io::Write;
    let io = |e: std::io::Error| ApiError::internal(format!("{}: {e}", file.display()));
    let mut out = std::fs::File::create(file).map_err(io)?;
    let mut stream = body.into_data_stream();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("upload interrupted: {e}")))?;
        total += chunk.len();
        if total > UPLOAD_LIMIT {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!("the upload is larger than {UPLOAD_LIMIT} bytes"),
            )
            .hint("import a file this large by its path on the server: POST {\"path\": ...}"));
        }
        // Chunks are small (tens of KiB): writing them here costs less than a thread hop.
        tokio::task::block_in_place(|| out.write_all(&chunk)).map_err(io)?;
    }
    tokio::task::block_in_place(|| out.sync_all()).map_err(io)
}

// ---- distribution points --------------------------------------------------------------

#[utoipa::path(get, path = "/api/v1/dps", tag = "dps", responses((status = 200, description = "DPs with their id and Maintenance mode")))]
pub async fn dps(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(json(&read(&state, |s| engine::dps(&s.site)).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct NewDp {
    nal_path: String,
    /// Directory or mounted share (absolute path), or http(s)://HOST/PATH (WebDAV).
    target: String,
    #[serde(flatten)]
    props: DpChanges,
}

#[derive(Deserialize, ToSchema, Default)]
pub struct DpChanges {
    target: Option<String>,
    description: Option<String>,
    #[serde(default, alias = "boundary_groups")]
    add_boundary_groups: Vec<String>,
    #[serde(default)]
    remove_boundary_groups: Vec<String>,
    #[serde(default)]
    settings: BTreeMap<String, String>,
    /// Credentials: stored, never shown again (only their names).
    #[serde(default)]
    secrets: BTreeMap<String, String>,
}

impl DpChanges {
    fn properties(self, target: Option<String>) -> DpProperties {
        DpProperties {
            target: target.or(self.target),
            description: self.description,
            add_boundary_groups: self.add_boundary_groups,
            remove_boundary_groups: self.remove_boundary_groups,
            settings: self.settings.into_iter().collect(),
            secrets: self.secrets.into_iter().collect(),
        }
    }
}

#[utoipa::path(post, path = "/api/v1/dps", tag = "dps", request_body = NewDp,
    responses((status = 201, description = "the DP"), (status = 400), (status = 409)))]
pub async fn add_dp(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(body): Body<NewDp>,
) -> Result<Response, ApiError> {
    let nal = body.nal_path.clone();
    let props = body.props.properties(Some(body.target));
    let dp = change(
        &state,
        &caller,
        "add distribution point",
        nal.clone(),
        move |s| engine::dp_add(&s.site, &nal, &props),
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(dp)).into_response())
}

#[utoipa::path(get, path = "/api/v1/dps/{id}", tag = "dps",
    params(("id" = i64, Path)), responses((status = 200, description = "{dp, distributions}"), (status = 404)))]
pub async fn dp(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = id_of(&id, "distribution point")?;
    Ok(json(
        &read(&state, move |s| engine::dp_show(&s.site, id)).await?,
    ))
}

#[utoipa::path(patch, path = "/api/v1/dps/{id}", tag = "dps", request_body = DpChanges,
    params(("id" = i64, Path)), responses((status = 200, description = "the DP"), (status = 409, description = "in maintenance mode: read-only")))]
pub async fn set_dp(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Body(body): Body<DpChanges>,
) -> Result<Response, ApiError> {
    let id = id_of(&id, "distribution point")?;
    let props = body.properties(None);
    let dp = change(
        &state,
        &caller,
        "change distribution point",
        format!("dp {id}"),
        move |s| engine::dp_set(&s.site, id, &props),
    )
    .await?;
    Ok(json(&dp))
}

#[utoipa::path(delete, path = "/api/v1/dps/{id}", tag = "dps",
    params(("id" = i64, Path)), responses((status = 204), (status = 404)))]
pub async fn remove_dp(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = id_of(&id, "distribution point")?;
    change(
        &state,
        &caller,
        "remove distribution point",
        format!("dp {id}"),
        move |s| engine::dp_remove(&s.site, id),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct ModeBody {
    /// 1 enables maintenance mode, 0 disables it.
    mode: serde_json::Value,
}

#[utoipa::path(put, path = "/api/v1/dps/{id}/maintenance-mode", tag = "dps", request_body = ModeBody,
    params(("id" = i64, Path)), responses((status = 200, description = "{return_value, dp, mode, changed, unserved_images, sent}"), (status = 400), (status = 404)))]
pub async fn maintenance_mode(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Body(body): Body<ModeBody>,
) -> Result<Response, ApiError> {
    let id = id_of(&id, "distribution point")?;
    let mode = body.mode.as_u64().filter(|m| *m <= 1).ok_or_else(|| {
        ApiError::bad_request(format!(
            "invalid mode {}: use 1 to enable maintenance mode, 0 to disable it",
            body.mode
        ))
    })? as u32;
    let target = format!("dp {id} mode {mode}");
    let set = change(&state, &caller, "set maintenance mode", target, move |s| {
        let nal = engine::dp(&s.site, id)?.nal_path;
        Ok(engine::maintenance_mode(&s.site, &nal, &mode.to_string())?)
    })
    .await?;
    Ok(json(&serde_json::json!({
        "return_value": set.return_value,
        "dp": set.change.dp,
        "mode": set.change.mode,
        "changed": set.change.changed,
        "unserved_images": set.change.unserved_images,
        "sent": set.sent,
        "send_error": set.send_error,
    })))
}

#[utoipa::path(post, path = "/api/v1/dps/{id}/validate", tag = "dps",
    params(("id" = i64, Path)), responses((status = 200, description = "one result per image version")))]
pub async fn validate_dp(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = id_of(&id, "distribution point")?;
    let results = change(
        &state,
        &caller,
        "validate content",
        format!("dp {id}"),
        move |s| engine::validate(&s.site, Some(id)),
    )
    .await?;
    Ok(json(&results))
}

#[utoipa::path(post, path = "/api/v1/dps/validate", tag = "dps", responses((status = 200, description = "one result per DP and image version")))]
pub async fn validate_all(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let results = change(
        &state,
        &caller,
        "validate content",
        "every dp".into(),
        |s| engine::validate(&s.site, None),
    )
    .await?;
    Ok(json(&results))
}

#[utoipa::path(post, path = "/api/v1/dps/retry", tag = "dps", responses((status = 200, description = "one outcome per distribution sent")))]
pub async fn retry(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let outcomes = change(
        &state,
        &caller,
        "retry distributions",
        "every dp".into(),
        |s| engine::retry(&s.site),
    )
    .await?;
    Ok(json(&outcomes))
}
