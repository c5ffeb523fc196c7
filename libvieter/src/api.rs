//! The JSON shapes of Vieter's HTTP API, shared by the server, the agent and the CLI.
//!
//! Every answer is wrapped in Vieter's envelope `{"message": ..., "data": ...}`; errors carry a message and
//! `data: null`. Only types live here: no HTTP.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::name::{Arch, PkgName, RepoName};
use crate::package::Package;
use crate::pkginfo::PackageInfo;
use crate::version::Version;

/// Vieter's answer envelope.
///
/// ```
/// use libvieter::api::Envelope;
/// let json = serde_json::to_string(&Envelope::ok(vec![1, 2])).unwrap();
/// assert_eq!(json, r#"{"message":"","data":[1,2]}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub message: String,
    pub data: T,
}

impl<T> Envelope<T> {
    /// A successful answer with an empty message.
    pub fn ok(data: T) -> Self {
        Envelope { message: String::new(), data }
    }
}

impl Envelope<Option<()>> {
    /// An error answer: the message, `data: null`.
    pub fn error(message: impl Into<String>) -> Self {
        Envelope { message: message.into(), data: None }
    }
}

/// What `POST /{repo}/publish` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishResult {
    pub name: PkgName,
    pub version: Version,
    /// The arch-repos the package was added to (several for an `any` package).
    pub archs: Vec<Arch>,
}

/// One repository in `GET /api/v1/repos`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoInfo {
    pub name: String,
    pub archs: Vec<ArchRepoInfo>,
}

/// The answer of `PUT /api/v1/repos/{repo}/{arch}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchRepoCreated {
    pub repo: RepoName,
    pub arch: Arch,
    /// Whether it was created (`false`: it existed and was left alone).
    pub created: bool,
}

/// One architecture of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchRepoInfo {
    pub arch: Arch,
    /// Number of packages.
    pub packages: u64,
    /// Sum of the package files' sizes in bytes.
    pub size: u64,
    /// When a package was last added or removed.
    pub last_change: Option<DateTime<Utc>>,
}

/// One package in a package listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageSummary {
    pub name: PkgName,
    pub base: Option<PkgName>,
    pub version: Version,
    /// The package's own architecture (`any` for architecture-independent packages).
    pub arch: Arch,
    pub desc: Option<String>,
    pub filename: String,
    /// Size of the package file.
    pub csize: u64,
    /// Installed size.
    pub isize: u64,
    pub sha256: String,
    pub builddate: Option<u64>,
    pub published_at: DateTime<Utc>,
}

impl PackageSummary {
    /// The summary of a package stored as `filename`, published at `published_at`.
    pub fn new(package: &Package, filename: &str, published_at: DateTime<Utc>) -> Self {
        let info = &package.info;
        PackageSummary {
            name: info.name.clone(),
            base: info.base.clone(),
            version: info.version.clone(),
            arch: info.arch.clone(),
            desc: info.desc.clone(),
            filename: filename.to_owned(),
            csize: package.csize,
            isize: info.size,
            sha256: package.sha256.clone(),
            builddate: info.builddate,
            published_at,
        }
    }
}

/// Everything known about one package: `GET /api/v1/repos/{repo}/{arch}/packages/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageDetail {
    #[serde(flatten)]
    pub summary: PackageSummary,
    /// Every `.PKGINFO` field, typed (dependencies, licenses, ...).
    pub info: PackageInfo,
    /// A page of the package's file list (see [`FilesQuery`]): the whole list when it is short.
    pub files: Vec<String>,
    /// How many names the whole file list has.
    #[serde(default)]
    pub files_total: u64,
    /// What happened to this name in this arch-repo, newest first: the versions published over time
    /// and the removals (at most [`crate::repo::HISTORY_KEPT`]).
    #[serde(default)]
    pub history: Vec<PackageEvent>,
}

/// What happened to a package name in an arch-repo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageChange {
    /// This version was published (a new name, or replacing the version before).
    Published,
    /// The package (at this version) was removed.
    Removed,
}

/// One entry of a package's history ([`PackageDetail::history`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageEvent {
    pub at: DateTime<Utc>,
    pub change: PackageChange,
    pub version: Version,
    /// The package file published or removed.
    pub filename: String,
}

/// Query parameters of a package's detail: which page of its file list to include.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesQuery {
    /// First name of the page (0 by default).
    pub files_offset: Option<usize>,
    /// Most names in the page (1,000 by default, at most 10,000; a page also stops at 512 KiB of names:
    /// the next page starts at `files_offset + files.len()`).
    pub files_limit: Option<usize>,
}

