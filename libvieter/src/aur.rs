//! The AUR's RPC interface (version 5) without I/O: the requests to send, the answers to read, and what
//! to do after an HTTP status.
//!
//! The embedder sends each [`Request`] (relative to a base URL such as [`DEFAULT_RPC_URL`]) with its own
//! HTTP client, hands the status to [`Backoff::after_status`] and, on [`Next::Parse`], the body to
//! [`parse_info`] or [`parse_search`].
//!
//! # The interface, as aurweb implements it
//!
//! Sources: aurweb's `doc/rpc.txt`, its FastAPI routes (`aurweb/routers/rpc.py`, the "OpenAPI routes"
//! documented at <https://aur.archlinux.org/rpc/swagger>), `aurweb/rpc.py` and `conf/config.defaults`.
//!
//! - **info** for many packages: `POST {base}/info` with the JSON body `{"arg":["a","b"]}`. aurweb reads
//!   this route's body with `request.json()` (its test posts `json={"arg": [...]}`): a form body
//!   (`arg[]=a&arg[]=b`) is what only the legacy `POST /rpc` endpoint takes, together with `v=5&type=info`,
//!   so the JSON form is the one that belongs under `/rpc/v5`. A body has no URI-length limit; it is
//!   still split ([`MAX_INFO_NAMES`], [`MAX_INFO_BODY_BYTES`]) so that no single answer grows large
//!   and no request nears aurweb's `max_rpc_results` (5000: more matches and the whole request fails with
//!   "Too many package results.").
//! - **search by provides**: `GET {base}/search/{term}?by=provides`, the term percent-encoded as one path
//!   segment. aurweb adds the package *named* `term` to the packages that provide it ("a package always
//!   provides itself"). Terms shorter than two characters are refused ("Query arg too small.").
//! - **answers**: `{"resultcount":N,"results":[...],"type":"multiinfo"|"search","version":5}`; an error
//!   is `{"type":"error","error":"message","results":[],"resultcount":0,...}`. An info record has
//!   `Name`, `PackageBase`, `Version`, `Description`, `URL`, `Maintainer`, `NumVotes`, `Popularity`,
//!   `OutOfDate` (a timestamp or null), `FirstSubmitted`, `LastModified`, and the lists `Depends`,
//!   `MakeDepends`, `CheckDepends`, `OptDepends`, `Provides`, `Conflicts`, `Replaces`, `License`,
//!   `Keywords`, each *absent* when empty. Dependency lists hold `name` plus the condition as one
//!   string (`foo>=1.2`): the strings [`Dependency::parse`] reads. aurweb lists the dependencies of every
//!   architecture in one list (`depends_x86_64` and `depends_aarch64` alike). **Search results carry
//!   none of the lists**: only the scalar fields.
//! - **limits**: 4000 requests per IP per 24 hours (`[ratelimit] request_limit`, `window_length`), then
//!   HTTP 429 with an error body "Rate limit reached". aurweb sends no `Retry-After`; a proxy in front of
//!   it may. See [`Backoff`].
//!
//! Parsing never panics on any bytes (see the fuzz target `aur_response`): malformed JSON, a wrong
//! shape, an invalid name, version or dependency string are [`AurError`]s.

use std::time::Duration;

use serde::Deserialize;

use crate::depend::{DependError, Dependency};
use crate::name::{NameError, PkgName};
use crate::version::{Version, VersionError};

/// The AUR's RPC v5 base URL. [`Request::path_and_query`] is relative to it.
pub const DEFAULT_RPC_URL: &str = "https://aur.archlinux.org/rpc/v5";

/// The most package names one `info` request asks for.
///
/// 150 is yay's default `--requestsplitn` ("the maximum amount of packages to query per AUR request"),
/// used for years against the AUR without trouble; it keeps every answer small (a few hundred KiB at
/// most) and far below aurweb's `max_rpc_results` of 5000 matches per request.
pub const MAX_INFO_NAMES: usize = 150;

/// The largest `info` body, in bytes.
///
/// 8 KiB is far below the 1 MiB nginx allows a request body by default (`client_max_body_size`) and
/// below the 8 KiB URI many servers and proxies accept, so the same split would hold for a GET too. With
/// typical names (10 to 30 bytes) [`MAX_INFO_NAMES`] applies first; the byte cap matters for long names
/// (up to 255 bytes each).
pub const MAX_INFO_BODY_BYTES: usize = 8 * 1024;

/// The shortest term aurweb searches for (`"Query arg too small."` below it).
pub const MIN_SEARCH_TERM_LEN: usize = 2;

/// The longest error message kept from an answer, in characters.
const MAX_MESSAGE_CHARS: usize = 500;

