//! The HTTP routes: one module per resource, each handler short and delegating to libvieter and
//! [`crate::repo`].

pub mod api_repos;
pub mod aur;
pub mod builds;
pub mod compat;
pub mod delete;
pub mod files;
pub mod health;
pub mod keys;
pub mod publish;

use std::sync::Arc;
use std::time::Duration;

use bytes::Buf;
use futures_util::{Stream, StreamExt};

use warp::filters::BoxedFilter;
use warp::{Filter, Reply};

use crate::auth::{self, Role};
use crate::error::{self, respond, ApiError};
use crate::App;

/// A path segment, percent-decoded (`%2B` is `+`): pacman sends file names raw, other clients encode
/// them, and both must name the same file. A segment that does not decode to UTF-8 matches no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seg(pub String);

impl std::str::FromStr for Seg {
    type Err = std::str::Utf8Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Seg(percent_encoding::percent_decode_str(s).decode_utf8()?.into_owned()))
    }
}

fn with_app(app: Arc<App>) -> impl Filter<Extract = (Arc<App>,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || app.clone())
}

/// The OpenAPI document of the JSON API.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// Every route, with JSON errors and request metrics.
pub fn routes(app: Arc<App>) -> BoxedFilter<(warp::reply::Response,)> {
    let keys = app.keys.clone();
    let health = warp::path!("health").and(warp::get()).map(health::health);

    let openapi = warp::path!("api" / "v1" / "openapi.json")
        .and(warp::get())
        .map(|| warp::reply::with_header(OPENAPI, "content-type", "application/json").into_response());

    let keys_list = warp::path!("api" / "v1" / "keys")
        .and(warp::get())
        .and(with_app(app.clone()))
        .map(|app: Arc<App>| keys::list(&app))
        .boxed();
    let keys_resign = warp::path!("api" / "v1" / "keys" / "resign")
        .and(warp::get())
        .and(with_app(app.clone()))
        .map(|app: Arc<App>| keys::resign(&app))
        .boxed();
    let keys_remove = warp::path!("api" / "v1" / "keys" / String)
        .and(warp::delete())
        .and(auth::require(keys.clone(), Role::Admin))
        .and(with_app(app.clone()))
        .map(|fingerprint: String, _role, app: Arc<App>| respond(keys::remove(&app, &fingerprint)))
        .boxed();

    let metrics_auth = app.config.metrics_auth;
    let metrics = warp::path!("api" / "v1" / "metrics")
        .and(warp::get())
        .and(warp::header::optional::<String>(auth::HEADER))
        .and(with_app(app.clone()))
        .and_then(move |key: Option<String>, app: Arc<App>| async move {
            if metrics_auth {
                auth::role(&app.keys, key.as_deref()).map_err(warp::reject::custom)?;
            }
            Ok::<_, warp::Rejection>(respond(api_repos::metrics(app).await))
        });

    let repos = warp::path!("api" / "v1" / "repos")
        .and(warp::get())
        .and(with_app(app.clone()))
        .then(|app| async move { respond(api_repos::list_repos(app).await) })
        .boxed();
    let packages = warp::path!("api" / "v1" / "repos" / Seg / Seg / "packages")
        .and(warp::get())
        .and(warp::query::<libvieter::api::ListQuery>())
        .and(with_app(app.clone()))
        .then(|repo: Seg, arch: Seg, q, app| async move {
            respond(api_repos::list_packages(app, repo.0, arch.0, q).await)
        })
        .boxed();
    let package = warp::path!("api" / "v1" / "repos" / Seg / Seg / "packages" / Seg)
        .and(warp::get())
        .and(warp::query::<libvieter::api::FilesQuery>())
        .and(with_app(app.clone()))
        .then(|repo: Seg, arch: Seg, name: Seg, q, app| async move {
            respond(api_repos::package(app, repo.0, arch.0, name.0, q).await)
        })
        .boxed();
    let create_arch_repo = warp::path!("api" / "v1" / "repos" / Seg / Seg)
        .and(warp::put())
        .and(auth::require(keys.clone(), Role::Admin))
        .and(with_app(app.clone()))
        .then(|repo: Seg, arch: Seg, _caller, app| async move {
            respond(api_repos::create_arch_repo(app, repo.0, arch.0).await)
        })
        .boxed();

    let publish_multipart = warp::path!(Seg / "publish")
        .and(warp::post())
        .and(auth::require(keys.clone(), Role::Agent))
        .and(
            warp::header::<String>("content-type")
                .and_then(|ct: String| async move {
                    if ct.to_ascii_lowercase().starts_with("multipart/form-data") {
                        Ok(())
                    } else {
                        Err(warp::reject())
                    }
                })
                .untuple_one(),
        )
        .and(with_app(app.clone()))
        .and(warp::multipart::form().max_length(Some(app.config.max_upload_size.saturating_add(64 * 1024))))
        .then(|repo: Seg, caller: auth::Caller, app, form| async move {
            respond(publish::multipart(app, repo.0, caller.role, form).await)
        });
    let publish_raw = warp::path!(Seg / "publish")
        .and(warp::post())
        .and(auth::require(keys.clone(), Role::Agent))
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .and(with_app(app.clone()))
        .then(|repo: Seg, caller: auth::Caller, length, body, app| async move {
            respond(publish::raw(app, repo.0, caller.role, length, Box::pin(body)).await)
        });

    // `/api/...` and `/ui/...` are never a repository: leave those paths to the API's and the web
    // interface's own rejections (401/403/404).
    let not_api = warp::path::peek().and_then(|p: warp::path::Peek| async move {
        let first = p.as_str().split('/').next().unwrap_or("");
        if first == "api" || first == "ui" {
            Err(warp::reject::not_found())
        } else {
            Ok(())
        }
    });
    // The delete paths (`/{repo}`, `/{repo}/{arch}`, `/{repo}/{arch}/{name}`) cover any one to three
    // segments: another method on them is "not found", not "method not allowed", or every unknown path
    // (`GET /api/v1/nothing`) would answer 405.
    let only_delete = warp::method()
        .and_then(|m: warp::http::Method| async move {
            if m == warp::http::Method::DELETE {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one();
    let delete = not_api
        .untuple_one()
        .and(
            warp::path!(Seg)
                .map(|r: Seg| (r.0, None, None))
                .or(warp::path!(Seg / Seg).map(|r: Seg, a: Seg| (r.0, Some(a.0), None)))
                .unify()
                .or(warp::path!(Seg / Seg / Seg).map(|r: Seg, a: Seg, n: Seg| (r.0, Some(a.0), Some(n.0))))
                .unify(),
        )
        .and(only_delete)
        .and(auth::require(keys, Role::Admin))
        .and(with_app(app.clone()))
        .then(|(repo, arch, name), _role, app| async move {
            respond(delete::remove(app, repo, arch, name).await)
        });

    let files = not_api
        .untuple_one()
        .and(warp::path!(Seg / Seg / Seg).map(|r: Seg, a: Seg, f: Seg| (r.0, a.0, f.0)))
        .untuple_one()
        .and(warp::get().map(|| false).or(warp::head().map(|| true)).unify())
        .and(warp::header::headers_cloned())
        .and(with_app(app.clone()))
        .then(|repo, arch, file, head, headers, app| async move {
            respond(files::serve(app, repo, arch, file, head, headers).await)
        });

    let build_routes = build_routes(app.clone());
    let idle = Duration::from_secs(app.config.body_idle_timeout.max(1));
    let aur_resolve = warp::path!("api" / "v1" / "aur" / "resolve")
        .and(warp::post())
        .and(auth::require(app.keys.clone(), Role::Admin))
        .and(with_app(app.clone()))
        .and(body(64 * 1024, idle))
        .then(|_, app, b| async move { respond(aur::resolve(app, b).await) });

    let metrics_app = app.clone();
    let log = warp::log::custom(move |info| {
        let method = crate::metrics::method_label(info.method().as_str());
        let route = crate::metrics::route_of(method, info.path());
        metrics_app.metrics.observe_request(route, method, info.status().as_u16(), info.elapsed());
        tracing::debug!(method, path = info.path(), status = info.status().as_u16(), elapsed = ?info.elapsed());
    });

    // Downloads first, and not boxed: they are most of the requests (pacman's), and each route or box
    // in front of them is one more filter tried per request. No other route takes a GET or HEAD of
    // three segments outside `/api/` and `/ui/`.
    let others = first_of(vec![
        health.boxed(),
        openapi.boxed(),
        keys_list,
        keys_resign,
        keys_remove,
        metrics.boxed(),
        repos,
        packages,
        package,
        create_arch_repo,
        build_routes,
        aur_resolve.boxed(),
        compat::routes(app.clone()),
        crate::ui::routes(app.clone()),
        publish_multipart.boxed(),
        publish_raw.boxed(),
        delete.boxed(),
    ]);
    files.or(others).unify().recover(error::recover).unify().with(log).map(Reply::into_response).boxed()
}

/// The routes tried in order, as one filter. Each is boxed on its own: one long chain of `or`s makes
/// a type the compiler takes minutes on. The first is reached through one box, the last through all.
pub(crate) fn first_of(
    routes: Vec<BoxedFilter<(warp::reply::Response,)>>,
) -> BoxedFilter<(warp::reply::Response,)> {
    let mut routes = routes.into_iter().rev();
    let last = routes
        .next()
        .unwrap_or_else(|| warp::any().and_then(|| async { Err(warp::reject::not_found()) }).boxed());
    routes.fold(last, |rest, route| route.or(rest).unify().boxed())
}

/// A request body of at most `limit` bytes, counted as the bytes arrive (with or without
/// Content-Length, chunked or not): 413 as soon as the limit is crossed, 408 when no byte arrives for
/// `idle`. An absent body is empty.
fn body(
    limit: u64,
    idle: Duration,
) -> impl Filter<Extract = (bytes::Bytes,), Error = warp::Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and_then(move |length: Option<u64>| async move {
            match length {
                Some(n) if n > limit => Err(warp::reject::custom(too_large(limit))),
                _ => Ok(()),
            }
        })
        .untuple_one()
        .and(warp::body::stream())
        .and_then(move |stream| async move {
            collect_body(Box::pin(stream), limit, idle).await.map_err(warp::reject::custom)
        })
}

/// Runs store and service work on the blocking pool (also the web interface's).
pub(crate) async fn blocking<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal("a blocking task", e))?
        .map_err(Into::into)
}

