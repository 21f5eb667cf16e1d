//! Distribution points by id: list, add, show, change, remove, maintenance mode, validation, retries.

use super::prelude::*;

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
