//! The pages, as maud templates: plain data in, HTML out. No rule is decided here: what to show comes
//! from libvieter's services through [`super`]'s handlers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use libvieter::access::Role;
use libvieter::api::{
    AgentInfo, ArchRepoInfo, PackageChange, PackageDetail, PackageSort, PackageSummary, RepoInfo, TargetForm,
};
use libvieter::builds::{DependencyTree, PackageBuild};
use libvieter::job::{Job, JobId, JobState};
use libvieter::target::{Source, Target, TargetId};
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// Who is reading, and what the navigation shows.
pub struct Ctx {
    pub role: Option<Role>,
    /// The session's CSRF token (signed in with a session).
    pub csrf: Option<String>,
    /// The reader may see targets, jobs and agents.
    pub builds: bool,
    /// The reader may change targets and jobs.
    pub admin: bool,
    /// The path of the page (for the navigation's current item).
    pub path: String,
}

/// The version in the footer and in asset URLs (a new release is a new URL: assets are cached).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn nav_item(ctx: &Ctx, href: &str, label: &str) -> Markup {
    let current = if href == "/ui/" { ctx.path == "/ui/" } else { ctx.path.starts_with(href) };
    html! { a href=(href) aria-current=[current.then_some("page")] { (label) } }
}

/// The event stream that says when jobs changed: a page's elements with `data-live-jobs` (and an id)
/// are replaced by the same elements of the page fetched again (`app.js`).
pub const LIVE_JOBS: &str = "/ui/events/jobs";

/// A whole page.
pub fn layout(ctx: &Ctx, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · Vieter" }
                link rel="stylesheet" href={ "/ui/static/style.css?v=" (VERSION) };
                script src={ "/ui/static/app.js?v=" (VERSION) } defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui/" { "Vieter" }
                    nav aria-label="Main" {
                        (nav_item(ctx, "/ui/", "Overview"))
                        @if ctx.builds {
                            (nav_item(ctx, "/ui/targets", "Targets"))
                            (nav_item(ctx, "/ui/jobs", "Jobs"))
                            (nav_item(ctx, "/ui/agents", "Agents"))
                        }
                    }
                    div.who {
                        @match (ctx.role, &ctx.csrf) {
                            (Some(role), Some(csrf)) => {
                                span { "Signed in (" (role_name(role)) ")" }
                                form method="post" action="/ui/logout" {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button.secondary type="submit" { "Sign out" }
                                }
                            }
                            (Some(role), None) => { span { "Key: " (role_name(role)) } }
                            (None, _) => { a href="/ui/login" { "Sign in" } }
                        }
                    }
                }
                main id="main" tabindex="-1" { (body) }
                footer { "Vieter " (VERSION) " · " a href="/api/v1/openapi.json" { "API" } }
            }
        }
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Agent => "agent",
    }
}

/// A byte count for people.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// An instant, as a `<time>` element in UTC.
pub fn time(t: DateTime<Utc>) -> Markup {
    html! { time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M:%S UTC")) } }
}

fn epoch(secs: u64) -> Markup {
    match i64::try_from(secs).ok().and_then(|s| DateTime::from_timestamp(s, 0)) {
        Some(t) => time(t),
        None => html! { (secs) },
    }
}

/// A duration for people (`1 h 2 min`, `3 min 4 s`, `5 s`).
pub fn duration(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        s if s >= 3600 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{s} s"),
    }
}

fn state_badge(state: JobState) -> Markup {
    html! { span class={ "badge s-" (state.as_str()) } { (state.as_str().replace('_', " ")) } }
}

fn job_link(id: JobId) -> Markup {
    html! { a href={ "/ui/jobs/" (id.0) } { "#" (id.0) } }
}

fn target_link(id: TargetId, targets: &BTreeMap<TargetId, Target>) -> Markup {
    html! {
        a href={ "/ui/targets/" (id.0) } {
            @match targets.get(&id) { Some(t) => { (target_name(t)) }, None => { "target " (id.0) } }
        }
    }
}

/// What a target is called: its AUR name, or the last part of its URL (and path).
pub fn target_name(t: &Target) -> String {
    match &t.source {
        Source::Aur { name } => name.to_string(),
        Source::Git { url, path, .. } => {
            let url = url.to_string();
            let base = url
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or(&url)
                .trim_end_matches(".git")
                .to_owned();
            match path {
                Some(p) => format!("{base}/{p}"),
                None => base,
            }
        }
        Source::Url { url } => url.to_string().rsplit('/').nth(1).unwrap_or("pkgbuild").to_owned(),
    }
}

fn csrf_field(ctx: &Ctx) -> Markup {
    html! { @if let Some(csrf) = &ctx.csrf { input type="hidden" name="csrf" value=(csrf); } }
}

/// A button that posts to `action` (with the CSRF token).
fn post_button(ctx: &Ctx, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(ctx))
            button class=(class) type="submit" { (label) }
        }
    }
}

// ---- overview ----

pub struct Overview<'a> {
    pub repos: &'a [RepoInfo],
    pub running: &'a [Job],
    pub waiting: &'a [Job],
    pub agents: &'a [AgentInfo],
    pub targets: &'a BTreeMap<TargetId, Target>,
}

