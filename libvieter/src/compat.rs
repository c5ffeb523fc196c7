//! Vieter 0.6's API, for scripts and tools written against it: its wire shapes and the rules that map
//! this server's jobs and targets onto them. Only types and pure functions: no HTTP.
//!
//! Taken from Vieter's source (tag 0.6.0): `models/logs.v` (`BuildLog`, `BuildLogFilter`),
//! `models/targets.v` (`Target`, `TargetArch`), `models/models.v` (`from_params`: a parameter given
//! empty counts as absent), `dbms/logs.v` (the filters), `server/api_jobs.v` (`/api/v1/jobs/queue`).
//! V's JSON encoder writes a `time.Time` as its Unix time in seconds.
//!
//! Vieter had a build log per build; here a build is a job, so a log's id is the job's id. Only jobs
//! that ran and ended have one ([`BuildLog::from_job`]); their exit code is derived from the outcome
//! ([`exit_code`]).
//!
//! Deliberate differences from Vieter 0.6: `force=false` does not force (Vieter forced whenever the
//! parameter was present); a number that does not parse is refused (Vieter read it as 0); `!1,!2` in
//! `exit_codes` excludes both codes, as Vieter documented (its query OR-ed every part, so it excluded
//! nothing); logs come in id order as Vieter's did, but the ids are job ids.
//!
//! ```
//! use std::collections::HashMap;
//! use libvieter::compat::LogFilter;
//! let params: HashMap<String, String> =
//!     [("exit_codes".to_owned(), "!0".to_owned()), ("limit".to_owned(), "5".to_owned())].into();
//! let filter = LogFilter::from_params(&params).unwrap();
//! assert_eq!(filter.page().limit, 5);
//! ```

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::api::{Page, QueueRequest};
use crate::db::Database;
use crate::job::{FailureCause, Job, JobId, JobState};
use crate::name::Arch;
use crate::target::{NewTarget, Target, TargetId};

/// Logs in a page of `GET /api/v1/logs` when `limit` is absent (Vieter's default).
pub const DEFAULT_LOG_PAGE: usize = 25;

/// The largest db `vieter migrate` reads from an old server (Arch's largest official db is ~10 MiB).
pub const MAX_OLD_DB_SIZE: u64 = 256 * 1024 * 1024;

/// The exit code of a failed build whose cause has none (an upload refused, the container runtime).
pub const EXIT_FAILED: i32 = 1;
/// The exit code of a build killed at its timeout (as `timeout(1)` reports it).
pub const EXIT_TIMED_OUT: i32 = 124;
/// The exit code of a build cancelled while it ran (128 + SIGINT).
pub const EXIT_CANCELLED: i32 = 130;
/// The exit code of a build whose agent stopped reporting (the lease expired).
pub const EXIT_LOST: i32 = 255;

/// A bad query parameter or a bad answer of an old server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompatError {
    #[error("query parameter {name}: {value:?} is not {expected}")]
    Param { name: &'static str, value: String, expected: &'static str },
    #[error("missing query parameter {0}")]
    Missing(&'static str),
    #[error("the db entry of {package} has no valid %{field}%")]
    DbField { package: String, field: &'static str },
}

/// Vieter's `BuildLog`: one finished build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildLog {
    /// The id of the job.
    pub id: u64,
    pub target_id: u64,
    /// Unix time (seconds) the build started.
    pub start_time: i64,
    /// Unix time (seconds) it ended.
    pub end_time: i64,
    pub arch: String,
    pub exit_code: i32,
}

