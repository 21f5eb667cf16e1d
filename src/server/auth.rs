//! Who is calling, and may they do this.
//!
//! - `Authorization: Bearer <token>`: an account's API token (`ois site user add`), for
//!   scripts. No cookie is involved, so no CSRF token is needed.
//! - The console signs in with `POST /api/v1/session {"token"}` and gets an HttpOnly,
//!   SameSite=Strict session cookie; every change it makes must carry the session's
//!   `X-CSRF-Token` (from the sign-in answer or `GET /api/v1/whoami`).
//! - On a loopback address while the site has no account, every request is the local admin
//!   (whoever can reach 127.0.0.1 can run `ois` anyway); changes still need the server's
//!   `X-CSRF-Token` from `GET /api/v1/whoami`, so a web page from elsewhere cannot make them
//!   through the admin's browser.
//! - Read-only accounts see everything and change nothing: every change answers 403.
//! - A `dp-agent` account (a pull DP's agent) may call the `/api/v1/pull/…` routes only: any
//!   other answers 403, and the pull handlers hold it to the one DP it registered or claimed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;

use super::accounts::{self, Role};
use super::problem::ApiError;
use super::AppState;

pub const SESSION_COOKIE: &str = "ois_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The name changes are recorded under when the site has no account (loopback only).
pub const LOCAL_ADMIN: &str = "local admin";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    Token,
    Session,
    Local,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    pub via: Via,
    /// For cookie-authenticated callers (console, local admin): the token changes must carry
    /// in `X-CSRF-Token`.
    pub csrf_token: Option<String>,
}

#[derive(Debug, Clone)]
struct Session {
    account_id: i64,
    token_hash: String,
    csrf_token: String,
}

/// Console sessions, in memory; and the local admin's CSRF token.
#[derive(Clone)]
pub struct Sessions {
    by_id: Arc<Mutex<HashMap<String, Session>>>,
    local_csrf: Arc<String>,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            by_id: Arc::default(),
            local_csrf: Arc::new(accounts::random_hex(32).unwrap_or_else(|e| {
                // Without randomness no token can be trusted: refuse every change.
                tracing::error!("{e}: changes through the server are refused");
                String::new()
            })),
        }
    }
}

impl Sessions {
    /// Opens a session for a verified account: (session id, CSRF token).
    pub fn open(&self, account_id: i64, token_hash: String) -> Result<(String, String), ApiError> {
        let id = accounts::random_hex(32)?;
        let csrf_token = accounts::random_hex(32)?;
        if let Ok(mut s) = self.by_id.lock() {
            s.insert(
                id.clone(),
                Session {
                    account_id,
                    token_hash,
                    csrf_token: csrf_token.clone(),
                },
            );
        }
        Ok((id, csrf_token))
    }

    pub fn close(&self, id: &str) {
        if let Ok(mut s) = self.by_id.lock() {
            s.remove(id);
        }
    }

    fn get(&self, id: &str) -> Option<Session> {
        self.by_id.lock().ok()?.get(id).cloned()
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port: the Host of a request a
/// browser made to this machine's loopback, not to a name that merely resolves to it.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn unauthorized(detail: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail).hint(
        "send an account's token as `Authorization: Bearer TOKEN`, or sign in with \
         POST /api/v1/session; an admin issues tokens with `ois site user add NAME --role admin|read-only|dp-agent`",
    )
}

