//! `POST /{repo}/publish`: the raw package as the body (Vieter's `curl -T`), or `multipart/form-data`
//! with a file field. The body is streamed to a temp file, never held in memory.

use std::sync::Arc;

use bytes::Buf;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use warp::http::StatusCode;

use libvieter::fs::DirUpload;
use libvieter::name::RepoName;
use libvieter::repo::BlobStore;

use crate::error::{ok, ApiError};
use crate::App;

/// Streams `body` to an upload (deleted when dropped), enforcing the limit and the announced length.
async fn receive<S, B, E>(app: &App, mut body: S, expected: Option<u64>) -> Result<DirUpload, ApiError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: Buf,
    E: std::fmt::Display,
{
    let limit = app.config.max_upload_size;
    let tmp = app.repos.blobs().create_upload().map_err(|e| ApiError::internal("creating an upload", e))?;
    let mut file = tmp
        .file()
        .try_clone()
        .map(tokio::fs::File::from_std)
        .map_err(|e| ApiError::internal("opening an upload", e))?;
    let mut received: u64 = 0;
    let idle = std::time::Duration::from_secs(app.config.body_idle_timeout.max(1));
    while let Some(chunk) = super::next_chunk(&mut body, idle).await? {
        let mut chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("the upload was interrupted: {e}")))?;
        received += chunk.remaining() as u64;
        if received > limit {
            return Err(too_large(limit));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            file.write_all(part).await.map_err(|e| ApiError::internal("writing an upload", e))?;
            chunk.advance(n);
        }
    }
    if let Some(expected) = expected {
        if received != expected {
            return Err(ApiError::bad_request(format!(
                "the body has {received} bytes but Content-Length announced {expected}"
            )));
        }
    }
    // Written out (the repository syncs it when it keeps it).
    file.flush().await.map_err(|e| ApiError::internal("writing an upload", e))?;
    Ok(tmp)
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the package is larger than the limit of {limit} bytes"),
    )
}

/// Parses and adds the received file.
async fn add(app: Arc<App>, repo: RepoName, tmp: DirUpload) -> Result<warp::reply::Response, ApiError> {
    let started = std::time::Instant::now();
    let result = tokio::task::spawn_blocking(move || app.repos.publish(&repo, tmp).map(|r| (r, app)))
        .await
        .map_err(|e| ApiError::internal("publishing", e))?;
    match result {
        Ok((published, app)) => {
            app.metrics.observe_upload(started.elapsed());
            Ok(ok(&published))
        }
        Err(e) if e.is_invalid_input() => Err(ApiError::bad_request(e.to_string())),
        Err(e) => Err(ApiError::internal("publishing", e)),
    }
}

/// The raw-body form.
pub async fn raw<S, B, E>(
    app: Arc<App>,
    repo: String,
    length: Option<u64>,
    body: S,
) -> Result<warp::reply::Response, ApiError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: Buf,
    E: std::fmt::Display,
{
    let repo = RepoName::new(repo).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let length = length.ok_or_else(|| {
        ApiError::new(StatusCode::LENGTH_REQUIRED, "a Content-Length header is required (e.g. curl -T pkg)")
    })?;
    if length > app.config.max_upload_size {
        return Err(too_large(app.config.max_upload_size));
    }
    if length == 0 {
        return Err(ApiError::bad_request("the body is empty: send the package file"));
    }
    let tmp = receive(&app, body, Some(length)).await?;
    add(app, repo, tmp).await
}

/// The `multipart/form-data` form: the first part with a file name (or named `file`).
pub async fn multipart(
    app: Arc<App>,
    repo: String,
    mut form: warp::multipart::FormData,
) -> Result<warp::reply::Response, ApiError> {
    let repo = RepoName::new(repo).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let idle = std::time::Duration::from_secs(app.config.body_idle_timeout.max(1));
    while let Some(part) = super::next_chunk(&mut form, idle).await? {
        let part = part.map_err(|e| ApiError::bad_request(format!("invalid multipart body: {e}")))?;
        if part.filename().is_none() && part.name() != "file" {
            continue;
        }
        let tmp = receive(&app, part.stream().boxed(), None).await?;
        return add(app, repo, tmp).await;
    }
    Err(ApiError::bad_request("the multipart body has no file part"))
}
