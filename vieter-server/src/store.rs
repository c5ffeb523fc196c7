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
//!
//! Every change is one write transaction; redb commits are durable when `commit` returns.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use libvieter::api::PackageSummary;
use libvieter::db::{ArchiveKind, StoredEntry};
use libvieter::name::Arch;
use libvieter::package::Package;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

const MEMBERS: TableDefinition<&str, &[u8]> = TableDefinition::new("members");
const SUMMARIES: TableDefinition<&str, &[u8]> = TableDefinition::new("summaries");
const DETAILS: TableDefinition<&str, &[u8]> = TableDefinition::new("details");
const FILES: TableDefinition<&str, &str> = TableDefinition::new("files");
const POOL: TableDefinition<&str, u64> = TableDefinition::new("pool");
const ARCH_REPOS: TableDefinition<&str, &[u8]> = TableDefinition::new("arch_repos");
const FILE_LISTS: TableDefinition<&str, &[u8]> = TableDefinition::new("file_lists");

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

/// What is known about one arch-repo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchRecord {
    pub last_change: DateTime<Utc>,
}

/// A package to record in one arch-repo.
pub struct NewPackage<'a> {
    pub package: &'a Package,
    pub entry: &'a StoredEntry,
    pub filename: &'a str,
    pub published_at: DateTime<Utc>,
}

/// The outcome of a change that must hold the lock of every arch-repo it touches.
///
/// The arch-repos a change touches (every arch of a repository for `any` packages and repository deletes)
/// are decided inside the write transaction, where they cannot change under it. When they are not all in
/// the set the caller locked, nothing is written and the caller retries holding [`Locked::NeedLocks`].
#[derive(Debug)]
pub enum Locked<T> {
    /// Committed.
    Done(T),
    /// Aborted: these arch-repos must be locked (a superset of what was locked).
    NeedLocks(Vec<String>),
}

