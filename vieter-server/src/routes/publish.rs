//! `POST /{repo}/publish`: the raw package as the body (Vieter's `curl -T`), or `multipart/form-data`
//! with a file field and optionally the packager's detached signature in the field `sig`. The package
//! is streamed to a temp file, never held in memory; the signature (at most 32 KiB) is read whole.
//! Whether a signature is needed and what becomes of it is libvieter's rule (`repo::sign::check_upload`).

use std::sync::Arc;

use bytes::Buf;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use warp::http::StatusCode;

use libvieter::fs::DirUpload;
use libvieter::name::RepoName;
use libvieter::repo::sign::MAX_UPLOADED_SIGNATURE_LEN;
use libvieter::repo::{BlobStore, UploadSignature};

use crate::auth::Role;

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
    while let Some(bytes) = super::next_bytes(&mut body, idle).await? {
        received += bytes.len() as u64;
        if received > limit {
            return Err(too_large(limit));
        }
        file.write_all(&bytes).await.map_err(|e| ApiError::internal("writing an upload", e))?;
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
async fn add(
    app: Arc<App>,
    repo: RepoName,
    tmp: DirUpload,
    signed: UploadSignature,
) -> Result<warp::reply::Response, ApiError> {
    let (started, publisher) = (std::time::Instant::now(), app.clone());
    let published = super::blocking(move || {
        publisher.repos.publish_with(&repo, tmp, &signed).map_err(super::repo_error("publishing"))
    })
    .await?;
    app.metrics.observe_upload(started.elapsed());
    Ok(ok(&published))
}

/// The raw-body form.
pub async fn raw<S, B, E>(
    app: Arc<App>,
    repo: String,
    role: Role,
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
    add(app, repo, tmp, UploadSignature::unsigned(role.into())).await
}

/// Reads the `sig` part whole, refusing one over [`MAX_UPLOADED_SIGNATURE_LEN`].
async fn read_signature(app: &App, part: warp::multipart::Part) -> Result<Vec<u8>, ApiError> {
    let idle = std::time::Duration::from_secs(app.config.body_idle_timeout.max(1));
    let mut stream = part.stream().boxed();
    let mut signature = Vec::new();
    while let Some(bytes) = super::next_bytes(&mut stream, idle).await? {
        if signature.len() + bytes.len() > MAX_UPLOADED_SIGNATURE_LEN {
            return Err(ApiError::bad_request(format!(
                "the signature (field sig) is larger than {MAX_UPLOADED_SIGNATURE_LEN} bytes"
            )));
        }
        signature.extend_from_slice(&bytes);
    }
    Ok(signature)
}

/// The `multipart/form-data` form: the part named `sig` is the packager's detached signature (binary or
/// armored, before or after the package); the package is the part named `file`, else the first other
/// part with a file name. Other parts are ignored.
pub async fn multipart(
    app: Arc<App>,
    repo: String,
    role: Role,
    mut form: warp::multipart::FormData,
) -> Result<warp::reply::Response, ApiError> {
    let repo = RepoName::new(repo).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let idle = std::time::Duration::from_secs(app.config.body_idle_timeout.max(1));
    let (mut package, mut signature) = (None, None);
    while let Some(part) = super::next_chunk(&mut form, idle).await? {
        let part = part.map_err(|e| ApiError::bad_request(format!("invalid multipart body: {e}")))?;
        if part.name() == "sig" {
            if signature.is_some() {
                return Err(ApiError::bad_request("the multipart body has more than one sig part"));
            }
            signature = Some(read_signature(&app, part).await?);
        } else if package.is_none() && (part.filename().is_some() || part.name() == "file") {
            package = Some(receive(&app, part.stream().boxed(), None).await?);
        }
    }
    let tmp = package.ok_or_else(|| ApiError::bad_request("the multipart body has no file part"))?;
    add(app, repo, tmp, UploadSignature { uploader: role.into(), signature }).await
}