/// The exit code Vieter would have recorded for a job in `state` (it recorded the build container's):
/// `None` while the job has not ended. Succeeded and skipped are 0 (Vieter's build script exited 0 when
/// the package was up to date); a failure has its step's exit code, else [`EXIT_FAILED`]; timed out,
/// cancelled and lost have [`EXIT_TIMED_OUT`], [`EXIT_CANCELLED`] and [`EXIT_LOST`].
///
/// ```
/// use libvieter::compat::exit_code;
/// use libvieter::job::{FailureCause, FailureStep, JobState};
/// let cause = FailureCause { step: FailureStep::Makepkg, exit_code: Some(4), http_status: None, message: String::new() };
/// assert_eq!(exit_code(JobState::Failed, Some(&cause)), Some(4));
/// assert_eq!(exit_code(JobState::Succeeded, None), Some(0));
/// assert_eq!(exit_code(JobState::Running, None), None);
/// ```
pub fn exit_code(state: JobState, cause: Option<&FailureCause>) -> Option<i32> {
    Some(match state {
        JobState::Waiting | JobState::Queued | JobState::Running => return None,
        JobState::Succeeded | JobState::Skipped => 0,
        JobState::Failed => cause.and_then(|c| c.exit_code).filter(|&c| c != 0).unwrap_or(EXIT_FAILED),
        JobState::TimedOut => EXIT_TIMED_OUT,
        JobState::Cancelled => EXIT_CANCELLED,
        JobState::Lost => EXIT_LOST,
    })
}

impl BuildLog {
    /// The build log of a job that ran and ended; `None` for one still queued or running, or ended
    /// before an agent took it (a job cancelled while queued never built).
    pub fn from_job(job: &Job) -> Option<BuildLog> {
        let code = exit_code(job.state(), job.cause())?;
        let start = job.started_at()?;
        let end = job.finished_at().unwrap_or(start).max(start);
        Some(BuildLog {
            id: job.id().0,
            target_id: job.target().0,
            start_time: start.timestamp(),
            end_time: end.timestamp(),
            arch: job.arch().to_string(),
            exit_code: code,
        })
    }

    /// The build log of `job` if it has one: it ran and ended ([`BuildLog::from_job`]) and its log
    /// is still kept (`has_log`: the log store has it; `DELETE /api/v1/logs/{id}` and the log
    /// retention delete it, as Vieter deleted the log and its record).
    pub fn of(job: &Job, has_log: impl Fn(JobId) -> bool) -> Option<BuildLog> {
        BuildLog::from_job(job).filter(|_| has_log(job.id()))
    }
}

/// One part of `exit_codes`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExitCodes {
    /// Codes to keep (any of them); empty keeps every code.
    pub include: BTreeSet<i32>,
    /// Codes to leave out (`!` prefix).
    pub exclude: BTreeSet<i32>,
}

impl ExitCodes {
    /// Parses Vieter's comma-separated list (`1,2`, `!0`); empty parts are ignored.
    pub fn parse(list: &str) -> Result<ExitCodes, CompatError> {
        let mut codes = ExitCodes::default();
        for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (set, number) = match part.strip_prefix('!') {
                Some(rest) => (&mut codes.exclude, rest),
                None => (&mut codes.include, part),
            };
            let code = number.trim().parse().map_err(|_| CompatError::Param {
                name: "exit_codes",
                value: list.to_owned(),
                expected: "a comma-separated list of exit codes, each optionally prefixed by !",
            })?;
            set.insert(code);
        }
        Ok(codes)
    }

    /// Whether `code` passes.
    pub fn matches(&self, code: i32) -> bool {
        (self.include.is_empty() || self.include.contains(&code)) && !self.exclude.contains(&code)
    }
}

/// Vieter's `BuildLogFilter`, the query parameters of `GET /api/v1/logs`: every filter given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// Most logs answered ([`DEFAULT_LOG_PAGE`] when absent).
    pub limit: Option<usize>,
    pub offset: Option<usize>,
    /// Logs of this target (0, like absent, means every target).
    pub target: Option<u64>,
    /// Started before this Unix time (strictly).
    pub before: Option<i64>,
    /// Started after this Unix time (strictly).
    pub after: Option<i64>,
    pub arch: Option<String>,
    pub exit_codes: ExitCodes,
}

/// A parameter's value; an empty one is absent (Vieter's `from_params`).
fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

fn number<T: std::str::FromStr>(
    params: &HashMap<String, String>,
    name: &'static str,
    expected: &'static str,
) -> Result<Option<T>, CompatError> {
    param(params, name)
        .map(|v| v.trim().parse().map_err(|_| CompatError::Param { name, value: v.to_owned(), expected }))
        .transpose()
}

