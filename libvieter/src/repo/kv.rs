//! A [`RepoStore`] over any transactional ordered key-value store: the row layout written once.
//!
//! An embedder with an ordered key-value database implements [`Kv`] ([`crate::kv`]) and gets a
//! [`RepoStore`] with [`KvStore`]. The server's redb store is this layout.
//!
//! Keys are `/`-joined paths (`repo/arch/name`): repository names, architectures, package names and file
//! names cannot contain `/`, so a range scan from `prefix/` to `prefix0` (`'0'` is the character after
//! `'/'`) lists exactly what is under `prefix`. Tables:
//!
//! | table | key | value |
//! |---|---|---|
//! | `members` | `repo/arch/pkgname` | the entry's two gzip members: `u32` LE length of the db member, then the db member, then the files member |
//! | `summaries` | `repo/arch/pkgname` | postcard [`PackageSummary`] |
//! | `details` | `repo/arch/pkgname` | postcard [`Package`] (all metadata, without the file list) |
//! | `file_lists` | `repo/arch/pkgname/{first:08}` | postcard `Vec<String>`: the names of the file list from index `first` on, at most [`FILE_CHUNK`] names or [`FILE_CHUNK_BYTES`] bytes |
//! | `package_files` | `repo/arch/filename` | SHA-256 (lowercase hex, as text) of the package file in the pool |
//! | `pool_refs` | SHA-256 | number of `package_files` rows pointing at it, `u64` LE |
//! | `arch_repos` | `repo/arch` | postcard [`ArchRecord`] |
//! | `history` | `repo/arch/pkgname/{seq:016x}` | postcard [`PackageEvent`]: the name's history, oldest first (a higher `seq` is newer) |
//!
//! A details row without `file_lists` rows holds its file list itself (what was written before file
//! lists had their own table).

use std::collections::BTreeSet;
use std::io;
use std::ops::ControlFlow;

use crate::api::{PackageEvent, PackageSummary};
use crate::db::ArchiveKind;
use crate::name::{Arch, PkgName, RepoName};
use crate::package::Package;

use super::store::{ArchRecord, EntryRecord, RepoStore, RepoTxn};
pub use crate::kv::{KeyRange, Kv, KvError, KvRead, KvWrite, MemoryKv, Visit};

impl From<postcard::Error> for KvError {
    fn from(e: postcard::Error) -> KvError {
        KvError::damaged(e)
    }
}

/// The tables of the layout, for a [`Kv`] that has to create them up front.
pub const TABLES: [&str; 8] =
    [MEMBERS, SUMMARIES, DETAILS, FILE_LISTS, PACKAGE_FILES, POOL_REFS, ARCH_REPOS, HISTORY];
const MEMBERS: &str = "members";
const SUMMARIES: &str = "summaries";
const DETAILS: &str = "details";
const FILE_LISTS: &str = "file_lists";
const PACKAGE_FILES: &str = "package_files";
const POOL_REFS: &str = "pool_refs";
const ARCH_REPOS: &str = "arch_repos";
const HISTORY: &str = "history";

/// Most names in one `file_lists` row: a page of a package's file list reads a few small rows, never the
/// whole list.
pub const FILE_CHUNK: usize = 1000;
/// Most bytes of names in one `file_lists` row (a row holds at least one name).
pub const FILE_CHUNK_BYTES: usize = 64 * 1024;

/// The [`RepoStore`] of the layout above, over `K`.
#[derive(Debug, Clone)]
pub struct KvStore<K>(pub K);

/// A write transaction of a [`KvStore`].
pub struct KvTxn<W>(W);

fn prefix(prefix: &str) -> (String, String) {
    (format!("{prefix}/"), format!("{prefix}0"))
}

fn arch_key(repo: &RepoName, arch: &Arch) -> String {
    format!("{repo}/{arch}")
}

fn pkg_key(repo: &RepoName, arch: &Arch, name: &str) -> String {
    format!("{repo}/{arch}/{name}")
}

fn chunk_key(pkg_key: &str, first: usize) -> String {
    format!("{pkg_key}/{first:08}")
}

