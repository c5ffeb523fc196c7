//! Persistent state in redb: the only module that knows redb.
//!
//! Keys are `/`-joined paths (`repo/arch/name`): repository names, architectures, package names and file
//! names cannot contain `/`, so a prefix range scan lists exactly one arch-repo. Tables:
//!
//! | table | key | value |
//! |---|---|---|
//! | `members` | `repo/arch/pkgname` | the entry's two gzip members: `u32` LE length of the db member, then the db member, then the files member |
//! | `summaries` | `repo/arch/pkgname` | postcard [`PackageSummary`] |
//! | `details` | `repo/arch/pkgname` | postcard [`Package`] (all metadata, without the file list) |
//! | `file_lists` | `repo/arch/pkgname/{first:08}` | postcard `Vec<String>`: the names of the file list from index `first` on, at most [`FILE_CHUNK`] names or [`FILE_CHUNK_BYTES`] bytes |
//! | `files` | `repo/arch/filename` | SHA-256 of the package file in the pool |
//! | `pool` | SHA-256 | number of `files` rows pointing at it |
//! | `arch_repos` | `repo/arch` | postcard [`ArchRecord`] |
//! | `history` | `repo/arch/pkgname/{seq:016x}` | postcard [`PackageEvent`]: the name's history, oldest first (a higher `seq` is newer) |
//!
//! Every change is one write transaction; redb commits are durable when `commit` returns. What the
//! rows mean and which change when is `libvieter::repo::Repository`'s: this is its `RepoStore`.

use std::collections::BTreeSet;
use std::path::Path;

use libvieter::api::{PackageEvent, PackageSummary};
use libvieter::db::ArchiveKind;
use libvieter::name::{Arch, PkgName, RepoName};
use libvieter::package::Package;
use libvieter::repo::{ArchRecord, EntryRecord, RepoStore, RepoTxn};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

const MEMBERS: TableDefinition<&str, &[u8]> = TableDefinition::new("members");
const SUMMARIES: TableDefinition<&str, &[u8]> = TableDefinition::new("summaries");
const DETAILS: TableDefinition<&str, &[u8]> = TableDefinition::new("details");
const FILES: TableDefinition<&str, &str> = TableDefinition::new("files");
const POOL: TableDefinition<&str, u64> = TableDefinition::new("pool");
const ARCH_REPOS: TableDefinition<&str, &[u8]> = TableDefinition::new("arch_repos");
const FILE_LISTS: TableDefinition<&str, &[u8]> = TableDefinition::new("file_lists");
const HISTORY: TableDefinition<&str, &[u8]> = TableDefinition::new("history");

/// Most names in one `file_lists` row: a page of a package's file list reads a few small rows, never the
/// whole list.
pub const FILE_CHUNK: usize = 1000;
/// Most bytes of names in one `file_lists` row (a row holds at least one name).
pub const FILE_CHUNK_BYTES: usize = 64 * 1024;

/// The `file_lists` key of the row whose first name has index `first`.
fn chunk_key(pkg_key: &str, first: usize) -> String {
    format!("{pkg_key}/{first:08}")
}

/// Splits a file list into rows of at most [`FILE_CHUNK`] names and [`FILE_CHUNK_BYTES`] bytes; returns
/// each row's first index and its names.
fn file_rows(files: &[String]) -> Vec<(usize, &[String])> {
    let mut rows = Vec::new();
    let mut start = 0;
    while start < files.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < files.len()
            && end - start < FILE_CHUNK
            && (end == start || bytes + files[end].len() <= FILE_CHUNK_BYTES)
        {
            bytes += files[end].len();
            end += 1;
        }
        rows.push((start, &files[start..end]));
        start = end;
    }
    rows
}

