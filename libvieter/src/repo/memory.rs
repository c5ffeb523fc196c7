//! In-memory implementations of the repository ports, for tests and for embedders that keep nothing.
//!
//! [`MemoryStore`] keeps its state behind an [`Arc`]: a read takes the state as it was last committed; a
//! transaction works on its own copy (entries are shared, so a copy costs a pointer per row) and
//! commit swaps it in. With a [`Persist`] hook the same store writes every committed state somewhere
//! before it is visible: that is how [`crate::fs::DirStore`] keeps its metadata in a file. Clones of a
//! store or of a [`MemoryBlobs`] are handles to the same data.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Cursor};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::api::{PackageEvent, PackageSummary};
use crate::db::{ArchiveKind, StoredEntry};
use crate::name::{Arch, PkgName, RepoName};
use crate::package::Package;

use super::blob::{ArchiveDir, ArchiveWriter, BlobStore};
use super::store::{ArchRecord, EntryRecord, RepoStore, RepoTxn};

/// A memory store's failure: only its [`Persist`] hook can fail.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MemoryError(#[from] pub io::Error);

/// One recorded package.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    summary: PackageSummary,
    package: Package,
    entry: StoredEntry,
}

/// Everything a [`MemoryStore`] holds: what a [`Persist`] hook writes and [`MemoryStore::with_state`]
/// starts from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    arch_repos: BTreeMap<(RepoName, Arch), ArchRecord>,
    entries: BTreeMap<(RepoName, Arch), BTreeMap<PkgName, Arc<Entry>>>,
    files: BTreeMap<(RepoName, Arch, String), String>,
    pool: BTreeMap<String, u64>,
    /// Each name's history, oldest first.
    history: BTreeMap<(RepoName, Arch, PkgName), Arc<Vec<PackageEvent>>>,
}

/// [`State`] as it was before package histories (what `vieter-dirstore 1` files hold).
#[derive(Debug, Deserialize)]
pub(crate) struct StateV1 {
    arch_repos: BTreeMap<(RepoName, Arch), ArchRecord>,
    entries: BTreeMap<(RepoName, Arch), BTreeMap<PkgName, Arc<Entry>>>,
    files: BTreeMap<(RepoName, Arch, String), String>,
    pool: BTreeMap<String, u64>,
}

/// A state encoded as a `vieter-dirstore 1` file holds it (its histories left out): for the tests of
/// reading old files.
#[cfg(all(test, feature = "fs"))]
pub(crate) fn encode_v1(state: &State) -> Vec<u8> {
    postcard::to_allocvec(&(&state.arch_repos, &state.entries, &state.files, &state.pool))
        .expect("encoding in memory")
}

impl From<StateV1> for State {
    fn from(v1: StateV1) -> State {
        let StateV1 { arch_repos, entries, files, pool } = v1;
        State { arch_repos, entries, files, pool, history: BTreeMap::new() }
    }
}

impl State {
    fn arches_of(&self, repo: &RepoName) -> BTreeSet<Arch> {
        self.arch_repos.keys().filter(|(r, _)| r == repo).map(|(_, a)| a.clone()).collect()
    }

    fn entries_of<'a>(&'a self, repo: &RepoName, arch: &Arch) -> impl Iterator<Item = &'a Arc<Entry>> + 'a {
        self.entries.get(&(repo.clone(), arch.clone())).into_iter().flat_map(|names| names.values())
    }

    fn entry(&self, repo: &RepoName, arch: &Arch, name: &PkgName) -> Option<&Arc<Entry>> {
        self.entries.get(&(repo.clone(), arch.clone()))?.get(name)
    }
}

/// Where a [`MemoryStore`] writes each state before committing it; the commit fails if it fails.
pub trait Persist: Send + Sync {
    fn persist(&self, state: &State) -> io::Result<()>;
}

struct Nothing;

impl Persist for Nothing {
    fn persist(&self, _: &State) -> io::Result<()> {
        Ok(())
    }
}

