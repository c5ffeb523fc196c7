//! Build logs: the [`LogStore`] port (one append-only byte log per job) and [`BuildLogs`], which owns
//! their rules:
//! - only the agent holding a running job's lease may append to its log ([`BuildService::check_log_append`]);
//! - a log keeps at most `max_log_size` bytes of output: the append that crosses the limit writes what
//!   fits and the marker line ([`crate::job::log_truncation_marker`]) and marks the job
//!   (`log_truncated`); later appends are accepted and dropped, so the build goes on;
//! - appends to one log are serialised (size, then write), so that concurrent appends cannot together
//!   pass the limit;
//! - a log older than `log_retention` is deleted ([`BuildService::logs_to_remove`]).
//!
//! libvieter ships [`MemoryLogs`]; `libvieter::fs::LogDir` (feature `fs`) keeps them as files.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use super::{BuildError, BuildService, BuildStore, Clock, Credentials};
use crate::job::{log_truncation_marker, AgentId, JobError, JobId};

/// Where build logs are kept: one append-only log per job.
pub trait LogStore: Send + Sync {
    /// Opens job `id`'s log (creating an empty one), calls `what` with its size in bytes and appends
    /// the bytes `what` returns (nothing when empty).
    fn append(&self, id: JobId, what: &mut dyn FnMut(u64) -> Vec<u8>) -> io::Result<()>;
    /// Every log, with the time it was last written.
    fn written(&self) -> io::Result<Vec<(JobId, DateTime<Utc>)>>;
    /// Deletes job `id`'s log (absent is fine).
    fn remove(&self, id: JobId) -> io::Result<()>;
    /// Whether job `id` has a log (by default, looked up in [`LogStore::written`]).
    fn exists(&self, id: JobId) -> io::Result<bool> {
        Ok(self.written()?.iter().any(|(job, _)| *job == id))
    }
}

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The build service refused it (no such job, not running, not this agent's).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The log store failed.
    #[error("build log of job {job}: {source}")]
    Io {
        job: JobId,
        #[source]
        source: io::Error,
    },
}

/// Appends to one job's log are serialised by job id modulo the shards.
const LOCK_SHARDS: usize = 16;

/// The build logs of a [`BuildService`], with their rules (see the module documentation).
pub struct BuildLogs<L> {
    store: L,
    locks: [Mutex<()>; LOCK_SHARDS],
}

impl<L: LogStore> BuildLogs<L> {
    /// The logs kept in `store`.
    pub fn new(store: L) -> Self {
        BuildLogs { store, locks: Default::default() }
    }

    /// The store.
    pub fn store(&self) -> &L {
        &self.store
    }

    fn lock(&self, id: JobId) -> MutexGuard<'_, ()> {
        let shard = usize::try_from(id.0 % LOCK_SHARDS as u64).unwrap_or(0);
        self.locks[shard].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `bytes` to running job `id`'s log on behalf of `agent`. Returns whether this append cut
    /// the log at `max_log_size` (the job is then marked).
    pub fn append<S: BuildStore>(
        &self,
        service: &BuildService<S>,
        id: JobId,
        agent: &AgentId,
        who: &dyn Credentials,
        bytes: &[u8],
    ) -> Result<bool, LogError> {
        service.check_log_append(id, agent, who)?;
        let max = service.settings().max_log_size;
        let mut truncated = false;
        {
            let _guard = self.lock(id);
            self.store
                .append(id, &mut |size| {
                    let plan = service.plan_log_append(size, bytes.len());
                    truncated = plan.truncate;
                    let mut out = bytes.get(..plan.keep).unwrap_or(bytes).to_vec();
                    if plan.truncate {
                        out.extend_from_slice(log_truncation_marker(max).as_bytes());
                    }
                    out
                })
                .map_err(|source| LogError::Io { job: id, source })?;
        }
        if truncated {
            service.log_truncated(id)?;
        }
        Ok(truncated)
    }

    /// Deletes the log of job `id`, which must have ended (a running job's log is still being
    /// written: [`JobError::NotEnded`]). Returns whether there was one. The job's record stays.
    pub fn remove<S: BuildStore>(&self, service: &BuildService<S>, id: JobId) -> Result<bool, LogError> {
        let state = service.job(id)?.state();
        if !state.is_final() {
            return Err(
                BuildError::Conflict { job: id, reason: JobError::NotEnded { job: id, state } }.into()
            );
        }
        let io = |source| LogError::Io { job: id, source };
        let _guard = self.lock(id);
        let existed = self.store.exists(id).map_err(io)?;
        if existed {
            self.store.remove(id).map_err(io)?;
        }
        Ok(existed)
    }