pub fn overview(ctx: &Ctx, o: &Overview<'_>) -> Markup {
    let body = html! {
        h1 { "Overview" }
        h2 { "Repositories" }
        @if o.repos.is_empty() {
            p.muted { "No repository yet: publish a package with " code { "vieter publish REPO FILE" } "." }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Repository" } th { "Architectures" } th.num { "Packages" } th.num { "Size" } th.wide { "Last change" } } }
                tbody { @for repo in o.repos {
                    tr {
                        td { a href={ "/ui/repos/" (repo.name) } { (repo.name) } }
                        td { @for (i, a) in repo.archs.iter().enumerate() {
                            @if i > 0 { ", " }
                            a href={ "/ui/repos/" (repo.name) "?arch=" (a.arch) } { (a.arch) } " (" (a.packages) ")"
                        } }
                        td.num { (repo.archs.iter().map(|a| a.packages).sum::<u64>()) }
                        td.num { (size(repo.archs.iter().map(|a| a.size).sum())) }
                        td.wide { @if let Some(t) = repo.archs.iter().filter_map(|a| a.last_change).max() { (time(t)) } }
                    }
                } }
            } }
        }
        @if ctx.builds {
            div #live-overview data-live-jobs=(LIVE_JOBS) {
                div.grid.spaced {
                    div.card { h2 { "Running" } div.stat { (o.running.len()) } }
                    div.card { h2 { "Queued or waiting" } div.stat { (o.waiting.len()) } }
                    div.card { h2 { "Agents online" } div.stat { (o.agents.len()) } }
                }
                h2 { "Jobs running now" }
                (job_table(o.running, o.targets, "Nothing is building."))
                h2 { "Queued and waiting" }
                (job_table(o.waiting, o.targets, "Nothing is waiting."))
            }
        } @else {
            p.notice { a href="/ui/login" { "Sign in" } " to see targets, jobs and agents." }
        }
    };
    layout(ctx, "Overview", body)
}

fn job_table(jobs: &[Job], targets: &BTreeMap<TargetId, Target>, empty: &str) -> Markup {
    html! {
        @if jobs.is_empty() { p.muted { (empty) } } @else {
            div.table-wrap { table {
                thead { tr { th { "Job" } th { "Target" } th { "Arch" } th { "State" } th.wide { "Queued" } th.wide { "Agent" } th { "Duration" } } }
                tbody { @for job in jobs { (job_row(job, targets)) } }
            } }
        }
    }
}

fn job_row(job: &Job, targets: &BTreeMap<TargetId, Target>) -> Markup {
    let took = job.started_at().map(|s| job.finished_at().unwrap_or_else(Utc::now) - s);
    html! {
        tr {
            td { (job_link(job.id())) }
            td { (target_link(job.target(), targets)) }
            td { (job.arch()) }
            td { (state_badge(job.state())) @if let Some(c) = job.cause() { " " span.muted { (c.step.as_str()) } } }
            td.wide { (time(job.queued_at())) }
            td.wide { @if let Some(a) = job.agent() { (a.as_str()) } }
            td { @if let Some(d) = took { (duration(d)) } }
        }
    }
}

// ---- a repository ----

pub struct RepoView<'a> {
    pub repo: &'a str,
    pub archs: &'a [ArchRepoInfo],
    /// The architecture shown; `None`: every one.
    pub arch: Option<&'a str>,
    pub query: &'a str,
    pub sort: PackageSort,
    pub desc: bool,
    pub rows: &'a PackageRows<'a>,
}

/// One page of a package table.
pub struct PackageRows<'a> {
    pub repo: &'a str,
    /// (arch-repo, package) pairs of the page.
    pub packages: &'a [(String, PackageSummary)],
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    /// The job that built each `(name, version)`.
    pub built_by: &'a BTreeMap<(String, String), JobId>,
    /// The query string of the page without `page` (for the pager).
    pub base_query: String,
}

pub fn repo(ctx: &Ctx, v: &RepoView<'_>) -> Markup {
    let action = format!("/ui/repos/{}", v.repo);
    let body = html! {
        div.crumbs { a href="/ui/" { "Overview" } " / repository" }
        h1 { (v.repo) }
        p.muted { @for (i, a) in v.archs.iter().enumerate() {
            @if i > 0 { " · " } (a.arch) ": " (a.packages) " packages, " (size(a.size))
        } }
        form.toolbar method="get" action=(action) data-live-search="packages" role="search" {
            label { "Search" input type="search" name="q" value=(v.query) placeholder="name or description" autocomplete="off"; }
            label { "Architecture" select name="arch" {
                option value="" selected[v.arch.is_none()] { "every" }
                @for a in v.archs { option value=(a.arch) selected[v.arch == Some(a.arch.as_str())] { (a.arch) } }
            } }
            label { "Sort by" select name="sort" {
                @for s in PackageSort::ALL { option value=(s.as_str()) selected[s == v.sort] { (s.as_str()) } }
            } }
            label { "Order" select name="order" {
                option value="asc" selected[!v.desc] { "ascending" }
                option value="desc" selected[v.desc] { "descending" }
            } }
            noscript { button type="submit" { "Search" } }
        }
        div id="packages" { (package_rows(v.rows)) }
    };
    layout(ctx, v.repo, body)
}

