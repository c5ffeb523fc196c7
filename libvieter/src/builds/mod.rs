//! The build service: every rule of targets, jobs and agents, over a storage port and a clock.
//!
//! [`BuildService`] owns what the build system decides: target creation, edits and removal (a new
//! target waits for its schedule; the targets a target needs exist and form no cycle, a needed target
//! is not removed, automatic targets go when nothing needs them), manual and scheduled queueing (with
//! a job of every needed target, the target's own job waiting for them), leases, heartbeats,
//! outcomes (and what they mean for the jobs waiting for them), lost jobs and their retries,
//! cancellation, retries by hand (of ended jobs only), which agent may speak for which id, how many
//! jobs one agent holds, when an idle agent is forgotten, when build logs are old enough to delete,
//! filters and paging. What it does not do is I/O: the state goes through a
//! [`BuildStore`] (an in-memory [`MemoryStore`] ships here, `vieter-server` has redb), time comes from a
//! [`Clock`], and waiting (long polls, the tick's timer), log files and HTTP are the embedder's.
//!
//! ```
//! use chrono::{Duration, TimeZone, Utc};
//! use libvieter::api::PollRequest;
//! use libvieter::builds::{BuildService, BuildSettings, Credentials, ManualClock, MemoryStore};
//! use libvieter::job::{AgentId, JobState, Outcome, Trigger};
//! use libvieter::name::Arch;
//! use libvieter::scheduler::KeyDigest;
//! use libvieter::target::NewTarget;
//!
//! struct Key(KeyDigest);
//! impl Credentials for Key {
//!     fn key(&self) -> &KeyDigest { &self.0 }
//!     fn accepts(&self, key: &KeyDigest) -> bool { *key == self.0 }
//! }
//!
//! let x86 = Arch::new("x86_64").unwrap();
//! let clock = ManualClock::new(Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).unwrap());
//! let settings = BuildSettings::new(x86.clone(), "0 3".parse().unwrap());
//! let builds = BuildService::open(MemoryStore::default(), settings, clock.clone()).unwrap();
//! let new = NewTarget { kind: "aur".into(), url: "yay".into(), repo: "extra".into(), ..Default::default() };
//! let target = builds.create_target(&new).unwrap();
//!
//! // Nothing is due before the next 03:00; then one scheduled job.
//! assert!(builds.tick().unwrap().queued.is_empty());
//! clock.advance(Duration::hours(15));
//! let queued = builds.tick().unwrap().queued;
//! assert_eq!((queued.len(), queued[0].trigger(), queued[0].target()), (1, Trigger::Schedule, target.id));
//!
//! // An agent leases it and reports.
//! let agent = AgentId::new("builder-1").unwrap();
//! let poll = PollRequest { agent_id: agent.clone(), arch: x86, capacity: 4, wait: None };
//! let leased = builds.poll(&poll, &Key([7; 32])).unwrap();
//! assert_eq!(leased[0].heartbeat_secs, 20); // a third of the 60 s lease
//! let done = builds.finish(leased[0].job.id(), &agent, Outcome::TimedOut, &Key([7; 32])).unwrap();
//! assert_eq!(done.state(), JobState::TimedOut);
//! ```

mod change;
mod clock;
pub mod conformance;
mod error;
mod graph;
#[cfg(test)]
mod graph_tests;
pub mod kv;
mod logs;
mod store;
#[cfg(test)]
mod tests;
mod views;

pub use change::{
    aur_base, aur_change, by_base, git_change, git_queries, Change, ChangeCheck, DueTarget, NoCheck,
    SourceCheck, SourceLookups,
};
pub use clock::{Clock, ManualClock};
pub use error::{BuildError, Invalid, Missing};
pub use graph::{ClosureQuery, ClosureTargets, DependencyTree, Removal};
pub use kv::KvBuildStore;
pub use logs::{BuildLogs, LogError, LogRead, LogReader, LogStore, LogTail, MemoryLogs};
pub use store::{AgentRecord, BuildStore, Durable, MemoryStore, Saved, StoreError};
pub use views::{PackageBuild, MAX_SCANNED_JOBS};

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use crate::api::{AgentInfo, JobFilter, LeasedJob, PollRequest, QueueRequest, TargetFilter};
use crate::job::Trigger;
use crate::job::{plan_log_append, AgentId, Job, JobError, JobId, JobState, LogAppend, Outcome, RetryPolicy};
use crate::name::Arch;
use crate::schedule::Schedule;
use crate::scheduler::{
    agent_expired, agent_expires_at, check_agent_key, due_runs, lease_capacity, Ended, JobQueue, KeyCheck,
    KeyDigest,
};
use crate::target::{NewTarget, Target, TargetId, TargetPatch};
use graph::Plan;

/// The settings of the build system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSettings {
    /// The time zone schedules are read in.
    pub tz: Tz,
    /// The schedule of targets that have none.
    pub global_schedule: Schedule,
    /// The image of targets that name none.
    pub base_image: String,
    /// The build timeout of targets that set none, in seconds.
    pub default_timeout_secs: u64,
    /// How long a lease lasts without a heartbeat.
    pub lease: Duration,
    /// When lost jobs and infrastructure failures are retried.
    pub retry: RetryPolicy,
    /// The architecture of new targets that name none.
    pub default_arch: Arch,
    /// Largest log of one job in bytes (past it: a marker line, the rest discarded).
    pub max_log_size: u64,
    /// Build logs older than this are deleted; `None`: kept forever.
    pub log_retention: Option<Duration>,
    /// Most jobs one agent holds at once (a poll's `capacity` is capped by what is left of it).
    pub max_agent_capacity: u32,
    /// Agents idle (no job, no contact) this long are forgotten; `None`: never.
    pub agent_expiry: Option<Duration>,
    /// Most agent ids one key may have at once: a holder of an agent key cannot fill the agent list with
    /// invented ids.
    pub max_agents_per_key: usize,
}

