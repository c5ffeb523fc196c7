//! The port of an ordered, transactional key-value database, and an implementation in memory.
//!
//! Named tables of `str` keys and byte values, read snapshots and serialized write transactions: what
//! redb, LMDB or RocksDB give. libvieter writes the row layouts of its stores once over it
//! ([`crate::repo::kv::KvStore`], [`crate::builds::KvBuildStore`]); an embedder implements [`Kv`] for
//! its database (the server's redb adapter is under two hundred lines) and gets both.

use std::collections::BTreeMap;
use std::io;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, MutexGuard};

/// A failure of a key-value store or of a layout over it.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The key-value store failed.
    #[error("database: {0}")]
    Storage(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A stored record could not be read.
    #[error("stored record is damaged: {0}")]
    Damaged(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A reader of the records failed (a writer of an archive).
    #[error("writing an archive: {0}")]
    Io(#[from] io::Error),
}

impl KvError {
    /// A failure of the key-value store itself.
    pub fn storage(e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> KvError {
        KvError::Storage(e.into())
    }

    /// A record that could not be decoded.
    pub fn damaged(e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> KvError {
        KvError::Damaged(e.into())
    }
}

/// The half-open key range `[start, end)` of a scan; `end: None` is the end of the table.
#[derive(Debug, Clone, Copy)]
pub struct KeyRange<'a> {
    pub start: &'a str,
    pub end: Option<&'a str>,
}

/// What a visitor of a scan says after each row.
pub type Visit<'a> = &'a mut dyn FnMut(&str, &[u8]) -> ControlFlow<()>;

/// Reads of a snapshot or of a write transaction (which sees its own writes).
pub trait KvRead {
    /// The value of `key` in `table`.
    fn get(&self, table: &'static str, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Passes the rows of `range` to `visit` in key order (byte order; reversed when `reverse`), until it
    /// breaks.
    fn scan(
        &self,
        table: &'static str,
        range: KeyRange<'_>,
        reverse: bool,
        visit: Visit<'_>,
    ) -> Result<(), KvError>;
}

/// A write transaction: nothing it did is visible or durable before [`KvWrite::commit`] returns;
/// dropped uncommitted, it did nothing.
pub trait KvWrite: KvRead {
    fn put(&mut self, table: &'static str, key: &str, value: &[u8]) -> Result<(), KvError>;
    /// Removes a row; returns its value.
    fn take(&mut self, table: &'static str, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Removes every row of a range.
    fn remove_range(&mut self, table: &'static str, range: KeyRange<'_>) -> Result<(), KvError>;
    /// Makes every write durable and visible, at once.
    fn commit(self) -> Result<(), KvError>;
}

/// A transactional ordered key-value store: named tables of `str` keys and byte values.
pub trait Kv: Send + Sync {
    type Read<'a>: KvRead
    where
        Self: 'a;
    type Write<'a>: KvWrite
    where
        Self: 'a;
    /// A snapshot of the last committed state.
    fn read(&self) -> Result<Self::Read<'_>, KvError>;
    /// Begins a write transaction; write transactions are serialized.
    fn write(&self) -> Result<Self::Write<'_>, KvError>;
}

/// Tables in memory: table name → key → value.
type Tables = BTreeMap<&'static str, BTreeMap<String, Vec<u8>>>;

/// A [`Kv`] in memory, to check the layout and for embedders that want it. A write transaction works
/// on a copy of every row (fine for tests, not for large data) and commit swaps it in. Clones share
/// the same rows.
#[derive(Debug, Clone, Default)]
pub struct MemoryKv {
    tables: Arc<Mutex<Arc<Tables>>>,
    writer: Arc<Mutex<()>>,
}

/// A snapshot of a [`MemoryKv`].
pub struct MemoryKvRead(Arc<Tables>);

/// A write transaction of a [`MemoryKv`].
pub struct MemoryKvWrite<'a> {
    kv: &'a MemoryKv,
    tables: Tables,
    _serialized: MutexGuard<'a, ()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn get_row(tables: &Tables, table: &'static str, key: &str) -> Option<Vec<u8>> {
    tables.get(table).and_then(|rows| rows.get(key)).cloned()
}

fn scan_rows(tables: &Tables, table: &'static str, range: KeyRange<'_>, reverse: bool, visit: Visit<'_>) {
    use std::ops::Bound;
    let Some(rows) = tables.get(table) else { return };
    let end = range.end.map_or(Bound::Unbounded, Bound::Excluded);
    if range.end.is_some_and(|end| end <= range.start) {
        return;
    }
    let mut rows = rows.range::<str, _>((Bound::Included(range.start), end));
    let mut visit = |(k, v): (&String, &Vec<u8>)| visit(k, v);
    let _ = if reverse { rows.rev().try_for_each(&mut visit) } else { rows.try_for_each(&mut visit) };
}

impl MemoryKvRead {
    fn tables(&self) -> &Tables {
        &self.0
    }
}

impl MemoryKvWrite<'_> {
    fn tables(&self) -> &Tables {
        &self.tables
    }
}

/// A snapshot and a write transaction read alike: from their `tables()`.
macro_rules! memory_reads {
    ($($ty:ty),*) => {$(
        impl KvRead for $ty {
            fn get(&self, table: &'static str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
                Ok(get_row(self.tables(), table, key))
            }

            fn scan(
                &self,
                table: &'static str,
                range: KeyRange<'_>,
                reverse: bool,
                visit: Visit<'_>,
            ) -> Result<(), KvError> {
                scan_rows(self.tables(), table, range, reverse, visit);
                Ok(())
            }
        }
    )*};
}

memory_reads!(MemoryKvRead, MemoryKvWrite<'_>);

impl KvWrite for MemoryKvWrite<'_> {
    fn put(&mut self, table: &'static str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.tables.entry(table).or_default().insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn take(&mut self, table: &'static str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.tables.get_mut(table).and_then(|rows| rows.remove(key)))
    }

    fn remove_range(&mut self, table: &'static str, range: KeyRange<'_>) -> Result<(), KvError> {
        let mut keys = Vec::new();
        scan_rows(&self.tables, table, range, false, &mut |k, _| {
            keys.push(k.to_owned());
            ControlFlow::Continue(())
        });
        if let Some(rows) = self.tables.get_mut(table) {
            for k in keys {
                rows.remove(&k);
            }
        }
        Ok(())
    }

    fn commit(self) -> Result<(), KvError> {
        *lock(&self.kv.tables) = Arc::new(self.tables);
        Ok(())
    }
}

impl Kv for MemoryKv {
    type Read<'a> = MemoryKvRead;
    type Write<'a> = MemoryKvWrite<'a>;

    fn read(&self) -> Result<MemoryKvRead, KvError> {
        Ok(MemoryKvRead(lock(&self.tables).clone()))
    }

    fn write(&self) -> Result<MemoryKvWrite<'_>, KvError> {
        let serialized = lock(&self.writer);
        let tables = Tables::clone(&lock(&self.tables));
        Ok(MemoryKvWrite { kv: self, tables, _serialized: serialized })
    }
}

/// The promises of a [`Kv`], checked on `kv` with two tables it has (empty): half-open ranges in byte
/// order, both directions, visitors that stop, own writes seen, dropped transactions undone, snapshots
/// isolated from later commits, tables independent. Panics on the first broken promise.
pub fn check<K: Kv>(kv: &K, [a, b]: [&'static str; 2]) {
    fn rows(
        r: &impl KvRead,
        table: &'static str,
        start: &str,
        end: Option<&str>,
        reverse: bool,
    ) -> Vec<String> {
        let mut out = Vec::new();
        r.scan(table, KeyRange { start, end }, reverse, &mut |k, v| {
            out.push(format!("{k}={}", String::from_utf8_lossy(v)));
            ControlFlow::Continue(())
        })
        .expect("scan");
        out
    }
    let read = kv.read().expect("read");
    assert_eq!(read.get(a, "x").expect("get"), None, "a new table is empty");
    assert!(rows(&read, a, "", None, false).is_empty());

    let mut w = kv.write().expect("write");
    w.put(a, "k/1", b"1").expect("put");
    drop(w);
    assert_eq!(kv.read().expect("read").get(a, "k/1").expect("get"), None, "a dropped write did nothing");

    let mut w = kv.write().expect("write");
    for (k, v) in
        [("k/1", "1"), ("k/10", "10"), ("k/2", "2"), ("k/\u{e9}", "e"), ("k0", "next"), ("j", "before")]
    {
        w.put(a, k, v.as_bytes()).expect("put");
    }
    w.put(b, "k/1", b"other").expect("put");
    assert_eq!(w.get(a, "k/2").expect("get").as_deref(), Some(&b"2"[..]), "a transaction sees its writes");
    assert_eq!(rows(&w, a, "k/", Some("k0"), false), ["k/1=1", "k/10=10", "k/2=2", "k/\u{e9}=e"]);
    w.commit().expect("commit");

    let before = kv.read().expect("read");
    assert_eq!(
        rows(&before, a, "k/", Some("k0"), false),
        ["k/1=1", "k/10=10", "k/2=2", "k/\u{e9}=e"],
        "byte order"
    );
    assert_eq!(
        rows(&before, a, "k/", Some("k0"), true),
        ["k/\u{e9}=e", "k/2=2", "k/10=10", "k/1=1"],
        "reversed"
    );
    assert_eq!(rows(&before, a, "k/10", Some("k/2"), false), ["k/10=10"], "start included, end excluded");
    assert_eq!(rows(&before, a, "k0", None, false), ["k0=next"], "to the end of the table");
    assert!(rows(&before, a, "k/2", Some("k/1"), false).is_empty(), "an empty range");
    assert_eq!(rows(&before, b, "", None, false), ["k/1=other"], "tables are independent");
    let mut first = Vec::new();
    before
        .scan(a, KeyRange { start: "", end: None }, true, &mut |k, _| {
            first.push(k.to_owned());
            ControlFlow::Break(())
        })
        .expect("scan");
    assert_eq!(first, ["k0"], "a visitor that breaks sees one row");

    let mut w = kv.write().expect("write");
    assert_eq!(w.take(a, "k/2").expect("take").as_deref(), Some(&b"2"[..]), "take returns the value");
    assert_eq!(w.take(a, "k/2").expect("take"), None);
    w.remove_range(a, KeyRange { start: "k/", end: Some("k/2") }).expect("remove_range");
    w.put(a, "j", b"changed").expect("put");
    w.commit().expect("commit");
    assert_eq!(rows(&before, a, "", None, false).len(), 6, "a snapshot does not see later commits");
    let after = kv.read().expect("read");
    assert_eq!(rows(&after, a, "", None, false), ["j=changed", "k/\u{e9}=e", "k0=next"]);
    assert_eq!(rows(&after, b, "", None, false), ["k/1=other"]);
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_memory_kv_keeps_the_promises() {
        super::check(&super::MemoryKv::default(), ["a", "b"]);
    }
}
