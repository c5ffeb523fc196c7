//! The agent protocol's waiting: long polls. Which agent may speak for which id, how many jobs it may
//! hold and when it is forgotten are the build service's rules ([`libvieter::builds`]); this module
//! waits for work without holding a thread, and hands the service the caller's key.

use std::sync::Arc;

use libvieter::api::{LeasedJob, PollRequest};
use libvieter::builds::Credentials;
use libvieter::scheduler::KeyDigest;

use super::{Builds, BuildsError};
use crate::auth::Caller;

/// A poll with nothing to do looks again at least this often (retries whose back-off ends notify
/// nobody).
const RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

impl Credentials for Caller {
    fn key(&self) -> &KeyDigest {
        &self.key
    }

    fn accepts(&self, key: &KeyDigest) -> bool {
        Caller::accepts(self, key)
    }
}

impl Builds {
    /// Leases due jobs to an agent; with `wait`, waits up to that long for one.
    ///
    /// An idle poll of a known agent is answered here, without the blocking pool; the service's work
    /// (store, group commit) runs on the blocking pool; only the waiting is async.
    pub async fn poll(
        self: &Arc<Self>,
        req: PollRequest,
        caller: Caller,
    ) -> Result<Vec<LeasedJob>, BuildsError> {
        let wait = req.wait();
        let deadline = tokio::time::Instant::now() + wait;
        let req = Arc::new(req);
        let caller = Arc::new(caller);
        let mut first = true;
        loop {
            let notified = self.wake.jobs.notified();
            let idle = if first {
                self.service.poll_is_idle(&req, caller.as_ref())?
            } else {
                !self.service.has_work(&req.arch)
            };
            if !idle {
                let (builds, r, c) = (self.clone(), req.clone(), caller.clone());
                let leased = tokio::task::spawn_blocking(move || {
                    if first {
                        builds.service.poll(&r, c.as_ref())
                    } else {
                        builds.service.poll_again(&r)
                    }
                })
                .await
                .map_err(|e| BuildsError::Task(e.to_string()))??;
                if !leased.is_empty() {
                    return Ok(leased);
                }
            }
            first = false;
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return Ok(Vec::new());
            }
            // Woken by new jobs, or look again after `RECHECK`.
            let _ = tokio::time::timeout(remaining.min(RECHECK), notified).await;
        }
    }
}
