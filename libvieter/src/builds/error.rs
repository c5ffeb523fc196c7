//! What the build service refuses, and why.

use std::fmt;

use crate::job::{AgentId, JobError, JobId};
use crate::name::Arch;
use crate::target::{TargetId, ValidationErrors};

use super::StoreError;

/// Why the build service refused or failed a request. An HTTP server maps these to statuses (404, 409,
/// 400, 403, 500); the messages are meant for the user.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The target or job named does not exist.
    #[error("{0} not found")]
    NotFound(Missing),
    /// The job exists, but its state does not allow the action (it has ended, it is leased by another
    /// agent, it has not ended yet, ...).
    #[error("{reason}")]
    Conflict { job: JobId, reason: JobError },
    /// The target is still needed by other (not automatic) targets: they are named.
    #[error("target {target} is needed by {}: remove it from their needs first", targets(by))]
    Needed { target: TargetId, by: Vec<TargetId> },
    /// The request itself is wrong.
    #[error("{0}")]
    Invalid(Invalid),
    /// The agent id is bound to another key the embedder still accepts.
    #[error("agent id {agent} is bound to another key: use the key it registered with")]
    Forbidden { agent: AgentId },
    /// A new agent id, but its key already has as many agents as allowed.
    #[error("this key already has {limit} agents (max_agents_per_key): reuse an agent id, or wait until idle ones expire")]
    TooManyAgents { limit: usize },
    /// The store failed; nothing was decided.
    #[error("build store: {0}")]
    Store(#[from] StoreError),
}

fn targets(ids: &[TargetId]) -> String {
    let list = ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    if ids.len() == 1 {
        format!("target {list}")
    } else {
        format!("targets {list}")
    }
}

/// What was not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Target(TargetId),
    Job(JobId),
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::Target(id) => write!(f, "target {id}"),
            Missing::Job(id) => write!(f, "job {id}"),
        }
    }
}

/// A request the service cannot carry out as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// A new target or an edit breaks the target rules ([`crate::target`]): every problem is named.
    #[error("invalid target: {0}")]
    Target(ValidationErrors),
    /// A manual build asked for an architecture the target is not built for.
    #[error("target {target} is not built for {arch}")]
    Arch { target: TargetId, arch: Arch },
    /// A target needs a target that does not exist.
    #[error("needs: target {needed} does not exist")]
    UnknownNeed { needed: TargetId },
    /// A target needs itself.
    #[error("needs: target {target} cannot need itself")]
    SelfNeed { target: TargetId },
    /// The needs would form a cycle: `path` goes round it, its first target repeated at the end.
    #[error("needs: this would make a cycle: {}", path.join(" → "))]
    Cycle { path: Vec<String> },
    /// A build needs a target that is not built for its architecture.
    #[error("target {target} needs target {needed}, which is not built for {arch}")]
    NeedArch { target: TargetId, needed: TargetId, arch: Arch },
    /// A target created with a dependency closure is not an AUR target, or its package base is not
    /// a base of the closure.
    #[error("{0}")]
    Closure(String),
}

impl From<Invalid> for BuildError {
    fn from(e: Invalid) -> Self {
        BuildError::Invalid(e)
    }
}