    /// Whether job `id` has a log.
    pub fn exists(&self, id: JobId) -> Result<bool, LogError> {
        self.store.exists(id).map_err(|source| LogError::Io { job: id, source })
    }

    /// The jobs that have a log.
    pub fn with_logs(&self) -> io::Result<std::collections::BTreeSet<JobId>> {
        Ok(self.store.written()?.into_iter().map(|(id, _)| id).collect())
    }

    /// Deletes the logs older than the retention; returns the jobs whose logs were deleted. A log that
    /// cannot be deleted is left for the next call.
    pub fn remove_old<S: BuildStore>(&self, service: &BuildService<S>) -> io::Result<Vec<JobId>> {
        let old = service.logs_to_remove(self.store.written()?);
        Ok(old.into_iter().filter(|id| self.store.remove(*id).is_ok()).collect())
    }
}

/// Each log's bytes and the time of its last append.
type LogMap = BTreeMap<JobId, (Vec<u8>, DateTime<Utc>)>;

/// Logs in memory, each with the time of its last append (for tests and embedders).
pub struct MemoryLogs {
    logs: Mutex<LogMap>,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryLogs {
    /// Logs timed by the system clock.
    fn default() -> Self {
        MemoryLogs::with_clock(Utc::now)
    }
}

impl std::fmt::Debug for MemoryLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryLogs").field("logs", &self.logs).finish_non_exhaustive()
    }
}

impl MemoryLogs {
    /// Logs whose append times are read from `clock`.
    pub fn with_clock(clock: impl Clock + 'static) -> Self {
        MemoryLogs { logs: Mutex::default(), clock: Arc::new(clock) }
    }

    /// Job `id`'s log, if it has one.
    pub fn get(&self, id: JobId) -> Option<Vec<u8>> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner()).get(&id).map(|(log, _)| log.clone())
    }

    /// Sets when job `id`'s log was last written (to test retention).
    pub fn set_written(&self, id: JobId, at: DateTime<Utc>) {
        if let Some(entry) = self.logs.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&id) {
            entry.1 = at;
        }
    }
}

impl LogStore for MemoryLogs {
    fn append(&self, id: JobId, what: &mut dyn FnMut(u64) -> Vec<u8>) -> io::Result<()> {
        let now = self.clock.now();
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        let entry = logs.entry(id).or_insert_with(|| (Vec::new(), now));
        let out = what(entry.0.len() as u64);
        if !out.is_empty() {
            entry.0.extend_from_slice(&out);
            entry.1 = now;
        }
        Ok(())
    }

    fn written(&self) -> io::Result<Vec<(JobId, DateTime<Utc>)>> {
        let logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        Ok(logs.iter().map(|(id, (_, at))| (*id, *at)).collect())
    }

    fn remove(&self, id: JobId) -> io::Result<()> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::api::{PollRequest, QueueRequest};
    use crate::builds::{BuildSettings, ManualClock, MemoryStore};
    use crate::job::{Job, Outcome};
    use crate::name::Arch;
    use crate::scheduler::KeyDigest;
    use crate::target::NewTarget;

    struct Key;
    impl Credentials for Key {
        fn key(&self) -> &KeyDigest {
            &[1; 32]
        }
        fn accepts(&self, key: &KeyDigest) -> bool {
            key == &[1; 32]
        }
    }

    fn id_of(job: &Job) -> JobId {
        job.id()
    }

    /// A service whose logs hold at most 10 bytes, with one job running on agent `a1`.
    fn running() -> (BuildService<MemoryStore>, ManualClock, JobId) {
        let x86 = Arch::new("x86_64").unwrap();
        let now = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let clock = ManualClock::new(now);
        let settings =
            BuildSettings { max_log_size: 10, ..BuildSettings::new(x86.clone(), "0 3".parse().unwrap()) };
        let service = BuildService::open(MemoryStore::default(), settings, clock.clone()).unwrap();
        let new = NewTarget {
            kind: "git".into(),
            url: "https://example.org/p.git".into(),
            repo: "extra".into(),
            ..NewTarget::default()
        };
        let target = service.create_target(&new).unwrap();
        let job = service.queue_build(&QueueRequest { target: target.id, arch: None, force: false }).unwrap();
        let agent = AgentId::new("a1").unwrap();
        let req = PollRequest { agent_id: agent, arch: x86, capacity: 1, wait: None };
        assert_eq!(service.poll(&req, &Key).unwrap().len(), 1);
        (service, clock, id_of(&job[0]))
    }

