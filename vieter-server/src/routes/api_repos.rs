//! The repository contents as a REST API: `GET /api/v1/repos`, `GET /api/v1/repos/{repo}/{arch}/packages`
//! and `GET /api/v1/repos/{repo}/{arch}/packages/{name}`. Read-only and public, like the databases.

use std::collections::BTreeMap;
use std::sync::Arc;

use libvieter::api::{ArchRepoInfo, FilesQuery, ListQuery, PackageDetail, RepoInfo};
use libvieter::name::{Arch, PkgName, RepoName};
use libvieter::repo::RepoStore;

use crate::error::{ok, ApiError};
use crate::App;

/// Default and largest page size.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal("a blocking task", e))?
}

pub async fn list_repos(app: Arc<App>) -> Result<warp::reply::Response, ApiError> {
    let repos = blocking(move || {
        let store = app.repos.store();
        let mut by_repo: BTreeMap<String, Vec<ArchRepoInfo>> = BTreeMap::new();
        for (repo, arch, record) in store.arch_repos().map_err(|e| ApiError::internal("listing repos", e))? {
            let summaries =
                store.summaries(&repo, &arch).map_err(|e| ApiError::internal("listing packages", e))?;
            by_repo.entry(repo.to_string()).or_default().push(ArchRepoInfo {
                arch,
                packages: summaries.len() as u64,
                size: summaries.iter().map(|s| s.csize).sum(),
                last_change: Some(record.last_change),
            });
        }
        Ok(by_repo.into_iter().map(|(name, archs)| RepoInfo { name, archs }).collect::<Vec<_>>())
    })
    .await?;
    Ok(ok(&repos))
}

pub async fn list_packages(
    app: Arc<App>,
    repo: String,
    arch: String,
    query: ListQuery,
) -> Result<warp::reply::Response, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    let offset = query.offset.unwrap_or(0);
    let needle = query.query.map(|q| q.to_lowercase());
    let page = blocking(move || {
        let store = app.repos.store();
        let not_found = || ApiError::not_found(format!("repository {repo}/{arch} not found"));
        let (Ok(repo), Ok(arch)) = (RepoName::new(repo.as_str()), Arch::new(arch.as_str())) else {
            return Err(not_found());
        };
        if !store.has_arch_repo(&repo, &arch).map_err(|e| ApiError::internal("looking up a repo", e))? {
            return Err(not_found());
        }
        let all = store.summaries(&repo, &arch).map_err(|e| ApiError::internal("listing packages", e))?;
        let matches = |s: &libvieter::api::PackageSummary| match &needle {
            None => true,
            Some(n) => {
                s.name.as_str().to_lowercase().contains(n)
                    || s.desc.as_deref().is_some_and(|d| d.to_lowercase().contains(n))
            }
        };
        Ok(all.into_iter().filter(matches).skip(offset).take(limit).collect::<Vec<_>>())
    })
    .await?;
    Ok(ok(&page))
}

/// Default and largest page of a package's file list, in names and in bytes of names (a page holds at
/// least one name): a request costs a bounded amount of memory whatever the names' lengths.
const DEFAULT_FILES: usize = 1_000;
const MAX_FILES: usize = 10_000;
const MAX_FILE_PAGE_BYTES: usize = 512 * 1024;

/// One package with a page of its file list: memory per request stays bounded by the page, however
/// large the package's list is.
pub async fn package(
    app: Arc<App>,
    repo: String,
    arch: String,
    name: String,
    query: FilesQuery,
) -> Result<warp::reply::Response, ApiError> {
    let offset = query.files_offset.unwrap_or(0);
    let limit = query.files_limit.unwrap_or(DEFAULT_FILES).min(MAX_FILES);
    let detail = blocking(move || {
        let store = app.repos.store();
        let not_found = || ApiError::not_found(format!("package {name} not found in {repo}/{arch}"));
        let (Ok(repo), Ok(arch), Ok(name)) =
            (RepoName::new(repo.as_str()), Arch::new(arch.as_str()), PkgName::new(name.as_str()))
        else {
            return Err(not_found());
        };
        let found =
            store.package(&repo, &arch, &name).map_err(|e| ApiError::internal("reading a package", e))?;
        let (summary, package) = found.ok_or_else(not_found)?;
        let (files, files_total) = store
            .file_page(&repo, &arch, &name, offset, limit, MAX_FILE_PAGE_BYTES)
            .map_err(|e| ApiError::internal("reading a file list", e))?
            .ok_or_else(not_found)?;
        Ok(PackageDetail { summary, info: package.info, files, files_total })
    })
    .await?;
    Ok(ok(&detail))
}

pub async fn metrics(app: Arc<App>) -> Result<warp::reply::Response, ApiError> {
    let text = blocking(move || {
        let store = app.repos.store();
        app.metrics.reset_repos();
        for (repo, arch, _) in store.arch_repos().map_err(|e| ApiError::internal("listing repos", e))? {
            let summaries =
                store.summaries(&repo, &arch).map_err(|e| ApiError::internal("listing packages", e))?;
            app.metrics.set_repo(
                repo.as_str(),
                arch.as_str(),
                summaries.len() as u64,
                summaries.iter().map(|s| s.csize).sum(),
            );
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
