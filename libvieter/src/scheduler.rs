//! Deciding what to build when, and handing jobs to agents: pure, in memory, time passed in.
//!
//! - [`due_runs`] looks at the targets, the last scheduled run of each (target, arch) and `now`, and
//!   returns the runs that are due plus the instant the caller should look again. A run missed while the
//!   server was down runs **once** when it is back, not once per missed occurrence.
//! - [`JobQueue`] holds the active (waiting, queued and running) jobs: it refuses a second queued job for
//!   the same (target, arch) unless forced, leases each job to exactly one agent, renews leases, turns
//!   expired leases into [`JobState::Lost`] and queues retries per a [`RetryPolicy`]. A waiting job is
//!   never leased: it is queued when the jobs it waits for end succeeded or skipped, fails (step
//!   `dependency`) when one of them ends otherwise, is cancelled with them and waits for their retries.
//!   Jobs that reach a final state leave the queue and are handed back to the caller, which keeps their
//!   record. It serialises (serde) to its list of active jobs, so a server can persist
//!   it and rebuild it after a restart.
//! - The rules about agents, which are semi-trusted (anyone holding an agent key may call the protocol):
//!   [`lease_capacity`] (how many jobs one poll may lease), [`check_agent_key`] (an agent id belongs to
//!   the key it first used) and [`agent_expired`] (when an idle agent's record is forgotten).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::job::{AgentId, Job, JobError, JobId, JobState, Outcome, RetryPolicy, Trigger};
use crate::name::Arch;
use crate::schedule::Schedule;
use crate::target::{Target, TargetId};

/// A scheduled build that is due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueRun {
    pub target: TargetId,
    pub arch: Arch,
    /// The (earliest missed) occurrence that made it due; `now` for a pair that never ran.
    pub scheduled_for: DateTime<Utc>,
}

/// The result of one scheduler tick.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tick {
    /// The runs due now, one per (target, arch) at most, in the order of the targets and their arches.
    pub due: Vec<DueRun>,
    /// The earliest instant after `now` at which another run comes due (given that the caller records
    /// `now` as the last run of every due pair); `None` if nothing is scheduled.
    pub next_wakeup: Option<DateTime<Utc>>,
}

/// Computes the scheduled runs due at `now`.
///
/// For every enabled target and each of its arches, `last_run(target, arch)` is the last time a
/// scheduled run was recorded for that pair; the pair is due when its schedule (the target's own, else
/// `default`) has an occurrence after that and at or before `now`. A pair that never ran is due at once.
/// The caller records `now` as the last run of every due pair: however many occurrences were missed, the
/// pair runs once. (To let a new target wait for its schedule instead, record its creation time.)
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use libvieter::name::Arch;
/// use libvieter::scheduler::due_runs;
/// use libvieter::target::{NewTarget, TargetId};
///
/// let x86 = Arch::new("x86_64").unwrap();
/// let target = NewTarget { kind: "git".into(), url: "https://h/x".into(), repo: "r".into(), ..Default::default() }
///     .validate(TargetId(1), &x86)
///     .unwrap();
/// let daily = "0 3".parse().unwrap();
/// let last = Utc.with_ymd_and_hms(2025, 1, 1, 3, 0, 0).unwrap();
/// // The server was down for three days: one run, not three.
/// let now = Utc.with_ymd_and_hms(2025, 1, 4, 12, 0, 0).unwrap();
/// let tick = due_runs([&target], |_, _| Some(last), &daily, chrono_tz::UTC, now);
/// assert_eq!(tick.due.len(), 1);
/// assert_eq!(tick.due[0].scheduled_for, Utc.with_ymd_and_hms(2025, 1, 2, 3, 0, 0).unwrap());
/// assert_eq!(tick.next_wakeup, Some(Utc.with_ymd_and_hms(2025, 1, 5, 3, 0, 0).unwrap()));
/// ```
pub fn due_runs<'a>(
    targets: impl IntoIterator<Item = &'a Target>,
    last_run: impl Fn(TargetId, &Arch) -> Option<DateTime<Utc>>,
    default: &Schedule,
    tz: Tz,
    now: DateTime<Utc>,
) -> Tick {
    let mut tick = Tick::default();
    // Many targets share a schedule (the default above all): compute "next after now" once per schedule.
    let mut after_now: HashMap<&Schedule, Option<DateTime<Utc>>> = HashMap::new();
    let wake = |tick: &mut Tick, at: Option<DateTime<Utc>>| {
        if let Some(at) = at {
            tick.next_wakeup = Some(tick.next_wakeup.map_or(at, |w| w.min(at)));
        }
    };
    for target in targets {
        if !target.enabled {
            continue;
        }
        let schedule = target.effective_schedule(default);
        for arch in &target.arch {
            let next = match last_run(target.id, arch) {
                None => Some(now),
                Some(last) => schedule.next_after(last, tz),
            };
            match next {
                Some(at) if at <= now => {
                    tick.due.push(DueRun { target: target.id, arch: arch.clone(), scheduled_for: at });
                    let following =
                        *after_now.entry(schedule).or_insert_with(|| schedule.next_after(now, tz));
                    wake(&mut tick, following);
                }
                later => wake(&mut tick, later),
            }
        }
    }
    tick
}

/// The SHA-256 digest of an API key: what an agent id is bound to (the key itself is never stored).
pub type KeyDigest = [u8; 32];

/// How many jobs a poll may lease: what the agent asks for, but never more than `max` jobs held by the
/// agent at once (`held` are already leased to it). A single poll asking for a million jobs, or an agent
/// polling in a loop without finishing anything, gets at most `max`.
///
/// ```
/// use libvieter::scheduler::lease_capacity;
/// assert_eq!(lease_capacity(1_000_000, 0, 64), 64);
/// assert_eq!(lease_capacity(4, 62, 64), 2);
/// ```
pub fn lease_capacity(requested: u32, held: usize, max: u32) -> usize {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let requested = usize::try_from(requested).unwrap_or(usize::MAX);
    requested.min(max.saturating_sub(held))
}