/// Why a request could not be made or an answer not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AurError {
    /// The AUR answered `"type":"error"`.
    #[error("the AUR refused the request: {0}")]
    Rpc(String),
    /// The body is not JSON of the RPC's shape.
    #[error("the AUR's answer is not a valid RPC v5 response: {0}")]
    Malformed(String),
    /// The answer is of another type than the request's (`multiinfo` for info, `search` for search).
    #[error("the AUR answered a {found:?} response to a {expected} request")]
    UnexpectedType { expected: &'static str, found: String },
    /// The answer is of another RPC version than 5.
    #[error("the AUR answered with RPC version {0}, expected 5")]
    UnsupportedVersion(String),
    /// A record's `Name` or `PackageBase` is not a valid package name.
    #[error("AUR record: invalid {field}: {source}")]
    InvalidName {
        field: &'static str,
        #[source]
        source: NameError,
    },
    /// A record's `Version` is not `[epoch:]pkgver-pkgrel`.
    #[error("AUR package {package}: invalid version: {source}")]
    InvalidVersion {
        package: PkgName,
        #[source]
        source: VersionError,
    },
    /// A dependency list holds a string that is not a dependency.
    #[error("AUR package {package}: invalid {field} entry: {source}")]
    InvalidDependency {
        package: PkgName,
        field: &'static str,
        #[source]
        source: DependError,
    },
    /// The search term is shorter than [`MIN_SEARCH_TERM_LEN`] or is a path-segment dot name.
    #[error("cannot search the AUR for {0:?}: a term needs at least two characters and not only dots")]
    BadSearchTerm(String),
    /// The AUR answered an HTTP status that is not worth retrying.
    #[error("the AUR answered HTTP {0}")]
    Status(u16),
    /// Retrying gave up.
    #[error("the AUR answered HTTP {status} {attempts} times; giving up")]
    GaveUp { status: u16, attempts: u32 },
}

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// One HTTP request to the RPC, relative to its base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// Starts with `/`; appended to the base URL (`https://aur.archlinux.org/rpc/v5`).
    pub path_and_query: String,
    pub body: Option<String>,
    /// The body's `Content-Type`, when there is a body.
    pub content_type: Option<&'static str>,
    /// The package names this request asks for (`info`), in order; empty for a search.
    pub names: Vec<PkgName>,
}

impl Request {
    /// The absolute URL under `base` (a trailing `/` of `base` is ignored).
    ///
    /// ```
    /// let r = libvieter::aur::search_provides_request("gtk+").unwrap();
    /// assert_eq!(r.url("https://aur.archlinux.org/rpc/v5/"), "https://aur.archlinux.org/rpc/v5/search/gtk%2B?by=provides");
    /// ```
    pub fn url(&self, base: &str) -> String {
        format!("{}{}", base.trim_end_matches('/'), self.path_and_query)
    }
}