impl LogFilter {
    /// Reads the query parameters (unknown ones are ignored, as Vieter did).
    pub fn from_params(params: &HashMap<String, String>) -> Result<LogFilter, CompatError> {
        const COUNT: &str = "a non-negative integer";
        const TIME: &str = "a Unix time in seconds";
        Ok(LogFilter {
            limit: number(params, "limit", COUNT)?,
            offset: number(params, "offset", COUNT)?,
            target: number(params, "target", "a target id")?.filter(|&t: &u64| t != 0),
            before: number(params, "before", TIME)?,
            after: number(params, "after", TIME)?,
            arch: param(params, "arch").map(str::to_owned),
            exit_codes: param(params, "exit_codes").map(ExitCodes::parse).transpose()?.unwrap_or_default(),
        })
    }

    /// Whether `log` passes every filter.
    pub fn matches(&self, log: &BuildLog) -> bool {
        self.target.is_none_or(|t| log.target_id == t)
            && self.before.is_none_or(|b| log.start_time < b)
            && self.after.is_none_or(|a| log.start_time > a)
            && self.arch.as_deref().is_none_or(|a| log.arch == a)
            && self.exit_codes.matches(log.exit_code)
    }

    /// The page asked for.
    pub fn page(&self) -> Page {
        Page::new(self.offset, self.limit, DEFAULT_LOG_PAGE)
    }

    /// The build log of `job` ([`BuildLog::of`]) if it passes the filter.
    pub fn keep(&self, job: &Job, has_log: impl Fn(JobId) -> bool) -> Option<BuildLog> {
        BuildLog::of(job, has_log).filter(|l| self.matches(l))
    }

    /// The page asked for of `logs` (each kept by [`LogFilter::keep`]), in id order (oldest first, as
    /// Vieter's database answered).
    pub fn page_of(&self, mut logs: Vec<BuildLog>) -> Vec<BuildLog> {
        logs.sort_by_key(|l| l.id);
        self.page().apply(logs).collect()
    }

    /// The page of the logs of `jobs` passing the filter ([`LogFilter::keep`], then
    /// [`LogFilter::page_of`]). `jobs` may come in any order.
    pub fn select<'a>(
        &self,
        jobs: impl IntoIterator<Item = &'a Job>,
        has_log: impl Fn(JobId) -> bool,
    ) -> Vec<BuildLog> {
        self.page_of(jobs.into_iter().filter_map(|j| self.keep(j, &has_log)).collect())
    }
}

/// The query parameters of Vieter's `POST /api/v1/jobs/queue?target=&arch=&force`: the same request as
/// `POST /api/v1/jobs`' body. `arch` absent or empty queues every arch of the target; `force` given
/// without a value, `true` or `1` forces, `false` or `0` does not.
///
/// ```
/// use std::collections::HashMap;
/// use libvieter::compat::queue_request;
/// let p = |q: &[(&str, &str)]| q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>();
/// let req = queue_request(&p(&[("target", "1"), ("arch", "x86_64"), ("force", "false")])).unwrap();
/// assert_eq!((req.target.0, req.arch.unwrap().as_str(), req.force), (1, "x86_64", false));
/// assert!(queue_request(&p(&[("target", "1"), ("force", "")])).unwrap().force);
/// assert!(queue_request(&p(&[("arch", "x86_64")])).is_err());
/// ```
pub fn queue_request(params: &HashMap<String, String>) -> Result<QueueRequest, CompatError> {
    let target = number(params, "target", "a target id")?.ok_or(CompatError::Missing("target"))?;
    let arch = param(params, "arch")
        .map(|a| {
            Arch::new(a).map_err(|_| CompatError::Param {
                name: "arch",
                value: a.to_owned(),
                expected: "an architecture",
            })
        })
        .transpose()?;
    let force = match params.get("force").map(|v| v.trim()) {
        None => false,
        Some("" | "true" | "1") => true,
        Some("false" | "0") => false,
        Some(other) => {
            return Err(CompatError::Param {
                name: "force",
                value: other.to_owned(),
                expected: "true or false",
            })
        }
    };
    Ok(QueueRequest { target: TargetId(target), arch, force })
}

