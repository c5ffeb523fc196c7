//! Repository operations: publish, remove, rewrite archives, recover after a crash.
//!
//! Order of every change (what keeps a served db consistent with the files on disk):
//! 1. the package file is complete and synced in the pool before anything refers to it;
//! 2. one redb transaction records the change;
//! 3. the affected archives are rewritten (temp file, fsync, rename, fsync of the directory);
//! 4. only then are pool files that nothing references any more deleted.
//!
//! A crash between any two steps leaves archives that only name existing files; startup recovery
//! ([`Repos::recover`]) rewrites every archive from redb and deletes unreferenced files.
//!
//! Steps 2 to 4 run under the lock of every arch-repo the change touches. Which arch-repos those are (all
//! of a repository for an `any` package or a repository delete) is decided inside the write transaction,
//! so an arch-repo created or deleted concurrently is never missed or resurrected.
//!
//! Decisions: an arch-repo whose last package was removed by name keeps an empty database (pacman
//! refuses a configured repository without one); `DELETE /{repo}/{arch}` removes it, after which its
//! database is 404 like any arch the repository never had. An `any` package goes to the arches the
//! repository has when it is published; an arch-repo created later does not receive it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use chrono::Utc;
use libvieter::api::PublishResult;
use libvieter::db::{ArchiveKind, DbEntry, DbFormat};
use libvieter::name::Arch;
use libvieter::package::{read_package, Package, PackageError, ReadOptions};
use sha2::{Digest, Sha256};

use crate::store::{Locked, NewPackage, Placement, PoolChanges, Put, Store, StoreError};