/// Percent-encodes `s` as one URI path segment: everything but RFC 3986's unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`) becomes `%XX` (so `gtk+` is `gtk%2B`, `/` cannot split the segment).
pub fn encode_path_segment(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

/// The `info` requests for `names`: each name once (first occurrence order), at most
/// [`MAX_INFO_NAMES`] names and [`MAX_INFO_BODY_BYTES`] bytes of body per request. No names, no request.
///
/// ```
/// use libvieter::{aur::{info_requests, Method}, name::PkgName};
/// let names = [PkgName::new("yay").unwrap(), PkgName::new("gtk+").unwrap()];
/// let reqs = info_requests(&names);
/// assert_eq!(reqs.len(), 1);
/// assert_eq!((reqs[0].method, reqs[0].path_and_query.as_str()), (Method::Post, "/info"));
/// assert_eq!(reqs[0].body.as_deref(), Some(r#"{"arg":["yay","gtk+"]}"#));
/// ```
pub fn info_requests(names: &[PkgName]) -> Vec<Request> {
    const OPEN: &str = "{\"arg\":[";
    const CLOSE: &str = "]}";
    let mut seen = std::collections::BTreeSet::new();
    let mut requests = Vec::new();
    let mut body = String::from(OPEN);
    let mut chunk: Vec<PkgName> = Vec::new();
    let finish = |body: &mut String, chunk: &mut Vec<PkgName>, requests: &mut Vec<Request>| {
        if chunk.is_empty() {
            return;
        }
        body.push_str(CLOSE);
        requests.push(Request {
            method: Method::Post,
            path_and_query: "/info".to_owned(),
            body: Some(std::mem::replace(body, String::from(OPEN))),
            content_type: Some("application/json"),
            names: std::mem::take(chunk),
        });
    };
    for name in names {
        if !seen.insert(name.as_str()) {
            continue;
        }
        let quoted = json_string(name.as_str());
        let grown = body.len() + usize::from(!chunk.is_empty()) + quoted.len() + CLOSE.len();
        if !chunk.is_empty() && (chunk.len() >= MAX_INFO_NAMES || grown > MAX_INFO_BODY_BYTES) {
            finish(&mut body, &mut chunk, &mut requests);
        }
        if !chunk.is_empty() {
            body.push(',');
        }
        body.push_str(&quoted);
        chunk.push(name.clone());
    }
    finish(&mut body, &mut chunk, &mut requests);
    requests
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    // Serialising a &str cannot fail; the fallback is never taken.
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}

/// The search for packages that provide `term` (aurweb includes the package named `term`).
///
/// Refuses terms aurweb refuses (shorter than [`MIN_SEARCH_TERM_LEN`]) and terms made only of dots,
/// which URL parsers would take as `.`/`..` path segments even when percent-encoded.
pub fn search_provides_request(term: &str) -> Result<Request, AurError> {
    if term.chars().count() < MIN_SEARCH_TERM_LEN || term.bytes().all(|b| b == b'.') {
        return Err(AurError::BadSearchTerm(truncate(term)));
    }
    Ok(Request {
        method: Method::Get,
        path_and_query: format!("/search/{}?by=provides", encode_path_segment(term)),
        body: None,
        content_type: None,
        names: Vec::new(),
    })
}

/// One package as the AUR describes it.
///
/// Lists the AUR leaves out (all of them in search results) are empty.
#[derive(Debug, Clone, PartialEq)]
pub struct AurPackage {
    pub name: PkgName,
    pub package_base: PkgName,
    pub version: Version,
    pub description: Option<String>,
    pub url: Option<String>,
    /// `None` for an orphan.
    pub maintainer: Option<String>,
    pub num_votes: u64,
    pub popularity: f64,
    /// When the package was flagged out of date (Unix seconds), if it is.
    pub out_of_date: Option<i64>,
    pub first_submitted: Option<i64>,
    pub last_modified: Option<i64>,
    pub depends: Vec<Dependency>,
    pub make_depends: Vec<Dependency>,
    pub check_depends: Vec<Dependency>,
    /// With their descriptions (`foo: for bar`).
    pub opt_depends: Vec<Dependency>,
    pub provides: Vec<Dependency>,
    pub conflicts: Vec<Dependency>,
    pub replaces: Vec<Dependency>,
    pub license: Vec<String>,
    pub keywords: Vec<String>,
}

impl AurPackage {
    /// What building this package needs installed: `depends`, then `makedepends`, then `checkdepends`.
    pub fn build_needs(&self) -> impl Iterator<Item = &Dependency> {
        self.depends.iter().chain(&self.make_depends).chain(&self.check_depends)
    }

    /// Whether this package satisfies `dep`, by its own name and version or by one of its `provides`,
    /// with pacman's rules (see [`provision_satisfies`]).
    pub fn satisfies(&self, dep: &Dependency) -> bool {
        dep.satisfied_by(self.name.as_str(), self.version.as_str())
            || self.provides.iter().any(|p| provision_satisfies(p, dep))
    }
}

/// pacman's rule for a `provides` entry (libalpm `_alpm_depcmp_provides`): an unversioned dependency
/// is satisfied by any provision of its name, versioned or not; a versioned dependency only by a
/// provision of its name with an exact version (`name=version`), that version meeting the
/// constraint. `provides=('foo>=2')` provides no version (pacman ignores such an operator).
///
/// ```
/// use libvieter::{aur::provision_satisfies, depend::Dependency};
/// let d = |s| Dependency::parse(s).unwrap();
/// assert!(provision_satisfies(&d("libfoo.so=1-64"), &d("libfoo.so")));
/// assert!(provision_satisfies(&d("libfoo.so=1-64"), &d("libfoo.so>=1")));
/// assert!(!provision_satisfies(&d("libfoo.so"), &d("libfoo.so>=1")));
/// assert!(!provision_satisfies(&d("java=17"), &d("java>=21")));
/// ```
pub fn provision_satisfies(provision: &Dependency, dep: &Dependency) -> bool {
    if provision.name != dep.name {
        return false;
    }
    match (&dep.constraint, &provision.constraint) {
        (None, _) => true,
        (Some(_), Some((crate::depend::Op::Eq, version))) => dep.satisfied_by(&dep.name, version),
        (Some(_), _) => false,
    }
}

/// The kind of an RPC answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKind {
    Multiinfo,
    Search,
}

