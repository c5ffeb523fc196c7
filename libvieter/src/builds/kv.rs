//! A [`BuildStore`] over any [`Kv`]: the build service's row layout written once, with the group
//! commit of job records. The server's `builds.redb` is this layout over redb.
//!
//! | table | key | value |
//! |---|---|---|
//! | `build_targets` | target id, 20 decimal digits | JSON of [`Target`] |
//! | `build_jobs` | job id, 20 decimal digits | JSON of [`Job`] |
//! | `build_counters` | `target` | the last target id handed out, `u64` LE |
//! | `build_last_runs` | `{target}/{arch}` | the last scheduled run, seconds since the epoch, `i64` LE |
//! | `agents` | agent id | JSON of [`AgentInfo`] plus `key_sha256` (hex of the digest of the key the id is bound to; absent in records from before ids were bound) |
//!
//! Group commit: [`BuildStore::save_jobs`] hands records to one writer thread, which writes all it was
//! handed meanwhile in one transaction, so many agents polling at once share a commit (and its fsync)
//! instead of queueing for one each. Records are written in the order they were handed over (the
//! service hands them over under its queue's lock), so an older state of a job never overwrites a newer
//! one.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::store::{AgentRecord, BuildStore, Saved, StoreError};
use crate::api::AgentInfo;
use crate::job::{AgentId, Job, JobId};
use crate::kv::{KeyRange, Kv, KvError, KvRead, KvWrite};
use crate::name::Arch;
use crate::scheduler::KeyDigest;
use crate::target::{Target, TargetId};

/// The tables of the layout, for a [`Kv`] that has to create them up front.
pub const TABLES: [&str; 5] = [TARGETS, JOBS, COUNTERS, LAST_RUNS, AGENTS];
const TARGETS: &str = "build_targets";
const JOBS: &str = "build_jobs";
const COUNTERS: &str = "build_counters";
const LAST_RUNS: &str = "build_last_runs";
const AGENTS: &str = "agents";
const ALL: KeyRange<'static> = KeyRange { start: "", end: None };

/// The key of a target or a job: its id in 20 decimal digits, so key order is id order.
pub fn id_key(id: u64) -> String {
    format!("{id:020}")
}

/// The key of a last scheduled run.
pub fn last_run_key(target: u64, arch: &str) -> String {
    format!("{target}/{arch}")
}

fn err(e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> StoreError {
    StoreError::new(e)
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(err)
}

fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(|e| err(KvError::damaged(e)))
}

/// An agent's record: what the API shows, plus the digest of its key (never shown).
#[derive(Serialize, Deserialize)]
struct StoredAgent {
    #[serde(flatten)]
    info: AgentInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_sha256: Option<String>,
}

type Batch = (Vec<(String, Vec<u8>)>, SyncSender<Result<(), String>>);

/// The build service's [`BuildStore`] over `K`. Dropping it waits for the writer thread to write what
/// it was handed and end (so `K` is closed when the drop returns).
pub struct KvBuildStore<K> {
    kv: Arc<K>,
    writer: Option<Sender<Batch>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<K> Drop for KvBuildStore<K> {
    fn drop(&mut self) {
        self.writer = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Job records handed to the writer thread; [`Saved::wait`] returns once they are durable.
#[must_use]
pub struct Pending(Option<Receiver<Result<(), String>>>);

impl Saved for Pending {
    fn wait(self) -> Result<(), StoreError> {
        match self.0 {
            None => Ok(()),
            Some(rx) => rx.recv().map_err(|_| err("the job writer stopped"))?.map_err(err),
        }
    }
}

impl<K: Kv + 'static> KvBuildStore<K> {
    /// The store over `kv`, with its writer thread (`job-writer`; it ends when the store is dropped).
    pub fn open(kv: K) -> Result<KvBuildStore<K>, StoreError> {
        let kv = Arc::new(kv);
        let (writer, rx) = channel::<Batch>();
        let thread_kv = kv.clone();
        let thread = std::thread::Builder::new()
            .name("job-writer".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    batch.extend(rx.try_iter());
                    let result = write_jobs(&*thread_kv, &batch).map_err(|e| e.to_string());
                    for (_, reply) in batch {
                        let _ = reply.send(result.clone());
                    }
                }
            })
            .map_err(err)?;
        Ok(KvBuildStore { kv, writer: Some(writer), thread: Some(thread) })
    }
}

fn write_jobs(kv: &impl Kv, batch: &[Batch]) -> Result<(), KvError> {
    let mut txn = kv.write()?;
    for (key, bytes) in batch.iter().flat_map(|(records, _)| records) {
        txn.put(JOBS, key, bytes)?;
    }
    txn.commit()
}

impl<K: Kv> KvBuildStore<K> {
    /// One write transaction, committed when `f` succeeds.
    fn write<T>(&self, f: impl FnOnce(&mut K::Write<'_>) -> Result<T, KvError>) -> Result<T, StoreError> {
        let mut txn = self.kv.write().map_err(err)?;
        let out = f(&mut txn).map_err(err)?;
        txn.commit().map_err(err)?;
        Ok(out)
    }

    /// Every row of a table, decoded with `f` (`Ok(None)` skips a row).
    fn rows<T>(
        &self,
        table: &'static str,
        reverse: bool,
        mut f: impl FnMut(&str, &[u8]) -> Result<ControlFlow<(), Option<T>>, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let (mut out, mut failed) = (Vec::new(), None);
        self.kv
            .read()
            .map_err(err)?
            .scan(table, ALL, reverse, &mut |k, v| match f(k, v) {
                Ok(ControlFlow::Continue(row)) => {
                    out.extend(row);
                    ControlFlow::Continue(())
                }
                Ok(ControlFlow::Break(())) => ControlFlow::Break(()),
                Err(e) => {
                    failed = Some(e);
                    ControlFlow::Break(())
                }
            })
            .map_err(err)?;
        failed.map_or(Ok(out), Err)
    }

    fn get<T: DeserializeOwned>(&self, table: &'static str, key: &str) -> Result<Option<T>, StoreError> {
        self.kv.read().map_err(err)?.get(table, key).map_err(err)?.map(|v| decode(&v)).transpose()
    }
}

impl<K: Kv + 'static> BuildStore for KvBuildStore<K> {
    type Saved = Pending;

