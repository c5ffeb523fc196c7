//! The metadata port of a repository: what [`super::Repository`] records, in transactions.
//!
//! A store keeps, per arch-repo (`repo/arch`): the arch-repo's record, one entry per package name (its
//! summary, its metadata, its file list and its two pre-compressed database members), the history of
//! each name (versions published, removals), the package file
//! names served there with the SHA-256 of the pool file each names; and, for the whole store, the
//! number of file rows pointing at each pool file. It decides nothing: which rows change, and in what
//! order, is [`super::Repository`]'s.

use std::collections::BTreeSet;
use std::io;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::api::{PackageEvent, PackageSummary};
use crate::db::{ArchiveKind, StoredEntry};
use crate::name::{Arch, PkgName, RepoName};
use crate::package::Package;

/// What is known about one arch-repo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchRecord {
    /// When a package was last published into it or removed from it.
    pub last_change: DateTime<Utc>,
}

/// One package as an arch-repo records it.
#[derive(Debug, Clone, Copy)]
pub struct EntryRecord<'a> {
    pub summary: &'a PackageSummary,
    /// The package's metadata and file list (a store may keep the list apart, see
    /// [`RepoStore::file_page`]).
    pub package: &'a Package,
    /// The entry's database members, concatenated in name order to make the archives.
    pub entry: &'a StoredEntry,
}

/// A transactional metadata store. Reads outside a transaction see the last committed state.
pub trait RepoStore: Send + Sync {
    /// A storage failure (I/O errors of an archive writer passed to [`RepoStore::each_member`] included).
    type Error: std::error::Error + Send + Sync + From<io::Error> + 'static;
    /// A write transaction: nothing it did is visible or durable before [`RepoTxn::commit`] returns;
    /// dropped uncommitted, it did nothing.
    type Txn<'a>: RepoTxn<Error = Self::Error>
    where
        Self: 'a;

    /// Begins a write transaction. Write transactions are serialized.
    fn begin(&self) -> Result<Self::Txn<'_>, Self::Error>;

    /// Every arch-repo with its record, in `(repo, arch)` order.
    fn arch_repos(&self) -> Result<Vec<(RepoName, Arch, ArchRecord)>, Self::Error>;
    /// The architectures a repository has.
    fn arches_of(&self, repo: &RepoName) -> Result<BTreeSet<Arch>, Self::Error>;
    /// Whether an arch-repo exists.
    fn has_arch_repo(&self, repo: &RepoName, arch: &Arch) -> Result<bool, Self::Error>;
    /// The summaries of one arch-repo, in name order.
    fn summaries(&self, repo: &RepoName, arch: &Arch) -> Result<Vec<PackageSummary>, Self::Error>;
    /// One package's summary and metadata; its file list may be empty (read it with
    /// [`RepoStore::file_page`]).
    fn package(
        &self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
    ) -> Result<Option<(PackageSummary, Package)>, Self::Error>;
    /// A page of one package's file list (from `offset`, at most `limit` names and, past the first, at
    /// most `max_bytes` bytes of names) and the list's length; `None` when the package is not there.
    fn file_page(
        &self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
        offset: usize,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Option<(Vec<String>, u64)>, Self::Error>;
    /// The pool file (SHA-256) a package file name of an arch-repo names.
    fn file_hash(&self, repo: &RepoName, arch: &Arch, filename: &str) -> Result<Option<String>, Self::Error>;
    /// The history of a package name in an arch-repo, newest first ([`RepoTxn::push_history`]).
    fn history(&self, repo: &RepoName, arch: &Arch, name: &PkgName)
        -> Result<Vec<PackageEvent>, Self::Error>;
    /// Whether any file row points at this pool file.
    fn is_referenced(&self, sha256: &str) -> Result<bool, Self::Error>;
    /// Every pool file some file row points at.
    fn pool_hashes(&self) -> Result<BTreeSet<String>, Self::Error>;
    /// Passes the package name and the stored `kind` member of every entry of an arch-repo to `each`,
    /// in name order (byte order of the names; from one consistent state).
    fn each_member(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
        each: &mut dyn FnMut(&str, &[u8]) -> io::Result<()>,
    ) -> Result<(), Self::Error>;
}

/// The reads and writes of one transaction. Reads see the transaction's own writes.
pub trait RepoTxn {
    type Error: std::error::Error + Send + Sync + 'static;

    /// The architectures a repository has.
    fn arches_of(&self, repo: &RepoName) -> Result<BTreeSet<Arch>, Self::Error>;
    /// Whether an arch-repo exists.
    fn has_arch_repo(&self, repo: &RepoName, arch: &Arch) -> Result<bool, Self::Error>;
    /// Creates an arch-repo or updates its record.
    fn put_arch_repo(&mut self, repo: &RepoName, arch: &Arch, record: &ArchRecord)
        -> Result<(), Self::Error>;
    /// Removes an arch-repo's record and the histories of its names (its entries and files are removed
    /// one by one before).
    fn remove_arch_repo(&mut self, repo: &RepoName, arch: &Arch) -> Result<(), Self::Error>;

    /// The package names of an arch-repo, in order.
    fn names(&self, repo: &RepoName, arch: &Arch) -> Result<Vec<PkgName>, Self::Error>;
    /// The file name of the entry `name`, when it has one.
    fn entry_filename(
        &self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
    ) -> Result<Option<String>, Self::Error>;
    /// Creates or replaces the entry of `record.summary.name`.
    fn put_entry(
        &mut self,
        repo: &RepoName,
        arch: &Arch,
        record: &EntryRecord<'_>,
    ) -> Result<(), Self::Error>;
    /// Removes an entry (summary, metadata, file list, members); returns its summary.
    fn remove_entry(
        &mut self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
    ) -> Result<Option<PackageSummary>, Self::Error>;
    /// Adds `event` as the newest of the history of `name` in an arch-repo, keeping the newest `keep`
    /// events of that history.
    fn push_history(
        &mut self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
        event: &PackageEvent,
        keep: usize,
    ) -> Result<(), Self::Error>;

    /// The pool file a package file name of an arch-repo names.
    fn file_hash(&self, repo: &RepoName, arch: &Arch, filename: &str) -> Result<Option<String>, Self::Error>;
    /// Points a package file name of an arch-repo at a pool file.
    fn put_file(
        &mut self,
        repo: &RepoName,
        arch: &Arch,
        filename: &str,
        sha256: &str,
    ) -> Result<(), Self::Error>;
    /// Removes a file row; returns the pool file it named.
    fn remove_file(
        &mut self,
        repo: &RepoName,
        arch: &Arch,
        filename: &str,
    ) -> Result<Option<String>, Self::Error>;
    /// How many file rows point at a pool file.
    fn pool_refs(&self, sha256: &str) -> Result<u64, Self::Error>;
    /// Sets that count (0 forgets the pool file).
    fn set_pool_refs(&mut self, sha256: &str, refs: u64) -> Result<(), Self::Error>;

    /// Makes every write of the transaction durable and visible, at once.
    fn commit(self) -> Result<(), Self::Error>;
}