#[derive(Deserialize)]
struct RawResponse {
    #[serde(rename = "type")]
    kind: Option<String>,
    version: Option<serde_json::Value>,
    error: Option<String>,
    #[serde(default)]
    results: Option<Vec<RawPackage>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawPackage {
    name: String,
    package_base: String,
    version: String,
    description: Option<String>,
    #[serde(rename = "URL")]
    url: Option<String>,
    maintainer: Option<String>,
    num_votes: Option<u64>,
    popularity: Option<f64>,
    out_of_date: Option<i64>,
    first_submitted: Option<i64>,
    last_modified: Option<i64>,
    depends: Option<Vec<String>>,
    make_depends: Option<Vec<String>>,
    check_depends: Option<Vec<String>>,
    opt_depends: Option<Vec<String>>,
    provides: Option<Vec<String>>,
    conflicts: Option<Vec<String>>,
    replaces: Option<Vec<String>>,
    license: Option<Vec<String>>,
    keywords: Option<Vec<String>>,
}

fn truncate(s: &str) -> String {
    s.chars().take(MAX_MESSAGE_CHARS).collect()
}

impl RawPackage {
    fn into_package(self) -> Result<AurPackage, AurError> {
        // Truncating to MAX_MESSAGE_CHARS (> 255) never makes an invalid name valid: it only keeps
        // errors short.
        let name = PkgName::new(truncate(&self.name))
            .map_err(|source| AurError::InvalidName { field: "Name", source })?;
        let package_base = PkgName::new(truncate(&self.package_base))
            .map_err(|source| AurError::InvalidName { field: "PackageBase", source })?;
        let version = Version::parse(&self.version).map_err(|source| AurError::InvalidVersion {
            package: name.clone(),
            source: truncate_version_error(source),
        })?;
        let deps = |field: &'static str, list: Option<Vec<String>>| -> Result<Vec<Dependency>, AurError> {
            list.unwrap_or_default()
                .iter()
                .map(|s| {
                    Dependency::parse(s).map_err(|source| AurError::InvalidDependency {
                        package: name.clone(),
                        field,
                        source: match source {
                            DependError::EmptyName(s) => DependError::EmptyName(truncate(&s)),
                            DependError::EmptyVersion(s) => DependError::EmptyVersion(truncate(&s)),
                        },
                    })
                })
                .collect()
        };
        Ok(AurPackage {
            depends: deps("Depends", self.depends)?,
            make_depends: deps("MakeDepends", self.make_depends)?,
            check_depends: deps("CheckDepends", self.check_depends)?,
            opt_depends: deps("OptDepends", self.opt_depends)?,
            provides: deps("Provides", self.provides)?,
            conflicts: deps("Conflicts", self.conflicts)?,
            replaces: deps("Replaces", self.replaces)?,
            name,
            package_base,
            version,
            description: self.description,
            url: self.url,
            maintainer: self.maintainer,
            num_votes: self.num_votes.unwrap_or(0),
            popularity: self.popularity.unwrap_or(0.0),
            out_of_date: self.out_of_date,
            first_submitted: self.first_submitted,
            last_modified: self.last_modified,
            license: self.license.unwrap_or_default(),
            keywords: self.keywords.unwrap_or_default(),
        })
    }
}

/// Keeps a version error's message short when the AUR sent a huge version string.
fn truncate_version_error(e: VersionError) -> VersionError {
    match e {
        VersionError::MissingPkgrel(s) => VersionError::MissingPkgrel(truncate(&s)),
        VersionError::InvalidEpoch(s) => VersionError::InvalidEpoch(truncate(&s)),
        VersionError::InvalidPkgver(s) => VersionError::InvalidPkgver(truncate(&s)),
        VersionError::InvalidPkgrel(s) => VersionError::InvalidPkgrel(truncate(&s)),
        VersionError::UnsafePkgver(s) => VersionError::UnsafePkgver(truncate(&s)),
        VersionError::Empty => VersionError::Empty,
    }
}

/// Parses any RPC v5 answer: its kind and its packages. An error answer is [`AurError::Rpc`].
///
/// ```
/// use libvieter::aur::{parse_response, AurError, ResponseKind};
/// let ok = br#"{"resultcount":1,"type":"search","version":5,"results":[
///     {"Name":"yay","PackageBase":"yay","Version":"12.4.2-1","NumVotes":2500,"OutOfDate":null}]}"#;
/// let (kind, packages) = parse_response(ok).unwrap();
/// assert_eq!((kind, packages[0].name.as_str(), packages[0].num_votes), (ResponseKind::Search, "yay", 2500));
/// let err = br#"{"error":"Query arg too small.","resultcount":0,"results":[],"type":"error","version":5}"#;
/// assert_eq!(parse_response(err), Err(AurError::Rpc("Query arg too small.".into())));
/// ```
pub fn parse_response(body: &[u8]) -> Result<(ResponseKind, Vec<AurPackage>), AurError> {
    let raw: RawResponse =
        serde_json::from_slice(body).map_err(|e| AurError::Malformed(truncate(&e.to_string())))?;
    let kind = match raw.kind.as_deref() {
        Some("error") => {
            let message = raw.error.as_deref().map(truncate).unwrap_or_else(|| "no message".to_owned());
            return Err(AurError::Rpc(message));
        }
        Some("multiinfo") => ResponseKind::Multiinfo,
        Some("search") => ResponseKind::Search,
        Some(other) => {
            return Err(AurError::UnexpectedType { expected: "multiinfo or search", found: truncate(other) })
        }
        None => return Err(AurError::Malformed("no \"type\" field".to_owned())),
    };
    match &raw.version {
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(5) => {}
        Some(other) => return Err(AurError::UnsupportedVersion(truncate(&other.to_string()))),
        None => return Err(AurError::UnsupportedVersion("none".to_owned())),
    }
    let results = raw.results.ok_or_else(|| AurError::Malformed("no \"results\" field".to_owned()))?;
    let packages = results.into_iter().map(RawPackage::into_package).collect::<Result<Vec<_>, _>>()?;
    Ok((kind, packages))
}