/// Query parameters of a paginated listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    /// Case-insensitive substring filter (name and description).
    pub query: Option<String>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
    /// The order of the listing (name by default); ties keep name order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<PackageSort>,
    /// Reverse the order (largest, newest, last name first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desc: Option<bool>,
}

/// What a package listing is ordered by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageSort {
    /// By name (pacman's order of a db: byte order).
    #[default]
    Name,
    /// By version, as `vercmp` orders them.
    Version,
    /// By package file size.
    Size,
    /// By build date (packages without one first).
    Built,
    /// By when the package was published here.
    Published,
}

impl PackageSort {
    /// Every order, for pickers.
    pub const ALL: [PackageSort; 5] = [
        PackageSort::Name,
        PackageSort::Version,
        PackageSort::Size,
        PackageSort::Built,
        PackageSort::Published,
    ];

    /// The name used in queries (`sort=size`).
    pub fn as_str(self) -> &'static str {
        match self {
            PackageSort::Name => "name",
            PackageSort::Version => "version",
            PackageSort::Size => "size",
            PackageSort::Built => "built",
            PackageSort::Published => "published",
        }
    }

    /// Compares two summaries in this order (name order breaks ties).
    pub fn compare(self, a: &PackageSummary, b: &PackageSummary) -> std::cmp::Ordering {
        let by = match self {
            PackageSort::Name => std::cmp::Ordering::Equal,
            PackageSort::Version => a.version.cmp(&b.version),
            PackageSort::Size => a.csize.cmp(&b.csize),
            PackageSort::Built => a.builddate.cmp(&b.builddate),
            PackageSort::Published => a.published_at.cmp(&b.published_at),
        };
        by.then_with(|| a.name.as_str().cmp(b.name.as_str()))
    }
}

/// One page of a package listing and how many packages matched in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackagePage {
    /// Packages matching the query, in all pages.
    pub total: usize,
    /// The page's first item's position among them.
    pub offset: usize,
    pub packages: Vec<PackageSummary>,
}

/// Most items one page of a listing holds, whatever `limit` asks for.
pub const MAX_PAGE: usize = 10_000;

/// Packages in a page of `GET /api/v1/repos/{repo}/{arch}/packages` when `limit` is absent.
pub const DEFAULT_PACKAGE_PAGE: usize = 100;

/// Names in a page of a package's file list when `files_limit` is absent.
pub const DEFAULT_FILE_PAGE: usize = 1_000;

/// Most bytes of names in a page of a file list (past its first name).
pub const MAX_FILE_PAGE_BYTES: usize = 512 * 1024;

impl ListQuery {
    /// The page asked for ([`DEFAULT_PACKAGE_PAGE`] when `limit` is absent, at most [`MAX_PAGE`]).
    pub fn page(&self) -> Page {
        Page::new(self.offset, self.limit, DEFAULT_PACKAGE_PAGE)
    }
}

impl FilesQuery {
    /// The page of the file list asked for ([`DEFAULT_FILE_PAGE`] when absent, at most [`MAX_PAGE`]).
    pub fn page(&self) -> Page {
        Page::new(self.files_offset, self.files_limit, DEFAULT_FILE_PAGE)
    }
}

/// Items in a page of `GET /api/v1/targets` when `limit` is absent.
pub const DEFAULT_TARGET_PAGE: usize = 25;

/// Items in a page of `GET /api/v1/jobs` when `limit` is absent.
pub const DEFAULT_JOB_PAGE: usize = 50;

/// A page of a listing: skip `offset` items, then take at most `limit`.
///
/// ```
/// use libvieter::api::Page;
/// let page = Page::new(Some(2), Some(3), 25);
/// assert_eq!(page.apply(0..100).collect::<Vec<_>>(), [2, 3, 4]);
/// assert_eq!(Page::new(None, Some(1_000_000), 25).limit, libvieter::api::MAX_PAGE);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: usize,
    pub limit: usize,
}

impl Page {
    /// The page asked for by `offset` and `limit` (absent: 0 and `default`), `limit` capped at
    /// [`MAX_PAGE`].
    pub fn new(offset: Option<usize>, limit: Option<usize>, default: usize) -> Page {
        Page { offset: offset.unwrap_or(0), limit: limit.unwrap_or(default).min(MAX_PAGE) }
    }

