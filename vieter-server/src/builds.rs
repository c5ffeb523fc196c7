//! Build targets and jobs: the server side of the build system.
//!
//! Every rule (targets, queueing, leases, retries, agents, retention, filters) is libvieter's
//! [`BuildService`]; this module gives it its I/O: `builds.redb` ([`store`], with the group commit of
//! job records in [`writer`]), the system clock, log files ([`logs`]), long polls ([`agents`]) and the
//! tick's timer ([`tick`]). Routes call [`Builds::service`] for everything that does not wait or touch
//! a file, and map [`BuildsError`] to HTTP statuses.

mod agents;
mod logs;
mod store;
mod tick;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use libvieter::builds::{BuildError, BuildService};
use libvieter::job::{AgentId, JobId};

use crate::auth::Caller;
pub use logs::LogError;
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
    /// A log file could not be read or written.
    #[error(transparent)]
    Log(#[from] LogError),
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
    logs: logs::Logs,
}

impl Builds {
    /// Opens `builds.redb` and `logs/` in `data_dir` and reloads the active jobs and the agents.
    pub fn open(data_dir: &Path, settings: BuildSettings) -> Result<Builds, BuildsError> {
        let logs = logs::Logs::open(data_dir)?;
        let store = RedbStore::open(&data_dir.join("builds.redb"))?;
        let wake = Arc::new(tick::Wake::new());
        let service = BuildService::open(store, settings, Utc::now)?.with_wakeups(wake.clone());
        tracing::info!(reloaded = service.active_jobs(), "active jobs reloaded");
        Ok(Builds { service, wake, logs })
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
    ) -> Result<(), BuildsError> {
        self.service.check_log_append(id, agent, caller)?;
        let max = self.service.settings().max_log_size;
        let truncated =
            self.logs.append(id, bytes, max, |size| self.service.plan_log_append(size, bytes.len()))?;
        if truncated {
            tracing::warn!(job = %id, max, "build log truncated (max_log_size)");
            self.service.log_truncated(id)?;
        }
        Ok(())
    }

    /// The log file of a job (it may not exist yet).
    pub fn log_file(&self, id: JobId) -> PathBuf {
        self.logs.path(id)
    }
}