/// Parses the answer to an `info` request ([`info_requests`]).
pub fn parse_info(body: &[u8]) -> Result<Vec<AurPackage>, AurError> {
    expect(body, ResponseKind::Multiinfo, "info")
}

/// Parses the answer to a search ([`search_provides_request`]). Its records have no dependency lists.
pub fn parse_search(body: &[u8]) -> Result<Vec<AurPackage>, AurError> {
    expect(body, ResponseKind::Search, "search")
}

fn expect(body: &[u8], want: ResponseKind, expected: &'static str) -> Result<Vec<AurPackage>, AurError> {
    let (kind, packages) = parse_response(body)?;
    if kind != want {
        let found = match kind {
            ResponseKind::Multiinfo => "multiinfo",
            ResponseKind::Search => "search",
        };
        return Err(AurError::UnexpectedType { expected, found: found.to_owned() });
    }
    Ok(packages)
}

/// What to do after the AUR answered an HTTP status.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// 200: parse the body.
    Parse,
    /// Send the same request again after this delay.
    Retry { after: Duration },
    /// Stop: [`AurError::Status`] (a status not worth retrying) or [`AurError::GaveUp`].
    Fail(AurError),
}

/// The retry policy for 429 (rate limited) and 5xx (the AUR or its proxy failing) answers.
///
/// The `n`-th attempt that failed so is followed by a wait of `base_delay * 2^(n-1)`, at most
/// `max_delay`; a `Retry-After` of delay-seconds replaces that (still at most `max_delay`, so a proxy
/// cannot park the server for hours). After `max_attempts` attempts it gives up. Other statuses fail at
/// once: 4xx are the request's fault and a retry would get the same answer; 1xx and 3xx (the client
/// follows redirects) are unexpected here. aurweb's rate limit is a 24-hour window: retrying a 429 only
/// helps against short-lived limits of proxies, hence few attempts by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub max_attempts: u32,
}

impl Default for Backoff {
    /// 1 s, 2 s, 4 s, 8 s between five attempts; at most 60 s per wait.
    fn default() -> Self {
        Backoff { base_delay: Duration::from_secs(1), max_delay: Duration::from_secs(60), max_attempts: 5 }
    }
}

impl Backoff {
    /// The decision after `attempt` attempts (1 for the first request) ended in `status`, the answer
    /// carrying the `Retry-After` header value `retry_after`, if any.
    ///
    /// ```
    /// use std::time::Duration;
    /// use libvieter::aur::{AurError, Backoff, Next};
    /// let b = Backoff::default();
    /// assert_eq!(b.after_status(200, 1, None), Next::Parse);
    /// assert_eq!(b.after_status(503, 2, None), Next::Retry { after: Duration::from_secs(2) });
    /// assert_eq!(b.after_status(429, 1, Some("7")), Next::Retry { after: Duration::from_secs(7) });
    /// assert_eq!(b.after_status(404, 1, None), Next::Fail(AurError::Status(404)));
    /// ```
    pub fn after_status(&self, status: u16, attempt: u32, retry_after: Option<&str>) -> Next {
        match status {
            200 => Next::Parse,
            429 | 500..=599 => {
                if attempt >= self.max_attempts {
                    return Next::Fail(AurError::GaveUp { status, attempts: attempt });
                }
                let after = match retry_after.and_then(parse_retry_after) {
                    Some(wanted) => wanted,
                    None => {
                        let doublings = attempt.saturating_sub(1).min(31);
                        self.base_delay.saturating_mul(1u32 << doublings)
                    }
                };
                Next::Retry { after: after.min(self.max_delay) }
            }
            _ => Next::Fail(AurError::Status(status)),
        }
    }
}

