//! Operating system images: the list, import, details, applicable updates, schedules, servicing now, cancel, repair, runs, their logs and changes, distribution.

use super::prelude::*;

#[utoipa::path(get, path = "/api/v1/images", tag = "images", responses((status = 200, body = Vec<engine::ImageRow>)))]
pub async fn images(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(json(&read(&state, |s| engine::image_rows(&s.site)).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct ImportImage {
    /// The WIM's path on the server.
    #[schema(value_type = String)]
    path: PathBuf,
    /// `os-image` (default), `os-upgrade-package` or `boot-image`.
    kind: Option<String>,
    name: Option<String>,
    /// Paths of further nested WIMs inside the image (Winre.wim is always looked for).
    #[serde(default)]
    nested: Vec<String>,
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
            &body.nested,
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
    pub(super) continue_on_error: bool,
    /// Send the serviced image to its distribution points after a successful run.
    #[serde(default)]
    update_dps: bool,
    /// `all` (default: each update where its target says), `os` (the image's own indexes) or
    /// `winre` (its nested recovery images).
    target: Option<String>,
}

impl SelectionBody {
    pub(super) fn target(&self) -> Result<TargetFilter, ApiError> {
        match &self.target {
            Some(t) => t
                .parse()
                .map_err(|e: String| ApiError::bad_request(format!("target: {e}"))),
            None => Ok(TargetFilter::default()),
        }
    }

    pub(super) fn selection(&self) -> Result<Selection, ApiError> {
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
    let when = match (body.now, &body.at, &body.cron) {
        (true, None, None) => When::Now,
        (false, Some(at), None) => When::At(at.clone()),
        (false, None, Some(cron)) => When::Cron(cron.clone()),
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of now: true, at or cron",
            ))
        }
    };
    let timing = when.timing().map_err(|e| {
        let field = if matches!(when, When::Cron(_)) {
            "cron"
        } else {
            "at"
        };
        ApiError::bad_request(format!("{field}: {e}"))
    })?;
    let request = ScheduleRequest {
        updates: body.selection.selection()?,
        timing,
        continue_on_error: body.selection.continue_on_error,
        update_dps: body.selection.update_dps,
        target: body.selection.target()?,
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
    let target = body.target()?;
    let outcome = change(
        &state,
        &caller,
        "service now",
        format!("image {id}"),
        move |s| {
            engine::service(
                s,
                &id,
                selection,
                target,
                body.continue_on_error,
                body.update_dps,
            )
        },
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
    responses((status = 200, body = Vec<crate::server::api::LogLine>), (status = 404)))]
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
            Ok(crate::server::api::runlog::parse(&String::from_utf8_lossy(
                &text,
            )))
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