/// Removes every `file_lists` row of one package.
fn remove_file_list(table: &mut redb::Table<&str, &[u8]>, pkg_key: &str) -> Result<(), StoreError> {
    let (lo, hi) = prefix_range(pkg_key);
    table.retain_in(lo.as_str()..hi.as_str(), |_, _| false)?;
    Ok(())
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    #[error("stored record is damaged: {0}")]
    Decode(#[from] postcard::Error),
    #[error("writing an archive: {0}")]
    Io(#[from] std::io::Error),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

fn key(parts: &[&str]) -> String {
    parts.join("/")
}

/// The half-open key range of everything under `prefix/`.
fn prefix_range(prefix: &str) -> (String, String) {
    // '0' is the character after '/'.
    (format!("{prefix}/"), format!("{prefix}0"))
}

fn arch_key(repo: &RepoName, arch: &Arch) -> String {
    key(&[repo.as_str(), arch.as_str()])
}

fn pkg_key(repo: &RepoName, arch: &Arch, name: &str) -> String {
    key(&[repo.as_str(), arch.as_str(), name])
}

/// The redb database.
pub struct Store {
    db: redb::Database,
}

impl Store {
    /// Opens (or creates) the database and its tables.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = redb::Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(MEMBERS)?;
        txn.open_table(SUMMARIES)?;
        txn.open_table(DETAILS)?;
        txn.open_table(FILES)?;
        txn.open_table(POOL)?;
        txn.open_table(ARCH_REPOS)?;
        txn.open_table(FILE_LISTS)?;
        txn.open_table(HISTORY)?;
        txn.commit()?;
        Ok(Store { db })
    }
}

/// A write transaction of [`Store`].
pub struct StoreTxn {
    txn: redb::WriteTransaction,
}

impl RepoStore for Store {
    type Error = StoreError;
    type Txn<'a> = StoreTxn;

    fn begin(&self) -> Result<StoreTxn, StoreError> {
        Ok(StoreTxn { txn: self.db.begin_write()? })
    }

    fn arch_repos(&self) -> Result<Vec<(RepoName, Arch, ArchRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ARCH_REPOS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            if let Some((repo, arch)) = k.value().split_once('/') {
                // Rows are written from validated names only.
                if let (Ok(repo), Ok(arch)) = (RepoName::new(repo), Arch::new(arch)) {
                    out.push((repo, arch, postcard::from_bytes(v.value())?));
                }
            }
        }
        Ok(out)
    }

    fn arches_of(&self, repo: &RepoName) -> Result<BTreeSet<Arch>, StoreError> {
        let txn = self.db.begin_read()?;
        arches_in(&txn.open_table(ARCH_REPOS)?, repo)
    }

    fn has_arch_repo(&self, repo: &RepoName, arch: &Arch) -> Result<bool, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ARCH_REPOS)?;
        Ok(table.get(arch_key(repo, arch).as_str())?.is_some())
    }

    fn summaries(&self, repo: &RepoName, arch: &Arch) -> Result<Vec<PackageSummary>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SUMMARIES)?;
        let (lo, hi) = prefix_range(&arch_key(repo, arch));
        let mut out = Vec::new();
        for row in table.range(lo.as_str()..hi.as_str())? {
            let (_, v) = row?;
            out.push(postcard::from_bytes(v.value())?);
        }
        Ok(out)
    }

    fn package(
        &self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
    ) -> Result<Option<(PackageSummary, Package)>, StoreError> {
        let txn = self.db.begin_read()?;
        let k = pkg_key(repo, arch, name.as_str());
        let Some(summary) = txn.open_table(SUMMARIES)?.get(k.as_str())?.map(|v| v.value().to_vec()) else {
            return Ok(None);
        };
        let Some(detail) = txn.open_table(DETAILS)?.get(k.as_str())?.map(|v| v.value().to_vec()) else {
            return Ok(None);
        };
        Ok(Some((postcard::from_bytes(&summary)?, postcard::from_bytes(&detail)?)))
    }

    fn file_page(
        &self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
        offset: usize,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Option<(Vec<String>, u64)>, StoreError> {
        let txn = self.db.begin_read()?;
        let pkg_key = pkg_key(repo, arch, name.as_str());
        let Some(detail) = txn.open_table(DETAILS)?.get(pkg_key.as_str())?.map(|v| v.value().to_vec()) else {
            return Ok(None);
        };
        let table = txn.open_table(FILE_LISTS)?;
        let (lo, hi) = prefix_range(&pkg_key);
        // The last row tells the length: its first index plus its names.
        let last = table.range(lo.as_str()..hi.as_str())?.next_back().transpose()?;
        let Some((last_key, last_value)) = last else {
            // Recorded before file lists had their own table: the list is in the details.
            let package: Package = postcard::from_bytes(&detail)?;
            let total = package.files.len() as u64;
            return Ok(Some((libvieter::repo::file_page(&package.files, offset, limit, max_bytes), total)));
        };
        let first_of =
            |k: &str| -> usize { k.rsplit('/').next().and_then(|n| n.parse().ok()).unwrap_or_default() };
        let last_first = first_of(last_key.value());
        let total = last_first + postcard::from_bytes::<Vec<String>>(last_value.value())?.len();
        let mut page: Vec<String> = Vec::new();
        if offset >= total {
            return Ok(Some((page, total as u64)));
        }
        // The row holding `offset`: the last one starting at or before it.
        let at = chunk_key(&pkg_key, offset);
        let start = match table.range(lo.as_str()..=at.as_str())?.next_back().transpose()? {
            Some((k, _)) => k.value().to_owned(),
            None => lo.clone(),
        };
        let mut bytes = 0;
        'rows: for row in table.range(start.as_str()..hi.as_str())? {
            let (k, v) = row?;
            let first = first_of(k.value());
            let names: Vec<String> = postcard::from_bytes(v.value())?;
            for (i, name) in names.into_iter().enumerate() {
                if first + i < offset {
                    continue;
                }
                if page.len() >= limit || (!page.is_empty() && bytes + name.len() > max_bytes) {
                    break 'rows;
                }
                bytes += name.len();
                page.push(name);
            }
        }
        Ok(Some((page, total as u64)))
    }

    fn file_hash(&self, repo: &RepoName, arch: &Arch, filename: &str) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(FILES)?;
        Ok(table.get(pkg_key(repo, arch, filename).as_str())?.map(|v| v.value().to_owned()))
    }

    fn history(&self, repo: &RepoName, arch: &Arch, name: &PkgName) -> Result<Vec<PackageEvent>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(HISTORY)?;
        let (lo, hi) = prefix_range(&pkg_key(repo, arch, name.as_str()));
        let mut out = Vec::new();
        for row in table.range(lo.as_str()..hi.as_str())?.rev() {
            out.push(postcard::from_bytes(row?.1.value())?);
        }
        Ok(out)
    }

    fn is_referenced(&self, sha256: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(POOL)?;
        Ok(table.get(sha256)?.is_some_and(|v| v.value() > 0))
    }

    fn pool_hashes(&self) -> Result<BTreeSet<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(POOL)?;
        let mut out = BTreeSet::new();
        for row in table.iter()? {
            let (k, v) = row?;
            if v.value() > 0 {
                out.insert(k.value().to_owned());
            }
        }
        Ok(out)
    }

    fn each_member(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
        each: &mut dyn FnMut(&str, &[u8]) -> std::io::Result<()>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MEMBERS)?;
        let (lo, hi) = prefix_range(&arch_key(repo, arch));
        for row in table.range(lo.as_str()..hi.as_str())? {
            let (k, v) = row?;
            let key = k.value();
            let name = key.get(lo.len()..).unwrap_or_default();
            let bytes = v.value();
            let split = bytes.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
            let member = split.and_then(|len| match kind {
                ArchiveKind::Db => bytes.get(4..4 + len),
                ArchiveKind::Files => bytes.get(4 + len..),
            });
            let member = member.ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "damaged stored archive member")
            })?;
            each(name, member)?;
        }
        Ok(())
    }
}