/// A `Retry-After` value in delay-seconds (`120`). The HTTP-date form is not read (`None`): the
/// exponential delay applies then.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<PkgName> {
        list.iter().map(|n| PkgName::new(*n).unwrap()).collect()
    }

    #[test]
    fn info_bodies_are_json_with_every_name_once() {
        let reqs = info_requests(&names(&["gtk+", "c++utilities", "foo@bar", "gtk+"]));
        assert_eq!(reqs.len(), 1);
        let r = &reqs[0];
        assert_eq!(
            (r.method, r.path_and_query.as_str(), r.content_type),
            (Method::Post, "/info", Some("application/json"))
        );
        assert_eq!(r.body.as_deref(), Some(r#"{"arg":["gtk+","c++utilities","foo@bar"]}"#));
        assert_eq!(r.names, names(&["gtk+", "c++utilities", "foo@bar"]));
        let parsed: serde_json::Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
        assert_eq!(parsed["arg"][0], "gtk+");
        assert!(info_requests(&[]).is_empty());
    }

    #[test]
    fn info_is_split_by_count() {
        let many: Vec<PkgName> =
            (0..(2 * MAX_INFO_NAMES + 1)).map(|i| PkgName::new(format!("p{i}")).unwrap()).collect();
        let reqs = info_requests(&many);
        assert_eq!(
            reqs.iter().map(|r| r.names.len()).collect::<Vec<_>>(),
            [MAX_INFO_NAMES, MAX_INFO_NAMES, 1]
        );
        let all: Vec<PkgName> = reqs.iter().flat_map(|r| r.names.clone()).collect();
        assert_eq!(all, many, "every name once, in order");
        for r in &reqs {
            let v: serde_json::Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
            assert_eq!(v["arg"].as_array().unwrap().len(), r.names.len());
        }
    }

    #[test]
    fn info_is_split_by_bytes() {
        // 255-byte names: about 31 fit in 8 KiB.
        let long: Vec<PkgName> =
            (0..100).map(|i| PkgName::new(format!("{i:03}{}", "x".repeat(252))).unwrap()).collect();
        let reqs = info_requests(&long);
        assert!(reqs.len() >= 4, "{}", reqs.len());
        for r in &reqs {
            let body = r.body.as_deref().unwrap();
            assert!(body.len() <= MAX_INFO_BODY_BYTES, "{}", body.len());
            assert!(!r.names.is_empty());
        }
        // Filled up: one more name would not have fitted.
        let first = reqs[0].body.as_deref().unwrap().len();
        assert!(first + 258 > MAX_INFO_BODY_BYTES, "{first}");
        assert_eq!(reqs.iter().map(|r| r.names.len()).sum::<usize>(), 100);
    }

    #[test]
    fn search_terms_are_one_encoded_segment() {
        let r = search_provides_request("gtk+").unwrap();
        assert_eq!(
            (r.method, r.path_and_query.as_str(), r.body.as_deref()),
            (Method::Get, "/search/gtk%2B?by=provides", None)
        );
        assert_eq!(
            search_provides_request("libfoo.so").unwrap().path_and_query,
            "/search/libfoo.so?by=provides"
        );
        assert_eq!(encode_path_segment("a/b?c#d e%@é"), "a%2Fb%3Fc%23d%20e%25%40%C3%A9");
        assert_eq!(
            search_provides_request("x").unwrap_err(),
            AurError::BadSearchTerm("x".into()),
            "aurweb refuses one-character terms"
        );
        assert!(search_provides_request("..").is_err());
        assert!(search_provides_request("").is_err());
        assert_eq!(r.url(DEFAULT_RPC_URL), "https://aur.archlinux.org/rpc/v5/search/gtk%2B?by=provides");
    }

    const INFO: &str = r#"{
        "resultcount": 2,
        "results": [
            {
                "CheckDepends": ["python-pytest"],
                "Depends": ["glibc", "libfoo.so=2-64", "python>=3.11"],
                "Description": "A tool",
                "FirstSubmitted": 1500000000,
                "ID": 1234,
                "Keywords": ["tool"],
                "LastModified": 1700000000,
                "License": ["MIT"],
                "Maintainer": "someone",
                "MakeDepends": ["git", "go>=2:1.21"],
                "Name": "tool-git",
                "NumVotes": 42,
                "OptDepends": ["bash-completion: completions"],
                "OutOfDate": 1710000000,
                "PackageBase": "tool",
                "PackageBaseID": 99,
                "Popularity": 1.234567,
                "Provides": ["tool=1.2", "libtool.so=1-64"],
                "Conflicts": ["tool"],
                "Replaces": ["oldtool"],
                "Submitter": "someone",
                "URL": "https://example.invalid/tool",
                "URLPath": "/cgit/aur.git/snapshot/tool.tar.gz",
                "Version": "1:1.2.r3.gabc-2",
                "PendingRequests": 0,
                "CoMaintainers": ["other"]
            },
            {
                "Description": null,
                "ID": 5,
                "License": [],
                "Keywords": [],
                "Maintainer": null,
                "Name": "tiny",
                "NumVotes": 0,
                "OutOfDate": null,
                "PackageBase": "tiny",
                "Popularity": 0,
                "URL": null,
                "Version": "0.1-1"
            }
        ],
        "type": "multiinfo",
        "version": 5
    }"#;

    #[test]
    fn parses_info_records() {
        let pkgs = parse_info(INFO.as_bytes()).unwrap();
        assert_eq!(pkgs.len(), 2);
        let t = &pkgs[0];
        assert_eq!(
            (t.name.as_str(), t.package_base.as_str(), t.version.as_str()),
            ("tool-git", "tool", "1:1.2.r3.gabc-2")
        );
        let strings = |l: &[Dependency]| l.iter().map(|d| d.to_string()).collect::<Vec<_>>();
        assert_eq!(strings(&t.depends), ["glibc", "libfoo.so=2-64", "python>=3.11"]);
        assert_eq!(strings(&t.make_depends), ["git", "go>=2:1.21"]);
        assert_eq!(strings(&t.check_depends), ["python-pytest"]);
        assert_eq!(t.opt_depends[0].description.as_deref(), Some("completions"));
        assert_eq!(strings(&t.provides), ["tool=1.2", "libtool.so=1-64"]);
        assert_eq!(
            (strings(&t.conflicts), strings(&t.replaces)),
            (vec!["tool".to_owned()], vec!["oldtool".to_owned()])
        );
        assert_eq!(
            (t.num_votes, t.out_of_date, t.maintainer.as_deref()),
            (42, Some(1710000000), Some("someone"))
        );
        assert!((t.popularity - 1.234567).abs() < 1e-9);
        assert_eq!(
            (t.license.clone(), t.keywords.clone()),
            (vec!["MIT".to_owned()], vec!["tool".to_owned()])
        );
        assert_eq!(t.build_needs().count(), 6);

        let tiny = &pkgs[1];
        assert!(tiny.depends.is_empty() && tiny.provides.is_empty() && tiny.make_depends.is_empty());
        assert_eq!((tiny.out_of_date, tiny.maintainer.clone(), tiny.description.clone()), (None, None, None));
        assert_eq!(tiny.popularity, 0.0);

        assert!(matches!(
            parse_search(INFO.as_bytes()),
            Err(AurError::UnexpectedType { expected: "search", .. })
        ));
    }

    #[test]
    fn parses_search_results_without_lists() {
        let body = br#"{"resultcount":2,"results":[
            {"Description":"d","ID":1,"Maintainer":null,"Name":"jdk-bin","NumVotes":10,"OutOfDate":null,
             "PackageBase":"jdk-bin","PackageBaseID":1,"Popularity":0.5,"URL":null,"URLPath":"/x","Version":"21-1",
             "FirstSubmitted":1,"LastModified":2},
            {"Name":"jdk","PackageBase":"jdk","Version":"21.0.1-1","NumVotes":99}
        ],"type":"search","version":5}"#;
        let pkgs = parse_search(body).unwrap();
        assert_eq!(pkgs.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["jdk-bin", "jdk"]);
        assert!(pkgs[0].depends.is_empty());
        assert!(matches!(parse_info(body), Err(AurError::UnexpectedType { expected: "info", .. })));
        let empty = br#"{"resultcount":0,"results":[],"type":"multiinfo","version":5}"#;
        assert_eq!(parse_info(empty).unwrap(), vec![]);
    }

    #[test]
    fn error_answers_are_typed() {
        for (body, message) in [
            (&br#"{"error":"Rate limit reached","resultcount":0,"results":[],"type":"error","version":5}"#[..], "Rate limit reached"),
            (br#"{"error":"Please specify an API version.","resultcount":0,"results":[],"type":"error","version":null}"#, "Please specify an API version."),
            (br#"{"type":"error"}"#, "no message"),
        ] {
            let e = parse_info(body).unwrap_err();
            assert_eq!(e, AurError::Rpc(message.into()));
            assert!(e.to_string().contains(message), "{e}");
        }
    }

    #[test]
    fn bad_records_and_shapes_are_errors() {
        let rec = |fields: &str| {
            format!(r#"{{"type":"multiinfo","version":5,"resultcount":1,"results":[{{{fields}}}]}}"#)
        };
        let cases = [
            rec(r#""Name":"-bad","PackageBase":"b","Version":"1-1""#),
            rec(r#""Name":"a","PackageBase":"b/c","Version":"1-1""#),
            rec(r#""Name":"a","PackageBase":"b","Version":"1""#),
            rec(r#""Name":"a","PackageBase":"b","Version":"1-1","Depends":[">=1"]"#),
            rec(r#""Name":"a","PackageBase":"b","Version":"1-1","Depends":"glibc""#),
            rec(r#""Name":"a","PackageBase":"b","Version":"1-1","NumVotes":-3"#),
            rec(r#""PackageBase":"b","Version":"1-1""#),
            r#"{"type":"multiinfo","version":4,"results":[]}"#.to_owned(),
            r#"{"type":"multiinfo","version":"5","results":[]}"#.to_owned(),
            r#"{"type":"multiinfo","results":[]}"#.to_owned(),
            r#"{"type":"multiinfo","version":5}"#.to_owned(),
            r#"{"type":"suggest","version":5,"results":[]}"#.to_owned(),
            r#"{"version":5,"results":[]}"#.to_owned(),
            r#"["a","b"]"#.to_owned(),
            String::new(),
        ];
        for body in &cases {
            assert!(parse_info(body.as_bytes()).is_err(), "{body}");
        }
        assert!(matches!(parse_info(cases[0].as_bytes()), Err(AurError::InvalidName { field: "Name", .. })));
        assert!(matches!(parse_info(cases[2].as_bytes()), Err(AurError::InvalidVersion { .. })));
        assert!(matches!(
            parse_info(cases[3].as_bytes()),
            Err(AurError::InvalidDependency { field: "Depends", .. })
        ));
        assert!(matches!(parse_info(cases[7].as_bytes()), Err(AurError::UnsupportedVersion(v)) if v == "4"));
        // A huge bad name is not copied whole into the message.
        let huge = rec(&format!(r#""Name":"{}","PackageBase":"b","Version":"1-1""#, "é".repeat(100_000)));
        assert!(parse_info(huge.as_bytes()).unwrap_err().to_string().len() < 2000);
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let base = INFO.as_bytes();
        for _ in 0..3000 {
            let mut bytes = base.to_vec();
            let edits = 1 + next() % 8;
            for _ in 0..edits {
                let at = (next() as usize) % bytes.len();
                match next() % 3 {
                    0 => bytes[at] = next() as u8,
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.truncate(at),
                }
                if bytes.is_empty() {
                    break;
                }
            }
            let _ = parse_response(&bytes);
        }
        // Deep nesting stays within serde_json's recursion limit instead of overflowing the stack.
        let deep = format!("{{\"type\":\"multiinfo\",\"version\":5,\"results\":{}", "[".repeat(100_000));
        assert!(parse_info(deep.as_bytes()).is_err());
        assert!(parse_info(&[0xff, 0xfe, 0x00]).is_err());
    }

    #[test]
    fn backoff_grows_is_capped_and_gives_up() {
        let b = Backoff {
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(3),
            max_attempts: 4,
        };
        let s = Duration::from_millis;
        assert_eq!(b.after_status(503, 1, None), Next::Retry { after: s(500) });
        assert_eq!(b.after_status(502, 2, None), Next::Retry { after: s(1000) });
        assert_eq!(b.after_status(429, 3, None), Next::Retry { after: s(2000) });
        assert_eq!(b.after_status(429, 4, None), Next::Fail(AurError::GaveUp { status: 429, attempts: 4 }));
        assert_eq!(b.after_status(500, 9, None), Next::Fail(AurError::GaveUp { status: 500, attempts: 9 }));
        // Retry-After replaces the computed delay, within the cap; a date or junk falls back.
        assert_eq!(b.after_status(429, 1, Some(" 2 ")), Next::Retry { after: s(2000) });
        assert_eq!(b.after_status(429, 1, Some("0")), Next::Retry { after: s(0) });
        assert_eq!(b.after_status(429, 1, Some("86400")), Next::Retry { after: s(3000) });
        assert_eq!(
            b.after_status(429, 2, Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            Next::Retry { after: s(1000) }
        );
        assert_eq!(b.after_status(429, 2, Some("-5")), Next::Retry { after: s(1000) });
        assert_eq!(b.after_status(429, 2, Some("99999999999999999999999")), Next::Retry { after: s(1000) });
        // Huge attempt numbers neither overflow nor panic.
        let lenient = Backoff { max_attempts: u32::MAX, ..b };
        assert_eq!(lenient.after_status(503, u32::MAX - 1, None), Next::Retry { after: s(3000) });
        for status in [400, 401, 403, 404, 410, 418, 301, 304, 100, 204] {
            assert_eq!(b.after_status(status, 1, None), Next::Fail(AurError::Status(status)), "{status}");
        }
        assert_eq!(b.after_status(200, 1, None), Next::Parse);
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(""), None);
    }

    #[test]
    fn provisions_follow_pacman() {
        let d = |s| Dependency::parse(s).unwrap();
        assert!(provision_satisfies(&d("sh"), &d("sh")));
        assert!(provision_satisfies(&d("java-runtime=17"), &d("java-runtime")));
        assert!(provision_satisfies(&d("java-runtime=17"), &d("java-runtime>=11")));
        assert!(!provision_satisfies(&d("java-runtime=17"), &d("java-runtime>=21")));
        assert!(
            !provision_satisfies(&d("java-runtime"), &d("java-runtime>=11")),
            "unversioned provides no version"
        );
        assert!(
            !provision_satisfies(&d("java-runtime>=17"), &d("java-runtime>=11")),
            "only = provides a version"
        );
        assert!(!provision_satisfies(&d("java-environment=17"), &d("java-runtime")));
    }
}
