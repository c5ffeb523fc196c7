//! redb as libvieter's key-value port ([`libvieter::kv::Kv`]): every table `&str → &[u8]`, a read
//! transaction per snapshot, a write transaction per change (durable when `commit` returns). The row
//! layouts are libvieter's: `vieter.redb` holds the repository's ([`libvieter::repo::kv`]),
//! `builds.redb` the build service's ([`libvieter::builds::kv`], opened in `builds/store.rs`).

use std::ops::{Bound, ControlFlow};
use std::path::Path;

use libvieter::repo::kv::{KeyRange, Kv, KvError, KvRead, KvStore, KvWrite, Visit, TABLES};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

/// The server's metadata store.
pub type Store = KvStore<RedbKv>;

/// A failure of the store.
pub type StoreError = KvError;

pub(crate) type Table = TableDefinition<'static, &'static str, &'static [u8]>;

/// How earlier servers typed two tables of `vieter.redb` (`files`: file name → SHA-256, `pool`:
/// SHA-256 → references); [`open`] moves their rows to the layout's `package_files` and `pool_refs`.
const LEGACY_FILES: TableDefinition<&str, &str> = TableDefinition::new("files");
const LEGACY_POOL: TableDefinition<&str, u64> = TableDefinition::new("pool");

pub(crate) fn db(e: impl Into<redb::Error>) -> KvError {
    KvError::storage(e.into())
}

/// redb as a [`Kv`].
pub struct RedbKv(redb::Database);

impl RedbKv {
    /// Opens (or creates) a database with `tables`; `upgrade` runs in the same write transaction (a
    /// crash leaves the database as it was or upgraded).
    pub fn open(
        path: &Path,
        tables: &[&'static str],
        upgrade: impl FnOnce(&redb::WriteTransaction) -> Result<(), KvError>,
    ) -> Result<RedbKv, KvError> {
        let database = redb::Database::create(path).map_err(db)?;
        let txn = database.begin_write().map_err(db)?;
        for name in tables {
            txn.open_table(Table::new(name)).map_err(db)?;
        }
        upgrade(&txn)?;
        txn.commit().map_err(db)?;
        Ok(RedbKv(database))
    }
}

/// Moves the rows of a table typed as an earlier server typed it into the layout's table `to`
/// (`row` makes the new key and value), then leaves a fence under its name: a table of another type, so
/// that an earlier server started on the upgraded database fails to open it (`TableTypeMismatch`) instead
/// of finding it empty (and, for `files`, deleting every pool file as unreferenced).
pub(crate) fn move_rows<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::WriteTransaction,
    from: TableDefinition<K, V>,
    to: &'static str,
    row: impl Fn(K::SelfType<'_>, V::SelfType<'_>) -> (String, Vec<u8>),
) -> Result<(), KvError> {
    {
        let old = match txn.open_table(from) {
            Ok(old) => old,
            // The fence: moved already.
            Err(redb::TableError::TableTypeMismatch { .. }) => return Ok(()),
            Err(e) => return Err(db(e)),
        };
        let mut new = txn.open_table(Table::new(to)).map_err(db)?;
        for r in old.iter().map_err(db)? {
            let (k, v) = r.map_err(db)?;
            let (key, value) = row(k.value(), v.value());
            new.insert(key.as_str(), value.as_slice()).map_err(db)?;
        }
    }
    txn.delete_table(from).map_err(db)?;
    txn.open_table(TableDefinition::<&str, ()>::new(from.name())).map_err(db)?;
    Ok(())
}

/// Opens (or creates) `vieter.redb`, moving the rows of the tables earlier servers typed otherwise.
pub fn open(path: &Path) -> Result<Store, KvError> {
    let kv = RedbKv::open(path, &TABLES, |txn| {
        move_rows(txn, LEGACY_FILES, "package_files", |k, v| (k.to_owned(), v.as_bytes().to_vec()))?;
        move_rows(txn, LEGACY_POOL, "pool_refs", |k, v| (k.to_owned(), v.to_le_bytes().to_vec()))
    })?;
    Ok(KvStore(kv))
}

fn get_in(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<Vec<u8>>, KvError> {
    Ok(table.get(key).map_err(db)?.map(|v| v.value().to_vec()))
}

fn bounds<'a>(range: KeyRange<'a>) -> (Bound<&'a str>, Bound<&'a str>) {
    (Bound::Included(range.start), range.end.map_or(Bound::Unbounded, Bound::Excluded))
}