impl RepoTxn for StoreTxn {
    type Error = StoreError;

    fn arches_of(&self, repo: &RepoName) -> Result<BTreeSet<Arch>, StoreError> {
        arches_in(&self.txn.open_table(ARCH_REPOS)?, repo)
    }

    fn has_arch_repo(&self, repo: &RepoName, arch: &Arch) -> Result<bool, StoreError> {
        Ok(self.txn.open_table(ARCH_REPOS)?.get(arch_key(repo, arch).as_str())?.is_some())
    }

    fn put_arch_repo(&mut self, repo: &RepoName, arch: &Arch, record: &ArchRecord) -> Result<(), StoreError> {
        let record = postcard::to_stdvec(record)?;
        self.txn.open_table(ARCH_REPOS)?.insert(arch_key(repo, arch).as_str(), record.as_slice())?;
        Ok(())
    }

    fn remove_arch_repo(&mut self, repo: &RepoName, arch: &Arch) -> Result<(), StoreError> {
        self.txn.open_table(ARCH_REPOS)?.remove(arch_key(repo, arch).as_str())?;
        let (lo, hi) = prefix_range(&arch_key(repo, arch));
        self.txn.open_table(HISTORY)?.retain_in(lo.as_str()..hi.as_str(), |_, _| false)?;
        Ok(())
    }

    fn names(&self, repo: &RepoName, arch: &Arch) -> Result<Vec<PkgName>, StoreError> {
        let table = self.txn.open_table(SUMMARIES)?;
        let (lo, hi) = prefix_range(&arch_key(repo, arch));
        let mut out = Vec::new();
        for row in table.range(lo.as_str()..hi.as_str())? {
            let (k, _) = row?;
            // Rows are written from validated names only.
            if let Ok(name) = PkgName::new(k.value().rsplit('/').next().unwrap_or_default()) {
                out.push(name);
            }
        }
        Ok(out)
    }

