//! The tick: a task that asks the build service to do what is due (expire leases, queue scheduled runs,
//! forget idle agents), deletes the logs it says are old, and sleeps until the next thing falls due.
//! And [`Wake`], through which the service wakes long polls and the tick early.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use libvieter::builds::{ChangeCheck, Wakeups};

use super::{Builds, BuildsError};

/// The tick's timer never sleeps less than this (so early wake-ups cannot make it spin), nor more than
/// [`CEILING`].
const FLOOR: std::time::Duration = std::time::Duration::from_millis(200);
const CEILING: std::time::Duration = std::time::Duration::from_secs(30);

/// Wakes long-polling agents when jobs are queued, and the tick before its planned time when something
/// falls due sooner (an agent may expire sooner than the tick's period).
pub(super) struct Wake {
    pub(super) jobs: tokio::sync::Notify,
    tick: tokio::sync::Notify,
    next_tick: Mutex<DateTime<Utc>>,
    /// Counts job state changes: live job lists (the web interface) wait for it to change.
    pub(super) changed: tokio::sync::watch::Sender<u64>,
}

impl Wake {
    pub(super) fn new() -> Wake {
        Wake {
            jobs: tokio::sync::Notify::new(),
            tick: tokio::sync::Notify::new(),
            next_tick: Mutex::new(DateTime::<Utc>::MIN_UTC),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Wakeups for Wake {
    fn jobs_queued(&self) {
        self.jobs.notify_waiters();
    }

    fn tick_by(&self, at: DateTime<Utc>) {
        if at < *self.next_tick.lock().unwrap_or_else(|p| p.into_inner()) {
            self.tick.notify_one();
        }
    }

    fn jobs_changed(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl Builds {
    /// One tick, due scheduled runs first given to `check`: what the service did is logged, old logs
    /// are deleted. Returns when to tick again.
    pub fn tick(&self, check: &mut dyn ChangeCheck) -> Result<DateTime<Utc>, BuildsError> {
        let report = self.service.tick_with(check)?;
        for e in &report.lost {
            tracing::warn!(job = %e.job.id(), agent = ?e.job.agent(), retry = ?e.retry.as_ref().map(|r| r.id()), "lease expired: job lost");
        }
        if !report.queued.is_empty() {
            tracing::info!(queued = report.queued.len(), "scheduled builds queued");
        }
        if !report.unchanged.is_empty() {
            tracing::info!(skipped = report.unchanged.len(), "scheduled builds skipped: unchanged");
        }
        for e in &report.refused {
            tracing::warn!("scheduled build not queued: {e}");
        }
        if !report.forgotten.is_empty() {
            tracing::info!(removed = report.forgotten.len(), "idle agents forgotten (agent_expiry_secs)");
        }
        match self.logs.remove_old(&self.service) {
            Ok(old) if !old.is_empty() => {
                tracing::info!(removed = old.len(), "old build logs deleted (max_log_age)")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("listing the build logs: {e}"),
        }
        Ok(report.next)
    }
}

/// Runs the tick until the process ends; `check` makes each tick's change check.
pub async fn run_ticks<C: ChangeCheck + Send + 'static>(
    builds: Arc<Builds>,
    check: impl Fn() -> C + Send + Sync + 'static,
) {
    loop {
        let b = builds.clone();
        let mut c = check();
        let next = tokio::task::spawn_blocking(move || b.tick(&mut c)).await;
        let wait = match next {
            Ok(Ok(at)) => (at - builds.service.now()).to_std().unwrap_or_default(),
            Ok(Err(e)) => {
                tracing::error!("scheduler tick: {e}");
                std::time::Duration::from_secs(5)
            }
            Err(e) => {
                tracing::error!("scheduler tick panicked: {e}");
                std::time::Duration::from_secs(5)
            }
        };
        let wait = wait.clamp(FLOOR, CEILING);
        let now = builds.service.now();
        let planned = chrono::Duration::from_std(wait).map_or(now, |w| now + w);
        *builds.wake.next_tick.lock().unwrap_or_else(|p| p.into_inner()) = planned;
        // Woken early when an agent may expire sooner, but never more than every `FLOOR`.
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = async { tokio::time::sleep(FLOOR).await; builds.wake.tick.notified().await } => {}
        }
    }
}
