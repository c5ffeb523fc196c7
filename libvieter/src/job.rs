//! Build jobs and their life cycle: (waiting for the jobs of the targets it needs →) queued → running
//! (leased by one agent, renewed by heartbeats) → a final state, with the cause of a failure and the
//! retry policy.
//!
//! Every transition is a method of [`Job`] that takes the current time as an argument and refuses an
//! illegal move with a [`JobError`]; nothing here reads a clock. A retry is a *new* job (trigger
//! [`Trigger::Retry`], attempt + 1, [`Job::retry_of`] pointing back), so the failed attempt keeps its
//! record.
//!
//! ```
//! use chrono::{Duration, TimeZone, Utc};
//! use libvieter::job::{AgentId, Job, JobId, JobState, Outcome, Trigger};
//! use libvieter::name::Arch;
//! use libvieter::target::TargetId;
//!
//! let t0 = Utc.with_ymd_and_hms(2025, 1, 1, 3, 0, 0).unwrap();
//! let mut job = Job::new(JobId(1), TargetId(4), Arch::new("x86_64").unwrap(), false, Trigger::Schedule, t0);
//! let agent = AgentId::new("builder-1").unwrap();
//! job.lease(&agent, t0, Duration::seconds(60)).unwrap();
//! job.heartbeat(&agent, t0 + Duration::seconds(30), Duration::seconds(60)).unwrap();
//! job.finish(&agent, Outcome::Succeeded { versions: vec![], revision: None }, t0 + Duration::seconds(50)).unwrap();
//! assert_eq!(job.state(), JobState::Succeeded);
//! assert!(job.cancel(t0).is_err()); // finished jobs stay finished
//! ```

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::name::Arch;
use crate::target::TargetId;

/// The identifier of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(JobId)
    }
}

/// An agent's self-chosen identifier: 1-128 bytes of `[A-Za-z0-9._:@-]`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AgentId(String);

impl AgentId {
    /// Validates `id`.
    pub fn new(id: impl Into<String>) -> Result<Self, JobError> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= 128
            && id.bytes().all(|c| c.is_ascii_alphanumeric() || b"._:@-".contains(&c));
        if ok {
            Ok(AgentId(id))
        } else {
            Err(JobError::InvalidAgentId(id))
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AgentId {
    type Error = JobError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        AgentId::new(s)
    }
}

impl From<AgentId> for String {
    fn from(a: AgentId) -> String {
        a.0
    }
}

impl FromStr for AgentId {
    type Err = JobError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AgentId::new(s)
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentId({:?})", self.0)
    }
}

/// Why a job was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The target's schedule came due.
    Schedule,
    /// A user asked for it.
    Manual,
    /// A package it depends on was rebuilt.
    Dependency,
    /// An earlier attempt was lost or failed for an infrastructure reason.
    Retry,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for the jobs of the targets it needs to end succeeded or skipped.
    Waiting,
    /// Waiting for an agent.
    Queued,
    /// Leased by an agent that renews the lease with heartbeats.
    Running,
    /// Built and published.
    Succeeded,
    /// Not built: exactly these versions are already in the repository.
    Skipped,
    /// A step failed; see the cause.
    Failed,
    /// The build ran past its timeout and was killed.
    TimedOut,
    /// The lease expired: the agent stopped reporting.
    Lost,
    /// Cancelled by a user.
    Cancelled,
}

impl JobState {
    /// `true` for the states a job never leaves.
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Waiting | JobState::Queued | JobState::Running)
    }

    /// The snake_case name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "waiting",
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Skipped => "skipped",
            JobState::Failed => "failed",
            JobState::TimedOut => "timed_out",
            JobState::Lost => "lost",
            JobState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl JobState {
    /// Every state, in the order of a job's life.
    pub const ALL: [JobState; 9] = [
        JobState::Waiting,
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Skipped,
        JobState::Failed,
        JobState::TimedOut,
        JobState::Lost,
        JobState::Cancelled,
    ];
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown job state '{s}'"))
    }
}

/// The build step that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureStep {
    /// Preparing the builder image.
    Image,
    /// Cloning the repository or downloading the PKGBUILD.
    Fetch,
    /// `makepkg --nobuild` (runs `pkgver()`).
    Pkgver,
    /// `makepkg --printsrcinfo`.
    Srcinfo,
    /// Installing the build's dependencies.
    Dependencies,
    /// `makepkg` itself.
    Makepkg,
    /// Publishing the built packages to the server.
    Upload,
    /// Podman failed to create, start or wait for the container.
    ContainerRuntime,
    /// The agent itself (crashed, vanished, refused the job).
    Agent,
    /// A job this one waited for did not succeed: this one was never built.
    Dependency,
}

impl FailureStep {
    /// `true` for failures of the machinery rather than of the package: worth retrying.
    pub fn is_infrastructure(self) -> bool {
        matches!(
            self,
            FailureStep::Image
                | FailureStep::Fetch
                | FailureStep::Upload
                | FailureStep::ContainerRuntime
                | FailureStep::Agent
        )
    }

    /// The snake_case name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureStep::Image => "image",
            FailureStep::Fetch => "fetch",
            FailureStep::Pkgver => "pkgver",
            FailureStep::Srcinfo => "srcinfo",
            FailureStep::Dependencies => "dependencies",
            FailureStep::Makepkg => "makepkg",
            FailureStep::Upload => "upload",
            FailureStep::ContainerRuntime => "container_runtime",
            FailureStep::Agent => "agent",
            FailureStep::Dependency => "dependency",
        }
    }
}

