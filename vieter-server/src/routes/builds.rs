//! Targets, jobs, agents and build logs: `/api/v1/targets`, `/api/v1/jobs`, `/api/v1/agents`.

use std::sync::Arc;

use libvieter::api::{FinishRequest, HeartbeatRequest, PollRequest, QueueRequest};
use libvieter::job::{AgentId, JobId};
use libvieter::target::{NewTarget, TargetId, TargetPatch};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::builds::{JobFilter, TargetFilter};
use crate::error::{ok, ApiError};
use crate::App;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal("a blocking task", e))?
}

/// Vieter's query-parameter form of POST/PATCH `/api/v1/targets` (`arch` comma-separated).
#[derive(Debug, Default, Deserialize)]
pub struct TargetQuery {
    kind: Option<String>,
    url: Option<String>,
    branch: Option<String>,
    path: Option<String>,
    repo: Option<String>,
    schedule: Option<String>,
    arch: Option<String>,
    base_image: Option<String>,
    build_timeout_secs: Option<u64>,
    enabled: Option<bool>,
}

impl TargetQuery {
    fn is_empty(&self) -> bool {
        self.kind.is_none()
            && self.url.is_none()
            && self.repo.is_none()
            && self.arch.is_none()
            && self.branch.is_none()
            && self.path.is_none()
            && self.schedule.is_none()
            && self.base_image.is_none()
            && self.build_timeout_secs.is_none()
            && self.enabled.is_none()
    }