struct Shared {
    state: Mutex<Arc<State>>,
    /// Held by the open write transaction.
    writer: Mutex<()>,
    persist: Box<dyn Persist>,
}

/// A [`RepoStore`] in memory.
#[derive(Clone)]
pub struct MemoryStore(Arc<Shared>);

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_state(State::default(), Box::new(Nothing))
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// A store starting at `state` that hands every state it commits to `persist` first.
    pub fn with_state(state: State, persist: Box<dyn Persist>) -> Self {
        MemoryStore(Arc::new(Shared { state: Mutex::new(Arc::new(state)), writer: Mutex::new(()), persist }))
    }

    fn snapshot(&self) -> Arc<State> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A [`MemoryStore`] transaction.
pub struct MemoryTxn<'a> {
    store: &'a Shared,
    _writer: MutexGuard<'a, ()>,
    state: State,
}

impl RepoStore for MemoryStore {
    type Error = MemoryError;
    type Txn<'a> = MemoryTxn<'a>;

    fn begin(&self) -> Result<MemoryTxn<'_>, MemoryError> {
        let writer = self.0.writer.lock().unwrap_or_else(|p| p.into_inner());
        let state = (*self.snapshot()).clone();
        Ok(MemoryTxn { store: &self.0, _writer: writer, state })
    }

    fn arch_repos(&self) -> Result<Vec<(RepoName, Arch, ArchRecord)>, MemoryError> {
        let state = self.snapshot();
        Ok(state.arch_repos.iter().map(|((r, a), rec)| (r.clone(), a.clone(), rec.clone())).collect())
    }

    fn arches_of(&self, repo: &RepoName) -> Result<BTreeSet<Arch>, MemoryError> {
        Ok(self.snapshot().arches_of(repo))
    }

    fn has_arch_repo(&self, repo: &RepoName, arch: &Arch) -> Result<bool, MemoryError> {
        Ok(self.snapshot().arch_repos.contains_key(&(repo.clone(), arch.clone())))
    }

    fn summaries(&self, repo: &RepoName, arch: &Arch) -> Result<Vec<PackageSummary>, MemoryError> {
        Ok(self.snapshot().entries_of(repo, arch).map(|e| e.summary.clone()).collect())
    }

    fn package(
        &self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
    ) -> Result<Option<(PackageSummary, Package)>, MemoryError> {
        Ok(self.snapshot().entry(repo, arch, name).map(|e| (e.summary.clone(), e.package.clone())))
    }

    fn file_page(
        &self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
        offset: usize,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Option<(Vec<String>, u64)>, MemoryError> {
        let state = self.snapshot();
        let Some(e) = state.entry(repo, arch, name) else { return Ok(None) };
        let files = &e.package.files;
        Ok(Some((super::file_page(files, offset, limit, max_bytes), files.len() as u64)))
    }

    fn file_hash(&self, repo: &RepoName, arch: &Arch, filename: &str) -> Result<Option<String>, MemoryError> {
        Ok(self.snapshot().files.get(&(repo.clone(), arch.clone(), filename.to_owned())).cloned())
    }

    fn history(
        &self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
    ) -> Result<Vec<PackageEvent>, MemoryError> {
        let state = self.snapshot();
        let key = (repo.clone(), arch.clone(), name.clone());
        Ok(state.history.get(&key).map(|h| h.iter().rev().cloned().collect()).unwrap_or_default())
    }

    fn is_referenced(&self, sha256: &str) -> Result<bool, MemoryError> {
        Ok(self.snapshot().pool.get(sha256).is_some_and(|&n| n > 0))
    }

    fn pool_hashes(&self) -> Result<BTreeSet<String>, MemoryError> {
        Ok(self.snapshot().pool.iter().filter(|(_, &n)| n > 0).map(|(k, _)| k.clone()).collect())
    }

    fn each_member(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
        each: &mut dyn FnMut(&str, &[u8]) -> io::Result<()>,
    ) -> Result<(), MemoryError> {
        let state = self.snapshot();
        for e in state.entries_of(repo, arch) {
            let member = match kind {
                ArchiveKind::Db => &e.entry.db_member,
                ArchiveKind::Files => &e.entry.files_member,
            };
            each(e.summary.name.as_str(), member)?;
        }
        Ok(())
    }
}