/// The HTTP answer to a failure of the repository: 400 for what the client sent wrong, else 500
/// (logged with `context`).
pub(crate) fn repo_error(context: &'static str) -> impl FnOnce(libvieter::repo::RepoError) -> ApiError {
    move |e| {
        if e.is_invalid_input() {
            ApiError::bad_request(e.to_string())
        } else {
            ApiError::internal(context, e)
        }
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(warp::http::StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {limit} bytes"))
}

/// The next chunk of a request body, or 408 when none arrives within `idle`.
pub async fn next_chunk<S, B, E>(stream: &mut S, idle: Duration) -> Result<Option<Result<B, E>>, ApiError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
{
    tokio::time::timeout(idle, stream.next()).await.map_err(|_| {
        ApiError::new(
            warp::http::StatusCode::REQUEST_TIMEOUT,
            format!("the request body stalled: no byte arrived for {} s", idle.as_secs()),
        )
    })
}

/// The next bytes of a request body (`None` at its end): 408 when none arrive within `idle`, 400 when
/// the body was interrupted.
pub async fn next_bytes<S, B, E>(stream: &mut S, idle: Duration) -> Result<Option<bytes::Bytes>, ApiError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: Buf,
    E: std::fmt::Display,
{
    match next_chunk(stream, idle).await? {
        None => Ok(None),
        Some(Ok(mut chunk)) => Ok(Some(chunk.copy_to_bytes(chunk.remaining()))),
        Some(Err(e)) => Err(ApiError::bad_request(format!("the request body was interrupted: {e}"))),
    }
}

/// Reads a whole body of at most `limit` bytes (see [`body`]).
async fn collect_body<S, B, E>(mut stream: S, limit: u64, idle: Duration) -> Result<bytes::Bytes, ApiError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: Buf,
    E: std::fmt::Display,
{
    let mut out = bytes::BytesMut::new();
    while let Some(bytes) = next_bytes(&mut stream, idle).await? {
        if (out.len() + bytes.len()) as u64 > limit {
            return Err(too_large(limit));
        }
        out.extend_from_slice(&bytes);
    }
    Ok(out.freeze())
}

/// Targets, jobs, agents and logs. Admin key for everything but the agent protocol.
fn build_routes(app: Arc<App>) -> BoxedFilter<(warp::reply::Response,)> {
    let admin = auth::require(app.keys.clone(), Role::Admin);
    let agent = auth::require(app.keys.clone(), Role::Agent);
    let idle = Duration::from_secs(app.config.body_idle_timeout.max(1));
    let body = move |limit| body(limit, idle);
    let app_f = with_app(app);
    let kib = |n: u64| n * 1024;

    first_of(vec![
        warp::path!("api" / "v1" / "targets")
            .and(warp::post())
            .and(admin.clone())
            .and(app_f.clone())
            .and(warp::query::<libvieter::api::TargetQuery>())
            .and(body(kib(64)))
            .then(|_, app, q, b| async move { respond(builds::create_target(app, q, b).await) })
            .boxed(),
        warp::path!("api" / "v1" / "targets")
            .and(warp::get())
            .and(admin.clone())
            .and(app_f.clone())
            .and(warp::query::<crate::builds::TargetFilter>())
            .then(|_, app, f| async move { respond(builds::list_targets(app, f).await) })
            .boxed(),
        warp::path!("api" / "v1" / "targets" / u64)
            .and(warp::get())
            .and(admin.clone())
            .and(app_f.clone())
            .then(|id, _, app| async move { respond(builds::get_target(app, id).await) })
            .boxed(),
        warp::path!("api" / "v1" / "targets" / u64)
            .and(warp::patch())
            .and(admin.clone())
            .and(app_f.clone())
            .and(warp::query::<libvieter::api::TargetQuery>())
            .and(body(kib(64)))
            .then(|id, _, app, q, b| async move { respond(builds::patch_target(app, id, q, b).await) })
            .boxed(),
        warp::path!("api" / "v1" / "targets" / u64 / "deps")
            .and(warp::get())
            .and(admin.clone())
            .and(app_f.clone())
            .then(|id, _, app| async move { respond(builds::target_deps(app, id).await) })
            .boxed(),
        warp::path!("api" / "v1" / "targets" / u64)
            .and(warp::delete())
            .and(admin.clone())
            .and(app_f.clone())
            .then(|id, _, app| async move { respond(builds::delete_target(app, id).await) })
            .boxed(),
        warp::path!("api" / "v1" / "jobs" / "poll")
            .and(warp::post())
            .and(agent.clone())
            .and(app_f.clone())
            .and(body(kib(16)))
            .then(|caller, app, b| async move { respond(builds::poll(app, caller, b).await) })
            .boxed(),
        warp::path!("api" / "v1" / "jobs")
            .and(warp::post())
            .and(admin.clone())
            .and(app_f.clone())
            .and(body(kib(16)))
            .then(|_, app, b| async move { respond(builds::queue_job(app, b).await) })
            .boxed(),
        warp::path!("api" / "v1" / "jobs")
            .and(warp::get())
            .and(admin.clone())
            .and(app_f.clone())
            .and(warp::query::<crate::builds::JobFilter>())
            .then(|_, app, f| async move { respond(builds::list_jobs(app, f).await) })
            .boxed(),
        warp::path!("api" / "v1" / "jobs" / u64)
            .and(warp::get())
            .and(admin.clone())
            .and(app_f.clone())
            .then(|id, _, app| async move { respond(builds::get_job(app, id).await) })
            .boxed(),
        warp::path!("api" / "v1" / "jobs" / u64 / "cancel")
            .and(warp::post())
            .and(admin.clone())
            .and(app_f.clone())
            .then(|id, _, app| async move { respond(builds::cancel_job(app, id).await) })
            .boxed(),
        warp::path!("api" / "v1" / "jobs" / u64 / "retry")
            .and(warp::post())
            .and(admin.clone())
            .and(app_f.clone())
            .then(|id, _, app| async move { respond(builds::retry_job(app, id).await) })
            .boxed(),
        warp::path!("api" / "v1" / "jobs" / u64 / "heartbeat")
            .and(warp::post())
            .and(agent.clone())
            .and(app_f.clone())
            .and(body(kib(16)))
            .then(|id, caller, app, b| async move { respond(builds::heartbeat(app, caller, id, b).await) })
            .boxed(),
        warp::path!("api" / "v1" / "jobs" / u64 / "finish")
            .and(warp::post())
            .and(agent.clone())
            .and(app_f.clone())
            .and(body(kib(256)))
            .then(|id, caller, app, b| async move { respond(builds::finish(app, caller, id, b).await) })
            .boxed(),
        warp::path!("api" / "v1" / "jobs" / u64 / "log")
            .and(warp::post())
            .and(agent.clone())
            .and(app_f.clone())
            .and(warp::query::<libvieter::api::LogAppendQuery>())
            .and(body(kib(8 * 1024)))
            .then(|id, who, app, q, b| async move { respond(builds::append_log(app, who, id, q, b).await) })
            .boxed(),
        warp::path!("api" / "v1" / "jobs" / u64 / "log")
            .and(warp::get())
            .and(admin.clone())
            .and(app_f.clone())
            .and(warp::query::<libvieter::api::LogQuery>())
            .then(|id, _, app, q| async move { respond(builds::read_log(app, id, q).await) })
            .boxed(),
        warp::path!("api" / "v1" / "agents")
            .and(warp::get())
            .and(admin)
            .and(app_f)
            .then(|_, app| async move { respond(builds::agents(app).await) })
            .boxed(),
    ])
}