impl BuildSettings {
    /// Vieter's defaults (those of the server's configuration) for the rest: UTC,
    /// `archlinux:base-devel`, 1 h timeout, 60 s lease, 3 attempts, logs of at most 64 MiB kept 30 days,
    /// 64 jobs per agent, agents forgotten after a week.
    ///
    /// ```
    /// use libvieter::builds::BuildSettings;
    /// let s = BuildSettings::new(libvieter::name::Arch::new("x86_64").unwrap(), "0 3".parse().unwrap());
    /// assert_eq!(s.lease.num_seconds(), 60);
    /// ```
    pub fn new(default_arch: Arch, global_schedule: Schedule) -> Self {
        BuildSettings {
            tz: chrono_tz::UTC,
            global_schedule,
            base_image: "archlinux:base-devel".to_owned(),
            default_timeout_secs: 3600,
            lease: Duration::seconds(60),
            retry: RetryPolicy::default(),
            default_arch,
            max_log_size: 64 * 1024 * 1024,
            log_retention: Some(Duration::days(30)),
            max_agent_capacity: 64,
            agent_expiry: Some(Duration::days(7)),
            max_agents_per_key: 256,
        }
    }

    /// The settings within the limits the service keeps ([`BuildService::open`] applies them): a lease
    /// of 1 s to 1 day (a shorter one would expire before the first heartbeat, a longer one hides a
    /// lost agent), at least one attempt, at least one agent per key, and a retention or an expiry of zero or less meaning none (kept forever), at most a century.
    pub fn within_limits(mut self) -> Self {
        self.lease = self.lease.clamp(Duration::seconds(1), Duration::days(1));
        self.retry.max_attempts = self.retry.max_attempts.max(1);
        self.max_agents_per_key = self.max_agents_per_key.max(1);
        let forever = |d: Option<Duration>| d.filter(|d| *d > Duration::zero()).map(|d| d.min(CENTURY));
        self.log_retention = forever(self.log_retention);
        self.agent_expiry = forever(self.agent_expiry);
        self
    }

    /// `secs` seconds as a duration of these settings, at most a century: `0` stays zero (which
    /// [`BuildSettings::within_limits`] reads as "none" for a retention or an expiry).
    pub fn seconds(secs: u64) -> Duration {
        i64::try_from(secs).ok().and_then(Duration::try_seconds).map_or(CENTURY, |d| d.min(CENTURY))
    }
}

/// The longest retention, expiry or lease the settings hold.
const CENTURY: Duration = Duration::days(100 * 365);

/// Who speaks for an agent id: the digest of the key the request presented, and which keys the
/// embedder accepts now (a binding to a key no longer accepted is stale and may be taken over).
pub trait Credentials {
    /// The digest of the presented key.
    fn key(&self) -> &KeyDigest;
    /// Whether a key (by digest) is accepted now.
    fn accepts(&self, key: &KeyDigest) -> bool;
}

/// What the service tells its embedder while it works. Both are hints: ignoring them is correct, only
/// slower (a long poll finds new jobs at its next look, the tick forgets an agent at its next run).
pub trait Wakeups: Send + Sync {
    /// Jobs were queued (or a retry was): pollers waiting for work should look again.
    fn jobs_queued(&self) {}
    /// Something falls due at `at` (an idle agent's expiry): the tick should run by then.
    fn tick_by(&self, at: DateTime<Utc>) {
        let _ = at;
    }
    /// Jobs changed state (queued, leased, ended, cancelled, retried, released from waiting; not a
    /// heartbeat): what shows job lists live should look again.
    fn jobs_changed(&self) {}
}

/// [`Wakeups`] that nobody listens to.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoWakeups;

impl Wakeups for NoWakeups {}

impl<W: Wakeups + ?Sized> Wakeups for std::sync::Arc<W> {
    fn jobs_queued(&self) {
        (**self).jobs_queued();
    }
    fn tick_by(&self, at: DateTime<Utc>) {
        (**self).tick_by(at);
    }
    fn jobs_changed(&self) {
        (**self).jobs_changed();
    }
}

/// What one [`BuildService::tick`] did, and when to tick again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickReport {
    /// Leases that ended without a heartbeat: the lost jobs and their retries.
    pub lost: Vec<Ended>,
    /// Scheduled jobs queued now (trigger `schedule`), with the new jobs of the targets they need.
    pub queued: Vec<Job>,
    /// Scheduled runs the change check found unchanged: recorded `skipped`, no agent involved.
    pub unchanged: Vec<Job>,
    /// Scheduled runs not queued: a target they need is gone or not built for the arch.
    pub refused: Vec<Invalid>,
    /// Idle agents forgotten.
    pub forgotten: Vec<AgentId>,
    /// When something next falls due (a scheduled run, a lease's end, a retry's back-off, an agent's
    /// expiry); never later than a lease period (at most 30 s) from now, so leases granted meanwhile
    /// are expired in time.
    pub next: DateTime<Utc>,
}

