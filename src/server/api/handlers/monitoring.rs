//! What the console watches: the event stream, the dashboard and the audit log.

use super::prelude::*;

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