/// The table of a page of packages and its pager (also the fragment search-as-you-type fetches).
pub fn package_rows(r: &PackageRows<'_>) -> Markup {
    let page = r.offset / r.limit.max(1) + 1;
    let pages = r.total.div_ceil(r.limit.max(1)).max(1);
    let link = |p: usize| format!("/ui/repos/{}?{}page={p}", r.repo, r.base_query);
    html! {
        @if r.packages.is_empty() { p.muted { "No package matches." } } @else {
            div.table-wrap { table {
                thead { tr { th { "Name" } th { "Version" } th { "Arch" } th.num { "Size" } th.wide { "Built" } th.wide { "Job" } } }
                tbody { @for (arch, p) in r.packages {
                    tr {
                        td { a href={ "/ui/repos/" (r.repo) "/" (arch) "/" (p.name) } { (p.name) }
                             @if let Some(d) = &p.desc { div.muted { (d) } } }
                        td.mono { (p.version) }
                        td { (arch) @if p.arch.as_str() != arch { " (" (p.arch) ")" } }
                        td.num { (size(p.csize)) }
                        td.wide { @if let Some(b) = p.builddate { (epoch(b)) } }
                        td.wide { @if let Some(job) = r.built_by.get(&(p.name.to_string(), p.version.to_string())) { (job_link(*job)) } }
                    }
                } }
            } }
        }
        nav.pager aria-label="Pages" {
            @if page > 1 { a href=(link(page - 1)) rel="prev" { "← Previous" } }
            span.muted { "Page " (page) " of " (pages) " · " (r.total) " packages" }
            @if page < pages { a href=(link(page + 1)) rel="next" { "Next →" } }
        }
    }
}

// ---- a package ----

/// Dependencies as written, each with the page of the package of ours that satisfies it.
pub type DepList = Vec<(String, Option<String>)>;

pub struct PackageView<'a> {
    pub repo: &'a str,
    pub arch: &'a str,
    pub detail: &'a PackageDetail,
    /// Each dependency field with its entries and, for each, the package of ours that satisfies it.
    pub deps: Vec<(&'static str, DepList)>,
    pub builds: &'a [PackageBuild],
    /// The server's URL as the reader reached it.
    pub server: String,
    pub signed: bool,
}

pub fn package(ctx: &Ctx, v: &PackageView<'_>) -> Markup {
    let d = v.detail;
    let s = &d.summary;
    let info = &d.info;
    let download = format!("/{}/{}/{}", v.repo, v.arch, s.filename);
    let snippet = format!(
        "[{repo}]\nServer = {server}/$repo/$arch\nSigLevel = {sig}\n",
        repo = v.repo,
        server = v.server,
        sig = if v.signed { "Required DatabaseRequired" } else { "Optional TrustAll" }
    );
    let list = |items: &[String]| items.join(", ");
    let body = html! {
        div.crumbs { a href="/ui/" { "Overview" } " / " a href={ "/ui/repos/" (v.repo) "?arch=" (v.arch) } { (v.repo) } " / " (v.arch) }
        h1 { (s.name) " " span.muted.mono { (s.version) } }
        @if let Some(desc) = &s.desc { p { (desc) } }
        div.actions { a.button href=(download) { "Download " (s.filename) } }
        div.grid {
            div.card {
                h2 { "Package" }
                dl.fields {
                    dt { "Name" } dd { (s.name) }
                    @if let Some(b) = &s.base { dt { "Base" } dd { (b) } }
                    dt { "Version" } dd.mono { (s.version) }
                    dt { "Architecture" } dd { (s.arch) }
                    @if let Some(url) = &info.url { dt { "Upstream" } dd { a href=(url) rel="noreferrer" { (url) } } }
                    @if !info.licenses.is_empty() { dt { "Licenses" } dd { (list(&info.licenses)) } }
                    @if !info.groups.is_empty() { dt { "Groups" } dd { (list(&info.groups)) } }
                    @if let Some(p) = &info.packager { dt { "Packager" } dd { (p) } }
                    @if let Some(b) = s.builddate { dt { "Build date" } dd { (epoch(b)) } }
                    dt { "Published" } dd { (time(s.published_at)) }
                    dt { "Package size" } dd { (size(s.csize)) }
                    dt { "Installed size" } dd { (size(s.isize)) }
                    dt { "File" } dd.mono { (s.filename) }
                    dt { "SHA-256" } dd.mono { (s.sha256) }
                }
            }
            div.card {
                h2 { "Install" }
                p { "Add to " code { "/etc/pacman.conf" } ":" }
                pre { (snippet) }
                p { code { "pacman -Sy " (s.name) } }
            }
        }
        @for (field, entries) in &v.deps {
            @if !entries.is_empty() {
                h2 { (field) }
                ul.deps { @for (dep, link) in entries {
                    li { @match link { Some(href) => { a href=(href) { (dep) } }, None => { (dep) } } }
                } }
            }
        }
        h2 { "History" }
        @if d.history.is_empty() { p.muted { "No history recorded." } } @else {
            div.table-wrap { table #history {
                thead { tr { th { "When" } th { "Change" } th { "Version" } th.wide { "File" } } }
                tbody { @for e in &d.history { tr {
                    td { (time(e.at)) }
                    td { @match e.change { PackageChange::Published => { "published" } PackageChange::Removed => { "removed" } } }
                    td.mono { (e.version) }
                    td.wide.mono { (e.filename) }
                } } }
            } }
        }
        h2 { "Builds" }
        @if v.builds.is_empty() { p.muted { "No job of this server built it: it was published by hand." } } @else {
            div.table-wrap { table {
                thead { tr { th { "Version" } th { "Arch" } th { "Job" } th { "Finished" } } }
                tbody { @for b in v.builds { tr {
                    td.mono { (b.version) } td { (b.arch) } td { (job_link(b.job)) }
                    td { @if let Some(t) = b.finished_at { (time(t)) } }
                } } }
            } }
        }
        h2 { "Files (" (d.files_total) ")" }
        pre.mono { @for f in &d.files { (f) "\n" } }
        @if (d.files.len() as u64) < d.files_total {
            p.muted { "The first " (d.files.len()) " files; all of them: "
                a href={ "/api/v1/repos/" (v.repo) "/" (v.arch) "/packages/" (s.name) "?files_limit=10000" } { "the API" } "." }
        }
    };
    layout(ctx, s.name.as_str(), body)
}

