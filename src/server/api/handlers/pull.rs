//! The pull DP agent's API (`/api/v1/pull/…`): registration, assignments, chunk indexes,
//! content by byte range, and reports. The agent authenticates with an account's API token:
//! an admin's, or better a dp-agent account's, which acts only for the DP it registered.

use super::prelude::*;
use crate::distribution::pull::{self, Report, ServeRefusal};
use crate::image::ImageId;
use crate::server::accounts::Role;
use crate::site::Site;

/// The dp-agent account calling, if the caller is one (admins act for any DP).
fn agent_of(caller: &Caller) -> Option<String> {
    (caller.role == Role::DpAgent).then(|| caller.name.clone())
}

/// Refuses a dp-agent account acting for a DP it did not register or claim.
fn check_dp(site: &Site, agent: Option<&str>, dp: DpId) -> Result<(), ApiError> {
    if let Some(account) = agent {
        let db = site.database()?;
        pull::check_agent(&db, dp, account)?;
    }
    Ok(())
}

/// Most bytes one range request may ask for: the agent asks for a few MiB at a time.
const MAX_RANGE: u64 = 64 << 20;

fn refusal(e: ServeRefusal) -> ApiError {
    match e {
        ServeRefusal::Gone { .. } => ApiError::new(StatusCode::GONE, "gone", e.to_string())
            .hint("ask for the assignments again: they name the current version"),
        ServeRefusal::Maintenance(_) => {
            ApiError::new(StatusCode::CONFLICT, "maintenance-mode", e.to_string())
                .hint("wait until the DP leaves maintenance mode (mode 0)")
        }
        ServeRefusal::Distribution(e) => e.into(),
    }
}

#[derive(Deserialize, ToSchema)]
pub struct Registration {
    nal_path: String,
    /// Where the agent serves clients: http(s)://HOST:PORT.
    url: String,
    agent_version: String,
}

#[utoipa::path(post, path = "/api/v1/pull/register", tag = "pull", request_body = Registration,
    responses((status = 200, description = "{dp_id, dp}"), (status = 400), (status = 409)))]
pub async fn pull_register(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(body): Body<Registration>,
) -> Result<Response, ApiError> {
    let target = body.nal_path.clone();
    let agent = agent_of(&caller);
    let dp = change(
        &state,
        &caller,
        "register pull distribution point",
        target,
        move |s| {
            Ok(pull::register(
                &s.site,
                &body.nal_path,
                &body.url,
                &body.agent_version,
                agent.as_deref(),
            )?)
        },
    )
    .await?;
    Ok(json(&serde_json::json!({ "dp_id": dp.id, "dp": dp })))
}

#[utoipa::path(get, path = "/api/v1/pull/{dp}/assignments", tag = "pull",
    params(("dp" = i64, Path)), responses((status = 200, description = "{dp_id, maintenance_mode, assignments, validate}")))]
pub async fn pull_assignments(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(dp): Path<String>,
) -> Result<Response, ApiError> {
    let dp = id_of(&dp, "distribution point")?;
    let agent = agent_of(&caller);
    Ok(json(
        &read(&state, move |s| {
            check_dp(&s.site, agent.as_deref(), dp)?;
            Ok(pull::assignments(&s.site, dp)?)
        })
        .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/pull/{dp}/images/{image}/versions/{sha256}/chunks", tag = "pull",
    params(("dp" = i64, Path), ("image" = i64, Path), ("sha256" = String, Path)),
    responses((status = 200, description = "the version's chunk index"), (status = 410, description = "not the current version")))]
pub async fn pull_chunks(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((dp, image, sha256)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let dp: DpId = id_of(&dp, "distribution point")?;
    let image: ImageId = id_of(&image, "image")?;
    let agent = agent_of(&caller);
    let bytes = read(&state, move |s| {
        check_dp(&s.site, agent.as_deref(), dp)?;
        let img = pull::servable(&s.site, dp, image, &sha256).map_err(refusal)?;
        let bytes = pull::chunk_index(&s.site, &img)?;
        pull::count_served(&s.site, dp, bytes.len() as u64)?;
        Ok(bytes)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

#[utoipa::path(get, path = "/api/v1/pull/{dp}/images/{image}/versions/{sha256}/content", tag = "pull",
    params(("dp" = i64, Path), ("image" = i64, Path), ("sha256" = String, Path)),
    responses((status = 206, description = "the bytes of the one range asked for (Range: bytes=A-B)"),
        (status = 410, description = "not the current version"), (status = 416)))]
pub async fn pull_content(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((dp, image, sha256)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let agent = agent_of(&caller);
    let dp: DpId = id_of(&dp, "distribution point")?;
    let image: ImageId = id_of(&image, "image")?;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::bad_request("ask for one byte range (Range: bytes=A-B) at a time")
        })?;
    let (start, end, size, data) = read(&state, move |s| {
        check_dp(&s.site, agent.as_deref(), dp)?;
        let img = pull::servable(&s.site, dp, image, &sha256).map_err(refusal)?;
        let unsatisfiable = |why: String| {
            ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, "range", why)
                .hint("ask for one range within the file's size (Range: bytes=A-B)")
        };
        let ranges = http_range_header::parse_range_header(&range)
            .and_then(|r| r.validate(img.size_bytes))
            .map_err(|e| unsatisfiable(format!("Range {range:?}: {e}")))?;
        let [r] = ranges.as_slice() else {
            return Err(unsatisfiable(format!(
                "Range {range:?}: one range at a time"
            )));
        };
        let (start, end) = (*r.start(), *r.end());
        if end - start + 1 > MAX_RANGE {
            return Err(unsatisfiable(format!(
                "Range {range:?}: at most {MAX_RANGE} bytes a request"
            )));
        }
        let mut data = vec![0u8; (end - start + 1) as usize];
        let file = std::fs::File::open(&img.path)
            .map_err(|e| ApiError::internal(format!("{}: {e}", img.path.display())))?;
        crate::distribution::chunks::read_at(&file, &mut data, start)
            .map_err(|e| ApiError::internal(format!("{}: {e}", img.path.display())))?;
        pull::count_served(&s.site, dp, data.len() as u64)?;
        Ok((start, end, img.size_bytes, data))
    })
    .await?;
    Ok((
        StatusCode::PARTIAL_CONTENT,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}")),
        ],
        data,
    )
        .into_response())
}

#[utoipa::path(post, path = "/api/v1/pull/{dp}/report", tag = "pull",
    params(("dp" = i64, Path)), responses((status = 204), (status = 404)))]
pub async fn pull_report(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(dp): Path<String>,
    Body(report): Body<Report>,
) -> Result<Response, ApiError> {
    let dp: DpId = id_of(&dp, "distribution point")?;
    let agent = agent_of(&caller);
    change(
        &state,
        &caller,
        "pull distribution point report",
        format!("dp {dp}"),
        move |s| {
            check_dp(&s.site, agent.as_deref(), dp)?;
            Ok(pull::record_report(&s.site, dp, &report)?)
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
