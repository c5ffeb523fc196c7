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
    /// Reads job `id`'s log from byte `offset` into `buf`: how many bytes were read (fewer than asked
    /// is fine; 0 at its end, or when the job has no log).
    fn read_at(&self, id: JobId, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// The size of job `id`'s log in bytes (0 when it has none).
    fn size(&self, id: JobId) -> io::Result<u64>;
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
    /// The log store could not list its logs.
    #[error("listing the build logs: {0}")]
    List(#[source] io::Error),
}

/// Where a reader of one job's log is ([`BuildLogs::whole`], [`LogReader::follow`]); read it with
/// [`BuildLogs::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogReader {
    id: JobId,
    offset: u64,
    /// A whole read ends here (the log's size when it began); `None` when following.
    until: Option<u64>,
    /// Following: the job was seen ended (or gone), so the next read that finds nothing is the end.
    ended: bool,
    done: bool,
}

impl LogReader {
    /// Follows job `id`'s log from byte `from`: what it has and what is appended, until the job has
    /// ended and everything it wrote was read.
    pub fn follow(id: JobId, from: u64) -> LogReader {
        LogReader { id, offset: from, until: None, ended: false, done: false }
    }

    /// The job.
    pub fn job(&self) -> JobId {
        self.id
    }

    /// The byte offset of the next read (after a read, the end of what it returned).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// How many bytes a whole read returns in all (a response's Content-Length); `None` when following.
    pub fn total(&self) -> Option<u64> {
        self.until
    }
}

/// What [`BuildLogs::read`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogRead {
    /// The next bytes.
    Bytes(Vec<u8>),
    /// Following: nothing new and the job still runs; read again after an append or a state change.
    Pending,
    /// Nothing more will come.
    End,
}

