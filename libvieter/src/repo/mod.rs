//! A pacman repository as a library.
//!
//! The rules that hold wherever a repository is stored are plain functions here: which names a
//! repository may have ([`crate::name::RepoName`]), which architectures a package goes to
//! ([`arches_for`]), what `Last-Modified` to announce ([`last_modified`]).
//!
//! With the `repository` feature, the repository itself: [`Repository`] owns publishing, removal,
//! `any` fan-out, pool reference counts, the order of every change and crash recovery, over two ports:
//! a transactional metadata store ([`RepoStore`]) and a blob store for package files and archives
//! ([`BlobStore`]). libvieter ships in-memory implementations of both ([`memory`]) and, with `fs`,
//! plain-directory ones ([`crate::fs::DirStore`], [`crate::fs::DirBlobs`]), and the metadata store over
//! any transactional ordered key-value database ([`kv::KvStore`]: the server's redb store is it).
//! [`conformance`] checks any pair of implementations, crash ordering included.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::name::Arch;

#[cfg(feature = "repository")]
mod blob;
#[cfg(feature = "repository")]
mod checkpoints;
#[cfg(feature = "repository")]
pub mod conformance;
#[cfg(feature = "repository")]
mod ingest;
#[cfg(feature = "repository")]
pub mod kv;
#[cfg(feature = "repository")]
mod members;
#[cfg(feature = "repository")]
pub mod memory;
#[cfg(feature = "openpgp")]
pub mod openpgp;
#[cfg(feature = "repository")]
mod queries;
#[cfg(feature = "repository")]
mod service;
#[cfg(feature = "repository")]
pub mod sign;
#[cfg(feature = "repository")]
mod store;

#[cfg(feature = "repository")]
pub use blob::{ArchiveDir, ArchiveWriter, BlobStore};
#[cfg(all(feature = "repository", feature = "fs"))]
pub(crate) use service::{blob_err, store_err};
#[cfg(feature = "repository")]
pub use service::{RecoveryReport, Removal, RepoError, Repository};
#[cfg(feature = "repository")]
pub use sign::{
    check_key_removal, DataHash, KeyRemovalError, SignError, Signer, Signing, UploadPolicy, UploadSignature,
    UploadSignatureError, Uploader, Verified, Verifier, VerifyError,
};
#[cfg(feature = "repository")]
pub use store::{ArchRecord, EntryRecord, RepoStore, RepoTxn};

/// How many events of one package name's history an arch-repo keeps (the oldest go first).
pub const HISTORY_KEPT: usize = 100;

/// Checks a repository name: `[A-Za-z0-9._-]+`, at most 128 bytes, not starting with `.` or `-`, not
/// `api` (the server's API lives under `/api`). The message says what is allowed.
///
/// ```
/// use libvieter::repo::check_repo_name;
/// assert!(check_repo_name("extra-testing").is_ok());
/// assert!(check_repo_name("api").is_err());
/// assert!(check_repo_name("../etc").is_err());
/// ```
pub fn check_repo_name(s: &str) -> Result<(), String> {
    crate::name::RepoName::new(s).map(drop).map_err(|e| e.to_string())
}

/// What a file name under `/{repo}/{arch}/` names, as pacman downloads it: one of the two archives
/// (`{repo}.db`, `{repo}.db.tar.gz`, `{repo}.files`, `{repo}.files.tar.gz`), else a package file
/// recorded in the arch-repo; either one's detached signature with `.sig` appended. `None` for a name
/// that can be neither (empty, a path).
///
/// ```
/// use libvieter::db::ArchiveKind;
/// use libvieter::name::RepoName;
/// use libvieter::repo::{download, Download};
/// let extra = RepoName::new("extra").unwrap();
/// assert_eq!(download(&extra, "extra.db"), Some(Download::Archive(ArchiveKind::Db)));
/// assert_eq!(download(&extra, "extra.files.tar.gz"), Some(Download::Archive(ArchiveKind::Files)));
/// assert_eq!(download(&extra, "extra.db.sig"), Some(Download::ArchiveSignature(ArchiveKind::Db)));
/// assert_eq!(download(&extra, "core.db"), Some(Download::File("core.db")));
/// assert_eq!(download(&extra, "a-1-1-any.pkg.tar.zst.sig"), Some(Download::FileSignature("a-1-1-any.pkg.tar.zst")));
/// assert_eq!(download(&extra, ".sig"), Some(Download::File(".sig")));
/// assert_eq!(download(&extra, "../x"), None);
/// ```
pub fn download<'a>(repo: &crate::name::RepoName, file: &'a str) -> Option<Download<'a>> {
    use crate::db::ArchiveKind;
    if file.is_empty() || file.contains(['/', '\0']) {
        return None;
    }
    let (name, signature) = match file.strip_suffix(".sig") {
        Some(name) if !name.is_empty() => (name, true),
        _ => (file, false),
    };
    let kind = match name.strip_prefix(repo.as_str()).and_then(|rest| rest.strip_prefix('.')) {
        Some("db" | "db.tar.gz") => Some(ArchiveKind::Db),
        Some("files" | "files.tar.gz") => Some(ArchiveKind::Files),
        _ => None,
    };
    Some(match (kind, signature) {
        (Some(kind), false) => Download::Archive(kind),
        (Some(kind), true) => Download::ArchiveSignature(kind),
        (None, false) => Download::File(name),
        (None, true) => Download::FileSignature(name),
    })
}