/// Who the request comes from; 401 when nobody can be identified.
pub async fn identify(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let token = bearer(headers);
    let session = session_cookie(headers).and_then(|id| state.sessions.get(&id));
    let site = state.site.clone();
    let loopback = state.loopback;
    let local_csrf = state.sessions.local_csrf.clone();
    let had_cookie = session_cookie(headers).is_some();
    let host_is_loopback = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(is_loopback_host);
    tokio::task::spawn_blocking(move || -> Result<Caller, ApiError> {
        let db = site.database()?;
        if let Some(token) = token {
            return match accounts::verify(&db, &token)? {
                Some((account, _)) => Ok(Caller {
                    name: account.name,
                    role: account.role,
                    via: Via::Token,
                    csrf_token: None,
                }),
                None => Err(unauthorized(
                    "the token matches no account (removed, or mistyped)",
                )),
            };
        }
        if let Some(s) = session {
            // The account may have been removed (or re-issued) since the sign-in.
            if let Some((account, hash)) = accounts::by_id(&db, s.account_id)? {
                if hash == s.token_hash {
                    return Ok(Caller {
                        name: account.name,
                        role: account.role,
                        via: Via::Session,
                        csrf_token: Some(s.csrf_token),
                    });
                }
            }
            return Err(unauthorized("the session ended: sign in again"));
        }
        if loopback && !accounts::any(&db)? {
            // A page whose host name was rebound to 127.0.0.1 would be same-origin with the
            // server and could read the CSRF token: the local admin answers only to a request
            // addressed to a loopback name.
            if !host_is_loopback {
                return Err(unauthorized(
                    "without accounts the server answers only requests addressed to localhost or a loopback address (the Host header names another host)",
                ));
            }
            return Ok(Caller {
                name: LOCAL_ADMIN.to_string(),
                role: Role::Admin,
                via: Via::Local,
                csrf_token: Some(local_csrf.to_string()),
            });
        }
        Err(unauthorized(if had_cookie {
            "the session ended (the server restarted?): sign in again"
        } else {
            "authentication required"
        }))
    })
    .await
    .map_err(|e| ApiError::internal(format!("authentication task failed: {e}")))?
}

fn is_change(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Which routes a middleware guards: a pull DP agent's, or everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routes {
    Pull,
    Other,
}

/// Refuses what the caller may not do: any route but the pull DP routes for a dp-agent
/// account, any change by a read-only account, and a change authenticated by cookie (or as
/// the local admin) without the right CSRF token.
pub fn authorize(
    caller: &Caller,
    routes: Routes,
    method: &Method,
    headers: &HeaderMap,
    what: &str,
) -> Result<(), ApiError> {
    if caller.role == Role::DpAgent && routes != Routes::Pull {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "dp-agent",
            format!(
                "account {} is a pull DP's agent (role dp-agent): it cannot {what}; it may call \
                 only the /api/v1/pull/ routes",
                caller.name
            ),
        )
        .hint("use an account with the admin or read-only role"));
    }
    if !is_change(method) {
        return Ok(());
    }
    if caller.role == Role::ReadOnly {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "read-only",
            format!(
                "read-only account {} cannot {what}: it sees everything and changes nothing",
                caller.name
            ),
        )
        .hint("ask an admin, or use an account with the admin role"));
    }
    if let Some(expected) = &caller.csrf_token {
        let given = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if expected.is_empty() || given != Some(expected.as_str()) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                format!("{what}: the request has no valid X-CSRF-Token header"),
            )
            .hint("send the csrf_token from GET /api/v1/whoami in the X-CSRF-Token header"));
        }
    }
    Ok(())
}

/// Middleware for every protected route but the pull DP routes: identifies the caller,
/// refuses what they may not do, and hands the caller to the handler (an `Extension<Caller>`).
pub async fn require(State(state): State<AppState>, request: Request, next: Next) -> Response {
    guard(state, Routes::Other, request, next).await
}

/// [`require`] for the pull DP routes, which dp-agent accounts may call too.
pub async fn require_pull(State(state): State<AppState>, request: Request, next: Next) -> Response {
    guard(state, Routes::Pull, request, next).await
}

async fn guard(state: AppState, routes: Routes, mut request: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    let what = format!("{} {}", request.method(), request.uri().path());
    let caller = match identify(&state, request.headers()).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = authorize(&caller, routes, request.method(), request.headers(), &what) {
        tracing::warn!(
            "site server: refused {what} by {}: {}",
            caller.name,
            e.detail
        );
        return e.into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn only_loopback_names_are_loopback_hosts() {
        for host in [
            "localhost",
            "LOCALHOST:8530",
            "127.0.0.1",
            "127.0.0.2:80",
            "[::1]:8530",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "attacker.example",
            "attacker.example:8530",
            "10.0.0.1:8530",
            "localhost.attacker.example",
            "[::2]:1",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
