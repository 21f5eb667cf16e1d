//! Routes shaped like Configuration Manager's AdminService, so existing scripts work:
//! `GET /AdminService/wmi/SMS_DistributionPointInfo` (OData `value` array, `$filter` on
//! `NALPath eq '...'`) and `POST .../SMS_DistributionPointInfo.SetDPMaintenanceMode` with
//! `{"NALPath", "Mode"}`, answering `{"ReturnValue"}` with the HRESULTs of
//! `ois dp set-maintenance-mode`. Route names are case-insensitive, as the AdminService's are:
//! the server lowercases the path of `/AdminService/...` before routing.

use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{middleware, Extension, Router};
use serde_json::{json, Value};

use super::api::{change, json, read, Body};
use super::auth::{self, Caller};
use super::problem::ApiError;
use super::{engine, AppState};
use crate::distribution::{hresult, DistributionError, Nal};

/// The prefix whose paths are matched without case.
pub const PREFIX: &str = "/adminservice";

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/wmi/sms_distributionpointinfo", get(dp_info))
        .route(
            "/wmi/sms_distributionpointinfo.setdpmaintenancemode",
            post(set_dp_maintenance_mode),
        )
        .route_layer(middleware::from_fn_with_state(state, auth::require))
}

/// `NALPath eq '<value>'` (an OData string literal: `''` is a quote); the only filter taken.
fn nal_filter(filter: &str) -> Result<String, ApiError> {
    let unsupported = || {
        ApiError::bad_request(format!(
            "$filter {filter:?} is not supported: use NALPath eq '<NAL path>'"
        ))
    };
    let (property, rest) = filter
        .trim()
        .split_once(char::is_whitespace)
        .ok_or_else(unsupported)?;
    let (op, literal) = rest
        .trim()
        .split_once(char::is_whitespace)
        .ok_or_else(unsupported)?;
    let literal = literal.trim();
    if !property.eq_ignore_ascii_case("NALPath")
        || !op.eq_ignore_ascii_case("eq")
        || literal.len() < 2
        || !literal.starts_with('\'')
        || !literal.ends_with('\'')
    {
        return Err(unsupported());
    }
    Ok(literal[1..literal.len() - 1].replace("''", "'"))
}

#[utoipa::path(get, path = "/AdminService/wmi/SMS_DistributionPointInfo", tag = "adminservice",
    params(("$filter" = Option<String>, Query, description = "NALPath eq '<NAL path>'")),
    responses((status = 200, description = "OData: {\"@odata.context\", \"value\": [{NALPath, ServerName, SiteCode, Description, MaintenanceMode, MaintenanceModeLastStartTime}]}")))]
pub async fn dp_info(
    State(state): State<AppState>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let filter = query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("$filter"))
        .map(|(_, v)| nal_filter(v))
        .transpose()?;
    let dps = read(&state, |s| engine::dps(&s.site)).await?;
    let wanted = filter.map(|f| Nal::parse(&f).map(|n| n.server).unwrap_or(f));
    let value: Vec<Value> = dps
        .into_iter()
        .filter(|d| {
            wanted.as_ref().is_none_or(|w| {
                d.dp.server.eq_ignore_ascii_case(w) || d.dp.nal_path.eq_ignore_ascii_case(w)
            })
        })
        .map(|d| {
            json!({
                "NALPath": d.dp.nal_path,
                "ServerName": d.dp.server,
                "SiteCode": d.dp.site_code,
                "Description": d.dp.description,
                "MaintenanceMode": u32::from(d.dp.maintenance_mode),
                "MaintenanceModeLastStartTime": d.dp.maintenance_since,
            })
        })
        .collect();
    Ok(json(&json!({
        "@odata.context": "/AdminService/wmi/$metadata#SMS_DistributionPointInfo",
        "value": value,
    })))
}

/// `SetDPMaintenanceMode(NALPath, Mode)`: `{"ReturnValue": 0}` or the HRESULT the CLI prints;
/// a failure also carries `@ois.message`, the reason.
#[utoipa::path(post, path = "/AdminService/wmi/SMS_DistributionPointInfo.SetDPMaintenanceMode", tag = "adminservice",
    request_body(content = Object, description = "{\"NALPath\": \"...\", \"Mode\": 0|1}"),
    responses((status = 200, description = "{\"ReturnValue\": 0} or an HRESULT: 2147942487 malformed NAL path, 2147749890 no such DP, 2147749896 Mode not 0 or 1, 2147500037 site database trouble")))]
pub async fn set_dp_maintenance_mode(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(body): Body<Value>,
) -> Result<Response, ApiError> {
    let field = |name: &str| {
        body.as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
            .map(|(_, v)| v.clone())
    };
    let nal_path = field("NALPath")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mode = field("Mode");
    let target = format!("{nal_path} mode {}", mode.clone().unwrap_or(Value::Null));
    let outcome = change(&state, &caller, "SetDPMaintenanceMode", target, move |s| {
        // The method checks its first argument first, as the CLI does.
        Nal::parse(&nal_path).map_err(DistributionError::MalformedNal)?;
        let mode = mode
            .as_ref()
            .and_then(|m| {
                m.as_u64()
                    .or_else(|| m.as_str().and_then(|t| t.trim().parse().ok()))
            })
            .filter(|m| *m <= 1)
            .ok_or_else(|| {
                DistributionError::InvalidMode(mode.map_or("(none)".into(), |m| m.to_string()))
            })?;
        engine::maintenance_mode(&s.site, &nal_path, mode as u32)?;
        Ok(())
    })
    .await;
    Ok(match outcome {
        Ok(()) => json(&json!({"ReturnValue": hresult::S_OK})),
        Err(e) => {
            let code = e.hresult.unwrap_or(hresult::E_FAIL);
            json(&json!({"ReturnValue": code, "@ois.message": e.detail}))
        }
    })
}