// ---- targets ----

pub struct TargetRow<'a> {
    pub target: &'a Target,
    pub last: Option<&'a Job>,
    pub next: Option<DateTime<Utc>>,
}

pub fn targets(ctx: &Ctx, rows: &[TargetRow<'_>], query: &str, page: usize, more: bool) -> Markup {
    let body = html! {
        h1 { "Targets" }
        form.toolbar method="get" action="/ui/targets" role="search" {
            label { "Search" input type="search" name="q" value=(query) placeholder="URL, name or repository"; }
            button type="submit" { "Search" }
            @if ctx.admin { a.button href="/ui/targets/new" { "Add a target" } }
        }
        @if rows.is_empty() { p.muted { "No target." } } @else {
            div.table-wrap { table {
                thead { tr { th { "Target" } th { "Kind" } th { "Repository" } th { "Arch" } th { "Last job" } th.wide { "Next run" } } }
                tbody { @for r in rows { tr {
                    td { a href={ "/ui/targets/" (r.target.id.0) } { (target_name(r.target)) }
                         @if !r.target.enabled { " " span.badge.muted { "disabled" } }
                         @if r.target.automatic { " " span.badge.muted { "automatic" } } }
                    td { (r.target.source.kind().as_str()) }
                    td { a href={ "/ui/repos/" (r.target.repo) } { (r.target.repo) } }
                    td { (r.target.arch.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")) }
                    td { @if let Some(j) = r.last { (job_link(j.id())) " " (state_badge(j.state())) } }
                    td.wide { @match r.next { Some(t) => { (time(t)) }, None => { span.muted { "never" } } } }
                } } }
            } }
        }
        (pager("/ui/targets", &format!("q={}&", urlencode(query)), page, more))
    };
    layout(ctx, "Targets", body)
}

fn pager(path: &str, base: &str, page: usize, more: bool) -> Markup {
    html! {
        nav.pager aria-label="Pages" {
            @if page > 1 { a href={ (path) "?" (base) "page=" (page - 1) } rel="prev" { "← Previous" } }
            span.muted { "Page " (page) }
            @if more { a href={ (path) "?" (base) "page=" (page + 1) } rel="next" { "Next →" } }
        }
    }
}

/// Percent-encodes a query value.
pub fn urlencode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The targets a target needs, each with the ones it needs in turn (a cycle is cut where it closes).
fn dependency_list(needs: &[DependencyTree]) -> Markup {
    html! {
        ul.tree { @for d in needs { li {
            a href={ "/ui/targets/" (d.target.id.0) } { (target_name(&d.target)) }
            @if d.target.automatic { " " span.muted { "(AUR dependency)" } }
            @if !d.needs.is_empty() { (dependency_list(&d.needs)) }
        } } }
    }
}

pub fn target(
    ctx: &Ctx,
    t: &Target,
    tree: &DependencyTree,
    jobs: &[Job],
    next: Option<DateTime<Utc>>,
    notice: Option<&str>,
) -> Markup {
    let id = t.id.0;
    let body = html! {
        div.crumbs { a href="/ui/targets" { "Targets" } " / " (id) }
        h1 { (target_name(t)) }
        @if let Some(n) = notice { p.notice role="status" { (n) } }
        @if ctx.admin {
            div.actions {
                (post_button(ctx, &format!("/ui/targets/{id}/build"), "Build now", ""))
                a.button.secondary href={ "/ui/targets/" (id) "/edit" } { "Edit" }
                @if t.enabled { (post_button(ctx, &format!("/ui/targets/{id}/disable"), "Disable", "secondary")) }
                @else { (post_button(ctx, &format!("/ui/targets/{id}/enable"), "Enable", "secondary")) }
                (post_button(ctx, &format!("/ui/targets/{id}/delete"), "Remove", "danger"))
            }
        }
        div.card {
            dl.fields {
                dt { "Kind" } dd { (t.source.kind().as_str()) }
                dt { "Source" } dd.mono { (t.source.url_str()) }
                @if let Source::Git { branch, path, .. } = &t.source {
                    @if let Some(b) = branch { dt { "Branch" } dd.mono { (b) } }
                    @if let Some(p) = path { dt { "Path" } dd.mono { (p) } }
                }
                dt { "Repository" } dd { a href={ "/ui/repos/" (t.repo) } { (t.repo) } }
                dt { "Architectures" } dd { (t.arch.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")) }
                dt { "Schedule" } dd.mono { @match &t.schedule { Some(s) => { (s) }, None => { "the server's" } } }
                dt { "Next run" } dd { @match next { Some(n) => { (time(n)) }, None => { "never (disabled)" } } }
                @if let Some(i) = &t.base_image { dt { "Image" } dd.mono { (i) } }
                @if let Some(s) = t.build_timeout_secs { dt { "Timeout" } dd { (s) " s" } }
                dt { "Enabled" } dd { (if t.enabled { "yes" } else { "no" }) }
            }
        }
        @if !tree.needs.is_empty() || !tree.needed_by.is_empty() {
            section.card aria-labelledby="deps" {
                h2 #deps { "Dependencies" }
                @if !tree.needs.is_empty() {
                    p { "Builds after (each of these must succeed first):" }
                    (dependency_list(&tree.needs))
                }
                @if !tree.needed_by.is_empty() {
                    p { "Needed by: " @for n in &tree.needed_by { a href={ "/ui/targets/" (n.0) } { "#" (n.0) } " " } }
                }
            }
        }
        h2 { "Jobs" }
        div #live-target-jobs data-live-jobs=(LIVE_JOBS) {
        @if jobs.is_empty() { p.muted { "No job yet." } } @else {
            div.table-wrap { table {
                thead { tr { th { "Job" } th { "Arch" } th { "Trigger" } th { "State" } th { "Cause" } th.wide { "Queued" } th { "Duration" } } }
                tbody { @for j in jobs { tr {
                    td { (job_link(j.id())) } td { (j.arch()) } td { (format!("{:?}", j.trigger()).to_lowercase()) }
                    td { (state_badge(j.state())) }
                    td { @if let Some(c) = j.cause() { (c.to_string()) } @else if let Some(r) = j.reason() { span.muted { (r) } } }
                    td.wide { (time(j.queued_at())) }
                    td { @if let (Some(s), Some(f)) = (j.started_at(), j.finished_at()) { (duration(f - s)) } }
                } } }
            } }
            p { a href={ "/ui/jobs?target=" (id) } { "Every job of this target" } }
        }
        }
    };
    layout(ctx, &target_name(t), body)
}

/// The form to add (`id` None) or edit a target.
pub fn target_form(ctx: &Ctx, id: Option<TargetId>, form: &TargetForm, error: Option<&str>) -> Markup {
    let (title, action) = match id {
        Some(id) => (format!("Edit target {}", id.0), format!("/ui/targets/{}", id.0)),
        None => ("Add a target".to_owned(), "/ui/targets".to_owned()),
    };
    let field = |name: &str, label: &str, value: &str, hint: &str| {
        html! { label { (label) input type="text" name=(name) value=(value) placeholder=(hint); } }
    };
    let body = html! {
        div.crumbs { a href="/ui/targets" { "Targets" } }
        h1 { (title) }
        @if let Some(e) = error { p.notice.error role="alert" { (e) } }
        form.form method="post" action=(action) {
            (csrf_field(ctx))
            label { "Kind" select name="kind" {
                @for k in ["git", "aur", "url"] { option value=(k) selected[form.kind == k] { (k) } }
            } }
            (field("url", "URL (git, url) or package base (aur)", &form.url, "https://gitlab.com/me/pkg.git"))
            (field("branch", "Branch or tag (git)", &form.branch, "the default branch"))
            (field("path", "Subdirectory holding the PKGBUILD (git)", &form.path, ""))
            (field("repo", "Repository", &form.repo, "extra"))
            (field("arch", "Architectures", &form.arch, "the server's default"))
            (field("schedule", "Schedule", &form.schedule, "the server's (e.g. 0 3)"))
            (field("base_image", "Image", &form.base_image, "the server's"))
            (field("build_timeout_secs", "Timeout in seconds", &form.build_timeout_secs, "the server's"))
            div { button type="submit" { (if id.is_some() { "Save" } else { "Add" }) } }
        }
    };
    layout(ctx, &title, body)
}

// ---- jobs ----

pub struct JobsView<'a> {
    pub jobs: &'a [Job],
    pub targets: &'a BTreeMap<TargetId, Target>,
    pub state: Option<JobState>,
    pub target: Option<TargetId>,
    pub arch: &'a str,
    pub agent: &'a str,
    pub page: usize,
    pub more: bool,
}

pub fn jobs(ctx: &Ctx, v: &JobsView<'_>) -> Markup {
    let base = format!(
        "state={}&target={}&arch={}&agent={}&",
        v.state.map(|s| s.as_str()).unwrap_or(""),
        v.target.map(|t| t.0.to_string()).unwrap_or_default(),
        urlencode(v.arch),
        urlencode(v.agent)
    );
    let body = html! {
        h1 { "Jobs" }
        form.toolbar method="get" action="/ui/jobs" {
            label { "State" select name="state" {
                option value="" selected[v.state.is_none()] { "any" }
                @for s in JobState::ALL { option value=(s.as_str()) selected[v.state == Some(s)] { (s.as_str()) } }
            } }
            label { "Target" input type="number" min="1" name="target" value=[v.target.map(|t| t.0)]; }
            label { "Arch" input type="text" name="arch" value=(v.arch); }
            label { "Agent" input type="text" name="agent" value=(v.agent); }
            button type="submit" { "Filter" }
        }
        div #live-jobs data-live-jobs=(LIVE_JOBS) {
            (job_table(v.jobs, v.targets, "No job matches."))
            (pager("/ui/jobs", &base, v.page, v.more))
        }
    };
    layout(ctx, "Jobs", body)
}

/// The part of a job's page that changes while it runs: state, timeline, cause.
pub fn job_head(job: &Job, target: Option<&Target>) -> Markup {
    html! {
        h1 { "Job " (job.id().0) " " (state_badge(job.state())) }
        p {
            @match target {
                Some(t) => { a href={ "/ui/targets/" (t.id.0) } { (target_name(t)) } }
                None => { "target " (job.target().0) " (removed)" }
            }
            " · " (job.arch()) " · attempt " (job.attempt())
            @if let Some(r) = job.retry_of() { " (retries " (job_link(r)) ")" }
            @if job.force() { " · forced" }
        }
        @if let Some(cause) = job.cause() {
            p.notice.error role="status" { strong { "Why: " } (cause.step.as_str()) " step failed"
                @if let Some(code) = cause.exit_code { " with exit code " (code) }
                @if let Some(status) = cause.http_status { " (HTTP status " (status) ")" }
                @if !cause.message.is_empty() { ": " (cause.message) } }
        }
        @if let Some(reason) = job.reason() { p.muted { (reason) } }
        ol.timeline {
            li { "Queued " (time(job.queued_at())) " (" (format!("{:?}", job.trigger()).to_lowercase()) ")" }
            @if job.not_before() > job.queued_at() { li { "Not before " (time(job.not_before())) } }
            @if !job.waits_on().is_empty() { li { "Waiting for " @for w in job.waits_on() { (job_link(*w)) " " } } }
            @if let Some(s) = job.started_at() {
                li { "Leased by " strong { (job.agent().map(|a| a.as_str()).unwrap_or("an agent")) } " " (time(s)) }
            }
            @if let (None, Some(l)) = (job.finished_at(), job.lease_expires_at()) {
                li { "Heartbeat: lease renewed until " (time(l)) }
            }
            @if let Some(f) = job.finished_at() {
                li { "Ended " (time(f))
                    @if let Some(s) = job.started_at() { " after " (duration(f - s)) } }
            }
        }
        @if !job.versions().is_empty() {
            p { "Packages: " @for b in job.versions() { code { (b.name) " " (b.version) } " " } }
        }
        @if let Some(rev) = job.revision() { p.muted { "Built from commit " code { (rev.commit.as_deref().unwrap_or("?")) } } }
    }
}

pub struct JobView<'a> {
    pub job: &'a Job,
    pub target: Option<&'a Target>,
    /// The log shown, as HTML.
    pub log: String,
    /// The log was longer: only its end is shown.
    pub log_cut: bool,
    /// Where the live stream continues (bytes of the log file); `None` when the job has ended.
    pub live_from: Option<u64>,
}

pub fn job(ctx: &Ctx, v: &JobView<'_>) -> Markup {
    let id = v.job.id().0;
    let body = html! {
        div.crumbs { a href="/ui/jobs" { "Jobs" } " / " (id) }
        section id="job-head" aria-live="polite" { (job_head(v.job, v.target)) }
        @if ctx.admin {
            div.actions {
                @if !v.job.state().is_final() { (post_button(ctx, &format!("/ui/jobs/{id}/cancel"), "Cancel", "danger")) }
                @else { (post_button(ctx, &format!("/ui/jobs/{id}/retry"), "Retry", "secondary")) }
            }
        }
        h2 { "Log" }
        p {
            a href={ "/ui/jobs/" (id) "/log" } { "Raw log" }
            @if v.log_cut { span.muted { " (only its end is shown here)" } }
            @if v.live_from.is_some() {
                " · " label.follow { input type="checkbox" id="follow" checked; "Follow" }
            }
        }
        @match v.live_from {
            Some(offset) => { pre.log id="log" data-events={ "/ui/jobs/" (id) "/events?from=" (offset) } { (PreEscaped(&v.log)) } }
            None => { pre.log id="log" { (PreEscaped(&v.log)) } }
        }
    };
    layout(ctx, &format!("Job {id}"), body)
}

// ---- agents ----

pub fn agents(ctx: &Ctx, agents: &[AgentInfo], now: DateTime<Utc>) -> Markup {
    let body = html! {
        h1 { "Agents" }
        @if agents.is_empty() { p.muted { "No agent has polled yet." } } @else {
            div.table-wrap { table {
                thead { tr { th { "Agent" } th { "Arch" } th.num { "Capacity" } th { "Running" } th { "Last seen" } } }
                tbody { @for a in agents { tr {
                    td { a href={ "/ui/jobs?agent=" (urlencode(a.id.as_str())) } { (a.id.as_str()) } }
                    td { (a.arch) }
                    td.num { (a.capacity) }
                    td { @if a.running.is_empty() { span.muted { "idle" } } @for j in &a.running { (job_link(*j)) " " } }
                    td { (time(a.last_seen)) " (" (duration(now - a.last_seen)) " ago)" }
                } } }
            } }
        }
    };
    layout(ctx, "Agents", body)
}

// ---- signing in, errors ----

pub fn login(ctx: &Ctx, error: Option<&str>, next: &str) -> Markup {
    let body = html! {
        h1 { "Sign in" }
        p.muted { "With the admin key (everything) or an agent key (reading). The key stays on the server: the browser keeps only a session cookie." }
        @if let Some(e) = error { p.notice.error role="alert" { (e) } }
        form.form method="post" action="/ui/login" {
            input type="hidden" name="next" value=(next);
            label { "API key" input type="password" name="key" autocomplete="current-password" required; }
            div { button type="submit" { "Sign in" } }
        }
    };
    layout(ctx, "Sign in", body)
}

pub fn error(ctx: &Ctx, status: u16, message: &str) -> Markup {
    let body = html! {
        h1 { "Error " (status) }
        p.notice.error role="alert" { (message) }
        p { a href="/ui/" { "Back to the overview" } }
    };
    layout(ctx, &format!("Error {status}"), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(admin: bool) -> Ctx {
        Ctx {
            role: Some(if admin { Role::Admin } else { Role::Agent }),
            csrf: admin.then(|| "token".to_owned()),
            builds: true,
            admin,
            path: "/ui/targets/1".into(),
        }
    }

    fn target(id: u64, url: &str, needs: &[u64], automatic: bool) -> Target {
        serde_json::from_value(serde_json::json!({
            "id": id, "kind": "aur", "url": url, "branch": null, "path": null, "repo": "extra",
            "schedule": null, "arch": ["x86_64"], "base_image": null, "build_timeout_secs": null,
            "enabled": true, "needs": needs, "automatic": automatic,
        }))
        .expect("a target")
    }

    fn leaf(t: Target) -> DependencyTree {
        DependencyTree { target: t, needs: Vec::new(), needed_by: Vec::new() }
    }

    #[test]
    fn a_target_page_shows_its_dependency_tree_and_who_needs_it() {
        let root = target(1, "app", &[2], false);
        let lib = target(2, "libfoo", &[3], true);
        let tree = DependencyTree {
            target: root.clone(),
            needs: vec![DependencyTree {
                target: lib,
                needs: vec![leaf(target(3, "libbar", &[], true))],
                needed_by: vec![TargetId(1)],
            }],
            needed_by: vec![TargetId(7)],
        };
        let html = super::target(&ctx(false), &root, &tree, &[], None, None).into_string();
        let deps = &html[html.find("id=\"deps\"").expect("a dependencies section")..];
        let (foo, bar) =
            (deps.find("/ui/targets/2").expect("libfoo"), deps.find("/ui/targets/3").expect("libbar"));
        assert!(foo < bar, "libbar is under libfoo: {deps}");
        assert_eq!(deps.matches("<ul class=\"tree\">").count(), 2, "nested: {deps}");
        assert!(deps.contains("(AUR dependency)"), "{deps}");
        assert!(deps.contains("href=\"/ui/targets/7\">#7</a>"), "needed by 7: {deps}");
        assert!(!html.contains("/ui/targets/1/build"), "no admin buttons without the admin key");
        let admin = super::target(&ctx(true), &root, &tree, &[], None, None).into_string();
        assert!(
            admin.contains("/ui/targets/1/build") && admin.contains("token"),
            "build now, with the CSRF token"
        );
    }

    fn job(id: u64, state: &str, agent: Option<&str>, cause: bool) -> Job {
        let t = "2026-12-07T10:00:00Z";
        serde_json::from_value(serde_json::json!({
            "id": id, "target": 1, "arch": "x86_64", "force": false, "trigger": "manual", "state": state,
            "attempt": 1, "retry_of": null, "queued_at": t, "not_before": t,
            "started_at": agent.map(|_| "2026-12-07T10:00:05Z"),
            "finished_at": (state != "running" && agent.is_some()).then_some("2026-12-07T10:03:00Z"),
            "lease_expires_at": (state == "running").then_some("2026-12-07T10:01:05Z"),
            "agent": agent,
            "cause": cause.then(|| serde_json::json!({ "step": "makepkg", "exit_code": 4, "http_status": null,
                "message": "build() failed <here> & \"there\"" })),
            "versions": [],
        }))
        .expect("a job")
    }

    /// Every page, rendered from data as its handler would, is HTML that html5ever parses without an
    /// error (and escapes what it is given).
    #[test]
    fn every_page_is_html_without_errors() {
        use libvieter::api::{PackageChange, PackageEvent};
        let check = |name: &str, markup: Markup| {
            let html = markup.into_string();
            let doc = scraper::Html::parse_document(&html);
            assert!(doc.errors.is_empty(), "{name}: {:?}\n{html}", doc.errors);
            assert!(!html.contains("<here>"), "{name}: text is escaped");
        };
        let now = Utc::now();
        let admin = ctx(true);
        let t1 = target(1, "app", &[2], false);
        let targets: BTreeMap<TargetId, Target> = [(TargetId(1), t1.clone())].into();
        let (running, failed, queued) = (
            job(3, "running", Some("a1"), false),
            job(2, "failed", Some("a1"), true),
            job(4, "queued", None, false),
        );
        let agents = vec![AgentInfo {
            id: "a1".parse().expect("an agent id"),
            arch: "x86_64".parse().expect("an arch"),
            capacity: 2,
            last_seen: now,
            running: vec![running.id()],
        }];
        let repos: Vec<RepoInfo> = serde_json::from_value(serde_json::json!([{ "name": "extra", "archs": [
            { "arch": "x86_64", "packages": 1, "size": 1234, "last_change": "2026-12-07T10:00:00Z" }] }]))
        .expect("repos");
        let overview = Overview {
            repos: &repos,
            running: std::slice::from_ref(&running),
            waiting: std::slice::from_ref(&queued),
            agents: &agents,
            targets: &targets,
        };
        check("overview", super::overview(&admin, &overview));
        check(
            "overview, empty",
            super::overview(
                &ctx(false),
                &Overview { repos: &[], running: &[], waiting: &[], agents: &[], targets: &targets },
            ),
        );

        let bytes =
            libvieter::repo::conformance::package_bytes("hello", "1.0-1", "x86_64", &["usr/bin/hello"]);
        let package = libvieter::package::read_package(&bytes[..], &Default::default()).expect("a package");
        let summary = PackageSummary::new(&package, &package.filename(), now);
        let rows = vec![("x86_64".to_owned(), summary.clone())];
        let built_by = BTreeMap::from([(("hello".to_owned(), "1.0-1".to_owned()), JobId(2))]);
        let table = PackageRows {
            repo: "extra",
            packages: &rows,
            total: 120,
            offset: 50,
            limit: 50,
            built_by: &built_by,
            base_query: "q=a&b&".into(),
        };
        // A fragment (the rows that search as you type fetches).
        let rows_html = super::package_rows(&table).into_string();
        let fragment = scraper::Html::parse_fragment(&rows_html);
        assert!(fragment.errors.is_empty(), "package rows: {:?}\n{rows_html}", fragment.errors);
        let view = RepoView {
            repo: "extra",
            archs: &repos[0].archs,
            arch: None,
            query: "<q>",
            sort: PackageSort::Size,
            desc: true,
            rows: &table,
        };
        check("repository", super::repo(&admin, &view));
        let detail = PackageDetail {
            summary: summary.clone(),
            info: package.info.clone(),
            files: package.files.clone(),
            files_total: 3,
            history: vec![PackageEvent {
                at: now,
                change: PackageChange::Removed,
                version: summary.version.clone(),
                filename: summary.filename.clone(),
            }],
        };
        let builds = vec![PackageBuild {
            name: summary.name.clone(),
            version: summary.version.clone(),
            arch: summary.arch.clone(),
            job: JobId(2),
            target: TargetId(1),
            finished_at: Some(now),
        }];
        let deps = vec![(
            "Depends on",
            vec![
                ("glibc".to_owned(), Some("/ui/repos/extra/x86_64/glibc".to_owned())),
                ("zlib>=1".to_owned(), None),
            ],
        )];
        let pv = PackageView {
            repo: "extra",
            arch: "x86_64",
            detail: &detail,
            deps,
            builds: &builds,
            server: "http://h".into(),
            signed: true,
        };
        check("package", super::package(&admin, &pv));

        let target_rows = vec![TargetRow { target: &t1, last: Some(&failed), next: Some(now) }];
        check("targets", super::targets(&admin, &target_rows, "a&b", 2, true));
        check(
            "target",
            super::target(
                &admin,
                &t1,
                &leaf(t1.clone()),
                &[failed.clone(), running.clone()],
                Some(now),
                Some("saved <ok>"),
            ),
        );
        let form = TargetForm { kind: "git".into(), url: "https://e/x.git".into(), ..Default::default() };
        check("target form", super::target_form(&admin, Some(TargetId(1)), &form, Some("bad <url>")));
        check("new target form", super::target_form(&admin, None, &TargetForm::default(), None));
        let all = vec![running.clone(), failed.clone(), queued.clone()];
        let jobs = JobsView {
            jobs: &all,
            targets: &targets,
            state: Some(JobState::Failed),
            target: Some(TargetId(1)),
            arch: "x86_64",
            agent: "a<1>",
            page: 2,
            more: true,
        };
        check("jobs", super::jobs(&admin, &jobs));
        let live = JobView {
            job: &running,
            target: Some(&t1),
            log: "<span class=\"f2\">ok</span>\n".into(),
            log_cut: true,
            live_from: Some(42),
        };
        check("running job", super::job(&admin, &live));
        let ended =
            JobView { job: &failed, target: None, log: String::new(), log_cut: false, live_from: None };
        check("ended job", super::job(&admin, &ended));
        check("agents", super::agents(&admin, &agents, now));
        check("login", super::login(&ctx(false), Some("wrong <key>"), "/ui/jobs?x=1&y=2"));
        check("error", super::error(&ctx(false), 404, "there is no <thing>"));
    }

    #[test]
    fn a_target_without_dependencies_has_no_dependency_section() {
        let t = target(4, "alone", &[], false);
        let html = super::target(&ctx(false), &t, &leaf(t.clone()), &[], None, None).into_string();
        assert!(!html.contains("id=\"deps\""), "{html}");
        assert!(html.contains("No job yet."), "{html}");
    }
}