/// What to do with a request that names an agent id, given the key the id is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheck {
    /// No key is bound to the id yet (a new agent, or a record from before keys were bound): the
    /// presented key may be bound to it.
    Unbound,
    /// The presented key is the one bound to the id.
    Matches,
    /// The id is bound to a key the server no longer accepts (it was rotated out): the presented key may
    /// take the id over, so that changing keys does not lock agents out until their record expires.
    Stale,
    /// Another key the server accepts is bound to the id: the request must be refused.
    Refused,
}

impl KeyCheck {
    /// Whether the request may go on.
    pub fn allowed(self) -> bool {
        self != KeyCheck::Refused
    }
}

/// Decides whether a key may speak for an agent id bound to `bound`. `bound_accepted` tells whether the
/// server still accepts the bound key. Digests are compared in constant time.
///
/// ```
/// use libvieter::scheduler::{check_agent_key, KeyCheck};
/// let (a, b) = ([1u8; 32], [2u8; 32]);
/// assert_eq!(check_agent_key(None, &a, false), KeyCheck::Unbound);
/// assert_eq!(check_agent_key(Some(&a), &a, true), KeyCheck::Matches);
/// assert_eq!(check_agent_key(Some(&a), &b, true), KeyCheck::Refused);
/// assert_eq!(check_agent_key(Some(&a), &b, false), KeyCheck::Stale);
/// ```
pub fn check_agent_key(bound: Option<&KeyDigest>, presented: &KeyDigest, bound_accepted: bool) -> KeyCheck {
    let Some(bound) = bound else { return KeyCheck::Unbound };
    let diff = bound.iter().zip(presented).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    if diff == 0 {
        KeyCheck::Matches
    } else if bound_accepted {
        KeyCheck::Refused
    } else {
        KeyCheck::Stale
    }
}

/// Whether an agent last seen at `last_seen` is forgotten at `now`: it holds no job and has not been
/// seen for `expiry` (`None`: agents are never forgotten). An agent holding a job is always kept, so
/// its key binding protects the job until the job ends.
///
/// ```
/// use chrono::{Duration, TimeZone, Utc};
/// use libvieter::scheduler::agent_expired;
/// let seen = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
/// let week = Some(Duration::days(7));
/// assert!(!agent_expired(seen, seen + Duration::days(6), week, false));
/// assert!(agent_expired(seen, seen + Duration::days(7), week, false));
/// assert!(!agent_expired(seen, seen + Duration::days(70), week, true));
/// ```
pub fn agent_expired(
    last_seen: DateTime<Utc>,
    now: DateTime<Utc>,
    expiry: Option<Duration>,
    holds_jobs: bool,
) -> bool {
    match expiry {
        Some(expiry) if !holds_jobs => agent_expires_at(last_seen, expiry) <= now,
        _ => false,
    }
}

/// When an idle agent last seen at `last_seen` expires (saturating far in the future).
pub fn agent_expires_at(last_seen: DateTime<Utc>, expiry: Duration) -> DateTime<Utc> {
    last_seen.checked_add_signed(expiry).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// What [`JobQueue::enqueue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", content = "job", rename_all = "snake_case")]
pub enum Enqueued {
    /// A new job was queued.
    New(JobId),
    /// A job for the same (target, arch) was already waiting; nothing was added.
    AlreadyQueued(JobId),
}

impl Enqueued {
    /// The job that will do the build.
    pub fn job(self) -> JobId {
        match self {
            Enqueued::New(id) | Enqueued::AlreadyQueued(id) => id,
        }
    }
}

/// A job that left the queue in a final state, the retry queued for it, if any, and the waiting jobs
/// its end changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    pub job: Job,
    pub retry: Option<Job>,
    /// The jobs that waited for it (transitively), as they are now: released (queued or still waiting
    /// for others), waiting for the retry instead, failed (step `dependency`) or cancelled.
    #[serde(default)]
    pub dependents: Vec<Job>,
}

impl Ended {
    /// Every record this end changed: the job, its retry, its dependents.
    pub fn records(&self) -> impl Iterator<Item = &Job> {
        std::iter::once(&self.job).chain(&self.retry).chain(&self.dependents)
    }

    /// Whether a job was queued by it (a retry, or a dependent released).
    pub fn queued_any(&self) -> bool {
        self.retry.is_some() || self.dependents.iter().any(|j| j.state() == JobState::Queued)
    }
}

/// The active jobs: queued ones waiting per architecture, running ones under lease.
///
/// Invariants: every job in it is `Waiting`, `Queued` or `Running`; each queued job sits in exactly one
/// architecture's waiting line and no waiting job in any; [`JobQueue::lease`] removes what it hands out
/// from that line, so no job is ever handed out twice.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "QueueData", into = "QueueData")]
pub struct JobQueue {
    retry: RetryPolicy,
    lease: Duration,
    next_id: u64,
    jobs: BTreeMap<JobId, Job>,
    /// Queued jobs per arch, ordered by (not before, id): first come, first served.
    waiting: BTreeMap<Arch, BTreeSet<(DateTime<Utc>, JobId)>>,
    /// Queued and waiting jobs per (target, arch).
    queued_for: HashMap<(TargetId, Arch), BTreeSet<JobId>>,
    /// Running jobs by lease expiry.
    leases: BTreeSet<(DateTime<Utc>, JobId)>,
    /// Waiting jobs by each job they wait for.
    dependents: HashMap<JobId, BTreeSet<JobId>>,
}

/// What a [`JobQueue`] stores: the rest is rebuilt.
#[derive(Serialize, Deserialize)]
struct QueueData {
    retry: RetryPolicy,
    lease_secs: i64,
    next_id: u64,
    jobs: Vec<Job>,
}

impl From<QueueData> for JobQueue {
    fn from(data: QueueData) -> Self {
        let lease = Duration::try_seconds(data.lease_secs.max(1)).unwrap_or(Duration::seconds(60));
        let mut queue = JobQueue::new(data.retry, lease);
        queue.next_id = data.next_id;
        for job in data.jobs {
            // Final jobs do not belong here; a stored queue never holds them.
            let _ = queue.insert(job);
        }
        queue
    }
}