fn scan_in(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    range: KeyRange<'_>,
    reverse: bool,
    visit: Visit<'_>,
) -> Result<(), KvError> {
    if range.end.is_some_and(|end| end <= range.start) {
        return Ok(());
    }
    let rows = table.range::<&str>(bounds(range)).map_err(db)?;
    let mut each = |row: Result<_, redb::StorageError>| -> Result<ControlFlow<()>, KvError> {
        let (k, v): (redb::AccessGuard<&str>, redb::AccessGuard<&[u8]>) = row.map_err(db)?;
        Ok(visit(k.value(), v.value()))
    };
    if reverse {
        for row in rows.rev() {
            if each(row)?.is_break() {
                break;
            }
        }
    } else {
        for row in rows {
            if each(row)?.is_break() {
                break;
            }
        }
    }
    Ok(())
}

/// A read snapshot of [`RedbKv`].
pub struct RedbRead(redb::ReadTransaction);

/// A write transaction of [`RedbKv`].
pub struct RedbWrite(redb::WriteTransaction);

/// A snapshot and a write transaction read alike (both open tables by name).
macro_rules! redb_reads {
    ($($ty:ty),*) => {$(
        impl KvRead for $ty {
            fn get(&self, table: &'static str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
                get_in(&self.0.open_table(Table::new(table)).map_err(db)?, key)
            }

            fn scan(
                &self,
                table: &'static str,
                range: KeyRange<'_>,
                reverse: bool,
                visit: Visit<'_>,
            ) -> Result<(), KvError> {
                scan_in(&self.0.open_table(Table::new(table)).map_err(db)?, range, reverse, visit)
            }
        }
    )*};
}

redb_reads!(RedbRead, RedbWrite);

impl KvWrite for RedbWrite {
    fn put(&mut self, table: &'static str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.0.open_table(Table::new(table)).map_err(db)?.insert(key, value).map_err(db)?;
        Ok(())
    }

    fn take(&mut self, table: &'static str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let mut t = self.0.open_table(Table::new(table)).map_err(db)?;
        let old = t.remove(key).map_err(db)?.map(|v| v.value().to_vec());
        Ok(old)
    }

    fn remove_range(&mut self, table: &'static str, range: KeyRange<'_>) -> Result<(), KvError> {
        if range.end.is_some_and(|end| end <= range.start) {
            return Ok(());
        }
        let mut t = self.0.open_table(Table::new(table)).map_err(db)?;
        t.retain_in::<&str, _>(bounds(range), |_, _| false).map_err(db)?;
        Ok(())
    }

    fn commit(self) -> Result<(), KvError> {
        self.0.commit().map_err(db)
    }
}

impl Kv for RedbKv {
    type Read<'a> = RedbRead;
    type Write<'a> = RedbWrite;

    fn read(&self) -> Result<RedbRead, KvError> {
        Ok(RedbRead(self.0.begin_read().map_err(db)?))
    }

    fn write(&self) -> Result<RedbWrite, KvError> {
        Ok(RedbWrite(self.0.begin_write().map_err(db)?))
    }
}

#[cfg(test)]
mod tests {
    use libvieter::name::{Arch, PkgName, RepoName};
    use libvieter::repo::{BlobStore, RepoStore, Repository};

    use super::*;

    #[test]
    fn redb_keeps_the_promises_of_the_key_value_port() {
        let dir = tempfile::tempdir().unwrap();
        let kv = RedbKv::open(&dir.path().join("kv.redb"), &["a", "b"], |_| Ok(())).unwrap();
        libvieter::kv::check(&kv, ["a", "b"]);
    }

    /// The redb store with the directory blobs keeps every promise of the repository ports, crash
    /// ordering included.
    #[test]
    fn redb_and_directory_blobs_keep_every_promise() {
        let dirs = std::cell::RefCell::new(Vec::new());
        libvieter::repo::conformance::check(|| {
            let dir = tempfile::tempdir().expect("a temp dir");
            let store = open(&dir.path().join("vieter.redb")).expect("opening redb");
            let blobs = libvieter::fs::DirBlobs::open(dir.path()).expect("opening blobs");
            dirs.borrow_mut().push(dir);
            (store, blobs)
        });
    }

