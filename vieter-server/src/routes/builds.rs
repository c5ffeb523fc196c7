//! Targets, jobs, agents and build logs: `/api/v1/targets`, `/api/v1/jobs`, `/api/v1/agents`.

use std::sync::Arc;

use libvieter::api::{
    CreatedTarget, FinishRequest, HeartbeatRequest, LeaseRenewal, LogAppendQuery, LogQuery, PollRequest,
    QueueRequest, TargetQuery, TargetRemoved,
};
use libvieter::builds::{BuildError, LogError, LogRead, LogReader};
use libvieter::job::JobId;
use libvieter::target::{NewTarget, TargetId, TargetPatch};
use warp::http::StatusCode;

use super::blocking;
use crate::auth::Caller;
use crate::builds::{BuildsError, JobFilter, TargetFilter};
use crate::error::{ok, ApiError};
use crate::App;

/// The HTTP answer to a refusal of the build service.
impl From<BuildError> for ApiError {
    fn from(e: BuildError) -> Self {
        let status = match &e {
            BuildError::NotFound(_) => StatusCode::NOT_FOUND,
            BuildError::Conflict { .. } | BuildError::Needed { .. } => StatusCode::CONFLICT,
            BuildError::Invalid(_) => StatusCode::BAD_REQUEST,
            BuildError::Forbidden { .. } | BuildError::TooManyAgents { .. } => StatusCode::FORBIDDEN,
            BuildError::Store(store) => return ApiError::internal("build database", store),
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<BuildsError> for ApiError {
    fn from(e: BuildsError) -> Self {
        match e {
            BuildsError::Build(e) => e.into(),
            BuildsError::Log(LogError::Build(e)) => e.into(),
            BuildsError::Log(e) => ApiError::internal("a build log", e),
            BuildsError::LogDir(e) => ApiError::internal("the log directory", e),
            BuildsError::Task(e) => ApiError::internal("a blocking task", e),
        }
    }
}

fn parse_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

pub async fn create_target(
    app: Arc<App>,
    query: TargetQuery,
    body: bytes::Bytes,
) -> Result<warp::reply::Response, ApiError> {
    let input: NewTarget = if query.is_empty() {
        parse_body(&body)?
    } else {
        query.into_new().map_err(|e| ApiError::bad_request(e.to_string()))?
    };
    Ok(ok(&add_target(app, input).await?))
}

/// Adds a target (the API's and the web interface's way): an `aur` target brings its dependency
/// closure, the AUR packages it needs becoming targets too.
pub async fn add_target(app: Arc<App>, input: NewTarget) -> Result<CreatedTarget, ApiError> {
    let Some(query) = app.builds.service.closure_to_resolve(&input) else {
        // Not an aur target, or an invalid one: the service says why.
        let target = blocking(move || app.builds.service.create_target(&input)).await?;
        return Ok(CreatedTarget { target, closure: None });
    };
    let resolution =
        crate::routes::aur::closure(&app, vec![query.base], Some(query.repo), query.arch).await?;
    if let Err(e) = &resolution {
        tracing::info!("resolving the closure of a new aur target: {e}");
    }
    match blocking(move || app.builds.service.create_resolved(&input, resolution)).await? {
        Ok(created) => Ok(created),
        Err(e) => Err(crate::routes::aur::resolve_error(e)),
    }
}

pub async fn list_targets(app: Arc<App>, filter: TargetFilter) -> Result<warp::reply::Response, ApiError> {
    Ok(ok(&blocking(move || app.builds.service.list_targets(&filter)).await?))
}

pub async fn get_target(app: Arc<App>, id: u64) -> Result<warp::reply::Response, ApiError> {
    Ok(ok(&blocking(move || app.builds.service.target(TargetId(id))).await?))
}

pub async fn patch_target(
    app: Arc<App>,
    id: u64,
    query: TargetQuery,
    body: bytes::Bytes,
) -> Result<warp::reply::Response, ApiError> {
    let patch: TargetPatch = if query.is_empty() {
        parse_body(&body)?
    } else {
        query.into_patch().map_err(|e| ApiError::bad_request(e.to_string()))?
    };
    Ok(ok(&blocking(move || app.builds.service.patch_target(TargetId(id), &patch)).await?))
}

pub async fn delete_target(app: Arc<App>, id: u64) -> Result<warp::reply::Response, ApiError> {
    let removal = blocking(move || app.builds.service.delete_target(TargetId(id))).await?;
    Ok(ok(&TargetRemoved { removed: removal.removed, automatic: removal.automatic }))
}

pub async fn target_deps(app: Arc<App>, id: u64) -> Result<warp::reply::Response, ApiError> {
    Ok(ok(&blocking(move || app.builds.service.dependency_tree(TargetId(id))).await?))
}

pub async fn queue_job(app: Arc<App>, body: bytes::Bytes) -> Result<warp::reply::Response, ApiError> {
    let req: QueueRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    Ok(ok(&blocking(move || app.builds.service.queue_build(&req)).await?))
}

pub async fn list_jobs(app: Arc<App>, filter: JobFilter) -> Result<warp::reply::Response, ApiError> {
    Ok(ok(&blocking(move || app.builds.service.list_jobs(&filter)).await?))
}

pub async fn get_job(app: Arc<App>, id: u64) -> Result<warp::reply::Response, ApiError> {
    Ok(ok(&blocking(move || app.builds.service.job(JobId(id))).await?))
}

pub async fn cancel_job(app: Arc<App>, id: u64) -> Result<warp::reply::Response, ApiError> {
    Ok(ok(&blocking(move || app.builds.service.cancel(JobId(id))).await?))
}

pub async fn retry_job(app: Arc<App>, id: u64) -> Result<warp::reply::Response, ApiError> {
    Ok(ok(&blocking(move || app.builds.service.retry(JobId(id))).await?))
}

pub async fn poll(
    app: Arc<App>,
    caller: Caller,
    body: bytes::Bytes,
) -> Result<warp::reply::Response, ApiError> {
    let req: PollRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid poll request: {e}")))?;
    Ok(ok(&app.builds.poll(req, caller).await?))
}

pub async fn heartbeat(
    app: Arc<App>,
    caller: Caller,
    id: u64,
    body: bytes::Bytes,
) -> Result<warp::reply::Response, ApiError> {
    let req: HeartbeatRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid heartbeat: {e}")))?;
    let expiry = blocking(move || app.builds.service.heartbeat(JobId(id), &req.agent_id, &caller)).await?;
    Ok(ok(&LeaseRenewal { lease_expires_at: expiry }))
}

pub async fn finish(
    app: Arc<App>,
    caller: Caller,
    id: u64,
    body: bytes::Bytes,
) -> Result<warp::reply::Response, ApiError> {
    let req: FinishRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid finish request: {e}")))?;
    Ok(
        ok(&blocking(move || app.builds.service.finish(JobId(id), &req.agent_id, req.outcome, &caller))
            .await?),
    )
}

pub async fn append_log(
    app: Arc<App>,
    caller: Caller,
    id: u64,
    q: LogAppendQuery,
    body: bytes::Bytes,
) -> Result<warp::reply::Response, ApiError> {
    blocking(move || app.builds.append_log(JobId(id), &q.agent_id, &caller, &body)).await?;
    Ok(ok(&serde_json::json!({})))
}

/// How much of a log is read at once: a reader never holds more than a chunk or two of it.
const LOG_CHUNK: usize = 64 * 1024;

/// The whole log, or with `follow=true` a stream that ends when the job does
/// ([`libvieter::builds::BuildLogs::read`]). Either way it is streamed in chunks of `LOG_CHUNK`, never
/// read whole; the whole log has its Content-Length (its size when the request came: a running job's
/// later output is for the next read).
pub async fn read_log(app: Arc<App>, id: u64, q: LogQuery) -> Result<warp::reply::Response, ApiError> {
    let builds = app.builds.clone();
    let reader = blocking(move || {
        let (logs, service) = (builds.logs(), &builds.service);
        if q.follow {
            service.job(JobId(id)).map(|_| LogReader::follow(JobId(id), 0)).map_err(BuildsError::from)
        } else {
            logs.whole(service, JobId(id)).map_err(BuildsError::from)
        }
    })
    .await?;
    let length = reader.total();
    let start = (app.builds.clone(), reader, app.builds.watch_logs());
    let stream = futures_util::stream::unfold(Some(start), |state| async move {
        let (builds, mut reader, mut watch) = state?;
        loop {
            watch.seen();
            match builds.read_log(&mut reader, LOG_CHUNK).await {
                Ok(LogRead::Bytes(bytes)) => return Some((Ok(bytes.into()), Some((builds, reader, watch)))),
                Ok(LogRead::Pending) => watch.changed(std::time::Duration::from_secs(1)).await,
                Ok(LogRead::End) => return None,
                Err(e) => return Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    let mut response = warp::reply::stream::<_, bytes::Bytes, std::io::Error>(stream).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", warp::http::HeaderValue::from_static("text/plain; charset=utf-8"));
    if let Some(len) = length {
        headers.insert(warp::http::header::CONTENT_LENGTH, warp::http::HeaderValue::from(len));
    }
    Ok(response)
}

use warp::Reply;

pub async fn agents(app: Arc<App>) -> Result<warp::reply::Response, ApiError> {
    Ok(ok(&app.builds.service.agents()))
}