    fn arches(&self) -> Option<Vec<String>> {
        self.arch
            .as_ref()
            .map(|a| a.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
    }

    fn into_new(self) -> NewTarget {
        NewTarget {
            arch: self.arches(),
            kind: self.kind.unwrap_or_default(),
            url: self.url.unwrap_or_default(),
            branch: self.branch,
            path: self.path,
            repo: self.repo.unwrap_or_default(),
            schedule: self.schedule,
            base_image: self.base_image,
            build_timeout_secs: self.build_timeout_secs,
            enabled: self.enabled,
        }
    }

    fn into_patch(self) -> TargetPatch {
        TargetPatch {
            arch: self.arches(),
            kind: self.kind,
            url: self.url,
            branch: self.branch.map(Some),
            path: self.path.map(Some),
            repo: self.repo,
            schedule: self.schedule.map(Some),
            base_image: self.base_image.map(Some),
            build_timeout_secs: self.build_timeout_secs.map(Some),
            enabled: self.enabled,
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
    let input: NewTarget = if query.is_empty() { parse_body(&body)? } else { query.into_new() };
    let target = blocking(move || app.builds.create_target(&input)).await?;
    Ok(ok(&target))
}

pub async fn list_targets(app: Arc<App>, filter: TargetFilter) -> Result<warp::reply::Response, ApiError> {
    Ok(ok(&blocking(move || app.builds.list_targets(&filter)).await?))
}

pub async fn get_target(app: Arc<App>, id: u64) -> Result<warp::reply::Response, ApiError> {
    let t = blocking(move || app.builds.target(TargetId(id))).await?;
    Ok(ok(&t.ok_or_else(|| ApiError::not_found(format!("target {id} not found")))?))
}

pub async fn patch_target(
    app: Arc<App>,
    id: u64,
    query: TargetQuery,
    body: bytes::Bytes,
) -> Result<warp::reply::Response, ApiError> {
    let patch: TargetPatch = if query.is_empty() { parse_body(&body)? } else { query.into_patch() };
    Ok(ok(&blocking(move || app.builds.patch_target(TargetId(id), &patch)).await?))
}

pub async fn delete_target(app: Arc<App>, id: u64) -> Result<warp::reply::Response, ApiError> {
    blocking(move || app.builds.delete_target(TargetId(id))).await?;
    Ok(ok(&serde_json::json!({ "removed": id })))
}

pub async fn queue_job(app: Arc<App>, body: bytes::Bytes) -> Result<warp::reply::Response, ApiError> {
    let req: QueueRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let builds = app.clone();
    let jobs = blocking(move || builds.builds.queue_build(req.target, req.arch.as_ref(), req.force)).await?;
    Ok(ok(&jobs))
}

pub async fn list_jobs(app: Arc<App>, filter: JobFilter) -> Result<warp::reply::Response, ApiError> {
    Ok(ok(&blocking(move || app.builds.list_jobs(&filter)).await?))
}

pub async fn get_job(app: Arc<App>, id: u64) -> Result<warp::reply::Response, ApiError> {
    let j = blocking(move || app.builds.job(JobId(id))).await?;
    Ok(ok(&j.ok_or_else(|| ApiError::not_found(format!("job {id} not found")))?))
}

pub async fn cancel_job(app: Arc<App>, id: u64) -> Result<warp::reply::Response, ApiError> {
    Ok(ok(&blocking(move || app.builds.cancel(JobId(id))).await?))
}

pub async fn retry_job(app: Arc<App>, id: u64) -> Result<warp::reply::Response, ApiError> {
    Ok(ok(&blocking(move || app.builds.retry(JobId(id))).await?))
}

pub async fn poll(app: Arc<App>, body: bytes::Bytes) -> Result<warp::reply::Response, ApiError> {
    let req: PollRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid poll request: {e}")))?;
    Ok(ok(&app.builds.poll(req).await?))
}

pub async fn heartbeat(
    app: Arc<App>,
    id: u64,
    body: bytes::Bytes,
) -> Result<warp::reply::Response, ApiError> {
    let req: HeartbeatRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid heartbeat: {e}")))?;
    let expiry = blocking(move || app.builds.heartbeat(JobId(id), &req.agent_id)).await?;
    Ok(ok(&serde_json::json!({ "lease_expires_at": expiry })))
}

pub async fn finish(app: Arc<App>, id: u64, body: bytes::Bytes) -> Result<warp::reply::Response, ApiError> {
    let req: FinishRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid finish request: {e}")))?;
    Ok(ok(&blocking(move || app.builds.finish(JobId(id), &req.agent_id, req.outcome)).await?))
}

#[derive(Debug, Deserialize)]
pub struct AppendQuery {
    agent_id: AgentId,
}

pub async fn append_log(
    app: Arc<App>,
    id: u64,
    q: AppendQuery,
    body: bytes::Bytes,
) -> Result<warp::reply::Response, ApiError> {
    blocking(move || app.builds.append_log(JobId(id), &q.agent_id, &body)).await?;
    Ok(ok(&serde_json::json!({})))
}

#[derive(Debug, Default, Deserialize)]
pub struct LogQuery {
    #[serde(default)]
    follow: bool,
}

/// The whole log, or with `follow=true` a stream that ends when the job does.
pub async fn read_log(app: Arc<App>, id: u64, q: LogQuery) -> Result<warp::reply::Response, ApiError> {
    let builds_app = app.clone();
    if blocking(move || builds_app.builds.job(JobId(id))).await?.is_none() {
        return Err(ApiError::not_found(format!("job {id} not found")));
    }
    let path = app.builds.log_file(JobId(id));
    if !q.follow {
        let text = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(ApiError::internal("reading a log", e)),
        };
        return warp::http::Response::builder()
            .header("content-type", "text/plain; charset=utf-8")
            .body(text)
            .map(warp::Reply::into_response)
            .map_err(|e| ApiError::internal("building a response", e));
    }
    let stream =
        futures_util::stream::unfold((app, path, 0u64, false), move |(app, path, pos, done)| async move {
            if done {
                return None;
            }
            loop {
                let mut chunk = Vec::new();
                if let Ok(mut f) = tokio::fs::File::open(&path).await {
                    if f.seek(std::io::SeekFrom::Start(pos)).await.is_ok() {
                        let _ = f.take(256 * 1024).read_to_end(&mut chunk).await;
                    }
                }
                if !chunk.is_empty() {
                    let next = pos + chunk.len() as u64;
                    return Some((
                        Ok::<_, std::io::Error>(bytes::Bytes::from(chunk)),
                        (app, path, next, false),
                    ));
                }
                let finished = app.builds.job(JobId(id)).ok().flatten().is_none_or(|j| j.state.is_final());
                if finished {
                    return None;
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        });
    let mut response = warp::reply::stream(stream).into_response();
    response
        .headers_mut()
        .insert("content-type", warp::http::HeaderValue::from_static("text/plain; charset=utf-8"));
    Ok(response)
}

use warp::Reply;

pub async fn agents(app: Arc<App>) -> Result<warp::reply::Response, ApiError> {
    Ok(ok(&blocking(move || app.builds.agents()).await?))
}
