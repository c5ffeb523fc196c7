//! `DELETE /{repo}`, `DELETE /{repo}/{arch}`, `DELETE /{repo}/{arch}/{pkgname}`.

use std::sync::Arc;

use libvieter::name::{Arch, PkgName};

use crate::error::{ok, ApiError};
use crate::repo::validate_repo_name;
use crate::App;

pub async fn remove(
    app: Arc<App>,
    repo: String,
    arch: Option<String>,
    name: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    validate_repo_name(&repo).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if let Some(a) = &arch {
        Arch::new(a.as_str()).map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    if let Some(n) = &name {
        PkgName::new(n.as_str()).map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let what = match (&arch, &name) {
        (Some(a), Some(n)) => format!("package {n} in {repo}/{a}"),
        (Some(a), None) => format!("{repo}/{a}"),
        _ => format!("repository {repo}"),
    };
    let (a, n) = (arch.clone(), name.clone());
    let app2 = app.clone();
    let found = tokio::task::spawn_blocking(move || app2.repos.remove(&repo, a.as_deref(), n.as_deref()))
        .await
        .map_err(|e| ApiError::internal("removing", e))?
        .map_err(|e| ApiError::internal("removing", e))?;
    if !found {
        return Err(ApiError::not_found(format!("{what} not found")));
    }
    tracing::info!("removed {what}");
    Ok(ok(&serde_json::json!({ "removed": what })))
}
