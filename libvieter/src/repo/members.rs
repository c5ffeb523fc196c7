//! The archive members of arch-repos, kept in memory once read from the store: an archive is then
//! rewritten from memory, and a publish reads nothing from the store to rewrite it (reading every
//! member of a 10,000-package arch-repo from redb was most of a bulk publish's CPU).
//!
//! What is kept is exactly what [`super::RepoStore::each_member`] passes, in the same (byte) order of
//! names. Every committed change updates it ([`Members::apply`]) or drops it ([`Members::forget`]),
//! right after its commit, under the arch-repo's lock. A read from the store is kept only when no
//! change came in between (a generation per arch-repo): a change and a read that race leave either
//! the updated members or none. The members kept take at most a budget of bytes; past it, the arch-repos
//! used least recently are dropped (they are read from the store again when next written).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::db::ArchiveKind;
use crate::name::{Arch, RepoName};

/// The members of one archive kind of an arch-repo, by package name.
pub(super) type Kept = Arc<BTreeMap<String, Arc<[u8]>>>;

type Key = (RepoName, Arch, ArchiveKind);

/// An entry a commit put: its name, its db member and its files member.
pub(super) type Put<'a> = (&'a str, &'a [u8], &'a [u8]);

/// The members kept, with what they cost and when each was used last.
pub(super) struct Members {
    state: Mutex<State>,
    budget: usize,
}

#[derive(Default)]
struct State {
    kept: HashMap<Key, Entry>,
    /// Bumped by every change of an arch-repo, kept or not.
    generations: HashMap<(RepoName, Arch), u64>,
    bytes: usize,
    clock: u64,
}

struct Entry {
    members: Kept,
    bytes: usize,
    used: u64,
}

/// What one member costs kept (its bytes, its name, and the map's overhead).
fn cost(name: &str, member: &[u8]) -> usize {
    name.len() + member.len() + 64
}

impl Members {
    pub(super) fn new(budget: usize) -> Members {
        Members { state: Mutex::default(), budget }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The members kept for an archive, if they are.
    pub(super) fn get(&self, repo: &RepoName, arch: &Arch, kind: ArchiveKind) -> Option<Kept> {
        let mut state = self.lock();
        state.clock += 1;
        let now = state.clock;
        let entry = state.kept.get_mut(&(repo.clone(), arch.clone(), kind))?;
        entry.used = now;
        Some(entry.members.clone())
    }

    /// The generation of an arch-repo: read it before reading its members from the store, and pass
    /// it to [`Members::keep`].
    pub(super) fn generation(&self, repo: &RepoName, arch: &Arch) -> u64 {
        self.lock().generations.get(&(repo.clone(), arch.clone())).copied().unwrap_or(0)
    }

    /// Keeps the members read from the store for an archive, unless the arch-repo changed since
    /// `generation` or they alone exceed the budget; drops the least recently used others while over it.
    pub(super) fn keep(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
        generation: u64,
        members: BTreeMap<String, Arc<[u8]>>,
    ) {
        let bytes: usize = members.iter().map(|(n, m)| cost(n, m)).sum();
        if bytes > self.budget {
            return;
        }
        let mut state = self.lock();
        if state.generations.get(&(repo.clone(), arch.clone())).copied().unwrap_or(0) != generation {
            return;
        }
        state.clock += 1;
        let used = state.clock;
        let entry = Entry { members: Arc::new(members), bytes, used };
        if let Some(old) = state.kept.insert((repo.clone(), arch.clone(), kind), entry) {
            state.bytes -= old.bytes;
        }
        state.bytes += bytes;
        while state.bytes > self.budget {
            let Some(oldest) = state.kept.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone()) else {
                break;
            };
            if let Some(gone) = state.kept.remove(&oldest) {
                state.bytes -= gone.bytes;
            }
        }
    }

