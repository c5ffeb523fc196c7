//! Vieter 0.6's routes, kept for scripts written against it (the rules and shapes are
//! `libvieter::compat`'s): `POST /api/v1/jobs/queue`, `GET /api/v1/logs`, `/api/v1/logs/{id}` and
//! `/api/v1/logs/{id}/content`, `DELETE /api/v1/logs/{id}`. Admin key, like every route of Vieter's API.

use std::collections::HashMap;
use std::sync::Arc;

use libvieter::compat::{queue_request, BuildLog, CompatError, LogFilter};
use libvieter::job::JobId;
use warp::filters::BoxedFilter;
use warp::{Filter, Reply};

use super::blocking;
use super::builds::read_log;
use crate::auth::{self, Role};
use crate::builds::BuildsError;
use crate::error::{ok, respond, ApiError};
use crate::App;
use libvieter::api::LogQuery;

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
    super::first_of(vec![
        warp::path!("api" / "v1" / "jobs" / "queue")
            .and(warp::post())
            .and(admin.clone())
            .and(app_f.clone())
            .and(params)
            .then(|_, app, p| async move { respond(queue(app, p).await) })
            .boxed(),
        warp::path!("api" / "v1" / "logs")
            .and(warp::get())
            .and(admin.clone())
            .and(app_f.clone())
            .and(params)
            .then(|_, app, p| async move { respond(logs(app, p).await) })
            .boxed(),
        warp::path!("api" / "v1" / "logs" / u64)
            .and(warp::get())
            .and(admin.clone())
            .and(app_f.clone())
            .then(|id, _, app| async move { respond(log(app, id).await.map(|l| ok(&l))) })
            .boxed(),
        warp::path!("api" / "v1" / "logs" / u64)
            .and(warp::delete())
            .and(admin.clone())
            .and(app_f.clone())
            .then(|id, _, app| async move { respond(delete(app, id).await) })
            .boxed(),
        warp::path!("api" / "v1" / "logs" / u64 / "content")
            .and(warp::get())
            .and(admin)
            .and(app_f)
            .then(|id, _, app| async move { respond(content(app, id).await) })
            .boxed(),
    ])
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
        app.builds.logs().compat_list(&app.builds.service, &filter).map_err(BuildsError::from)
    });
    Ok(ok(&logs.await?))
}

/// The build log of job `id`: 404 unless it ran, ended and its log is kept.
async fn log(app: Arc<App>, id: u64) -> Result<BuildLog, ApiError> {
    let found = blocking(move || {
        app.builds.logs().compat_log(&app.builds.service, JobId(id)).map_err(BuildsError::from)
    });
    found.await?.ok_or_else(|| {
        ApiError::not_found(format!("no build log {id}: no job {id} that ran and ended with a log"))
    })
}

/// `DELETE /api/v1/logs/{id}`: deletes the log of an ended job (its record stays, with its outcome);
/// 404 when there is none, 409 while the job runs.
async fn delete(app: Arc<App>, id: u64) -> Result<warp::reply::Response, ApiError> {
    let removed = blocking(move || app.builds.remove_log(JobId(id)).map_err(ApiError::from)).await?;
    if !removed {
        return Err(ApiError::not_found(format!("no build log {id}: job {id} has no log")));
    }
    tracing::info!(job = id, "build log deleted");
    Ok(ok(&serde_json::Value::Null))
}

/// `GET /api/v1/logs/{id}/content`: the log text.
async fn content(app: Arc<App>, id: u64) -> Result<warp::reply::Response, ApiError> {
    log(app.clone(), id).await?;
    read_log(app, id, LogQuery::default()).await.map(Reply::into_response)
}
