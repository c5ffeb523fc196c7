//! `DELETE /{repo}`, `DELETE /{repo}/{arch}`, `DELETE /{repo}/{arch}/{pkgname}`.

use std::sync::Arc;

use libvieter::name::{Arch, PkgName, RepoName};

use crate::error::{ok, ApiError};
use crate::repo::Removal;
use crate::App;

pub async fn remove(
    app: Arc<App>,
    repo: String,
    arch: Option<String>,
    name: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    let bad = |e: libvieter::name::NameError| ApiError::bad_request(e.to_string());
    let repo = RepoName::new(repo).map_err(bad)?;
    let arch = arch.map(Arch::new).transpose().map_err(bad)?;
    let name = name.map(PkgName::new).transpose().map_err(bad)?;
    let what = match (&arch, &name) {
        (Some(a), Some(n)) => format!("package {n} in {repo}/{a}"),
        (Some(a), None) => format!("{repo}/{a}"),
        _ => format!("repository {repo}"),
    };
    let found = super::blocking(move || {
        let removal = match (&arch, &name) {
            (Some(a), Some(n)) => Removal::Package(a, n),
            (Some(a), None) => Removal::ArchRepo(a),
            _ => Removal::Repo,
        };
        app.repos.remove(&repo, removal).map_err(super::repo_error("removing"))
    })
    .await?;
    if !found {
        return Err(ApiError::not_found(format!("{what} not found")));
    }
    tracing::info!("removed {what}");
    Ok(ok(&libvieter::api::Removed { removed: what }))
}