impl fmt::Display for FailureStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a job failed: the step, its exit code or HTTP status when it has one, and a message.
///
/// ```
/// use libvieter::job::{FailureCause, FailureStep};
/// let c = FailureCause { step: FailureStep::Makepkg, exit_code: Some(4), http_status: None, message: "build() failed".into() };
/// assert_eq!(c.to_string(), "makepkg failed (exit code 4): build() failed");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCause {
    pub step: FailureStep,
    pub exit_code: Option<i32>,
    pub http_status: Option<u16>,
    pub message: String,
}

impl FailureCause {
    /// A cause with only a message.
    pub fn new(step: FailureStep, message: impl Into<String>) -> Self {
        FailureCause { step, exit_code: None, http_status: None, message: message.into() }
    }
}

impl fmt::Display for FailureCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed", self.step)?;
        match (self.exit_code, self.http_status) {
            (Some(code), Some(status)) => write!(f, " (exit code {code}, HTTP status {status})")?,
            (Some(code), None) => write!(f, " (exit code {code})")?,
            (None, Some(status)) => write!(f, " (HTTP status {status})")?,
            (None, None) => {}
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

pub use crate::srcinfo::BuiltPackage;
pub use crate::vcs::Revision;

/// How an agent says a job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Outcome {
    /// Built and published these packages, from this revision (when the agent could read it).
    Succeeded {
        versions: Vec<BuiltPackage>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        revision: Option<Revision>,
    },
    /// These exact versions were already published.
    Skipped {
        versions: Vec<BuiltPackage>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        revision: Option<Revision>,
    },
    /// A step failed.
    Failed { cause: FailureCause },
    /// Killed at the timeout.
    TimedOut,
}

/// An illegal transition or bad input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("job {job} is {state}: cannot {action} it")]
    IllegalTransition { job: JobId, state: JobState, action: &'static str },
    /// The job exists but has ended: nothing can be done to it any more.
    #[error("job {job} is already {state}")]
    Finished { job: JobId, state: JobState },
    /// The action needs a job that has ended (a retry by hand).
    #[error("job {job} is {state}: it has not ended")]
    NotEnded { job: JobId, state: JobState },
    /// The action needs the job running on this agent (a log append); the holder is not named.
    #[error("job {job} is not running on agent {agent}")]
    NotRunningOn { job: JobId, agent: AgentId },
    #[error("job {job} is leased by agent {holder}, not by {agent}")]
    WrongAgent { job: JobId, holder: AgentId, agent: AgentId },
    #[error("job {job} is not due before {not_before}")]
    NotDue { job: JobId, not_before: DateTime<Utc> },
    #[error("the lease of job {job} runs until {expires_at}: it has not expired")]
    LeaseNotExpired { job: JobId, expires_at: DateTime<Utc> },
    #[error("lease duration must be positive")]
    BadLeaseDuration,
    #[error("agent id {0:?} must be 1-128 characters of letters, digits and . _ : @ -")]
    InvalidAgentId(String),
    #[error("no job {0}")]
    NoSuchJob(JobId),
}

/// A build of one target for one architecture, and everything that happened to it.
///
/// The fields are private: a job changes only through its transitions ([`Job::lease`],
/// [`Job::heartbeat`], [`Job::finish`], [`Job::cancel`], [`Job::expire_lease`]), a new attempt is
/// [`Job::retry`], and the one thing set outside a transition is the mark of a cut log
/// ([`Job::mark_log_truncated`]). Read the fields with the accessors of the same names. The serialised
/// form (JSON over HTTP and in stores) has the fields' names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    id: JobId,
    target: TargetId,
    arch: Arch,
    /// Build even if the same versions are already published.
    force: bool,
    trigger: Trigger,
    state: JobState,
    /// 1 for the first attempt, +1 for each retry.
    attempt: u32,
    /// The job this one retries.
    retry_of: Option<JobId>,
    queued_at: DateTime<Utc>,
    /// Not handed out before this instant (the back-off of a retry; `queued_at` otherwise).
    not_before: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    /// While running: the lease ends here unless renewed.
    lease_expires_at: Option<DateTime<Utc>>,
    /// The agent that leased it (kept after it finishes).
    agent: Option<AgentId>,
    /// Why it failed, timed out or was lost.
    cause: Option<FailureCause>,
    /// What it built or found already published.
    versions: Vec<BuiltPackage>,
    /// Its log reached the server's `max_log_size`: the rest was discarded (see [`plan_log_append`]).
    #[serde(default)]
    log_truncated: bool,
    /// Why it was run or skipped when the server decided it (a change check), in words.
    #[serde(default)]
    reason: Option<String>,
    /// While waiting: the jobs that must still end succeeded or skipped before it is queued.
    #[serde(default)]
    waits_on: Vec<JobId>,
    /// What it was built from (the commit, the VCS sources' commits), as its agent reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revision: Option<Revision>,
}

impl Job {
    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// The target it builds.
    pub fn target(&self) -> TargetId {
        self.target
    }