    /// The items of this page.
    pub fn apply<I: IntoIterator>(self, items: I) -> impl Iterator<Item = I::Item> {
        items.into_iter().skip(self.offset).take(self.limit)
    }
}

/// Query parameters of `GET /api/v1/jobs`: every filter given must match; newest job first.
///
/// ```
/// use libvieter::api::JobFilter;
/// let f: JobFilter = serde_json::from_str(r#"{"state":"failed","limit":5}"#).unwrap();
/// assert_eq!(f.page().limit, 5);
/// assert_eq!(JobFilter::default().page().limit, libvieter::api::DEFAULT_JOB_PAGE);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<crate::job::JobState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<crate::target::TargetId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Jobs leased by this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Jobs queued at or after this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Most jobs answered ([`DEFAULT_JOB_PAGE`] when absent, at most [`MAX_PAGE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
}

impl JobFilter {
    /// Whether `job` passes every filter.
    pub fn matches(&self, job: &crate::job::Job) -> bool {
        self.state.is_none_or(|s| job.state() == s)
            && self.target.is_none_or(|t| job.target() == t)
            && self.arch.as_deref().is_none_or(|a| job.arch().as_str() == a)
            && self.agent.as_deref().is_none_or(|a| job.agent().is_some_and(|j| j.as_str() == a))
            && self.since.is_none_or(|s| job.queued_at() >= s)
    }

    /// The page asked for.
    pub fn page(&self) -> Page {
        Page::new(self.offset, self.limit, DEFAULT_JOB_PAGE)
    }
}

/// Query parameters of `GET /api/v1/targets`: every filter given must match; by id.
///
/// ```
/// use libvieter::api::TargetFilter;
/// let f = TargetFilter { query: Some("AUR.archlinux".into()), ..Default::default() };
/// assert_eq!(f.page().limit, libvieter::api::DEFAULT_TARGET_PAGE);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Case-insensitive substring of the target's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Most targets answered ([`DEFAULT_TARGET_PAGE`] when absent, at most [`MAX_PAGE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
}

impl TargetFilter {
    /// A predicate that is true for the targets passing every filter (the query lowercased once).
    pub fn matcher(&self) -> impl Fn(&crate::target::Target) -> bool + '_ {
        let query = self.query.as_deref().map(str::to_lowercase);
        move |t| {
            self.repo.as_deref().is_none_or(|r| t.repo.as_str() == r)
                && self.arch.as_deref().is_none_or(|a| t.arch.iter().any(|x| x.as_str() == a))
                && query.as_deref().is_none_or(|q| t.source.url_str().to_lowercase().contains(q))
        }
    }

    /// The page asked for.
    pub fn page(&self) -> Page {
        Page::new(self.offset, self.limit, DEFAULT_TARGET_PAGE)
    }
}

/// `POST /api/v1/jobs/poll`: an agent asks for work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollRequest {
    pub agent_id: crate::job::AgentId,
    pub arch: Arch,
    /// How many jobs it can take now.
    pub capacity: u32,
    /// Seconds to wait for a job when none is due (long poll); absent or 0 answers at once; at most
    /// [`MAX_POLL_WAIT_SECS`].
    #[serde(default)]
    pub wait: Option<u64>,
}

/// The longest a poll waits for work, whatever it asks for: well under the idle timeouts of proxies
/// between agents and the server.
pub const MAX_POLL_WAIT_SECS: u64 = 120;

impl PollRequest {
    /// How long this poll may wait for work ([`MAX_POLL_WAIT_SECS`] at most).
    pub fn wait(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.wait.unwrap_or(0).min(MAX_POLL_WAIT_SECS))
    }
}

/// One job handed to an agent, with everything it needs to build it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeasedJob {
    pub job: crate::job::Job,
    pub target: crate::target::Target,
    /// The image to build in (the target's, else the server's default).
    pub base_image: String,
    /// Seconds the build may take.
    pub timeout_secs: u64,
    /// The lease ends here unless renewed by a heartbeat.
    pub lease_expires_at: DateTime<Utc>,
    /// Seconds between heartbeats the server expects (well within the lease).
    pub heartbeat_secs: u64,
}

/// `POST /api/v1/jobs/{id}/heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    pub agent_id: crate::job::AgentId,
}

/// `POST /api/v1/jobs/{id}/finish`: how the job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishRequest {
    pub agent_id: crate::job::AgentId,
    pub outcome: crate::job::Outcome,
}

/// `POST /api/v1/jobs`: queue a build now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRequest {
    pub target: crate::target::TargetId,
    /// Absent: every architecture of the target.
    #[serde(default)]
    pub arch: Option<Arch>,
    #[serde(default)]
    pub force: bool,
}