impl RepoTxn for MemoryTxn<'_> {
    type Error = MemoryError;

    fn arches_of(&self, repo: &RepoName) -> Result<BTreeSet<Arch>, MemoryError> {
        Ok(self.state.arches_of(repo))
    }

    fn has_arch_repo(&self, repo: &RepoName, arch: &Arch) -> Result<bool, MemoryError> {
        Ok(self.state.arch_repos.contains_key(&(repo.clone(), arch.clone())))
    }

    fn put_arch_repo(
        &mut self,
        repo: &RepoName,
        arch: &Arch,
        record: &ArchRecord,
    ) -> Result<(), MemoryError> {
        self.state.arch_repos.insert((repo.clone(), arch.clone()), record.clone());
        Ok(())
    }

    fn remove_arch_repo(&mut self, repo: &RepoName, arch: &Arch) -> Result<(), MemoryError> {
        self.state.arch_repos.remove(&(repo.clone(), arch.clone()));
        self.state.history.retain(|(r, a, _), _| !(r == repo && a == arch));
        Ok(())
    }

    fn names(&self, repo: &RepoName, arch: &Arch) -> Result<Vec<PkgName>, MemoryError> {
        Ok(self.state.entries_of(repo, arch).map(|e| e.summary.name.clone()).collect())
    }

    fn entry_filename(
        &self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
    ) -> Result<Option<String>, MemoryError> {
        Ok(self.state.entry(repo, arch, name).map(|e| e.summary.filename.clone()))
    }

    fn put_entry(
        &mut self,
        repo: &RepoName,
        arch: &Arch,
        record: &EntryRecord<'_>,
    ) -> Result<(), MemoryError> {
        let entry = Entry {
            summary: record.summary.clone(),
            package: record.package.clone(),
            entry: record.entry.clone(),
        };
        let names = self.state.entries.entry((repo.clone(), arch.clone())).or_default();
        names.insert(record.summary.name.clone(), Arc::new(entry));
        Ok(())
    }

    fn remove_entry(
        &mut self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
    ) -> Result<Option<PackageSummary>, MemoryError> {
        let key = (repo.clone(), arch.clone());
        let Some(names) = self.state.entries.get_mut(&key) else { return Ok(None) };
        let removed = names.remove(name).map(|e| e.summary.clone());
        if names.is_empty() {
            self.state.entries.remove(&key);
        }
        Ok(removed)
    }

    fn push_history(
        &mut self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
        event: &PackageEvent,
        keep: usize,
    ) -> Result<(), MemoryError> {
        let key = (repo.clone(), arch.clone(), name.clone());
        let history = Arc::make_mut(self.state.history.entry(key).or_default());
        history.push(event.clone());
        let extra = history.len().saturating_sub(keep);
        history.drain(..extra);
        Ok(())
    }

    fn file_hash(&self, repo: &RepoName, arch: &Arch, filename: &str) -> Result<Option<String>, MemoryError> {
        Ok(self.state.files.get(&(repo.clone(), arch.clone(), filename.to_owned())).cloned())
    }

    fn put_file(
        &mut self,
        repo: &RepoName,
        arch: &Arch,
        filename: &str,
        sha256: &str,
    ) -> Result<(), MemoryError> {
        self.state.files.insert((repo.clone(), arch.clone(), filename.to_owned()), sha256.to_owned());
        Ok(())
    }

    fn remove_file(
        &mut self,
        repo: &RepoName,
        arch: &Arch,
        filename: &str,
    ) -> Result<Option<String>, MemoryError> {
        Ok(self.state.files.remove(&(repo.clone(), arch.clone(), filename.to_owned())))
    }

    fn pool_refs(&self, sha256: &str) -> Result<u64, MemoryError> {
        Ok(self.state.pool.get(sha256).copied().unwrap_or(0))
    }

    fn set_pool_refs(&mut self, sha256: &str, refs: u64) -> Result<(), MemoryError> {
        if refs == 0 {
            self.state.pool.remove(sha256);
        } else {
            self.state.pool.insert(sha256.to_owned(), refs);
        }
        Ok(())
    }

    fn commit(self) -> Result<(), MemoryError> {
        self.store.persist.persist(&self.state)?;
        *self.store.state.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(self.state);
        Ok(())
    }
}

