//! The web interface (`/ui/`): server-rendered pages over the same library services the API uses
//! ([`libvieter::repo::Repository`], [`libvieter::builds::BuildService`]), with a little JavaScript for
//! what must be live (search as you type, a running job's log and state over Server-Sent Events).
//!
//! Who may read what is [`ReadPolicy`]'s (config `ui_public`, `ui_public_builds`); only the admin
//! changes anything. Signing in keeps the key's digest server-side ([`session`]); forms that change
//! state carry the session's CSRF token and must come from this origin. Every asset is embedded.

pub mod ansi;
pub mod pages;
pub mod session;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use libvieter::access::{Area, ReadPolicy, Role};
use libvieter::api::{
    FilesQuery, JobFilter, ListQuery, PackageSort, PackageSummary, TargetFilter, TargetForm, MAX_PAGE,
};
use libvieter::builds::{LogRead, LogReader, LogTail};
use libvieter::depend::Dependency;
use libvieter::job::{Job, JobId, JobState};
use libvieter::name::{Arch, PkgName, RepoName};
use libvieter::resolve::{Available, Source};
use libvieter::target::{Target, TargetId, TargetPatch};
use maud::Markup;
use warp::filters::BoxedFilter;
use warp::http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use warp::{Filter, Reply};

use crate::builds::{BuildsError, LogWatch};
use crate::error::ApiError;
use crate::routes::blocking;
use crate::routes::Seg;
use crate::App;
use pages::Ctx;
use session::{Sessions, SignedIn};

/// Packages in a page of a repository.
const PACKAGE_PAGE: usize = 50;
/// Targets and jobs in a page.
const LIST_PAGE: usize = 50;
/// The end of a log shown on a job's page; the raw log has all of it.
const LOG_TAIL: u64 = 1 << 20;
/// Most bytes of a live log sent in one event.
const LOG_EVENT: usize = 64 * 1024;
/// Longest form body.
const FORM_LIMIT: u64 = 64 * 1024;
/// A live job list hears of changes at most this often (a burst of changes is one reload).
const LIVE_EVERY: Duration = Duration::from_millis(250);

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");

/// The web interface's state: its sessions.
#[derive(Default)]
pub struct Ui {
    pub sessions: Sessions,
}

/// Who is asking, from the session cookie (or an `X-Api-Key` header, for scripts).
#[derive(Clone)]
struct Reader {
    role: Option<Role>,
    session: Option<SignedIn>,
    session_id: Option<String>,
    policy: ReadPolicy,
    path: String,
    host: Option<String>,
    origin_ok: bool,
    https: bool,
}

impl Reader {
    fn ctx(&self) -> Ctx {
        Ctx {
            role: self.role,
            csrf: self.session.as_ref().map(|s| s.csrf.clone()),
            builds: self.policy.may_read(Area::Builds, self.role),
            admin: ReadPolicy::may_change(self.role),
            path: self.path.clone(),
        }
    }

    /// The page, or a redirect to the sign-in page when the area needs a key.
    fn read(&self, area: Area) -> Result<(), Box<Page>> {
        if self.policy.may_read(area, self.role) {
            Ok(())
        } else {
            Err(Box::new(redirect(&format!("/ui/login?next={}", pages::urlencode(&self.path)))))
        }
    }

    /// A state-changing form: the admin, from this origin, with the session's token.
    fn change(&self, form: &HashMap<String, String>) -> Result<(), Box<Page>> {
        if !self.origin_ok {
            return Err(Box::new(
                self.fail(StatusCode::FORBIDDEN, "this form was not sent from this server's pages"),
            ));
        }
        if !ReadPolicy::may_change(self.role) {
            return Err(Box::new(
                self.fail(StatusCode::FORBIDDEN, "only the admin key may change targets and jobs"),
            ));
        }
        if let Some(session) = &self.session {
            let presented = form.get("csrf").map(String::as_str).unwrap_or("");
            if !session::csrf_ok(&session.csrf, presented) {
                let stale = "the form's token is missing or stale: reload the page";
                return Err(Box::new(self.fail(StatusCode::FORBIDDEN, stale)));
            }
        }
        Ok(())
    }

    fn fail(&self, status: StatusCode, message: &str) -> Response<warp::hyper::body::Bytes> {
        let mut r = html_response(pages::error(&self.ctx(), status.as_u16(), message));
        *r.status_mut() = status;
        r
    }

    fn api_error(&self, e: ApiError) -> Response<warp::hyper::body::Bytes> {
        self.fail(e.status, &e.message)
    }

    /// The server as the reader reached it (for the pacman.conf snippet).
    fn server_url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.host.as_deref().unwrap_or("localhost"))
    }
}

type Page = Response<warp::hyper::body::Bytes>;

