//! Build targets and jobs: the server side of the build system.
//!
//! Every rule (targets, queueing, leases, retries, agents, retention, filters) is libvieter's
//! [`BuildService`] (and [`BuildLogs`] for the logs); this module gives it its I/O: `builds.redb`
//! (`store.rs`: libvieter's layout and group commit over redb), the system clock, the log directory
//! `logs/` ([`LogDir`]), long polls (`agents.rs`) and the tick's timer (`tick.rs`). Routes call
//! [`Builds::service`] for everything that does not wait or touch a file, and map [`BuildsError`] to
//! HTTP statuses.

mod agents;
mod store;
mod tick;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use libvieter::builds::{BuildError, BuildLogs, BuildService, LogRead, LogReader};
use libvieter::fs::LogDir;
use libvieter::job::{AgentId, JobId};

use crate::auth::Caller;
pub use libvieter::builds::LogError;
pub use store::RedbStore;
pub use tick::run_ticks;

/// The filters of the listings are query parameters whose shapes are libvieter's.
pub use libvieter::api::{JobFilter, TargetFilter};
/// The settings of the build system are libvieter's.
pub use libvieter::builds::BuildSettings;

/// Why a build request failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildsError {
    /// The service refused it or its store failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A log append was refused, or the log file could not be written.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The log directory could not be opened.
    #[error("the log directory: {0}")]
    LogDir(std::io::Error),
    /// A task on the blocking pool did not complete.
    #[error("a blocking task: {0}")]
    Task(String),
}

impl From<libvieter::builds::StoreError> for BuildsError {
    fn from(e: libvieter::builds::StoreError) -> Self {
        BuildsError::Build(e.into())
    }
}

/// The build system's state.
pub struct Builds {
    /// The rules, over redb and the system clock.
    pub service: BuildService<RedbStore>,
    wake: Arc<tick::Wake>,
    logs: BuildLogs<LogDir>,
    /// Counts log appends: followers of a log (the web interface) wait for it to change.
    appended: tokio::sync::watch::Sender<u64>,
}

impl Builds {
    /// Opens `builds.redb` and `logs/` in `data_dir` and reloads the active jobs and the agents.
    pub fn open(data_dir: &Path, settings: BuildSettings) -> Result<Builds, BuildsError> {
        let logs = BuildLogs::new(LogDir::open(data_dir.join("logs")).map_err(BuildsError::LogDir)?);
        let store = store::open(&data_dir.join("builds.redb"))?;
        let wake = Arc::new(tick::Wake::new());
        let service = BuildService::open(store, settings, Utc::now)?.with_wakeups(wake.clone());
        tracing::info!(reloaded = service.active_jobs(), "active jobs reloaded");
        Ok(Builds { service, wake, logs, appended: tokio::sync::watch::Sender::new(0) })
    }

    /// Appends to a running job's log ([`BuildLogs::append`]: only the agent holding the lease, at most
    /// `max_log_size` bytes, then a marker).
    pub fn append_log(
        &self,
        id: JobId,
        agent: &AgentId,
        caller: &Caller,
        bytes: &[u8],
    ) -> Result<(), BuildsError> {
        let truncated = self.logs.append(&self.service, id, agent, caller, bytes);
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
        if truncated? {
            let max = self.service.settings().max_log_size;
            tracing::warn!(job = %id, max, "build log truncated (max_log_size)");
        }
        Ok(())
    }

    /// Changes after every log append (of any job): what a follower of a log waits on.
    pub fn appends(&self) -> tokio::sync::watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Changes after every change of a job's state: what a live list of jobs waits on.
    pub fn job_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.wake.changed.subscribe()
    }

    /// The build logs (their store and rules).
    pub fn logs(&self) -> &BuildLogs<LogDir> {
        &self.logs
    }

    /// Deletes an ended job's log ([`BuildLogs::remove`]); returns whether there was one.
    pub fn remove_log(&self, id: JobId) -> Result<bool, BuildsError> {
        Ok(self.logs.remove(&self.service, id)?)
    }

    /// The next bytes of `reader`, at most `max` ([`BuildLogs::read`], on the blocking pool).
    pub async fn read_log(
        self: &Arc<Self>,
        reader: &mut LogReader,
        max: usize,
    ) -> Result<LogRead, BuildsError> {
        let (builds, mut r) = (self.clone(), reader.clone());
        let (read, r) =
            tokio::task::spawn_blocking(move || (builds.logs.read(&builds.service, &mut r, max), r))
                .await
                .map_err(|e| BuildsError::Task(e.to_string()))?;
        *reader = r;
        Ok(read?)
    }

    /// What a follower of a log waits on between reads.
    pub fn watch_logs(&self) -> LogWatch {
        LogWatch { appends: self.appends(), jobs: self.job_changes() }
    }
}

/// Log appends and job changes, as a follower of a log waits on them.
pub struct LogWatch {
    appends: tokio::sync::watch::Receiver<u64>,
    jobs: tokio::sync::watch::Receiver<u64>,
}

impl LogWatch {
    /// Marks what happened so far as seen: call it before a read, so that no later append is missed.
    pub fn seen(&mut self) {
        self.appends.borrow_and_update();
        self.jobs.borrow_and_update();
    }

    /// Waits until a log was appended to or a job changed since [`LogWatch::seen`], at most `at_most`.
    pub async fn changed(&mut self, at_most: Duration) {
        tokio::select! {
            _ = self.appends.changed() => {}
            _ = self.jobs.changed() => {}
            () = tokio::time::sleep(at_most) => {}
        }
    }
}