/// `POST /api/v1/jobs/{id}/log?agent_id=...`: the agent appending to a job's log (the body is the text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogAppendQuery {
    pub agent_id: crate::job::AgentId,
}

/// `GET /api/v1/jobs/{id}/log[?follow=true]`: the whole log, or (`follow`) a stream that ends with the
/// job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogQuery {
    #[serde(default)]
    pub follow: bool,
}

/// `POST /api/v1/aur/resolve`: the dependency closure of AUR packages, resolved as adding an `aur`
/// target resolves it, without creating anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// AUR package names (a base is named by one of its packages): 1 to [`MAX_RESOLVE_NAMES`].
    pub names: Vec<PkgName>,
    /// The repository the builds would publish to: its packages count as installable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<RepoName>,
    /// The architecture whose sync databases and repository count (absent: the server's default arch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
}

/// The most names one [`ResolveRequest`] may resolve (the AUR's RPC takes about as many in one `info`).
pub const MAX_RESOLVE_NAMES: usize = 150;

impl ResolveRequest {
    /// Refuses a request naming no package or more than [`MAX_RESOLVE_NAMES`].
    pub fn check(&self) -> Result<(), String> {
        if self.names.is_empty() || self.names.len() > MAX_RESOLVE_NAMES {
            return Err(format!("names: give 1 to {MAX_RESOLVE_NAMES} AUR package names"));
        }
        Ok(())
    }
}

/// The answer to `POST /api/v1/jobs/{id}/heartbeat`: the lease, renewed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRenewal {
    pub lease_expires_at: DateTime<Utc>,
}

/// The answer to `DELETE /api/v1/targets/{id}`: the target removed and the automatic targets (AUR
/// dependencies) removed with it, needed by nothing else any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRemoved {
    pub removed: crate::target::TargetId,
    #[serde(default)]
    pub automatic: Vec<crate::target::TargetId>,
}

/// The answer to `DELETE /{repo}[/{arch}[/{pkgname}]]`: what was removed, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub removed: String,
}

/// The answer to `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// The server's version.
    pub version: String,
}

/// An agent as the server last saw it: `GET /api/v1/agents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub id: crate::job::AgentId,
    pub arch: Arch,
    pub capacity: u32,
    pub last_seen: DateTime<Utc>,
    /// Jobs it holds leases on now.
    #[serde(default)]
    pub running: Vec<crate::job::JobId>,
}

/// Vieter's query-parameter form of POST/PATCH `/api/v1/targets` (`arch` comma-separated): what
/// Vieter 0.5/0.6 clients send, plus `needs` (target ids, comma-separated; empty in an edit clears
/// them). Without any parameter the request is the JSON body.
///
/// ```
/// use libvieter::api::TargetQuery;
/// use libvieter::target::TargetId;
/// let q = TargetQuery { kind: Some("aur".into()), url: Some("yay".into()), arch: Some("x86_64, aarch64,".into()), needs: Some("3,1".into()), ..TargetQuery::default() };
/// assert!(!q.is_empty());
/// let new = q.clone().into_new().unwrap();
/// assert_eq!(new.arch, Some(vec!["x86_64".to_owned(), "aarch64".to_owned()]));
/// assert_eq!(new.needs, [TargetId(3), TargetId(1)]);
/// assert_eq!(q.into_patch().unwrap().branch, None, "a parameter not given leaves the field alone");
/// let clear = TargetQuery { needs: Some(String::new()), ..TargetQuery::default() };
/// assert_eq!(clear.into_patch().unwrap().needs, Some(vec![]), "an empty needs clears them");
/// let bad = TargetQuery { needs: Some("2,x".into()), ..TargetQuery::default() };
/// assert!(bad.into_new().unwrap_err().to_string().contains("needs"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetQuery {
    pub kind: Option<String>,
    pub url: Option<String>,
    pub branch: Option<String>,
    pub path: Option<String>,
    pub repo: Option<String>,
    pub schedule: Option<String>,
    pub arch: Option<String>,
    pub base_image: Option<String>,
    pub build_timeout_secs: Option<u64>,
    pub enabled: Option<bool>,
    /// Target ids separated by commas.
    pub needs: Option<String>,
}

impl TargetQuery {
    /// Whether no parameter was given (the request then carries a JSON body).
    pub fn is_empty(&self) -> bool {
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
            && self.needs.is_none()
    }