fn html_response(markup: Markup) -> Page {
    let mut r = Response::new(warp::hyper::body::Bytes::from(markup.into_string()));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    security_headers(h);
    r
}

fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn redirect(to: &str) -> Page {
    let mut r = Response::new(warp::hyper::body::Bytes::new());
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn repo_err(context: &'static str) -> impl FnOnce(libvieter::repo::RepoError) -> ApiError {
    move |e| ApiError::internal(context, e)
}

fn reader(app: Arc<App>) -> impl Filter<Extract = (Reader,), Error = Infallible> + Clone {
    warp::path::full().and(warp::header::headers_cloned()).map(
        move |path: warp::path::FullPath, headers: HeaderMap| {
            let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let session_id = text("cookie").as_deref().and_then(session::cookie_value).map(str::to_owned);
            let session = session_id.as_deref().and_then(|id| app.ui.sessions.get(&app.keys, id));
            let key_role =
                text(crate::auth::HEADER).and_then(|k| app.keys.role(&libvieter::access::digest(&k)));
            let host = text("host");
            // A browser names the page a form was sent from: it must be one of ours.
            let origin_ok = match (text("origin"), &host) {
                (None, _) => true,
                (Some(origin), Some(host)) => {
                    origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"))
                        == Some(host.as_str())
                }
                (Some(_), None) => false,
            };
            Reader {
                role: session.as_ref().map(|s| s.role).or(key_role),
                session,
                session_id,
                policy: ReadPolicy {
                    repos_public: app.config.ui_public,
                    builds_public: app.config.ui_public_builds,
                },
                path: path.as_str().to_owned(),
                https: text("x-forwarded-proto").as_deref() == Some("https"),
                host,
                origin_ok,
            }
        },
    )
}

fn form() -> impl Filter<Extract = (HashMap<String, String>,), Error = warp::Rejection> + Clone {
    warp::body::content_length_limit(FORM_LIMIT).and(warp::body::form())
}

/// Every route of the web interface, and `/` → `/ui/`.
pub fn routes(app: Arc<App>) -> BoxedFilter<(warp::reply::Response,)> {
    let with = {
        let app = app.clone();
        warp::any().map(move || app.clone())
    };
    let r = reader(app.clone());
    let root = warp::path::end().and(warp::get()).map(|| redirect("/ui/").into_response());
    let asset = |body: &'static str, kind: &'static str| {
        move || {
            let mut r = Response::new(warp::hyper::body::Bytes::from_static(body.as_bytes()));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
            security_headers(r.headers_mut());
            r.into_response()
        }
    };
    let style = warp::path!("ui" / "static" / "style.css")
        .and(warp::get())
        .map(asset(STYLE, "text/css; charset=utf-8"));
    let script = warp::path!("ui" / "static" / "app.js")
        .and(warp::get())
        .map(asset(SCRIPT, "text/javascript; charset=utf-8"));

    let overview = warp::path!("ui").and(warp::get()).and(r.clone()).and(with.clone()).then(overview);
    let login_page = warp::path!("ui" / "login")
        .and(warp::get())
        .and(r.clone())
        .and(warp::query::<HashMap<String, String>>())
        .map(|r: Reader, q: HashMap<String, String>| {
            let next = q.get("next").cloned().unwrap_or_else(|| "/ui/".into());
            html_response(pages::login(&r.ctx(), None, &next))
        });
    let login =
        warp::path!("ui" / "login").and(warp::post()).and(r.clone()).and(with.clone()).and(form()).map(login);
    let logout = warp::path!("ui" / "logout")
        .and(warp::post())
        .and(r.clone())
        .and(with.clone())
        .and(form())
        .map(logout);

    let repo = warp::path!("ui" / "repos" / Seg)
        .and(warp::get())
        .and(r.clone())
        .and(with.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(repo_page);
    let package = warp::path!("ui" / "repos" / Seg / Seg / Seg)
        .and(warp::get())
        .and(r.clone())
        .and(with.clone())
        .then(package_page);

    let targets = warp::path!("ui" / "targets")
        .and(warp::get())
        .and(r.clone())
        .and(with.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(targets_page);
    let new_target =
        warp::path!("ui" / "targets" / "new").and(warp::get()).and(r.clone()).map(|r: Reader| {
            if !r.ctx().admin {
                return r.fail(StatusCode::FORBIDDEN, "only the admin key may add targets");
            }
            let form = TargetForm { kind: "git".into(), ..Default::default() };
            html_response(pages::target_form(&r.ctx(), None, &form, None))
        });
    let add_target = warp::path!("ui" / "targets")
        .and(warp::post())
        .and(r.clone())
        .and(with.clone())
        .and(form())
        .then(add_target);
    let target = warp::path!("ui" / "targets" / u64)
        .and(warp::get())
        .and(r.clone())
        .and(with.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(target_page);
    let edit_target = warp::path!("ui" / "targets" / u64 / "edit")
        .and(warp::get())
        .and(r.clone())
        .and(with.clone())
        .then(edit_page);
    let save_target = warp::path!("ui" / "targets" / u64)
        .and(warp::post())
        .and(r.clone())
        .and(with.clone())
        .and(form())
        .then(save_target);
    let target_action = warp::path!("ui" / "targets" / u64 / String)
        .and(warp::post())
        .and(r.clone())
        .and(with.clone())
        .and(form())
        .then(target_action);

    let jobs = warp::path!("ui" / "jobs")
        .and(warp::get())
        .and(r.clone())
        .and(with.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(jobs_page);
    let job =
        warp::path!("ui" / "jobs" / u64).and(warp::get()).and(r.clone()).and(with.clone()).then(job_page);
    let job_log =
        warp::path!("ui" / "jobs" / u64 / "log").and(warp::get()).and(r.clone()).and(with.clone()).then(
            |id: u64, r: Reader, app: Arc<App>| async move {
                if let Err(page) = r.read(Area::Builds) {
                    return (*page).into_response();
                }
                let query = libvieter::api::LogQuery::default();
                match crate::routes::builds::read_log(app, id, query).await {
                    Ok(response) => response,
                    Err(e) => r.api_error(e).into_response(),
                }
            },
        );
    let events = warp::path!("ui" / "jobs" / u64 / "events")
        .and(warp::get())
        .and(r.clone())
        .and(with.clone())
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::header::optional::<u64>("last-event-id"))
        .then(job_events);
    let job_list_events = warp::path!("ui" / "events" / "jobs")
        .and(warp::get())
        .and(r.clone())
        .and(with.clone())
        .map(job_list_events);
    let job_action = warp::path!("ui" / "jobs" / u64 / String)
        .and(warp::post())
        .and(r.clone())
        .and(with.clone())
        .and(form())
        .then(job_action);
    let agents = warp::path!("ui" / "agents").and(warp::get()).and(r.clone()).and(with.clone()).map(
        |r: Reader, app: Arc<App>| {
            if let Err(page) = r.read(Area::Builds) {
                return *page;
            }
            html_response(pages::agents(&r.ctx(), &app.builds.service.agents(), app.builds.service.now()))
        },
    );

    // Each route boxed on its own (see `routes::first_of`).
    let all: Vec<BoxedFilter<(warp::reply::Response,)>> = vec![
        root.boxed(),
        style.boxed(),
        script.boxed(),
        overview.map(Reply::into_response).boxed(),
        login_page.map(Reply::into_response).boxed(),
        login.map(Reply::into_response).boxed(),
        logout.map(Reply::into_response).boxed(),
        repo.map(Reply::into_response).boxed(),
        package.map(Reply::into_response).boxed(),
        new_target.map(Reply::into_response).boxed(),
        targets.map(Reply::into_response).boxed(),
        add_target.map(Reply::into_response).boxed(),
        edit_target.map(Reply::into_response).boxed(),
        target.map(Reply::into_response).boxed(),
        save_target.map(Reply::into_response).boxed(),
        target_action.map(Reply::into_response).boxed(),
        jobs.map(Reply::into_response).boxed(),
        job.map(Reply::into_response).boxed(),
        job_log.boxed(),
        events.boxed(),
        job_list_events.boxed(),
        job_action.map(Reply::into_response).boxed(),
        agents.map(Reply::into_response).boxed(),
    ];
    crate::routes::first_of(all)
}

// ---- signing in ----

fn login(r: Reader, app: Arc<App>, form: HashMap<String, String>) -> Page {
    let next = form.get("next").filter(|n| n.starts_with("/ui/") && !n.starts_with("//")).cloned();
    let next = next.unwrap_or_else(|| "/ui/".to_owned());
    if !r.origin_ok {
        return r.fail(StatusCode::FORBIDDEN, "this form was not sent from this server's pages");
    }
    let key = form.get("key").map(String::as_str).unwrap_or("");
    match app.ui.sessions.sign_in(&app.keys, key) {
        Some(id) => {
            let mut response = redirect(&next);
            if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&id)) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            response
        }
        None => {
            let mut page =
                html_response(pages::login(&r.ctx(), Some("That is not one of this server's keys."), &next));
            *page.status_mut() = StatusCode::UNAUTHORIZED;
            page
        }
    }
}

fn logout(r: Reader, app: Arc<App>, form: HashMap<String, String>) -> Page {
    if let (Some(id), Some(session)) = (&r.session_id, &r.session) {
        if !session::csrf_ok(&session.csrf, form.get("csrf").map(String::as_str).unwrap_or("")) {
            return r.fail(StatusCode::FORBIDDEN, "the form's token is missing or stale: reload the page");
        }
        app.ui.sessions.sign_out(id);
    }
    let mut response = redirect("/ui/");
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

// ---- overview and repositories ----

/// The targets the jobs name, by id.
fn targets_of(app: &App, jobs: &[&Job]) -> BTreeMap<TargetId, Target> {
    let ids: BTreeSet<TargetId> = jobs.iter().map(|j| j.target()).collect();
    ids.into_iter().filter_map(|id| app.builds.service.target(id).ok().map(|t| (id, t))).collect()
}

async fn overview(r: Reader, app: Arc<App>) -> Page {
    if let Err(page) = r.read(Area::Repos) {
        return *page;
    }
    let builds = r.ctx().builds;
    let ctx = r.ctx();
    let result = blocking(move || {
        let repos = app.repos.repos().map_err(repo_err("listing repositories"))?;
        let (mut running, mut waiting, mut agents) = (Vec::new(), Vec::new(), Vec::new());
        if builds {
            let jobs = |state| JobFilter { state: Some(state), limit: Some(MAX_PAGE), ..Default::default() };
            running = app.builds.service.list_jobs(&jobs(JobState::Running))?;
            waiting = app.builds.service.list_jobs(&jobs(JobState::Queued))?;
            waiting.extend(app.builds.service.list_jobs(&jobs(JobState::Waiting))?);
            agents = app.builds.service.agents();
        }
        let all: Vec<&Job> = running.iter().chain(&waiting).collect();
        let targets = targets_of(&app, &all);
        let overview = pages::Overview {
            repos: &repos,
            running: &running,
            waiting: &waiting,
            agents: &agents,
            targets: &targets,
        };
        Ok::<_, ApiError>(pages::overview(&ctx, &overview))
    });
    match result.await {
        Ok(markup) => html_response(markup),
        Err(e) => r.api_error(e),
    }
}

fn page_number(q: &HashMap<String, String>) -> usize {
    q.get("page").and_then(|p| p.parse::<usize>().ok()).filter(|&p| p >= 1).unwrap_or(1).min(1_000_000)
}

async fn repo_page(repo: Seg, r: Reader, app: Arc<App>, q: HashMap<String, String>) -> Page {
    if let Err(page) = r.read(Area::Repos) {
        return *page;
    }
    let not_found = || r.fail(StatusCode::NOT_FOUND, &format!("there is no repository {}", repo.0));
    let Ok(name) = RepoName::new(repo.0.clone()) else { return not_found() };
    let text = |k: &str| q.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let (query, arch) = (text("q"), text("arch"));
    let sort = PackageSort::ALL.into_iter().find(|s| s.as_str() == text("sort")).unwrap_or_default();
    let desc = text("order") == "desc";
    let page = page_number(&q);
    let fragment = text("fragment") == "rows";
    let r2 = r.clone();
    let result = blocking(move || {
        let repos = app.repos.repos().map_err(repo_err("listing repositories"))?;
        let Some(info) = repos.into_iter().find(|i| i.name == name.as_str()) else { return Ok(None) };
        let chosen: Vec<Arch> = match Arch::new(arch.clone()) {
            Ok(a) if info.archs.iter().any(|i| i.arch == a) => vec![a],
            _ => info.archs.iter().map(|i| i.arch.clone()).collect(),
        };
        let offset = (page - 1) * PACKAGE_PAGE;
        // One arch-repo: the library's page. Several: each one's first `offset + PACKAGE_PAGE` (at most
        // `MAX_PAGE`) in the order asked, merged in that order.
        let single = chosen.len() == 1;
        let list = ListQuery {
            query: Some(query.clone()).filter(|q| !q.is_empty()),
            offset: Some(if single { offset } else { 0 }),
            limit: Some(if single { PACKAGE_PAGE } else { offset + PACKAGE_PAGE }),
            sort: Some(sort),
            desc: Some(desc),
        };
        let (mut total, mut rows) = (0, Vec::<(String, PackageSummary)>::new());
        for a in &chosen {
            if let Some(p) = app.repos.package_page(&name, a, &list).map_err(repo_err("listing packages"))? {
                total += p.total;
                rows.extend(p.packages.into_iter().map(|s| (a.to_string(), s)));
            }
        }
        rows.sort_by(|(a1, p1), (a2, p2)| {
            let order = sort.compare(p1, p2);
            let order = if desc { order.reverse() } else { order };
            order.then_with(|| a1.cmp(a2))
        });
        let rows: Vec<_> =
            rows.into_iter().skip(if single { 0 } else { offset }).take(PACKAGE_PAGE).collect();
        let names: BTreeSet<PkgName> = rows.iter().map(|(_, p)| p.name.clone()).collect();
        let mut built_by = BTreeMap::new();
        for b in app.builds.service.package_builds(&name, &names)? {
            built_by.entry((b.name.to_string(), b.version.to_string())).or_insert(b.job);
        }
        let one = (chosen.len() == 1 && info.archs.len() > 1).then(|| chosen[0].to_string());
        let base_query = format!(
            "q={}&arch={}&sort={}&order={}&",
            pages::urlencode(&query),
            one.as_deref().unwrap_or(""),
            sort.as_str(),
            if desc { "desc" } else { "asc" }
        );
        let table = pages::PackageRows {
            repo: name.as_str(),
            packages: &rows,
            total,
            offset,
            limit: PACKAGE_PAGE,
            built_by: &built_by,
            base_query,
        };
        if fragment {
            return Ok(Some(pages::package_rows(&table)));
        }
        let view = pages::RepoView {
            repo: name.as_str(),
            archs: &info.archs,
            arch: one.as_deref(),
            query: &query,
            sort,
            desc,
            rows: &table,
        };
        Ok::<_, ApiError>(Some(pages::repo(&r2.ctx(), &view)))
    });
    match result.await {
        Ok(Some(markup)) => html_response(markup),
        Ok(None) => not_found(),
        Err(e) => r.api_error(e),
    }
}

async fn package_page(repo: Seg, arch: Seg, name: Seg, r: Reader, app: Arc<App>) -> Page {
    if let Err(page) = r.read(Area::Repos) {
        return *page;
    }
    let missing = format!("there is no package {} in {}/{}", name.0, repo.0, arch.0);
    let (Ok(repo), Ok(arch), Ok(name)) = (RepoName::new(repo.0), Arch::new(arch.0), PkgName::new(name.0))
    else {
        return r.fail(StatusCode::NOT_FOUND, &missing);
    };
    let r2 = r.clone();
    let signed = app.repos.is_signed();
    let result = blocking(move || {
        let Some(detail) = app
            .repos
            .package(&repo, &arch, &name, &FilesQuery::default())
            .map_err(repo_err("reading a package"))?
        else {
            return Ok(None);
        };
        let mut available = Available::new();
        for p in app.repos.providers(&repo, &arch).map_err(repo_err("reading a repository"))? {
            available.add(p);
        }
        let link = |dep: &str| -> Option<String> {
            // An optional dependency is `name: why`.
            let spec = dep.split(':').next().unwrap_or(dep).trim();
            let d = Dependency::parse(spec).ok()?;
            let p = available.satisfies(&d)?;
            matches!(p.source, Source::Target(_)).then(|| format!("/ui/repos/{repo}/{arch}/{}", p.name))
        };
        let info = &detail.info;
        let deps = [
            ("Depends on", &info.depends),
            ("Optional dependencies", &info.optdepends),
            ("Build dependencies", &info.makedepends),
            ("Check dependencies", &info.checkdepends),
            ("Provides", &info.provides),
            ("Conflicts with", &info.conflicts),
            ("Replaces", &info.replaces),
        ]
        .into_iter()
        .map(|(field, list)| {
            let linked = field != "Provides";
            (field, list.iter().map(|d| (d.clone(), if linked { link(d) } else { None })).collect())
        })
        .collect();
        let builds = app.builds.service.package_builds(&repo, &[name.clone()].into())?;
        let view = pages::PackageView {
            repo: repo.as_str(),
            arch: arch.as_str(),
            detail: &detail,
            deps,
            builds: &builds,
            server: r2.server_url(),
            signed,
        };
        Ok::<_, ApiError>(Some(pages::package(&r2.ctx(), &view)))
    });
    match result.await {
        Ok(Some(markup)) => html_response(markup),
        Ok(None) => r.fail(StatusCode::NOT_FOUND, &missing),
        Err(e) => r.api_error(e),
    }
}

// ---- targets ----

async fn targets_page(r: Reader, app: Arc<App>, q: HashMap<String, String>) -> Page {
    if let Err(page) = r.read(Area::Builds) {
        return *page;
    }
    let query = q.get("q").map(|v| v.trim().to_owned()).unwrap_or_default();
    let page = page_number(&q);
    let r2 = r.clone();
    let result = blocking(move || {
        let filter = TargetFilter {
            query: Some(query.clone()).filter(|q| !q.is_empty()),
            offset: Some((page - 1) * LIST_PAGE),
            limit: Some(LIST_PAGE + 1),
            ..Default::default()
        };
        let mut targets = app.builds.service.list_targets(&filter)?;
        let more = targets.len() > LIST_PAGE;
        targets.truncate(LIST_PAGE);
        let next = app.builds.service.next_runs(&targets)?;
        let mut last = BTreeMap::new();
        for t in &targets {
            let f = JobFilter { target: Some(t.id), limit: Some(1), ..Default::default() };
            if let Some(j) = app.builds.service.list_jobs(&f)?.pop() {
                last.insert(t.id, j);
            }
        }
        let rows: Vec<pages::TargetRow<'_>> = targets
            .iter()
            .map(|t| pages::TargetRow {
                target: t,
                last: last.get(&t.id),
                next: next.get(&t.id).copied().flatten(),
            })
            .collect();
        Ok::<_, ApiError>(pages::targets(&r2.ctx(), &rows, &query, page, more))
    });
    match result.await {
        Ok(markup) => html_response(markup),
        Err(e) => r.api_error(e),
    }
}

async fn target_page(id: u64, r: Reader, app: Arc<App>, q: HashMap<String, String>) -> Page {
    if let Err(page) = r.read(Area::Builds) {
        return *page;
    }
    let notice = q.get("done").cloned();
    let r2 = r.clone();
    let result = blocking(move || {
        let target = app.builds.service.target(TargetId(id))?;
        let jobs = app.builds.service.list_jobs(&JobFilter {
            target: Some(target.id),
            limit: Some(25),
            ..Default::default()
        })?;
        let next = app.builds.service.next_runs(std::slice::from_ref(&target))?;
        let next = next.get(&target.id).copied().flatten();
        let tree = app.builds.service.dependency_tree(target.id)?;
        Ok::<_, ApiError>(pages::target(&r2.ctx(), &target, &tree, &jobs, next, notice.as_deref()))
    });
    match result.await {
        Ok(markup) => html_response(markup),
        Err(e) => r.api_error(e),
    }
}

async fn edit_page(id: u64, r: Reader, app: Arc<App>) -> Page {
    if !r.ctx().admin {
        return r.fail(StatusCode::FORBIDDEN, "only the admin key may edit targets");
    }
    match blocking(move || app.builds.service.target(TargetId(id))).await {
        Ok(t) => html_response(pages::target_form(&r.ctx(), Some(t.id), &TargetForm::of(&t), None)),
        Err(e) => r.api_error(e),
    }
}

/// The form's target fields (the CSRF token and unknown fields dropped).
fn target_form(form: &HashMap<String, String>) -> TargetForm {
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    TargetForm {
        kind: get("kind"),
        url: get("url"),
        branch: get("branch"),
        path: get("path"),
        repo: get("repo"),
        schedule: get("schedule"),
        arch: get("arch"),
        base_image: get("base_image"),
        build_timeout_secs: get("build_timeout_secs"),
    }
}

fn form_error(
    r: &Reader,
    id: Option<TargetId>,
    form: &TargetForm,
    status: StatusCode,
    message: &str,
) -> Page {
    let mut page = html_response(pages::target_form(&r.ctx(), id, form, Some(message)));
    *page.status_mut() = status;
    page
}

async fn add_target(r: Reader, app: Arc<App>, form: HashMap<String, String>) -> Page {
    if let Err(page) = r.change(&form) {
        return *page;
    }
    let fields = target_form(&form);
    let input = match fields.clone().into_new() {
        Ok(input) => input,
        Err(e) => return form_error(&r, None, &fields, StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match crate::routes::builds::add_target(app, input).await {
        Ok(created) => redirect(&format!("/ui/targets/{}?done=added", created.target.id.0)),
        Err(e) => form_error(&r, None, &fields, e.status, &e.message),
    }
}

async fn save_target(id: u64, r: Reader, app: Arc<App>, form: HashMap<String, String>) -> Page {
    if let Err(page) = r.change(&form) {
        return *page;
    }
    let fields = target_form(&form);
    let patch = match fields.clone().into_patch() {
        Ok(patch) => patch,
        Err(e) => {
            return form_error(&r, Some(TargetId(id)), &fields, StatusCode::BAD_REQUEST, &e.to_string())
        }
    };
    match blocking(move || app.builds.service.patch_target(TargetId(id), &patch)).await {
        Ok(t) => redirect(&format!("/ui/targets/{}?done=saved", t.id.0)),
        Err(e) => form_error(&r, Some(TargetId(id)), &fields, e.status, &e.message),
    }
}

async fn target_action(
    id: u64,
    action: String,
    r: Reader,
    app: Arc<App>,
    form: HashMap<String, String>,
) -> Page {
    if let Err(page) = r.change(&form) {
        return *page;
    }
    let target = TargetId(id);
    let enabled = |on| TargetPatch { enabled: Some(on), ..Default::default() };
    let done = match action.as_str() {
        "build" => {
            let req = libvieter::api::QueueRequest { target, arch: None, force: true };
            blocking(move || app.builds.service.queue_build(&req)).await.map(|jobs| match jobs.first() {
                Some(job) => format!("/ui/jobs/{}", job.id().0),
                None => format!("/ui/targets/{id}"),
            })
        }
        "enable" => blocking(move || app.builds.service.patch_target(target, &enabled(true)))
            .await
            .map(|_| format!("/ui/targets/{id}?done=enabled")),
        "disable" => blocking(move || app.builds.service.patch_target(target, &enabled(false)))
            .await
            .map(|_| format!("/ui/targets/{id}?done=disabled")),
        "delete" => {
            blocking(move || app.builds.service.delete_target(target)).await.map(|_| "/ui/targets".to_owned())
        }
        _ => return r.fail(StatusCode::NOT_FOUND, "no such action"),
    };
    match done {
        Ok(to) => redirect(&to),
        Err(e) => r.api_error(e),
    }
}

// ---- jobs ----

async fn jobs_page(r: Reader, app: Arc<App>, q: HashMap<String, String>) -> Page {
    if let Err(page) = r.read(Area::Builds) {
        return *page;
    }
    let text = |k: &str| q.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let state = JobState::ALL.into_iter().find(|s| s.as_str() == text("state"));
    let target = text("target").parse().ok().map(TargetId);
    let (arch, agent) = (text("arch"), text("agent"));
    let page = page_number(&q);
    let r2 = r.clone();
    let result = blocking(move || {
        let filter = JobFilter {
            state,
            target,
            arch: Some(arch.clone()).filter(|a| !a.is_empty()),
            agent: Some(agent.clone()).filter(|a| !a.is_empty()),
            offset: Some((page - 1) * LIST_PAGE),
            limit: Some(LIST_PAGE + 1),
            ..Default::default()
        };
        let mut jobs = app.builds.service.list_jobs(&filter)?;
        let more = jobs.len() > LIST_PAGE;
        jobs.truncate(LIST_PAGE);
        let all: Vec<&Job> = jobs.iter().collect();
        let targets = targets_of(&app, &all);
        let view = pages::JobsView {
            jobs: &jobs,
            targets: &targets,
            state,
            target,
            arch: &arch,
            agent: &agent,
            page,
            more,
        };
        Ok::<_, ApiError>(pages::jobs(&r2.ctx(), &view))
    });
    match result.await {
        Ok(markup) => html_response(markup),
        Err(e) => r.api_error(e),
    }
}

async fn job_page(id: u64, r: Reader, app: Arc<App>) -> Page {
    if let Err(page) = r.read(Area::Builds) {
        return *page;
    }
    let builds = app.clone();
    let found = blocking(move || {
        let job = builds.builds.service.job(JobId(id))?;
        let target = builds.builds.service.target(job.target()).ok();
        Ok::<_, ApiError>((job, target))
    })
    .await;
    let (job, target) = match found {
        Ok(found) => found,
        Err(e) => return r.api_error(e),
    };
    let builds = app.builds.clone();
    let tail = blocking(move || builds.logs().tail(JobId(id), LOG_TAIL).map_err(BuildsError::from)).await;
    let LogTail { mut bytes, cut, size: len } = match tail {
        Ok(tail) => tail,
        Err(e) => return r.api_error(e),
    };
    // A running job's page shows whole lines; the live stream continues at the next line.
    let live_from = if job.state().is_final() {
        None
    } else {
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let dropped = (bytes.len() - whole) as u64;
        bytes.truncate(whole);
        Some(len - dropped)
    };
    let view = pages::JobView {
        job: &job,
        target: target.as_ref(),
        log: ansi::to_html(&bytes),
        log_cut: cut,
        live_from,
    };
    html_response(pages::job(&r.ctx(), &view))
}

/// What a live log stream keeps between events.
struct Follow {
    app: Arc<App>,
    reader: LogReader,
    ansi: ansi::AnsiHtml,
    watch: LogWatch,
    /// The job as last sent (its state, lease and agent), to send a new head when it changes.
    last: Option<(JobState, Option<chrono::DateTime<chrono::Utc>>)>,
    done: bool,
}

impl Follow {
    /// The next event: new log bytes, a changed head, the end, or `None` after the end.
    async fn next(&mut self) -> Option<warp::sse::Event> {
        if self.done {
            return None;
        }
        loop {
            self.watch.seen();
            // One trip to the blocking pool per wake-up: the read and, when it brought nothing, the job.
            let (app, mut reader) = (self.app.clone(), self.reader.clone());
            let step = tokio::task::spawn_blocking(move || {
                let read = app.builds.logs().read(&app.builds.service, &mut reader, LOG_EVENT);
                let head = matches!(read, Ok(LogRead::Pending | LogRead::End)).then(|| {
                    let job = app.builds.service.find_job(reader.job()).ok().flatten();
                    let target = job.as_ref().and_then(|j| app.builds.service.target(j.target()).ok());
                    (job, target)
                });
                (read, head, reader)
            })
            .await;
            let (read, head) = match step {
                Ok((read, head, reader)) => {
                    self.reader = reader;
                    (read.map_err(|e| e.to_string()), head)
                }
                Err(e) => (Err(e.to_string()), None),
            };
            let ended = match read {
                Ok(LogRead::Bytes(bytes)) => {
                    let html = self.ansi.push(&bytes);
                    let offset = self.reader.offset().to_string();
                    return Some(warp::sse::Event::default().event("log").id(offset).data(html));
                }
                Ok(LogRead::Pending) => false,
                Ok(LogRead::End) => true,
                Err(e) => {
                    tracing::warn!(job = %self.reader.job(), "following a log: {e}");
                    self.done = true;
                    return Some(warp::sse::Event::default().event("end").data("error"));
                }
            };
            let Some((Some(job), target)) = head else {
                self.done = true;
                return Some(warp::sse::Event::default().event("end").data("gone"));
            };
            let seen = (job.state(), job.lease_expires_at());
            if self.last != Some(seen) {
                self.last = Some(seen);
                let head = pages::job_head(&job, target.as_ref()).into_string();
                return Some(warp::sse::Event::default().event("state").data(head));
            }
            if ended {
                // Everything it wrote before it ended was read.
                self.done = true;
                let tail = self.ansi.finish();
                return Some(warp::sse::Event::default().event("end").data(tail));
            }
            self.watch.changed(Duration::from_secs(1)).await;
        }
    }
}

async fn job_events(
    id: u64,
    r: Reader,
    app: Arc<App>,
    q: HashMap<String, String>,
    last_id: Option<u64>,
) -> warp::reply::Response {
    if let Err(page) = r.read(Area::Builds) {
        return (*page).into_response();
    }
    // A reconnecting browser says where it was (the last event's id); a new one where its page ended.
    let offset = last_id.or_else(|| q.get("from").and_then(|f| f.parse().ok())).unwrap_or(0);
    let follow = Follow {
        watch: app.builds.watch_logs(),
        app,
        reader: LogReader::follow(JobId(id), offset),
        ansi: ansi::AnsiHtml::new(),
        last: None,
        done: false,
    };
    // The follower runs as its own task; the response streams what it sends and, when the browser goes
    // away, the closed channel ends the task.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let stopping = follow.app.stopping.clone();
    tokio::spawn(async move {
        let mut follow = follow;
        loop {
            // The server stopping ends the stream (the browser reconnects to the next server).
            let event = tokio::select! {
                event = follow.next() => event,
                () = stopping.cancelled() => None,
            };
            let Some(event) = event else { break };
            if tx.send(event).await.is_err() {
                break;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    warp::sse::reply(warp::sse::keep_alive().interval(Duration::from_secs(15)).stream(stream)).into_response()
}

/// Tells a page with live job lists when jobs changed: an event `jobs` (its data a change counter), at
/// most every [`LIVE_EVERY`]; the page then fetches itself again and replaces its lists.
fn job_list_events(r: Reader, app: Arc<App>) -> warp::reply::Response {
    if let Err(page) = r.read(Area::Builds) {
        return (*page).into_response();
    }
    let stopping = app.stopping.clone();
    let stream = futures_util::stream::unfold(app.builds.job_changes(), move |mut changes| {
        let stopping = stopping.clone();
        async move {
            // Ends when the server stops; the browser going away drops the stream.
            tokio::select! {
                changed = changes.changed() => changed.ok()?,
                () = stopping.cancelled() => return None,
            }
            tokio::time::sleep(LIVE_EVERY).await;
            let count = *changes.borrow_and_update();
            let event = warp::sse::Event::default().event("jobs").data(count.to_string());
            Some((Ok::<_, Infallible>(event), changes))
        }
    });
    warp::sse::reply(warp::sse::keep_alive().interval(Duration::from_secs(15)).stream(stream)).into_response()
}

async fn job_action(
    id: u64,
    action: String,
    r: Reader,
    app: Arc<App>,
    form: HashMap<String, String>,
) -> Page {
    if let Err(page) = r.change(&form) {
        return *page;
    }
    let job = JobId(id);
    let done = match action.as_str() {
        "cancel" => blocking(move || app.builds.service.cancel(job)).await.map(|j| j.id()),
        "retry" => blocking(move || app.builds.service.retry(job)).await.map(|j| j.id()),
        _ => return r.fail(StatusCode::NOT_FOUND, "no such action"),
    };
    match done {
        Ok(to) => redirect(&format!("/ui/jobs/{}", to.0)),
        Err(e) => r.api_error(e),
    }
}