    /// The architecture it builds for.
    pub fn arch(&self) -> &Arch {
        &self.arch
    }

    /// Build even if the same versions are already published.
    pub fn force(&self) -> bool {
        self.force
    }

    /// Why it was queued.
    pub fn trigger(&self) -> Trigger {
        self.trigger
    }

    /// Where it is in its life.
    pub fn state(&self) -> JobState {
        self.state
    }

    /// 1 for the first attempt, +1 for each retry.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The job this one retries.
    pub fn retry_of(&self) -> Option<JobId> {
        self.retry_of
    }

    /// When it was queued.
    pub fn queued_at(&self) -> DateTime<Utc> {
        self.queued_at
    }

    /// Not handed out before this instant (the back-off of a retry; `queued_at` otherwise).
    pub fn not_before(&self) -> DateTime<Utc> {
        self.not_before
    }

    /// When an agent leased it.
    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        self.started_at
    }

    /// When it reached its final state.
    pub fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.finished_at
    }

    /// While running: the lease ends here unless renewed.
    pub fn lease_expires_at(&self) -> Option<DateTime<Utc>> {
        self.lease_expires_at
    }

    /// The agent that leased it (kept after it finishes).
    pub fn agent(&self) -> Option<&AgentId> {
        self.agent.as_ref()
    }

    /// Why it failed, timed out or was lost.
    pub fn cause(&self) -> Option<&FailureCause> {
        self.cause.as_ref()
    }

    /// What it built or found already published.
    pub fn versions(&self) -> &[BuiltPackage] {
        &self.versions
    }

    /// Whether its log reached the server's `max_log_size` and was cut (see [`plan_log_append`]).
    pub fn log_truncated(&self) -> bool {
        self.log_truncated
    }

    /// What it was built from, as its agent reported it (`None` for jobs that built nothing and for
    /// agents that do not report it).
    pub fn revision(&self) -> Option<&Revision> {
        self.revision.as_ref()
    }

    /// A job recorded unchanged by a change check keeps the revision of the build it found unchanged
    /// (the next check compares with it).
    pub(crate) fn carry_revision(&mut self, revision: Option<Revision>) {
        if self.state == JobState::Skipped && self.agent.is_none() {
            self.revision = revision;
        }
    }

    /// Why it was run or skipped, when the server decided it before any agent did (a change check).
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// Records why the server queued this job (the change check's finding). Not a transition.
    pub fn set_reason(&mut self, reason: impl Into<String>) {
        self.reason = Some(reason.into());
    }

    /// While waiting: the jobs that must still end succeeded or skipped before it is queued (kept as
    /// they were when it failed or was cancelled waiting).
    pub fn waits_on(&self) -> &[JobId] {
        &self.waits_on
    }

    /// Records that the job's log was cut at `max_log_size`. A fact about its log, not a transition:
    /// allowed in any state (the append that cut the log may race with the job's end).
    pub fn mark_log_truncated(&mut self) {
        self.log_truncated = true;
    }

    /// A queued job, first attempt.
    pub fn new(
        id: JobId,
        target: TargetId,
        arch: Arch,
        force: bool,
        trigger: Trigger,
        now: DateTime<Utc>,
    ) -> Self {
        Job {
            id,
            target,
            arch,
            force,
            trigger,
            state: JobState::Queued,
            attempt: 1,
            retry_of: None,
            queued_at: now,
            not_before: now,
            started_at: None,
            finished_at: None,
            lease_expires_at: None,
            agent: None,
            cause: None,
            versions: Vec::new(),
            log_truncated: false,
            reason: None,
            waits_on: Vec::new(),
            revision: None,
        }
    }

    /// A job that ended `skipped` without an agent: the server found the target unchanged (`reason`)
    /// with `versions` already published.
    pub fn unchanged(
        id: JobId,
        target: TargetId,
        arch: Arch,
        trigger: Trigger,
        versions: Vec<BuiltPackage>,
        reason: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Self {
        Job {
            state: JobState::Skipped,
            finished_at: Some(now),
            versions,
            reason: Some(reason.into()),
            ..Job::new(id, target, arch, false, trigger, now)
        }
    }

    /// A job waiting for `waits_on` to end succeeded or skipped, first attempt; queued at once when
    /// `waits_on` is empty.
    pub fn waiting(
        id: JobId,
        target: TargetId,
        arch: Arch,
        force: bool,
        trigger: Trigger,
        waits_on: Vec<JobId>,
        now: DateTime<Utc>,
    ) -> Self {
        let mut job = Job::new(id, target, arch, force, trigger, now);
        let mut waits_on = waits_on;
        waits_on.sort_unstable();
        waits_on.dedup();
        if !waits_on.is_empty() {
            job.state = JobState::Waiting;
            job.waits_on = waits_on;
        }
        job
    }

    /// Waiting → queued (handed out from `now` on) once `dep`, which ended succeeded or skipped, was the
    /// last job it waited for; returns whether it is queued now. A job it does not wait for changes
    /// nothing.
    pub fn release(&mut self, dep: JobId, now: DateTime<Utc>) -> Result<bool, JobError> {
        if self.state != JobState::Waiting {
            return Err(self.illegal("release"));
        }
        self.waits_on.retain(|&w| w != dep);
        if self.waits_on.is_empty() {
            self.state = JobState::Queued;
            self.not_before = now;
            return Ok(true);
        }
        Ok(false)
    }

    /// Waiting → failed (step [`FailureStep::Dependency`]) because `dep`, a job it waited for, ended
    /// without success; the message names `dep`, its target and how it ended.
    pub fn fail_dependency(&mut self, dep: &Job, now: DateTime<Utc>) -> Result<(), JobError> {
        if self.state != JobState::Waiting {
            return Err(self.illegal("fail the dependency of"));
        }
        let message = format!("job {} (target {}) {}", dep.id, dep.target, dep.ending());
        self.state = JobState::Failed;
        self.cause = Some(FailureCause::new(FailureStep::Dependency, message));
        self.end(now);
        Ok(())
    }

    /// Waiting for `old` → waiting for `new` instead (the retry of `old`); returns whether it waited
    /// for `old`.
    pub fn repoint(&mut self, old: JobId, new: JobId) -> bool {
        if self.state != JobState::Waiting || !self.waits_on.contains(&old) {
            return false;
        }
        self.waits_on.retain(|&w| w != old && w != new);
        self.waits_on.push(new);
        self.waits_on.sort_unstable();
        true
    }

    /// How the job ended, for the message of a job that waited for it: `failed: makepkg failed (exit
    /// code 4)`, `timed out`, `was lost: ...`, `was cancelled`.
    fn ending(&self) -> String {
        let cause = self.cause.as_ref().map(|c| format!(": {c}")).unwrap_or_default();
        match self.state {
            JobState::Failed => format!("failed{cause}"),
            JobState::TimedOut => "timed out".to_owned(),
            JobState::Lost => format!("was lost{cause}"),
            JobState::Cancelled => "was cancelled".to_owned(),
            other => format!("is {other}"),
        }
    }

    /// The queued retry of this job, handed out from `not_before` on.
    pub fn retry(&self, id: JobId, now: DateTime<Utc>, not_before: DateTime<Utc>) -> Job {
        Job {
            attempt: self.attempt.saturating_add(1),
            retry_of: Some(self.id),
            not_before: not_before.max(now),
            ..Job::new(id, self.target, self.arch.clone(), self.force, Trigger::Retry, now)
        }
    }

    fn illegal(&self, action: &'static str) -> JobError {
        if self.state.is_final() {
            return JobError::Finished { job: self.id, state: self.state };
        }
        JobError::IllegalTransition { job: self.id, state: self.state, action }
    }

    fn check_holder(&self, agent: &AgentId, action: &'static str) -> Result<(), JobError> {
        if self.state != JobState::Running {
            return Err(self.illegal(action));
        }
        match &self.agent {
            Some(holder) if holder == agent => Ok(()),
            Some(holder) => {
                Err(JobError::WrongAgent { job: self.id, holder: holder.clone(), agent: agent.clone() })
            }
            None => Err(self.illegal(action)),
        }
    }

    /// Queued → running, leased to `agent` until `now + lease`.
    pub fn lease(&mut self, agent: &AgentId, now: DateTime<Utc>, lease: Duration) -> Result<(), JobError> {
        if self.state != JobState::Queued {
            return Err(self.illegal("lease"));
        }
        if lease <= Duration::zero() {
            return Err(JobError::BadLeaseDuration);
        }
        if now < self.not_before {
            return Err(JobError::NotDue { job: self.id, not_before: self.not_before });
        }
        self.state = JobState::Running;
        self.agent = Some(agent.clone());
        self.started_at = Some(now);
        self.lease_expires_at = Some(now + lease);
        Ok(())
    }

    /// Renews the lease of a running job until `now + lease` (only its holder may).
    ///
    /// The lease is enforced by [`Job::expire_lease`] alone: a late heartbeat still renews a job that has
    /// not been declared lost yet.
    pub fn heartbeat(
        &mut self,
        agent: &AgentId,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<(), JobError> {
        self.check_holder(agent, "renew the lease of")?;
        if lease <= Duration::zero() {
            return Err(JobError::BadLeaseDuration);
        }
        let renewed = now + lease;
        // Never shorten a lease with a heartbeat that arrives out of order.
        self.lease_expires_at = Some(self.lease_expires_at.map_or(renewed, |e| e.max(renewed)));
        Ok(())
    }

    /// Running → the outcome's final state (only its holder may report).
    pub fn finish(&mut self, agent: &AgentId, outcome: Outcome, now: DateTime<Utc>) -> Result<(), JobError> {
        self.check_holder(agent, "finish")?;
        let (state, cause, versions, revision) = match outcome {
            Outcome::Succeeded { versions, revision } => (JobState::Succeeded, None, versions, revision),
            Outcome::Skipped { versions, revision } => (JobState::Skipped, None, versions, revision),
            Outcome::Failed { cause } => (JobState::Failed, Some(cause), Vec::new(), None),
            Outcome::TimedOut => (JobState::TimedOut, None, Vec::new(), None),
        };
        self.state = state;
        self.cause = cause;
        self.versions = versions;
        self.revision = revision;
        self.end(now);
        Ok(())
    }

    fn end(&mut self, now: DateTime<Utc>) {
        self.finished_at = Some(now);
        self.lease_expires_at = None;
    }

    /// Waiting, queued or running → cancelled.
    pub fn cancel(&mut self, now: DateTime<Utc>) -> Result<(), JobError> {
        if self.state.is_final() {
            return Err(self.illegal("cancel"));
        }
        self.state = JobState::Cancelled;
        self.end(now);
        Ok(())
    }

    /// Running with a lease that ended at or before `now` → lost.
    pub fn expire_lease(&mut self, now: DateTime<Utc>) -> Result<(), JobError> {
        if self.state != JobState::Running {
            return Err(self.illegal("expire the lease of"));
        }
        match self.lease_expires_at {
            Some(expires_at) if expires_at > now => {
                return Err(JobError::LeaseNotExpired { job: self.id, expires_at });
            }
            _ => {}
        }
        let agent = self.agent.as_ref().map_or("?", AgentId::as_str);
        let message = match self.lease_expires_at {
            Some(at) => {
                format!("agent {agent} stopped renewing its lease, which ended at {}", at.to_rfc3339())
            }
            None => format!("agent {agent} holds no lease"),
        };
        self.state = JobState::Lost;
        self.cause = Some(FailureCause::new(FailureStep::Agent, message));
        self.end(now);
        Ok(())
    }
}

/// What to do with one append to a job's build log, given the log's size and the server's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogAppend {
    /// How many bytes of the appended chunk to write (its first ones).
    pub keep: usize,
    /// Whether to write the [`log_truncation_marker`] after them: this append crossed the limit.
    pub truncate: bool,
}