    #[test]
    fn a_log_is_cut_at_the_limit_with_one_marker_and_the_build_goes_on() {
        let (service, _, id) = running();
        let logs = BuildLogs::new(MemoryLogs::default());
        let a1 = AgentId::new("a1").unwrap();
        assert!(!logs.append(&service, id, &a1, &Key, b"123456").unwrap());
        assert!(logs.append(&service, id, &a1, &Key, b"789abc").unwrap(), "this one crosses 10 bytes");
        assert!(!logs.append(&service, id, &a1, &Key, b"more").unwrap(), "accepted and dropped");
        let expected = format!("123456789a{}", log_truncation_marker(10));
        assert_eq!(logs.store().get(id).unwrap(), expected.as_bytes());
        assert!(service.job(id).unwrap().log_truncated(), "the job is marked");
    }

    #[test]
    fn only_the_lease_holder_appends_and_nothing_is_written_for_a_refused_append() {
        let (service, _, id) = running();
        let logs = BuildLogs::new(MemoryLogs::default());
        let a2 = AgentId::new("a2").unwrap();
        assert!(matches!(
            logs.append(&service, id, &a2, &Key, b"x"),
            Err(LogError::Build(BuildError::Conflict { .. }))
        ));
        assert!(matches!(
            logs.append(&service, JobId(999), &a2, &Key, b"x"),
            Err(LogError::Build(BuildError::NotFound(_)))
        ));
        let a1 = AgentId::new("a1").unwrap();
        service.finish(id, &a1, Outcome::Succeeded { versions: vec![], revision: None }, &Key).unwrap();
        assert!(logs.append(&service, id, &a1, &Key, b"late").is_err(), "the job has ended");
        assert_eq!(logs.store().get(id), None);
    }

    #[test]
    fn concurrent_appends_never_pass_the_limit_together() {
        let (service, _, id) = running();
        let logs = BuildLogs::new(MemoryLogs::default());
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let a1 = AgentId::new("a1").unwrap();
                    for _ in 0..20 {
                        logs.append(&service, id, &a1, &Key, b"abc").unwrap();
                    }
                });
            }
        });
        let log = logs.store().get(id).unwrap();
        assert_eq!(log.len(), 10 + log_truncation_marker(10).len(), "{:?}", String::from_utf8_lossy(&log));
    }

    #[test]
    fn logs_older_than_the_retention_are_removed() {
        let (service, clock, id) = running();
        let logs = BuildLogs::new(MemoryLogs::with_clock(clock.clone()));
        let a1 = AgentId::new("a1").unwrap();
        logs.append(&service, id, &a1, &Key, b"x").unwrap();
        logs.store().set_written(id, clock.now() - Duration::days(29));
        assert_eq!(logs.remove_old(&service).unwrap(), []);
        logs.store().set_written(id, clock.now() - Duration::days(31));
        assert_eq!(logs.remove_old(&service).unwrap(), [id]);
        assert_eq!(logs.store().get(id), None);
    }

    #[test]
    fn a_log_is_removed_only_once_its_job_has_ended() {
        let (service, _, id) = running();
        let logs = BuildLogs::new(MemoryLogs::default());
        let a1 = AgentId::new("a1").unwrap();
        logs.append(&service, id, &a1, &Key, b"building\n").unwrap();
        assert!(matches!(
            logs.remove(&service, id),
            Err(LogError::Build(BuildError::Conflict { reason: JobError::NotEnded { .. }, .. }))
        ));
        assert!(logs.exists(id).unwrap(), "a running job's log stays");
        assert!(matches!(logs.remove(&service, JobId(999)), Err(LogError::Build(BuildError::NotFound(_)))));
        service.finish(id, &a1, Outcome::Succeeded { versions: vec![], revision: None }, &Key).unwrap();
        assert_eq!(logs.with_logs().unwrap(), [id].into());
        assert!(logs.remove(&service, id).unwrap(), "it had one");
        assert!(!logs.exists(id).unwrap() && logs.store().get(id).is_none());
        assert!(logs.with_logs().unwrap().is_empty());
        assert!(!logs.remove(&service, id).unwrap(), "it has none any more");
        assert_eq!(service.job(id).unwrap().state(), crate::job::JobState::Succeeded, "the job stays");
    }
}