    fn needs(&self) -> Result<Option<Vec<crate::target::TargetId>>, FormError> {
        let Some(needs) = &self.needs else { return Ok(None) };
        needs
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| {
                n.parse().map(crate::target::TargetId).map_err(|_| FormError {
                    field: "needs",
                    value: n.to_owned(),
                    expected: "a target id",
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn arches(&self) -> Option<Vec<String>> {
        self.arch
            .as_ref()
            .map(|a| a.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
    }

    /// The parameters as a new target.
    pub fn into_new(self) -> Result<crate::target::NewTarget, FormError> {
        Ok(crate::target::NewTarget {
            needs: self.needs()?.unwrap_or_default(),
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
        })
    }

    /// The parameters as an edit: a parameter given replaces the field.
    pub fn into_patch(self) -> Result<crate::target::TargetPatch, FormError> {
        Ok(crate::target::TargetPatch {
            needs: self.needs()?,
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
        })
    }
}

/// `POST /api/v1/targets`' answer: the target, and for an `aur` target what adding it resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedTarget {
    #[serde(flatten)]
    pub target: crate::target::Target,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closure: Option<TargetClosure>,
}

/// The dependency closure of an added `aur` target: the automatic targets created for the AUR
/// packages it needs, the targets of those bases that existed already, and the resolution; or why it
/// could not be resolved (the target was then added alone).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TargetClosure {
    #[serde(default)]
    pub created: Vec<crate::target::Target>,
    #[serde(default)]
    pub reused: Vec<crate::target::Target>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<crate::resolve::ClosureReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One public key that signs a server's packages and databases (`GET /api/v1/keys`, current first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKey {
    /// The primary key's fingerprint, upper-case hex (what `pacman-key --lsign-key` takes).
    pub fingerprint: String,
    /// The armored public key (what `pacman-key --add` takes).
    pub public_key: String,
    /// Whether it signs what is published from now on (the first key); a retired key is listed until an
    /// admin removes it, so pacman keeps accepting what it signed while the re-sign runs.
    #[serde(default = "current_default")]
    pub current: bool,
}

fn current_default() -> bool {
    true
}

/// How far the re-sign of existing package files after a key rotation is
/// (`GET /api/v1/keys/resign`; made by [`crate::repo::Repository::resign`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResignProgress {
    /// Package files to look at: every one an arch-repo serves.
    pub packages: u64,
    /// Package files looked at so far.
    pub checked: u64,
    /// Signatures made again (of files signed by a retired key, or not signed).
    pub resigned: u64,
}

/// The state of the server's re-sign (`GET /api/v1/keys/resign`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResignStatus {
    /// `idle` (never ran: unsigned), `running`, `done` or `failed`.
    pub state: ResignState,
    #[serde(flatten)]
    pub progress: ResignProgress,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it failed (`state` = `failed`); it runs again at the next start.
    pub error: Option<String>,
}

impl ResignStatus {
    /// No re-sign ran (an unsigned server's answer).
    pub fn idle() -> ResignStatus {
        ResignStatus {
            state: ResignState::Idle,
            progress: ResignProgress::default(),
            started_at: None,
            finished_at: None,
            error: None,
        }
    }
}

/// See [`ResignStatus::state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResignState {
    Idle,
    Running,
    Done,
    Failed,
}

/// A target as an HTML form sends it (the web interface): every field a string, an empty one absent.
/// In an edit, an empty optional field (branch, path, schedule, image, timeout) clears it.
///
/// ```
/// use libvieter::api::TargetForm;
/// let form = TargetForm { kind: "aur".into(), url: "yay".into(), repo: "extra".into(), arch: "x86_64, aarch64".into(), ..Default::default() };
/// let new = form.clone().into_new().unwrap();
/// assert_eq!((new.branch, new.arch), (None, Some(vec!["x86_64".to_owned(), "aarch64".to_owned()])));
/// assert_eq!(form.into_patch().unwrap().branch, Some(None), "an empty branch clears it");
/// let bad = TargetForm { build_timeout_secs: "soon".into(), ..Default::default() };
/// assert!(bad.into_new().unwrap_err().to_string().contains("soon"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TargetForm {
    pub kind: String,
    pub url: String,
    pub branch: String,
    pub path: String,
    pub repo: String,
    pub schedule: String,
    /// Architectures separated by commas or spaces.
    pub arch: String,
    pub base_image: String,
    pub build_timeout_secs: String,
}