/// The last `/`-separated part of a key.
fn last_part(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or_default()
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

/// Every row under `prefix/`, decoded with `f` (which may skip a row with `Ok(None)`).
fn collect<T>(
    kv: &impl KvRead,
    table: &'static str,
    under: &str,
    reverse: bool,
    mut f: impl FnMut(&str, &[u8]) -> Result<Option<T>, KvError>,
) -> Result<Vec<T>, KvError> {
    let (lo, hi) = prefix(under);
    let mut out = Vec::new();
    let mut failed = None;
    kv.scan(table, KeyRange { start: &lo, end: Some(&hi) }, reverse, &mut |k, v| match f(k, v) {
        Ok(row) => {
            out.extend(row);
            ControlFlow::Continue(())
        }
        Err(e) => {
            failed = Some(e);
            ControlFlow::Break(())
        }
    })?;
    failed.map_or(Ok(out), Err)
}

/// The first row of a range (the last when `reverse`).
fn first_row(
    kv: &impl KvRead,
    table: &'static str,
    range: KeyRange<'_>,
    reverse: bool,
) -> Result<Option<(String, Vec<u8>)>, KvError> {
    let mut found = None;
    kv.scan(table, range, reverse, &mut |k, v| {
        found = Some((k.to_owned(), v.to_vec()));
        ControlFlow::Break(())
    })?;
    Ok(found)
}

fn arches_of(kv: &impl KvRead, repo: &RepoName) -> Result<BTreeSet<Arch>, KvError> {
    // Rows are written from validated names only.
    Ok(collect(kv, ARCH_REPOS, repo.as_str(), false, |k, _| Ok(Arch::new(last_part(k)).ok()))?
        .into_iter()
        .collect())
}

fn has_arch_repo(kv: &impl KvRead, repo: &RepoName, arch: &Arch) -> Result<bool, KvError> {
    Ok(kv.get(ARCH_REPOS, &arch_key(repo, arch))?.is_some())
}

fn file_hash(
    kv: &impl KvRead,
    repo: &RepoName,
    arch: &Arch,
    filename: &str,
) -> Result<Option<String>, KvError> {
    sha_text(kv.get(PACKAGE_FILES, &pkg_key(repo, arch, filename))?)
}

/// A `package_files` value.
fn sha_text(value: Option<Vec<u8>>) -> Result<Option<String>, KvError> {
    value.map(|s| String::from_utf8(s).map_err(KvError::damaged)).transpose()
}

fn pool_refs(kv: &impl KvRead, sha256: &str) -> Result<u64, KvError> {
    Ok(kv.get(POOL_REFS, sha256)?.map_or(0, |v| decode_refs(&v)))
}

/// A `pool_refs` value (a damaged one counts as referenced: the pool file is kept).
fn decode_refs(v: &[u8]) -> u64 {
    v.try_into().map(u64::from_le_bytes).unwrap_or(1)
}

impl<K: Kv> RepoStore for KvStore<K> {
    type Error = KvError;
    type Txn<'a>
        = KvTxn<K::Write<'a>>
    where
        K: 'a;

    fn begin(&self) -> Result<Self::Txn<'_>, KvError> {
        Ok(KvTxn(self.0.write()?))
    }

    fn arch_repos(&self) -> Result<Vec<(RepoName, Arch, ArchRecord)>, KvError> {
        let read = self.0.read()?;
        let mut out = Vec::new();
        let mut failed = None;
        read.scan(ARCH_REPOS, KeyRange { start: "", end: None }, false, &mut |k, v| {
            let names = k.split_once('/').map(|(r, a)| (RepoName::new(r), Arch::new(a)));
            // Rows are written from validated names only.
            if let Some((Ok(repo), Ok(arch))) = names {
                match postcard::from_bytes(v) {
                    Ok(record) => out.push((repo, arch, record)),
                    Err(e) => {
                        failed = Some(e);
                        return ControlFlow::Break(());
                    }
                }
            }
            ControlFlow::Continue(())
        })?;
        failed.map_or(Ok(out), |e| Err(e.into()))
    }

    fn arches_of(&self, repo: &RepoName) -> Result<BTreeSet<Arch>, KvError> {
        arches_of(&self.0.read()?, repo)
    }

    fn has_arch_repo(&self, repo: &RepoName, arch: &Arch) -> Result<bool, KvError> {
        has_arch_repo(&self.0.read()?, repo, arch)
    }

    fn summaries(&self, repo: &RepoName, arch: &Arch) -> Result<Vec<PackageSummary>, KvError> {
        collect(&self.0.read()?, SUMMARIES, &arch_key(repo, arch), false, |_, v| {
            Ok(Some(postcard::from_bytes(v)?))
        })
    }

    fn package(
        &self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
    ) -> Result<Option<(PackageSummary, Package)>, KvError> {
        let read = self.0.read()?;
        let k = pkg_key(repo, arch, name.as_str());
        let (Some(summary), Some(detail)) = (read.get(SUMMARIES, &k)?, read.get(DETAILS, &k)?) else {
            return Ok(None);
        };
        Ok(Some((postcard::from_bytes(&summary)?, postcard::from_bytes(&detail)?)))
    }

    fn file_page(
        &self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
        offset: usize,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Option<(Vec<String>, u64)>, KvError> {
        let read = self.0.read()?;
        let pkg = pkg_key(repo, arch, name.as_str());
        let Some(detail) = read.get(DETAILS, &pkg)? else {
            return Ok(None);
        };
        let (lo, hi) = prefix(&pkg);
        // The last row tells the length: its first index plus its names.
        let Some((last_key, last_value)) =
            first_row(&read, FILE_LISTS, KeyRange { start: &lo, end: Some(&hi) }, true)?
        else {
            // Recorded before file lists had their own table: the list is in the details.
            let package: Package = postcard::from_bytes(&detail)?;
            let total = package.files.len() as u64;
            return Ok(Some((super::file_page(&package.files, offset, limit, max_bytes), total)));
        };
        let first_of = |k: &str| -> usize { last_part(k).parse().unwrap_or_default() };
        let total = first_of(&last_key) + postcard::from_bytes::<Vec<String>>(&last_value)?.len();
        if offset >= total {
            return Ok(Some((Vec::new(), total as u64)));
        }
        // The row holding `offset`: the last one starting at or before it (`\0` sorts right after it).
        let at = format!("{}\0", chunk_key(&pkg, offset));
        let start = first_row(&read, FILE_LISTS, KeyRange { start: &lo, end: Some(&at) }, true)?
            .map_or(lo.clone(), |(k, _)| k);
        let (mut page, mut bytes, mut failed) = (Vec::new(), 0, None);
        read.scan(FILE_LISTS, KeyRange { start: &start, end: Some(&hi) }, false, &mut |k, v| {
            let first = first_of(k);
            let names: Vec<String> = match postcard::from_bytes(v) {
                Ok(names) => names,
                Err(e) => {
                    failed = Some(e);
                    return ControlFlow::Break(());
                }
            };
            for (i, name) in names.into_iter().enumerate() {
                if first + i < offset {
                    continue;
                }
                if page.len() >= limit || (!page.is_empty() && bytes + name.len() > max_bytes) {
                    return ControlFlow::Break(());
                }
                bytes += name.len();
                page.push(name);
            }
            ControlFlow::Continue(())
        })?;
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(Some((page, total as u64))),
        }
    }

    fn file_hash(&self, repo: &RepoName, arch: &Arch, filename: &str) -> Result<Option<String>, KvError> {
        file_hash(&self.0.read()?, repo, arch, filename)
    }

    fn history(&self, repo: &RepoName, arch: &Arch, name: &PkgName) -> Result<Vec<PackageEvent>, KvError> {
        let under = pkg_key(repo, arch, name.as_str());
        collect(&self.0.read()?, HISTORY, &under, true, |_, v| Ok(Some(postcard::from_bytes(v)?)))
    }

    fn is_referenced(&self, sha256: &str) -> Result<bool, KvError> {
        Ok(pool_refs(&self.0.read()?, sha256)? > 0)
    }

    fn pool_hashes(&self) -> Result<BTreeSet<String>, KvError> {
        let mut out = BTreeSet::new();
        self.0.read()?.scan(POOL_REFS, KeyRange { start: "", end: None }, false, &mut |k, v| {
            if decode_refs(v) > 0 {
                out.insert(k.to_owned());
            }
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    fn each_member(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
        each: &mut dyn FnMut(&str, &[u8]) -> io::Result<()>,
    ) -> Result<(), KvError> {
        let (lo, hi) = prefix(&arch_key(repo, arch));
        let mut failed = None;
        self.0.read()?.scan(MEMBERS, KeyRange { start: &lo, end: Some(&hi) }, false, &mut |k, bytes| {
            let name = k.get(lo.len()..).unwrap_or_default();
            let split = bytes.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
            let member = split.and_then(|len| match kind {
                ArchiveKind::Db => bytes.get(4..4 + len),
                ArchiveKind::Files => bytes.get(4 + len..),
            });
            let result = match member {
                Some(member) => each(name, member),
                None => Err(io::Error::new(io::ErrorKind::InvalidData, "damaged stored archive member")),
            };
            match result {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    failed = Some(e);
                    ControlFlow::Break(())
                }
            }
        })?;
        failed.map_or(Ok(()), |e| Err(e.into()))
    }
}

impl<W: KvWrite> RepoTxn for KvTxn<W> {
    type Error = KvError;

    fn arches_of(&self, repo: &RepoName) -> Result<BTreeSet<Arch>, KvError> {
        arches_of(&self.0, repo)
    }

    fn has_arch_repo(&self, repo: &RepoName, arch: &Arch) -> Result<bool, KvError> {
        has_arch_repo(&self.0, repo, arch)
    }

    fn put_arch_repo(&mut self, repo: &RepoName, arch: &Arch, record: &ArchRecord) -> Result<(), KvError> {
        self.0.put(ARCH_REPOS, &arch_key(repo, arch), &postcard::to_stdvec(record)?)
    }

    fn remove_arch_repo(&mut self, repo: &RepoName, arch: &Arch) -> Result<(), KvError> {
        let k = arch_key(repo, arch);
        self.0.take(ARCH_REPOS, &k)?;
        let (lo, hi) = prefix(&k);
        self.0.remove_range(HISTORY, KeyRange { start: &lo, end: Some(&hi) })
    }

    fn names(&self, repo: &RepoName, arch: &Arch) -> Result<Vec<PkgName>, KvError> {
        // Rows are written from validated names only.
        collect(&self.0, SUMMARIES, &arch_key(repo, arch), false, |k, _| Ok(PkgName::new(last_part(k)).ok()))
    }

    fn entry_filename(
        &self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
    ) -> Result<Option<String>, KvError> {
        let row = self.0.get(SUMMARIES, &pkg_key(repo, arch, name.as_str()))?;
        Ok(row.map(|v| postcard::from_bytes::<PackageSummary>(&v)).transpose()?.map(|s| s.filename))
    }

    fn put_entry(&mut self, repo: &RepoName, arch: &Arch, record: &EntryRecord<'_>) -> Result<(), KvError> {
        let k = pkg_key(repo, arch, record.summary.name.as_str());
        let p = record.package;
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
        let entry = record.entry;
        let mut members = Vec::with_capacity(4 + entry.db_member.len() + entry.files_member.len());
        members.extend_from_slice(&(entry.db_member.len() as u32).to_le_bytes());
        members.extend_from_slice(&entry.db_member);
        members.extend_from_slice(&entry.files_member);
        self.0.put(MEMBERS, &k, &members)?;
        self.0.put(SUMMARIES, &k, &postcard::to_stdvec(record.summary)?)?;
        self.0.put(DETAILS, &k, &postcard::to_stdvec(&without_files)?)?;
        let (lo, hi) = prefix(&k);
        self.0.remove_range(FILE_LISTS, KeyRange { start: &lo, end: Some(&hi) })?;
        for (first, names) in file_rows(&p.files) {
            self.0.put(FILE_LISTS, &chunk_key(&k, first), &postcard::to_stdvec(names)?)?;
        }
        Ok(())
    }

    fn remove_entry(
        &mut self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
    ) -> Result<Option<PackageSummary>, KvError> {
        let k = pkg_key(repo, arch, name.as_str());
        let Some(old) = self.0.take(SUMMARIES, &k)? else {
            return Ok(None);
        };
        self.0.take(MEMBERS, &k)?;
        self.0.take(DETAILS, &k)?;
        let (lo, hi) = prefix(&k);
        self.0.remove_range(FILE_LISTS, KeyRange { start: &lo, end: Some(&hi) })?;
        Ok(Some(postcard::from_bytes(&old)?))
    }

    fn push_history(
        &mut self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
        event: &PackageEvent,
        keep: usize,
    ) -> Result<(), KvError> {
        let k = pkg_key(repo, arch, name.as_str());
        let keys = collect(&self.0, HISTORY, &k, false, |key, _| Ok(Some(key.to_owned())))?;
        let next = keys
            .last()
            .and_then(|l| u64::from_str_radix(last_part(l), 16).ok())
            .map_or(0, |s| s.saturating_add(1));
        self.0.put(HISTORY, &format!("{k}/{next:016x}"), &postcard::to_stdvec(event)?)?;
        // The oldest go first, past `keep`.
        for old in keys.iter().take((keys.len() + 1).saturating_sub(keep)) {
            self.0.take(HISTORY, old)?;
        }
        Ok(())
    }

    fn file_hash(&self, repo: &RepoName, arch: &Arch, filename: &str) -> Result<Option<String>, KvError> {
        file_hash(&self.0, repo, arch, filename)
    }

    fn put_file(
        &mut self,
        repo: &RepoName,
        arch: &Arch,
        filename: &str,
        sha256: &str,
    ) -> Result<(), KvError> {
        self.0.put(PACKAGE_FILES, &pkg_key(repo, arch, filename), sha256.as_bytes())
    }

    fn remove_file(
        &mut self,
        repo: &RepoName,
        arch: &Arch,
        filename: &str,
    ) -> Result<Option<String>, KvError> {
        sha_text(self.0.take(PACKAGE_FILES, &pkg_key(repo, arch, filename))?)
    }

    fn pool_refs(&self, sha256: &str) -> Result<u64, KvError> {
        pool_refs(&self.0, sha256)
    }

    fn set_pool_refs(&mut self, sha256: &str, refs: u64) -> Result<(), KvError> {
        if refs == 0 {
            self.0.take(POOL_REFS, sha256).map(drop)
        } else {
            self.0.put(POOL_REFS, sha256, &refs.to_le_bytes())
        }
    }

    fn commit(self) -> Result<(), KvError> {
        self.0.commit()
    }
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

    /// The layout over the memory key-value store keeps every promise of the repository ports.
    #[test]
    fn the_layout_keeps_every_promise() {
        super::super::conformance::check(|| {
            (KvStore(MemoryKv::default()), super::super::memory::MemoryBlobs::default())
        });
    }

    #[test]
    fn a_file_list_is_paged_from_its_rows() {
        let repo = super::super::Repository::new(
            KvStore(MemoryKv::default()),
            super::super::memory::MemoryBlobs::default(),
            Arch::new("x86_64").unwrap(),
            crate::db::DbFormat::Current,
            chrono::Utc::now,
        );
        let files: Vec<String> = (0..2500).map(|i| format!("usr/share/f{i:05}")).collect();
        let refs: Vec<&str> = files.iter().map(String::as_str).collect();
        let bytes = super::super::conformance::package_bytes("big", "1-1", "x86_64", &refs);
        let mut upload = super::super::BlobStore::create_upload(repo.blobs()).unwrap();
        io::Write::write_all(&mut upload, &bytes).unwrap();
        let r = RepoName::new("extra").unwrap();
        repo.publish(&r, upload).unwrap();
        let (a, n) = (Arch::new("x86_64").unwrap(), PkgName::new("big").unwrap());
        let (page, total) = repo.store().file_page(&r, &a, &n, 995, 10, 1 << 20).unwrap().unwrap();
        assert_eq!(total, 2500);
        assert_eq!(page, files[995..1005], "a page across two rows");
        let (page, _) = repo.store().file_page(&r, &a, &n, 2498, 10, 1 << 20).unwrap().unwrap();
        assert_eq!(page.len(), 2, "the end of the list");
        let (page, _) = repo.store().file_page(&r, &a, &n, 1000, 3, 1 << 20).unwrap().unwrap();
        assert_eq!(page, files[1000..1003], "a page starting on a row's first name");
        let (page, total) = repo.store().file_page(&r, &a, &n, 2500, 3, 1 << 20).unwrap().unwrap();
        assert_eq!((page.len(), total), (0, 2500), "past the end");
    }
}