/// One architecture of a Vieter target (`TargetArch`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VieterTargetArch {
    #[serde(default)]
    pub id: u64,
    #[serde(default)]
    pub target_id: u64,
    pub value: String,
}

/// A target as Vieter 0.6 answers it in `GET /api/v1/targets` (unset strings are empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VieterTarget {
    pub id: u64,
    /// `git` or `url`.
    pub kind: String,
    pub url: String,
    #[serde(default)]
    pub branch: String,
    pub repo: String,
    #[serde(default)]
    pub schedule: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub arch: Vec<VieterTargetArch>,
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

impl VieterTarget {
    /// The input that creates the same target here. Empty strings are absent (the server's global
    /// schedule, the default branch, the repository root); a `url` target's branch and path, which
    /// Vieter ignored, are dropped; no arch means the server's default arch, as in Vieter.
    pub fn to_new(&self) -> NewTarget {
        let git = self.kind.trim() == "git";
        let arch: Vec<String> = self.arch.iter().filter_map(|a| non_empty(&a.value)).collect();
        NewTarget {
            kind: self.kind.trim().to_owned(),
            url: self.url.trim().to_owned(),
            branch: if git { non_empty(&self.branch) } else { None },
            path: if git { non_empty(&self.path) } else { None },
            repo: self.repo.trim().to_owned(),
            schedule: non_empty(&self.schedule),
            arch: (!arch.is_empty()).then_some(arch),
            ..NewTarget::default()
        }
    }
}

/// Whether two targets build the same thing into the same repository: same kind, url, repo, branch and
/// path (the schedule and arches may differ).
pub fn same_target(a: &NewTarget, b: &NewTarget) -> bool {
    let path =
        |t: &NewTarget| t.path.as_deref().map(|p| p.trim_matches('/').to_owned()).filter(|p| !p.is_empty());
    a.kind == b.kind && a.url == b.url && a.repo == b.repo && a.branch == b.branch && path(a) == path(b)
}

/// What the migration does with one of the old server's targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPlan {
    /// Create it here.
    Create { old: u64, new: Box<NewTarget> },
    /// The same target exists here already: left alone.
    Exists { old: u64, existing: TargetId },
    /// An earlier target of the old server is the same: created once.
    Duplicate { old: u64, of: u64 },
}

/// The plan for the old server's targets against the ones here (see [`same_target`]).
pub fn plan_targets(old: &[VieterTarget], here: &[Target]) -> Vec<TargetPlan> {
    let here: Vec<(TargetId, NewTarget)> = here.iter().map(|t| (t.id, t.to_new())).collect();
    let mut planned: Vec<(u64, NewTarget)> = Vec::new();
    let mut out = Vec::with_capacity(old.len());
    for t in old {
        let new = t.to_new();
        if let Some((id, _)) = here.iter().find(|(_, h)| same_target(h, &new)) {
            out.push(TargetPlan::Exists { old: t.id, existing: *id });
        } else if let Some((of, _)) = planned.iter().find(|(_, p)| same_target(p, &new)) {
            out.push(TargetPlan::Duplicate { old: t.id, of: *of });
        } else {
            planned.push((t.id, new.clone()));
            out.push(TargetPlan::Create { old: t.id, new: Box::new(new) });
        }
    }
    out
}

/// The repositories and architectures the old server's targets publish to: Vieter 0.6 has no API that
/// lists its repositories, so these (and the ones a user names) are the arch-repos to copy.
pub fn target_repos(targets: &[VieterTarget]) -> (BTreeSet<String>, BTreeSet<String>) {
    let repos = targets.iter().filter_map(|t| non_empty(&t.repo)).collect();
    let arches = targets.iter().flat_map(|t| t.arch.iter().filter_map(|a| non_empty(&a.value))).collect();
    (repos, arches)
}

/// A package file an arch-repo's db lists, with what its db says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPackage {
    pub name: String,
    pub filename: String,
    /// `%CSIZE%`: the file's size.
    pub csize: u64,
    /// `%SHA256SUM%`, lower-case hex.
    pub sha256: String,
    /// `%ARCH%` (`any` for architecture-independent packages).
    pub arch: String,
}

