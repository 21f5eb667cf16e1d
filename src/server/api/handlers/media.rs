//! `/api/v1/media`: installation media, and a media run (boot.wim, install.wim, Setup Dynamic
//! Updates, new folder and ISO) as `ois media service` does it.

use super::prelude::*;
use crate::commands::{self, MediaServiceOptions};
use crate::servicing::ServiceOptions;

#[utoipa::path(get, path = "/api/v1/media", tag = "media",
    responses((status = 200, description = "the registered media, as `ois media list --json`")))]
pub async fn media_list(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(json(
        &read(&state, |s| Ok(commands::list_media(&s.site)?)).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/media/{name}", tag = "media",
    params(("name" = String, Path, description = "media name or id")),
    responses((status = 200, description = "the media with its images, Setup Dynamic Updates, ISO and files"), (status = 404)))]
pub async fn media(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(json(
        &read(&state, move |s| Ok(commands::show_media(&s.site, &name)?)).await?,
    ))
}

/// A media run: the updates for its images, Setup Dynamic Updates, where the ISO goes.
#[derive(Deserialize, ToSchema, Default)]
pub struct MediaServiceBody {
    #[serde(flatten)]
    selection: super::SelectionBody,
    /// Setup Dynamic Update ids, expanded into sources/ in this order.
    #[serde(default)]
    setup_updates: Vec<String>,
    /// The ISO's path on the server (default `<site>/Media/<name>.iso`).
    #[schema(value_type = Option<String>)]
    iso: Option<PathBuf>,
}

#[utoipa::path(post, path = "/api/v1/media/{name}/service", tag = "media", request_body = MediaServiceBody,
    params(("name" = String, Path, description = "media name or id")),
    responses((status = 200, description = "the media run, as `ois media service --json`"), (status = 400), (status = 404), (status = 409)))]
pub async fn service_media(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Body(body): Body<MediaServiceBody>,
) -> Result<Response, ApiError> {
    let selection = body.selection.selection()?;
    let target = body.selection.target()?;
    let continue_on_error = body.selection.continue_on_error;
    let done = change(
        &state,
        &caller,
        "service media",
        format!("media {name}"),
        move |s| {
            let options = MediaServiceOptions {
                service: ServiceOptions {
                    selection,
                    target,
                    continue_on_error,
                    jobs: 1,
                    // Server shutdown cancels the runs at their next safe point.
                    cancel: s.stop.clone(),
                },
                setup_updates: body.setup_updates,
                iso: body.iso,
            };
            let observer = s.events.observer("api");
            Ok(commands::service_media(
                &s.site, &name, &options, &observer,
            )?)
        },
    )
    .await?;
    Ok(json(&done))
}