/// An archive's bytes and time.
type StoredArchive = (Arc<Vec<u8>>, SystemTime);

#[derive(Default)]
struct Blobs {
    packages: BTreeMap<String, Arc<Vec<u8>>>,
    archives: BTreeMap<(String, String, bool), StoredArchive>,
    package_signatures: BTreeMap<String, Vec<u8>>,
    archive_signatures: BTreeMap<(String, String, bool), Vec<u8>>,
}

/// A [`BlobStore`] in memory.
#[derive(Clone, Default)]
pub struct MemoryBlobs(Arc<Mutex<Blobs>>);

impl MemoryBlobs {
    /// An empty blob store.
    pub fn new() -> Self {
        MemoryBlobs::default()
    }

    fn lock(&self) -> MutexGuard<'_, Blobs> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The package file of `sha256`.
    pub fn package(&self, sha256: &str) -> Option<Arc<Vec<u8>>> {
        self.lock().packages.get(sha256).cloned()
    }

    /// An archive's bytes and modification time.
    pub fn archive(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
    ) -> Option<(Arc<Vec<u8>>, SystemTime)> {
        self.lock().archives.get(&archive_key(repo.as_str(), arch.as_str(), kind)).cloned()
    }
}

fn archive_key(repo: &str, arch: &str, kind: ArchiveKind) -> (String, String, bool) {
    (repo.to_owned(), arch.to_owned(), kind == ArchiveKind::Files)
}

impl BlobStore for MemoryBlobs {
    type Error = io::Error;
    type Upload = Cursor<Vec<u8>>;
    type Archive = Cursor<Vec<u8>>;

    fn create_upload(&self) -> io::Result<Cursor<Vec<u8>>> {
        Ok(Cursor::new(Vec::new()))
    }

    fn keep_package(&self, upload: Cursor<Vec<u8>>, sha256: &str) -> io::Result<()> {
        self.lock().packages.entry(sha256.to_owned()).or_insert_with(|| Arc::new(upload.into_inner()));
        Ok(())
    }

    fn remove_package(&self, sha256: &str) -> io::Result<()> {
        let mut blobs = self.lock();
        blobs.package_signatures.remove(sha256);
        blobs.packages.remove(sha256);
        Ok(())
    }

    fn package_hashes(&self) -> io::Result<Vec<String>> {
        Ok(self.lock().packages.keys().cloned().collect())
    }

    fn signature_hashes(&self) -> io::Result<Vec<String>> {
        Ok(self.lock().package_signatures.keys().cloned().collect())
    }

    fn open_package(&self, sha256: &str) -> io::Result<Option<Cursor<Vec<u8>>>> {
        Ok(self.package(sha256).map(|bytes| Cursor::new(bytes.to_vec())))
    }

    fn keep_package_signature(&self, sha256: &str, signature: &[u8]) -> io::Result<()> {
        self.lock().package_signatures.insert(sha256.to_owned(), signature.to_vec());
        Ok(())
    }

