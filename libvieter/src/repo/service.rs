//! [`Repository`]: every rule of publishing into and removing from a pacman repository, over a
//! [`RepoStore`] and a [`BlobStore`].
//!
//! Order of every change (what keeps a served database consistent with the package files):
//! 1. the package file (and, with a [`Signer`], its detached signature) is complete and durable in the
//!    blob store before anything refers to it;
//! 2. one store transaction records the change;
//! 3. the affected archives are rewritten (each atomically, with its signature in the same step);
//! 4. only then are package files that nothing references any more deleted.
//!
//! A crash between any two steps leaves archives that only name existing files; [`Repository::recover`]
//! rewrites every archive that differs from the store (a blob store need not sync archives) and deletes
//! unreferenced files.
//!
//! Publishes into one repository that wait at the same time are committed together (group commit,
//! `ingest.rs`): one transaction applies them in the order they came, each changed archive is rewritten
//! once, and each publisher is answered when its batch is over (its package durable and in the
//! archives). Publishing a batch is the same as publishing its packages one after the other.
//!
//! Steps 2 to 4 run under the lock of every arch-repo the change touches. Which arch-repos those are (all
//! of a repository for an `any` package or a repository delete) is decided inside the write transaction,
//! so an arch-repo created or deleted concurrently is never missed or resurrected: when the transaction
//! finds more arch-repos than are locked, it writes nothing and the change runs again holding their
//! locks too.
//!
//! Decisions: an arch-repo whose last package was removed by name keeps an empty database (pacman
//! refuses a configured repository without one); removing the arch-repo itself makes its database
//! disappear. An `any` package goes to the arches the repository has when it is published (and the
//! default arch); an arch-repo created later does not receive it. Publishing the very file an arch-repo
//! already serves, or removing what is not there, writes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use crate::api::{PackageChange, PackageEvent, PackageSummary, PublishResult};
use crate::builds::Clock;
use crate::db::{ArchiveKind, DbEntry, DbError, DbFormat, StoredEntry};
use crate::name::{Arch, PkgName, RepoName};
use crate::package::{read_package, Package, PackageError, ReadOptions};

use super::blob::BlobStore;
use super::checkpoints::Resuming;
use super::ingest::Queue;
use super::sign::{
    check_upload, sign_reader, SignError, Signer, SigningWriter, UploadPolicy, UploadSignature,
    UploadSignatureError, Uploader, VerifyError,
};
use super::store::{ArchRecord, EntryRecord, RepoStore, RepoTxn};
use super::HISTORY_KEPT;

mod resign;

/// The lock of each arch-repo.
type ArchLocks = BTreeMap<(RepoName, Arch), Arc<Mutex<()>>>;

type Boxed = Box<dyn std::error::Error + Send + Sync>;