/// How stale the stored `last_seen` of a polling agent may get: a poll only writes the agent's record
/// when it is new, changed (arch, capacity, key) or was written longer ago than this.
pub const AGENT_PERSIST_EVERY: Duration = Duration::seconds(30);

/// The longest the tick may sleep.
const MAX_TICK: Duration = Duration::seconds(30);

/// An agent as kept in memory: its record and when that was last stored.
#[derive(Debug, Clone)]
struct AgentEntry {
    record: AgentRecord,
    written: DateTime<Utc>,
}

/// The build system: rules over a [`BuildStore`]. Safe to share between threads (`&self` everywhere);
/// its calls block on the store, so an async embedder runs them on a blocking pool.
///
/// The active jobs live in a [`JobQueue`] behind a lock; every change is handed to the store under that
/// lock (so records are written in the order the changes happened) and waited for after it (so
/// concurrent changes can share one durable commit), before the call returns.
pub struct BuildService<S: BuildStore> {
    store: S,
    clock: Box<dyn Clock>,
    wakeups: Box<dyn Wakeups>,
    settings: BuildSettings,
    queue: Mutex<JobQueue>,
    /// Every known agent, loaded at start.
    agents: Mutex<BTreeMap<AgentId, AgentEntry>>,
    /// Serialises target edits (read, apply, write).
    targets: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn ended_jobs(ended: &[Ended]) -> Vec<Job> {
    ended.iter().flat_map(Ended::records).cloned().collect()
}

impl<S: BuildStore> BuildService<S> {
    /// Opens the service on `store`: reloads the active jobs (waiting, queued and running, with their
    /// leases) and the agents. A waiting job whose dependency ended without its record saying so is
    /// released, failed or cancelled now (and stored).
    pub fn open(store: S, settings: BuildSettings, clock: impl Clock + 'static) -> Result<Self, BuildError> {
        let settings = settings.within_limits();
        let mut queue = JobQueue::new(settings.retry.clone(), settings.lease);
        let mut max_id = 0;
        let mut active = Vec::new();
        store.scan_jobs(&mut |job| {
            max_id = max_id.max(job.id().0);
            if !job.state().is_final() {
                active.push(job);
            }
            ControlFlow::Continue(())
        })?;
        for job in active {
            let id = job.id();
            queue.insert(job).map_err(|e| StoreError::new(format!("stored job {id}: {e}")))?;
        }
        queue.set_next_id(JobId(max_id.saturating_add(1)));
        let now = clock.now();
        let mut settled = Vec::new();
        for dep in queue.dangling_waits() {
            if let Some(job) = store.job(dep)? {
                settled.extend(queue.settle(&job, now));
            }
        }
        store.save_jobs(&settled)?.wait()?;
        let agents = store
            .agents()?
            .into_iter()
            .map(|record| (record.info.id.clone(), AgentEntry { record, written: DateTime::<Utc>::MIN_UTC }))
            .collect();
        Ok(BuildService {
            store,
            clock: Box::new(clock),
            wakeups: Box::new(NoWakeups),
            settings,
            queue: Mutex::new(queue),
            agents: Mutex::new(agents),
            targets: Mutex::new(()),
        })
    }

    /// Tells `wakeups` when pollers or the tick should look again.
    pub fn with_wakeups(mut self, wakeups: impl Wakeups + 'static) -> Self {
        self.wakeups = Box::new(wakeups);
        self
    }

    /// Hands job records to the store (under the queue's lock, as every change is) and tells the
    /// embedder that jobs changed.
    fn save_jobs(&self, jobs: &[Job]) -> Result<S::Saved, StoreError> {
        let saved = self.store.save_jobs(jobs)?;
        if !jobs.is_empty() {
            self.wakeups.jobs_changed();
        }
        Ok(saved)
    }

    /// The settings.
    pub fn settings(&self) -> &BuildSettings {
        &self.settings
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The service's clock's time.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// How many jobs are active (waiting, queued or running).
    pub fn active_jobs(&self) -> usize {
        lock(&self.queue).len()
    }

    fn queue(&self) -> MutexGuard<'_, JobQueue> {
        lock(&self.queue)
    }

    fn agents_lock(&self) -> MutexGuard<'_, BTreeMap<AgentId, AgentEntry>> {
        lock(&self.agents)
    }

    // ---- targets ----

    /// Validates and stores a new target. It waits for its schedule: its first scheduled build is the
    /// schedule's first slot after now, not at once.
    pub fn create_target(&self, input: &NewTarget) -> Result<Target, BuildError> {
        // The store gives the id; validation does not depend on it.
        let target = input.validate(TargetId(0), &self.settings.default_arch).map_err(Invalid::Target)?;
        let _edit = lock(&self.targets);
        if !target.needs.is_empty() {
            // Nothing needs a new target yet: only existence can fail.
            let all = self.target_map()?;
            if let Some(&n) = target.needs.iter().find(|n| !all.contains_key(n)) {
                return Err(Invalid::UnknownNeed { needed: n }.into());
            }
        }
        Ok(self.store.add_target(target, self.now())?)
    }

    /// One target.
    pub fn target(&self, id: TargetId) -> Result<Target, BuildError> {
        self.store.target(id)?.ok_or(BuildError::NotFound(Missing::Target(id)))
    }

    /// The targets passing the filter, by id, one page.
    pub fn list_targets(&self, f: &TargetFilter) -> Result<Vec<Target>, BuildError> {
        let matches = f.matcher();
        Ok(f.page().apply(self.store.targets()?.into_iter().filter(|t| matches(t))).collect())
    }