    fn entry_filename(
        &self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
    ) -> Result<Option<String>, StoreError> {
        let table = self.txn.open_table(SUMMARIES)?;
        let row = table.get(pkg_key(repo, arch, name.as_str()).as_str())?;
        Ok(match row {
            Some(old) => Some(postcard::from_bytes::<PackageSummary>(old.value())?.filename),
            None => None,
        })
    }

    fn put_entry(
        &mut self,
        repo: &RepoName,
        arch: &Arch,
        record: &EntryRecord<'_>,
    ) -> Result<(), StoreError> {
        let k = pkg_key(repo, arch, record.summary.name.as_str());
        let summary = postcard::to_stdvec(record.summary)?;
        let p = record.package;
        // The file list goes to its own rows: a package's details stay small whatever its size.
        let without_files = Package {
            info: p.info.clone(),
            pkginfo: p.pkginfo.clone(),
            files: Vec::new(),
            compression: p.compression,
            csize: p.csize,
            sha256: p.sha256.clone(),
            md5: p.md5.clone(),
        };
        let detail = postcard::to_stdvec(&without_files)?;
        let entry = record.entry;
        let mut members = Vec::with_capacity(4 + entry.db_member.len() + entry.files_member.len());
        members.extend_from_slice(&(entry.db_member.len() as u32).to_le_bytes());
        members.extend_from_slice(&entry.db_member);
        members.extend_from_slice(&entry.files_member);
        self.txn.open_table(MEMBERS)?.insert(k.as_str(), members.as_slice())?;
        self.txn.open_table(SUMMARIES)?.insert(k.as_str(), summary.as_slice())?;
        self.txn.open_table(DETAILS)?.insert(k.as_str(), detail.as_slice())?;
        let mut lists = self.txn.open_table(FILE_LISTS)?;
        remove_file_list(&mut lists, &k)?;
        for (first, names) in file_rows(&p.files) {
            let row = postcard::to_stdvec(names)?;
            lists.insert(chunk_key(&k, first).as_str(), row.as_slice())?;
        }
        Ok(())
    }

    fn remove_entry(
        &mut self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
    ) -> Result<Option<PackageSummary>, StoreError> {
        let k = pkg_key(repo, arch, name.as_str());
        let summary = match self.txn.open_table(SUMMARIES)?.remove(k.as_str())? {
            Some(old) => postcard::from_bytes::<PackageSummary>(old.value())?,
            None => return Ok(None),
        };
        self.txn.open_table(MEMBERS)?.remove(k.as_str())?;
        self.txn.open_table(DETAILS)?.remove(k.as_str())?;
        remove_file_list(&mut self.txn.open_table(FILE_LISTS)?, &k)?;
        Ok(Some(summary))
    }

    fn push_history(
        &mut self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
        event: &PackageEvent,
        keep: usize,
    ) -> Result<(), StoreError> {
        let k = pkg_key(repo, arch, name.as_str());
        let (lo, hi) = prefix_range(&k);
        let mut table = self.txn.open_table(HISTORY)?;
        let (next, count) = {
            let mut rows = table.range(lo.as_str()..hi.as_str())?;
            let last = rows.next_back().transpose()?.map(|(key, _)| key.value().to_owned());
            let seq = last
                .as_deref()
                .and_then(|l| l.rsplit('/').next())
                .and_then(|s| u64::from_str_radix(s, 16).ok());
            (seq.map_or(0, |s| s.saturating_add(1)), usize::from(last.is_some()) + rows.count())
        };
        table.insert(format!("{k}/{next:016x}").as_str(), postcard::to_stdvec(event)?.as_slice())?;
        // The oldest go first, past `keep`.
        let mut extra = (count + 1).saturating_sub(keep);
        if extra == 0 {
            return Ok(());
        }
        table.retain_in(lo.as_str()..hi.as_str(), |_, _| {
            let drop = extra > 0;
            extra = extra.saturating_sub(1);
            !drop
        })?;
        Ok(())
    }

    fn file_hash(&self, repo: &RepoName, arch: &Arch, filename: &str) -> Result<Option<String>, StoreError> {
        let table = self.txn.open_table(FILES)?;
        let sha = table.get(pkg_key(repo, arch, filename).as_str())?.map(|v| v.value().to_owned());
        Ok(sha)
    }

    fn put_file(
        &mut self,
        repo: &RepoName,
        arch: &Arch,
        filename: &str,
        sha256: &str,
    ) -> Result<(), StoreError> {
        self.txn.open_table(FILES)?.insert(pkg_key(repo, arch, filename).as_str(), sha256)?;
        Ok(())
    }

