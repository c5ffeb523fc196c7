//! `builds.redb`: libvieter's build-service layout ([`libvieter::builds::kv`], whose documentation
//! lists the tables) over redb ([`crate::store::RedbKv`]).
//!
//! Earlier servers typed four tables otherwise (`targets` and `jobs`: `u64` id → JSON, `counters`:
//! `&str → u64`, `last_runs`: `&str → i64`); [`open`] moves their rows into the layout's tables in the
//! transaction that creates them. `agents` was already the layout's.

use std::path::Path;

use libvieter::builds::kv::{id_key, TABLES};
use libvieter::builds::{KvBuildStore, StoreError};
use redb::TableDefinition;

use crate::store::{move_rows, RedbKv};

/// The server's [`libvieter::builds::BuildStore`].
pub type RedbStore = KvBuildStore<RedbKv>;

const LEGACY_TARGETS: TableDefinition<u64, &[u8]> = TableDefinition::new("targets");
const LEGACY_JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
const LEGACY_COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
const LEGACY_LAST_RUNS: TableDefinition<&str, i64> = TableDefinition::new("last_runs");

/// Opens (or creates) `builds.redb` and starts the job writer.
pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
    let kv = RedbKv::open(path, &TABLES, |txn| {
        move_rows(txn, LEGACY_TARGETS, "build_targets", |k, v| (id_key(k), v.to_vec()))?;
        move_rows(txn, LEGACY_JOBS, "build_jobs", |k, v| (id_key(k), v.to_vec()))?;
        move_rows(txn, LEGACY_COUNTERS, "build_counters", |k, v| (k.to_owned(), v.to_le_bytes().to_vec()))?;
        move_rows(txn, LEGACY_LAST_RUNS, "build_last_runs", |k, v| (k.to_owned(), v.to_le_bytes().to_vec()))
    })
    .map_err(StoreError::new)?;
    KvBuildStore::open(kv)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use libvieter::builds::BuildStore;
    use libvieter::job::JobId;
    use libvieter::name::Arch;
    use libvieter::target::TargetId;

    use super::*;

    #[test]
    fn the_redb_store_keeps_the_store_promises() {
        let dir = tempfile::tempdir().unwrap();
        libvieter::builds::conformance::check_store(&open(&dir.path().join("builds.redb")).unwrap());
    }

    /// Records as earlier servers wrote them (their table types, raw rows, a legacy agent without a key)
    /// still load.
    #[test]
    fn existing_data_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("builds.redb");
        {
            let db = redb::Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let target = r#"{"id":7,"kind":"git","url":"https://h/x.git","branch":null,"path":null,"repo":"extra","schedule":"0 3 * *","arch":["x86_64"],"base_image":null,"build_timeout_secs":null,"enabled":true}"#;
                txn.open_table(LEGACY_TARGETS).unwrap().insert(7, target.as_bytes()).unwrap();
                txn.open_table(LEGACY_COUNTERS).unwrap().insert("target", 7).unwrap();
                txn.open_table(LEGACY_LAST_RUNS).unwrap().insert("7/x86_64", 1_735_700_400).unwrap();
                let job = r#"{"id":3,"target":7,"arch":"x86_64","force":false,"trigger":"schedule","state":"queued","attempt":1,"retry_of":null,"queued_at":"2025-01-01T03:00:00Z","not_before":"2025-01-01T03:00:00Z","started_at":null,"finished_at":null,"lease_expires_at":null,"agent":null,"cause":null,"versions":[]}"#;
                txn.open_table(LEGACY_JOBS).unwrap().insert(3, job.as_bytes()).unwrap();
                let mut agents = txn.open_table(TableDefinition::<&str, &[u8]>::new("agents")).unwrap();
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
        let store = open(&path).unwrap();
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
        drop(store);
        // An earlier server opening the upgraded database fails on the fences.
        let database = redb::Database::create(&path).unwrap();
        let txn = database.begin_write().unwrap();
        for refused in [
            txn.open_table(LEGACY_TARGETS).map(drop),
            txn.open_table(LEGACY_JOBS).map(drop),
            txn.open_table(LEGACY_COUNTERS).map(drop),
            txn.open_table(LEGACY_LAST_RUNS).map(drop),
        ] {
            assert!(matches!(refused, Err(redb::TableError::TableTypeMismatch { .. })), "{refused:?}");
        }
        drop(txn);
        drop(database);
        // The upgraded database opens again with its rows.
        assert_eq!(open(&path).unwrap().job(JobId(3)).unwrap().map(|j| j.target()), Some(TargetId(7)));
    }
}
