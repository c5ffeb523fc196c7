//! `builds.redb`: the server's [`BuildStore`].
//!
//! The on-disk format is the one the server always wrote (existing data loads as it is):
//! - `targets`: target id → JSON of [`Target`];
//! - `jobs`: job id → JSON of [`Job`], written through the group commit of [`super::writer`];
//! - `counters`: `"target"` → the last target id handed out;
//! - `last_runs`: `"{target}/{arch}"` → the last scheduled run, in seconds since the epoch;
//! - `agents`: agent id → JSON of the agent as the API shows it, plus `key_sha256` (hex of the digest
//!   of the key the id is bound to; absent in records from before ids were bound).

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use libvieter::api::AgentInfo;
use libvieter::builds::{AgentRecord, BuildStore, StoreError};
use libvieter::job::{AgentId, Job, JobId};
use libvieter::name::Arch;
use libvieter::scheduler::KeyDigest;
use libvieter::target::{Target, TargetId};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::writer::{JobWriter, Pending};

const TARGETS: TableDefinition<u64, &[u8]> = TableDefinition::new("targets");
pub(super) const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
const LAST_RUNS: TableDefinition<&str, i64> = TableDefinition::new("last_runs");
const AGENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("agents");

pub(super) fn store_err(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::new(e)
}

pub(super) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(store_err)
}

fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(store_err)
}

/// An agent's record in redb: what the API shows, plus the digest of its key (never shown).
#[derive(Serialize, Deserialize)]
struct StoredAgent {
    #[serde(flatten)]
    info: AgentInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_sha256: Option<String>,
}

impl StoredAgent {
    fn of(record: &AgentRecord) -> StoredAgent {
        StoredAgent { info: record.info.clone(), key_sha256: record.key.map(hex::encode) }
    }

    fn into_record(self) -> AgentRecord {
        let key = self
            .key_sha256
            .and_then(|h| hex::decode(h).ok())
            .and_then(|bytes| KeyDigest::try_from(bytes.as_slice()).ok());
        AgentRecord { info: self.info, key }
    }
}

fn last_run_key(target: TargetId, arch: &Arch) -> String {
    format!("{target}/{arch}")
}

/// The redb [`BuildStore`] of the server.
pub struct RedbStore {
    db: Arc<redb::Database>,
    writer: JobWriter,
}

impl RedbStore {
    /// Opens (or creates) the database at `path` and starts the job writer.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let db = redb::Database::create(path).map_err(store_err)?;
        let txn = db.begin_write().map_err(store_err)?;
        txn.open_table(TARGETS).map_err(store_err)?;
        txn.open_table(JOBS).map_err(store_err)?;
        txn.open_table(COUNTERS).map_err(store_err)?;
        txn.open_table(LAST_RUNS).map_err(store_err)?;
        txn.open_table(AGENTS).map_err(store_err)?;
        txn.commit().map_err(store_err)?;
        let db = Arc::new(db);
        Ok(RedbStore { writer: JobWriter::start(db.clone())?, db })
    }

    /// One write transaction, committed (durably) when `f` succeeds.
    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_write().map_err(store_err)?;
        let out = f(&txn)?;
        txn.commit().map_err(store_err)?;
        Ok(out)
    }

    fn read(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.db.begin_read().map_err(store_err)
    }
}

impl BuildStore for RedbStore {
    type Saved = Pending;

    fn targets(&self) -> Result<Vec<Target>, StoreError> {
        let read = self.read()?;
        let t = read.open_table(TARGETS).map_err(store_err)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(store_err)? {
            out.push(decode(row.map_err(store_err)?.1.value())?);
        }
        Ok(out)
    }

    fn target(&self, id: TargetId) -> Result<Option<Target>, StoreError> {
        let read = self.read()?;
        let t = read.open_table(TARGETS).map_err(store_err)?;
        let found = t.get(id.0).map_err(store_err)?;
        found.map(|v| decode(v.value())).transpose()
    }

    fn add_target(&self, mut target: Target, scheduled_from: DateTime<Utc>) -> Result<Target, StoreError> {
        self.write(|txn| {
            let mut counters = txn.open_table(COUNTERS).map_err(store_err)?;
            let id = counters.get("target").map_err(store_err)?.map(|v| v.value()).unwrap_or(0) + 1;
            counters.insert("target", id).map_err(store_err)?;
            target.id = TargetId(id);
            txn.open_table(TARGETS)
                .map_err(store_err)?
                .insert(id, encode(&target)?.as_slice())
                .map_err(store_err)?;
            let mut last = txn.open_table(LAST_RUNS).map_err(store_err)?;
            for arch in &target.arch {
                last.insert(last_run_key(target.id, arch).as_str(), scheduled_from.timestamp())
                    .map_err(store_err)?;
            }
            Ok(())
        })?;
        Ok(target)
    }

    fn put_target(&self, target: &Target) -> Result<(), StoreError> {
        let bytes = encode(target)?;
        self.write(|txn| {
            txn.open_table(TARGETS)
                .map_err(store_err)?
                .insert(target.id.0, bytes.as_slice())
                .map_err(store_err)?;
            Ok(())
        })
    }

    fn remove_target(&self, id: TargetId) -> Result<bool, StoreError> {
        self.write(|txn| {
            Ok(txn.open_table(TARGETS).map_err(store_err)?.remove(id.0).map_err(store_err)?.is_some())
        })
    }