/// The last part of a log ([`BuildLogs::tail`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTail {
    /// The bytes, from a line start when the log was cut.
    pub bytes: Vec<u8>,
    /// Whether bytes before these were left out.
    pub cut: bool,
    /// The log's size when it was read (the offset just past `bytes`).
    pub size: u64,
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

    /// A reader of job `id`'s whole log as it is now (a running job's later output is for the next
    /// reader). [`BuildError::NotFound`] when there is no such job; a job without a log reads empty.
    pub fn whole<S: BuildStore>(&self, service: &BuildService<S>, id: JobId) -> Result<LogReader, LogError> {
        service.job(id)?;
        let size = self.store.size(id).map_err(|source| LogError::Io { job: id, source })?;
        Ok(LogReader { id, offset: 0, until: Some(size), ended: true, done: false })
    }

    /// The next bytes of `reader`, at most `max`. A whole read returns its bytes, then [`LogRead::End`]
    /// (an error when the log turns out shorter: deleted meanwhile). A follower gets
    /// [`LogRead::Pending`] while nothing is new and the job runs; once the job has ended (or is gone)
    /// the log is read once more, so that what it wrote before it ended is returned, then `End`.
    pub fn read<S: BuildStore>(
        &self,
        service: &BuildService<S>,
        reader: &mut LogReader,
        max: usize,
    ) -> Result<LogRead, LogError> {
        let job = reader.id;
        let io = |source| LogError::Io { job, source };
        loop {
            let want = match reader.until {
                Some(until) => usize::try_from(until - reader.offset).unwrap_or(max).min(max),
                None => max,
            };
            if reader.done || (reader.until.is_some() && want == 0) {
                reader.done = true;
                return Ok(LogRead::End);
            }
            let mut buf = vec![0; want];
            let n = self.store.read_at(job, reader.offset, &mut buf).map_err(io)?;
            if n > 0 {
                buf.truncate(n);
                reader.offset += n as u64;
                return Ok(LogRead::Bytes(buf));
            }
            if reader.until.is_some() {
                reader.done = true;
                let short = io::Error::new(io::ErrorKind::UnexpectedEof, "the log is shorter than announced");
                return Err(io(short));
            }
            if reader.ended {
                reader.done = true;
                return Ok(LogRead::End);
            }
            // Nothing new: once the job has ended, one more read returns what it wrote before.
            reader.ended = service.find_job(job)?.is_none_or(|j| j.state().is_final());
            if !reader.ended {
                return Ok(LogRead::Pending);
            }
        }
    }

    /// The end of job `id`'s log: at most `max` bytes, from a line start when earlier bytes are left
    /// out (a page shows the tail of a long log).
    pub fn tail(&self, id: JobId, max: u64) -> Result<LogTail, LogError> {
        let io = |source| LogError::Io { job: id, source };
        let size = self.store.size(id).map_err(io)?;
        let start = size.saturating_sub(max);
        let mut bytes = vec![0; usize::try_from(size - start).unwrap_or(0)];
        let mut filled = 0;
        while filled < bytes.len() {
            match self.store.read_at(id, start + filled as u64, &mut bytes[filled..]).map_err(io)? {
                0 => break,
                n => filled += n,
            }
        }
        bytes.truncate(filled);
        if start > 0 {
            let from = bytes.iter().position(|&b| b == b'\n').map_or(0, |p| p + 1);
            bytes.drain(..from);
        }
        Ok(LogTail { bytes, cut: start > 0, size: start + filled as u64 })
    }

    /// The jobs that have a log.
    pub fn with_logs(&self) -> io::Result<std::collections::BTreeSet<JobId>> {
        Ok(self.store.written()?.into_iter().map(|(id, _)| id).collect())
    }

    /// Vieter 0.6's `GET /api/v1/logs`: the logs of the ended jobs that `filter` keeps, in id order,
    /// paged ([`crate::compat::LogFilter`]).
    pub fn compat_list<S: BuildStore>(
        &self,
        service: &BuildService<S>,
        filter: &crate::compat::LogFilter,
    ) -> Result<Vec<crate::compat::BuildLog>, LogError> {
        let with_logs = self.with_logs().map_err(LogError::List)?;
        let mut matching = Vec::new();
        service
            .store()
            .scan_jobs(&mut |job| {
                matching.extend(filter.keep(&job, |id| with_logs.contains(&id)));
                std::ops::ControlFlow::Continue(())
            })
            .map_err(BuildError::Store)?;
        Ok(filter.page_of(matching))
    }

    /// Vieter 0.6's build log `id`: `None` unless job `id` ran, ended and its log is kept.
    pub fn compat_log<S: BuildStore>(
        &self,
        service: &BuildService<S>,
        id: JobId,
    ) -> Result<Option<crate::compat::BuildLog>, LogError> {
        let Some(job) = service.find_job(id)? else { return Ok(None) };
        let has_log = self.exists(id)?;
        Ok(crate::compat::BuildLog::of(&job, |_| has_log))
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

    fn read_at(&self, id: JobId, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        let log = logs.get(&id).map_or(&[][..], |(log, _)| log);
        let rest = usize::try_from(offset).ok().and_then(|o| log.get(o..)).unwrap_or(&[]);
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }

    fn size(&self, id: JobId) -> io::Result<u64> {
        let logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        Ok(logs.get(&id).map_or(0, |(log, _)| log.len() as u64))
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

    /// Vieter 0.6's logs are those of jobs that ran and ended with a log: not a running job's, not one
    /// whose log was deleted.
    #[test]
    fn vieter_s_log_list_has_ended_jobs_with_a_log() {
        let (service, _, id) = running();
        let logs = BuildLogs::new(MemoryLogs::default());
        let a1 = AgentId::new("a1").unwrap();
        logs.append(&service, id, &a1, &Key, b"built\n").unwrap();
        let all = crate::compat::LogFilter::default();
        assert!(logs.compat_list(&service, &all).unwrap().is_empty(), "running: no log yet");
        assert_eq!(logs.compat_log(&service, id).unwrap(), None);
        service.finish(id, &a1, Outcome::Succeeded { versions: vec![], revision: None }, &Key).unwrap();
        let listed = logs.compat_list(&service, &all).unwrap();
        assert_eq!((listed.len(), listed[0].id, listed[0].exit_code), (1, id.0, 0));
        assert_eq!(logs.compat_log(&service, id).unwrap().as_ref(), listed.first());
        assert!(logs.remove(&service, id).unwrap());
        assert!(logs.compat_list(&service, &all).unwrap().is_empty(), "its log deleted");
        assert_eq!(logs.compat_log(&service, id).unwrap(), None);
        assert_eq!(logs.compat_log(&service, JobId(999)).unwrap(), None, "no such job");
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

    fn read_all(
        logs: &BuildLogs<MemoryLogs>,
        service: &BuildService<MemoryStore>,
        r: &mut LogReader,
    ) -> Vec<LogRead> {
        let mut out = Vec::new();
        loop {
            let read = logs.read(service, r, 3).unwrap();
            let stop = !matches!(read, LogRead::Bytes(_));
            out.push(read);
            if stop {
                return out;
            }
        }
    }

    #[test]
    fn a_whole_read_returns_the_log_as_it_was_in_chunks_then_ends() {
        let (service, _, id) = running();
        let logs = BuildLogs::new(MemoryLogs::default());
        let a1 = AgentId::new("a1").unwrap();
        let mut empty = logs.whole(&service, id).unwrap();
        assert_eq!((empty.total(), read_all(&logs, &service, &mut empty)), (Some(0), vec![LogRead::End]));
        logs.append(&service, id, &a1, &Key, b"abcd").unwrap();
        let mut r = logs.whole(&service, id).unwrap();
        logs.append(&service, id, &a1, &Key, b"ef").unwrap();
        assert_eq!(r.total(), Some(4), "the size when the read began");
        let chunks = read_all(&logs, &service, &mut r);
        assert_eq!(chunks, [LogRead::Bytes(b"abc".to_vec()), LogRead::Bytes(b"d".to_vec()), LogRead::End]);
        assert_eq!((r.job(), r.offset()), (id, 4));
        assert_eq!(logs.read(&service, &mut r, 3).unwrap(), LogRead::End, "and stays ended");
        assert!(matches!(logs.whole(&service, JobId(999)), Err(LogError::Build(BuildError::NotFound(_)))));
        // Deleted under a reader: an error, not a short log passed off as whole.
        let mut r = logs.whole(&service, id).unwrap();
        logs.store().remove(id).unwrap();
        assert!(matches!(logs.read(&service, &mut r, 3), Err(LogError::Io { .. })));
    }

    #[test]
    fn a_follower_waits_while_the_job_runs_and_ends_after_its_last_bytes() {
        let (service, _, id) = running();
        let logs = BuildLogs::new(MemoryLogs::default());
        let a1 = AgentId::new("a1").unwrap();
        let mut r = LogReader::follow(id, 0);
        assert_eq!(r.total(), None);
        assert_eq!(logs.read(&service, &mut r, 3).unwrap(), LogRead::Pending, "no log yet, the job runs");
        logs.append(&service, id, &a1, &Key, b"ab").unwrap();
        assert_eq!(logs.read(&service, &mut r, 3).unwrap(), LogRead::Bytes(b"ab".to_vec()));
        assert_eq!(logs.read(&service, &mut r, 3).unwrap(), LogRead::Pending);
        // The last output and the end come together: the output is read before the end is said.
        logs.append(&service, id, &a1, &Key, b"cdefg").unwrap();
        service.finish(id, &a1, Outcome::Succeeded { versions: vec![], revision: None }, &Key).unwrap();
        let rest = read_all(&logs, &service, &mut r);
        assert_eq!(rest, [LogRead::Bytes(b"cde".to_vec()), LogRead::Bytes(b"fg".to_vec()), LogRead::End]);
        // A follower that starts after the end reads from its offset and ends.
        let mut late = LogReader::follow(id, 5);
        assert_eq!(read_all(&logs, &service, &mut late), [LogRead::Bytes(b"fg".to_vec()), LogRead::End]);
        // A job that does not exist has nothing more to say.
        assert_eq!(read_all(&logs, &service, &mut LogReader::follow(JobId(999), 0)), [LogRead::End]);
    }

    #[test]
    fn the_tail_of_a_long_log_starts_at_a_line() {
        let logs = BuildLogs::new(MemoryLogs::default());
        let id = JobId(3);
        logs.store().append(id, &mut |_| b"line1\nline2\nline3".to_vec()).unwrap();
        let cut = logs.tail(id, 8).unwrap();
        assert_eq!(cut, LogTail { bytes: b"line3".to_vec(), cut: true, size: 17 });
        let whole = logs.tail(id, 100).unwrap();
        assert_eq!(whole, LogTail { bytes: b"line1\nline2\nline3".to_vec(), cut: false, size: 17 });
        assert_eq!(logs.tail(JobId(4), 8).unwrap(), LogTail { bytes: vec![], cut: false, size: 0 });
    }
}
