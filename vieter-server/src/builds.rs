//! Build targets and jobs: the server side of the build system.
//!
//! The active jobs live in a [`JobQueue`] (libvieter's pure model: leasing, heartbeats, expiry, retries)
//! behind a mutex; every change is written through to `builds.redb` before the request is answered, so a
//! restart reloads queued and running jobs with their leases. Finished jobs stay in redb as history.
//! A tick task expires leases (lost → retried per policy), queues scheduled runs and forgets idle agents.
//!
//! Agents are semi-trusted: whoever holds an agent key may speak the protocol. So an agent id belongs to
//! the key it first used (its SHA-256 digest is kept with the agent's record; another accepted key
//! naming that id is refused with 403), a job is only renewed, finished or logged by the agent holding
//! its lease, one agent holds at most `max_agent_capacity` jobs, a job's log stops at `max_log_size`, and
//! agents idle for `agent_expiry` are forgotten. The rules are libvieter's ([`libvieter::scheduler`],
//! [`libvieter::job::plan_log_append`]); this module does the I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use libvieter::api::{AgentInfo, LeasedJob, PollRequest};
use libvieter::job::{
    log_truncation_marker, plan_log_append, AgentId, Job, JobError, JobId, JobState, Outcome, RetryPolicy,
    Trigger,
};
use libvieter::name::Arch;
use libvieter::schedule::Schedule;
use libvieter::scheduler::{
    agent_expired, agent_expires_at, check_agent_key, due_runs, lease_capacity, Ended, JobQueue, KeyCheck,
    KeyDigest,
};
use libvieter::target::{NewTarget, Target, TargetId, TargetPatch};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::auth::Caller;
use crate::error::ApiError;

const TARGETS: TableDefinition<u64, &[u8]> = TableDefinition::new("targets");
const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
const LAST_RUNS: TableDefinition<&str, i64> = TableDefinition::new("last_runs");
const AGENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("agents");

/// Settings of the build system.
#[derive(Debug, Clone)]
pub struct BuildSettings {
    pub tz: chrono_tz::Tz,
    pub global_schedule: Schedule,
    pub base_image: String,
    pub default_timeout_secs: u64,
    pub lease: Duration,
    pub retry: RetryPolicy,
    pub max_log_age_days: u64,
    pub default_arch: Arch,
    /// Largest log of one job in bytes (past it: a marker line, the rest discarded).
    pub max_log_size: u64,
    /// Most jobs one agent holds at once (a poll's `capacity` is capped by what is left of it).
    pub max_agent_capacity: u32,
    /// Agents idle (no job, no contact) this long are forgotten; `None`: never.
    pub agent_expiry: Option<Duration>,
}

fn db_err(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal("build database", e)
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(v).map_err(db_err)
}

fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(b).map_err(db_err)
}

/// The filters of the listings are query parameters whose shapes are libvieter's.
pub use libvieter::api::{JobFilter, TargetFilter};

/// Group commit of job records. Whoever saves jobs hands them to one writer thread, which writes all it
/// was handed meanwhile in one durable transaction: many agents polling at once share a commit (and its
/// fsync) instead of queueing for one each. Records are written in the order they were handed over, and
/// they are handed over under the queue's lock, so an older state of a job never overwrites a newer one.
struct JobWriter {
    tx: std::sync::mpsc::Sender<JobBatch>,
}

type JobBatch = (Vec<(u64, Vec<u8>)>, std::sync::mpsc::SyncSender<Result<(), String>>);

/// Job records handed to the [`JobWriter`]; [`Pending::wait`] returns once they are durable.
#[must_use]
struct Pending(Option<std::sync::mpsc::Receiver<Result<(), String>>>);

impl Pending {
    fn wait(self) -> Result<(), ApiError> {
        match self.0 {
            None => Ok(()),
            Some(rx) => rx.recv().map_err(|_| db_err("the job writer stopped"))?.map_err(db_err),
        }
    }
}

