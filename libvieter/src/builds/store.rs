//! The storage port of the build service, and an implementation in memory.
//!
//! A [`BuildStore`] keeps targets, the last scheduled run of each (target, arch), job records and
//! agents. It holds no rule: ids, validation, leases and expiry are the service's. The one thing a
//! store must get right besides durability is order: job records are handed over with
//! [`BuildStore::save_jobs`] in the order their changes happened (under the service's queue lock), and
//! a later record of a job must never be overwritten by an earlier one. [`super::conformance`] checks
//! an implementation against these promises.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use crate::api::AgentInfo;
use crate::job::{AgentId, Job, JobId};
use crate::name::Arch;
use crate::scheduler::KeyDigest;
use crate::target::{Target, TargetId};

/// A failure of the store (I/O, a corrupt record): the request that met it fails, nothing is decided.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl StoreError {
    /// Wraps any error (or message) of a store.
    ///
    /// ```
    /// let e = libvieter::builds::StoreError::new("disk full");
    /// assert_eq!(e.to_string(), "disk full");
    /// ```
    pub fn new(e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        StoreError(e.into())
    }
}

/// An agent as stored: what the API shows, and the digest of the key its id is bound to (`None` for a
/// record from before ids were bound; the key itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRecord {
    pub info: AgentInfo,
    pub key: Option<KeyDigest>,
}

/// Job records handed to [`BuildStore::save_jobs`]: [`Saved::wait`] returns once they are durable.
///
/// The service hands records over while it holds its queue lock (so they are written in the order the
/// changes happened) and waits after releasing it (so many changes may share one durable commit).
#[must_use = "the records are only known to be durable once waited for"]
pub trait Saved {
    /// Blocks until the records are durable, or says why they are not.
    fn wait(self) -> Result<(), StoreError>;
}

/// Records that were durable when handed back (what [`MemoryStore`] returns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Durable;

