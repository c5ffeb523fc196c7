//! The HTTP routes: one module per resource, each handler short and delegating to libvieter and
//! [`crate::repo`].

pub mod api_repos;
pub mod delete;
pub mod files;
pub mod publish;

use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::{Filter, Reply};

use crate::auth::{self, Role};
use crate::error::{self, respond};
use crate::App;

fn with_app(app: Arc<App>) -> impl Filter<Extract = (Arc<App>,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || app.clone())
}

/// The OpenAPI document of the JSON API.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// Every route, with JSON errors and request metrics.
pub fn routes(app: Arc<App>) -> BoxedFilter<(warp::reply::Response,)> {
    let keys = app.keys.clone();
    let health = warp::path!("health")
        .and(warp::get())
        .map(|| error::ok(&serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") })));

    let openapi = warp::path!("api" / "v1" / "openapi.json")
        .and(warp::get())
        .map(|| warp::reply::with_header(OPENAPI, "content-type", "application/json").into_response());

    let metrics_auth = app.config.metrics_auth;
    let metrics = warp::path!("api" / "v1" / "metrics")
        .and(warp::get())
        .and(warp::header::optional::<String>(auth::HEADER))
        .and(with_app(app.clone()))
        .and_then(move |key: Option<String>, app: Arc<App>| async move {
            if metrics_auth {
                app.keys.role(key.as_deref()).map_err(warp::reject::custom)?;
            }
            Ok::<_, warp::Rejection>(respond(api_repos::metrics(app).await))
        });

    let repos_api =
        warp::path!("api" / "v1" / "repos")
            .and(warp::get())
            .and(with_app(app.clone()))
            .then(|app| async move { respond(api_repos::list_repos(app).await) })
            .or(warp::path!("api" / "v1" / "repos" / String / String / "packages")
                .and(warp::get())
                .and(warp::query::<libvieter::api::ListQuery>())
                .and(with_app(app.clone()))
                .then(|repo, arch, q, app| async move {
                    respond(api_repos::list_packages(app, repo, arch, q).await)
                }))
            .unify()
            .or(warp::path!("api" / "v1" / "repos" / String / String / "packages" / String)
                .and(warp::get())
                .and(with_app(app.clone()))
                .then(|repo, arch, name, app| async move {
                    respond(api_repos::package(app, repo, arch, name).await)
                }))
            .unify();

    let publish_multipart = warp::path!(String / "publish")
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
        .then(|repo, _role, app, form| async move { respond(publish::multipart(app, repo, form).await) });
    let publish_raw = warp::path!(String / "publish")
        .and(warp::post())
        .and(auth::require(keys.clone(), Role::Agent))
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .and(with_app(app.clone()))
        .then(|repo, _role, length, body, app| async move {
            respond(publish::raw(app, repo, length, Box::pin(body)).await)
        });

    let delete = warp::delete()
        .and(auth::require(keys, Role::Admin))
        .and(
            warp::path!(String)
                .map(|r| (r, None, None))
                .or(warp::path!(String / String).map(|r, a| (r, Some(a), None)))
                .unify()
                .or(warp::path!(String / String / String).map(|r, a, n| (r, Some(a), Some(n))))
                .unify(),
        )
        .and(with_app(app.clone()))
        .then(|_role, (repo, arch, name), app| async move {
            respond(delete::remove(app, repo, arch, name).await)
        });

    let files = warp::path!(String / String / String)
        .and(warp::get().map(|| false).or(warp::head().map(|| true)).unify())
        .and(warp::header::headers_cloned())
        .and(with_app(app.clone()))
        .then(|repo, arch, file, head, headers, app| async move {
            respond(files::serve(app, repo, arch, file, head, headers).await)
        });

    let metrics_app = app.clone();
    let log = warp::log::custom(move |info| {
        let method = info.method().as_str();
        let route = crate::metrics::route_of(method, info.path());
        metrics_app.metrics.observe_request(route, method, info.status().as_u16(), info.elapsed());
        tracing::debug!(method, path = info.path(), status = info.status().as_u16(), elapsed = ?info.elapsed());
    });

    health
        .or(openapi)
        .unify()
        .or(metrics)
        .unify()
        .or(repos_api)
        .unify()
        .or(publish_multipart)
        .unify()
        .or(publish_raw)
        .unify()
        .or(delete)
        .unify()
        .or(files)
        .unify()
        .recover(error::recover)
        .unify()
        .with(log)
        .map(Reply::into_response)
        .boxed()
}