    fn targets(&self) -> Result<Vec<Target>, StoreError> {
        self.rows(TARGETS, false, |_, v| Ok(ControlFlow::Continue(Some(decode(v)?))))
    }

    fn target(&self, id: TargetId) -> Result<Option<Target>, StoreError> {
        self.get(TARGETS, &id_key(id.0))
    }

    fn add_target(&self, mut target: Target, scheduled_from: DateTime<Utc>) -> Result<Target, StoreError> {
        self.write(|txn| {
            let last = txn.get(COUNTERS, "target")?.and_then(|v| v.try_into().ok()).map(u64::from_le_bytes);
            let id = last.unwrap_or(0) + 1;
            txn.put(COUNTERS, "target", &id.to_le_bytes())?;
            target.id = TargetId(id);
            let bytes = serde_json::to_vec(&target).map_err(KvError::damaged)?;
            txn.put(TARGETS, &id_key(id), &bytes)?;
            for arch in &target.arch {
                txn.put(
                    LAST_RUNS,
                    &last_run_key(id, arch.as_str()),
                    &scheduled_from.timestamp().to_le_bytes(),
                )?;
            }
            Ok(())
        })?;
        Ok(target)
    }

    fn put_target(&self, target: &Target) -> Result<(), StoreError> {
        let bytes = encode(target)?;
        self.write(|txn| txn.put(TARGETS, &id_key(target.id.0), &bytes))
    }

    fn remove_target(&self, id: TargetId) -> Result<bool, StoreError> {
        self.write(|txn| Ok(txn.take(TARGETS, &id_key(id.0))?.is_some()))
    }

    fn last_runs(&self) -> Result<BTreeMap<(TargetId, Arch), DateTime<Utc>>, StoreError> {
        let runs = self.rows(LAST_RUNS, false, |k, v| {
            let key =
                k.split_once('/').and_then(|(t, a)| Some((TargetId(t.parse().ok()?), Arch::new(a).ok()?)));
            let at = v.try_into().ok().map(i64::from_le_bytes).and_then(|s| DateTime::from_timestamp(s, 0));
            // An unreadable row is no last run: the target's next slot is computed as for a new one.
            Ok(ControlFlow::Continue(key.zip(at)))
        })?;
        Ok(runs.into_iter().collect())
    }

    fn record_runs(&self, runs: &[(TargetId, Arch)], at: DateTime<Utc>) -> Result<(), StoreError> {
        self.write(|txn| {
            for (target, arch) in runs {
                txn.put(LAST_RUNS, &last_run_key(target.0, arch.as_str()), &at.timestamp().to_le_bytes())?;
            }
            Ok(())
        })
    }

    fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.get(JOBS, &id_key(id.0))
    }

    fn scan_jobs(&self, visit: &mut dyn FnMut(Job) -> ControlFlow<()>) -> Result<(), StoreError> {
        self.rows(JOBS, true, |_, v| match visit(decode(v)?) {
            ControlFlow::Continue(()) => Ok(ControlFlow::Continue(None::<()>)),
            ControlFlow::Break(()) => Ok(ControlFlow::Break(())),
        })?;
        Ok(())
    }

    fn save_jobs(&self, jobs: &[Job]) -> Result<Pending, StoreError> {
        // Encoded here, so the writer only writes.
        let records = jobs
            .iter()
            .map(|j| Ok((id_key(j.id().0), encode(j)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        if records.is_empty() {
            return Ok(Pending(None));
        }
        let (reply, rx) = sync_channel(1);
        let writer = self.writer.as_ref().ok_or_else(|| err("the job writer stopped"))?;
        writer.send((records, reply)).map_err(|_| err("the job writer stopped"))?;
        Ok(Pending(Some(rx)))
    }

    fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        self.rows(AGENTS, false, |_, v| {
            let stored: StoredAgent = decode(v)?;
            let key = stored
                .key_sha256
                .and_then(|h| hex::decode(h).ok())
                .and_then(|bytes| KeyDigest::try_from(bytes.as_slice()).ok());
            Ok(ControlFlow::Continue(Some(AgentRecord { info: stored.info, key })))
        })
    }

    fn save_agent(&self, agent: &AgentRecord) -> Result<(), StoreError> {
        let stored = StoredAgent { info: agent.info.clone(), key_sha256: agent.key.map(hex::encode) };
        let bytes = encode(&stored)?;
        self.write(|txn| txn.put(AGENTS, agent.info.id.as_str(), &bytes))
    }

    fn remove_agents(&self, ids: &[AgentId]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.write(|txn| {
            for id in ids {
                txn.take(AGENTS, id.as_str())?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MemoryKv;

    #[test]
    fn the_layout_keeps_the_store_promises() {
        super::super::conformance::check_store(&KvBuildStore::open(MemoryKv::default()).unwrap());
    }

    #[test]
    fn ids_are_keys_in_id_order() {
        assert!(id_key(9) < id_key(10) && id_key(10) < id_key(u64::MAX));
        assert_eq!(id_key(42).len(), 20);
    }
}