/// The line that ends a log cut at `max` bytes.
///
/// ```
/// assert_eq!(libvieter::job::log_truncation_marker(10), "\n[vieter: log truncated at 10 bytes (max_log_size)]\n");
/// ```
pub fn log_truncation_marker(max: u64) -> String {
    format!("\n[vieter: log truncated at {max} bytes (max_log_size)]\n")
}

/// Plans an append of `incoming` bytes to a log of `current` bytes that may hold at most `max` bytes of
/// output. What fits is kept; the append that crosses the limit also writes the marker (which is the
/// only thing ever written past `max`, so a log never exceeds `max` plus the marker); once the log is
/// past `max` (the marker is there), every further append is discarded.
///
/// ```
/// use libvieter::job::{plan_log_append, LogAppend};
/// assert_eq!(plan_log_append(0, 6, 10), LogAppend { keep: 6, truncate: false });
/// assert_eq!(plan_log_append(6, 6, 10), LogAppend { keep: 4, truncate: true });
/// assert_eq!(plan_log_append(60, 6, 10), LogAppend { keep: 0, truncate: false });
/// ```
pub fn plan_log_append(current: u64, incoming: usize, max: u64) -> LogAppend {
    if incoming == 0 || current > max {
        return LogAppend { keep: 0, truncate: false };
    }
    let room = max - current;
    match u64::try_from(incoming) {
        Ok(n) if n <= room => LogAppend { keep: incoming, truncate: false },
        // `room < incoming`, a usize: it fits one.
        _ => LogAppend { keep: usize::try_from(room).unwrap_or(incoming), truncate: true },
    }
}