    /// Applies an edit to a target (every field checked again; changed needs must exist, not name the
    /// target and make no cycle).
    pub fn patch_target(&self, id: TargetId, patch: &TargetPatch) -> Result<Target, BuildError> {
        let _edit = lock(&self.targets);
        let current = self.target(id)?;
        let updated = patch.apply(&current).map_err(Invalid::Target)?;
        if updated.needs != current.needs {
            Self::check_needs(&updated, &self.target_map()?)?;
        }
        self.store.put_target(&updated)?;
        Ok(updated)
    }

    /// Removes a target, refused while a target that is not automatic needs it. Then every automatic
    /// target no longer needed by any target is removed too (transitively), and the active jobs of
    /// the removed targets are cancelled with the jobs waiting for them.
    pub fn delete_target(&self, id: TargetId) -> Result<Removal, BuildError> {
        let automatic = {
            let _edit = lock(&self.targets);
            let mut all = self.target_map()?;
            if !all.contains_key(&id) {
                return Err(BuildError::NotFound(Missing::Target(id)));
            }
            let by: Vec<TargetId> =
                all.values().filter(|t| !t.automatic && t.needs.contains(&id)).map(|t| t.id).collect();
            if !by.is_empty() {
                return Err(BuildError::Needed { target: id, by });
            }
            // Automatic targets that need it lose that need first: no need ever names a removed target.
            for t in all.values_mut().filter(|t| t.needs.contains(&id)) {
                t.needs.retain(|&n| n != id);
                self.store.put_target(t)?;
            }
            if !self.store.remove_target(id)? {
                return Err(BuildError::NotFound(Missing::Target(id)));
            }
            all.remove(&id);
            // How many targets need each target; automatic ones needed by none go, which may free more.
            let mut needed_by: BTreeMap<TargetId, usize> = BTreeMap::new();
            for n in all.values().flat_map(|t| &t.needs) {
                *needed_by.entry(*n).or_default() += 1;
            }
            let mut unneeded: Vec<TargetId> = all
                .values()
                .filter(|t| t.automatic && !needed_by.contains_key(&t.id))
                .map(|t| t.id)
                .collect();
            let mut automatic = Vec::new();
            while let Some(gone) = unneeded.pop() {
                self.store.remove_target(gone)?;
                automatic.push(gone);
                for n in all.remove(&gone).map(|t| t.needs).unwrap_or_default() {
                    if let Some(count) = needed_by.get_mut(&n) {
                        *count -= 1;
                        if *count == 0 && all.get(&n).is_some_and(|t| t.automatic) {
                            unneeded.push(n);
                        }
                    }
                }
            }
            automatic
        };
        let now = self.now();
        let (cancelled, saved) = {
            let mut q = self.queue();
            let gone: BTreeSet<TargetId> = automatic.iter().copied().chain([id]).collect();
            let ids: Vec<JobId> = q.jobs().filter(|j| gone.contains(&j.target())).map(|j| j.id()).collect();
            let ended: Vec<Ended> = ids.into_iter().filter_map(|jid| q.cancel(jid, now).ok()).collect();
            let cancelled = ended_jobs(&ended);
            let saved = self.save_jobs(&cancelled)?;
            (cancelled, saved)
        };
        saved.wait()?;
        Ok(Removal { removed: id, automatic, cancelled })
    }

    // ---- jobs ----

    /// Queues manual builds of a target: of the architecture asked for (which the target must be built
    /// for), else of each of its architectures. Without `force` a build already waiting for the same
    /// (target, arch) is answered instead of a new one. A target with needs also queues a job (not
    /// forced) of every target it needs, transitively, for the same arch (an active job of a needed
    /// target is used instead), and its own job waits for them; refused when a needed target is not
    /// built for the arch. Returns the target's own jobs.
    pub fn queue_build(&self, req: &QueueRequest) -> Result<Vec<Job>, BuildError> {
        let target = self.target(req.target)?;
        let arches: Vec<Arch> = match &req.arch {
            Some(a) if target.arch.contains(a) => vec![a.clone()],
            Some(a) => return Err(Invalid::Arch { target: req.target, arch: a.clone() }.into()),
            None => target.arch.clone(),
        };
        let plans = self.plans_for(&target, arches)?;
        Ok(self.enqueue_all(plans, req.force, Trigger::Manual, self.now())?.0)
    }

    /// The plans of builds of `target` for `arches`, its needs looked up in the store.
    fn plans_for(&self, target: &Target, arches: Vec<Arch>) -> Result<Vec<Plan>, BuildError> {
        let mut lookup = |id: TargetId| self.store.target(id).map_err(BuildError::from);
        arches
            .into_iter()
            .map(|a| {
                if target.needs.is_empty() {
                    Ok(Plan::single(target.id, a))
                } else {
                    Self::plan(target, &a, &mut lookup)
                }
            })
            .collect()
    }

