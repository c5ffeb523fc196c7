//! The repository contents as a REST API: `GET /api/v1/repos`, `GET /api/v1/repos/{repo}/{arch}/packages`
//! and `GET /api/v1/repos/{repo}/{arch}/packages/{name}`: read-only and public, like the databases;
//! `PUT /api/v1/repos/{repo}/{arch}` (admin key) creates an empty arch-repo.

use std::sync::Arc;

use libvieter::api::{ArchRepoCreated, FilesQuery, ListQuery};
use libvieter::name::{Arch, PkgName, RepoName};

use warp::http::StatusCode;
use warp::Reply;

use super::{blocking, repo_error};
use crate::error::{ok, ApiError};
use crate::App;

pub async fn list_repos(app: Arc<App>) -> Result<warp::reply::Response, ApiError> {
    Ok(ok(&blocking(move || app.repos.repos().map_err(repo_error("listing repos"))).await?))
}

pub async fn list_packages(
    app: Arc<App>,
    repo: String,
    arch: String,
    query: ListQuery,
) -> Result<warp::reply::Response, ApiError> {
    let not_found = ApiError::not_found(format!("repository {repo}/{arch} not found"));
    let (Ok(repo), Ok(arch)) = (RepoName::new(repo), Arch::new(arch)) else { return Err(not_found) };
    let page =
        blocking(move || app.repos.packages(&repo, &arch, &query).map_err(repo_error("listing packages")));
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
    let detail = blocking(move || {
        app.repos.package(&repo, &arch, &name, &query).map_err(repo_error("reading a package"))
    });
    Ok(ok(&detail.await?.ok_or(not_found)?))
}

/// `PUT /api/v1/repos/{repo}/{arch}`: creates the empty arch-repo (201), or leaves the one that
/// exists alone (200).
pub async fn create_arch_repo(
    app: Arc<App>,
    repo: String,
    arch: String,
) -> Result<warp::reply::Response, ApiError> {
    let bad = |e: libvieter::name::NameError| ApiError::bad_request(e.to_string());
    let (repo, arch) = (RepoName::new(repo).map_err(bad)?, Arch::new(arch).map_err(bad)?);
    let (r, a) = (repo.clone(), arch.clone());
    let created =
        blocking(move || app.repos.create_arch_repo(&r, &a).map_err(repo_error("creating an arch-repo")))
            .await?;
    if created {
        tracing::info!("created the arch-repo {repo}/{arch}");
    }
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(warp::reply::with_status(ok(&ArchRepoCreated { repo, arch, created }), status).into_response())
}

pub async fn metrics(app: Arc<App>) -> Result<warp::reply::Response, ApiError> {
    let text = blocking(move || {
        let repos = app.repos.repos().map_err(repo_error("listing repos"))?;
        app.metrics.reset_repos();
        for repo in &repos {
            for a in &repo.archs {
                app.metrics.set_repo(&repo.name, a.arch.as_str(), a.packages, a.size);
            }
        }
        Ok::<_, ApiError>(app.metrics.render())
    })
    .await?;
    warp::http::Response::builder()
        .header("content-type", "text/plain; version=0.0.4")
        .body(text)
        .map(warp::Reply::into_response)
        .map_err(|e| ApiError::internal("building a response", e))
}
