//! Who is calling: whoami, sign-in and sign-out, and the OpenAPI document.

use super::prelude::*;

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
    json(&<crate::server::api::ApiDoc as utoipa::OpenApi>::openapi())
}