    /// Queues the jobs of each plan: the last target's with `force`, the others' not forced and only
    /// when they have no active job. Returns the last targets' jobs (new or already waiting) and every
    /// new job. Only the new ones are written, in one hand-over.
    fn enqueue_all(
        &self,
        plans: Vec<Plan>,
        force: bool,
        trigger: Trigger,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Job>, Vec<Job>), BuildError> {
        let (jobs, new, saved) = {
            let mut q = self.queue();
            let mut jobs = Vec::new();
            let mut new = Vec::new();
            for plan in plans {
                let mut of: BTreeMap<TargetId, JobId> = BTreeMap::new();
                let last = plan.order.len().saturating_sub(1);
                for (i, (t, needs)) in plan.order.iter().enumerate() {
                    let after: Vec<JobId> = needs.iter().filter_map(|n| of.get(n).copied()).collect();
                    let top = i == last;
                    let queued = match q.active_job(*t, &plan.arch) {
                        Some(id) if !top => crate::scheduler::Enqueued::AlreadyQueued(id),
                        _ => q.enqueue_after(*t, &plan.arch, force && top, trigger, &after, now),
                    };
                    of.insert(*t, queued.job());
                    if let (true, crate::scheduler::Enqueued::New(id), Some(reason)) =
                        (top, &queued, &plan.reason)
                    {
                        q.set_reason(*id, reason);
                    }
                    if let Some(job) = q.get(queued.job()) {
                        if matches!(queued, crate::scheduler::Enqueued::New(_)) {
                            new.push(job.clone());
                        }
                        if top {
                            jobs.push(job.clone());
                        }
                    }
                }
            }
            let saved = self.save_jobs(&new)?;
            (jobs, new, saved)
        };
        saved.wait()?;
        if !new.is_empty() {
            self.wakeups.jobs_queued();
        }
        Ok((jobs, new))
    }

    /// A job, active or ended.
    pub fn find_job(&self, id: JobId) -> Result<Option<Job>, BuildError> {
        if let Some(j) = self.queue().get(id) {
            return Ok(Some(j.clone()));
        }
        Ok(self.store.job(id)?)
    }

    /// A job, active or ended.
    pub fn job(&self, id: JobId) -> Result<Job, BuildError> {
        self.find_job(id)?.ok_or(BuildError::NotFound(Missing::Job(id)))
    }