impl From<JobQueue> for QueueData {
    fn from(q: JobQueue) -> Self {
        QueueData {
            retry: q.retry,
            lease_secs: q.lease.num_seconds(),
            next_id: q.next_id,
            jobs: q.jobs.into_values().collect(),
        }
    }
}

impl JobQueue {
    /// An empty queue; leases last `lease` unless renewed; job ids start at 1.
    pub fn new(retry: RetryPolicy, lease: Duration) -> Self {
        JobQueue {
            retry,
            lease: lease.max(Duration::seconds(1)),
            next_id: 1,
            jobs: BTreeMap::new(),
            waiting: BTreeMap::new(),
            queued_for: HashMap::new(),
            leases: BTreeSet::new(),
            dependents: HashMap::new(),
        }
    }

    /// Ids handed out from now on are at least `next` (a server restoring its store sets this past the
    /// highest id it ever used).
    pub fn set_next_id(&mut self, next: JobId) {
        self.next_id = self.next_id.max(next.0);
    }

    /// The lease duration.
    pub fn lease_duration(&self) -> Duration {
        self.lease
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    fn alloc_id(&mut self) -> JobId {
        let id = JobId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Queues a build of `target` for `arch`. Without `force`, an already queued (or waiting) job for
    /// the same pair is returned instead of a new one (a forced request always queues).
    pub fn enqueue(
        &mut self,
        target: TargetId,
        arch: &Arch,
        force: bool,
        trigger: Trigger,
        now: DateTime<Utc>,
    ) -> Enqueued {
        self.enqueue_after(target, arch, force, trigger, &[], now)
    }

    /// [`JobQueue::enqueue`], the new job waiting for the active jobs among `after` (queued at once when
    /// none is active).
    pub fn enqueue_after(
        &mut self,
        target: TargetId,
        arch: &Arch,
        force: bool,
        trigger: Trigger,
        after: &[JobId],
        now: DateTime<Utc>,
    ) -> Enqueued {
        if !force {
            if let Some(&id) = self.queued_for.get(&(target, arch.clone())).and_then(|ids| ids.first()) {
                return Enqueued::AlreadyQueued(id);
            }
        }
        let waits: Vec<JobId> = after.iter().copied().filter(|id| self.jobs.contains_key(id)).collect();
        let id = self.alloc_id();
        self.index(Job::waiting(id, target, arch.clone(), force, trigger, waits, now));
        Enqueued::New(id)
    }

    /// A new job id, for a job that ends before it is queued (a run the change check skipped).
    pub fn next_job_id(&mut self) -> JobId {
        self.alloc_id()
    }

    /// Records why a queued or running job was queued ([`Job::set_reason`]).
    pub fn set_reason(&mut self, id: JobId, reason: &str) -> Option<&Job> {
        let job = self.jobs.get_mut(&id)?;
        job.set_reason(reason);
        Some(job)
    }

    /// The newest active (waiting, queued or running) job of `target` for `arch`.
    pub fn active_job(&self, target: TargetId, arch: &Arch) -> Option<JobId> {
        self.jobs.values().rev().find(|j| j.target() == target && j.arch() == arch).map(Job::id)
    }

    /// Adds an existing waiting, queued or running job (restoring a persisted queue). Refuses final jobs and
    /// ids already present.
    pub fn insert(&mut self, job: Job) -> Result<(), JobError> {
        if job.state().is_final() {
            return Err(JobError::IllegalTransition { job: job.id(), state: job.state(), action: "queue" });
        }
        if self.jobs.contains_key(&job.id()) {
            return Err(JobError::IllegalTransition {
                job: job.id(),
                state: job.state(),
                action: "queue again",
            });
        }
        self.next_id = self.next_id.max(job.id().0.saturating_add(1));
        self.index(job);
        Ok(())
    }

    fn index(&mut self, job: Job) {
        match job.state() {
            JobState::Waiting => {
                self.queued_for.entry((job.target(), job.arch().clone())).or_default().insert(job.id());
                for &dep in job.waits_on() {
                    self.dependents.entry(dep).or_default().insert(job.id());
                }
            }
            JobState::Queued => {
                self.waiting.entry(job.arch().clone()).or_default().insert((job.not_before(), job.id()));
                self.queued_for.entry((job.target(), job.arch().clone())).or_default().insert(job.id());
            }
            JobState::Running => {
                // A running job without a lease expires at once.
                let expiry = job.lease_expires_at().unwrap_or(DateTime::<Utc>::MIN_UTC);
                self.leases.insert((expiry, job.id()));
            }
            _ => {}
        }
        self.jobs.insert(job.id(), job);
    }

    /// Removes a job from every index and the map.
    fn unindex(&mut self, id: JobId) -> Option<Job> {
        let job = self.jobs.remove(&id)?;
        if let Some(line) = self.waiting.get_mut(job.arch()) {
            line.remove(&(job.not_before(), id));
        }
        let key = (job.target(), job.arch().clone());
        if let Some(ids) = self.queued_for.get_mut(&key) {
            ids.remove(&id);
            if ids.is_empty() {
                self.queued_for.remove(&key);
            }
        }
        if let Some(expiry) = job.lease_expires_at() {
            self.leases.remove(&(expiry, id));
        }
        self.leases.remove(&(DateTime::<Utc>::MIN_UTC, id));
        for dep in job.waits_on() {
            if let Some(ids) = self.dependents.get_mut(dep) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.dependents.remove(dep);
                }
            }
        }
        Some(job)
    }