    fn repository(dir: &Path) -> Repository<Store, libvieter::fs::DirBlobs> {
        let store = open(&dir.join("vieter.redb")).unwrap();
        let blobs = libvieter::fs::DirBlobs::open(dir).unwrap();
        let x86 = Arch::new("x86_64").unwrap();
        Repository::new(store, blobs, x86, libvieter::db::DbFormat::Current, chrono::Utc::now)
    }

    fn publish(repo: &Repository<Store, libvieter::fs::DirBlobs>, name: &str, files: &[&str]) {
        let bytes = libvieter::repo::conformance::package_bytes(name, "1-1", "x86_64", files);
        let mut upload = repo.blobs().create_upload().unwrap();
        std::io::Write::write_all(&mut upload, &bytes).unwrap();
        repo.publish(&RepoName::new("extra").unwrap(), upload).unwrap();
    }

    /// Range scans of the adapter (bounded, reversed, starting inside a row) page a file list.
    #[test]
    fn a_file_list_is_paged_from_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repository(dir.path());
        let files: Vec<String> = (0..2500).map(|i| format!("usr/share/f{i:05}")).collect();
        publish(&repo, "big", &files.iter().map(String::as_str).collect::<Vec<_>>());
        let (r, a, n) =
            (RepoName::new("extra").unwrap(), Arch::new("x86_64").unwrap(), PkgName::new("big").unwrap());
        let (page, total) = repo.store().file_page(&r, &a, &n, 995, 10, 1 << 20).unwrap().unwrap();
        assert_eq!(total, 2500);
        assert_eq!(page, files[995..1005], "a page across two rows");
        let (page, _) = repo.store().file_page(&r, &a, &n, 2498, 10, 1 << 20).unwrap().unwrap();
        assert_eq!(page.len(), 2, "the end of the list");
    }

    /// A `vieter.redb` whose `files` and `pool` tables are typed as earlier servers wrote them opens with
    /// every row: the package file is still found and its pool file still referenced.
    #[test]
    fn a_database_of_an_earlier_server_opens_with_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vieter.redb");
        let (r, a) = (RepoName::new("extra").unwrap(), Arch::new("x86_64").unwrap());
        let (filename, sha) = {
            let repo = repository(dir.path());
            publish(&repo, "old", &["usr/bin/old"]);
            let summary = repo.store().summaries(&r, &a).unwrap().remove(0);
            let sha = repo.store().file_hash(&r, &a, &summary.filename).unwrap().unwrap();
            (summary.filename, sha)
        };
        // Rewrite the two tables the way earlier servers typed them.
        {
            let database = redb::Database::create(&path).unwrap();
            let txn = database.begin_write().unwrap();
            txn.delete_table(Table::new("package_files")).unwrap();
            txn.delete_table(TableDefinition::<&str, ()>::new("files")).unwrap();
            txn.delete_table(TableDefinition::<&str, ()>::new("pool")).unwrap();
            txn.delete_table(Table::new("pool_refs")).unwrap();
            txn.open_table(LEGACY_FILES)
                .unwrap()
                .insert(format!("extra/x86_64/{filename}").as_str(), sha.as_str())
                .unwrap();
            txn.open_table(LEGACY_POOL).unwrap().insert(sha.as_str(), 1).unwrap();
            txn.commit().unwrap();
        }
        let repo = repository(dir.path());
        assert_eq!(repo.store().file_hash(&r, &a, &filename).unwrap().as_deref(), Some(sha.as_str()));
        assert!(repo.store().is_referenced(&sha).unwrap());
        assert!(repo.store().pool_hashes().unwrap().iter().eq([&sha]), "the one pool file");
        let report = repo.recover().unwrap();
        assert_eq!(report.orphans_removed, 0, "the pool file is still referenced: {report:?}");
        drop(repo);
        // An earlier server opening the upgraded database fails on the fences, before any recovery.
        let database = redb::Database::create(&path).unwrap();
        let txn = database.begin_write().unwrap();
        let refused = txn.open_table(LEGACY_FILES).map(drop).unwrap_err();
        assert!(matches!(refused, redb::TableError::TableTypeMismatch { .. }), "{refused}");
        assert!(txn.open_table(LEGACY_POOL).is_err());
        drop(txn);
        drop(database);
        // And the upgraded database opens again (a fence is not moved).
        let repo = repository(dir.path());
        assert_eq!(repo.store().file_hash(&r, &a, &filename).unwrap().as_deref(), Some(sha.as_str()));
    }
}