    /// A committed change of an arch-repo: `put` (name, db member, files member) replaced or added
    /// those entries, in order. Applied to what is kept.
    pub(super) fn apply(&self, repo: &RepoName, arch: &Arch, put: &[Put<'_>]) {
        let mut state = self.lock();
        *state.generations.entry((repo.clone(), arch.clone())).or_default() += 1;
        for kind in [ArchiveKind::Db, ArchiveKind::Files] {
            let key = (repo.clone(), arch.clone(), kind);
            let Some(entry) = state.kept.get_mut(&key) else { continue };
            let before = entry.bytes;
            // In place when no archive is being written from it (the arch-repo's lock is held).
            let members = Arc::make_mut(&mut entry.members);
            for (name, db, files) in put {
                let member = match kind {
                    ArchiveKind::Db => *db,
                    ArchiveKind::Files => *files,
                };
                if let Some(old) = members.insert((*name).to_owned(), Arc::from(member)) {
                    entry.bytes -= cost(name, &old);
                }
                entry.bytes += cost(name, member);
            }
            let after = entry.bytes;
            state.bytes = state.bytes - before + after;
        }
    }

    /// Drops everything kept (the store changed in ways not followed here).
    pub(super) fn forget_all(&self) {
        let mut state = self.lock();
        state.kept.clear();
        state.bytes = 0;
        state.generations.values_mut().for_each(|g| *g += 1);
    }

    /// A change of an arch-repo that is not followed here (removals, re-signed entries): what is kept
    /// of it is dropped.
    pub(super) fn forget(&self, repo: &RepoName, arch: &Arch) {
        let mut state = self.lock();
        *state.generations.entry((repo.clone(), arch.clone())).or_default() += 1;
        for kind in [ArchiveKind::Db, ArchiveKind::Files] {
            if let Some(gone) = state.kept.remove(&(repo.clone(), arch.clone(), kind)) {
                state.bytes -= gone.bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(kept: &Kept) -> Vec<&str> {
        kept.keys().map(String::as_str).collect()
    }

    #[test]
    fn kept_members_follow_changes_and_the_budget() {
        let (repo, x86, arm) =
            (RepoName::new("r").unwrap(), Arch::new("x86_64").unwrap(), Arch::new("aarch64").unwrap());
        let members = Members::new(1000);
        let read = |names: &[&str]| -> BTreeMap<String, Arc<[u8]>> {
            names.iter().map(|n| ((*n).to_owned(), Arc::from(&b"0123456789"[..]))).collect()
        };
        let g = members.generation(&repo, &x86);
        members.keep(&repo, &x86, ArchiveKind::Db, g, read(&["b", "d"]));
        members.apply(&repo, &x86, &[("c", b"db", b"files"), ("a", b"db", b"files"), ("d", b"new", b"f")]);
        let db = members.get(&repo, &x86, ArchiveKind::Db).unwrap();
        assert_eq!(names(&db), ["a", "b", "c", "d"], "in byte order of the names");
        assert_eq!(&*db["d"], b"new");
        assert!(members.get(&repo, &x86, ArchiveKind::Files).is_none(), "files were never read");

        // A read that raced with a change is not kept.
        let g = members.generation(&repo, &x86);
        members.apply(&repo, &x86, &[("e", b"db", b"files")]);
        members.keep(&repo, &x86, ArchiveKind::Files, g, read(&["b", "d"]));
        assert!(members.get(&repo, &x86, ArchiveKind::Files).is_none());

        members.forget(&repo, &x86);
        assert!(members.get(&repo, &x86, ArchiveKind::Db).is_none());

        // Over the budget: the least recently used goes; alone over it: not kept.
        let many: Vec<String> = (0..9).map(|i| format!("p{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let g = members.generation(&repo, &x86);
        members.keep(&repo, &x86, ArchiveKind::Db, g, read(&many));
        let g = members.generation(&repo, &arm);
        members.keep(&repo, &arm, ArchiveKind::Db, g, read(&many));
        assert!(members.get(&repo, &x86, ArchiveKind::Db).is_none(), "the older one was dropped");
        assert!(members.get(&repo, &arm, ArchiveKind::Db).is_some());
        let all: Vec<String> = (0..20).map(|i| format!("p{i}")).collect();
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let g = members.generation(&repo, &x86);
        members.keep(&repo, &x86, ArchiveKind::Db, g, read(&all));
        assert!(members.get(&repo, &x86, ArchiveKind::Db).is_none());
    }
}
