//! The repository contents as a REST API: `GET /api/v1/repos`, `GET /api/v1/repos/{repo}/{arch}/packages`
//! and `GET /api/v1/repos/{repo}/{arch}/packages/{name}`. Read-only and public, like the databases.

use std::sync::Arc;

use libvieter::api::{FilesQuery, ListQuery};
use libvieter::name::{Arch, PkgName, RepoName};
use libvieter::repo::RepoError;

use crate::error::{ok, ApiError};
use crate::App;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal("a blocking task", e))?
}

fn failed(context: &'static str) -> impl FnOnce(RepoError) -> ApiError {
    move |e| ApiError::internal(context, e)
}

pub async fn list_repos(app: Arc<App>) -> Result<warp::reply::Response, ApiError> {
    Ok(ok(&blocking(move || app.repos.repos().map_err(failed("listing repos"))).await?))
}

pub async fn list_packages(
    app: Arc<App>,
    repo: String,
    arch: String,
    query: ListQuery,
) -> Result<warp::reply::Response, ApiError> {
    let not_found = ApiError::not_found(format!("repository {repo}/{arch} not found"));
    let (Ok(repo), Ok(arch)) = (RepoName::new(repo), Arch::new(arch)) else { return Err(not_found) };
    let page = blocking(move || app.repos.packages(&repo, &arch, &query).map_err(failed("listing packages")));
    Ok(ok(&page.await?.ok_or(not_found)?))
}

pub async fn package(
    app: Arc<App>,
    repo: String,
    arch: String,
    name: String,
    query: FilesQuery,
) -> Result<warp::reply::Response, ApiError> {
    let not_found = ApiError::not_found(format!("package {name} not found in {repo}/{arch}"));
    let (Ok(repo), Ok(arch), Ok(name)) = (RepoName::new(repo), Arch::new(arch), PkgName::new(name)) else {
        return Err(not_found);
    };
    let detail =
        blocking(move || app.repos.package(&repo, &arch, &name, &query).map_err(failed("reading a package")));
    Ok(ok(&detail.await?.ok_or(not_found)?))
}

pub async fn metrics(app: Arc<App>) -> Result<warp::reply::Response, ApiError> {
    let text = blocking(move || {
        let repos = app.repos.repos().map_err(failed("listing repos"))?;
        app.metrics.reset_repos();
        for repo in &repos {
            for a in &repo.archs {
                app.metrics.set_repo(&repo.name, a.arch.as_str(), a.packages, a.size);
            }
        }
        Ok(app.metrics.render())
    })
    .await?;
    warp::http::Response::builder()
        .header("content-type", "text/plain; version=0.0.4")
        .body(text)
        .map(warp::Reply::into_response)
        .map_err(|e| ApiError::internal("building a response", e))
}