impl JobWriter {
    fn start(db: Arc<redb::Database>) -> Result<JobWriter, ApiError> {
        let (tx, rx) = std::sync::mpsc::channel::<JobBatch>();
        std::thread::Builder::new()
            .name("job-writer".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    batch.extend(rx.try_iter());
                    let result = Self::write(&db, &batch).map_err(|e| e.to_string());
                    for (_, reply) in batch {
                        let _ = reply.send(result.clone());
                    }
                }
            })
            .map_err(db_err)?;
        Ok(JobWriter { tx })
    }

    fn write(db: &redb::Database, batch: &[JobBatch]) -> Result<(), redb::Error> {
        let txn = db.begin_write()?;
        {
            let mut t = txn.open_table(JOBS)?;
            for (id, bytes) in batch.iter().flat_map(|(records, _)| records) {
                t.insert(*id, bytes.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn submit<'a>(&self, jobs: impl IntoIterator<Item = &'a Job>) -> Result<Pending, ApiError> {
        let records =
            jobs.into_iter().map(|j| Ok((j.id.0, encode(j)?))).collect::<Result<Vec<_>, ApiError>>()?;
        if records.is_empty() {
            return Ok(Pending(None));
        }
        let (reply, rx) = std::sync::mpsc::sync_channel(1);
        self.tx.send((records, reply)).map_err(|_| db_err("the job writer stopped"))?;
        Ok(Pending(Some(rx)))
    }
}

fn ended_jobs(ended: &[Ended]) -> impl Iterator<Item = &Job> {
    ended.iter().flat_map(|e| std::iter::once(&e.job).chain(e.retry.as_ref()))
}

/// The build system's state.
pub struct Builds {
    db: Arc<redb::Database>,
    writer: JobWriter,
    queue: Mutex<JobQueue>,
    /// Wakes long-polling agents when jobs are queued.
    pub notify: tokio::sync::Notify,
    /// Wakes the tick before its planned time, and that time: an agent may expire sooner (only with an
    /// `agent_expiry` shorter than the tick's period).
    tick_wake: tokio::sync::Notify,
    next_tick: Mutex<DateTime<Utc>>,
    pub settings: BuildSettings,
    logs: PathBuf,
    /// Every known agent (loaded from redb at start), with the key it is bound to and when its record
    /// was last written to redb. A poll only writes when the agent is new, changed its arch, capacity or
    /// key, or was last written a while ago: polls stay cheap, and after a restart `last_seen` is at most
    /// [`AGENT_PERSIST_EVERY`] old.
    agents: Mutex<BTreeMap<AgentId, AgentEntry>>,
    /// Appends to one job's log are serialised (size check, then write), by job id modulo the shards.
    log_locks: [Mutex<()>; LOG_LOCK_SHARDS],
}

const LOG_LOCK_SHARDS: usize = 16;

/// An agent as kept in memory.
#[derive(Debug, Clone)]
struct AgentEntry {
    info: AgentInfo,
    /// The digest of the key the id is bound to (`None`: a record from before keys were bound).
    key: Option<KeyDigest>,
    /// When the record was last written to redb.
    written: DateTime<Utc>,
}

/// An agent's record in redb: what the API shows, plus the digest of its key (never shown).
#[derive(Serialize, serde::Deserialize)]
struct StoredAgent {
    #[serde(flatten)]
    info: AgentInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_sha256: Option<String>,
}

impl StoredAgent {
    fn of(entry: &AgentEntry) -> StoredAgent {
        StoredAgent { info: entry.info.clone(), key_sha256: entry.key.map(hex::encode) }
    }

    fn into_entry(self) -> AgentEntry {
        let key = self
            .key_sha256
            .and_then(|h| hex::decode(h).ok())
            .and_then(|bytes| KeyDigest::try_from(bytes.as_slice()).ok());
        AgentEntry { info: self.info, key, written: DateTime::<Utc>::MIN_UTC }
    }
}

/// The 403 of a request naming an agent id bound to another key.
fn bound_elsewhere(agent: &AgentId) -> ApiError {
    ApiError::forbidden(format!("agent id {agent} is bound to another key: use the key it registered with"))
}

/// How stale the stored `last_seen` of a polling agent may get.
const AGENT_PERSIST_EVERY: Duration = Duration::seconds(30);

impl Builds {
    /// Opens `builds.redb` in `data_dir` and reloads the active jobs.
    pub fn open(data_dir: &Path, settings: BuildSettings) -> Result<Builds, ApiError> {
        let logs = data_dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(db_err)?;
        let db = redb::Database::create(data_dir.join("builds.redb")).map_err(db_err)?;
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(TARGETS).map_err(db_err)?;
        txn.open_table(JOBS).map_err(db_err)?;
        txn.open_table(COUNTERS).map_err(db_err)?;
        txn.open_table(LAST_RUNS).map_err(db_err)?;
        txn.open_table(AGENTS).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        let mut queue = JobQueue::new(settings.retry.clone(), settings.lease);
        let mut max_id = 0;
        let mut reloaded = 0;
        {
            let read = db.begin_read().map_err(db_err)?;
            let jobs = read.open_table(JOBS).map_err(db_err)?;
            for row in jobs.iter().map_err(db_err)? {
                let (k, v) = row.map_err(db_err)?;
                max_id = max_id.max(k.value());
                let job: Job = decode(v.value())?;
                if !job.state.is_final() {
                    reloaded += 1;
                    queue.insert(job).map_err(db_err)?;
                }
            }
        }
        queue.set_next_id(JobId(max_id + 1));
        tracing::info!(reloaded, "active jobs reloaded");
        let mut agents = BTreeMap::new();
        {
            let read = db.begin_read().map_err(db_err)?;
            let t = read.open_table(AGENTS).map_err(db_err)?;
            for row in t.iter().map_err(db_err)? {
                let stored: StoredAgent = decode(row.map_err(db_err)?.1.value())?;
                agents.insert(stored.info.id.clone(), stored.into_entry());
            }
        }
        let db = Arc::new(db);
        Ok(Builds {
            writer: JobWriter::start(db.clone())?,
            db,
            queue: Mutex::new(queue),
            notify: tokio::sync::Notify::new(),
            tick_wake: tokio::sync::Notify::new(),
            next_tick: Mutex::new(DateTime::<Utc>::MIN_UTC),
            settings,
            logs,
            agents: Mutex::new(agents),
            log_locks: Default::default(),
        })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, JobQueue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- targets ----

    pub fn create_target(&self, input: &NewTarget) -> Result<Target, ApiError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let target = {
            let mut counters = txn.open_table(COUNTERS).map_err(db_err)?;
            let id = counters.get("target").map_err(db_err)?.map(|v| v.value()).unwrap_or(0) + 1;
            let target = input
                .validate(TargetId(id), &self.settings.default_arch)
                .map_err(|e| ApiError::bad_request(format!("invalid target: {e}")))?;
            counters.insert("target", id).map_err(db_err)?;
            txn.open_table(TARGETS)
                .map_err(db_err)?
                .insert(id, encode(&target)?.as_slice())
                .map_err(db_err)?;
            // A new target waits for its schedule instead of building at once.
            let mut last = txn.open_table(LAST_RUNS).map_err(db_err)?;
            for arch in &target.arch {
                last.insert(format!("{id}/{arch}").as_str(), Utc::now().timestamp()).map_err(db_err)?;
            }
            target
        };
        txn.commit().map_err(db_err)?;
        Ok(target)
    }

    pub fn target(&self, id: TargetId) -> Result<Option<Target>, ApiError> {
        let read = self.db.begin_read().map_err(db_err)?;
        let t = read.open_table(TARGETS).map_err(db_err)?;
        let found = t.get(id.0).map_err(db_err)?;
        found.map(|v| decode(v.value())).transpose()
    }

    pub fn targets(&self) -> Result<Vec<Target>, ApiError> {
        let read = self.db.begin_read().map_err(db_err)?;
        let t = read.open_table(TARGETS).map_err(db_err)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(db_err)? {
            out.push(decode(row.map_err(db_err)?.1.value())?);
        }
        Ok(out)
    }

    pub fn list_targets(&self, f: &TargetFilter) -> Result<Vec<Target>, ApiError> {
        let matches = f.matcher();
        Ok(f.page().apply(self.targets()?.into_iter().filter(|t| matches(t))).collect())
    }

    pub fn patch_target(&self, id: TargetId, patch: &TargetPatch) -> Result<Target, ApiError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let updated = {
            let mut t = txn.open_table(TARGETS).map_err(db_err)?;
            let current: Target = match t.get(id.0).map_err(db_err)? {
                Some(v) => decode(v.value())?,
                None => return Err(ApiError::not_found(format!("target {id} not found"))),
            };
            let updated =
                patch.apply(&current).map_err(|e| ApiError::bad_request(format!("invalid target: {e}")))?;
            t.insert(id.0, encode(&updated)?.as_slice()).map_err(db_err)?;
            updated
        };
        txn.commit().map_err(db_err)?;
        Ok(updated)
    }

    /// Deletes a target and cancels its active jobs.
    pub fn delete_target(&self, id: TargetId) -> Result<(), ApiError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let existed = txn.open_table(TARGETS).map_err(db_err)?.remove(id.0).map_err(db_err)?.is_some();
        txn.commit().map_err(db_err)?;
        if !existed {
            return Err(ApiError::not_found(format!("target {id} not found")));
        }
        let now = Utc::now();
        let saved = {
            let mut q = self.queue();
            let ids: Vec<JobId> = q.jobs().filter(|j| j.target == id).map(|j| j.id).collect();
            let cancelled: Vec<Job> = ids.into_iter().filter_map(|jid| q.cancel(jid, now).ok()).collect();
            self.writer.submit(&cancelled)?
        };
        saved.wait()
    }

    // ---- jobs ----

    /// Queues manual builds of a target (one per requested arch).
    pub fn queue_build(
        &self,
        target: TargetId,
        arch: Option<&Arch>,
        force: bool,
    ) -> Result<Vec<Job>, ApiError> {
        let t =
            self.target(target)?.ok_or_else(|| ApiError::not_found(format!("target {target} not found")))?;
        let arches: Vec<Arch> = match arch {
            Some(a) if t.arch.contains(a) => vec![a.clone()],
            Some(a) => return Err(ApiError::bad_request(format!("target {target} is not built for {a}"))),
            None => t.arch.clone(),
        };
        let jobs = self.enqueue_all(arches.iter().map(|a| (target, a.clone())), force, Trigger::Manual)?;
        Ok(jobs)
    }

    fn enqueue_all(
        &self,
        pairs: impl IntoIterator<Item = (TargetId, Arch)>,
        force: bool,
        trigger: Trigger,
    ) -> Result<Vec<Job>, ApiError> {
        let now = Utc::now();
        let (jobs, saved) = {
            let mut q = self.queue();
            let jobs: Vec<Job> = pairs
                .into_iter()
                .filter_map(|(t, a)| {
                    let id = q.enqueue(t, &a, force, trigger, now).job();
                    q.get(id).cloned()
                })
                .collect();
            let saved = self.writer.submit(&jobs)?;
            (jobs, saved)
        };
        saved.wait()?;
        self.notify.notify_waiters();
        Ok(jobs)
    }

    pub fn job(&self, id: JobId) -> Result<Option<Job>, ApiError> {
        if let Some(j) = self.queue().get(id) {
            return Ok(Some(j.clone()));
        }
        let read = self.db.begin_read().map_err(db_err)?;
        let t = read.open_table(JOBS).map_err(db_err)?;
        let found = t.get(id.0).map_err(db_err)?;
        found.map(|v| decode(v.value())).transpose()
    }

    /// Jobs, newest first.
    pub fn list_jobs(&self, f: &JobFilter) -> Result<Vec<Job>, ApiError> {
        let read = self.db.begin_read().map_err(db_err)?;
        let t = read.open_table(JOBS).map_err(db_err)?;
        let mut out = Vec::new();
        let mut skipped = 0;
        let page = f.page();
        for row in t.iter().map_err(db_err)?.rev() {
            let job: Job = decode(row.map_err(db_err)?.1.value())?;
            if !f.matches(&job) {
                continue;
            }
            if skipped < page.offset {
                skipped += 1;
                continue;
            }
            if out.len() >= page.limit {
                break;
            }
            out.push(job);
        }
        Ok(out)
    }

    /// The answer to a refused action on job `id`: 404 for an id that never existed, 409 naming the state
    /// of one that has ended (`job 1 is already succeeded`) or why it is refused otherwise.
    ///
    /// Must not be called with the queue's lock held.
    fn refused(&self, id: JobId, e: JobError) -> ApiError {
        let conflict = |e: JobError| ApiError::new(warp::http::StatusCode::CONFLICT, e.to_string());
        match e {
            JobError::NoSuchJob(_) => match self.job(id) {
                Ok(Some(job)) if job.state.is_final() => {
                    conflict(JobError::Finished { job: id, state: job.state })
                }
                Ok(Some(_)) => conflict(e),
                Ok(None) => ApiError::not_found(format!("job {id} not found")),
                Err(db) => db,
            },
            other => conflict(other),
        }
    }

    pub fn cancel(&self, id: JobId) -> Result<Job, ApiError> {
        let cancelled = {
            let mut q = self.queue();
            match q.cancel(id, Utc::now()) {
                Ok(job) => Ok((self.writer.submit([&job])?, job)),
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

    /// Queues a new attempt of a finished job.
    pub fn retry(&self, id: JobId) -> Result<Job, ApiError> {
        let old = self.job(id)?.ok_or_else(|| ApiError::not_found(format!("job {id} not found")))?;
        if !old.state.is_final() {
            return Err(ApiError::new(
                warp::http::StatusCode::CONFLICT,
                format!("job {id} is {}: it has not ended", old.state),
            ));
        }
        let jobs = self.enqueue_all([(old.target, old.arch.clone())], true, Trigger::Retry)?;
        jobs.into_iter().next().ok_or_else(|| ApiError::internal("retrying", "nothing was queued"))
    }

    /// Leases due jobs to an agent; with `wait`, waits up to that long for one.
    ///
    /// The agent id must be unbound or bound to the caller's key (else 403, and nothing changes); the
    /// capacity is capped by `max_agent_capacity`. The database work runs on the blocking pool; only the
    /// wait is async.
    pub async fn poll(
        self: &Arc<Self>,
        req: PollRequest,
        caller: Caller,
    ) -> Result<Vec<LeasedJob>, ApiError> {
        let deadline =
            tokio::time::Instant::now() + std::time::Duration::from_secs(req.wait.unwrap_or(0).min(120));
        let capacity = req.capacity.min(self.settings.max_agent_capacity);
        let req = Arc::new(PollRequest { capacity, ..req });
        let caller = Arc::new(caller);
        let mut first = true;
        loop {
            let notified = self.notify.notified();
            // An idle poll of a known agent changes nothing: answered here, without the blocking pool.
            let work = self.queue().has_work(&req.arch, Utc::now());
            if !work && (!first || self.saw_recently(&req, &caller)?) {
                first = false;
            } else {
                let (builds, r, c) = (self.clone(), req.clone(), caller.clone());
                let leased = tokio::task::spawn_blocking(move || builds.try_lease(&r, &c, first))
                    .await
                    .map_err(|e| ApiError::internal("a blocking task", e))??;
                first = false;
                if !leased.is_empty() {
                    return Ok(leased);
                }
            }
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return Ok(Vec::new());
            }
            // Woken by new jobs, or re-check at least every second (retries whose back-off ends).
            let _ = tokio::time::timeout(remaining.min(std::time::Duration::from_secs(1)), notified).await;
        }
    }

    /// One attempt of a poll: records the agent (on the first), expires leases, leases what is due (no
    /// more than the agent may still hold).
    fn try_lease(&self, req: &PollRequest, caller: &Caller, first: bool) -> Result<Vec<LeasedJob>, ApiError> {
        if first {
            self.see_agent(req, caller)?;
        }
        self.expire_leases()?;
        let (leased, saved) = {
            let mut q = self.queue();
            let room =
                lease_capacity(req.capacity, q.held_by(&req.agent_id), self.settings.max_agent_capacity);
            let leased =
                if room == 0 { Vec::new() } else { q.lease(&req.arch, room, &req.agent_id, Utc::now()) };
            let saved = self.writer.submit(&leased)?;
            (leased, saved)
        };
        saved.wait()?;
        if leased.is_empty() {
            return Ok(Vec::new());
        }
        leased.into_iter().map(|job| self.leased(job)).collect()
    }

    fn leased(&self, job: Job) -> Result<LeasedJob, ApiError> {
        let target = self
            .target(job.target)?
            .ok_or_else(|| ApiError::internal("leasing", format!("target {} is gone", job.target)))?;
        let lease_expires_at = job.lease_expires_at.unwrap_or_else(Utc::now);
        Ok(LeasedJob {
            base_image: target
                .base_image
                .as_ref()
                .map(|i| i.to_string())
                .unwrap_or_else(|| self.settings.base_image.clone()),
            timeout_secs: target.build_timeout_secs.unwrap_or(self.settings.default_timeout_secs),
            heartbeat_secs: (self.settings.lease.num_seconds() / 3).max(1) as u64,
            lease_expires_at,
            job,
            target,
        })
    }

    /// Makes the tick run by `at` (when it planned to run later).
    fn tick_by(&self, at: DateTime<Utc>) {
        if at < *self.next_tick.lock().unwrap_or_else(|p| p.into_inner()) {
            self.tick_wake.notify_one();
        }
    }

    /// An agent may have become idle: makes the tick run by the time it would expire.
    fn tick_by_expiry_of(&self, agent: &AgentId) {
        let Some(expiry) = self.settings.agent_expiry else { return };
        let last_seen = self.agents_lock().get(agent).map(|e| e.info.last_seen);
        if let Some(seen) = last_seen {
            self.tick_by(agent_expires_at(seen, expiry));
        }
    }

    fn agents_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<AgentId, AgentEntry>> {
        self.agents.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks that the caller's key may speak for `agent` (403 if the id is bound to another accepted
    /// key); a known agent's last contact is noted (in memory). Binds nothing: only a poll does.
    fn authorize(&self, agent: &AgentId, caller: &Caller) -> Result<(), ApiError> {
        let mut agents = self.agents_lock();
        if let Some(entry) = agents.get_mut(agent) {
            let check = check_agent_key(
                entry.key.as_ref(),
                &caller.key,
                entry.key.is_some_and(|k| caller.accepts(&k)),
            );
            if !check.allowed() {
                return Err(bound_elsewhere(agent));
            }
            if check == KeyCheck::Matches {
                entry.info.last_seen = Utc::now();
            }
        }
        Ok(())
    }

    /// Notes a poll of an agent whose stored record is fresh (same arch, capacity and key, written less
    /// than [`AGENT_PERSIST_EVERY`] ago), in memory; false when the record must be written
    /// ([`Self::see_agent`]); 403 when the id is bound to another key.
    fn saw_recently(&self, req: &PollRequest, caller: &Caller) -> Result<bool, ApiError> {
        let now = Utc::now();
        let mut agents = self.agents_lock();
        let Some(entry) = agents.get_mut(&req.agent_id) else { return Ok(false) };
        let check =
            check_agent_key(entry.key.as_ref(), &caller.key, entry.key.is_some_and(|k| caller.accepts(&k)));
        match check {
            KeyCheck::Refused => Err(bound_elsewhere(&req.agent_id)),
            KeyCheck::Matches
                if entry.info.arch == req.arch
                    && entry.info.capacity == req.capacity
                    && now - entry.written < AGENT_PERSIST_EVERY =>
            {
                entry.info.last_seen = now;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Records a poll of an agent, binding its id to the caller's key if it is new (or its binding is
    /// stale), and writes its record when [`Self::saw_recently`] says it must be.
    fn see_agent(&self, req: &PollRequest, caller: &Caller) -> Result<(), ApiError> {
        if self.saw_recently(req, caller)? {
            return Ok(());
        }
        let now = Utc::now();
        let entry = AgentEntry {
            info: AgentInfo {
                id: req.agent_id.clone(),
                arch: req.arch.clone(),
                capacity: req.capacity,
                last_seen: now,
                running: Vec::new(),
            },
            key: Some(caller.key),
            written: now,
        };
        let record = encode(&StoredAgent::of(&entry))?;
        {
            // Checked again under the same lock as the insert: of two first polls of an id with
            // different keys, the second is refused.
            let mut agents = self.agents_lock();
            if let Some(known) = agents.get(&req.agent_id) {
                let accepted = known.key.is_some_and(|k| caller.accepts(&k));
                match check_agent_key(known.key.as_ref(), &caller.key, accepted) {
                    KeyCheck::Refused => return Err(bound_elsewhere(&req.agent_id)),
                    KeyCheck::Stale => {
                        tracing::warn!(agent = %req.agent_id, "agent id taken over by another key (its key is no longer accepted)")
                    }
                    KeyCheck::Unbound | KeyCheck::Matches => {}
                }
            }
            agents.insert(req.agent_id.clone(), entry);
        }
        if let Some(expiry) = self.settings.agent_expiry {
            self.tick_by(agent_expires_at(now, expiry));
        }
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(AGENTS)
            .map_err(db_err)?
            .insert(req.agent_id.as_str(), record.as_slice())
            .map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    pub fn agents(&self) -> Result<Vec<AgentInfo>, ApiError> {
        let mut running: BTreeMap<AgentId, Vec<JobId>> = BTreeMap::new();
        for job in self.queue().jobs().filter(|j| j.state == JobState::Running) {
            if let Some(a) = &job.agent {
                running.entry(a.clone()).or_default().push(job.id);
            }
        }
        let agents = self.agents_lock();
        Ok(agents
            .values()
            .map(|entry| {
                let mut info = entry.info.clone();
                info.running = running.remove(&info.id).unwrap_or_default();
                info
            })
            .collect())
    }

    pub fn heartbeat(&self, id: JobId, agent: &AgentId, caller: &Caller) -> Result<DateTime<Utc>, ApiError> {
        self.authorize(agent, caller)?;
        let renewed = {
            let mut q = self.queue();
            match q.heartbeat(id, agent, Utc::now()) {
                Ok(expiry) => Ok((expiry, self.writer.submit(q.get(id))?)),
                Err(e) => Err(e),
            }
        };
        let (expiry, saved) = renewed.map_err(|e| self.refused(id, e))?;
        saved.wait()?;
        Ok(expiry)
    }

    pub fn finish(
        &self,
        id: JobId,
        agent: &AgentId,
        outcome: Outcome,
        caller: &Caller,
    ) -> Result<Job, ApiError> {
        self.authorize(agent, caller)?;
        let finished = {
            let mut q = self.queue();
            match q.finish(id, agent, outcome, Utc::now()) {
                Ok(ended) => {
                    let saved = self.writer.submit(ended_jobs(std::slice::from_ref(&ended)))?;
                    Ok((ended, saved))
                }
                Err(e) => Err(e),
            }
        };
        let (ended, saved) = finished.map_err(|e| self.refused(id, e))?;
        saved.wait()?;
        if ended.retry.is_some() {
            self.notify.notify_waiters();
        }
        self.tick_by_expiry_of(agent);
        Ok(ended.job)
    }

    // ---- logs ----

    fn log_path(&self, id: JobId) -> PathBuf {
        self.logs.join(format!("{}.log", id.0))
    }

    /// Appends to a running job's log; only the agent holding the lease may. The log keeps at most
    /// `max_log_size` bytes: the append that crosses it writes what fits and the truncation marker, and
    /// marks the job; later appends are accepted and discarded, so the build goes on.
    pub fn append_log(
        &self,
        id: JobId,
        agent: &AgentId,
        caller: &Caller,
        bytes: &[u8],
    ) -> Result<(), ApiError> {
        self.authorize(agent, caller)?;
        let job = self.job(id)?.ok_or_else(|| ApiError::not_found(format!("job {id} not found")))?;
        if job.state.is_final() {
            return Err(self.refused(id, JobError::Finished { job: id, state: job.state }));
        }
        if job.state != JobState::Running || job.agent.as_ref() != Some(agent) {
            return Err(ApiError::new(
                warp::http::StatusCode::CONFLICT,
                format!("job {id} is not running on agent {agent}"),
            ));
        }
        let shard = usize::try_from(id.0 % LOG_LOCK_SHARDS as u64).unwrap_or(0);
        let truncated = {
            let _guard = self.log_locks[shard].lock().unwrap_or_else(|p| p.into_inner());
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_path(id))
                .map_err(|e| ApiError::internal("opening a build log", e))?;
            let size = f.metadata().map_err(|e| ApiError::internal("reading a build log's size", e))?.len();
            let max = self.settings.max_log_size;
            let plan = plan_log_append(size, bytes.len(), max);
            let mut out = bytes.get(..plan.keep).unwrap_or(bytes).to_vec();
            if plan.truncate {
                out.extend_from_slice(log_truncation_marker(max).as_bytes());
            }
            if !out.is_empty() {
                f.write_all(&out).map_err(|e| ApiError::internal("writing a build log", e))?;
            }
            plan.truncate
        };
        if truncated {
            tracing::warn!(job = %id, max = self.settings.max_log_size, "build log truncated (max_log_size)");
            let saved = {
                let mut q = self.queue();
                let marked = q.mark_log_truncated(id);
                self.writer.submit(marked)?
            };
            saved.wait()?;
        }
        Ok(())
    }

    /// The log file of a job (it may not exist yet).
    pub fn log_file(&self, id: JobId) -> PathBuf {
        self.log_path(id)
    }

    /// Forgets agents idle past `agent_expiry` that hold no job, in memory and in redb. Returns when the
    /// next one would expire.
    fn expire_agents(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, ApiError> {
        let Some(expiry) = self.settings.agent_expiry else { return Ok(None) };
        let holding: BTreeSet<AgentId> = self
            .queue()
            .jobs()
            .filter(|j| j.state == JobState::Running)
            .filter_map(|j| j.agent.clone())
            .collect();
        let mut removed = Vec::new();
        let mut next: Option<DateTime<Utc>> = None;
        {
            let mut agents = self.agents_lock();
            agents.retain(|id, entry| {
                let busy = holding.contains(id);
                if agent_expired(entry.info.last_seen, now, Some(expiry), busy) {
                    removed.push(id.clone());
                    return false;
                }
                if !busy {
                    let at = agent_expires_at(entry.info.last_seen, expiry);
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
                true
            });
        }
        if !removed.is_empty() {
            let txn = self.db.begin_write().map_err(db_err)?;
            {
                let mut t = txn.open_table(AGENTS).map_err(db_err)?;
                for id in &removed {
                    t.remove(id.as_str()).map_err(db_err)?;
                }
            }
            txn.commit().map_err(db_err)?;
            tracing::info!(removed = removed.len(), "idle agents forgotten (agent_expiry_secs)");
        }
        Ok(next)
    }

    // ---- the tick ----

    /// Turns ended leases into lost jobs (and their retries), persisted.
    fn expire_leases(&self) -> Result<(), ApiError> {
        let (ended, saved) = {
            let mut q = self.queue();
            let ended = q.expire(Utc::now());
            let saved = self.writer.submit(ended_jobs(&ended))?;
            (ended, saved)
        };
        saved.wait()?;
        if !ended.is_empty() {
            for e in &ended {
                tracing::warn!(job = %e.job.id, agent = ?e.job.agent, retry = ?e.retry.as_ref().map(|r| r.id), "lease expired: job lost");
            }
            self.notify.notify_waiters();
        }
        Ok(())
    }

    /// Expires leases, queues due scheduled runs, removes old logs, forgets idle agents. Returns when to
    /// tick again.
    pub fn tick(&self) -> Result<DateTime<Utc>, ApiError> {
        let now = Utc::now();
        self.expire_leases()?;
        let targets = self.targets()?;
        let last_runs: BTreeMap<String, i64> = {
            let read = self.db.begin_read().map_err(db_err)?;
            let t = read.open_table(LAST_RUNS).map_err(db_err)?;
            let mut m = BTreeMap::new();
            for row in t.iter().map_err(db_err)? {
                let (k, v) = row.map_err(db_err)?;
                m.insert(k.value().to_owned(), v.value());
            }
            m
        };
        let tick = due_runs(
            targets.iter(),
            |t, a| last_runs.get(&format!("{t}/{a}")).and_then(|s| DateTime::from_timestamp(*s, 0)),
            &self.settings.global_schedule,
            self.settings.tz,
            now,
        );
        if !tick.due.is_empty() {
            let pairs: Vec<(TargetId, Arch)> = tick.due.iter().map(|d| (d.target, d.arch.clone())).collect();
            let txn = self.db.begin_write().map_err(db_err)?;
            {
                let mut t = txn.open_table(LAST_RUNS).map_err(db_err)?;
                for (target, arch) in &pairs {
                    t.insert(format!("{target}/{arch}").as_str(), now.timestamp()).map_err(db_err)?;
                }
            }
            txn.commit().map_err(db_err)?;
            let jobs = self.enqueue_all(pairs, false, Trigger::Schedule)?;
            tracing::info!(queued = jobs.len(), "scheduled builds queued");
        }
        self.remove_old_logs(now);
        let next_agent_expiry = self.expire_agents(now)?;
        let next_queue_event = self.queue().next_event(now);
        // At least once per lease period, so a lease granted since is expired in time.
        let cap = now + self.settings.lease.min(Duration::seconds(30));
        let next =
            [tick.next_wakeup, next_queue_event, next_agent_expiry, Some(cap)].into_iter().flatten().min();
        Ok(next.unwrap_or(now + Duration::seconds(30)))
    }

    fn remove_old_logs(&self, now: DateTime<Utc>) {
        let max_age = std::time::Duration::from_secs(self.settings.max_log_age_days.saturating_mul(86_400));
        if max_age.is_zero() {
            return;
        }
        let Ok(dir) = std::fs::read_dir(&self.logs) else { return };
        let now = std::time::SystemTime::from(now);
        for entry in dir.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > max_age);
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Runs the tick until the process ends.
pub async fn run_ticks(builds: std::sync::Arc<Builds>) {
    loop {
        let b = builds.clone();
        let next = tokio::task::spawn_blocking(move || b.tick()).await;
        let wait = match next {
            Ok(Ok(at)) => (at - Utc::now()).to_std().unwrap_or_default(),
            Ok(Err(e)) => {
                tracing::error!("scheduler tick: {e}");
                std::time::Duration::from_secs(5)
            }
            Err(e) => {
                tracing::error!("scheduler tick panicked: {e}");
                std::time::Duration::from_secs(5)
            }
        };
        let floor = std::time::Duration::from_millis(200);
        let wait = wait.clamp(floor, std::time::Duration::from_secs(30));
        let planned = chrono::Duration::from_std(wait).map_or(Utc::now(), |w| Utc::now() + w);
        *builds.next_tick.lock().unwrap_or_else(|p| p.into_inner()) = planned;
        // Woken early when an agent may expire sooner, but never more than every `floor`.
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = async { tokio::time::sleep(floor).await; builds.tick_wake.notified().await } => {}
        }
    }
}