    fn remove_file(
        &mut self,
        repo: &RepoName,
        arch: &Arch,
        filename: &str,
    ) -> Result<Option<String>, StoreError> {
        let mut table = self.txn.open_table(FILES)?;
        let removed = table.remove(pkg_key(repo, arch, filename).as_str())?.map(|v| v.value().to_owned());
        Ok(removed)
    }

    fn pool_refs(&self, sha256: &str) -> Result<u64, StoreError> {
        Ok(self.txn.open_table(POOL)?.get(sha256)?.map(|v| v.value()).unwrap_or(0))
    }

    fn set_pool_refs(&mut self, sha256: &str, refs: u64) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(POOL)?;
        if refs == 0 {
            table.remove(sha256)?;
        } else {
            table.insert(sha256, refs)?;
        }
        Ok(())
    }

    fn commit(self) -> Result<(), StoreError> {
        Ok(self.txn.commit()?)
    }
}

/// The arches of `repo` in an `arch_repos` table (read-only or within a write transaction).
fn arches_in(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    repo: &RepoName,
) -> Result<BTreeSet<Arch>, StoreError> {
    let (lo, hi) = prefix_range(repo.as_str());
    let mut out = BTreeSet::new();
    for row in table.range(lo.as_str()..hi.as_str())? {
        let (k, _) = row?;
        // Rows are written from validated names only.
        if let Ok(arch) = Arch::new(k.value().rsplit('/').next().unwrap_or_default()) {
            out.insert(arch);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_rows_are_bounded_by_count_and_bytes() {
        let names: Vec<String> = (0..2500).map(|i| format!("f{i}")).collect();
        let rows = file_rows(&names);
        assert_eq!(
            rows.iter().map(|(f, r)| (*f, r.len())).collect::<Vec<_>>(),
            [(0, 1000), (1000, 1000), (2000, 500)]
        );
        let long: Vec<String> = (0..40).map(|i| format!("{i:04}{}", "x".repeat(4000))).collect();
        let rows = file_rows(&long);
        assert!(rows.iter().all(|(_, r)| r.iter().map(String::len).sum::<usize>() <= FILE_CHUNK_BYTES));
        assert_eq!(rows.iter().map(|(_, r)| r.len()).sum::<usize>(), 40);
        assert_eq!(rows[1].0, rows[0].1.len(), "a row's key is its first index");
        let huge = vec!["y".repeat(FILE_CHUNK_BYTES * 2), "z".into()];
        assert_eq!(file_rows(&huge).len(), 2, "a row holds at least one name");
        assert!(file_rows(&[]).is_empty());
    }

    /// The redb store with the directory blobs keeps every promise of the repository ports, crash
    /// ordering included.
    #[test]
    fn redb_and_directory_blobs_keep_every_promise() {
        let dirs = std::cell::RefCell::new(Vec::new());
        libvieter::repo::conformance::check(|| {
            let dir = tempfile::tempdir().expect("a temp dir");
            let store = Store::open(&dir.path().join("vieter.redb")).expect("opening redb");
            let blobs = libvieter::fs::DirBlobs::open(dir.path()).expect("opening blobs");
            dirs.borrow_mut().push(dir);
            (store, blobs)
        });
    }

    #[test]
    fn a_file_list_is_paged_from_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("vieter.redb")).unwrap();
        let blobs = libvieter::fs::DirBlobs::open(dir.path()).unwrap();
        let repo = libvieter::repo::Repository::new(
            store,
            blobs,
            Arch::new("x86_64").unwrap(),
            libvieter::db::DbFormat::Current,
            chrono::Utc::now,
        );
        let files: Vec<String> = (0..2500).map(|i| format!("usr/share/f{i:05}")).collect();
        let refs: Vec<&str> = files.iter().map(String::as_str).collect();
        let bytes = libvieter::repo::conformance::package_bytes("big", "1-1", "x86_64", &refs);
        let mut upload = libvieter::repo::BlobStore::create_upload(repo.blobs()).unwrap();
        std::io::Write::write_all(&mut upload, &bytes).unwrap();
        let r = RepoName::new("extra").unwrap();
        repo.publish(&r, upload).unwrap();
        let (a, n) = (Arch::new("x86_64").unwrap(), PkgName::new("big").unwrap());
        let (page, total) = repo.store().file_page(&r, &a, &n, 995, 10, 1 << 20).unwrap().unwrap();
        assert_eq!(total, 2500);
        assert_eq!(page, files[995..1005], "a page across two rows");
        let (page, _) = repo.store().file_page(&r, &a, &n, 2498, 10, 1 << 20).unwrap().unwrap();
        assert_eq!(page.len(), 2, "the end of the list");
    }
}
