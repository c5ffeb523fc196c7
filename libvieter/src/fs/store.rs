//! [`DirStore`]: a [`RepoStore`] whose metadata lives in one file, for a single process that wants no
//! database.
//!
//! It is a [`MemoryStore`] that writes every committed state to its file before the commit is visible:
//! the whole file is rewritten per commit, so a commit costs O(size of the metadata). That is fine for a
//! small tool with hundreds of packages; the server uses redb. Crash safety is the atomic replacement of
//! [`super::write_atomically`]: a crash leaves the old state or the new one.
//!
//! Single process: [`DirStore::open`] holds an exclusive lock on `<path>.lock` for the store's lifetime,
//! so a second open (in another process or this one) fails with [`DirStoreError::Locked`].
//!
//! The file: the line `vieter-dirstore 2`, then the postcard encoding of [`State`]. A file of version 1
//! (before package histories) is read as a state with empty histories and written as version 2 at the
//! next commit.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::api::{PackageEvent, PackageSummary};
use crate::db::ArchiveKind;
use crate::name::{Arch, PkgName, RepoName};
use crate::package::Package;
use crate::repo::memory::{MemoryError, MemoryStore, MemoryTxn, Persist, State, StateV1};
use crate::repo::{ArchRecord, RepoStore};

use super::write_atomically;

/// The first line of a store file; the number is the format's version.
const MAGIC: &[u8] = b"vieter-dirstore 2\n";
/// The first line of a version 1 file (read, never written).
const MAGIC_V1: &[u8] = b"vieter-dirstore 1\n";

/// Why a [`DirStore`] could not be opened; each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum DirStoreError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    /// Another [`DirStore`] (in this process or another) has the store open.
    #[error("{path}: the store is already open elsewhere (its lock file {path}.lock is held)")]
    Locked { path: String },
    /// The file is not a store file of this format.
    #[error("{path}: not a vieter store file: {reason}")]
    Format { path: String, reason: String },
    /// The file has the right first line but its state does not decode (truncated or corrupt).
    #[error("{path}: the store's state does not decode: {reason}")]
    Decode { path: String, reason: String },
}

/// The [`RepoStore`] kept in one file (see the module documentation).
pub struct DirStore {
    inner: MemoryStore,
    /// Holds the exclusive lock for as long as the store is open.
    _lock: File,
}

impl std::fmt::Debug for DirStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirStore").finish_non_exhaustive()
    }
}

impl DirStore {
    /// Opens the store kept at `path`: reads its state when the file exists (else starts empty and
    /// writes the file at the first commit). Creates the parent directory and `<path>.lock`, and locks
    /// the latter for the store's lifetime.
    pub fn open(path: &Path) -> Result<DirStore, DirStoreError> {
        let shown = || path.display().to_string();
        let io_err = |source| DirStoreError::Io { path: shown(), source };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(io_err)?;
        }
        let lock_path = lock_path(path);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| DirStoreError::Io { path: lock_path.display().to_string(), source })?;
        match try_lock(&lock) {
            Ok(true) => {}
            Ok(false) => return Err(DirStoreError::Locked { path: shown() }),
            Err(source) => return Err(DirStoreError::Io { path: lock_path.display().to_string(), source }),
        }
        let state = match fs::read(path) {
            Ok(bytes) => decode(path, &bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(io_err(e)),
        };
        let persist = ToFile { path: path.to_path_buf() };
        Ok(DirStore { inner: MemoryStore::with_state(state, Box::new(persist)), _lock: lock })
    }
}

/// Takes the exclusive lock of `file` (an advisory `flock` on Unix); false when another open file holds
/// it, in this process or another.
fn try_lock(file: &File) -> io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".lock");
    PathBuf::from(name)
}