/// When and how often to retry lost jobs and infrastructure failures.
///
/// The delay before attempt `n + 1` is `backoff_base_secs * backoff_factor^(n - 1)`, at most
/// `backoff_max_secs`, counted from the moment attempt `n` ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = never retry).
    pub max_attempts: u32,
    pub backoff_base_secs: u64,
    pub backoff_factor: u32,
    pub backoff_max_secs: u64,
}

impl Default for RetryPolicy {
    /// 3 attempts, 30 s then 60 s apart, never more than an hour.
    fn default() -> Self {
        RetryPolicy { max_attempts: 3, backoff_base_secs: 30, backoff_factor: 2, backoff_max_secs: 3600 }
    }
}

impl RetryPolicy {
    /// The delay after attempt `attempt` (1-based) ended.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = u64::from(self.backoff_factor).saturating_pow(attempt.saturating_sub(1));
        let secs = self.backoff_base_secs.saturating_mul(factor).min(self.backoff_max_secs);
        Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX).min(i64::MAX / 1000))
    }

    /// When to retry `job`, or `None`: only lost jobs and infrastructure failures (image, fetch, upload,
    /// container runtime, agent) are retried, never a failure of the package itself (pkgver, srcinfo,
    /// dependencies, makepkg), a timeout or a cancellation, and never past `max_attempts`.
    pub fn should_retry(&self, job: &Job) -> Option<DateTime<Utc>> {
        let retryable = match job.state {
            JobState::Lost => true,
            JobState::Failed => job.cause.as_ref().is_some_and(|c| c.step.is_infrastructure()),
            _ => false,
        };
        if !retryable || job.attempt >= self.max_attempts {
            return None;
        }
        let ended = job.finished_at?;
        ended.checked_add_signed(self.backoff(job.attempt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::PkgName;
    use crate::version::Version;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(secs)
    }

    fn job() -> Job {
        Job::new(JobId(1), TargetId(2), Arch::new("x86_64").unwrap(), false, Trigger::Manual, t(0))
    }

    fn agent(name: &str) -> AgentId {
        AgentId::new(name).unwrap()
    }

    const LEASE: Duration = Duration::seconds(60);

    #[test]
    fn happy_path_records_everything() {
        let mut j = job();
        let a = agent("a1");
        j.lease(&a, t(5), LEASE).unwrap();
        assert_eq!(
            (j.state(), j.started_at(), j.lease_expires_at()),
            (JobState::Running, Some(t(5)), Some(t(65)))
        );
        j.heartbeat(&a, t(50), LEASE).unwrap();
        assert_eq!(j.lease_expires_at(), Some(t(110)));
        // An old heartbeat arriving late never shortens the lease.
        j.heartbeat(&a, t(10), LEASE).unwrap();
        assert_eq!(j.lease_expires_at(), Some(t(110)));
        let pkg = BuiltPackage {
            name: PkgName::new("foo").unwrap(),
            version: Version::parse("1:2.0-1").unwrap(),
            arch: Arch::new("x86_64").unwrap(),
        };
        j.finish(&a, Outcome::Succeeded { versions: vec![pkg.clone()], revision: None }, t(100)).unwrap();
        assert_eq!(
            (j.state(), j.finished_at(), j.lease_expires_at()),
            (JobState::Succeeded, Some(t(100)), None)
        );
        assert_eq!(j.versions(), [pkg]);
        assert_eq!(j.agent(), Some(&a));
    }

    #[test]
    fn illegal_transitions_are_refused() {
        let a = agent("a1");
        let mut j = job();
        assert!(matches!(j.heartbeat(&a, t(1), LEASE), Err(JobError::IllegalTransition { .. })));
        assert!(matches!(j.finish(&a, Outcome::TimedOut, t(1)), Err(JobError::IllegalTransition { .. })));
        assert!(matches!(j.expire_lease(t(1)), Err(JobError::IllegalTransition { .. })));
        assert_eq!(j.lease(&a, t(1), Duration::zero()), Err(JobError::BadLeaseDuration));
        j.lease(&a, t(1), LEASE).unwrap();
        assert!(matches!(j.lease(&agent("a2"), t(2), LEASE), Err(JobError::IllegalTransition { .. })));
        let err = j.heartbeat(&agent("a2"), t(2), LEASE).unwrap_err();
        assert_eq!(err.to_string(), "job 1 is leased by agent a1, not by a2");
        assert!(matches!(j.finish(&agent("a2"), Outcome::TimedOut, t(2)), Err(JobError::WrongAgent { .. })));
        assert_eq!(
            j.expire_lease(t(60)),
            Err(JobError::LeaseNotExpired { job: JobId(1), expires_at: t(61) })
        );
        j.finish(&a, Outcome::TimedOut, t(30)).unwrap();
        assert_eq!(j.state(), JobState::TimedOut);
        let err = j.cancel(t(31)).unwrap_err();
        assert_eq!(err.to_string(), "job 1 is already timed_out");
        assert_eq!(
            j.finish(&a, Outcome::TimedOut, t(32)),
            Err(JobError::Finished { job: JobId(1), state: JobState::TimedOut })
        );
        assert_eq!(
            j.heartbeat(&a, t(32), LEASE).map_err(|e| e.to_string()),
            Err("job 1 is already timed_out".to_owned())
        );
    }

    #[test]
    fn not_due_before_back_off() {
        let mut lost = job();
        lost.lease(&agent("a"), t(0), LEASE).unwrap();
        lost.expire_lease(t(60)).unwrap();
        let mut retry = lost.retry(JobId(2), t(60), t(90));
        assert_eq!((retry.attempt(), retry.retry_of(), retry.trigger()), (2, Some(JobId(1)), Trigger::Retry));
        assert_eq!(
            retry.lease(&agent("b"), t(89), LEASE),
            Err(JobError::NotDue { job: JobId(2), not_before: t(90) })
        );
        retry.lease(&agent("b"), t(90), LEASE).unwrap();
    }

    #[test]
    fn expiry_and_cancel() {
        let mut j = job();
        j.lease(&agent("a"), t(0), LEASE).unwrap();
        j.expire_lease(t(60)).unwrap();
        assert_eq!(j.state(), JobState::Lost);
        let cause = j.cause().cloned().unwrap();
        assert_eq!(cause.step, FailureStep::Agent);
        assert!(cause.to_string().starts_with("agent failed: agent a stopped renewing its lease"), "{cause}");
        // A lost job's agent cannot finish it any more.
        assert!(j.finish(&agent("a"), Outcome::TimedOut, t(61)).is_err());
        let mut q = job();
        q.cancel(t(3)).unwrap();
        assert_eq!((q.state(), q.finished_at()), (JobState::Cancelled, Some(t(3))));
        let mut r = job();
        r.lease(&agent("a"), t(0), LEASE).unwrap();
        r.cancel(t(4)).unwrap();
        assert_eq!((r.state(), r.lease_expires_at()), (JobState::Cancelled, None));
    }

    /// Attempt `attempt` of a job, failed at `step` at t(100): every earlier attempt failed the same way
    /// and was retried.
    fn failed(step: FailureStep, attempt: u32) -> Job {
        let a = agent("a");
        let fail = |j: &mut Job| {
            j.lease(&a, j.not_before(), LEASE).unwrap();
            j.finish(&a, Outcome::Failed { cause: FailureCause::new(step, "x") }, t(100)).unwrap();
        };
        let mut j = job();
        fail(&mut j);
        for n in 1..attempt {
            j = j.retry(JobId(u64::from(n) + 1), t(100), t(100));
            fail(&mut j);
        }
        assert_eq!(j.attempt(), attempt.max(1));
        j
    }

    #[test]
    fn retry_policy() {
        let p =
            RetryPolicy { max_attempts: 4, backoff_base_secs: 10, backoff_factor: 3, backoff_max_secs: 60 };
        for step in [
            FailureStep::Image,
            FailureStep::Fetch,
            FailureStep::Upload,
            FailureStep::ContainerRuntime,
            FailureStep::Agent,
        ] {
            assert_eq!(p.should_retry(&failed(step, 1)), Some(t(110)), "{step}");
            assert_eq!(p.should_retry(&failed(step, 2)), Some(t(130)), "{step}");
            assert_eq!(p.should_retry(&failed(step, 3)), Some(t(160)), "{step} capped");
            assert_eq!(p.should_retry(&failed(step, 4)), None, "{step} attempts used up");
        }
        for step in
            [FailureStep::Makepkg, FailureStep::Pkgver, FailureStep::Srcinfo, FailureStep::Dependencies]
        {
            assert_eq!(p.should_retry(&failed(step, 1)), None, "{step}");
        }
        let mut timed_out = job();
        timed_out.lease(&agent("a"), t(0), LEASE).unwrap();
        timed_out.finish(&agent("a"), Outcome::TimedOut, t(5)).unwrap();
        assert_eq!(p.should_retry(&timed_out), None);
        assert_eq!(
            RetryPolicy { max_attempts: 1, ..p.clone() }.should_retry(&failed(FailureStep::Agent, 1)),
            None
        );
        // Absurd settings saturate instead of overflowing.
        let huge = RetryPolicy {
            max_attempts: 100,
            backoff_base_secs: u64::MAX,
            backoff_factor: u32::MAX,
            backoff_max_secs: u64::MAX,
        };
        assert!(huge.backoff(99) > Duration::days(365));
    }

    #[test]
    fn log_appends_stop_at_the_limit_with_one_marker() {
        // Exactly filling the log keeps everything; the next byte writes the marker only.
        assert_eq!(plan_log_append(0, 10, 10), LogAppend { keep: 10, truncate: false });
        assert_eq!(plan_log_append(10, 1, 10), LogAppend { keep: 0, truncate: true });
        // Crossing keeps what fits.
        assert_eq!(plan_log_append(3, 100, 10), LogAppend { keep: 7, truncate: true });
        // Past the limit (the marker is written): discarded, and never a second marker.
        let marker = log_truncation_marker(10).len() as u64;
        assert_eq!(plan_log_append(10 + marker, 5, 10), LogAppend { keep: 0, truncate: false });
        // Empty appends change nothing, even at the limit.
        assert_eq!(plan_log_append(10, 0, 10), LogAppend { keep: 0, truncate: false });
        // A zero limit keeps only the marker.
        assert_eq!(plan_log_append(0, 5, 0), LogAppend { keep: 0, truncate: true });
        assert_eq!(plan_log_append(u64::MAX, usize::MAX, u64::MAX), LogAppend { keep: 0, truncate: true });
        // Simulated: many appends never leave more than max + marker on disk.
        for max in [0u64, 1, 7, 64, 1000] {
            let mut size = 0u64;
            let mut markers = 0;
            for chunk in [0usize, 3, 50, 1, 999, 2, 4096] {
                let plan = plan_log_append(size, chunk, max);
                assert!(plan.keep <= chunk);
                size += plan.keep as u64;
                if plan.truncate {
                    markers += 1;
                    size += log_truncation_marker(max).len() as u64;
                }
                assert!(size <= max + log_truncation_marker(max).len() as u64, "max {max}: {size}");
            }
            assert_eq!(markers, 1, "max {max}");
        }
        assert!(log_truncation_marker(64).contains("max_log_size"));
    }

    #[test]
    fn serde_shapes() {
        let o: Outcome = serde_json::from_str(
            r#"{"state":"failed","cause":{"step":"makepkg","exit_code":4,"http_status":null,"message":"m"}}"#,
        )
        .unwrap();
        assert_eq!(
            o,
            Outcome::Failed {
                cause: FailureCause { exit_code: Some(4), ..FailureCause::new(FailureStep::Makepkg, "m") }
            }
        );
        assert_eq!(serde_json::to_string(&JobState::TimedOut).unwrap(), "\"timed_out\"");
        assert_eq!("timed_out".parse::<JobState>(), Ok(JobState::TimedOut));
        let j = failed(FailureStep::Upload, 1);
        assert_eq!(serde_json::from_str::<Job>(&serde_json::to_string(&j).unwrap()).unwrap(), j);
        // Records written before `log_truncated` existed still read.
        let mut old = serde_json::to_value(&j).unwrap();
        old.as_object_mut().unwrap().remove("log_truncated");
        assert_eq!(serde_json::from_value::<Job>(old).unwrap(), j);
        assert!(serde_json::from_str::<AgentId>("\"a b\"").is_err());
        // The record's field names are the API's (and the stores').
        let value = serde_json::to_value(&j).unwrap();
        let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = [
            "id",
            "target",
            "arch",
            "force",
            "trigger",
            "state",
            "attempt",
            "retry_of",
            "queued_at",
            "not_before",
            "started_at",
            "finished_at",
            "lease_expires_at",
            "agent",
            "cause",
            "versions",
            "log_truncated",
            "reason",
            "waits_on",
        ];
        expected.sort_unstable();
        assert_eq!(keys, expected, "serde_json sorts object keys");
        let c =
            FailureCause { http_status: Some(502), ..FailureCause::new(FailureStep::Upload, "bad gateway") };
        assert_eq!(c.to_string(), "upload failed (HTTP status 502): bad gateway");
    }

    #[test]
    fn waiting_jobs_are_released_failed_or_repointed() {
        let x86 = Arch::new("x86_64").unwrap();
        let mut w = Job::waiting(
            JobId(5),
            TargetId(9),
            x86.clone(),
            false,
            Trigger::Manual,
            vec![JobId(3), JobId(2)],
            t(0),
        );
        assert_eq!((w.state(), w.waits_on()), (JobState::Waiting, &[JobId(2), JobId(3)][..]));
        assert!(!w.state().is_final());
        assert!(matches!(w.lease(&agent("a"), t(1), LEASE), Err(JobError::IllegalTransition { .. })));
        assert_eq!(w.release(JobId(7), t(1)), Ok(false), "a job it does not wait for");
        assert_eq!(w.release(JobId(2), t(2)), Ok(false));
        assert!(w.repoint(JobId(3), JobId(4)));
        assert!(!w.repoint(JobId(3), JobId(4)), "no longer waits for 3");
        assert_eq!(w.waits_on(), [JobId(4)]);
        assert_eq!(w.release(JobId(4), t(30)), Ok(true));
        assert_eq!((w.state(), w.not_before(), w.waits_on()), (JobState::Queued, t(30), &[][..]));
        assert!(w.release(JobId(4), t(31)).is_err(), "queued: nothing to release");
        w.lease(&agent("a"), t(30), LEASE).unwrap();
        // Nothing to wait for: queued at once.
        let q = Job::waiting(JobId(6), TargetId(9), x86.clone(), false, Trigger::Manual, vec![], t(0));
        assert_eq!(q.state(), JobState::Queued);
        // A failed dependency fails it, naming the job, its target and how it ended.
        let a = agent("a");
        let mut dep = job();
        dep.lease(&a, t(0), LEASE).unwrap();
        let cause = FailureCause { exit_code: Some(4), ..FailureCause::new(FailureStep::Makepkg, "") };
        dep.finish(&a, Outcome::Failed { cause }, t(5)).unwrap();
        let mut w = Job::waiting(JobId(12), TargetId(3), x86, false, Trigger::Manual, vec![dep.id()], t(0));
        w.fail_dependency(&dep, t(6)).unwrap();
        let cause = w.cause().unwrap();
        assert_eq!(
            (w.state(), cause.step, w.finished_at()),
            (JobState::Failed, FailureStep::Dependency, Some(t(6)))
        );
        assert_eq!(cause.message, "job 1 (target 2) failed: makepkg failed (exit code 4)");
        assert!(!cause.step.is_infrastructure());
        assert_eq!(RetryPolicy::default().should_retry(&w), None, "never retried");
        assert!(w.fail_dependency(&dep, t(7)).is_err());
        assert_eq!("waiting".parse::<JobState>(), Ok(JobState::Waiting));
        assert_eq!(serde_json::to_string(&FailureStep::Dependency).unwrap(), "\"dependency\"");
    }

    #[test]
    fn a_deserialised_job_keeps_its_state_and_its_rules() {
        let a = agent("a1");
        let mut running = job();
        running.lease(&a, t(5), LEASE).unwrap();
        let json = serde_json::to_string(&running).unwrap();
        let mut read: Job = serde_json::from_str(&json).unwrap();
        assert_eq!(read, running);
        assert_eq!(
            (read.state(), read.agent(), read.started_at(), read.lease_expires_at()),
            (JobState::Running, Some(&a), Some(t(5)), Some(t(65)))
        );
        assert!(matches!(read.lease(&agent("a2"), t(6), LEASE), Err(JobError::IllegalTransition { .. })));
        assert!(matches!(
            read.finish(&agent("a2"), Outcome::TimedOut, t(6)),
            Err(JobError::WrongAgent { .. })
        ));
        read.finish(&a, Outcome::TimedOut, t(7)).unwrap();
        assert_eq!(
            (read.state(), read.finished_at(), read.lease_expires_at()),
            (JobState::TimedOut, Some(t(7)), None)
        );

        // A queued record cannot be finished, and a finished one stays finished.
        let mut queued: Job = serde_json::from_str(&serde_json::to_string(&job()).unwrap()).unwrap();
        assert_eq!(queued.state(), JobState::Queued);
        assert_eq!(
            queued.finish(&a, Outcome::TimedOut, t(1)),
            Err(JobError::IllegalTransition { job: JobId(1), state: JobState::Queued, action: "finish" })
        );
        let mut done: Job = serde_json::from_str(&serde_json::to_string(&read).unwrap()).unwrap();
        assert_eq!(done.cancel(t(8)), Err(JobError::Finished { job: JobId(1), state: JobState::TimedOut }));

        // The one thing the service sets outside a transition.
        done.mark_log_truncated();
        assert!(done.log_truncated());
        assert_eq!(done.state(), JobState::TimedOut, "marking the log changes no state");
    }
}
