//! Build logs: one file per job in `logs/`, `{id}.log`.
//!
//! How much of an append is kept is the build service's rule ([`libvieter::job::plan_log_append`]:
//! at most `max_log_size`, then one marker line, later appends accepted and dropped, so the build goes
//! on); which logs are old enough to delete is too ([`libvieter::builds::BuildService::logs_to_remove`]).
//! This module only does the file work. Readers stream the file (`routes::builds::read_log`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use libvieter::job::{log_truncation_marker, JobId, LogAppend};

/// Appends to one job's log are serialised (size check, then write), by job id modulo the shards.
const LOCK_SHARDS: usize = 16;

/// The log directory.
pub(super) struct Logs {
    dir: PathBuf,
    locks: [Mutex<()>; LOCK_SHARDS],
}

/// A failed file operation on a log.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct LogError {
    pub context: &'static str,
    #[source]
    pub source: std::io::Error,
}

fn log_err(context: &'static str) -> impl FnOnce(std::io::Error) -> LogError {
    move |source| LogError { context, source }
}

impl Logs {
    /// The directory `logs/` in `data_dir` (created).
    pub(super) fn open(data_dir: &Path) -> Result<Logs, LogError> {
        let dir = data_dir.join("logs");
        std::fs::create_dir_all(&dir).map_err(log_err("creating the log directory"))?;
        Ok(Logs { dir, locks: Default::default() })
    }

    /// The log file of a job (it may not exist yet).
    pub(super) fn path(&self, id: JobId) -> PathBuf {
        self.dir.join(format!("{}.log", id.0))
    }

    /// Appends what `plan` (given the log's size) keeps of `bytes`, and the marker of a log cut at `max`
    /// when the plan says so. Returns whether it did.
    pub(super) fn append(
        &self,
        id: JobId,
        bytes: &[u8],
        max: u64,
        plan: impl FnOnce(u64) -> LogAppend,
    ) -> Result<bool, LogError> {
        let shard = usize::try_from(id.0 % LOCK_SHARDS as u64).unwrap_or(0);
        let _guard = self.locks[shard].lock().unwrap_or_else(|p| p.into_inner());
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(id))
            .map_err(log_err("opening a build log"))?;
        let size = f.metadata().map_err(log_err("reading a build log's size"))?.len();
        let plan = plan(size);
        let mut out = bytes.get(..plan.keep).unwrap_or(bytes).to_vec();
        if plan.truncate {
            out.extend_from_slice(log_truncation_marker(max).as_bytes());
        }
        if !out.is_empty() {
            f.write_all(&out).map_err(log_err("writing a build log"))?;
        }
        Ok(plan.truncate)
    }

    /// Every file in the directory with the time it was last written (unreadable ones left out).
    pub(super) fn written(&self) -> Vec<(PathBuf, DateTime<Utc>)> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        dir.flatten()
            .filter_map(|entry| {
                let modified = entry.metadata().and_then(|m| m.modified()).ok()?;
                Some((entry.path(), DateTime::<Utc>::from(modified)))
            })
            .collect()
    }

    /// Deletes log files (best effort: one that is gone already is no error).
    pub(super) fn remove(&self, paths: &[PathBuf]) {
        for path in paths {
            let _ = std::fs::remove_file(path);
        }
    }
}