fn decode(path: &Path, bytes: &[u8]) -> Result<State, DirStoreError> {
    let shown = || path.display().to_string();
    let decode_err = |reason| DirStoreError::Decode { path: shown(), reason };
    if let Some(encoded) = bytes.strip_prefix(MAGIC_V1) {
        let (state, rest) = postcard::take_from_bytes::<StateV1>(encoded)
            .map_err(|e| decode_err(format!("{e} (truncated or corrupt)")))?;
        if !rest.is_empty() {
            return Err(decode_err(format!("{} bytes follow the state", rest.len())));
        }
        return Ok(state.into());
    }
    let Some(encoded) = bytes.strip_prefix(MAGIC) else {
        let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        let first = String::from_utf8_lossy(&first[..first.len().min(40)]).into_owned();
        let expected = String::from_utf8_lossy(&MAGIC[..MAGIC.len() - 1]);
        return Err(DirStoreError::Format {
            path: shown(),
            reason: format!("its first line is {first:?}, not {expected:?}"),
        });
    };
    let (state, rest) = postcard::take_from_bytes::<State>(encoded)
        .map_err(|e| decode_err(format!("{e} (truncated or corrupt)")))?;
    if !rest.is_empty() {
        return Err(decode_err(format!("{} bytes follow the state", rest.len())));
    }
    Ok(state)
}

/// Writes each committed state to the store file, atomically.
struct ToFile {
    path: PathBuf,
}

impl Persist for ToFile {
    fn persist(&self, state: &State) -> io::Result<()> {
        write_atomically(&self.path, |w| {
            w.write_all(MAGIC)?;
            postcard::to_io(state, &mut *w).map_err(io::Error::other)?;
            Ok(())
        })
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))
    }
}

impl RepoStore for DirStore {
    type Error = MemoryError;
    type Txn<'a> = MemoryTxn<'a>;

