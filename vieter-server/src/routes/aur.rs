//! `POST /api/v1/aur/resolve`: the dependency closure of AUR packages, as adding `aur` targets resolves
//! it (sync databases, then the target repository, then the AUR), without creating anything.

use std::sync::Arc;

use libvieter::api::ResolveRequest;
use libvieter::name::{Arch, PkgName, RepoName};
use libvieter::resolve::{Closure, ResolveError};
use warp::http::StatusCode;

use crate::aur::AurClientError;
use crate::error::{ok, ApiError};
use crate::App;

/// Resolves the closure of `names` for `repo` (if any) and `arch`. A sync database that cannot be
/// read is a failed lookup, like the AUR failing.
pub async fn closure(
    app: &Arc<App>,
    names: Vec<PkgName>,
    repo: Option<RepoName>,
    arch: Arch,
) -> Result<Result<Closure, ResolveError<AurClientError>>, ApiError> {
    let sync = match app.aur.sync_set(&arch).await {
        Ok(sync) => sync,
        Err(e) => return Ok(Err(ResolveError::Lookup(e))),
    };
    let app = app.clone();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let target = match &repo {
            Some(repo) => app
                .repos
                .providers(repo, &arch)
                .map_err(|e| ApiError::internal("reading the target repository", e))?,
            None => Vec::new(),
        };
        Ok(app.aur.resolve_blocking(&handle, &names, &sync, target))
    })
    .await
    .map_err(|e| ApiError::internal("a blocking task", e))?
}

/// The HTTP answer to a failed resolution: the input's fault (400, with the chain or the cycle) or
/// the AUR's / a mirror's (502).
pub fn resolve_error(e: ResolveError<AurClientError>) -> ApiError {
    match e {
        ResolveError::Lookup(e) => ApiError::new(StatusCode::BAD_GATEWAY, format!("AUR lookup failed: {e}")),
        other => ApiError::bad_request(other.to_string()),
    }
}

pub async fn resolve(app: Arc<App>, body: bytes::Bytes) -> Result<warp::reply::Response, ApiError> {
    let req: ResolveRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    req.check().map_err(ApiError::bad_request)?;
    let arch = req.arch.unwrap_or_else(|| app.config.default_arch.clone());
    let closure = closure(&app, req.names, req.repo, arch).await?.map_err(resolve_error)?;
    Ok(ok(&closure.report()))
}