/// The package files `db` lists, each with the size and SHA-256 to check a download against. A file
/// name must be a plain name (no `/`, not `.` or `..`).
pub fn listed_packages(db: &Database) -> Result<Vec<ListedPackage>, CompatError> {
    db.iter()
        .map(|stored| {
            let e = &stored.entry;
            let field = |key: &'static str| -> Result<String, CompatError> {
                let header = format!("%{key}%");
                let mut lines = e.desc.lines();
                while let Some(line) = lines.next() {
                    if line == header {
                        if let Some(v) = lines.next().filter(|v| !v.is_empty()) {
                            return Ok(v.to_owned());
                        }
                    }
                }
                Err(CompatError::DbField { package: e.name.to_string(), field: key })
            };
            let bad = |field| CompatError::DbField { package: e.name.to_string(), field };
            let sha256 = field("SHA256SUM")?.to_ascii_lowercase();
            if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad("SHA256SUM"));
            }
            let filename = e.filename.clone();
            if filename.is_empty() || filename.contains('/') || filename == "." || filename == ".." {
                return Err(bad("FILENAME"));
            }
            Ok(ListedPackage {
                name: e.name.to_string(),
                filename,
                csize: field("CSIZE")?.parse().map_err(|_| bad("CSIZE"))?,
                sha256,
                arch: field("ARCH")?,
            })
        })
        .collect()
}

/// Why a downloaded package file does not match its db entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("{filename}: {actual} bytes, the db says {expected}")]
    Size { filename: String, expected: u64, actual: u64 },
    #[error("{filename}: SHA-256 {actual}, the db says {expected}")]
    Sha256 { filename: String, expected: String, actual: String },
}