/// See [`download`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Download<'a> {
    /// An archive of the arch-repo.
    Archive(crate::db::ArchiveKind),
    /// The detached signature of an archive of the arch-repo.
    ArchiveSignature(crate::db::ArchiveKind),
    /// A file looked up by name in the arch-repo's file records.
    File(&'a str),
    /// The detached signature of the file of this name (looked up as [`Download::File`]).
    FileSignature(&'a str),
}

/// The architectures of a repository a package of architecture `arch` goes to, when the repository has
/// `existing` architectures: its own; for `any`, every existing one and always `default_arch` (so that
/// a repository of only `any` packages is still served for the machines' architecture).
///
/// ```
/// use std::collections::BTreeSet;
/// use libvieter::{name::Arch, repo::arches_for};
/// let a = |s: &str| Arch::new(s).unwrap();
/// let existing: BTreeSet<Arch> = [a("aarch64")].into();
/// assert_eq!(arches_for(&a("any"), &existing, &a("x86_64")), [a("aarch64"), a("x86_64")].into());
/// assert_eq!(arches_for(&a("aarch64"), &existing, &a("x86_64")), [a("aarch64")].into());
/// ```
pub fn arches_for(arch: &Arch, existing: &BTreeSet<Arch>, default_arch: &Arch) -> BTreeSet<Arch> {
    if arch.is_any() {
        let mut all = existing.clone();
        // An `any` arch-repo is never made: `any` is not a machine's architecture.
        all.remove(arch);
        all.insert(default_arch.clone());
        all
    } else {
        BTreeSet::from([arch.clone()])
    }
}

/// A page of a file list: from `offset`, at most `limit` names and, past the first, at most `max_bytes`
/// bytes of names (a page holds at least one name, so any list can be read whole page by page).
///
/// ```
/// let files: Vec<String> = ["usr/", "usr/bin/", "usr/bin/hello"].map(String::from).into();
/// assert_eq!(libvieter::repo::file_page(&files, 1, 10, 1 << 20), ["usr/bin/", "usr/bin/hello"]);
/// assert_eq!(libvieter::repo::file_page(&files, 0, 10, 1), ["usr/"]);
/// ```
pub fn file_page(files: &[String], offset: usize, limit: usize, max_bytes: usize) -> Vec<String> {
    let mut bytes = 0;
    files
        .iter()
        .skip(offset)
        .take(limit)
        .take_while(|f| {
            bytes += f.len();
            bytes == f.len() || bytes <= max_bytes
        })
        .cloned()
        .collect()
}

fn whole_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Whether an archive changed at `mtime` changed within the second running at `now`: then it is sent
/// only once that second is over (see [`last_modified`]).
pub fn changed_this_second(mtime: SystemTime, now: SystemTime) -> bool {
    whole_secs(mtime) >= whole_secs(now)
}

/// The `Last-Modified` second to announce, at `now`, for an archive changed at `mtime`.
///
/// pacman sends back the `Last-Modified` it was given as `If-Modified-Since`, in whole seconds; the
/// server answers 304 when the archive's second is not after it, and curl itself drops a 200 whose
/// `Last-Modified` is not after the one it sent. So a copy announced as second `L` must hold every
/// change made up to the end of `L`: the file route sends an archive changed within the running second
/// only once that second is over, and then announces that second. Should the archive keep changing
/// (it waits twice at most), the second before the change is announced: never later than the wall
/// clock, and a later change still has a later second.
pub fn last_modified(mtime: SystemTime, now: SystemTime) -> SystemTime {
    let secs = whole_secs;
    let changed = secs(mtime);
    let announced = if secs(now) > changed { changed } else { changed.saturating_sub(1) };
    UNIX_EPOCH + Duration::from_secs(announced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_modified_is_never_ahead_and_never_hides_a_change() {
        let t = |ms| UNIX_EPOCH + Duration::from_millis(ms);
        // Changed at 10.2 s: while second 10 runs, announce 9; afterwards, 10.
        assert_eq!(last_modified(t(10_200), t(10_900)), t(9_000));
        assert_eq!(last_modified(t(10_200), t(11_000)), t(10_000));
        assert_eq!(last_modified(t(10_200), t(50_000)), t(10_000));
        // A client that fetched at 10.9 (announced 9) and sends If-Modified-Since 9 after a second
        // change at 10.95 sees the change: its second (10) is after 9.
        let announced = last_modified(t(10_200), t(10_900));
        assert!(
            t(10_950).duration_since(UNIX_EPOCH).unwrap().as_secs()
                > announced.duration_since(UNIX_EPOCH).unwrap().as_secs()
        );
        // Never after the wall clock.
        for (m, n) in [(10_200, 10_300), (10_000, 10_000), (0, 0), (999, 5_000)] {
            assert!(last_modified(t(m), t(n)) <= t(n));
        }
    }

    #[test]
    fn changes_of_the_running_second_are_fresh() {
        let t = |ms| UNIX_EPOCH + Duration::from_millis(ms);
        assert!(changed_this_second(t(10_200), t(10_900)));
        assert!(!changed_this_second(t(10_200), t(11_000)));
    }
}
