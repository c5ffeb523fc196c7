//! Build targets and jobs: the server side of the build system.
//!
//! The active jobs live in a [`JobQueue`] (libvieter's pure model: leasing, heartbeats, expiry, retries)
//! behind a mutex; every change is written through to `builds.redb` before the request is answered, so a
//! restart reloads queued and running jobs with their leases. Finished jobs stay in redb as history.
//! A tick task expires leases (lost → retried per policy) and queues scheduled runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use libvieter::api::{AgentInfo, LeasedJob, PollRequest};
use libvieter::job::{AgentId, Job, JobId, JobState, Outcome, RetryPolicy, Trigger};
use libvieter::name::Arch;
use libvieter::schedule::Schedule;
use libvieter::scheduler::{due_runs, Ended, JobQueue};
use libvieter::target::{NewTarget, Target, TargetId, TargetPatch};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

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

/// Filters of `GET /api/v1/jobs`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub target: Option<TargetId>,
    pub arch: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

/// Filters of `GET /api/v1/targets`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct TargetFilter {
    pub repo: Option<String>,
    pub arch: Option<String>,
    pub query: Option<String>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

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
    pub settings: BuildSettings,
    logs: PathBuf,
    /// Every agent seen since the start, with when its record was last written to redb. A poll only
    /// writes when the agent is new, changed its arch or capacity, or was last written a while ago: polls
    /// stay cheap, and after a restart `last_seen` is at most [`AGENT_PERSIST_EVERY`] old.
    agents: Mutex<BTreeMap<String, (AgentInfo, DateTime<Utc>)>>,
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
        let db = Arc::new(db);
        Ok(Builds {
            writer: JobWriter::start(db.clone())?,
            db,
            queue: Mutex::new(queue),
            notify: tokio::sync::Notify::new(),
            settings,
            logs,
            agents: Mutex::default(),
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
        let query = f.query.as_deref().map(str::to_lowercase);
        Ok(self
            .targets()?
            .into_iter()
            .filter(|t| f.repo.as_deref().is_none_or(|r| t.repo.to_string() == r))
            .filter(|t| f.arch.as_deref().is_none_or(|a| t.arch.iter().any(|x| x.as_str() == a)))
            .filter(|t| query.as_deref().is_none_or(|q| t.url.to_lowercase().contains(q)))
            .skip(f.offset.unwrap_or(0))
            .take(f.limit.unwrap_or(25).min(10_000))
            .collect())
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
        let (offset, limit) = (f.offset.unwrap_or(0), f.limit.unwrap_or(50).min(10_000));
        for row in t.iter().map_err(db_err)?.rev() {
            let job: Job = decode(row.map_err(db_err)?.1.value())?;
            let keep = f.state.is_none_or(|s| job.state == s)
                && f.target.is_none_or(|t| job.target == t)
                && f.arch.as_deref().is_none_or(|a| job.arch.as_str() == a)
                && f.since.is_none_or(|s| job.queued_at >= s);
            if !keep {
                continue;
            }
            if skipped < offset {
                skipped += 1;
                continue;
            }
            out.push(job);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
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
            Err(e) => Err(match self.job(id) {
                Ok(Some(_)) => ApiError::new(warp::http::StatusCode::CONFLICT, e.to_string()),
                _ => ApiError::not_found(format!("job {id} not found")),
            }),
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
    /// The database work runs on the blocking pool; only the wait is async.
    pub async fn poll(self: &Arc<Self>, req: PollRequest) -> Result<Vec<LeasedJob>, ApiError> {
        let deadline =
            tokio::time::Instant::now() + std::time::Duration::from_secs(req.wait.unwrap_or(0).min(120));
        let req = Arc::new(req);
        let mut first = true;
        loop {
            let notified = self.notify.notified();
            // An idle poll of a known agent changes nothing: answered here, without the blocking pool.
            let work = self.queue().has_work(&req.arch, Utc::now());
            if !work && (!first || self.saw_recently(&req)) {
                first = false;
            } else {
                let (builds, r) = (self.clone(), req.clone());
                let leased = tokio::task::spawn_blocking(move || builds.try_lease(&r, first))
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

    /// One attempt of a poll: records the agent (on the first), expires leases, leases what is due.
    fn try_lease(&self, req: &PollRequest, first: bool) -> Result<Vec<LeasedJob>, ApiError> {
        if first {
            self.see_agent(req)?;
        }
        self.expire_leases()?;
        let (leased, saved) = {
            let mut q = self.queue();
            let leased = q.lease(&req.arch, req.capacity.clamp(0, 64) as usize, &req.agent_id, Utc::now());
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

    /// Notes a poll of an agent whose stored record is fresh (same arch and capacity, written less than
    /// [`AGENT_PERSIST_EVERY`] ago), in memory; false when the record must be written ([`Self::see_agent`]).
    fn saw_recently(&self, req: &PollRequest) -> bool {
        let now = Utc::now();
        let mut agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        match agents.get_mut(req.agent_id.as_str()) {
            Some((info, written))
                if info.arch == req.arch
                    && info.capacity == req.capacity
                    && now - *written < AGENT_PERSIST_EVERY =>
            {
                info.last_seen = now;
                true
            }
            _ => false,
        }
    }

    /// Records a poll of an agent, writing its record when [`Self::saw_recently`] says it must be.
    fn see_agent(&self, req: &PollRequest) -> Result<(), ApiError> {
        if self.saw_recently(req) {
            return Ok(());
        }
        let now = Utc::now();
        let info = AgentInfo {
            id: req.agent_id.clone(),
            arch: req.arch.clone(),
            capacity: req.capacity,
            last_seen: now,
            running: Vec::new(),
        };
        self.agents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(req.agent_id.to_string(), (info.clone(), now));
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(AGENTS)
            .map_err(db_err)?
            .insert(req.agent_id.as_str(), encode(&info)?.as_slice())
            .map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    pub fn agents(&self) -> Result<Vec<AgentInfo>, ApiError> {
        let mut running: BTreeMap<String, Vec<JobId>> = BTreeMap::new();
        for job in self.queue().jobs().filter(|j| j.state == JobState::Running) {
            if let Some(a) = &job.agent {
                running.entry(a.to_string()).or_default().push(job.id);
            }
        }
        let read = self.db.begin_read().map_err(db_err)?;
        let t = read.open_table(AGENTS).map_err(db_err)?;
        let mut out = Vec::new();
        let seen = self.agents.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for row in t.iter().map_err(db_err)? {
            let mut info: AgentInfo = decode(row.map_err(db_err)?.1.value())?;
            if let Some((newer, _)) = seen.get(info.id.as_str()) {
                info = newer.clone();
            }
            info.running = running.remove(info.id.as_str()).unwrap_or_default();
            out.push(info);
        }
        Ok(out)
    }

    pub fn heartbeat(&self, id: JobId, agent: &AgentId) -> Result<DateTime<Utc>, ApiError> {
        let (expiry, saved) = {
            let mut q = self.queue();
            let expiry = q
                .heartbeat(id, agent, Utc::now())
                .map_err(|e| ApiError::new(warp::http::StatusCode::CONFLICT, e.to_string()))?;
            (expiry, self.writer.submit(q.get(id))?)
        };
        saved.wait()?;
        Ok(expiry)
    }

    pub fn finish(&self, id: JobId, agent: &AgentId, outcome: Outcome) -> Result<Job, ApiError> {
        let (ended, saved) = {
            let mut q = self.queue();
            let ended = q
                .finish(id, agent, outcome, Utc::now())
                .map_err(|e| ApiError::new(warp::http::StatusCode::CONFLICT, e.to_string()))?;
            let saved = self.writer.submit(ended_jobs(std::slice::from_ref(&ended)))?;
            (ended, saved)
        };
        saved.wait()?;
        if ended.retry.is_some() {
            self.notify.notify_waiters();
        }
        Ok(ended.job)
    }

    // ---- logs ----

    fn log_path(&self, id: JobId) -> PathBuf {
        self.logs.join(format!("{}.log", id.0))
    }

    /// Appends to a running job's log; only the agent holding the lease may.
    pub fn append_log(&self, id: JobId, agent: &AgentId, bytes: &[u8]) -> Result<(), ApiError> {
        let job = self.job(id)?.ok_or_else(|| ApiError::not_found(format!("job {id} not found")))?;
        if job.state != JobState::Running || job.agent.as_ref() != Some(agent) {
            return Err(ApiError::new(
                warp::http::StatusCode::CONFLICT,
                format!("job {id} is not running on agent {agent}"),
            ));
        }
        use std::io::Write;
        let mut f =
            std::fs::OpenOptions::new().create(true).append(true).open(self.log_path(id)).map_err(db_err)?;
        f.write_all(bytes).map_err(db_err)
    }

    /// The log file of a job (it may not exist yet).
    pub fn log_file(&self, id: JobId) -> PathBuf {
        self.log_path(id)
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

    /// Expires leases, queues due scheduled runs, removes old logs. Returns when to tick again.
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
        let next_queue_event = self.queue().next_event(now);
        // At least once per lease period, so a lease granted since is expired in time.
        let cap = now + self.settings.lease.min(Duration::seconds(30));
        let next = [tick.next_wakeup, next_queue_event, Some(cap)].into_iter().flatten().min();
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
        tokio::time::sleep(
            wait.clamp(std::time::Duration::from_millis(200), std::time::Duration::from_secs(30)),
        )
        .await;
    }
}