impl ListedPackage {
    /// Checks a download's size and SHA-256 against the db entry.
    pub fn verify(&self, size: u64, sha256: &str) -> Result<(), Mismatch> {
        if size != self.csize {
            return Err(Mismatch::Size {
                filename: self.filename.clone(),
                expected: self.csize,
                actual: size,
            });
        }
        if !sha256.eq_ignore_ascii_case(&self.sha256) {
            return Err(Mismatch::Sha256 {
                filename: self.filename.clone(),
                expected: self.sha256.clone(),
                actual: sha256.to_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{AgentId, FailureStep, Outcome, Trigger};
    use chrono::{Duration, TimeZone, Utc};

    fn params(q: &[(&str, &str)]) -> HashMap<String, String> {
        q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn job(id: u64, target: u64, arch: &str, outcome: Option<Outcome>) -> Job {
        let t0 = Utc.with_ymd_and_hms(2023, 7, 1, 3, 0, 0).unwrap() + Duration::seconds(id as i64 * 100);
        let mut j = Job::new(
            crate::job::JobId(id),
            TargetId(target),
            Arch::new(arch).unwrap(),
            false,
            Trigger::Manual,
            t0,
        );
        if let Some(outcome) = outcome {
            let agent = AgentId::new("a").unwrap();
            j.lease(&agent, t0 + Duration::seconds(1), Duration::seconds(60)).unwrap();
            j.finish(&agent, outcome, t0 + Duration::seconds(11)).unwrap();
        }
        j
    }

    fn failed(code: Option<i32>) -> Outcome {
        Outcome::Failed {
            cause: FailureCause {
                step: FailureStep::Makepkg,
                exit_code: code,
                http_status: None,
                message: "x".into(),
            },
        }
    }

    #[test]
    fn a_log_is_vieters_shape() {
        let j = job(3, 7, "x86_64", Some(Outcome::Succeeded { versions: vec![], revision: None }));
        let log = BuildLog::from_job(&j).unwrap();
        let json = serde_json::to_value(&log).unwrap();
        let start = j.started_at().unwrap().timestamp();
        assert_eq!(
            json,
            serde_json::json!({"id": 3, "target_id": 7, "start_time": start, "end_time": start + 10,
                "arch": "x86_64", "exit_code": 0})
        );
    }

    #[test]
    fn only_ended_builds_have_logs() {
        assert_eq!(BuildLog::from_job(&job(1, 1, "x86_64", None)), None, "queued");
        let mut cancelled = job(2, 1, "x86_64", None);
        cancelled.cancel(Utc::now()).unwrap();
        assert_eq!(BuildLog::from_job(&cancelled), None, "cancelled before it ran");
        assert_eq!(BuildLog::from_job(&job(3, 1, "x86_64", Some(failed(Some(4))))).unwrap().exit_code, 4);
        assert_eq!(
            BuildLog::from_job(&job(4, 1, "x86_64", Some(failed(None)))).unwrap().exit_code,
            EXIT_FAILED
        );
        assert_eq!(BuildLog::from_job(&job(5, 1, "x86_64", Some(Outcome::TimedOut))).unwrap().exit_code, 124);
        let skipped = job(6, 1, "x86_64", Some(Outcome::Skipped { versions: vec![], revision: None }));
        assert_eq!(BuildLog::from_job(&skipped).unwrap().exit_code, 0);
        assert_eq!(exit_code(JobState::Lost, None), Some(EXIT_LOST));
        assert_eq!(exit_code(JobState::Cancelled, None), Some(EXIT_CANCELLED));
    }

    #[test]
    fn filters_are_vieters() {
        let jobs = [
            job(1, 1, "x86_64", Some(Outcome::Succeeded { versions: vec![], revision: None })),
            job(2, 2, "aarch64", Some(failed(Some(1)))),
            job(3, 1, "x86_64", Some(failed(Some(2)))),
            job(4, 1, "x86_64", None),
        ];
        let ids = |q: &[(&str, &str)]| -> Vec<u64> {
            LogFilter::from_params(&params(q))
                .unwrap()
                .select(jobs.iter().rev(), |_| true)
                .iter()
                .map(|l| l.id)
                .collect()
        };
        let kept = LogFilter::default().select(jobs.iter(), |id| id != JobId(2));
        assert_eq!(kept.iter().map(|l| l.id).collect::<Vec<_>>(), [1, 3], "a deleted log is no log");
        assert_eq!(ids(&[]), [1, 2, 3], "id order, unfinished jobs left out");
        assert_eq!(ids(&[("target", "1")]), [1, 3]);
        assert_eq!(ids(&[("target", "0")]), [1, 2, 3], "0 is every target");
        assert_eq!(ids(&[("arch", "aarch64")]), [2]);
        assert_eq!(ids(&[("exit_codes", "1,2")]), [2, 3]);
        assert_eq!(ids(&[("exit_codes", "!0")]), [2, 3]);
        assert_eq!(ids(&[("exit_codes", "!1,!2")]), [1], "excludes both, as documented");
        let second = jobs[1].started_at().unwrap().timestamp();
        assert_eq!(ids(&[("before", &second.to_string())]), [1], "strictly before");
        assert_eq!(ids(&[("after", &second.to_string())]), [3], "strictly after");
        assert_eq!(ids(&[("limit", "1"), ("offset", "1")]), [2]);
        assert_eq!(ids(&[("limit", ""), ("arch", "")]), [1, 2, 3], "empty is absent");
        assert_eq!(LogFilter::default().page().limit, DEFAULT_LOG_PAGE);
        for bad in [("limit", "x"), ("before", "yesterday"), ("exit_codes", "1,!a"), ("target", "-1")] {
            let e = LogFilter::from_params(&params(&[bad])).unwrap_err();
            assert!(e.to_string().contains(bad.0), "{e}");
        }
    }

    #[test]
    fn queue_parameters() {
        let req = queue_request(&params(&[("target", "3"), ("arch", "x86_64"), ("force", "true")])).unwrap();
        assert_eq!(
            req,
            QueueRequest { target: TargetId(3), arch: Some(Arch::new("x86_64").unwrap()), force: true }
        );
        let req = queue_request(&params(&[("target", "3"), ("arch", "")])).unwrap();
        assert_eq!((req.arch, req.force), (None, false));
        assert_eq!(queue_request(&params(&[])).unwrap_err(), CompatError::Missing("target"));
        assert!(queue_request(&params(&[("target", "3"), ("force", "maybe")])).is_err());
        assert!(queue_request(&params(&[("target", "3"), ("arch", "x/y")])).is_err());
    }

    fn vieter(id: u64, kind: &str, url: &str, branch: &str, path: &str, arch: &[&str]) -> VieterTarget {
        VieterTarget {
            id,
            kind: kind.into(),
            url: url.into(),
            branch: branch.into(),
            repo: "bur".into(),
            schedule: String::new(),
            path: path.into(),
            arch: arch
                .iter()
                .map(|a| VieterTargetArch { id: 0, target_id: id, value: a.to_string() })
                .collect(),
        }
    }

    #[test]
    fn vieter_targets_become_ours() {
        let json = r#"{"id":1,"kind":"git","url":"https://aur.archlinux.org/discord-ptb.git","branch":"master",
            "path":"","repo":"bur","schedule":"0 2","arch":[{"id":1,"target_id":1,"value":"x86_64"}]}"#;
        let t: VieterTarget = serde_json::from_str(json).unwrap();
        let new = t.to_new();
        assert_eq!(new.kind, "git");
        assert_eq!(new.branch.as_deref(), Some("master"));
        assert_eq!(new.path, None);
        assert_eq!(new.schedule.as_deref(), Some("0 2"));
        assert_eq!(new.arch, Some(vec!["x86_64".to_owned()]));
        new.validate(TargetId(1), &Arch::new("x86_64").unwrap()).unwrap();

        let url = vieter(2, "url", "https://h/PKGBUILD", "main", "sub", &[]).to_new();
        assert_eq!((url.branch, url.path, url.arch, url.schedule), (None, None, None, None));
    }

    #[test]
    fn the_plan_leaves_existing_targets_alone() {
        let default = Arch::new("x86_64").unwrap();
        let here = vieter(9, "git", "https://g/a.git", "", "pkg/", &["x86_64"])
            .to_new()
            .validate(TargetId(5), &default)
            .unwrap();
        let old = [
            vieter(1, "git", "https://g/a.git", "", "pkg", &["aarch64"]),
            vieter(2, "git", "https://g/a.git", "dev", "pkg", &["x86_64"]),
            vieter(3, "git", "https://g/a.git", "dev", "pkg", &["x86_64"]),
        ];
        let plan = plan_targets(&old, &[here]);
        assert_eq!(plan[0], TargetPlan::Exists { old: 1, existing: TargetId(5) });
        assert!(
            matches!(&plan[1], TargetPlan::Create { old: 2, new } if new.branch.as_deref() == Some("dev"))
        );
        assert_eq!(plan[2], TargetPlan::Duplicate { old: 3, of: 2 });
        let (repos, arches) = target_repos(&old);
        assert_eq!(repos.into_iter().collect::<Vec<_>>(), ["bur"]);
        assert_eq!(arches.into_iter().collect::<Vec<_>>(), ["aarch64", "x86_64"]);
    }

    #[test]
    fn listed_packages_carry_what_to_verify() {
        let mut b = tar::Builder::new(Vec::new());
        let desc = "%FILENAME%\nfoo-1-1-any.pkg.tar.zst\n\n%NAME%\nfoo\n\n%VERSION%\n1-1\n\n%CSIZE%\n3\n\n\
                    %SHA256SUM%\nBA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD\n\n%ARCH%\nany\n\n";
        let mut h = tar::Header::new_gnu();
        h.set_size(desc.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, "foo-1-1/desc", desc.as_bytes()).unwrap();
        let db = Database::read(&b.into_inner().unwrap()[..]).unwrap();
        let listed = listed_packages(&db).unwrap();
        assert_eq!(listed.len(), 1);
        let p = &listed[0];
        assert_eq!((p.filename.as_str(), p.csize, p.arch.as_str()), ("foo-1-1-any.pkg.tar.zst", 3, "any"));
        let abc = crate::digest::digest_stream(&b"abc"[..], false).unwrap();
        p.verify(abc.size, &abc.sha256).unwrap();
        assert!(matches!(p.verify(4, &abc.sha256), Err(Mismatch::Size { .. })));
        let other = crate::digest::digest_stream(&b"abd"[..], false).unwrap();
        assert!(matches!(p.verify(3, &other.sha256), Err(Mismatch::Sha256 { .. })));
    }
}