    fn package_signature(&self, sha256: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self.lock().package_signatures.get(sha256).cloned())
    }

    fn write_archive(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
        mtime: SystemTime,
        write: &mut ArchiveWriter<'_>,
    ) -> io::Result<()> {
        let mut bytes = Vec::new();
        let signature = write(&mut bytes)?;
        let key = archive_key(repo.as_str(), arch.as_str(), kind);
        let mut blobs = self.lock();
        match signature {
            Some(signature) => blobs.archive_signatures.insert(key.clone(), signature),
            None => blobs.archive_signatures.remove(&key),
        };
        blobs.archives.insert(key, (Arc::new(bytes), mtime));
        Ok(())
    }

    fn write_archive_signature(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
        signature: Option<&[u8]>,
    ) -> io::Result<()> {
        let key = archive_key(repo.as_str(), arch.as_str(), kind);
        let mut blobs = self.lock();
        if !blobs.archives.contains_key(&key) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such archive"));
        }
        match signature {
            Some(signature) => blobs.archive_signatures.insert(key, signature.to_vec()),
            None => blobs.archive_signatures.remove(&key),
        };
        Ok(())
    }

    fn archive_signature(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
    ) -> io::Result<Option<Vec<u8>>> {
        Ok(self.lock().archive_signatures.get(&archive_key(repo.as_str(), arch.as_str(), kind)).cloned())
    }

    fn open_archive(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
    ) -> io::Result<Option<Self::Archive>> {
        Ok(self.archive(repo, arch, kind).map(|(bytes, _)| Cursor::new(bytes.to_vec())))
    }

    fn remove_archives(&self, repo: &RepoName, arch: &Arch) -> io::Result<()> {
        let mut blobs = self.lock();
        for kind in [ArchiveKind::Db, ArchiveKind::Files] {
            blobs.archives.remove(&archive_key(repo.as_str(), arch.as_str(), kind));
            blobs.archive_signatures.remove(&archive_key(repo.as_str(), arch.as_str(), kind));
        }
        Ok(())
    }

    fn archive_dirs(&self) -> io::Result<Vec<ArchiveDir>> {
        let dirs: BTreeSet<ArchiveDir> = self
            .lock()
            .archives
            .keys()
            .map(|(repo, arch, _)| ArchiveDir { repo: repo.clone(), arch: arch.clone() })
            .collect();
        Ok(dirs.into_iter().collect())
    }

    fn remove_archive_dir(&self, dir: &ArchiveDir) -> io::Result<()> {
        let mut blobs = self.lock();
        blobs.archives.retain(|(repo, arch, _), _| !(*repo == dir.repo && *arch == dir.arch));
        blobs.archive_signatures.retain(|(repo, arch, _), _| !(*repo == dir.repo && *arch == dir.arch));
        Ok(())
    }

    fn clear_temporary(&self) -> io::Result<usize> {
        // Uploads live in their owners' memory: nothing outlives a process.
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_implementations_keep_every_promise() {
        super::super::conformance::check(|| (MemoryStore::new(), MemoryBlobs::new()));
    }

    #[test]
    fn a_transaction_dropped_uncommitted_did_nothing() {
        let store = MemoryStore::new();
        let (repo, arch) = (RepoName::new("r").unwrap(), Arch::new("x86_64").unwrap());
        let record = ArchRecord { last_change: chrono::DateTime::UNIX_EPOCH };
        {
            let mut txn = store.begin().unwrap();
            txn.put_arch_repo(&repo, &arch, &record).unwrap();
            assert!(txn.has_arch_repo(&repo, &arch).unwrap(), "a transaction reads its own writes");
            assert!(!store.has_arch_repo(&repo, &arch).unwrap(), "others do not see them before commit");
        }
        assert!(!store.has_arch_repo(&repo, &arch).unwrap());
        let mut txn = store.begin().unwrap();
        txn.put_arch_repo(&repo, &arch, &record).unwrap();
        txn.commit().unwrap();
        assert!(store.has_arch_repo(&repo, &arch).unwrap());
    }
}