/// A form field or query parameter that is not what it must be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {value:?} is not {expected}")]
pub struct FormError {
    pub field: &'static str,
    pub value: String,
    /// What it must be.
    pub expected: &'static str,
}

impl TargetForm {
    fn text(value: &str) -> Option<String> {
        Some(value.trim()).filter(|v| !v.is_empty()).map(str::to_owned)
    }

    fn arches(&self) -> Option<Vec<String>> {
        let list: Vec<String> =
            self.arch.split([',', ' ']).map(str::trim).filter(|a| !a.is_empty()).map(str::to_owned).collect();
        (!list.is_empty()).then_some(list)
    }

    fn timeout(&self) -> Result<Option<u64>, FormError> {
        match Self::text(&self.build_timeout_secs) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| FormError {
                field: "build_timeout_secs",
                value: self.build_timeout_secs.clone(),
                expected: "a number of seconds",
            }),
        }
    }

    /// The form as a new target (the build service validates it).
    pub fn into_new(self) -> Result<crate::target::NewTarget, FormError> {
        Ok(crate::target::NewTarget {
            build_timeout_secs: self.timeout()?,
            arch: self.arches(),
            kind: self.kind.trim().to_owned(),
            url: self.url.trim().to_owned(),
            branch: Self::text(&self.branch),
            path: Self::text(&self.path),
            repo: self.repo.trim().to_owned(),
            schedule: Self::text(&self.schedule),
            base_image: Self::text(&self.base_image),
            enabled: None,
            needs: Vec::new(),
        })
    }

    /// The form as an edit of every field it has (the target's `enabled` and `needs` are kept).
    pub fn into_patch(self) -> Result<crate::target::TargetPatch, FormError> {
        Ok(crate::target::TargetPatch {
            build_timeout_secs: Some(self.timeout()?),
            arch: self.arches(),
            kind: Self::text(&self.kind),
            url: Self::text(&self.url),
            branch: Some(Self::text(&self.branch)),
            path: Some(Self::text(&self.path)),
            repo: Self::text(&self.repo),
            schedule: Some(Self::text(&self.schedule)),
            base_image: Some(Self::text(&self.base_image)),
            enabled: None,
            needs: None,
        })
    }

    /// The form filled with a target's fields (to edit it).
    pub fn of(target: &crate::target::Target) -> TargetForm {
        use crate::target::Source;
        let (branch, path) = match &target.source {
            Source::Git { branch, path, .. } => (
                branch.as_ref().map(|b| b.to_string()).unwrap_or_default(),
                path.as_ref().map(|p| p.to_string()).unwrap_or_default(),
            ),
            _ => (String::new(), String::new()),
        };
        TargetForm {
            kind: target.source.kind().as_str().to_owned(),
            url: target.source.url_str().to_owned(),
            branch,
            path,
            repo: target.repo.to_string(),
            schedule: target.schedule.as_ref().map(|s| s.to_string()).unwrap_or_default(),
            arch: target.arch.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", "),
            base_image: target.base_image.as_ref().map(|i| i.to_string()).unwrap_or_default(),
            build_timeout_secs: target.build_timeout_secs.map(|t| t.to_string()).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resolve_request_names_one_to_the_maximum_and_nothing_unknown() {
        let parse = |json: &str| serde_json::from_str::<ResolveRequest>(json);
        let one = parse(r#"{"names":["yay"]}"#).unwrap();
        assert_eq!((one.repo.as_ref(), one.arch.as_ref()), (None, None));
        assert!(one.check().is_ok());
        assert!(parse(r#"{"names":[]}"#).unwrap().check().unwrap_err().contains("1 to 150"));
        let many: Vec<String> = (0..=MAX_RESOLVE_NAMES).map(|i| format!("\"p{i}\"")).collect();
        let many = parse(&format!(r#"{{"names":[{}]}}"#, many.join(","))).unwrap();
        assert!(many.check().is_err(), "{} names", many.names.len());
        assert!(parse(r#"{"names":["yay"],"force":true}"#).is_err(), "unknown members are refused");
        assert!(parse(r#"{"names":["../x"]}"#).is_err(), "names are package names");
        let full = parse(r#"{"names":["yay"],"repo":"extra","arch":"aarch64"}"#).unwrap();
        assert_eq!(serde_json::to_value(&full).unwrap()["arch"], "aarch64");
    }

    #[test]
    fn log_queries_default_to_the_whole_log() {
        assert_eq!(LogQuery::default(), LogQuery { follow: false });
        let q: LogQuery = serde_json::from_str("{}").unwrap();
        assert!(!q.follow);
    }
}
