//! Targets, jobs, agents and build logs: `/api/v1/targets`, `/api/v1/jobs`, `/api/v1/agents`.

use std::sync::Arc;

use libvieter::api::{
    CreatedTarget, FinishRequest, HeartbeatRequest, LeaseRenewal, LogAppendQuery, LogQuery, PollRequest,
    QueueRequest, TargetQuery, TargetRemoved,
};
use libvieter::builds::{BuildError, LogError};
use libvieter::job::JobId;
use libvieter::target::{NewTarget, TargetId, TargetPatch};
use tokio::io::AsyncReadExt;
use warp::http::StatusCode;

use crate::auth::Caller;
use crate::builds::{Builds, BuildsError, JobFilter, TargetFilter};
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

/// Runs build-service work on the blocking pool (also the web interface's).
pub(crate) async fn blocking<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal("a blocking task", e))?
        .map_err(Into::into)
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

/// What a log stream reads from.
struct LogReader {
    builds: Arc<Builds>,
    id: JobId,
    path: std::path::PathBuf,
    file: Option<tokio::fs::File>,
    /// Bytes still to send (the length announced in Content-Length); `None` when following.
    left: Option<u64>,
    /// Following: the job was seen ended, so the next read that finds nothing ends the stream.
    ended: bool,
    buf: Vec<u8>,
}

impl LogReader {
    /// The next chunk; `None` at the end.
    async fn next(&mut self) -> Option<std::io::Result<bytes::Bytes>> {
        loop {
            if self.left == Some(0) {
                return None;
            }
            if self.file.is_none() {
                match tokio::fs::File::open(&self.path).await {
                    Ok(f) => self.file = Some(f),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.left.is_none() => {}
                    Err(e) => return Some(Err(e)),
                }
            }
            if let Some(f) = self.file.as_mut() {
                let want = self
                    .left
                    .map_or(LOG_CHUNK, |left| usize::try_from(left).unwrap_or(LOG_CHUNK).min(LOG_CHUNK));
                self.buf.resize(want, 0);
                match f.read(&mut self.buf[..want]).await {
                    Ok(0) if self.left.is_some() => {
                        return Some(Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the log is shorter than announced",
                        )));
                    }
                    Ok(0) => {}
                    Ok(n) => {
                        if let Some(left) = self.left.as_mut() {
                            *left -= n as u64;
                        }
                        return Some(Ok(bytes::Bytes::copy_from_slice(&self.buf[..n])));
                    }
                    Err(e) => return Some(Err(e)),
                }
            }
            // Following and nothing new: end once the job has ended and a last read found nothing (what
            // was appended before it ended is sent first).
            if self.ended {
                return None;
            }
            let (builds, id) = (self.builds.clone(), self.id);
            let state = tokio::task::spawn_blocking(move || builds.service.find_job(id)).await;
            self.ended = match state {
                Ok(Ok(job)) => job.is_none_or(|j| j.state().is_final()),
                _ => true,
            };
            if !self.ended {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
    }
}

/// The whole log, or with `follow=true` a stream that ends when the job does. Either way the file is
/// streamed in chunks of [`LOG_CHUNK`], never read whole; the whole log has its Content-Length (its size
/// when the request came: a running job's later output is for the next read).
pub async fn read_log(app: Arc<App>, id: u64, q: LogQuery) -> Result<warp::reply::Response, ApiError> {
    let builds_app = app.clone();
    blocking(move || builds_app.builds.service.job(JobId(id))).await?;
    let path = app.builds.log_file(JobId(id));
    let mut reader = LogReader {
        builds: app.builds.clone(),
        id: JobId(id),
        path,
        file: None,
        left: None,
        ended: false,
        buf: Vec::new(),
    };
    let mut length = None;
    if !q.follow {
        let len = match tokio::fs::File::open(&reader.path).await {
            Ok(f) => {
                let len = f.metadata().await.map_err(|e| ApiError::internal("reading a log", e))?.len();
                reader.file = Some(f);
                len
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(ApiError::internal("reading a log", e)),
        };
        reader.left = Some(len);
        length = Some(len);
    }
    let stream =
        futures_util::stream::unfold(reader, |mut r| async move { r.next().await.map(|item| (item, r)) });
    let mut response = warp::reply::stream(stream).into_response();
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