/// Why a repository operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("invalid package: {0}")]
    Package(#[from] PackageError),
    #[error("{0}")]
    InvalidName(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("building the database entry: {0}")]
    Db(#[from] libvieter::db::DbError),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RepoError {
    let context = context.into();
    move |source| RepoError::Io { context, source }
}

/// Checks a repository name with libvieter's rule (`[A-Za-z0-9._-]+`, not starting with `.` or `-`, not
/// `api`): the same rule as a build target's repository.
pub fn validate_repo_name(name: &str) -> Result<(), RepoError> {
    libvieter::repo::check_repo_name(name).map_err(RepoError::InvalidName)
}

/// The repositories on disk and in redb.
pub struct Repos {
    data_dir: PathBuf,
    store: Store,
    default_arch: Arch,
    format: DbFormat,
    /// One lock per arch-repo (`repo/arch`): changes to one arch-repo are serialized, others proceed.
    locks: Mutex<BTreeMap<String, Arc<Mutex<()>>>>,
    /// Held shared from "file is in the pool" to "the transaction referencing it committed", and
    /// exclusively while deleting pool files: a file is never deleted between those two steps.
    pool_guard: RwLock<()>,
    /// Held shared while an arch-repo directory is created and its first file put in it, and exclusively
    /// while an emptied repository directory is removed: the removal of one arch-repo never pulls the
    /// repository directory from under the creation of another.
    repo_dirs: RwLock<()>,
    /// Content tags of the archives, by path (see [`Repos::archive_etag`]).
    tags: Mutex<std::collections::HashMap<PathBuf, ArchiveTag>>,
}

/// The tag of an archive as it was written: valid while its length and time are these.
#[derive(Debug, Clone)]
struct ArchiveTag {
    len: u64,
    mtime: SystemTime,
    etag: String,
}

/// A writer that hashes and counts what goes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(data)?;
        self.hasher.update(&data[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Repos {
    /// Opens the data directory (creating its layout) and the database.
    pub fn open(data_dir: &Path, default_arch: Arch, format: DbFormat) -> Result<Repos, RepoError> {
        for sub in ["pool", "repos", "tmp"] {
            let dir = data_dir.join(sub);
            fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        }
        let store = Store::open(&data_dir.join("vieter.redb"))?;
        Ok(Repos {
            data_dir: data_dir.to_owned(),
            store,
            default_arch,
            format,
            locks: Mutex::default(),
            pool_guard: RwLock::new(()),
            repo_dirs: RwLock::new(()),
            tags: Mutex::default(),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Where uploads are written while they arrive.
    pub fn tmp_dir(&self) -> PathBuf {
        self.data_dir.join("tmp")
    }

    /// The pool file of a SHA-256.
    pub fn pool_path(&self, sha256: &str) -> PathBuf {
        self.data_dir.join("pool").join(sha256)
    }

    /// The archive of an arch-repo (`kind` db or files).
    pub fn archive_path(&self, repo: &str, arch: &str, kind: ArchiveKind) -> PathBuf {
        let name = match kind {
            ArchiveKind::Db => format!("{repo}.db.tar.gz"),
            ArchiveKind::Files => format!("{repo}.files.tar.gz"),
        };
        self.data_dir.join("repos").join(repo).join(arch).join(name)
    }

    fn lock(&self, repo: &str, arch: &str) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(format!("{repo}/{arch}")).or_default().clone()
    }

    /// Adds the package in `upload` (a complete, synced file in the tmp dir) to `repo`. Blocking.
    ///
    /// The upload file is consumed: moved into the pool or deleted.
    pub fn publish(&self, repo: &str, upload: &Path) -> Result<PublishResult, RepoError> {
        let result = self.publish_inner(repo, upload);
        // On success the file was renamed away; on failure it must not stay behind.
        let _ = fs::remove_file(upload);
        result
    }

    fn publish_inner(&self, repo: &str, upload: &Path) -> Result<PublishResult, RepoError> {
        validate_repo_name(repo)?;
        let file = File::open(upload).map_err(io("opening the upload"))?;
        let options = ReadOptions { md5: self.format == DbFormat::WithMd5, ..ReadOptions::default() };
        let package = read_package(std::io::BufReader::with_capacity(256 * 1024, file), &options)?;
        let filename = package.filename();
        let mtime = Utc::now().timestamp().max(0) as u64;
        let entry = DbEntry::new(&package, &filename, self.format, None)?
            .compress(mtime)
            .map_err(io("compressing the db entry"))?;

        let initial = self.target_archs(repo, &package)?;
        // 1. into the pool (content-addressed: an identical file is already there).
        let pool_guard = self.pool_guard.read().unwrap_or_else(|p| p.into_inner());
        let pool = self.pool_path(&package.sha256);
        if !pool.exists() {
            fs::rename(upload, &pool).map_err(io("moving the upload into the pool"))?;
            sync_dir(&self.data_dir.join("pool"))?;
        }

        let placement = if package.info.arch.is_any() {
            Placement::Any { default_arch: self.default_arch.as_str() }
        } else {
            Placement::Arch(package.info.arch.as_str())
        };
        let new =
            NewPackage { package: &package, entry: &entry, filename: &filename, published_at: Utc::now() };
        // 2. record (under the locks of every arch-repo it goes to); 3. rewrite archives; 4. delete what
        // is no longer referenced.
        let mut pool_guard = Some(pool_guard);
        let committed = self.with_locks(repo, initial, |locked| {
            let put = self.store.put_package(repo, placement, locked, &new);
            if !matches!(put, Ok(Locked::NeedLocks(_))) {
                // Committed (the pool file is referenced) or failed: pool deletions may go on.
                pool_guard.take();
            }
            match put? {
                Locked::Done(put) => {
                    // Committed: from here on a failure leaves redb ahead of the archives, which the
                    // next change or startup recovery rewrites; no file they list is deleted.
                    for arch in &put.changed {
                        self.write_archives(repo, arch)?;
                    }
                    Ok(Locked::Done(put))
                }
                Locked::NeedLocks(more) => Ok(Locked::NeedLocks(more)),
            }
        });
        drop(pool_guard);
        let Put { archs, changed, changes } = match committed {
            Ok(done) => done,
            Err(e) => {
                self.delete_if_unreferenced(&package.sha256);
                return Err(e);
            }
        };
        self.delete_unreferenced(&changes);
        if changed.is_empty() {
            tracing::info!(repo, archs = ?archs, name = %package.info.name, version = %package.info.version, "already published");
        } else {
            tracing::info!(repo, archs = ?changed, name = %package.info.name, version = %package.info.version, "published");
        }
        Ok(PublishResult {
            name: package.info.name.clone(),
            version: package.info.version.clone(),
            archs: archs.iter().filter_map(|a| Arch::new(a.as_str()).ok()).collect(),
        })
    }

    /// The arch-repos a package goes to: its own arch, or for `any` every arch the repo has plus the
    /// default arch.
    fn target_archs(&self, repo: &str, package: &Package) -> Result<Vec<String>, RepoError> {
        let existing = if package.info.arch.is_any() {
            self.store.arches_of(repo)?.into_iter().filter_map(|a| Arch::new(a).ok()).collect()
        } else {
            BTreeSet::new()
        };
        let archs = libvieter::repo::arches_for(&package.info.arch, &existing, &self.default_arch);
        Ok(archs.into_iter().map(|a| a.to_string()).collect())
    }

    /// Removes a package, an arch-repo or a repository. Returns whether it existed. Blocking.
    ///
    /// An arch-repo whose last package is removed by name stays, with an empty database: pacman fails on
    /// a configured repository whose database is missing, so only `DELETE /{repo}/{arch}` (or the whole
    /// repository) makes its database disappear (404).
    pub fn remove(&self, repo: &str, arch: Option<&str>, name: Option<&str>) -> Result<bool, RepoError> {
        let initial = match arch {
            Some(a) => vec![a.to_owned()],
            None => self.store.arches_of(repo)?,
        };
        let removed = self.with_locks(repo, initial, |locked| {
            let removed = match self.store.remove(repo, arch, name, locked, Utc::now())? {
                Locked::Done(removed) => removed,
                Locked::NeedLocks(more) => return Ok(Locked::NeedLocks(more)),
            };
            for a in &removed.archs {
                if self.store.has_arch_repo(repo, a)? {
                    self.write_archives(repo, a)?;
                } else {
                    self.remove_archives(repo, a)?;
                }
            }
            Ok(Locked::Done(removed))
        })?;
        self.delete_unreferenced(&removed.changes);
        Ok(removed.found)
    }

    /// Runs `change` holding the locks of the arch-repos `archs` of `repo` (taken in sorted order, so two
    /// changes never deadlock). When `change` finds that it touches more arch-repos (decided inside its
    /// write transaction, see [`Locked`]), it runs again holding those.
    fn with_locks<T>(
        &self,
        repo: &str,
        mut archs: Vec<String>,
        mut change: impl FnMut(&[String]) -> Result<Locked<T>, RepoError>,
    ) -> Result<T, RepoError> {
        loop {
            archs.sort();
            archs.dedup();
            let locks: Vec<Arc<Mutex<()>>> = archs.iter().map(|a| self.lock(repo, a)).collect();
            let _guards: Vec<_> = locks.iter().map(|l| l.lock().unwrap_or_else(|p| p.into_inner())).collect();
            match change(&archs)? {
                Locked::Done(done) => return Ok(done),
                Locked::NeedLocks(more) => archs = more,
            }
        }
    }

    /// Rewrites both archives of an arch-repo from redb, atomically. Their modification time is the
    /// time of the change (never in the future; see `libvieter::repo::last_modified` for how a change within the same
    /// second is still never answered 304) and their tag a digest of their bytes.
    fn write_archives(&self, repo: &str, arch: &str) -> Result<(), RepoError> {
        let mtime = SystemTime::now();
        for kind in [ArchiveKind::Db, ArchiveKind::Files] {
            let path = self.archive_path(repo, arch, kind);
            let dir = path.parent().map(Path::to_owned).unwrap_or_default();
            let tmp = archive_tmp_path(&path);
            let file = self.create_in_dir(&dir, &tmp).map_err(io(format!("creating {}", tmp.display())))?;
            let mut out =
                Hashing { inner: BufWriter::with_capacity(1 << 20, &file), hasher: Sha256::new(), len: 0 };
            self.store.write_archive(repo, arch, kind, &mut out)?;
            out.inner.flush().map_err(io("writing an archive"))?;
            let (len, digest) = (out.len, out.hasher.finalize());
            drop(out.inner);
            file.set_modified(mtime).map_err(io("setting an archive's time"))?;
            file.sync_all().map_err(io("syncing an archive"))?;
            let mtime =
                file.metadata().and_then(|m| m.modified()).map_err(io("reading an archive's time"))?;
            fs::rename(&tmp, &path).map_err(io(format!("replacing {}", path.display())))?;
            sync_dir(&dir)?;
            let tag = ArchiveTag { len, mtime, etag: hex::encode(&digest[..16]) };
            self.tags.lock().unwrap_or_else(|p| p.into_inner()).insert(path, tag);
        }
        Ok(())
    }

    /// The tag (a digest of the content) of the archive at `path` whose open handle is `file`, of length
    /// `len` and modification time `mtime`. Computed when the archive is written; after a restart, from
    /// the file on first use.
    pub fn archive_etag(
        &self,
        path: &Path,
        file: &File,
        len: u64,
        mtime: SystemTime,
    ) -> std::io::Result<String> {
        let cached = self.tags.lock().unwrap_or_else(|p| p.into_inner()).get(path).cloned();
        if let Some(tag) = cached.filter(|t| t.len == len && t.mtime == mtime) {
            return Ok(tag.etag);
        }
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut offset = 0u64;
        while offset < len {
            let n = std::os::unix::fs::FileExt::read_at(file, &mut buf, offset)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            offset += n as u64;
        }
        let etag = hex::encode(&hasher.finalize()[..16]);
        let tag = ArchiveTag { len, mtime, etag: etag.clone() };
        self.tags.lock().unwrap_or_else(|p| p.into_inner()).insert(path.to_owned(), tag);
        Ok(etag)
    }

    /// Whether both archives of an arch-repo on disk are byte for byte what redb would write now.
    fn archives_current(&self, repo: &str, arch: &str) -> Result<bool, RepoError> {
        for kind in [ArchiveKind::Db, ArchiveKind::Files] {
            let Ok(file) = File::open(self.archive_path(repo, arch, kind)) else { return Ok(false) };
            let mut compare = SameAs { existing: std::io::BufReader::new(file), same: true, buf: Vec::new() };
            self.store.write_archive(repo, arch, kind, &mut compare)?;
            let mut rest = [0u8; 1];
            let at_end = matches!(std::io::Read::read(&mut compare.existing, &mut rest), Ok(0));
            if !(compare.same && at_end) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn remove_archives(&self, repo: &str, arch: &str) -> Result<(), RepoError> {
        let dir = self.data_dir.join("repos").join(repo).join(arch);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(format!("removing {}", dir.display()))(e)),
        }
        self.remove_repo_dir_if_empty(repo);
        Ok(())
    }

    /// The repository directory goes when its last arch-repo does.
    fn remove_repo_dir_if_empty(&self, repo: &str) {
        let _exclusive = self.repo_dirs.write().unwrap_or_else(|p| p.into_inner());
        let _ = fs::remove_dir(self.data_dir.join("repos").join(repo));
    }

    /// Creates `file` in the arch-repo directory `dir`, creating it (and its repository's) first. Once
    /// the file exists the directories are not empty, so they stay.
    fn create_in_dir(&self, dir: &Path, file: &Path) -> std::io::Result<File> {
        let _shared = self.repo_dirs.read().unwrap_or_else(|p| p.into_inner());
        fs::create_dir_all(dir)?;
        File::create(file)
    }

    fn delete_unreferenced(&self, changes: &PoolChanges) {
        for sha in &changes.unreferenced {
            self.delete_if_unreferenced(sha);
        }
    }

    fn delete_if_unreferenced(&self, sha: &str) {
        let _exclusive = self.pool_guard.write().unwrap_or_else(|p| p.into_inner());
        match self.store.is_referenced(sha) {
            Ok(false) => {
                if let Err(e) = fs::remove_file(self.pool_path(sha)) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!("cannot delete pool file {sha}: {e}");
                    }
                }
            }
            Ok(true) => {}
            Err(e) => tracing::warn!("cannot check pool references: {e}"),
        }
    }

    /// Startup recovery: empties tmp/, rewrites every archive from redb, removes archives of arch-repos
    /// that no longer exist and pool files nothing references. Blocking.
    pub fn recover(&self) -> Result<RecoveryReport, RepoError> {
        let mut report = RecoveryReport::default();
        let tmp = self.tmp_dir();
        for entry in fs::read_dir(&tmp).map_err(io("listing tmp/"))?.flatten() {
            if fs::remove_file(entry.path()).is_ok() {
                report.temp_files_removed += 1;
            }
        }
        let arch_repos = self.store.arch_repos()?;
        let live: BTreeSet<(String, String)> =
            arch_repos.iter().map(|(r, a, _)| (r.clone(), a.clone())).collect();
        for (repo, arch) in &live {
            // Leftovers of an archive rewrite cut short.
            for kind in [ArchiveKind::Db, ArchiveKind::Files] {
                let _ = fs::remove_file(archive_tmp_path(&self.archive_path(repo, arch, kind)));
            }
            // An archive that already says what redb says keeps its time: pacman need not download it
            // again after every restart.
            if self.archives_current(repo, arch)? {
                report.archives_unchanged += 1;
            } else {
                self.write_archives(repo, arch)?;
                report.archives_rewritten += 1;
            }
        }
        let repos_dir = self.data_dir.join("repos");
        for repo_dir in fs::read_dir(&repos_dir).map_err(io("listing repos/"))?.flatten() {
            let repo = repo_dir.file_name().to_string_lossy().into_owned();
            for arch_dir in fs::read_dir(repo_dir.path()).map_err(io("listing a repo dir"))?.flatten() {
                let arch = arch_dir.file_name().to_string_lossy().into_owned();
                if !live.contains(&(repo.clone(), arch.clone())) {
                    let _ = fs::remove_dir_all(arch_dir.path());
                    report.stale_archives_removed += 1;
                }
            }
            let _ = fs::remove_dir(repo_dir.path());
        }
        let referenced = self.store.pool_hashes()?;
        for entry in fs::read_dir(self.data_dir.join("pool")).map_err(io("listing pool/"))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !referenced.contains(&name) && fs::remove_file(entry.path()).is_ok() {
                report.orphans_removed += 1;
            }
        }
        Ok(report)
    }
}

/// What startup recovery did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    pub temp_files_removed: usize,
    pub archives_unchanged: usize,
    pub archives_rewritten: usize,
    pub stale_archives_removed: usize,
    pub orphans_removed: usize,
}

/// Where an archive is written before it replaces `path`.
fn archive_tmp_path(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("db");
    path.with_file_name(format!(".{name}.tmp"))
}

/// A writer that only checks that what is written equals the rest of `existing`.
struct SameAs<R> {
    existing: R,
    same: bool,
    buf: Vec<u8>,
}

impl<R: std::io::Read> Write for SameAs<R> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.same {
            self.buf.resize(data.len(), 0);
            self.same = self.existing.read_exact(&mut self.buf).is_ok() && self.buf == data;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> Result<(), RepoError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(format!("syncing {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names() {
        for ok in ["core", "my-repo", "a.b_c", "x1"] {
            assert!(validate_repo_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "api", ".hidden", "-x", "a/b", "a b", "..", "%2e%2e", "é"] {
            assert!(validate_repo_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn archive_files_survive_a_racing_removal_of_the_repository_directory() {
        let root = std::env::temp_dir().join(format!("vieter-race-{}", std::process::id()));
        let repos = Repos::open(&root, Arch::new("x86_64").unwrap(), DbFormat::Current).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    repos.remove_repo_dir_if_empty("r");
                }
            });
            let dir = root.join("repos/r/x86_64");
            let file = dir.join("r.db.tmp");
            for i in 0..2000 {
                let created = repos.create_in_dir(&dir, &file);
                if let Err(e) = created {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    panic!("attempt {i}: {e}");
                }
                fs::remove_file(&file).unwrap();
                fs::remove_dir(&dir).unwrap();
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        drop(repos);
        let _ = fs::remove_dir_all(&root);
    }
}
