//! Signing an archive without hashing its unchanged start again.
//!
//! An archive is its entries' members in name order, then an end marker. When a publish changes the
//! entry `foo`, every member before `foo` is the same as in the archive written before, so the hash of
//! that start is the same too. With a signer whose hash can be copied ([`Signer::data_hash`]), the
//! repository keeps copies of the hash of each archive every [`EVERY`] bytes, at member boundaries
//! ([`Checkpoints`]); a commit that changes the entries of an arch-repo from a name on drops the
//! checkpoints at or after that name; the next write of the archive takes the last one left and
//! hashes only the members after it ([`Resuming`]).
//!
//! What makes it safe: the checkpoints are dropped by the same code that commits a change (under the
//! arch-repo's lock, before the archive is written again); and each checkpoint says how many members
//! and bytes came before it, which the next write checks as it goes through the members: a difference
//! (an entry before it that changed without the checkpoints being told) is a mismatch, and the archive
//! is written again, hashed whole.
//!
//! [`Signer::data_hash`]: super::Signer::data_hash

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::Mutex;

use crate::db::ArchiveKind;
use crate::name::{Arch, RepoName};

use super::sign::DataHash;

/// Bytes of members between two checkpoints of an archive, by default.
pub(super) const EVERY: u64 = 512 * 1024;

/// The hash of an archive's members up to and including the member of `last`.
pub(super) struct Checkpoint {
    last: String,
    /// Members and bytes before the checkpoint, the member of `last` included.
    members: u64,
    bytes: u64,
    state: Box<dyn DataHash>,
}

type Key = (RepoName, Arch, ArchiveKind);

/// The checkpoints of every archive a repository signed, one every `every` bytes.
pub(super) struct Checkpoints {
    all: Mutex<HashMap<Key, Vec<Checkpoint>>>,
    pub(super) every: u64,
}

impl Default for Checkpoints {
    fn default() -> Self {
        Checkpoints { all: Mutex::default(), every: EVERY }
    }
}

impl Checkpoints {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Vec<Checkpoint>>> {
        self.all.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The checkpoints of an archive, taken out (a write that fails leaves none: the next one hashes
    /// the whole archive).
    pub(super) fn take(&self, repo: &RepoName, arch: &Arch, kind: ArchiveKind) -> Vec<Checkpoint> {
        self.lock().remove(&(repo.clone(), arch.clone(), kind)).unwrap_or_default()
    }

    /// The checkpoints of the archive just written.
    pub(super) fn put(&self, repo: &RepoName, arch: &Arch, kind: ArchiveKind, points: Vec<Checkpoint>) {
        self.lock().insert((repo.clone(), arch.clone(), kind), points);
    }

    /// A commit changed the entries of `repo/arch` from the name `from` on (`None`: any entry): the
    /// checkpoints that include such an entry go.
    pub(super) fn changed(&self, repo: &RepoName, arch: &Arch, from: Option<&str>) {
        let mut all = self.lock();
        for kind in [ArchiveKind::Db, ArchiveKind::Files] {
            let key = (repo.clone(), arch.clone(), kind);
            match from {
                None => {
                    all.remove(&key);
                }
                Some(from) => {
                    if let Some(points) = all.get_mut(&key) {
                        points.retain(|p| p.last.as_str() < from);
                    }
                }
            }
        }
    }
}

/// Hashes an archive's members as they are written, from the last checkpoint kept on, and makes the
/// new archive's checkpoints.
pub(super) struct Resuming {
    every: u64,
    hash: Box<dyn DataHash>,
    /// While set: the members up to and including this checkpoint's are in `hash` already.
    resume: Option<(String, u64, u64)>,
    points: Vec<Checkpoint>,
    members: u64,
    bytes: u64,
    /// Bytes hashed since the last checkpoint.
    since: u64,
    mismatched: bool,
}

impl Resuming {
    /// From the last of `kept` (the archive's checkpoints left), else from `fresh`; a new checkpoint
    /// after each `every` bytes hashed.
    pub(super) fn new(fresh: Box<dyn DataHash>, kept: Vec<Checkpoint>, every: u64) -> Self {
        let (hash, resume) = match kept.last() {
            Some(p) => (p.state.fork(), Some((p.last.clone(), p.members, p.bytes))),
            None => (fresh, None),
        };
        Resuming { every, hash, resume, points: kept, members: 0, bytes: 0, since: 0, mismatched: false }
    }

    fn mismatch(&mut self, what: &str) -> io::Error {
        self.mismatched = true;
        io::Error::other(format!("a kept archive hash does not match the entries: {what}"))
    }

    /// The next member of the archive (in name order).
    pub(super) fn member(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.members += 1;
        self.bytes += bytes.len() as u64;
        if let Some((last, members, total)) = &self.resume {
            if name == last.as_str() {
                if (self.members, self.bytes) != (*members, *total) {
                    return Err(self.mismatch("its entries before it changed"));
                }
                self.resume = None;
                return Ok(());
            }
            if name > last.as_str() {
                return Err(self.mismatch("its last entry is gone"));
            }
            return Ok(());
        }
        self.hash.write_all(bytes)?;
        self.since += bytes.len() as u64;
        if self.since >= self.every {
            let state = self.hash.fork();
            let point = Checkpoint { last: name.to_owned(), members: self.members, bytes: self.bytes, state };
            self.points.push(point);
            self.since = 0;
        }
        Ok(())
    }

    /// The bytes after the last member (the archive's end).
    pub(super) fn end(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.resume.is_some() {
            return Err(self.mismatch("its last entry never came"));
        }
        self.hash.write_all(bytes)
    }

    /// Whether the kept checkpoint did not match what was written (then the archive must be hashed
    /// whole).
    pub(super) fn mismatched(&self) -> bool {
        self.mismatched
    }

    /// The hash of the whole archive, and its checkpoints.
    pub(super) fn finish(self) -> (Box<dyn DataHash>, Vec<Checkpoint>) {
        (self.hash, self.points)
    }
}