    /// The jobs passing the filter, newest first, one page.
    pub fn list_jobs(&self, f: &JobFilter) -> Result<Vec<Job>, BuildError> {
        let page = f.page();
        let mut out = Vec::new();
        let mut skipped = 0;
        if page.limit == 0 {
            return Ok(out);
        }
        self.store.scan_jobs(&mut |job| {
            if !f.matches(&job) {
                return ControlFlow::Continue(());
            }
            if skipped < page.offset {
                skipped += 1;
                return ControlFlow::Continue(());
            }
            out.push(job);
            if out.len() >= page.limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(out)
    }

    /// The error for a refused action on job `id`: not found for an id that never existed, a conflict
    /// naming the state of one that has ended (`job 1 is already succeeded`) or why it is refused
    /// otherwise. Must not be called with the queue's lock held.
    fn refused(&self, id: JobId, e: JobError) -> BuildError {
        match e {
            JobError::NoSuchJob(_) => match self.find_job(id) {
                Ok(Some(job)) if job.state().is_final() => BuildError::Conflict {
                    job: id,
                    reason: JobError::Finished { job: id, state: job.state() },
                },
                Ok(Some(_)) => BuildError::Conflict { job: id, reason: e },
                Ok(None) => BuildError::NotFound(Missing::Job(id)),
                Err(err) => err,
            },
            other => BuildError::Conflict { job: id, reason: other },
        }
    }

    /// Cancels a waiting, queued or running job (its agent learns it at its next heartbeat) and the
    /// jobs waiting for it, transitively.
    pub fn cancel(&self, id: JobId) -> Result<Job, BuildError> {
        let now = self.now();
        let cancelled = {
            let mut q = self.queue();
            match q.cancel(id, now) {
                Ok(ended) => Ok((self.save_jobs(&ended_jobs(std::slice::from_ref(&ended)))?, ended.job)),
                Err(e) => Err(e),
            }
        };
        match cancelled {
            Ok((saved, job)) => {
                saved.wait()?;
                Ok(job)
            }
            Err(e) => Err(self.refused(id, e)),
        }
    }

    /// Queues a new attempt (forced, trigger `retry`) of a job that has ended; a job still queued or
    /// running is refused, and so is one whose target is gone.
    pub fn retry(&self, id: JobId) -> Result<Job, BuildError> {
        let old = self.job(id)?;
        if !old.state().is_final() {
            return Err(BuildError::Conflict {
                job: id,
                reason: JobError::NotEnded { job: id, state: old.state() },
            });
        }
        let target = self.target(old.target())?;
        let plans = self.plans_for(&target, vec![old.arch().clone()])?;
        let (jobs, _) = self.enqueue_all(plans, true, Trigger::Retry, self.now())?;
        jobs.into_iter().next().ok_or_else(|| StoreError::new("the retry was not queued").into())
    }

    // ---- the agent protocol ----

    /// The poll as the service takes it: the capacity capped at `max_agent_capacity`.
    fn capped(&self, req: &PollRequest) -> PollRequest {
        PollRequest { capacity: req.capacity.min(self.settings.max_agent_capacity), ..req.clone() }
    }

    /// Whether a poll for `arch` now would change anything: a lease has ended or a job of `arch` is due.
    pub fn has_work(&self, arch: &Arch) -> bool {
        self.queue().has_work(arch, self.now())
    }

    /// Whether a poll can be answered "nothing" without touching the store: nothing is due for its arch
    /// and the agent's record is fresh (same arch, capacity and key, stored less than
    /// [`AGENT_PERSIST_EVERY`] ago; its contact is noted in memory). Refused when the agent id is bound
    /// to another key. A `false` answer means: call [`BuildService::poll`].
    pub fn poll_is_idle(&self, req: &PollRequest, who: &dyn Credentials) -> Result<bool, BuildError> {
        let req = self.capped(req);
        if self.has_work(&req.arch) {
            return Ok(false);
        }
        self.saw_recently(&req, who, self.now())
    }

    /// An agent asks for work: its id is bound to the presented key if it is new (refused if bound to
    /// another accepted key), its record is stored when due, ended leases are expired, and due jobs of
    /// its arch are leased to it, as many as it asks for but never more than `max_agent_capacity` held
    /// at once.
    pub fn poll(&self, req: &PollRequest, who: &dyn Credentials) -> Result<Vec<LeasedJob>, BuildError> {
        let req = self.capped(req);
        self.see_agent(&req, who, self.now())?;
        self.lease(&req)
    }

    /// A long poll's later look, after [`BuildService::poll`] of the same request found nothing: leases
    /// what has come due since, without recording the agent again.
    pub fn poll_again(&self, req: &PollRequest) -> Result<Vec<LeasedJob>, BuildError> {
        self.lease(&self.capped(req))
    }

    fn lease(&self, req: &PollRequest) -> Result<Vec<LeasedJob>, BuildError> {
        let now = self.now();
        self.expire_leases(now)?;
        let (leased, saved) = {
            let mut q = self.queue();
            let room =
                lease_capacity(req.capacity, q.held_by(&req.agent_id), self.settings.max_agent_capacity);
            let leased = if room == 0 { Vec::new() } else { q.lease(&req.arch, room, &req.agent_id, now) };
            let saved = self.save_jobs(&leased)?;
            (leased, saved)
        };
        saved.wait()?;
        let mut out = Vec::with_capacity(leased.len());
        let mut orphans = Vec::new();
        for job in leased {
            match self.store.target(job.target())? {
                Some(target) => out.push(self.leased(job, target, now)),
                None => orphans.push(job.id()),
            }
        }
        if !orphans.is_empty() {
            // The target was removed while its job waited: the job can never be built.
            let saved = {
                let mut q = self.queue();
                let ended: Vec<Ended> = orphans.iter().filter_map(|&id| q.cancel(id, now).ok()).collect();
                self.save_jobs(&ended_jobs(&ended))?
            };
            saved.wait()?;
        }
        Ok(out)
    }

    /// What an agent gets with a leased job: the target's image and timeout or the defaults, and a
    /// heartbeat period of a third of the lease (two heartbeats may be lost before it ends).
    fn leased(&self, job: Job, target: Target, now: DateTime<Utc>) -> LeasedJob {
        LeasedJob {
            base_image: target
                .base_image
                .as_ref()
                .map_or_else(|| self.settings.base_image.clone(), |i| i.to_string()),
            timeout_secs: target.build_timeout_secs.unwrap_or(self.settings.default_timeout_secs),
            heartbeat_secs: u64::try_from(self.settings.lease.num_seconds() / 3).unwrap_or(0).max(1),
            lease_expires_at: job.lease_expires_at().unwrap_or(now),
            job,
            target,
        }
    }

    /// Renews the lease of a running job held by `agent`; returns the new expiry.
    pub fn heartbeat(
        &self,
        id: JobId,
        agent: &AgentId,
        who: &dyn Credentials,
    ) -> Result<DateTime<Utc>, BuildError> {
        let now = self.now();
        self.authorize(agent, who, now)?;
        let renewed = {
            let mut q = self.queue();
            match q.heartbeat(id, agent, now) {
                Ok(expiry) => {
                    // A heartbeat changes no state: no `jobs_changed`.
                    Ok((expiry, self.store.save_jobs(&q.get(id).cloned().into_iter().collect::<Vec<_>>())?))
                }
                Err(e) => Err(e),
            }
        };
        let (expiry, saved) = renewed.map_err(|e| self.refused(id, e))?;
        saved.wait()?;
        Ok(expiry)
    }

    /// Records how a running job held by `agent` ended; an infrastructure failure is retried as the
    /// policy allows (never a failure of the package itself).
    pub fn finish(
        &self,
        id: JobId,
        agent: &AgentId,
        outcome: Outcome,
        who: &dyn Credentials,
    ) -> Result<Job, BuildError> {
        let now = self.now();
        self.authorize(agent, who, now)?;
        let finished = {
            let mut q = self.queue();
            match q.finish(id, agent, outcome, now) {
                Ok(ended) => {
                    let saved = self.save_jobs(&ended_jobs(std::slice::from_ref(&ended)))?;
                    Ok((ended, saved))
                }
                Err(e) => Err(e),
            }
        };
        let (ended, saved) = finished.map_err(|e| self.refused(id, e))?;
        saved.wait()?;
        if ended.queued_any() {
            self.wakeups.jobs_queued();
        }
        // The agent may be idle now: it expires from its last contact on.
        if let Some(expiry) = self.settings.agent_expiry {
            let last_seen = self.agents_lock().get(agent).map(|e| e.record.info.last_seen);
            if let Some(seen) = last_seen {
                self.wakeups.tick_by(agent_expires_at(seen, expiry));
            }
        }
        Ok(ended.job)
    }

    /// Checks that `agent` may append to job `id`'s log: the job is running and leased to it.
    pub fn check_log_append(
        &self,
        id: JobId,
        agent: &AgentId,
        who: &dyn Credentials,
    ) -> Result<(), BuildError> {
        self.authorize(agent, who, self.now())?;
        let job = self.job(id)?;
        if job.state().is_final() {
            return Err(self.refused(id, JobError::Finished { job: id, state: job.state() }));
        }
        if job.state() != JobState::Running || job.agent() != Some(agent) {
            return Err(BuildError::Conflict {
                job: id,
                reason: JobError::NotRunningOn { job: id, agent: agent.clone() },
            });
        }
        Ok(())
    }

    /// What to write of an append of `incoming` bytes to a log of `current` bytes
    /// ([`plan_log_append`] with `max_log_size`).
    pub fn plan_log_append(&self, current: u64, incoming: usize) -> LogAppend {
        plan_log_append(current, incoming, self.settings.max_log_size)
    }

    /// Notes on a running job that its log reached `max_log_size` (written once).
    pub fn log_truncated(&self, id: JobId) -> Result<(), BuildError> {
        let saved = {
            let mut q = self.queue();
            let marked = q.mark_log_truncated(id);
            self.save_jobs(&marked.cloned().into_iter().collect::<Vec<_>>())?
        };
        Ok(saved.wait()?)
    }

    /// The logs to delete among `logs` (each with the time it was last written): those older than the
    /// retention (`log_retention`; none when logs are kept forever).
    ///
    /// ```
    /// # use chrono::{Duration, TimeZone, Utc};
    /// # use libvieter::builds::{BuildService, BuildSettings, ManualClock, MemoryStore};
    /// let now = Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap();
    /// let settings = BuildSettings::new(libvieter::name::Arch::new("x86_64").unwrap(), "0 3".parse().unwrap());
    /// let builds = BuildService::open(MemoryStore::default(), settings, ManualClock::new(now)).unwrap();
    /// let logs = [("1.log", now - Duration::days(31)), ("2.log", now - Duration::days(29))];
    /// assert_eq!(builds.logs_to_remove(logs), ["1.log"]);
    /// ```
    pub fn logs_to_remove<K>(&self, logs: impl IntoIterator<Item = (K, DateTime<Utc>)>) -> Vec<K> {
        let Some(max_age) = self.settings.log_retention.filter(|d| *d > Duration::zero()) else {
            return Vec::new();
        };
        let now = self.now();
        logs.into_iter()
            .filter(|(_, written)| now.signed_duration_since(*written) > max_age)
            .map(|(k, _)| k)
            .collect()
    }

    /// Every known agent, with the jobs it holds.
    pub fn agents(&self) -> Vec<AgentInfo> {
        let mut running: BTreeMap<AgentId, Vec<JobId>> = BTreeMap::new();
        for job in self.queue().jobs().filter(|j| j.state() == JobState::Running) {
            if let Some(a) = job.agent() {
                running.entry(a.clone()).or_default().push(job.id());
            }
        }
        self.agents_lock()
            .values()
            .map(|entry| {
                let mut info = entry.record.info.clone();
                info.running = running.remove(&info.id).unwrap_or_default();
                info
            })
            .collect()
    }

    /// Checks that the caller may speak for `agent` (refused if the id is bound to another accepted
    /// key); a known agent's contact is noted (in memory). Binds nothing: only a poll does.
    fn authorize(
        &self,
        agent: &AgentId,
        who: &dyn Credentials,
        now: DateTime<Utc>,
    ) -> Result<(), BuildError> {
        let mut agents = self.agents_lock();
        if let Some(entry) = agents.get_mut(agent) {
            let bound = entry.record.key;
            let check = check_agent_key(bound.as_ref(), who.key(), bound.is_some_and(|k| who.accepts(&k)));
            if !check.allowed() {
                return Err(BuildError::Forbidden { agent: agent.clone() });
            }
            if check == KeyCheck::Matches {
                entry.record.info.last_seen = now;
            }
        }
        Ok(())
    }

    /// Notes a poll of an agent whose stored record is fresh, in memory; false when the record must be
    /// stored ([`Self::see_agent`]).
    fn saw_recently(
        &self,
        req: &PollRequest,
        who: &dyn Credentials,
        now: DateTime<Utc>,
    ) -> Result<bool, BuildError> {
        let mut agents = self.agents_lock();
        let Some(entry) = agents.get_mut(&req.agent_id) else { return Ok(false) };
        let bound = entry.record.key;
        match check_agent_key(bound.as_ref(), who.key(), bound.is_some_and(|k| who.accepts(&k))) {
            KeyCheck::Refused => Err(BuildError::Forbidden { agent: req.agent_id.clone() }),
            KeyCheck::Matches
                if entry.record.info.arch == req.arch
                    && entry.record.info.capacity == req.capacity
                    && now.signed_duration_since(entry.written) < AGENT_PERSIST_EVERY =>
            {
                entry.record.info.last_seen = now;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Records a poll of an agent, binding its id to the caller's key if it is new (or its binding is
    /// stale), and stores its record when [`Self::saw_recently`] says it must be.
    fn see_agent(
        &self,
        req: &PollRequest,
        who: &dyn Credentials,
        now: DateTime<Utc>,
    ) -> Result<(), BuildError> {
        if self.saw_recently(req, who, now)? {
            return Ok(());
        }
        let record = AgentRecord {
            info: AgentInfo {
                id: req.agent_id.clone(),
                arch: req.arch.clone(),
                capacity: req.capacity,
                last_seen: now,
                running: Vec::new(),
            },
            key: Some(*who.key()),
        };
        {
            // Checked again under the same lock as the insert: of two first polls of an id with
            // different keys, the second is refused.
            let mut agents = self.agents_lock();
            match agents.get(&req.agent_id) {
                Some(known) => {
                    let bound = known.record.key;
                    if check_agent_key(bound.as_ref(), who.key(), bound.is_some_and(|k| who.accepts(&k)))
                        == KeyCheck::Refused
                    {
                        return Err(BuildError::Forbidden { agent: req.agent_id.clone() });
                    }
                }
                None => {
                    let of_key = agents.values().filter(|e| e.record.key.as_ref() == Some(who.key())).count();
                    if of_key >= self.settings.max_agents_per_key {
                        return Err(BuildError::TooManyAgents { limit: self.settings.max_agents_per_key });
                    }
                }
            }
            agents.insert(req.agent_id.clone(), AgentEntry { record: record.clone(), written: now });
        }
        if let Some(expiry) = self.settings.agent_expiry {
            self.wakeups.tick_by(agent_expires_at(now, expiry));
        }
        Ok(self.store.save_agent(&record)?)
    }

    // ---- the tick ----

    /// Turns ended leases into lost jobs (and their retries), stored.
    fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<Ended>, BuildError> {
        let (ended, saved) = {
            let mut q = self.queue();
            let ended = q.expire(now);
            let saved = self.save_jobs(&ended_jobs(&ended))?;
            (ended, saved)
        };
        saved.wait()?;
        if !ended.is_empty() {
            self.wakeups.jobs_queued();
        }
        Ok(ended)
    }

    /// Forgets agents idle past `agent_expiry` that hold no job. Returns them and when the next one
    /// would expire.
    fn expire_agents(&self, now: DateTime<Utc>) -> Result<(Vec<AgentId>, Option<DateTime<Utc>>), BuildError> {
        let Some(expiry) = self.settings.agent_expiry else { return Ok((Vec::new(), None)) };
        let holding: BTreeSet<AgentId> = self
            .queue()
            .jobs()
            .filter(|j| j.state() == JobState::Running)
            .filter_map(|j| j.agent().cloned())
            .collect();
        let mut removed = Vec::new();
        let mut next: Option<DateTime<Utc>> = None;
        self.agents_lock().retain(|id, entry| {
            let busy = holding.contains(id);
            let seen = entry.record.info.last_seen;
            if agent_expired(seen, now, Some(expiry), busy) {
                removed.push(id.clone());
                return false;
            }
            if !busy {
                let at = agent_expires_at(seen, expiry);
                next = Some(next.map_or(at, |n| n.min(at)));
            }
            true
        });
        if !removed.is_empty() {
            self.store.remove_agents(&removed)?;
        }
        Ok((removed, next))
    }

    /// Does what is due now: ended leases become lost jobs (retried per policy), scheduled runs that
    /// came due are queued (a run missed while the service was down runs once), idle agents past their
    /// expiry are forgotten. Says when to tick again. (Old logs: [`BuildService::logs_to_remove`].)
    pub fn tick(&self) -> Result<TickReport, BuildError> {
        self.tick_with(&mut NoCheck)
    }

    /// [`BuildService::tick`], with the due scheduled runs first given to `check`: the unchanged ones
    /// are recorded `skipped` (see [`ChangeCheck`]), the others queued with the check's reason.
    pub fn tick_with(&self, check: &mut dyn ChangeCheck) -> Result<TickReport, BuildError> {
        let now = self.now();
        let lost = self.expire_leases(now)?;
        let targets = self.store.targets()?;
        let last_runs = self.store.last_runs()?;
        let tick = due_runs(
            targets.iter(),
            |t, a| last_runs.get(&(t, a.clone())).copied(),
            &self.settings.global_schedule,
            self.settings.tz,
            now,
        );
        let mut queued = Vec::new();
        let mut unchanged = Vec::new();
        let mut refused = Vec::new();
        if !tick.due.is_empty() {
            let pairs: Vec<(TargetId, Arch)> = tick.due.iter().map(|d| (d.target, d.arch.clone())).collect();
            self.store.record_runs(&pairs, now)?;
            let (to_queue, skipped) = self.check_changes(&targets, pairs, check, now)?;
            unchanged = skipped;
            let by_id: BTreeMap<TargetId, &Target> = targets.iter().map(|t| (t.id, t)).collect();
            let mut lookup = |id: TargetId| Ok(by_id.get(&id).map(|t| (*t).clone()));
            let mut plans = Vec::new();
            for (t, a, reason) in to_queue {
                let plan = match by_id.get(&t) {
                    Some(target) if !target.needs.is_empty() => match Self::plan(target, &a, &mut lookup) {
                        Ok(plan) => plan,
                        Err(BuildError::Invalid(e)) => {
                            refused.push(e);
                            continue;
                        }
                        Err(e) => return Err(e),
                    },
                    _ => Plan::single(t, a),
                };
                plans.push(Plan { reason, ..plan });
            }
            // A pair whose last build still waits is covered by it: only new jobs are reported.
            queued = self.enqueue_all(plans, false, Trigger::Schedule, now)?.1;
        }
        let (forgotten, next_agent_expiry) = self.expire_agents(now)?;
        let next_queue_event = self.queue().next_event(now);
        let cap = now + self.settings.lease.min(MAX_TICK);
        let next = [tick.next_wakeup, next_queue_event, next_agent_expiry, Some(cap)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(cap);
        Ok(TickReport { lost, queued, unchanged, refused, forgotten, next })
    }
}