/// Why a repository operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The upload is not a package this repository accepts (a client's mistake).
    #[error("invalid package: {0}")]
    Package(#[from] PackageError),
    /// The package's database entry cannot be made (a client's mistake, e.g. a value repo-add would
    /// corrupt the database with).
    #[error("invalid package: {0}")]
    Db(#[from] DbError),
    #[error("reading the upload: {0}")]
    Upload(#[source] io::Error),
    #[error("metadata store: {0}")]
    Store(#[source] Boxed),
    #[error("blob store: {0}")]
    Blob(#[source] Boxed),
    /// The signer failed (nothing that names the unsigned bytes was written).
    #[error("signing: {0}")]
    Sign(#[from] SignError),
    /// The upload's packager signature (or its absence) is refused by the [`UploadPolicy`] (a
    /// client's mistake).
    #[error("{0}")]
    Signature(#[from] UploadSignatureError),
    /// `any` names no arch-repo: its packages go to the repository's arch-repos (a client's mistake).
    #[error("`any` is not an arch-repo: packages of arch any go to every arch-repo of their repository")]
    AnyArchRepo,
}

impl RepoError {
    /// Whether the client sent something wrong (rather than the storage failing).
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            RepoError::Package(_) | RepoError::Db(_) | RepoError::Signature(_) | RepoError::AnyArchRepo
        )
    }
}

pub(crate) fn store_err<E: std::error::Error + Send + Sync + 'static>(e: E) -> RepoError {
    RepoError::Store(Box::new(e))
}

pub(crate) fn blob_err<E: std::error::Error + Send + Sync + 'static>(e: E) -> RepoError {
    RepoError::Blob(Box::new(e))
}

/// What to remove.
#[derive(Debug, Clone, Copy)]
pub enum Removal<'a> {
    /// One package from one arch-repo.
    Package(&'a Arch, &'a PkgName),
    /// A whole arch-repo (its database disappears).
    ArchRepo(&'a Arch),
    /// A whole repository.
    Repo,
}

/// What [`Repository::recover`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    pub temp_files_removed: usize,
    pub archives_unchanged: usize,
    pub archives_rewritten: usize,
    pub stale_archives_removed: usize,
    /// Package files nothing references, and signatures whose package file was never kept.
    pub orphans_removed: usize,
    /// Signatures made (of current archives, and of package files that had none) or removed (of
    /// archives, when no signer is configured).
    pub signatures_written: usize,
}

/// The outcome of a change that must hold the lock of every arch-repo it touches.
enum Locked<T> {
    Done(T),
    /// Nothing was written: these arch-repos must be locked (a superset of what was locked).
    NeedLocks(BTreeSet<Arch>),
}

/// Package files a transaction left unreferenced: deleted once the archives are rewritten.
#[derive(Debug, Default)]
struct Unreferenced(BTreeSet<String>);

/// A publish waiting for its transaction, owned: another publisher's thread may commit it.
struct PendingPut {
    summary: PackageSummary,
    package: Package,
    entry: StoredEntry,
    /// The arch-repos it goes to as seen before locking (the transaction decides).
    initial: BTreeSet<Arch>,
}

/// The arch-repos a publish went to, or why it failed.
type PutOutcome = Result<BTreeSet<Arch>, RepoError>;

/// What the transaction of a batch did.
struct BatchPut {
    /// The arch-repos of each publish, in batch order.
    archs: Vec<BTreeSet<Arch>>,
    changed: BTreeSet<Arch>,
    unreferenced: Unreferenced,
}

/// The same failure, for each publish of a batch that failed after its commit.
fn shared(e: &RepoError) -> RepoError {
    match e {
        RepoError::Blob(b) => RepoError::Blob(b.to_string().into()),
        RepoError::Sign(s) => RepoError::Sign(SignError::new(s.0.to_string())),
        RepoError::Store(b) => RepoError::Store(b.to_string().into()),
        other => RepoError::Store(other.to_string().into()),
    }
}

struct Removed {
    archs: Vec<Arch>,
    unreferenced: Unreferenced,
}

/// A pacman repository (any number of named repositories, each with any number of architectures).
/// Safe to share between threads; every method blocks on storage.
pub struct Repository<S, B> {
    store: S,
    blobs: B,
    default_arch: Arch,
    format: DbFormat,
    clock: Box<dyn Clock>,
    /// Signs package files and archives; `None`: the repository is unsigned.
    signer: Option<Box<dyn Signer>>,
    /// Which uploads need a packager's signature and who verifies it.
    uploads: UploadPolicy,
    /// One lock per arch-repo: changes to one arch-repo are serialized, others proceed.
    locks: Mutex<ArchLocks>,
    /// Held shared from "the package file is kept" to "the transaction referencing it committed", and
    /// exclusively while deleting package files: a file is never deleted between those two steps.
    pool_guard: RwLock<()>,
    /// Publishes waiting to be committed, by repository.
    ingest: Queue<PendingPut, PutOutcome, Unreferenced>,
    /// The state of the last (or the running) re-sign.
    resign_status: Mutex<crate::api::ResignStatus>,
    /// The arch-repos' summaries as the listings last read them (see [`super::queries`]).
    pub(super) listings: Mutex<super::queries::Listings>,
    /// The hashes of the start of each signed archive (see [`super::checkpoints`]).
    pub(super) hashes: super::checkpoints::Checkpoints,
    /// The archive members of the arch-repos written lately (see [`super::members`]).
    pub(super) members: super::members::Members,
    /// Whether publishes leave their archives to be written when next read or settled
    /// ([`Repository::with_deferred_archives`]).
    deferred: bool,
    /// The arch-repos whose archives are behind the store (deferred).
    stale: Mutex<BTreeSet<(RepoName, Arch)>>,
}

/// How many bytes of archive members [`Repository`] keeps in memory (a 10,000-package arch-repo's
/// two archives take about 10 MB).
const MEMBERS_KEPT: usize = 32 << 20;

impl<S: RepoStore, B: BlobStore> Repository<S, B> {
    /// A repository over `store` and `blobs`. `default_arch` is where `any` packages go in a repository
    /// that has no architecture yet; `format` the database format written; `clock` gives publication
    /// times and archive times (`chrono::Utc::now` in production).
    pub fn new(
        store: S,
        blobs: B,
        default_arch: Arch,
        format: DbFormat,
        clock: impl Clock + 'static,
    ) -> Self {
        Repository {
            store,
            blobs,
            default_arch,
            format,
            clock: Box::new(clock),
            signer: None,
            uploads: UploadPolicy::default(),
            locks: Mutex::default(),
            pool_guard: RwLock::new(()),
            ingest: Queue::default(),
            resign_status: Mutex::new(crate::api::ResignStatus::idle()),
            listings: Mutex::default(),
            hashes: Default::default(),
            members: super::members::Members::new(MEMBERS_KEPT),
            deferred: false,
            stale: Mutex::default(),
        }
    }

    /// This repository, answering a publish once its package is durable and recorded, and writing the
    /// archives it changed when they are next read ([`Repository::current_archives`], which a server
    /// calls before it serves one) or settled ([`Repository::settle`], on a timer): a burst of
    /// publishes into one arch-repo writes its archives a few times, not once per publish. Whoever
    /// reads archives from the blob store directly must call one of the two first. Removals and the
    /// other changes still write their archives at once.
    pub fn with_deferred_archives(mut self) -> Self {
        self.deferred = true;
        self
    }

    /// This repository, signing every package file it keeps and every archive it writes with
    /// `signer` (`FILE.sig` and `REPO.db.sig` next to them). Run [`Repository::recover`] after:
    /// it signs what an unsigned run left.
    pub fn with_signer(mut self, signer: impl Signer + 'static) -> Self {
        self.signer = Some(Box::new(signer));
        self
    }

    /// This repository, checking packagers' signatures on upload by `policy` (see
    /// [`Repository::publish_with`]); the default policy trusts no key and requires no signature.
    pub fn with_upload_policy(mut self, policy: UploadPolicy) -> Self {
        self.uploads = policy;
        self
    }

    /// This repository, keeping a copy of each signed archive's hash every `bytes` bytes of members
    /// (default 512 KiB; see `repo::checkpoints`): a smaller interval hashes less of an archive
    /// after a change near its end, and keeps more copies (about 200 bytes each).
    pub fn with_hash_checkpoints_every(mut self, bytes: u64) -> Self {
        self.hashes.every = bytes.max(1);
        self
    }

    /// Whether a signer is configured.
    pub fn is_signed(&self) -> bool {
        self.signer.is_some()
    }

    /// The store and the blob store back (to reopen them, as after a restart).
    pub fn into_parts(self) -> (S, B) {
        (self.store, self.blobs)
    }

    /// The metadata store, for reads (listings, package details, which pool file a name serves).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The blob store, for uploads and serving.
    pub fn blobs(&self) -> &B {
        &self.blobs
    }

    /// The architecture `any` packages go to in a repository without one.
    pub fn default_arch(&self) -> &Arch {
        &self.default_arch
    }

    fn lock(&self, repo: &RepoName, arch: &Arch) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry((repo.clone(), arch.clone())).or_default().clone()
    }

    /// Adds the package in `upload` (complete; read from its start) to `repo`, replacing the package of
    /// the same name in every arch-repo it goes to. The upload is consumed: kept as the package file or
    /// dropped. An upload by a user without a packager's signature: see [`Repository::publish_with`].
    pub fn publish(&self, repo: &RepoName, upload: B::Upload) -> Result<PublishResult, RepoError> {
        self.publish_with(repo, upload, &UploadSignature::unsigned(Uploader::User))
    }

    /// [`Repository::publish`] of an upload with (or without) a packager's signature, checked by the
    /// repository's [`UploadPolicy`] (`sign::check_upload`) before anything is kept. The file's
    /// `FILE.sig` is the one it already has, else the repository's signer's, else the verified
    /// packager's signature; the entry carries it as `%PGPSIG%` when the format embeds signatures.
    pub fn publish_with(
        &self,
        repo: &RepoName,
        mut upload: B::Upload,
        signed: &UploadSignature,
    ) -> Result<PublishResult, RepoError> {
        upload.seek(SeekFrom::Start(0)).map_err(RepoError::Upload)?;
        let options = ReadOptions { md5: self.format == DbFormat::WithMd5, ..ReadOptions::default() };
        let package = read_package(BufReader::with_capacity(256 * 1024, &mut upload), &options)?;
        let packager = if signed.signature.is_some() || self.uploads.require_signed {
            upload.seek(SeekFrom::Start(0)).map_err(RepoError::Upload)?;
            let mut data = BufReader::with_capacity(256 * 1024, &mut upload);
            match check_upload(&self.uploads, signed, &mut data) {
                Ok(verified) => verified,
                Err(UploadSignatureError::Refused(VerifyError::Io(e))) => return Err(RepoError::Upload(e)),
                Err(e) => return Err(RepoError::Signature(e)),
            }
        } else {
            None
        };
        let filename = package.filename();
        let now = self.clock.now();
        let summary = PackageSummary::new(&package, &filename, now);
        let arch = &package.info.arch;
        let sha = package.sha256.as_str();

        let initial = if arch.is_any() {
            super::arches_for(arch, &self.store.arches_of(repo).map_err(store_err)?, &self.default_arch)
        } else {
            BTreeSet::from([arch.clone()])
        };
        // 1. The package file and its signature, before anything names them. (Under the pool guard:
        // a file already signed cannot be deleted, signature and all, before the commit below.)
        let pool_guard = self.pool_guard.read().unwrap_or_else(|p| p.into_inner());
        let existing = self.blobs.package_signature(sha).map_err(blob_err)?;
        let new_signature = match (&existing, &self.signer) {
            (Some(_), _) => None,
            (None, Some(signer)) => {
                upload.seek(SeekFrom::Start(0)).map_err(RepoError::Upload)?;
                Some(sign_reader(signer.as_ref(), &mut upload, SystemTime::from(now))?)
            }
            (None, None) => packager.map(|p| p.signature),
        };
        // The entry names the signature the file is served with.
        let served = existing.as_deref().or(new_signature.as_deref());
        let entry = DbEntry::new(&package, &filename, self.format, served)?
            .compress(now.timestamp().max(0) as u64)
            .map_err(RepoError::Upload)?;
        self.blobs.keep_package(upload, sha).map_err(blob_err)?;
        if let Some(signature) = new_signature {
            if let Err(e) = self.blobs.keep_package_signature(sha, &signature) {
                drop(pool_guard);
                self.delete_if_unreferenced(sha);
                return Err(blob_err(e));
            }
        }
        // 2. Record (under the locks of every arch-repo it goes to); 3. rewrite archives. Both shared
        // with the publishes into this repository that wait at the same time (group commit).
        let sha = sha.to_owned();
        let result = PublishResult {
            name: package.info.name.clone(),
            version: package.info.version.clone(),
            archs: Vec::new(),
        };
        let job = PendingPut { summary, package, entry, initial };
        let (outcome, led) = self.ingest.submit(
            repo,
            job,
            |batch| self.commit_batch(repo, batch),
            || Err(RepoError::Store("a concurrent publish failed unexpectedly".into())),
        );
        drop(pool_guard);
        // 4. What the batches this publisher committed replaced.
        for unreferenced in &led {
            self.delete_unreferenced(unreferenced);
        }
        match outcome {
            Ok(archs) => Ok(PublishResult { archs: archs.into_iter().collect(), ..result }),
            Err(e) => {
                self.delete_if_unreferenced(&sha);
                Err(e)
            }
        }
    }

    /// Commits a batch of publishes into `repo`: one transaction, then each changed archive once. When
    /// the transaction fails, each publish runs again alone (one bad record fails only itself); a
    /// failure after the commit is every publish's.
    fn commit_batch(
        &self,
        repo: &RepoName,
        batch: Vec<(u64, PendingPut)>,
    ) -> (Vec<(u64, PutOutcome)>, Unreferenced) {
        let initial: BTreeSet<Arch> = batch.iter().flat_map(|(_, job)| job.initial.iter().cloned()).collect();
        let mut committed = false;
        let put = self.with_locks(repo, initial, |locked| match self.put_all(repo, &batch, locked)? {
            Locked::Done(put) => {
                committed = true;
                // From here on a failure leaves the store ahead of the archives, which the next
                // change or recovery rewrites; no file they name is deleted.
                if self.deferred {
                    let mut stale = self.stale_arches();
                    stale.extend(put.changed.iter().map(|arch| (repo.clone(), arch.clone())));
                } else {
                    for arch in &put.changed {
                        self.write_archives(repo, arch)?;
                    }
                }
                Ok(Locked::Done(put))
            }
            Locked::NeedLocks(more) => Ok(Locked::NeedLocks(more)),
        });
        match put {
            Ok(put) => {
                let outcomes = batch.iter().map(|(id, _)| *id).zip(put.archs.into_iter().map(Ok)).collect();
                (outcomes, put.unreferenced)
            }
            Err(_) if !committed && batch.len() > 1 => {
                let mut outcomes = Vec::with_capacity(batch.len());
                let mut unreferenced = Unreferenced::default();
                for one in batch {
                    let (outcome, left) = self.commit_batch(repo, vec![one]);
                    outcomes.extend(outcome);
                    unreferenced.0.extend(left.0);
                }
                (outcomes, unreferenced)
            }
            Err(e) => {
                let outcomes = batch.iter().map(|(id, _)| (*id, Err(shared(&e)))).collect();
                (outcomes, Unreferenced::default())
            }
        }
    }

    /// The transaction of a batch of publishes, applied in order (as if one after the other). When a
    /// publish goes to more arch-repos than are locked, nothing is written: the caller locks them too.
    fn put_all(
        &self,
        repo: &RepoName,
        batch: &[(u64, PendingPut)],
        locked: &BTreeSet<Arch>,
    ) -> Result<Locked<BatchPut>, RepoError> {
        let mut txn = self.store.begin().map_err(store_err)?;
        let mut unreferenced = Unreferenced::default();
        let mut changed = BTreeSet::new();
        let mut archs_of = Vec::with_capacity(batch.len());
        // The entries put, by arch-repo, in order: what the kept members follow.
        let mut put: BTreeMap<Arch, Vec<super::members::Put<'_>>> = BTreeMap::new();
        for (_, job) in batch {
            let summary = &job.summary;
            let archs = if summary.arch.is_any() {
                let arches = txn.arches_of(repo).map_err(store_err)?;
                super::arches_for(&summary.arch, &arches, &self.default_arch)
            } else {
                BTreeSet::from([summary.arch.clone()])
            };
            if !archs.is_subset(locked) {
                return Ok(Locked::NeedLocks(locked.union(&archs).cloned().collect()));
            }
            let record = EntryRecord { summary, package: &job.package, entry: &job.entry };
            let (name, filename, sha) = (&summary.name, summary.filename.as_str(), summary.sha256.as_str());
            let arch_record = ArchRecord { last_change: summary.published_at };
            for arch in &archs {
                let old = txn.entry_filename(repo, arch, name).map_err(store_err)?;
                // The very same file again: nothing changes in this arch-repo.
                if old.as_deref() == Some(filename)
                    && txn.file_hash(repo, arch, filename).map_err(store_err)?.as_deref() == Some(sha)
                {
                    continue;
                }
                changed.insert(arch.clone());
                if let Some(old) = old {
                    unlink(&mut txn, repo, arch, &old, &mut unreferenced)?;
                }
                unlink(&mut txn, repo, arch, filename, &mut unreferenced)?;
                txn.put_file(repo, arch, filename, sha).map_err(store_err)?;
                let refs = txn.pool_refs(sha).map_err(store_err)?;
                txn.set_pool_refs(sha, refs + 1).map_err(store_err)?;
                unreferenced.0.remove(sha);
                txn.put_entry(repo, arch, &record).map_err(store_err)?;
                put.entry(arch.clone()).or_default().push((
                    summary.name.as_str(),
                    &job.entry.db_member,
                    &job.entry.files_member,
                ));
                txn.put_arch_repo(repo, arch, &arch_record).map_err(store_err)?;
                txn.push_history(
                    repo,
                    arch,
                    name,
                    &event(summary, PackageChange::Published, summary.published_at),
                    HISTORY_KEPT,
                )
                .map_err(store_err)?;
            }
            archs_of.push(archs);
        }
        if !changed.is_empty() {
            if let Err(e) = txn.commit() {
                // Whether it committed is not known: what is kept is read again.
                changed.iter().for_each(|arch| self.members.forget(repo, arch));
                return Err(store_err(e));
            }
            for (arch, put) in &put {
                self.members.apply(repo, arch, put);
            }
            self.listings_changed(repo, &changed);
            let first = batch.iter().map(|(_, job)| job.summary.name.as_str()).min();
            for arch in &changed {
                self.hashes.changed(repo, arch, first);
            }
        }
        Ok(Locked::Done(BatchPut { archs: archs_of, changed, unreferenced }))
    }

    /// Creates the empty arch-repo `repo/arch` (its empty db and files archives are served, and later
    /// `any` packages of the repository go to it). Returns whether it was created: one that exists is
    /// left alone (nothing is written). `any` is refused ([`RepoError::AnyArchRepo`]).
    pub fn create_arch_repo(&self, repo: &RepoName, arch: &Arch) -> Result<bool, RepoError> {
        if arch.is_any() {
            return Err(RepoError::AnyArchRepo);
        }
        self.with_locks(repo, BTreeSet::from([arch.clone()]), |_| {
            let mut txn = self.store.begin().map_err(store_err)?;
            if txn.has_arch_repo(repo, arch).map_err(store_err)? {
                return Ok(Locked::Done(false));
            }
            txn.put_arch_repo(repo, arch, &ArchRecord { last_change: self.clock.now() })
                .map_err(store_err)?;
            let committed = txn.commit();
            self.members.forget(repo, arch);
            committed.map_err(store_err)?;
            self.listings_changed(repo, [arch]);
            self.hashes.changed(repo, arch, None);
            self.write_archives(repo, arch)?;
            Ok(Locked::Done(true))
        })
    }

    /// Removes a package, an arch-repo or a repository. Returns whether it existed.
    pub fn remove(&self, repo: &RepoName, what: Removal<'_>) -> Result<bool, RepoError> {
        let initial = match what {
            Removal::Package(arch, _) | Removal::ArchRepo(arch) => BTreeSet::from([arch.clone()]),
            Removal::Repo => self.store.arches_of(repo).map_err(store_err)?,
        };
        let removed = self.with_locks(repo, initial, |locked| {
            let removed = match self.remove_txn(repo, what, locked)? {
                Locked::Done(removed) => removed,
                Locked::NeedLocks(more) => return Ok(Locked::NeedLocks(more)),
            };
            for arch in &removed.archs {
                if self.store.has_arch_repo(repo, arch).map_err(store_err)? {
                    self.write_archives(repo, arch)?;
                } else {
                    self.stale_arches().remove(&(repo.clone(), arch.clone()));
                    self.blobs.remove_archives(repo, arch).map_err(blob_err)?;
                }
            }
            Ok(Locked::Done(removed))
        })?;
        self.delete_unreferenced(&removed.unreferenced);
        Ok(!removed.archs.is_empty())
    }

    fn remove_txn(
        &self,
        repo: &RepoName,
        what: Removal<'_>,
        locked: &BTreeSet<Arch>,
    ) -> Result<Locked<Removed>, RepoError> {
        let mut txn = self.store.begin().map_err(store_err)?;
        let arches = match what {
            Removal::Package(arch, _) | Removal::ArchRepo(arch) => BTreeSet::from([arch.clone()]),
            Removal::Repo => txn.arches_of(repo).map_err(store_err)?,
        };
        if !arches.is_subset(locked) {
            return Ok(Locked::NeedLocks(arches));
        }
        let mut unreferenced = Unreferenced::default();
        let mut changed = Vec::new();
        for arch in &arches {
            if !txn.has_arch_repo(repo, arch).map_err(store_err)? {
                continue;
            }
            let names = match what {
                Removal::Package(_, name) => vec![name.clone()],
                _ => txn.names(repo, arch).map_err(store_err)?,
            };
            let mut removed_here = false;
            let now = self.clock.now();
            for name in &names {
                let Some(gone) = txn.remove_entry(repo, arch, name).map_err(store_err)? else { continue };
                removed_here = true;
                unlink(&mut txn, repo, arch, &gone.filename, &mut unreferenced)?;
                if matches!(what, Removal::Package(..)) {
                    let removal = event(&gone, PackageChange::Removed, now);
                    txn.push_history(repo, arch, name, &removal, HISTORY_KEPT).map_err(store_err)?;
                }
            }
            if matches!(what, Removal::Package(..)) {
                if removed_here {
                    txn.put_arch_repo(repo, arch, &ArchRecord { last_change: now }).map_err(store_err)?;
                }
            } else {
                txn.remove_arch_repo(repo, arch).map_err(store_err)?;
                removed_here = true;
            }
            if removed_here {
                changed.push(arch.clone());
            }
        }
        // Removing what is not there writes nothing.
        if !changed.is_empty() {
            let committed = txn.commit();
            changed.iter().for_each(|arch| self.members.forget(repo, arch));
            committed.map_err(store_err)?;
            self.listings_changed(repo, &changed);
            let from = match what {
                Removal::Package(_, name) => Some(name.as_str()),
                Removal::ArchRepo(_) | Removal::Repo => None,
            };
            for arch in &changed {
                self.hashes.changed(repo, arch, from);
            }
        }
        Ok(Locked::Done(Removed { archs: changed, unreferenced }))
    }

    /// Runs `change` holding the locks of the arch-repos `archs` of `repo` (taken in order, so two
    /// changes never deadlock); again, holding more, while it asks for more.
    fn with_locks<T>(
        &self,
        repo: &RepoName,
        mut archs: BTreeSet<Arch>,
        mut change: impl FnMut(&BTreeSet<Arch>) -> Result<Locked<T>, RepoError>,
    ) -> Result<T, RepoError> {
        loop {
            let locks: Vec<Arc<Mutex<()>>> = archs.iter().map(|a| self.lock(repo, a)).collect();
            let _guards: Vec<_> = locks.iter().map(|l| l.lock().unwrap_or_else(|p| p.into_inner())).collect();
            match change(&archs)? {
                Locked::Done(done) => return Ok(done),
                Locked::NeedLocks(more) => archs = more,
            }
        }
    }

    /// Writes the `kind` archive of an arch-repo, as the store says it is now, to `out`.
    fn archive_to(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        self.each_member(repo, arch, kind, &mut |_, member| out.write_all(member))?;
        crate::db::write_archive(&mut { out }, kind, std::iter::empty())
    }

    /// [`RepoStore::each_member`], from the members kept in memory when they are (see
    /// [`super::members`]); else read from the store, and kept.
    fn each_member(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
        each: &mut dyn FnMut(&str, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        if let Some(kept) = self.members.get(repo, arch, kind) {
            return kept.iter().try_for_each(|(name, member)| each(name, member));
        }
        let generation = self.members.generation(repo, arch);
        let mut read = BTreeMap::new();
        self.store
            .each_member(repo, arch, kind, &mut |name, member| {
                read.insert(name.to_owned(), Arc::<[u8]>::from(member));
                each(name, member)
            })
            .map_err(io::Error::other)?;
        self.members.keep(repo, arch, kind, generation, read);
        Ok(())
    }

    /// Rewrites both archives of an arch-repo from the store, each atomically, with the time of now;
    /// signed while written, the signature replaced in the same step. The two are independent files:
    /// the files archive is written on another thread while this one writes the db (each reads the
    /// store, goes through the signer and is written on its own core).
    fn write_archives(&self, repo: &RepoName, arch: &Arch) -> Result<(), RepoError> {
        // Current from here on (a failure marks them stale again).
        let was_stale = self.stale_arches().remove(&(repo.clone(), arch.clone()));
        let written = self.write_both_archives(repo, arch);
        if written.is_err() && was_stale {
            self.stale_arches().insert((repo.clone(), arch.clone()));
        }
        written
    }

    fn stale_arches(&self) -> std::sync::MutexGuard<'_, BTreeSet<(RepoName, Arch)>> {
        self.stale.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the archives of an arch-repo are behind its store (publishes deferred their writing:
    /// see [`Repository::with_deferred_archives`]).
    pub fn archives_stale(&self, repo: &RepoName, arch: &Arch) -> bool {
        self.stale_arches().contains(&(repo.clone(), arch.clone()))
    }

    /// Writes the archives of an arch-repo now if publishes deferred them: afterwards the blob store
    /// holds archives listing every package published before the call.
    pub fn current_archives(&self, repo: &RepoName, arch: &Arch) -> Result<(), RepoError> {
        if !self.archives_stale(repo, arch) {
            return Ok(());
        }
        self.with_locks(repo, BTreeSet::from([arch.clone()]), |_| {
            if !self.archives_stale(repo, arch) {
                return Ok(Locked::Done(()));
            }
            if self.store.has_arch_repo(repo, arch).map_err(store_err)? {
                self.write_archives(repo, arch)?;
            } else {
                // Removed since: its archives went with it.
                self.stale_arches().remove(&(repo.clone(), arch.clone()));
            }
            Ok(Locked::Done(()))
        })
    }

    fn write_both_archives(&self, repo: &RepoName, arch: &Arch) -> Result<(), RepoError> {
        let mtime = SystemTime::from(self.clock.now());
        std::thread::scope(|scope| {
            let files = scope.spawn(|| self.write_archive(repo, arch, ArchiveKind::Files, mtime));
            let db = self.write_archive(repo, arch, ArchiveKind::Db, mtime);
            let files = files
                .join()
                .unwrap_or_else(|_| Err(RepoError::Blob("writing the files archive panicked".into())));
            db.and(files)
        })
    }

    /// Rewrites one archive of an arch-repo from the store (see [`Repository::write_archives`]). A
    /// signer that can copy its hash hashes only what follows the archive's last checkpoint left
    /// ([`super::checkpoints`]); should a checkpoint not match, the archive is written once more,
    /// hashed whole.
    fn write_archive(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
        mtime: SystemTime,
    ) -> Result<(), RepoError> {
        let mut resume = true;
        loop {
            let mut sign_failure = None;
            let mut mismatched = false;
            let mut checkpoints = None;
            let written = self.blobs.write_archive(repo, arch, kind, mtime, &mut |out| {
                let Some(signer) = &self.signer else {
                    self.archive_to(repo, arch, kind, out)?;
                    return Ok(None);
                };
                let signed = match signer.data_hash() {
                    Some(fresh) => {
                        let kept = if resume { self.hashes.take(repo, arch, kind) } else { Vec::new() };
                        let mut hashing = Resuming::new(fresh, kept, self.hashes.every);
                        let streamed = self.archive_hashed(repo, arch, kind, out, &mut hashing);
                        if let Err(e) = streamed {
                            mismatched = hashing.mismatched();
                            return Err(e);
                        }
                        let (hash, points) = hashing.finish();
                        checkpoints = Some(points);
                        signer.sign_hash(hash, mtime)
                    }
                    None => signer.start(mtime).and_then(|mut signing| {
                        let mut tee = SigningWriter { inner: &mut *out, signing: &mut *signing };
                        self.archive_to(repo, arch, kind, &mut tee).map_err(SignError::new)?;
                        signing.finish()
                    }),
                };
                match signed {
                    Ok(signature) => Ok(Some(signature)),
                    Err(e) => {
                        let message = e.to_string();
                        sign_failure = Some(e);
                        Err(io::Error::other(message))
                    }
                }
            });
            if mismatched && resume {
                tracing::warn!(%repo, %arch, ?kind, "a kept archive hash did not match: hashing it whole");
                resume = false;
                continue;
            }
            if let Some(e) = sign_failure {
                return Err(RepoError::Sign(e));
            }
            written.map_err(blob_err)?;
            if let Some(points) = checkpoints {
                self.hashes.put(repo, arch, kind, points);
            }
            return Ok(());
        }
    }

    /// [`Repository::archive_to`], every member also given to `hashing`.
    fn archive_hashed(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
        out: &mut dyn Write,
        hashing: &mut Resuming,
    ) -> io::Result<()> {
        let mut failed = None;
        let streamed = self.each_member(repo, arch, kind, &mut |name, member| {
            out.write_all(member)?;
            hashing
                .member(name, member)
                .inspect_err(|e| failed = Some(io::Error::new(e.kind(), e.to_string())))
        });
        if let Some(e) = failed {
            return Err(e);
        }
        streamed?;
        let mut end = Vec::new();
        crate::db::write_archive(&mut end, kind, std::iter::empty())?;
        out.write_all(&end)?;
        hashing.end(&end)
    }

    /// Makes the signatures of an arch-repo's current archives the signer's (or, unsigned, removes
    /// them): after a crash between an archive and its signature, or when signing was turned on or
    /// off. Returns how many it wrote.
    fn resign_archives(&self, repo: &RepoName, arch: &Arch) -> Result<usize, RepoError> {
        self.current_archives(repo, arch)?;
        let mut written = 0;
        for kind in [ArchiveKind::Db, ArchiveKind::Files] {
            let signature = match &self.signer {
                Some(signer) => {
                    let Some(mut archive) = self.blobs.open_archive(repo, arch, kind).map_err(blob_err)?
                    else {
                        continue;
                    };
                    let created = SystemTime::from(self.clock.now());
                    Some(sign_reader(signer.as_ref(), &mut archive, created)?)
                }
                None if self.blobs.archive_signature(repo, arch, kind).map_err(blob_err)?.is_some() => None,
                None => continue,
            };
            self.blobs.write_archive_signature(repo, arch, kind, signature.as_deref()).map_err(blob_err)?;
            written += 1;
        }
        Ok(written)
    }

    /// Whether both archives of an arch-repo are byte for byte what the store would write now.
    fn archives_current(&self, repo: &RepoName, arch: &Arch) -> Result<bool, RepoError> {
        for kind in [ArchiveKind::Db, ArchiveKind::Files] {
            let Some(existing) = self.blobs.open_archive(repo, arch, kind).map_err(blob_err)? else {
                return Ok(false);
            };
            let mut compare = SameAs { existing: BufReader::new(existing), same: true, buf: Vec::new() };
            self.archive_to(repo, arch, kind, &mut compare).map_err(store_err)?;
            let mut rest = [0u8; 1];
            let at_end = matches!(compare.existing.read(&mut rest), Ok(0));
            if !(compare.same && at_end) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Deletes the package files of `unreferenced` that nothing references. Archives the blob store
    /// holds in memory only go to their files first: a file is never deleted while an archive file
    /// may still name it (should that fail, the files stay, for recovery to delete).
    fn delete_unreferenced(&self, unreferenced: &Unreferenced) {
        if unreferenced.0.is_empty() {
            return;
        }
        if let Err(e) = self.settle() {
            tracing::warn!("package files left for recovery to delete: {e}");
            return;
        }
        for sha in &unreferenced.0 {
            self.delete_if_unreferenced(sha);
        }
    }

    /// Tells the repository that its store was changed by something else than itself (a restore, a
    /// repair through [`RepoStore::begin`]): what it keeps in memory of the store (archive members,
    /// see `members.rs`) is dropped, and the next archive of each arch-repo is read from the store.
    /// Changes made through this repository need no such call.
    pub fn store_changed(&self) {
        self.members.forget_all();
    }

    /// Writes the archives publishes deferred ([`Repository::with_deferred_archives`]), then those the
    /// blob store holds in memory only to where other processes read them ([`BlobStore::settle`]). A store that writes archives behind needs it called shortly after
    /// changes (a server: on a timer, and before it stops).
    pub fn settle(&self) -> Result<(), RepoError> {
        let stale: Vec<(RepoName, Arch)> = self.stale_arches().iter().cloned().collect();
        for (repo, arch) in &stale {
            self.current_archives(repo, arch)?;
        }
        self.blobs.settle().map_err(blob_err)
    }

    /// Whether [`Repository::settle`] has anything to write.
    pub fn unsettled(&self) -> bool {
        !self.stale_arches().is_empty() || self.blobs.unsettled()
    }

    /// Deletes a package file nothing references. A failure only leaves a file behind, which recovery
    /// deletes: it is not the caller's error, it is logged (`tracing`).
    fn delete_if_unreferenced(&self, sha: &str) {
        let _exclusive = self.pool_guard.write().unwrap_or_else(|p| p.into_inner());
        match self.store.is_referenced(sha) {
            Ok(false) => {
                if let Err(e) = self.blobs.remove_package(sha) {
                    tracing::warn!("cannot delete package file {sha}: {e}");
                }
            }
            Ok(true) => {}
            Err(e) => tracing::warn!("cannot check the references of {sha}: {e}"),
        }
    }

    /// Recovery after a crash (or at every start): deletes temporary files, rewrites every archive that
    /// differs from the store (one that already says what the store says keeps its time, so pacman
    /// need not download it again), removes the archives of arch-repos the store does not have and the
    /// package files nothing references. Run it before serving.
    pub fn recover(&self) -> Result<RecoveryReport, RepoError> {
        let mut report = RecoveryReport {
            temp_files_removed: self.blobs.clear_temporary().map_err(blob_err)?,
            ..Default::default()
        };
        let live: BTreeSet<(RepoName, Arch)> =
            self.store.arch_repos().map_err(store_err)?.into_iter().map(|(r, a, _)| (r, a)).collect();
        for (repo, arch) in &live {
            if self.archives_current(repo, arch)? {
                report.archives_unchanged += 1;
                report.signatures_written += self.resign_archives(repo, arch)?;
            } else {
                self.write_archives(repo, arch)?;
                report.archives_rewritten += 1;
            }
        }
        // What was rewritten reaches its files before any package file is deleted.
        self.settle()?;
        for dir in self.blobs.archive_dirs().map_err(blob_err)? {
            let known = match (RepoName::new(dir.repo.as_str()), Arch::new(dir.arch.as_str())) {
                (Ok(r), Ok(a)) => live.contains(&(r, a)),
                _ => false,
            };
            if !known {
                self.blobs.remove_archive_dir(&dir).map_err(blob_err)?;
                report.stale_archives_removed += 1;
            }
        }
        let referenced = self.store.pool_hashes().map_err(store_err)?;
        let held: BTreeSet<String> = self.blobs.package_hashes().map_err(blob_err)?.into_iter().collect();
        // A signature whose package file was never kept (a publish interrupted between the two).
        for sha in self.blobs.signature_hashes().map_err(blob_err)? {
            if !held.contains(&sha) && !referenced.contains(&sha) && self.blobs.remove_package(&sha).is_ok() {
                report.orphans_removed += 1;
            }
        }
        for sha in held {
            if !referenced.contains(&sha) {
                if self.blobs.remove_package(&sha).is_ok() {
                    report.orphans_removed += 1;
                }
                continue;
            }
            // A package file kept while signing was off.
            let Some(signer) = &self.signer else { continue };
            if self.blobs.package_signature(&sha).map_err(blob_err)?.is_some() {
                continue;
            }
            let Some(mut file) = self.blobs.open_package(&sha).map_err(blob_err)? else { continue };
            let signature = sign_reader(signer.as_ref(), &mut file, SystemTime::from(self.clock.now()))?;
            self.blobs.keep_package_signature(&sha, &signature).map_err(blob_err)?;
            report.signatures_written += 1;
        }
        Ok(report)
    }
}

/// Removes a file row and drops its reference to the package file.
/// The history event of `summary`'s package.
fn event(summary: &PackageSummary, change: PackageChange, at: chrono::DateTime<chrono::Utc>) -> PackageEvent {
    PackageEvent { at, change, version: summary.version.clone(), filename: summary.filename.clone() }
}

fn unlink<T: RepoTxn>(
    txn: &mut T,
    repo: &RepoName,
    arch: &Arch,
    filename: &str,
    unreferenced: &mut Unreferenced,
) -> Result<(), RepoError> {
    let Some(sha) = txn.remove_file(repo, arch, filename).map_err(store_err)? else { return Ok(()) };
    let refs = txn.pool_refs(&sha).map_err(store_err)?;
    txn.set_pool_refs(&sha, refs.saturating_sub(1)).map_err(store_err)?;
    if refs <= 1 {
        unreferenced.0.insert(sha);
    }
    Ok(())
}

/// A writer that only checks that what is written equals the rest of `existing`.
struct SameAs<R> {
    existing: R,
    same: bool,
    buf: Vec<u8>,
}

impl<R: Read> Write for SameAs<R> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.same {
            self.buf.resize(data.len(), 0);
            self.same = self.existing.read_exact(&mut self.buf).is_ok() && self.buf == data;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
