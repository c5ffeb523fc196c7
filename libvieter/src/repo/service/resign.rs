//! [`Repository::resign`]: after a key rotation, every package file signed by a key the signer
//! replaces (or not signed at all) is signed again by the current key.
//!
//! Order, per chunk of package files (under the pool guard, so no file of the chunk is deleted
//! meanwhile): the new signatures are made in memory; when the format embeds signatures
//! (`%PGPSIG%`), the entries naming those files are re-rendered with them in one transaction per
//! repository and the archives rewritten (under the arch-repos' locks); only then are the `FILE.sig`
//! files replaced. A crash anywhere leaves each file served with a signature by the old or the new key
//! (both listed until an admin removes the old one), and the next run finds every `FILE.sig` still by
//! the old key and does it again: the run converges, whatever it was interrupted by.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use crate::api::{ResignProgress, ResignState, ResignStatus};
use crate::db::DbEntry;
use crate::name::{Arch, PkgName, RepoName};

use super::super::blob::BlobStore;
use super::super::sign::sign_reader;
use super::super::store::{EntryRecord, RepoStore, RepoTxn};
use super::{blob_err, store_err, Locked, RepoError, Repository};

/// How many package files one step signs (and, embedding, re-renders in one transaction).
const CHUNK: usize = 64;

/// Where a pool file is served: its entries, by repository.
type Users = BTreeMap<RepoName, Vec<(Arch, PkgName)>>;

/// Entries to re-render: arch, name, the pool file they must name and its new signature.
type Rerender<'a> = [(&'a Arch, &'a PkgName, &'a str, &'a [u8])];

impl<S: RepoStore, B: BlobStore> Repository<S, B> {
    /// Signs again, with the current signer, every package file an arch-repo serves whose signature
    /// the signer [supersedes](super::super::sign::Signer::supersedes) or that has none; `progress` is
    /// told after each step. Without a signer it does nothing. Safe to run beside publishes and
    /// removals, and again after an interruption.
    /// Its state is kept for [`Repository::resign_status`] as it runs.
    pub fn resign(&self, progress: &mut dyn FnMut(&ResignProgress)) -> Result<ResignProgress, RepoError> {
        self.update_resign(|s| {
            s.state = ResignState::Running;
            s.progress = ResignProgress::default();
            s.started_at = Some(self.clock.now());
            s.finished_at = None;
            s.error = None;
        });
        let result = self.resign_all(&mut |p| {
            self.update_resign(|s| s.progress = p.clone());
            progress(p);
        });
        self.update_resign(|s| {
            s.finished_at = Some(self.clock.now());
            match &result {
                Ok(_) => s.state = ResignState::Done,
                Err(e) => {
                    s.state = ResignState::Failed;
                    s.error = Some(e.to_string());
                }
            }
        });
        result
    }

    /// How far the last (or the running) [`Repository::resign`] is: `idle` before any.
    pub fn resign_status(&self) -> ResignStatus {
        self.resign_status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update_resign(&self, change: impl FnOnce(&mut ResignStatus)) {
        change(&mut self.resign_status.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn resign_all(&self, progress: &mut dyn FnMut(&ResignProgress)) -> Result<ResignProgress, RepoError> {
        let mut done = ResignProgress::default();
        let Some(signer) = &self.signer else { return Ok(done) };
        let mut served: BTreeMap<String, Users> = BTreeMap::new();
        for (repo, arch, _) in self.store.arch_repos().map_err(store_err)? {
            for summary in self.store.summaries(&repo, &arch).map_err(store_err)? {
                served
                    .entry(summary.sha256)
                    .or_default()
                    .entry(repo.clone())
                    .or_default()
                    .push((arch.clone(), summary.name));
            }
        }
        done.packages = served.len() as u64;
        progress(&done);
        let served: Vec<(String, Users)> = served.into_iter().collect();
        for chunk in served.chunks(CHUNK) {
            let _kept = self.pool_guard.write().unwrap_or_else(|p| p.into_inner());
            let mut fresh: Vec<(&str, &Users, Vec<u8>)> = Vec::new();
            for (sha, users) in chunk {
                let stale = match self.blobs.package_signature(sha).map_err(blob_err)? {
                    None => true,
                    Some(signature) => signer.supersedes(&signature),
                };
                if !stale {
                    continue;
                }
                // Removed since the listing (nothing serves it any more).
                let Some(mut file) = self.blobs.open_package(sha).map_err(blob_err)? else { continue };
                let signature = sign_reader(signer.as_ref(), &mut file, SystemTime::from(self.clock.now()))?;
                fresh.push((sha, users, signature));
            }
            if self.format.embeds_signature() {
                let mut by_repo: BTreeMap<&RepoName, Vec<_>> = BTreeMap::new();
                for (sha, users, signature) in &fresh {
                    for (repo, entries) in *users {
                        for (arch, name) in entries {
                            by_repo.entry(repo).or_default().push((arch, name, *sha, signature.as_slice()));
                        }
                    }
                }
                for (repo, entries) in by_repo {
                    self.rerender(repo, &entries)?;
                }
            }
            for (sha, _, signature) in &fresh {
                self.blobs.keep_package_signature(sha, signature).map_err(blob_err)?;
            }
            done.checked += chunk.len() as u64;
            done.resigned += fresh.len() as u64;
            progress(&done);
        }
        Ok(done)
    }

    /// Re-renders the entries of `repo` that name these files with their new signatures (one
    /// transaction) and rewrites the archives that changed. An entry that names another file by now
    /// (replaced meanwhile) is left alone.
    fn rerender(&self, repo: &RepoName, entries: &Rerender<'_>) -> Result<(), RepoError> {
        let archs: BTreeSet<Arch> = entries.iter().map(|(arch, ..)| (*arch).clone()).collect();
        let now = self.clock.now();
        self.with_locks(repo, archs, |_| {
            // Read before the transaction begins (a store may serialize its reads with it).
            let mut records = Vec::new();
            for &(arch, name, sha, signature) in entries {
                let Some((summary, mut package)) = self.store.package(repo, arch, name).map_err(store_err)?
                else {
                    continue;
                };
                if summary.sha256 != sha {
                    continue;
                }
                if package.files.is_empty() {
                    let all = self.store.file_page(repo, arch, name, 0, usize::MAX, usize::MAX);
                    package.files = all.map_err(store_err)?.map(|(files, _)| files).unwrap_or_default();
                }
                let entry = DbEntry::new(&package, &summary.filename, self.format, Some(signature))?
                    .compress(now.timestamp().max(0) as u64)
                    .map_err(RepoError::Upload)?;
                records.push((arch, summary, package, entry));
            }
            if records.is_empty() {
                return Ok(Locked::Done(()));
            }
            let mut txn = self.store.begin().map_err(store_err)?;
            let mut changed = BTreeSet::new();
            for (arch, summary, package, entry) in &records {
                let record = EntryRecord { summary, package, entry };
                txn.put_entry(repo, arch, &record).map_err(store_err)?;
                changed.insert((*arch).clone());
            }
            let committed = txn.commit();
            changed.iter().for_each(|arch| self.members.forget(repo, arch));
            committed.map_err(store_err)?;
            self.listings_changed(repo, &changed);
            for arch in &changed {
                self.hashes.changed(repo, arch, None);
            }
            for arch in &changed {
                self.write_archives(repo, arch)?;
            }
            Ok(Locked::Done(()))
        })
    }
}
