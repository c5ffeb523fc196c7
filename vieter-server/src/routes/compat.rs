//! Vieter 0.6's routes, kept for scripts written against it (the rules and shapes are
//! `libvieter::compat`'s): `POST /api/v1/jobs/queue`, `GET /api/v1/logs`, `/api/v1/logs/{id}` and
//! `/api/v1/logs/{id}/content`. Admin key, like every route of Vieter's API.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use libvieter::builds::BuildStore;
use libvieter::compat::{queue_request, BuildLog, CompatError, LogFilter};
use libvieter::job::JobId;
use warp::filters::BoxedFilter;
use warp::{Filter, Reply};

use super::builds::{read_log, LogQuery};
use crate::auth::{self, Role};
use crate::error::{ok, respond, ApiError};
use crate::App;

impl From<CompatError> for ApiError {
    fn from(e: CompatError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

/// The routes, admin key required.
pub fn routes(app: Arc<App>) -> BoxedFilter<(warp::reply::Response,)> {
    let admin = auth::require(app.keys.clone(), Role::Admin);
    let app_f = super::with_app(app);
    let params = warp::query::<HashMap<String, String>>();
    warp::path!("api" / "v1" / "jobs" / "queue")
        .and(warp::post())
        .and(admin.clone())
        .and(app_f.clone())
        .and(params)
        .then(|_, app, p| async move { respond(queue(app, p).await) })
        .or(warp::path!("api" / "v1" / "logs")
            .and(warp::get())
            .and(admin.clone())
            .and(app_f.clone())
            .and(params)
            .then(|_, app, p| async move { respond(logs(app, p).await) }))
        .unify()
        .or(warp::path!("api" / "v1" / "logs" / u64)
            .and(warp::get())
            .and(admin.clone())
            .and(app_f.clone())
            .then(|id, _, app| async move { respond(log(app, id).await.map(|l| ok(&l))) }))
        .unify()
        .or(warp::path!("api" / "v1" / "logs" / u64 / "content")
            .and(warp::get())
            .and(admin)
            .and(app_f)
            .then(|id, _, app| async move { respond(content(app, id).await) }))
        .unify()
        .boxed()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal("a blocking task", e))?
}

/// `POST /api/v1/jobs/queue?target=&arch=&force`: `POST /api/v1/jobs` with query parameters.
async fn queue(app: Arc<App>, params: HashMap<String, String>) -> Result<warp::reply::Response, ApiError> {
    let req = queue_request(&params)?;
    Ok(ok(&blocking(move || app.builds.service.queue_build(&req).map_err(ApiError::from)).await?))
}

/// `GET /api/v1/logs`: the build logs of ended jobs, Vieter's filters, in id order.
async fn logs(app: Arc<App>, params: HashMap<String, String>) -> Result<warp::reply::Response, ApiError> {
    let filter = LogFilter::from_params(&params)?;
    let logs = blocking(move || {
        let mut matching = Vec::new();
        app.builds
            .service
            .store()
            .scan_jobs(&mut |job| {
                if let Some(log) = BuildLog::from_job(&job).filter(|l| filter.matches(l)) {
                    matching.push(log);
                }
                ControlFlow::Continue(())
            })
            .map_err(|e| ApiError::internal("build database", e))?;
        matching.sort_by_key(|l| l.id);
        Ok(filter.page().apply(matching).collect::<Vec<_>>())
    })
    .await?;
    Ok(ok(&logs))
}

/// The build log of job `id`: 404 unless it ran and ended.
async fn log(app: Arc<App>, id: u64) -> Result<BuildLog, ApiError> {
    let job = blocking(move || app.builds.service.find_job(JobId(id)).map_err(ApiError::from)).await?;
    job.as_ref()
        .and_then(BuildLog::from_job)
        .ok_or_else(|| ApiError::not_found(format!("no build log {id}: no job {id} that ran and ended")))
}

/// `GET /api/v1/logs/{id}/content`: the log text.
async fn content(app: Arc<App>, id: u64) -> Result<warp::reply::Response, ApiError> {
    log(app.clone(), id).await?;
    read_log(app, id, LogQuery::default()).await.map(Reply::into_response)
}