impl Saved for Durable {
    fn wait(self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Where the build service keeps its state. Every method but [`BuildStore::save_jobs`] is durable
/// when it returns.
///
/// Implementations: [`MemoryStore`] here (tests and embedders that need no persistence), redb in
/// `vieter-server`. Both pass [`super::conformance::check_store`].
pub trait BuildStore: Send + Sync {
    /// What [`BuildStore::save_jobs`] returns.
    type Saved: Saved;

    /// Every target, by id.
    fn targets(&self) -> Result<Vec<Target>, StoreError>;
    /// One target.
    fn target(&self, id: TargetId) -> Result<Option<Target>, StoreError>;
    /// Stores `target` under a new id, higher than any id handed out before (removed targets' ids are
    /// never reused), together with `scheduled_from` as the last scheduled run of each of its
    /// architectures, in one change; returns the target with its id.
    fn add_target(&self, target: Target, scheduled_from: DateTime<Utc>) -> Result<Target, StoreError>;
    /// Replaces a stored target (same id).
    fn put_target(&self, target: &Target) -> Result<(), StoreError>;
    /// Removes a target; `false` when there was none.
    fn remove_target(&self, id: TargetId) -> Result<bool, StoreError>;

    /// The last scheduled run of every (target, arch) that has one.
    fn last_runs(&self) -> Result<BTreeMap<(TargetId, Arch), DateTime<Utc>>, StoreError>;
    /// Records `at` as the last scheduled run of each pair.
    fn record_runs(&self, runs: &[(TargetId, Arch)], at: DateTime<Utc>) -> Result<(), StoreError>;

    /// One job record.
    fn job(&self, id: JobId) -> Result<Option<Job>, StoreError>;
    /// Calls `visit` with the stored jobs, newest (highest id) first, until it breaks.
    fn scan_jobs(&self, visit: &mut dyn FnMut(Job) -> ControlFlow<()>) -> Result<(), StoreError>;
    /// Hands job records over to be written (each replaces the record of its id). Records handed over
    /// by one call are written after those of every earlier call.
    fn save_jobs(&self, jobs: &[Job]) -> Result<Self::Saved, StoreError>;

    /// Every agent.
    fn agents(&self) -> Result<Vec<AgentRecord>, StoreError>;
    /// Stores an agent (replacing the record of its id).
    fn save_agent(&self, agent: &AgentRecord) -> Result<(), StoreError>;
    /// Forgets agents.
    fn remove_agents(&self, ids: &[AgentId]) -> Result<(), StoreError>;
}

/// A [`BuildStore`] in memory. Clones share the same contents, so a test can "restart" a service by
/// opening another one on a clone.
///
/// ```
/// use libvieter::builds::{BuildStore, MemoryStore};
/// let store = MemoryStore::default();
/// assert!(store.targets().unwrap().is_empty());
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStore(Arc<Mutex<Memory>>);

#[derive(Debug, Default)]
struct Memory {
    last_target: u64,
    targets: BTreeMap<TargetId, Target>,
    last_runs: BTreeMap<(TargetId, Arch), DateTime<Utc>>,
    jobs: BTreeMap<JobId, Job>,
    agents: BTreeMap<AgentId, AgentRecord>,
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, Memory> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl BuildStore for MemoryStore {
    type Saved = Durable;

    fn targets(&self) -> Result<Vec<Target>, StoreError> {
        Ok(self.lock().targets.values().cloned().collect())
    }

    fn target(&self, id: TargetId) -> Result<Option<Target>, StoreError> {
        Ok(self.lock().targets.get(&id).cloned())
    }

    fn add_target(&self, mut target: Target, scheduled_from: DateTime<Utc>) -> Result<Target, StoreError> {
        let mut m = self.lock();
        m.last_target += 1;
        target.id = TargetId(m.last_target);
        for arch in &target.arch {
            m.last_runs.insert((target.id, arch.clone()), scheduled_from);
        }
        m.targets.insert(target.id, target.clone());
        Ok(target)
    }

    fn put_target(&self, target: &Target) -> Result<(), StoreError> {
        self.lock().targets.insert(target.id, target.clone());
        Ok(())
    }

    fn remove_target(&self, id: TargetId) -> Result<bool, StoreError> {
        Ok(self.lock().targets.remove(&id).is_some())
    }

    fn last_runs(&self) -> Result<BTreeMap<(TargetId, Arch), DateTime<Utc>>, StoreError> {
        Ok(self.lock().last_runs.clone())
    }

    fn record_runs(&self, runs: &[(TargetId, Arch)], at: DateTime<Utc>) -> Result<(), StoreError> {
        let mut m = self.lock();
        for (target, arch) in runs {
            m.last_runs.insert((*target, arch.clone()), at);
        }
        Ok(())
    }

    fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        Ok(self.lock().jobs.get(&id).cloned())
    }

    fn scan_jobs(&self, visit: &mut dyn FnMut(Job) -> ControlFlow<()>) -> Result<(), StoreError> {
        // Copied first: `visit` runs without the lock.
        let jobs: Vec<Job> = self.lock().jobs.values().rev().cloned().collect();
        for job in jobs {
            if visit(job).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn save_jobs(&self, jobs: &[Job]) -> Result<Durable, StoreError> {
        let mut m = self.lock();
        for job in jobs {
            m.jobs.insert(job.id(), job.clone());
        }
        Ok(Durable)
    }

    fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        Ok(self.lock().agents.values().cloned().collect())
    }

    fn save_agent(&self, agent: &AgentRecord) -> Result<(), StoreError> {
        self.lock().agents.insert(agent.info.id.clone(), agent.clone());
        Ok(())
    }

    fn remove_agents(&self, ids: &[AgentId]) -> Result<(), StoreError> {
        let mut m = self.lock();
        for id in ids {
            m.agents.remove(id);
        }
        Ok(())
    }
}
