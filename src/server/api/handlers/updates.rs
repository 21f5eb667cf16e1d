//! The content library: list, show, import by a path on the server or by upload.

use super::prelude::*;

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