    fn last_runs(&self) -> Result<BTreeMap<(TargetId, Arch), DateTime<Utc>>, StoreError> {
        let read = self.read()?;
        let t = read.open_table(LAST_RUNS).map_err(store_err)?;
        let mut out = BTreeMap::new();
        for row in t.iter().map_err(store_err)? {
            let (k, v) = row.map_err(store_err)?;
            let key = k.value();
            let parsed = key.split_once('/').and_then(|(t, a)| Some((t.parse().ok()?, Arch::new(a).ok()?)));
            match (parsed, DateTime::from_timestamp(v.value(), 0)) {
                (Some((target, arch)), Some(at)) => {
                    out.insert((TargetId(target), arch), at);
                }
                _ => tracing::warn!(key, "unreadable last run in builds.redb ignored"),
            }
        }
        Ok(out)
    }

    fn record_runs(&self, runs: &[(TargetId, Arch)], at: DateTime<Utc>) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut t = txn.open_table(LAST_RUNS).map_err(store_err)?;
            for (target, arch) in runs {
                t.insert(last_run_key(*target, arch).as_str(), at.timestamp()).map_err(store_err)?;
            }
            Ok(())
        })
    }

    fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let read = self.read()?;
        let t = read.open_table(JOBS).map_err(store_err)?;
        let found = t.get(id.0).map_err(store_err)?;
        found.map(|v| decode(v.value())).transpose()
    }

    fn scan_jobs(&self, visit: &mut dyn FnMut(Job) -> ControlFlow<()>) -> Result<(), StoreError> {
        let read = self.read()?;
        let t = read.open_table(JOBS).map_err(store_err)?;
        for row in t.iter().map_err(store_err)?.rev() {
            if visit(decode(row.map_err(store_err)?.1.value())?).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn save_jobs(&self, jobs: &[Job]) -> Result<Pending, StoreError> {
        self.writer.submit(jobs)
    }

    fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let read = self.read()?;
        let t = read.open_table(AGENTS).map_err(store_err)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(store_err)? {
            let stored: StoredAgent = decode(row.map_err(store_err)?.1.value())?;
            out.push(stored.into_record());
        }
        Ok(out)
    }

    fn save_agent(&self, agent: &AgentRecord) -> Result<(), StoreError> {
        let bytes = encode(&StoredAgent::of(agent))?;
        self.write(|txn| {
            txn.open_table(AGENTS)
                .map_err(store_err)?
                .insert(agent.info.id.as_str(), bytes.as_slice())
                .map_err(store_err)?;
            Ok(())
        })
    }

    fn remove_agents(&self, ids: &[AgentId]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.write(|txn| {
            let mut t = txn.open_table(AGENTS).map_err(store_err)?;
            for id in ids {
                t.remove(id.as_str()).map_err(store_err)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redb_store_keeps_the_store_promises() {
        let dir = tempfile::tempdir().unwrap();
        libvieter::builds::conformance::check_store(
            &RedbStore::open(&dir.path().join("builds.redb")).unwrap(),
        );
    }

    /// Records as earlier servers wrote them (raw rows, legacy agent without a key) still load.
    #[test]
    fn existing_data_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("builds.redb");
        {
            let db = redb::Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let target = r#"{"id":7,"kind":"git","url":"https://h/x.git","branch":null,"path":null,"repo":"extra","schedule":"0 3 * *","arch":["x86_64"],"base_image":null,"build_timeout_secs":null,"enabled":true}"#;
                txn.open_table(TARGETS).unwrap().insert(7, target.as_bytes()).unwrap();
                txn.open_table(COUNTERS).unwrap().insert("target", 7).unwrap();
                txn.open_table(LAST_RUNS).unwrap().insert("7/x86_64", 1_735_700_400).unwrap();
                let job = r#"{"id":3,"target":7,"arch":"x86_64","force":false,"trigger":"schedule","state":"queued","attempt":1,"retry_of":null,"queued_at":"2025-01-01T03:00:00Z","not_before":"2025-01-01T03:00:00Z","started_at":null,"finished_at":null,"lease_expires_at":null,"agent":null,"cause":null,"versions":[]}"#;
                txn.open_table(JOBS).unwrap().insert(3, job.as_bytes()).unwrap();
                let mut agents = txn.open_table(AGENTS).unwrap();
                let legacy =
                    r#"{"id":"old","arch":"x86_64","capacity":1,"last_seen":"2025-01-01T00:00:00Z"}"#;
                agents.insert("old", legacy.as_bytes()).unwrap();
                let bound = format!(
                    r#"{{"id":"new","arch":"x86_64","capacity":2,"last_seen":"2025-01-01T00:00:00Z","running":[],"key_sha256":"{}"}}"#,
                    hex::encode([5u8; 32])
                );
                agents.insert("new", bound.as_bytes()).unwrap();
            }
            txn.commit().unwrap();
        }
        let store = RedbStore::open(&path).unwrap();
        let targets = store.targets().unwrap();
        assert_eq!((targets.len(), targets[0].id, targets[0].repo.as_str()), (1, TargetId(7), "extra"));
        let x86 = Arch::new("x86_64").unwrap();
        assert_eq!(
            store.last_runs().unwrap().get(&(TargetId(7), x86)),
            DateTime::from_timestamp(1_735_700_400, 0).as_ref()
        );
        let job = store.job(JobId(3)).unwrap().unwrap();
        assert!(!job.log_truncated() && job.target() == TargetId(7));
        let mut agents = store.agents().unwrap();
        agents.sort_by(|a, b| a.info.id.cmp(&b.info.id));
        assert_eq!((agents[0].info.id.as_str(), agents[0].key), ("new", Some([5u8; 32])));
        assert_eq!((agents[1].info.id.as_str(), agents[1].key), ("old", None));
        // Ids go on after the stored counter.
        let next = store.add_target(targets[0].clone(), Utc::now()).unwrap();
        assert_eq!(next.id, TargetId(8));
    }
}