    /// Applies the end of `ended` (no longer in the queue) to the jobs waiting for it, transitively:
    /// they wait for `retry` instead, are released (succeeded, skipped), cancelled (cancelled) or fail
    /// with step `dependency` (any other end). Returns them as they are now.
    fn propagate(&mut self, ended: &Job, retry: Option<JobId>, now: DateTime<Utc>) -> Vec<Job> {
        let mut changed = Vec::new();
        let mut work = VecDeque::from([(ended.clone(), retry)]);
        while let Some((dep, retry)) = work.pop_front() {
            let Some(waiting) = self.dependents.remove(&dep.id()) else { continue };
            for id in waiting {
                let Some(mut job) = self.unindex(id) else { continue };
                // Each transition below is legal for a waiting job, the only kind indexed here.
                match (retry, dep.state()) {
                    (Some(r), _) => {
                        job.repoint(dep.id(), r);
                    }
                    (None, JobState::Succeeded | JobState::Skipped) => {
                        let _ = job.release(dep.id(), now);
                    }
                    (None, JobState::Cancelled) => {
                        let _ = job.cancel(now);
                    }
                    (None, _) => {
                        let _ = job.fail_dependency(&dep, now);
                    }
                }
                if job.state().is_final() {
                    work.push_back((job.clone(), None));
                } else {
                    self.index(job.clone());
                }
                changed.push(job);
            }
        }
        changed
    }