    fn begin(&self) -> Result<MemoryTxn<'_>, MemoryError> {
        self.inner.begin()
    }

    fn arch_repos(&self) -> Result<Vec<(RepoName, Arch, ArchRecord)>, MemoryError> {
        self.inner.arch_repos()
    }

    fn arches_of(&self, repo: &RepoName) -> Result<BTreeSet<Arch>, MemoryError> {
        self.inner.arches_of(repo)
    }

    fn has_arch_repo(&self, repo: &RepoName, arch: &Arch) -> Result<bool, MemoryError> {
        self.inner.has_arch_repo(repo, arch)
    }

    fn summaries(&self, repo: &RepoName, arch: &Arch) -> Result<Vec<PackageSummary>, MemoryError> {
        self.inner.summaries(repo, arch)
    }

    fn package(
        &self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
    ) -> Result<Option<(PackageSummary, Package)>, MemoryError> {
        self.inner.package(repo, arch, name)
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
        self.inner.file_page(repo, arch, name, offset, limit, max_bytes)
    }

    fn file_hash(&self, repo: &RepoName, arch: &Arch, filename: &str) -> Result<Option<String>, MemoryError> {
        self.inner.file_hash(repo, arch, filename)
    }

    fn history(
        &self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
    ) -> Result<Vec<PackageEvent>, MemoryError> {
        self.inner.history(repo, arch, name)
    }

    fn is_referenced(&self, sha256: &str) -> Result<bool, MemoryError> {
        self.inner.is_referenced(sha256)
    }

    fn pool_hashes(&self) -> Result<BTreeSet<String>, MemoryError> {
        self.inner.pool_hashes()
    }

    fn each_member(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
        each: &mut dyn FnMut(&str, &[u8]) -> io::Result<()>,
    ) -> Result<(), MemoryError> {
        self.inner.each_member(repo, arch, kind, each)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbFormat;
    use crate::repo::conformance::{self, package_bytes};
    use crate::repo::memory::MemoryBlobs;
    use crate::repo::{BlobStore, Removal, RepoTxn, Repository};

    fn arch(a: &str) -> Arch {
        Arch::new(a).unwrap()
    }

    fn repo_name(r: &str) -> RepoName {
        RepoName::new(r).unwrap()
    }

    fn publish(repo: &Repository<DirStore, MemoryBlobs>, r: &str, bytes: &[u8]) {
        let mut upload = repo.blobs().create_upload().unwrap();
        upload.write_all(bytes).unwrap();
        repo.publish(&repo_name(r), upload).unwrap();
    }

    /// One arch-repo as a store answers it: name and record, summaries, file hashes, database members.
    type ArchContents = (String, Vec<PackageSummary>, Vec<Option<String>>, Vec<Vec<u8>>);

    /// Everything a store answers, per arch-repo.
    fn contents(store: &DirStore) -> Vec<ArchContents> {
        let mut out = Vec::new();
        for (r, a, record) in store.arch_repos().unwrap() {
            let summaries = store.summaries(&r, &a).unwrap();
            let hashes = summaries.iter().map(|s| store.file_hash(&r, &a, &s.filename).unwrap()).collect();
            let mut members = Vec::new();
            for kind in [ArchiveKind::Db, ArchiveKind::Files] {
                store
                    .each_member(&r, &a, kind, &mut |_, m| {
                        members.push(m.to_vec());
                        Ok(())
                    })
                    .unwrap();
            }
            out.push((format!("{r}/{a} {}", record.last_change), summaries, hashes, members));
        }
        out
    }

    /// A store file holding one published package.
    fn written_store(path: &Path) -> Vec<u8> {
        let repo = Repository::new(
            DirStore::open(path).unwrap(),
            MemoryBlobs::new(),
            arch("x86_64"),
            DbFormat::Current,
            chrono::Utc::now,
        );
        publish(&repo, "core", &package_bytes("hello", "1.0-1", "x86_64", &["usr/bin/hello"]));
        fs::read(path).unwrap()
    }

    #[test]
    fn the_directory_store_keeps_every_promise() {
        let dir = tempfile::tempdir().unwrap();
        let mut i = 0;
        conformance::check(|| {
            i += 1;
            let store = DirStore::open(&dir.path().join(i.to_string()).join("meta")).unwrap();
            (store, MemoryBlobs::new())
        });
        assert!(i > 1, "the suite made its pairs here");
    }

    #[test]
    fn a_reopened_store_has_what_was_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta");
        let blobs = MemoryBlobs::new();
        let repo = Repository::new(
            DirStore::open(&path).unwrap(),
            blobs.clone(),
            arch("x86_64"),
            DbFormat::Current,
            chrono::Utc::now,
        );
        publish(&repo, "core", &package_bytes("hello", "1.0-1", "x86_64", &["usr/bin/hello"]));
        publish(&repo, "core", &package_bytes("hello", "1.1-1", "x86_64", &["usr/bin/hello"]));
        publish(&repo, "core", &package_bytes("docs", "2-1", "any", &["usr/share/doc/docs"]));
        publish(&repo, "extra", &package_bytes("tool", "3-1", "aarch64", &["usr/bin/tool"]));
        publish(&repo, "extra", &package_bytes("gone", "1-1", "aarch64", &[]));
        let (aarch64, gone) = (arch("aarch64"), PkgName::new("gone").unwrap());
        assert!(repo.remove(&repo_name("extra"), Removal::Package(&aarch64, &gone)).unwrap());
        let before = contents(repo.store());
        let pool = repo.store().pool_hashes().unwrap();
        let (store, _) = repo.into_parts();
        drop(store);

        let file = fs::read(&path).unwrap();
        assert!(file.starts_with(MAGIC));
        let reopened = DirStore::open(&path).unwrap();
        let hello = PkgName::new("hello").unwrap();
        let history = reopened.history(&repo_name("core"), &arch("x86_64"), &hello).unwrap();
        assert_eq!(history.len(), 2, "the histories are kept: {history:?}");

        // A file of version 1 (before histories) is read, with empty histories, and written as
        // version 2 at the next commit.
        let state: State = postcard::from_bytes(&file[MAGIC.len()..]).unwrap();
        let old = dir.path().join("old");
        fs::write(&old, [MAGIC_V1, &crate::repo::memory::encode_v1(&state)].concat()).unwrap();
        let upgraded = DirStore::open(&old).unwrap();
        assert_eq!(contents(&upgraded), before, "a version 1 file has the same contents");
        assert!(upgraded.history(&repo_name("core"), &arch("x86_64"), &hello).unwrap().is_empty());
        let mut txn = upgraded.begin().unwrap();
        txn.put_arch_repo(
            &repo_name("new"),
            &arch("x86_64"),
            &ArchRecord { last_change: chrono::Utc::now() },
        )
        .unwrap();
        txn.commit().unwrap();
        assert!(fs::read(&old).unwrap().starts_with(MAGIC), "written as version 2");
        drop(upgraded);
        assert_eq!(DirStore::open(&old).unwrap().arch_repos().unwrap().len(), 3);
        drop(reopened);
        let reopened = DirStore::open(&path).unwrap();
        assert_eq!(contents(&reopened), before);
        assert_eq!(reopened.pool_hashes().unwrap(), pool);
        let core = contents(&reopened).into_iter().map(|(name, s, ..)| (name, s.len())).collect::<Vec<_>>();
        assert_eq!(core.len(), 2, "core/x86_64 and extra/aarch64: {core:?}");
        assert_eq!(core[0].1, 2, "hello 1.1 and docs in core/x86_64");
        assert_eq!(core[1].1, 1, "only tool is left in extra/aarch64");
        let (x86, hello) = (arch("x86_64"), PkgName::new("hello").unwrap());
        let (summary, package) = reopened.package(&repo_name("core"), &x86, &hello).unwrap().unwrap();
        assert_eq!(summary.version.to_string(), "1.1-1");
        let files = reopened.file_page(&repo_name("core"), &x86, &hello, 0, 100, 1 << 20).unwrap();
        assert_eq!(files.map(|(names, n)| (names.len() as u64, n)), Some((1, 1)));
        assert_eq!(package.info.version.to_string(), "1.1-1");
        let hash = reopened.file_hash(&repo_name("core"), &x86, &summary.filename).unwrap();
        assert!(hash.is_some_and(|h| blobs.package(&h).is_some()), "the file row names a kept package");
    }

    #[test]
    fn nothing_is_written_before_the_first_commit_nor_by_a_dropped_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta");
        let store = DirStore::open(&path).unwrap();
        assert!(!path.exists());
        let record = ArchRecord { last_change: chrono::DateTime::UNIX_EPOCH };
        {
            let mut txn = store.begin().unwrap();
            txn.put_arch_repo(&repo_name("r"), &arch("x86_64"), &record).unwrap();
        }
        assert!(!path.exists());
        let mut txn = store.begin().unwrap();
        txn.put_arch_repo(&repo_name("r"), &arch("x86_64"), &record).unwrap();
        txn.commit().unwrap();
        drop(store);
        let reopened = DirStore::open(&path).unwrap();
        assert!(reopened.has_arch_repo(&repo_name("r"), &arch("x86_64")).unwrap());
    }

    #[test]
    fn an_open_store_cannot_be_opened_again_until_it_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta");
        let first = DirStore::open(&path).unwrap();
        let second = DirStore::open(&path);
        match &second {
            Err(e @ DirStoreError::Locked { .. }) => {
                assert!(e.to_string().contains(&path.display().to_string()), "{e}")
            }
            other => panic!("a second open must be refused as locked: {other:?}"),
        }
        drop(first);
        DirStore::open(&path).unwrap();
    }

    #[test]
    fn a_file_that_is_not_a_store_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta");
        let valid = written_store(&path);
        let state = &valid[MAGIC.len()..];
        let shown = path.display().to_string();
        let open = |bytes: &[u8]| {
            fs::write(&path, bytes).unwrap();
            let e = DirStore::open(&path).expect_err("an invalid store file must be refused");
            assert!(e.to_string().starts_with(&shown), "{e}");
            e
        };

        let garbage = open(b"\x7fELF\x02\x01\x01 certainly not a store\n\xff\xfe");
        assert!(matches!(garbage, DirStoreError::Format { .. }), "{garbage:?}");
        let wrong_version = open(&[b"vieter-dirstore 3\n", state].concat());
        assert!(matches!(wrong_version, DirStoreError::Format { .. }), "{wrong_version:?}");
        assert!(wrong_version.to_string().contains("vieter-dirstore 3"), "{wrong_version}");
        let corrupt = open(&[MAGIC, &[0xff; 64][..]].concat());
        assert!(matches!(corrupt, DirStoreError::Decode { .. }), "{corrupt:?}");
        let trailing = open(&[&valid[..], b"x"].concat());
        assert!(matches!(trailing, DirStoreError::Decode { .. }), "{trailing:?}");
        // Every truncation: inside the first line a format error, past it a decoding error.
        for len in 0..valid.len() {
            match open(&valid[..len]) {
                DirStoreError::Format { .. } if len < MAGIC.len() => {}
                DirStoreError::Decode { .. } if len >= MAGIC.len() => {}
                other => panic!("truncated to {len} bytes: {other:?}"),
            }
        }

        fs::write(&path, &valid).unwrap();
        let store = DirStore::open(&path).unwrap();
        assert_eq!(store.summaries(&repo_name("core"), &arch("x86_64")).unwrap().len(), 1);
    }
}