/// Where a package goes within its repository.
#[derive(Debug, Clone, Copy)]
pub enum Placement<'a> {
    /// Its own architecture.
    Arch(&'a str),
    /// An `any` package: every arch the repository has, plus this default arch.
    Any { default_arch: &'a str },
}

/// What a publish did.
#[derive(Debug, Default)]
pub struct Put {
    /// The arch-repos the package is in.
    pub archs: Vec<String>,
    /// Those of them that changed (their archives must be rewritten); empty when the same file was
    /// already published everywhere.
    pub changed: Vec<String>,
    /// Pool files to delete once the archives are rewritten.
    pub changes: PoolChanges,
}

/// What a removal did.
#[derive(Debug, Default)]
pub struct Removed {
    /// Whether the package, arch-repo or repository existed.
    pub found: bool,
    /// The arch-repos changed (their archives must be rewritten or removed).
    pub archs: Vec<String>,
    /// Pool files to delete once the archives are rewritten.
    pub changes: PoolChanges,
}

/// What a transaction did to the pool.
#[derive(Debug, Default)]
pub struct PoolChanges {
    /// Pool files that no row references any more: delete them once the archives are rewritten.
    pub unreferenced: BTreeSet<String>,
}

fn key(parts: &[&str]) -> String {
    parts.join("/")
}

/// The half-open key range of everything under `prefix/`.
fn prefix_range(prefix: &str) -> (String, String) {
    // '0' is the character after '/'.
    (format!("{prefix}/"), format!("{prefix}0"))
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
        txn.commit()?;
        Ok(Store { db })
    }

    /// Records `new` in `repo` where `placement` says, replacing the package of the same name; one
    /// transaction. `locked` are the arch-repos the caller holds the locks of. Returns the arches the
    /// package is in and, of those, the ones that changed: an arch-repo that already serves this very
    /// file is left alone, and when none changed nothing is written at all.
    pub fn put_package(
        &self,
        repo: &str,
        placement: Placement<'_>,
        locked: &[String],
        new: &NewPackage<'_>,
    ) -> Result<Locked<Put>, StoreError> {
        let name = new.package.info.name.as_str();
        let sha = new.package.sha256.as_str();
        let summary = postcard::to_stdvec(&PackageSummary::new(new.package, new.filename, new.published_at))?;
        let p = new.package;
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
        let chunks: Vec<(usize, Vec<u8>)> = file_rows(&new.package.files)
            .into_iter()
            .map(|(first, names)| postcard::to_stdvec(names).map(|row| (first, row)))
            .collect::<Result<_, _>>()?;
        let mut members = Vec::with_capacity(4 + new.entry.db_member.len() + new.entry.files_member.len());
        members.extend_from_slice(&(new.entry.db_member.len() as u32).to_le_bytes());
        members.extend_from_slice(&new.entry.db_member);
        members.extend_from_slice(&new.entry.files_member);
        let arch_record = postcard::to_stdvec(&ArchRecord { last_change: new.published_at })?;

        let txn = self.db.begin_write()?;
        let archs: Vec<String> = match placement {
            Placement::Arch(arch) => vec![arch.to_owned()],
            Placement::Any { default_arch } => {
                let existing = arches_in(&txn.open_table(ARCH_REPOS)?, repo)?;
                let existing = existing.into_iter().filter_map(|a| Arch::new(a).ok()).collect();
                let any = Arch::new("any").map_err(|e| StoreError::Io(std::io::Error::other(e)))?;
                let default_arch =
                    Arch::new(default_arch).map_err(|e| StoreError::Io(std::io::Error::other(e)))?;
                libvieter::repo::arches_for(&any, &existing, &default_arch)
                    .into_iter()
                    .map(|a| a.to_string())
                    .collect()
            }
        };
        if !archs.iter().all(|a| locked.contains(a)) {
            txn.abort()?;
            return Ok(Locked::NeedLocks(archs));
        }
        let mut changes = PoolChanges::default();
        let mut changed = Vec::new();
        {
            let mut t_members = txn.open_table(MEMBERS)?;
            let mut t_summaries = txn.open_table(SUMMARIES)?;
            let mut t_details = txn.open_table(DETAILS)?;
            let mut t_files = txn.open_table(FILES)?;
            let mut t_pool = txn.open_table(POOL)?;
            let mut t_arch = txn.open_table(ARCH_REPOS)?;
            let mut t_lists = txn.open_table(FILE_LISTS)?;
            for arch in archs.iter().map(String::as_str) {
                let pkg_key = key(&[repo, arch, name]);
                let old_filename = match t_summaries.get(pkg_key.as_str())? {
                    Some(old) => Some(postcard::from_bytes::<PackageSummary>(old.value())?.filename),
                    None => None,
                };
                // The same file again: nothing to change in this arch-repo.
                if old_filename.as_deref() == Some(new.filename) {
                    let file_key = key(&[repo, arch, new.filename]);
                    if t_files.get(file_key.as_str())?.is_some_and(|v| v.value() == sha) {
                        continue;
                    }
                }
                changed.push(arch.to_owned());
                // Unlink the file of the version being replaced.
                if let Some(old_filename) = old_filename {
                    unlink_file(&mut t_files, &mut t_pool, &key(&[repo, arch, &old_filename]), &mut changes)?;
                }
                let file_key = key(&[repo, arch, new.filename]);
                unlink_file(&mut t_files, &mut t_pool, &file_key, &mut changes)?;
                t_files.insert(file_key.as_str(), sha)?;
                let refs = t_pool.get(sha)?.map(|v| v.value()).unwrap_or(0);
                t_pool.insert(sha, refs + 1)?;
                changes.unreferenced.remove(sha);
                t_members.insert(pkg_key.as_str(), members.as_slice())?;
                t_summaries.insert(pkg_key.as_str(), summary.as_slice())?;
                t_details.insert(pkg_key.as_str(), detail.as_slice())?;
                remove_file_list(&mut t_lists, &pkg_key)?;
                for (first, row) in &chunks {
                    t_lists.insert(chunk_key(&pkg_key, *first).as_str(), row.as_slice())?;
                }
                t_arch.insert(key(&[repo, arch]).as_str(), arch_record.as_slice())?;
            }
        }
        if changed.is_empty() {
            txn.abort()?;
        } else {
            txn.commit()?;
        }
        Ok(Locked::Done(Put { archs, changed, changes }))
    }

    /// Removes one package from one arch-repo (`Some(name)`), a whole arch-repo (`arch` only) or a whole
    /// repository. `locked` are the arch-repos the caller holds the locks of. Returns whether anything
    /// existed and the arches touched.
    pub fn remove(
        &self,
        repo: &str,
        arch: Option<&str>,
        name: Option<&str>,
        locked: &[String],
        now: DateTime<Utc>,
    ) -> Result<Locked<Removed>, StoreError> {
        let txn = self.db.begin_write()?;
        let arches: Vec<String> = match arch {
            Some(a) => vec![a.to_owned()],
            None => arches_in(&txn.open_table(ARCH_REPOS)?, repo)?.into_iter().collect(),
        };
        if !arches.iter().all(|a| locked.contains(a)) {
            txn.abort()?;
            return Ok(Locked::NeedLocks(arches));
        }
        let mut changes = PoolChanges::default();
        let mut changed = Vec::new();
        {
            let mut t_members = txn.open_table(MEMBERS)?;
            let mut t_summaries = txn.open_table(SUMMARIES)?;
            let mut t_details = txn.open_table(DETAILS)?;
            let mut t_files = txn.open_table(FILES)?;
            let mut t_pool = txn.open_table(POOL)?;
            let mut t_arch = txn.open_table(ARCH_REPOS)?;
            let mut t_lists = txn.open_table(FILE_LISTS)?;
            for arch in &arches {
                let arch_key = key(&[repo, arch]);
                if t_arch.get(arch_key.as_str())?.is_none() {
                    continue;
                }
                let mut removed_here = false;
                let names: Vec<String> = match name {
                    Some(n) => vec![n.to_owned()],
                    None => {
                        let (lo, hi) = prefix_range(&arch_key);
                        let mut v = Vec::new();
                        for row in t_summaries.range(lo.as_str()..hi.as_str())? {
                            let (k, _) = row?;
                            v.push(k.value().rsplit('/').next().unwrap_or_default().to_owned());
                        }
                        v
                    }
                };
                for n in &names {
                    let pkg_key = key(&[repo, arch, n]);
                    let filename = match t_summaries.remove(pkg_key.as_str())? {
                        Some(old) => postcard::from_bytes::<PackageSummary>(old.value())?.filename,
                        None => continue,
                    };
                    removed_here = true;
                    t_members.remove(pkg_key.as_str())?;
                    t_details.remove(pkg_key.as_str())?;
                    remove_file_list(&mut t_lists, &pkg_key)?;
                    unlink_file(&mut t_files, &mut t_pool, &key(&[repo, arch, &filename]), &mut changes)?;
                }
                if name.is_none() {
                    t_arch.remove(arch_key.as_str())?;
                    removed_here = true;
                } else if removed_here {
                    let record = postcard::to_stdvec(&ArchRecord { last_change: now })?;
                    t_arch.insert(arch_key.as_str(), record.as_slice())?;
                }
                if removed_here {
                    changed.push(arch.clone());
                }
            }
        }
        // A delete of something that is not there writes nothing.
        if changed.is_empty() {
            txn.abort()?;
        } else {
            txn.commit()?;
        }
        Ok(Locked::Done(Removed { found: !changed.is_empty(), archs: changed, changes }))
    }

    /// Every arch-repo as `(repo, arch, record)`.
    pub fn arch_repos(&self) -> Result<Vec<(String, String, ArchRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ARCH_REPOS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            if let Some((repo, arch)) = k.value().split_once('/') {
                out.push((repo.to_owned(), arch.to_owned(), postcard::from_bytes(v.value())?));
            }
        }
        Ok(out)
    }

    /// The architectures a repository has, in order.
    pub fn arches_of(&self, repo: &str) -> Result<Vec<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ARCH_REPOS)?;
        Ok(arches_in(&table, repo)?.into_iter().collect())
    }

    /// Whether an arch-repo exists.
    pub fn has_arch_repo(&self, repo: &str, arch: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ARCH_REPOS)?;
        Ok(table.get(key(&[repo, arch]).as_str())?.is_some())
    }

    /// Writes the archive of one arch-repo by concatenating the stored members (and the end blocks).
    pub fn write_archive<W: Write>(
        &self,
        repo: &str,
        arch: &str,
        kind: ArchiveKind,
        out: &mut W,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MEMBERS)?;
        let (lo, hi) = prefix_range(&key(&[repo, arch]));
        for row in table.range(lo.as_str()..hi.as_str())? {
            let (_, v) = row?;
            let bytes = v.value();
            let split = bytes.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
            let member = split.and_then(|len| match kind {
                ArchiveKind::Db => bytes.get(4..4 + len),
                ArchiveKind::Files => bytes.get(4 + len..),
            });
            let member = member.ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "damaged stored archive member")
            })?;
            out.write_all(member)?;
        }
        libvieter::db::write_archive(out, kind, std::iter::empty())?;
        Ok(())
    }

    /// The pool hash of a package file served as `repo/arch/filename`.
    pub fn file_hash(&self, repo: &str, arch: &str, filename: &str) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(FILES)?;
        Ok(table.get(key(&[repo, arch, filename]).as_str())?.map(|v| v.value().to_owned()))
    }

    /// Whether any package file row points at this pool file.
    pub fn is_referenced(&self, sha256: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(POOL)?;
        Ok(table.get(sha256)?.is_some_and(|v| v.value() > 0))
    }

    /// Every pool hash that is referenced.
    pub fn pool_hashes(&self) -> Result<BTreeSet<String>, StoreError> {
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

    /// The summaries of one arch-repo in name order.
    pub fn summaries(&self, repo: &str, arch: &str) -> Result<Vec<PackageSummary>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SUMMARIES)?;
        let (lo, hi) = prefix_range(&key(&[repo, arch]));
        let mut out = Vec::new();
        for row in table.range(lo.as_str()..hi.as_str())? {
            let (_, v) = row?;
            out.push(postcard::from_bytes(v.value())?);
        }
        Ok(out)
    }

    /// A page of one package's file list (from `offset`, at most `limit` names and, past the first,
    /// at most `max_bytes` bytes of names) and the list's length, or `None` when the package is not
    /// there. Reads only the rows the page needs.
    pub fn file_page(
        &self,
        repo: &str,
        arch: &str,
        name: &str,
        offset: usize,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Option<(Vec<String>, u64)>, StoreError> {
        let txn = self.db.begin_read()?;
        let pkg_key = key(&[repo, arch, name]);
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
            let mut bytes = 0;
            let page = package
                .files
                .into_iter()
                .skip(offset)
                .take(limit)
                .take_while(|f| {
                    bytes += f.len();
                    bytes == f.len() || bytes <= max_bytes
                })
                .collect();
            return Ok(Some((page, total)));
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

    /// One package's summary and metadata (without its file list: see [`Store::file_page`]).
    pub fn package(
        &self,
        repo: &str,
        arch: &str,
        name: &str,
    ) -> Result<Option<(PackageSummary, Package)>, StoreError> {
        let txn = self.db.begin_read()?;
        let k = key(&[repo, arch, name]);
        let Some(summary) = txn.open_table(SUMMARIES)?.get(k.as_str())?.map(|v| v.value().to_vec()) else {
            return Ok(None);
        };
        let Some(detail) = txn.open_table(DETAILS)?.get(k.as_str())?.map(|v| v.value().to_vec()) else {
            return Ok(None);
        };
        Ok(Some((postcard::from_bytes(&summary)?, postcard::from_bytes(&detail)?)))
    }
}

/// The arches of `repo` in an `arch_repos` table (read-only or within a write transaction).
fn arches_in(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    repo: &str,
) -> Result<BTreeSet<String>, StoreError> {
    let (lo, hi) = prefix_range(repo);
    let mut out = BTreeSet::new();
    for row in table.range(lo.as_str()..hi.as_str())? {
        let (k, _) = row?;
        out.insert(k.value().rsplit('/').next().unwrap_or_default().to_owned());
    }
    Ok(out)
}

/// Removes a `files` row and drops its pool reference.
fn unlink_file(
    files: &mut redb::Table<&str, &str>,
    pool: &mut redb::Table<&str, u64>,
    file_key: &str,
    changes: &mut PoolChanges,
) -> Result<(), StoreError> {
    let Some(sha) = files.remove(file_key)?.map(|v| v.value().to_owned()) else { return Ok(()) };
    let refs = pool.get(sha.as_str())?.map(|v| v.value()).unwrap_or(0);
    if refs <= 1 {
        pool.remove(sha.as_str())?;
        changes.unreferenced.insert(sha);
    } else {
        pool.insert(sha.as_str(), refs - 1)?;
    }
    Ok(())
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

    fn package(name: &str, arch: &str) -> (Package, StoredEntry) {
        let info = format!("pkgname = {name}\npkgver = 1-1\narch = {arch}\nsize = 0\n");
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(info.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, ".PKGINFO", info.as_bytes()).unwrap();
        let bytes = zstd::encode_all(&b.into_inner().unwrap()[..], 1).unwrap();
        let package = libvieter::package::read_package(&bytes[..], &Default::default()).unwrap();
        let entry = libvieter::db::DbEntry::new(&package, &package.filename(), Default::default(), None)
            .unwrap()
            .compress(0)
            .unwrap();
        (package, entry)
    }

    fn put(
        store: &Store,
        p: &(Package, StoredEntry),
        placement: Placement<'_>,
        locked: &[&str],
    ) -> Locked<Vec<String>> {
        let filename = p.0.filename();
        let new = NewPackage { package: &p.0, entry: &p.1, filename: &filename, published_at: Utc::now() };
        let locked: Vec<String> = locked.iter().map(|s| s.to_string()).collect();
        match store.put_package("r", placement, &locked, &new).unwrap() {
            Locked::Done(put) => Locked::Done(put.archs),
            Locked::NeedLocks(more) => Locked::NeedLocks(more),
        }
    }

    #[test]
    fn changes_to_every_arch_need_the_locks_of_every_arch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        let arm = package("arm", "aarch64");
        assert!(matches!(put(&store, &arm, Placement::Arch("aarch64"), &["aarch64"]), Locked::Done(_)));

        // The caller only locked the default arch, but the repository has aarch64 too: nothing is written.
        let any = package("docs", "any");
        let placement = Placement::Any { default_arch: "x86_64" };
        match put(&store, &any, placement, &["x86_64"]) {
            Locked::NeedLocks(more) => assert_eq!(more, ["aarch64", "x86_64"]),
            Locked::Done(a) => panic!("written without the aarch64 lock: {a:?}"),
        }
        assert!(store.summaries("r", "x86_64").unwrap().is_empty());
        assert_eq!(store.summaries("r", "aarch64").unwrap().len(), 1);
        match put(&store, &any, placement, &["aarch64", "x86_64"]) {
            Locked::Done(archs) => assert_eq!(archs, ["aarch64", "x86_64"]),
            Locked::NeedLocks(m) => panic!("{m:?}"),
        }
        assert_eq!(store.pool_hashes().unwrap().len(), 2, "the any file is one pool entry for two arches");

        // A repository delete likewise needs every arch it finds in its transaction.
        let only_arm = vec!["aarch64".to_owned()];
        match store.remove("r", None, None, &only_arm, Utc::now()).unwrap() {
            Locked::NeedLocks(more) => assert_eq!(more, ["aarch64", "x86_64"]),
            Locked::Done(_) => panic!("removed without the x86_64 lock"),
        }
        assert_eq!(store.arch_repos().unwrap().len(), 2, "nothing was removed");
        let both = vec!["aarch64".to_owned(), "x86_64".to_owned()];
        match store.remove("r", None, None, &both, Utc::now()).unwrap() {
            Locked::Done(removed) => {
                assert!(removed.found);
                assert_eq!(removed.archs, both);
                assert_eq!(removed.changes.unreferenced.len(), 2);
            }
            Locked::NeedLocks(m) => panic!("{m:?}"),
        }
        assert!(store.arch_repos().unwrap().is_empty());
        assert!(store.pool_hashes().unwrap().is_empty());
    }
}