    /// The ids that waiting jobs wait for but that are not in the queue (they ended while nobody
    /// recorded it on their dependents: a restored queue checks these against the stored records).
    pub fn dangling_waits(&self) -> Vec<JobId> {
        let mut ids: Vec<JobId> =
            self.dependents.keys().filter(|id| !self.jobs.contains_key(id)).copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Applies the end of `ended`, a job not in the queue, to the jobs waiting for it (see
    /// [`JobQueue::dangling_waits`]); returns them as they are now. Nothing for a job still active.
    pub fn settle(&mut self, ended: &Job, now: DateTime<Utc>) -> Vec<Job> {
        if self.jobs.contains_key(&ended.id()) || !ended.state().is_final() {
            return Vec::new();
        }
        self.propagate(ended, None, now)
    }

    /// An active job.
    pub fn get(&self, id: JobId) -> Option<&Job> {
        self.jobs.get(&id)
    }

    /// All active jobs, by id.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs.values()
    }

    /// How many jobs are active.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// `true` when no job is active.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// How many jobs wait for `arch` (including retries still in back-off).
    pub fn queued(&self, arch: &Arch) -> usize {
        self.waiting.get(arch).map_or(0, BTreeSet::len)
    }

    /// Whether a poll for `arch` at `now` would change anything: a lease has ended (to expire) or a queued
    /// job of `arch` is due (to lease). Lets a server answer idle polls without a write.
    pub fn has_work(&self, arch: &Arch, now: DateTime<Utc>) -> bool {
        self.leases.first().is_some_and(|&(expiry, _)| expiry <= now)
            || self
                .waiting
                .get(arch)
                .and_then(BTreeSet::first)
                .is_some_and(|&(not_before, _)| not_before <= now)
    }

    /// How many running jobs `agent` holds a lease on.
    pub fn held_by(&self, agent: &AgentId) -> usize {
        self.leases
            .iter()
            .filter(|(_, id)| self.jobs.get(id).is_some_and(|j| j.agent() == Some(agent)))
            .count()
    }

    /// Notes that running job `id`'s log reached its limit; returns the job when this changed it (so the
    /// caller writes its record once).
    pub fn mark_log_truncated(&mut self, id: JobId) -> Option<&Job> {
        let job = self.jobs.get_mut(&id)?;
        if job.log_truncated() {
            return None;
        }
        job.mark_log_truncated();
        Some(job)
    }

    /// Leases up to `capacity` queued jobs of `arch` that are due at `now` to `agent`, oldest first, and
    /// returns them (running, with their lease expiry). Each job is handed out once.
    pub fn lease(&mut self, arch: &Arch, capacity: usize, agent: &AgentId, now: DateTime<Utc>) -> Vec<Job> {
        let mut leased = Vec::new();
        let Some(line) = self.waiting.get_mut(arch) else { return leased };
        let mut taken = Vec::new();
        while taken.len() < capacity {
            match line.first() {
                Some(&(not_before, id)) if not_before <= now => {
                    line.pop_first();
                    taken.push(id);
                }
                _ => break,
            }
        }
        for id in taken {
            let Some(job) = self.jobs.get_mut(&id) else { continue };
            let key = (job.target(), job.arch().clone());
            if job.lease(agent, now, self.lease).is_err() {
                // Cannot happen for an indexed queued job that is due; put it back rather than lose it.
                self.waiting.entry(job.arch().clone()).or_default().insert((job.not_before(), id));
                continue;
            }
            if let Some(ids) = self.queued_for.get_mut(&key) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.queued_for.remove(&key);
                }
            }
            if let Some(expiry) = job.lease_expires_at() {
                self.leases.insert((expiry, id));
            }
            leased.push(job.clone());
        }
        leased
    }

    /// Renews the lease of running job `id` held by `agent`; returns the new expiry.
    pub fn heartbeat(
        &mut self,
        id: JobId,
        agent: &AgentId,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, JobError> {
        let job = self.jobs.get_mut(&id).ok_or(JobError::NoSuchJob(id))?;
        let before = job.lease_expires_at();
        job.heartbeat(agent, now, self.lease)?;
        let after = job.lease_expires_at().unwrap_or(now + self.lease);
        if let Some(b) = before {
            self.leases.remove(&(b, id));
        }
        self.leases.insert((after, id));
        Ok(after)
    }

    /// Moves an ended job out of the queue, queues its retry if the policy says so and applies its end
    /// to the jobs waiting for it.
    fn end(&mut self, id: JobId) -> Option<Ended> {
        let job = self.unindex(id)?;
        let retry = self.retry.should_retry(&job).map(|at| {
            let retry_id = self.alloc_id();
            let now = job.finished_at().unwrap_or(at);
            let retry = job.retry(retry_id, now, at);
            self.index(retry.clone());
            retry
        });
        let now = job.finished_at().unwrap_or(job.queued_at());
        let dependents = self.propagate(&job, retry.as_ref().map(Job::id), now);
        Some(Ended { job, retry, dependents })
    }

    /// Records the outcome of running job `id` reported by its holder `agent`. The job leaves the queue;
    /// a retry is queued for infrastructure failures as the policy allows.
    pub fn finish(
        &mut self,
        id: JobId,
        agent: &AgentId,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Result<Ended, JobError> {
        let job = self.jobs.get_mut(&id).ok_or(JobError::NoSuchJob(id))?;
        let expiry = job.lease_expires_at();
        job.finish(agent, outcome, now)?;
        if let Some(e) = expiry {
            self.leases.remove(&(e, id));
        }
        self.end(id).ok_or(JobError::NoSuchJob(id))
    }

    /// Cancels waiting, queued or running job `id` and the jobs waiting for it (transitively); they
    /// leave the queue (no retry).
    pub fn cancel(&mut self, id: JobId, now: DateTime<Utc>) -> Result<Ended, JobError> {
        let mut job = self.unindex(id).ok_or(JobError::NoSuchJob(id))?;
        job.cancel(now)?;
        let dependents = self.propagate(&job, None, now);
        Ok(Ended { job, retry: None, dependents })
    }

    /// Turns every lease that ended at or before `now` into a lost job, which leaves the queue, and
    /// queues its retry as the policy allows.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Vec<Ended> {
        let mut expired = Vec::new();
        while let Some(&(expiry, id)) = self.leases.first() {
            if expiry > now {
                break;
            }
            self.leases.pop_first();
            if let Some(job) = self.jobs.get_mut(&id) {
                if job.expire_lease(now).is_ok() {
                    if let Some(ended) = self.end(id) {
                        expired.push(ended);
                    }
                }
            }
        }
        expired
    }

    /// The earliest future instant at which something changes without a request: a lease ends or a
    /// retry's back-off is over.
    pub fn next_event(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let lease = self.leases.first().map(|&(e, _)| e);
        let ready = self
            .waiting
            .values()
            .filter_map(|line| line.iter().map(|&(nb, _)| nb).find(|&nb| nb > now))
            .min();
        [lease, ready].into_iter().flatten().min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{FailureCause, FailureStep};
    use crate::target::NewTarget;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(secs)
    }

    fn arch(a: &str) -> Arch {
        Arch::new(a).unwrap()
    }

    fn agent(a: &str) -> AgentId {
        AgentId::new(a).unwrap()
    }

    fn target(id: u64, schedule: Option<&str>, arches: &[&str]) -> Target {
        NewTarget {
            kind: "git".into(),
            url: "https://h/x".into(),
            repo: "r".into(),
            schedule: schedule.map(Into::into),
            arch: Some(arches.iter().map(|a| a.to_string()).collect()),
            ..Default::default()
        }
        .validate(TargetId(id), &arch("x86_64"))
        .unwrap()
    }

    fn queue() -> JobQueue {
        JobQueue::new(
            RetryPolicy { max_attempts: 3, backoff_base_secs: 10, backoff_factor: 2, backoff_max_secs: 100 },
            Duration::seconds(60),
        )
    }

    /// A deterministic PRNG (splitmix64) for interleavings.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn due_runs_missed_runs_once_and_wakeup() {
        let default: Schedule = "0 3".parse().unwrap();
        let hourly = target(1, Some("0 *"), &["x86_64", "aarch64"]);
        let daily = target(2, None, &["x86_64"]);
        let mut disabled = target(3, Some("* *"), &["x86_64"]);
        disabled.enabled = false;
        let never_ran = target(4, None, &["x86_64"]);
        let targets = [hourly, daily, disabled, never_ran];
        let now = t(10 * 3600 + 30 * 60); // 10:30
        let last = |id: TargetId, a: &Arch| match (id.0, a.as_str()) {
            (1, "x86_64") => Some(t(10 * 3600)), // ran at 10:00: next 11:00
            (1, "aarch64") => Some(t(7 * 3600)), // missed 08:00, 09:00, 10:00: due once
            (2, _) => Some(t(3 * 3600 - 1)),     // 03:00 missed: due
            (3, _) => Some(t(0)),
            _ => None,
        };
        let tick = due_runs(&targets, last, &default, chrono_tz::UTC, now);
        let due: Vec<(u64, &str, DateTime<Utc>)> =
            tick.due.iter().map(|d| (d.target.0, d.arch.as_str(), d.scheduled_for)).collect();
        assert_eq!(due, [(1, "aarch64", t(8 * 3600)), (2, "x86_64", t(3 * 3600)), (4, "x86_64", now)]);
        assert_eq!(tick.next_wakeup, Some(t(11 * 3600)));
        // Recording `now` for the due pairs: nothing is due any more until 11:00.
        let due_keys: Vec<(TargetId, Arch)> = tick.due.iter().map(|d| (d.target, d.arch.clone())).collect();
        let last2 = |id: TargetId, a: &Arch| {
            if due_keys.contains(&(id, a.clone())) {
                Some(now)
            } else {
                last(id, a)
            }
        };
        let again = due_runs(&targets, last2, &default, chrono_tz::UTC, now);
        assert!(again.due.is_empty(), "{:?}", again.due);
        assert_eq!(again.next_wakeup, Some(t(11 * 3600)));
        let at_11 = due_runs(&targets, last2, &default, chrono_tz::UTC, t(11 * 3600));
        assert_eq!(at_11.due.len(), 2, "hourly on both arches");
    }

    #[test]
    fn due_runs_for_10000_targets_match_a_direct_computation() {
        let schedules: Vec<Schedule> =
            ["0 3", "*/5 *", "0 */6", "30 2 * * mon-fri", "0 0 1", "15 4 * * 0", "0 0 29 2", "*/7 1-5/2"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect();
        let default: Schedule = "0 3".parse().unwrap();
        let mut rng = Rng(42);
        let now = Utc.with_ymd_and_hms(2025, 6, 15, 12, 0, 0).unwrap();
        let tz = chrono_tz::Europe::Brussels;
        let mut targets = Vec::new();
        let mut last = HashMap::new();
        for i in 0..10_000u64 {
            let pick = rng.below(schedules.len() as u64 + 1) as usize;
            let mut tg = target(i, None, if i % 3 == 0 { &["x86_64", "aarch64"] } else { &["x86_64"] });
            tg.schedule = schedules.get(pick).cloned();
            tg.enabled = i % 50 != 0;
            for a in &tg.arch {
                if rng.below(20) != 0 {
                    last.insert((tg.id, a.clone()), now - Duration::minutes(rng.below(60 * 24 * 10) as i64));
                }
            }
            targets.push(tg);
        }
        let tick = due_runs(&targets, |id, a| last.get(&(id, a.clone())).copied(), &default, tz, now);
        // Independent check, pair by pair, with the upcoming() iterator.
        let mut expected = Vec::new();
        let mut wake: Option<DateTime<Utc>> = None;
        for tg in targets.iter().filter(|t| t.enabled) {
            let s = tg.schedule.as_ref().unwrap_or(&default);
            for a in &tg.arch {
                let first = match last.get(&(tg.id, a.clone())) {
                    None => now,
                    Some(&l) => s.upcoming(l, tz).next().unwrap(),
                };
                let next = if first <= now {
                    expected.push((tg.id, a.clone(), first));
                    s.upcoming(now, tz).next().unwrap()
                } else {
                    first
                };
                wake = Some(wake.map_or(next, |w| w.min(next)));
            }
        }
        let got: Vec<_> = tick.due.iter().map(|d| (d.target, d.arch.clone(), d.scheduled_for)).collect();
        assert_eq!(got.len(), expected.len());
        assert_eq!(got, expected);
        assert!(got.len() > 1000 && got.len() < 13_000, "mixed: {}", got.len());
        assert_eq!(tick.next_wakeup, wake);
        assert!(tick.next_wakeup.unwrap() > now);
    }

    #[test]
    fn enqueue_deduplicates_unless_forced() {
        let mut q = queue();
        let x = arch("x86_64");
        let first = q.enqueue(TargetId(1), &x, false, Trigger::Schedule, t(0));
        assert!(matches!(first, Enqueued::New(_)));
        assert_eq!(
            q.enqueue(TargetId(1), &x, false, Trigger::Manual, t(1)),
            Enqueued::AlreadyQueued(first.job())
        );
        let forced = q.enqueue(TargetId(1), &x, true, Trigger::Manual, t(1));
        assert!(matches!(forced, Enqueued::New(id) if id != first.job()));
        assert!(matches!(
            q.enqueue(TargetId(1), &arch("aarch64"), false, Trigger::Manual, t(1)),
            Enqueued::New(_)
        ));
        assert!(matches!(q.enqueue(TargetId(2), &x, false, Trigger::Manual, t(1)), Enqueued::New(_)));
        assert_eq!(q.queued(&x), 3);
        // Leasing the first leaves the forced one queued: it covers a plain request.
        let leased = q.lease(&x, 1, &agent("a"), t(2));
        assert_eq!(leased[0].id(), first.job());
        assert_eq!(
            q.enqueue(TargetId(1), &x, false, Trigger::Manual, t(3)),
            Enqueued::AlreadyQueued(forced.job())
        );
        // Once nothing waits for (1, x86_64), a new request queues again.
        assert_eq!(q.lease(&x, 1, &agent("a"), t(3))[0].id(), forced.job());
        assert!(matches!(q.enqueue(TargetId(1), &x, false, Trigger::Manual, t(4)), Enqueued::New(_)));
    }

    #[test]
    fn lease_is_fifo_per_arch_and_respects_capacity() {
        let mut q = queue();
        let (x, a64) = (arch("x86_64"), arch("aarch64"));
        let ids: Vec<JobId> =
            (0..5).map(|i| q.enqueue(TargetId(i), &x, false, Trigger::Manual, t(i as i64)).job()).collect();
        let other = q.enqueue(TargetId(9), &a64, false, Trigger::Manual, t(0)).job();
        let got = q.lease(&x, 3, &agent("a"), t(10));
        assert_eq!(got.iter().map(|j| j.id()).collect::<Vec<_>>(), ids[..3]);
        assert!(got.iter().all(|j| j.state() == JobState::Running && j.lease_expires_at() == Some(t(70))));
        assert_eq!(q.lease(&x, 0, &agent("b"), t(10)), []);
        assert_eq!(q.lease(&x, 10, &agent("b"), t(10)).len(), 2);
        assert_eq!(q.lease(&x, 10, &agent("c"), t(10)), []);
        assert_eq!(q.lease(&a64, 10, &agent("d"), t(10))[0].id(), other);
    }

    #[test]
    fn capacity_is_capped_by_the_jobs_an_agent_already_holds() {
        assert_eq!(lease_capacity(1_000_000, 0, 3), 3);
        assert_eq!(lease_capacity(2, 0, 3), 2);
        assert_eq!(lease_capacity(2, 3, 3), 0);
        assert_eq!(lease_capacity(2, 10, 3), 0, "over the cap (the limit was lowered): nothing more");
        assert_eq!(lease_capacity(u32::MAX, 0, u32::MAX), u32::MAX as usize);
        assert_eq!(lease_capacity(5, 0, 0), 0);
        // Against the queue: an agent polling in a loop holds at most the cap; finishing frees a slot.
        let mut q = queue();
        let x = arch("x86_64");
        for i in 0..10 {
            q.enqueue(TargetId(i), &x, false, Trigger::Manual, t(0));
        }
        let (a, b) = (agent("a"), agent("b"));
        let mut got = Vec::new();
        for _ in 0..5 {
            let n = lease_capacity(1_000_000, q.held_by(&a), 3);
            got.extend(q.lease(&x, n, &a, t(1)));
        }
        assert_eq!((got.len(), q.held_by(&a), q.held_by(&b)), (3, 3, 0));
        q.finish(got[0].id(), &a, Outcome::TimedOut, t(2)).unwrap();
        assert_eq!(q.held_by(&a), 2);
        assert_eq!(q.lease(&x, lease_capacity(1_000_000, q.held_by(&a), 3), &a, t(3)).len(), 1);
        assert_eq!(q.lease(&x, lease_capacity(1_000_000, q.held_by(&b), 3), &b, t(3)).len(), 3);
    }

    #[test]
    fn agent_keys_bind_and_stale_bindings_can_be_taken_over() {
        let (k1, k2) = ([7u8; 32], [8u8; 32]);
        let mut almost = k1;
        almost[31] ^= 1;
        assert_eq!(check_agent_key(None, &k1, true), KeyCheck::Unbound);
        assert_eq!(check_agent_key(Some(&k1), &k1, true), KeyCheck::Matches);
        assert_eq!(check_agent_key(Some(&k1), &k1, false), KeyCheck::Matches);
        assert_eq!(check_agent_key(Some(&k1), &k2, true), KeyCheck::Refused);
        assert_eq!(check_agent_key(Some(&k1), &almost, true), KeyCheck::Refused, "the last byte counts");
        assert_eq!(check_agent_key(Some(&k1), &k2, false), KeyCheck::Stale);
        assert!(!KeyCheck::Refused.allowed());
        assert!(KeyCheck::Unbound.allowed() && KeyCheck::Matches.allowed() && KeyCheck::Stale.allowed());
    }

    #[test]
    fn idle_agents_expire_busy_ones_never() {
        let week = Some(Duration::days(7));
        assert!(!agent_expired(t(0), t(0), week, false));
        assert!(!agent_expired(t(0), t(7 * 86_400 - 1), week, false));
        assert!(agent_expired(t(0), t(7 * 86_400), week, false));
        assert!(!agent_expired(t(0), t(700 * 86_400), week, true), "holding a job");
        assert!(!agent_expired(t(0), t(700 * 86_400), None, false), "no expiry configured");
        // A last contact in the future (clock skew) is not expired.
        assert!(!agent_expired(t(100), t(0), Some(Duration::seconds(1)), false));
        assert_eq!(agent_expires_at(DateTime::<Utc>::MAX_UTC, Duration::days(1)), DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn a_truncated_log_is_marked_once_on_the_job() {
        let mut q = queue();
        let x = arch("x86_64");
        let id = q.enqueue(TargetId(1), &x, false, Trigger::Manual, t(0)).job();
        q.lease(&x, 1, &agent("a"), t(0));
        assert!(q.mark_log_truncated(id).is_some_and(|j| j.log_truncated()));
        assert!(q.mark_log_truncated(id).is_none(), "already marked: nothing to write");
        assert!(q.mark_log_truncated(JobId(99)).is_none());
        let ended = q.finish(id, &agent("a"), Outcome::TimedOut, t(1)).unwrap();
        assert!(ended.job.log_truncated(), "the mark stays on the record");
    }

    #[test]
    fn has_work_exactly_when_a_poll_would_lease_or_expire() {
        let mut q = queue();
        let (x, a64) = (arch("x86_64"), arch("aarch64"));
        assert!(!q.has_work(&x, t(0)));
        q.enqueue(TargetId(1), &x, false, Trigger::Manual, t(0));
        assert!(q.has_work(&x, t(0)) && !q.has_work(&a64, t(0)));
        assert_eq!(q.lease(&x, 1, &agent("a"), t(0)).len(), 1);
        // Leased (expires at 60): nothing to do for anyone until the lease ends.
        assert!(!q.has_work(&x, t(59)) && !q.has_work(&a64, t(59)));
        assert!(q.has_work(&a64, t(60)), "an ended lease is work for any poll");
        let retry = q.expire(t(60))[0].retry.clone().unwrap();
        // The retry waits for its back-off.
        assert!(!q.has_work(&x, t(60)));
        assert!(q.has_work(&x, retry.not_before()));
    }

    #[test]
    fn twenty_pollers_thousand_jobs_each_leased_once() {
        let mut q = queue();
        let arches = [arch("x86_64"), arch("aarch64")];
        for i in 0..1000u64 {
            q.enqueue(TargetId(i), &arches[(i % 2) as usize], false, Trigger::Schedule, t(0));
        }
        let pollers: Vec<(AgentId, &Arch)> =
            (0..20).map(|i| (agent(&format!("agent-{i}")), &arches[i % 2])).collect();
        let mut rng = Rng(7);
        let mut seen: HashMap<JobId, AgentId> = HashMap::new();
        let mut calls = 0;
        while seen.len() < 1000 && calls < 100_000 {
            calls += 1;
            let (agent, arch) = &pollers[rng.below(20) as usize];
            let capacity = rng.below(6) as usize;
            for job in q.lease(arch, capacity, agent, t(1)) {
                assert_eq!(job.arch(), *arch);
                assert_eq!(job.agent(), Some(agent));
                assert!(seen.insert(job.id(), agent.clone()).is_none(), "job {} handed out twice", job.id());
            }
        }
        assert_eq!(seen.len(), 1000);
        for (agent, arch) in &pollers {
            assert!(q.lease(arch, 100, agent, t(2)).is_empty());
        }
        assert_eq!(q.jobs().filter(|j| j.state() == JobState::Running).count(), 1000);
        // Every poller got some work.
        let agents: BTreeSet<&AgentId> = seen.values().collect();
        assert_eq!(agents.len(), 20);
    }

    #[test]
    fn unrenewed_lease_is_lost_requeued_and_leased_by_another_agent() {
        let mut q = queue();
        let x = arch("x86_64");
        let id = q.enqueue(TargetId(1), &x, false, Trigger::Schedule, t(0)).job();
        let renewed = q.enqueue(TargetId(2), &x, false, Trigger::Schedule, t(0)).job();
        let (a, b) = (agent("a"), agent("b"));
        assert_eq!(q.lease(&x, 2, &a, t(0)).len(), 2);
        assert_eq!(q.heartbeat(renewed, &a, t(50)), Ok(t(110)));
        assert!(q.expire(t(59)).is_empty());
        let ended = q.expire(t(60));
        assert_eq!(ended.len(), 1);
        assert_eq!((ended[0].job.id(), ended[0].job.state()), (id, JobState::Lost));
        let retry = ended[0].retry.clone().unwrap();
        assert_eq!((retry.attempt(), retry.retry_of(), retry.not_before()), (2, Some(id), t(70)));
        assert!(q.get(id).is_none());
        // The late agent cannot report on the lost job any more.
        assert_eq!(q.finish(id, &a, Outcome::TimedOut, t(61)), Err(JobError::NoSuchJob(id)));
        // Back-off: not before 70 s.
        assert!(q.lease(&x, 5, &b, t(69)).is_empty());
        let got = q.lease(&x, 5, &b, t(70));
        assert_eq!(got.iter().map(|j| j.id()).collect::<Vec<_>>(), [retry.id()]);
        assert_eq!(got[0].agent(), Some(&b));
        // The renewed one is still running under a.
        assert_eq!(q.get(renewed).map(|j| j.state()), Some(JobState::Running));
        assert_eq!(q.next_event(t(70)), Some(t(110)));
    }

    #[test]
    fn makepkg_failures_are_never_retried_infrastructure_ones_are() {
        let mut q = queue();
        let x = arch("x86_64");
        let a = agent("a");
        let id = q.enqueue(TargetId(1), &x, false, Trigger::Schedule, t(0)).job();
        q.lease(&x, 1, &a, t(0));
        let cause =
            FailureCause { exit_code: Some(4), ..FailureCause::new(FailureStep::Makepkg, "build() failed") };
        let ended = q.finish(id, &a, Outcome::Failed { cause }, t(10)).unwrap();
        assert_eq!(ended.job.state(), JobState::Failed);
        assert_eq!(ended.retry, None);
        assert!(q.is_empty());
        // An upload failure is retried until attempts run out (3 in all).
        let mut id = q.enqueue(TargetId(1), &x, false, Trigger::Schedule, t(20)).job();
        let mut now = t(20);
        for attempt in 1..=3 {
            let got = q.lease(&x, 1, &a, now);
            assert_eq!(got.len(), 1, "attempt {attempt}");
            assert_eq!((got[0].id(), got[0].attempt()), (id, attempt));
            let cause =
                FailureCause { http_status: Some(502), ..FailureCause::new(FailureStep::Upload, "x") };
            let ended = q.finish(id, &a, Outcome::Failed { cause }, now).unwrap();
            match ended.retry {
                Some(r) if attempt < 3 => {
                    id = r.id();
                    now = r.not_before();
                }
                None if attempt == 3 => {}
                other => panic!("attempt {attempt}: unexpected retry {other:?}"),
            }
        }
        assert!(q.is_empty());
    }

    #[test]
    fn waiting_jobs_are_never_leased_and_survive_a_round_trip() {
        let mut q = queue();
        let x = arch("x86_64");
        let a = q.enqueue(TargetId(1), &x, false, Trigger::Manual, t(0)).job();
        let b = q.enqueue_after(TargetId(2), &x, false, Trigger::Manual, &[a, JobId(99)], t(0)).job();
        assert_eq!(q.get(b).map(|j| (j.state(), j.waits_on().to_vec())), Some((JobState::Waiting, vec![a])));
        assert_eq!(q.enqueue(TargetId(2), &x, false, Trigger::Manual, t(1)), Enqueued::AlreadyQueued(b));
        assert_eq!(q.active_job(TargetId(2), &x), Some(b));
        let mut q: JobQueue = serde_json::from_str(&serde_json::to_string(&q).unwrap()).unwrap();
        assert_eq!(q.dangling_waits(), []);
        assert_eq!(q.lease(&x, 10, &agent("a"), t(1)).iter().map(Job::id).collect::<Vec<_>>(), [a]);
        assert!(!q.has_work(&x, t(1)), "the waiting job is no work");
        let ended =
            q.finish(a, &agent("a"), Outcome::Skipped { versions: vec![], revision: None }, t(2)).unwrap();
        assert_eq!(
            ended.dependents.iter().map(|j| (j.id(), j.state())).collect::<Vec<_>>(),
            [(b, JobState::Queued)]
        );
        assert!(ended.queued_any());
        assert_eq!(ended.records().count(), 2);
        assert_eq!(q.lease(&x, 10, &agent("a"), t(2)).iter().map(Job::id).collect::<Vec<_>>(), [b]);
    }

    #[test]
    fn cancel_and_serde_round_trip() {
        let mut q = queue();
        let x = arch("x86_64");
        let a = agent("a");
        let running = q.enqueue(TargetId(1), &x, false, Trigger::Manual, t(0)).job();
        let queued = q.enqueue(TargetId(2), &x, false, Trigger::Manual, t(0)).job();
        assert_eq!(q.lease(&x, 1, &a, t(1)).iter().map(|j| j.id()).collect::<Vec<_>>(), [running]);
        let cancelled = q.cancel(queued, t(2)).unwrap().job;
        assert_eq!((cancelled.state(), cancelled.finished_at()), (JobState::Cancelled, Some(t(2))));
        assert_eq!(q.queued(&x), 0);
        assert!(matches!(q.enqueue(TargetId(2), &x, false, Trigger::Manual, t(3)), Enqueued::New(_)));
        assert_eq!(q.cancel(running, t(4)).map(|e| e.job.state()), Ok(JobState::Cancelled));
        assert!(q.expire(t(1000)).is_empty(), "a cancelled job's lease is gone");
        assert_eq!(q.cancel(running, t(5)), Err(JobError::NoSuchJob(running)));

        let mut q = queue();
        q.enqueue(TargetId(1), &x, false, Trigger::Manual, t(0));
        q.enqueue(TargetId(2), &x, false, Trigger::Manual, t(0));
        q.lease(&x, 1, &a, t(1));
        let json = serde_json::to_string(&q).unwrap();
        let mut restored: JobQueue = serde_json::from_str(&json).unwrap();
        assert_eq!(restored.len(), 2);
        assert_eq!(restored.queued(&x), 1);
        // The restored queue keeps dedup, leases and ids.
        assert!(matches!(
            restored.enqueue(TargetId(2), &x, false, Trigger::Manual, t(2)),
            Enqueued::AlreadyQueued(_)
        ));
        assert_eq!(restored.expire(t(61)).len(), 1);
        assert!(
            matches!(restored.enqueue(TargetId(9), &x, false, Trigger::Manual, t(2)), Enqueued::New(JobId(id)) if id > 2)
        );
    }
}
