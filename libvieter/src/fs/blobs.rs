//! [`DirBlobs`]: the repository's blobs in a directory, in one of two layouts.
//!
//! [`DirBlobs::open`], the layout the server keeps (it serves package files by looking their names up
//! in the metadata store):
//!
//! ```text
//! ROOT/pool/<sha256>                              package files, by content
//! ROOT/pool/<sha256>.sig                          their detached signatures (when signed)
//! ROOT/repos/<repo>/<arch>/<repo>.db.tar.gz       the archives of each arch-repo
//! ROOT/repos/<repo>/<arch>/<repo>.files.tar.gz
//! ROOT/repos/<repo>/<arch>/<repo>.db.tar.gz.sig   and their signatures (when signed)
//! ROOT/tmp/upload-<pid>-<n>                        uploads while they arrive
//! ```
//!
//! [`DirBlobs::mirror`], a static pacman mirror: any web server of `ROOT` serves `$repo/$arch`.
//!
//! ```text
//! ROOT/.pool/<sha256>                             package files, by content
//! ROOT/<repo>/<arch>/<repo>.db.tar.gz             the archives, with the `<repo>.db` and
//! ROOT/<repo>/<arch>/<repo>.files.tar.gz          `<repo>.files` links pacman downloads
//! ROOT/<repo>/<arch>/<filename>                   every package the db lists (a hard link into the pool)
//! ROOT/<repo>/<arch>/<filename>.sig               and its signature, when signed (`.pool/<sha256>.sig`);
//!                                                 archives' signatures as in the server's layout, with
//!                                                 `<repo>.db.sig` and `<repo>.files.sig` links
//! ROOT/.tmp/upload-<pid>-<n>
//! ```
//!
//! In a mirror, the package files a new db lists are linked into its directory before the db replaces
//! the old one, and the files it no longer lists are deleted after: pacman never reads a db naming a
//! file that is not there.
//!
//! An archive's signature is written next to it (`.NAME.sig.tmp`) before the archive is renamed into
//! place, and renamed over the old signature right after it: an interruption between the two renames
//! leaves a signature of the previous archive, which recovery replaces (it re-signs every archive at
//! start, so the signature needs no fsync). A package file's signature is synced before anything
//! names the file.
//!
//! Package files enter the pool by rename after a sync; archives are replaced atomically (temporary
//! file, rename), synced only in a mirror: the server's archives are remade from the metadata store by
//! recovery at every start, whatever a crash left of them. The tag of each archive is its file's inode,
//! length and modification time (as Apache's default `ETag`): every replacement is a new file (a new
//! inode while the old one still exists) with the time of its write, so a tag never names two contents,
//! and it is the same for the same file after a restart, without reading or hashing the archive.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use crate::db::ArchiveKind;
use crate::name::{Arch, RepoName};
use crate::repo::{ArchiveDir, ArchiveWriter, BlobStore};

/// The tag of an archive as it was written: valid while its length and time are these.
#[derive(Debug, Clone)]
struct ArchiveTag {
    len: u64,
    mtime: SystemTime,
    etag: String,
    /// Its bytes, when it is small enough to serve from memory (see [`DirBlobs::archive_in_memory`]),
    /// and always while it is written behind.
    bytes: Option<Arc<Vec<u8>>>,
    /// Its signature as this process wrote it: `Some(None)` when it has none; `None` when not known
    /// here (read from the file).
    signature: Option<Option<ArchiveBytes>>,
    /// Written to memory only, not yet to its file (the server's layout: see [`DirBlobs::settle`]).
    pending: bool,
}

/// The largest archive kept in memory once written, and how many bytes all those kept may take.
/// (An archive written behind is held whatever its size until [`DirBlobs::settle`] writes it.)
const IN_MEMORY_MAX: usize = 8 << 20;
const IN_MEMORY_BUDGET: usize = 64 << 20;

/// An archive (or an archive's signature) served from memory: its bytes as this process last wrote
/// (or read) them.
#[derive(Debug, Clone)]
pub struct ArchiveBytes {
    /// Shared, not copied: the buffer the archive was written from.
    pub bytes: Arc<Vec<u8>>,
    /// Its modification time (its file's, once written).
    pub modified: SystemTime,
    /// Its tag (as [`DirBlobs::archive_etag`], `sig-` and the same for a signature).
    pub etag: String,
}

/// The archive tags of a [`DirBlobs`], by path.
#[derive(Debug, Default)]
struct Tags {
    by_path: HashMap<PathBuf, ArchiveTag>,
    /// Bumped by every removal: an archive read before a removal is not kept after it.
    removals: u64,
}

impl Tags {
    /// Whether an archive of `len` bytes may stay in memory at `path` beside what other paths keep.
    fn fits(&self, path: &Path, len: usize) -> bool {
        let others: usize = self
            .by_path
            .iter()
            .filter(|(p, _)| p.as_path() != path)
            .filter_map(|(_, t)| t.bytes.as_ref().map(|b| b.len()))
            .sum();
        len <= IN_MEMORY_MAX && others + len <= IN_MEMORY_BUDGET
    }

    fn pending(&self) -> bool {
        self.by_path.values().any(|t| t.pending)
    }
}

/// The tag of an archive of `len` bytes modified at `mtime` (as nginx's: length and time, the time to
/// the nanosecond; every write of an archive gets a later time than the one before, see
/// [`DirBlobs::write_archive`]).
fn etag_of(len: u64, mtime: SystemTime) -> String {
    let nanos = mtime.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{len:x}-{nanos:x}")
}

/// A signature held in memory, tagged as the server tags a signature file.
fn held_signature(bytes: Vec<u8>, modified: SystemTime) -> ArchiveBytes {
    let etag = format!("sig-{}", etag_of(bytes.len() as u64, modified));
    ArchiveBytes { bytes: Arc::new(bytes), modified, etag }
}

/// How a [`DirBlobs`] lays its directory out (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Server,
    Mirror,
}

/// A repository's blobs in a directory.
pub struct DirBlobs {
    root: PathBuf,
    layout: Layout,
    uploads: AtomicU64,
    /// Held shared while an arch-repo's directory is created and an archive written in it, and
    /// exclusively while an emptied repository directory is removed: removing one arch-repo never pulls
    /// the repository directory from under the creation of another.
    repo_dirs: RwLock<()>,
    tags: Mutex<Tags>,
    /// Held while archives written behind go to their files, and while an arch-repo directory is
    /// removed: a removed arch-repo's archives are never written back.
    disk: Mutex<()>,
}

impl Drop for DirBlobs {
    /// What is held in memory only goes to its file (what fails here, recovery rewrites at the next
    /// start).
    fn drop(&mut self) {
        if let Err(e) = self.settle() {
            tracing::warn!("writing the archives held in memory: {e}");
        }
    }
}

/// An upload in `ROOT/tmp/`, deleted when dropped unless kept.
pub struct DirUpload {
    path: PathBuf,
    file: File,
    kept: bool,
}

impl DirUpload {
    /// Where the upload is being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file (for writing it asynchronously, through a clone of the handle).
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Drop for DirUpload {
    fn drop(&mut self) {
        if !self.kept {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Read for DirUpload {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Write for DirUpload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for DirUpload {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

/// A writer that counts what goes through it.
struct Counting<W> {
    inner: W,
    len: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The detached signature next to `path` (`path.sig`).
fn signature_path_of(path: &Path) -> PathBuf {
    let mut sig = path.as_os_str().to_owned();
    sig.push(".sig");
    PathBuf::from(sig)
}

/// The temporary name a file is written under before it is renamed to `path` (`.NAME.tmp`, which
/// [`BlobStore::clear_temporary`] deletes).
fn hidden_tmp(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Writes a signature to `path` with its time (not synced: recovery re-signs every archive at start).
fn write_signature_file(path: &Path, signature: &ArchiveBytes) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(&signature.bytes)?;
    file.set_modified(signature.modified)
}

fn not_found_is_ok(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// A writer that also keeps a copy of what goes through it, when asked to (`Some`), while the copy
/// holds at most `limit` bytes (past that, it becomes `None`).
struct Tee<'a, W> {
    inner: W,
    copy: &'a mut Option<Vec<u8>>,
    limit: usize,
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        if let Some(copy) = self.copy.as_mut() {
            if copy.len() + n > self.limit {
                *self.copy = None;
            } else {
                copy.extend_from_slice(&data[..n]);
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The package files a db archive lists: `%FILENAME%` → `%SHA256SUM%` of every `desc`.
fn listed_files(db: impl Read) -> io::Result<BTreeMap<String, String>> {
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(db));
    let mut out = BTreeMap::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        if !entry.path_bytes().ends_with(b"/desc") {
            continue;
        }
        let mut desc = String::new();
        entry.read_to_string(&mut desc)?;
        let value = |key: &str| {
            let mut lines = desc.lines();
            lines.find(|l| *l == key).and_then(|_| lines.next()).map(str::to_owned)
        };
        if let (Some(filename), Some(sha)) = (value("%FILENAME%"), value("%SHA256SUM%")) {
            out.insert(filename, sha);
        }
    }
    Ok(out)
}

/// Whether `name` can be a package file (or a package file's signature) of a mirror's arch-repo
/// directory (not an archive, not hidden).
fn is_package_file(name: &str) -> bool {
    !name.starts_with('.') && !name.contains('/') && name.contains(".pkg.tar")
}

/// The package file a name of a mirror's directory is (a signature's is the file it signs).
fn signed_file(name: &str) -> &str {
    name.strip_suffix(".sig").unwrap_or(name)
}

/// Deletes the package files next to the archive `archive` that `listed` does not name (best effort:
/// what is left is deleted at the next change or recovery).
fn remove_unlisted(archive: &Path, listed: &BTreeMap<String, String>) {
    let Some(dir) = archive.parent() else { return };
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_package_file(&name) && !listed.contains_key(signed_file(&name)) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl DirBlobs {
    /// Opens (creating its layout) the blob directory `root` in the server's layout.
    pub fn open(root: &Path) -> io::Result<DirBlobs> {
        DirBlobs::open_as(root, Layout::Server)
    }

    /// Opens (creating its layout) the static mirror `root`.
    pub fn mirror(root: &Path) -> io::Result<DirBlobs> {
        DirBlobs::open_as(root, Layout::Mirror)
    }

    fn open_as(root: &Path, layout: Layout) -> io::Result<DirBlobs> {
        let blobs = DirBlobs {
            root: root.to_owned(),
            layout,
            uploads: AtomicU64::new(0),
            repo_dirs: RwLock::new(()),
            tags: Mutex::default(),
            disk: Mutex::new(()),
        };
        for dir in [blobs.pool_dir(), blobs.repos_dir(), blobs.tmp_dir()] {
            fs::create_dir_all(&dir)
                .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", dir.display())))?;
        }
        Ok(blobs)
    }

    fn pool_dir(&self) -> PathBuf {
        self.root.join(if self.layout == Layout::Mirror { ".pool" } else { "pool" })
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join(if self.layout == Layout::Mirror { ".tmp" } else { "tmp" })
    }

    fn repos_dir(&self) -> PathBuf {
        match self.layout {
            Layout::Mirror => self.root.clone(),
            Layout::Server => self.root.join("repos"),
        }
    }

    /// The package file of a SHA-256.
    pub fn package_path(&self, sha256: &str) -> PathBuf {
        self.pool_dir().join(sha256)
    }

    /// The detached signature of the package file of a SHA-256 (there when signed).
    pub fn package_signature_path(&self, sha256: &str) -> PathBuf {
        self.pool_dir().join(format!("{sha256}.sig"))
    }

    /// The detached signature of the `kind` archive of an arch-repo (there when signed).
    pub fn archive_signature_path(&self, repo: &RepoName, arch: &Arch, kind: ArchiveKind) -> PathBuf {
        signature_path_of(&self.archive_path(repo, arch, kind))
    }

    /// The `kind` archive of an arch-repo.
    pub fn archive_path(&self, repo: &RepoName, arch: &Arch, kind: ArchiveKind) -> PathBuf {
        let name = match kind {
            ArchiveKind::Db => format!("{repo}.db.tar.gz"),
            ArchiveKind::Files => format!("{repo}.files.tar.gz"),
        };
        self.repos_dir().join(repo.as_str()).join(arch.as_str()).join(name)
    }

    /// The tag of the archive at `path` whose open handle is `file`, of length `len` and modification
    /// time `mtime` (`etag_of` them): as kept when it was written or, after a restart, from
    /// the file on first use, which also loads it into memory when it is small (see
    /// [`DirBlobs::archive_in_memory`]).
    pub fn archive_etag(&self, path: &Path, file: &File, len: u64, mtime: SystemTime) -> io::Result<String> {
        let cached = self.tags().by_path.get(path).cloned();
        if let Some(tag) = cached.filter(|t| t.len == len && t.mtime == mtime) {
            return Ok(tag.etag);
        }
        let removals = self.tags().removals;
        let meta = file.metadata()?;
        let etag = etag_of(meta.len(), meta.modified()?);
        let small = len <= IN_MEMORY_MAX as u64 && meta.len() == len;
        let mut copy = Vec::new();
        if small {
            copy.reserve_exact(len as usize);
            let mut offset = 0u64;
            copy.resize(len as usize, 0);
            while offset < len {
                let n = std::os::unix::fs::FileExt::read_at(file, &mut copy[offset as usize..], offset)?;
                if n == 0 {
                    break;
                }
                offset += n as u64;
            }
            copy.truncate(offset as usize);
        }
        let mut tags = self.tags();
        // Never over a newer write's tag (inserted after its rename), nor after a removal.
        if tags.removals == removals && !tags.by_path.contains_key(path) {
            let keep = small && copy.len() as u64 == len && tags.fits(path, copy.len());
            let bytes = keep.then(|| Arc::new(copy));
            let tag = ArchiveTag { len, mtime, etag: etag.clone(), bytes, signature: None, pending: false };
            tags.by_path.insert(path.to_owned(), tag);
        }
        Ok(etag)
    }

    /// The `kind` archive of an arch-repo from memory, when this process wrote it (or served it once
    /// from disk) and it is small enough (at most 8 MiB, 64 MiB in all), or while it is written behind:
    /// no file is opened. A server serves it this way, else from [`DirBlobs::archive_path`].
    pub fn archive_in_memory(&self, repo: &RepoName, arch: &Arch, kind: ArchiveKind) -> Option<ArchiveBytes> {
        let path = self.archive_path(repo, arch, kind);
        let tags = self.tags();
        let tag = tags.by_path.get(&path)?;
        let bytes = tag.bytes.clone()?;
        Some(ArchiveBytes { bytes, modified: tag.mtime, etag: tag.etag.clone() })
    }

    /// The signature of the `kind` archive of an arch-repo from memory, when this process wrote it:
    /// `Some(None)` when that archive has none, `None` when not known here (serve
    /// [`DirBlobs::archive_signature_path`]).
    pub fn archive_signature_in_memory(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
    ) -> Option<Option<ArchiveBytes>> {
        let path = self.archive_path(repo, arch, kind);
        self.tags().by_path.get(&path)?.signature.clone()
    }

    /// Writes every archive held in memory only to its file (and its signature next to it), each
    /// atomically, not synced (see the module documentation). In the server's layout
    /// [`BlobStore::write_archive`] only replaces what [`DirBlobs::archive_in_memory`] serves: a burst
    /// of publishes rewrites an archive in memory many times and its file once. Whatever reads the
    /// archives through [`BlobStore`] settles first; a server settles shortly after every change and
    /// before it stops; a crash before is repaired by recovery, as any archive that is not the store's.
    /// A failure leaves what failed held, to be written by the next call.
    pub fn settle(&self) -> io::Result<()> {
        if !self.tags().pending() {
            return Ok(());
        }
        let _disk = self.disk.lock().unwrap_or_else(|p| p.into_inner());
        let held: Vec<(PathBuf, ArchiveTag)> = {
            let tags = self.tags();
            tags.by_path.iter().filter(|(_, t)| t.pending).map(|(p, t)| (p.clone(), t.clone())).collect()
        };
        let mut result = Ok(());
        for (path, tag) in held {
            if let Err(e) = self.write_held(&path, &tag) {
                result = Err(io::Error::new(e.kind(), format!("writing {}: {e}", path.display())));
                continue;
            }
            let mut tags = self.tags();
            let fits = tags.fits(&path, tag.len as usize);
            if let Some(now) = tags.by_path.get_mut(&path).filter(|t| t.pending && t.etag == tag.etag) {
                now.pending = false;
                if !fits {
                    now.bytes = None;
                }
            }
        }
        result
    }

    /// Writes an archive held in memory to `path`, with its time, and its signature (or the lack of
    /// one) in the same step as [`BlobStore::write_archive`] does for a mirror.
    fn write_held(&self, path: &Path, tag: &ArchiveTag) -> io::Result<()> {
        let (Some(bytes), Some(signature)) = (&tag.bytes, &tag.signature) else {
            return Err(io::Error::other("an archive written behind without its bytes"));
        };
        let _shared = self.repo_dirs.read().unwrap_or_else(|p| p.into_inner());
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let sig_path = signature_path_of(path);
        let sig_tmp = hidden_tmp(&sig_path);
        if let Some(signature) = signature {
            write_signature_file(&sig_tmp, signature)?;
        }
        super::replace(path, Some(tag.mtime), false, |out| out.write_all(bytes)).inspect_err(|_| {
            let _ = fs::remove_file(&sig_tmp);
        })?;
        match signature {
            Some(_) => fs::rename(&sig_tmp, &sig_path),
            None => not_found_is_ok(fs::remove_file(&sig_path)),
        }
    }

    fn tags(&self) -> std::sync::MutexGuard<'_, Tags> {
        self.tags.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes every file of `listed` a hard link (a copy where links are refused) of its pool file in
    /// the directory of `archive`, replacing a different file of that name atomically.
    fn link_listed(&self, archive: &Path, listed: &BTreeMap<String, String>) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let Some(dir) = archive.parent() else { return Ok(()) };
        for (filename, sha) in listed {
            if !is_package_file(filename) || sha.contains(['/', '.']) {
                continue;
            }
            let (pool, target) = (self.package_path(sha), dir.join(filename));
            let pool_meta = fs::metadata(&pool)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", pool.display())))?;
            if let Ok(meta) = fs::metadata(&target) {
                if meta.ino() == pool_meta.ino() && meta.dev() == pool_meta.dev() {
                    continue;
                }
            }
            let tmp = dir.join(format!(".{filename}.tmp"));
            let _ = fs::remove_file(&tmp);
            fs::hard_link(&pool, &tmp).or_else(|_| fs::copy(&pool, &tmp).map(drop))?;
            fs::rename(&tmp, &target)?;
        }
        // Their signatures, where they have one (a signature only ever signs its file: a new one
        // replaces it whole).
        for (filename, sha) in listed {
            if !is_package_file(filename) || sha.contains(['/', '.']) {
                continue;
            }
            let (pool, target) = (self.package_signature_path(sha), dir.join(format!("{filename}.sig")));
            let Ok(pool_meta) = fs::metadata(&pool) else { continue };
            if let Ok(meta) = fs::metadata(&target) {
                if meta.ino() == pool_meta.ino() && meta.dev() == pool_meta.dev() {
                    continue;
                }
            }
            let tmp = dir.join(format!(".{filename}.sig.tmp"));
            let _ = fs::remove_file(&tmp);
            fs::hard_link(&pool, &tmp).or_else(|_| fs::copy(&pool, &tmp).map(drop))?;
            fs::rename(&tmp, &target)?;
        }
        sync_dir(dir)
    }

    /// In a mirror, the links `<repo>.db.sig`/`<repo>.files.sig` to the archive's signature, where
    /// it has one.
    fn link_signature_name(&self, repo: &RepoName, arch: &Arch, kind: ArchiveKind) -> io::Result<()> {
        let sig = self.archive_signature_path(repo, arch, kind);
        let (Some(dir), Some(target)) = (sig.parent(), sig.file_name()) else { return Ok(()) };
        let short = dir.join(match kind {
            ArchiveKind::Db => format!("{repo}.db.sig"),
            ArchiveKind::Files => format!("{repo}.files.sig"),
        });
        if !sig.exists() {
            return not_found_is_ok(fs::remove_file(&short));
        }
        if fs::read_link(&short).is_ok_and(|t| t.as_os_str() == target) {
            return Ok(());
        }
        let _ = fs::remove_file(&short);
        std::os::unix::fs::symlink(target, &short)
    }

    /// Writes a small file durably through `tmp/` and renames it to `target` (in the pool).
    fn keep_small(&self, target: &Path, bytes: &[u8]) -> io::Result<()> {
        let n = self.uploads.fetch_add(1, Ordering::Relaxed);
        let tmp = self.tmp_dir().join(format!("sig-{}-{n}", std::process::id()));
        let result = (|| {
            let mut file = File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, target)?;
            sync_dir(&self.pool_dir())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// The name pacman downloads (`<repo>.db`, `<repo>.files`) as a link to the archive, in a mirror.
    fn link_archive_name(&self, archive: &Path, repo: &RepoName, kind: ArchiveKind) -> io::Result<()> {
        let (Some(dir), Some(target)) = (archive.parent(), archive.file_name()) else { return Ok(()) };
        let short = dir.join(match kind {
            ArchiveKind::Db => format!("{repo}.db"),
            ArchiveKind::Files => format!("{repo}.files"),
        });
        if fs::read_link(&short).is_ok_and(|t| t.as_os_str() == target) {
            return Ok(());
        }
        let _ = fs::remove_file(&short);
        std::os::unix::fs::symlink(target, &short)
    }

    fn repo_dir(&self, repo: &str) -> PathBuf {
        self.repos_dir().join(repo)
    }

    /// Removes an arch-repo directory, then its repository's directory if that is empty now.
    fn remove_dir_of(&self, repo: &str, arch: &str) -> io::Result<()> {
        let _disk = self.disk.lock().unwrap_or_else(|p| p.into_inner());
        let dir = self.repo_dir(repo).join(arch);
        not_found_is_ok(fs::remove_dir_all(&dir))
            .map_err(|e| io::Error::new(e.kind(), format!("removing {}: {e}", dir.display())))?;
        {
            let mut tags = self.tags();
            tags.by_path.retain(|path, _| !path.starts_with(&dir));
            tags.removals += 1;
        }
        let _exclusive = self.repo_dirs.write().unwrap_or_else(|p| p.into_inner());
        let _ = fs::remove_dir(self.repo_dir(repo));
        Ok(())
    }
}

impl BlobStore for DirBlobs {
    type Error = io::Error;
    type Upload = DirUpload;
    type Archive = File;

    fn create_upload(&self) -> io::Result<DirUpload> {
        let n = self.uploads.fetch_add(1, Ordering::Relaxed);
        let path = self.tmp_dir().join(format!("upload-{}-{n}", std::process::id()));
        let file = File::options().read(true).write(true).create_new(true).open(&path)?;
        Ok(DirUpload { path, file, kept: false })
    }

    fn keep_package(&self, mut upload: DirUpload, sha256: &str) -> io::Result<()> {
        let target = self.package_path(sha256);
        if target.exists() {
            return Ok(());
        }
        upload.file.sync_all()?;
        fs::rename(&upload.path, &target)?;
        upload.kept = true;
        sync_dir(&self.pool_dir())
    }

    fn remove_package(&self, sha256: &str) -> io::Result<()> {
        not_found_is_ok(fs::remove_file(self.package_signature_path(sha256)))?;
        not_found_is_ok(fs::remove_file(self.package_path(sha256)))
    }

    fn package_hashes(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.pool_dir())? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".sig") {
                out.push(name);
            }
        }
        Ok(out)
    }

    fn signature_hashes(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.pool_dir())? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(sha) = name.strip_suffix(".sig") {
                out.push(sha.to_owned());
            }
        }
        Ok(out)
    }

    fn open_package(&self, sha256: &str) -> io::Result<Option<File>> {
        match File::open(self.package_path(sha256)) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn keep_package_signature(&self, sha256: &str, signature: &[u8]) -> io::Result<()> {
        if sha256.contains(['/', '.']) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a SHA-256"));
        }
        self.keep_small(&self.package_signature_path(sha256), signature)
    }

    fn package_signature(&self, sha256: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.package_signature_path(sha256)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// In the server's layout, the archive replaces what is served from memory at once and reaches its
    /// file at the next [`DirBlobs::settle`]; in a mirror, its file is replaced (and synced) here.
    /// Every write of an archive gets a later time than the one before (`mtime`, or a nanosecond
    /// after the last), so that its tag (`etag_of`) is new.
    fn write_archive(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
        mtime: SystemTime,
        write: &mut ArchiveWriter<'_>,
    ) -> io::Result<()> {
        let path = self.archive_path(repo, arch, kind);
        let (previous_len, previous_mtime) =
            self.tags().by_path.get(&path).map_or((0, None), |t| (t.len as usize, Some(t.mtime)));
        let mtime = match previous_mtime {
            Some(before) if mtime <= before => before + std::time::Duration::from_nanos(1),
            _ => mtime,
        };
        if self.layout == Layout::Server {
            // Room for what the previous archive held, and some (no copying while it grows).
            let mut bytes = Vec::with_capacity(previous_len + previous_len / 16 + 4096);
            let signature = write(&mut bytes)?;
            let len = bytes.len() as u64;
            let tag = ArchiveTag {
                len,
                mtime,
                etag: etag_of(len, mtime),
                bytes: Some(Arc::new(bytes)),
                signature: Some(signature.map(|s| held_signature(s, mtime))),
                pending: true,
            };
            self.tags().by_path.insert(path, tag);
            return Ok(());
        }
        let sig_path = signature_path_of(&path);
        let sig_tmp = hidden_tmp(&sig_path);
        let mut signed = false;
        let mut listed = BTreeMap::new();
        let _shared = self.repo_dirs.read().unwrap_or_else(|p| p.into_inner());
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let mirror_db = kind == ArchiveKind::Db;
        // A copy of the whole db, for its links.
        let mut copy = mirror_db.then(|| Vec::with_capacity(previous_len + 4096));
        super::replace(&path, Some(mtime), true, |out| {
            let tee = Tee { inner: out, copy: &mut copy, limit: usize::MAX };
            let signature = write(&mut Counting { inner: tee, len: 0 })?;
            if let Some(signature) = signature {
                // Written before the archive is renamed, renamed right after it. Not synced:
                // recovery re-signs every archive at start, so a signature lost in a crash costs
                // nothing.
                write_signature_file(&sig_tmp, &held_signature(signature, mtime))?;
                signed = true;
            }
            if mirror_db {
                // Before the new db is in place: every file it lists is there.
                listed = listed_files(copy.as_deref().unwrap_or_default())?;
                self.link_listed(&path, &listed)?;
            }
            Ok(())
        })
        .map_err(|e| {
            let _ = fs::remove_file(&sig_tmp);
            io::Error::new(e.kind(), format!("writing {}: {e}", path.display()))
        })?;
        if signed {
            fs::rename(&sig_tmp, &sig_path)?;
        } else {
            not_found_is_ok(fs::remove_file(&sig_path))?;
        }
        self.link_archive_name(&path, repo, kind)?;
        self.link_signature_name(repo, arch, kind)?;
        if mirror_db {
            // After: the files it no longer lists go.
            remove_unlisted(&path, &listed);
        }
        let meta = fs::metadata(&path)?;
        let etag = etag_of(meta.len(), mtime);
        let tag = ArchiveTag { len: meta.len(), mtime, etag, bytes: None, signature: None, pending: false };
        self.tags().by_path.insert(path, tag);
        Ok(())
    }

    fn open_archive(&self, repo: &RepoName, arch: &Arch, kind: ArchiveKind) -> io::Result<Option<File>> {
        self.settle()?;
        match File::open(self.archive_path(repo, arch, kind)) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn write_archive_signature(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
        signature: Option<&[u8]>,
    ) -> io::Result<()> {
        self.settle()?;
        let path = self.archive_path(repo, arch, kind);
        let sig_path = self.archive_signature_path(repo, arch, kind);
        let _shared = self.repo_dirs.read().unwrap_or_else(|p| p.into_inner());
        if !path.exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such archive", path.display()),
            ));
        }
        // A signature's tag is its length and time: a new one is later than the one it replaces.
        let before = self.tags().by_path.get(&path).and_then(|t| t.signature.clone()).flatten();
        let now = SystemTime::now();
        let modified = match before {
            Some(b) if now <= b.modified => b.modified + std::time::Duration::from_nanos(1),
            _ => now,
        };
        let held = signature.map(|s| held_signature(s.to_vec(), modified));
        match &held {
            Some(signature) => {
                super::write_atomically_at(&sig_path, Some(modified), |out| out.write_all(&signature.bytes))?
            }
            None => not_found_is_ok(fs::remove_file(&sig_path))?,
        }
        if let Some(tag) = self.tags().by_path.get_mut(&path).filter(|t| t.signature.is_some()) {
            tag.signature = Some(held);
        }
        if self.layout == Layout::Mirror {
            self.link_signature_name(repo, arch, kind)?;
            if kind == ArchiveKind::Db {
                // Package signatures made at recovery, next to the files of the current db.
                let listed = listed_files(io::BufReader::new(File::open(&path)?))?;
                self.link_listed(&path, &listed)?;
            }
        }
        Ok(())
    }

    fn archive_signature(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
    ) -> io::Result<Option<Vec<u8>>> {
        self.settle()?;
        match fs::read(self.archive_signature_path(repo, arch, kind)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn remove_archives(&self, repo: &RepoName, arch: &Arch) -> io::Result<()> {
        self.remove_dir_of(repo.as_str(), arch.as_str())
    }

    fn archive_dirs(&self) -> io::Result<Vec<ArchiveDir>> {
        self.settle()?;
        let mut out = Vec::new();
        for repo in fs::read_dir(self.repos_dir())? {
            let repo = repo?;
            // A mirror's pool and uploads are hidden: repository names never start with '.'.
            if !repo.file_type()?.is_dir() || repo.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let repo_name = repo.file_name().to_string_lossy().into_owned();
            for arch in fs::read_dir(repo.path())? {
                let arch = arch?.file_name().to_string_lossy().into_owned();
                out.push(ArchiveDir { repo: repo_name.clone(), arch });
            }
        }
        out.sort();
        Ok(out)
    }

    fn remove_archive_dir(&self, dir: &ArchiveDir) -> io::Result<()> {
        if dir.repo.contains('/')
            || dir.arch.contains('/')
            || [&dir.repo, &dir.arch].iter().any(|s| *s == "..")
        {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not an archive directory"));
        }
        self.remove_dir_of(&dir.repo, &dir.arch)
    }

    fn clear_temporary(&self) -> io::Result<usize> {
        self.settle()?;
        let mut removed = 0;
        for entry in fs::read_dir(self.tmp_dir())? {
            if fs::remove_file(entry?.path()).is_ok() {
                removed += 1;
            }
        }
        // Archives cut short while being written.
        for dir in self.archive_dirs()? {
            let Ok(entries) = fs::read_dir(self.repo_dir(&dir.repo).join(&dir.arch)) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') && name.ends_with(".tmp") {
                    let _ = fs::remove_file(entry.path());
                }
            }
            // A mirror's files the db no longer lists, had the process stopped before deleting them.
            if self.layout == Layout::Mirror {
                let db = self.repo_dir(&dir.repo).join(&dir.arch).join(format!("{}.db.tar.gz", dir.repo));
                if let Ok(listed) = File::open(&db).and_then(|f| listed_files(io::BufReader::new(f))) {
                    remove_unlisted(&db, &listed);
                }
            }
        }
        Ok(removed)
    }

    fn unsettled(&self) -> bool {
        self.tags().pending()
    }

    fn settle(&self) -> io::Result<()> {
        DirBlobs::settle(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::memory::MemoryStore;

    #[test]
    fn directory_blobs_keep_every_promise() {
        let dirs = std::cell::RefCell::new(Vec::new());
        crate::repo::conformance::check(|| {
            let dir = tempfile::tempdir().expect("a temp dir");
            let blobs = DirBlobs::open(dir.path()).expect("opening blobs");
            dirs.borrow_mut().push(dir);
            (MemoryStore::new(), blobs)
        });
    }

    #[test]
    fn mirror_blobs_keep_every_promise() {
        let dirs = std::cell::RefCell::new(Vec::new());
        crate::repo::conformance::check(|| {
            let dir = tempfile::tempdir().expect("a temp dir");
            let blobs = DirBlobs::mirror(dir.path()).expect("opening a mirror");
            dirs.borrow_mut().push(dir);
            (MemoryStore::new(), blobs)
        });
    }

    /// The package files in a mirror's arch-repo directory.
    fn served(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.retain(|n| is_package_file(n));
        names.sort();
        names
    }

    #[test]
    fn a_mirror_serves_exactly_what_its_dbs_list() {
        use crate::repo::conformance::package_bytes;
        use crate::repo::{Removal, Repository};
        let dir = tempfile::tempdir().unwrap();
        let now = || chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let repo = Repository::new(
            MemoryStore::new(),
            DirBlobs::mirror(dir.path()).unwrap(),
            Arch::new("x86_64").unwrap(),
            crate::db::DbFormat::Current,
            now,
        );
        let name = RepoName::new("extra").unwrap();
        let publish = |bytes: Vec<u8>| {
            let mut upload = repo.blobs().create_upload().unwrap();
            upload.write_all(&bytes).unwrap();
            repo.publish(&name, upload).unwrap()
        };
        publish(package_bytes("arm", "1-1", "aarch64", &[]));
        publish(package_bytes("docs", "1-1", "any", &["usr/share/doc/d"]));
        publish(package_bytes("tool", "1-1", "x86_64", &[]));
        let (x86, arm) = (dir.path().join("extra/x86_64"), dir.path().join("extra/aarch64"));
        assert_eq!(served(&x86), ["docs-1-1-any.pkg.tar.zst", "tool-1-1-x86_64.pkg.tar.zst"]);
        assert_eq!(served(&arm), ["arm-1-1-aarch64.pkg.tar.zst", "docs-1-1-any.pkg.tar.zst"]);
        assert_eq!(fs::read_link(x86.join("extra.db")).unwrap(), Path::new("extra.db.tar.gz"));
        assert_eq!(fs::read_link(x86.join("extra.files")).unwrap(), Path::new("extra.files.tar.gz"));
        let pool = fs::read(dir.path().join(".pool").join(
            &listed_files(File::open(x86.join("extra.db")).unwrap()).unwrap()["tool-1-1-x86_64.pkg.tar.zst"],
        ))
        .unwrap();
        assert_eq!(
            fs::read(x86.join("tool-1-1-x86_64.pkg.tar.zst")).unwrap(),
            pool,
            "the listed file is the pool's"
        );

        publish(package_bytes("docs", "2-1", "any", &["usr/share/doc/d"]));
        assert_eq!(served(&x86), ["docs-2-1-any.pkg.tar.zst", "tool-1-1-x86_64.pkg.tar.zst"]);
        assert_eq!(served(&arm), ["arm-1-1-aarch64.pkg.tar.zst", "docs-2-1-any.pkg.tar.zst"]);
        repo.remove(
            &name,
            Removal::Package(&Arch::new("x86_64").unwrap(), &crate::name::PkgName::new("tool").unwrap()),
        )
        .unwrap();
        assert_eq!(served(&x86), ["docs-2-1-any.pkg.tar.zst"]);
        repo.remove(&name, Removal::ArchRepo(&Arch::new("aarch64").unwrap())).unwrap();
        assert!(!arm.exists(), "a removed arch-repo's directory is gone");

        // A file the db no longer lists, left by a process that stopped: recovery deletes it.
        fs::write(x86.join("stale-1-1-x86_64.pkg.tar.zst"), b"x").unwrap();
        repo.recover().unwrap();
        assert_eq!(served(&x86), ["docs-2-1-any.pkg.tar.zst"]);
        // The pool holds what is referenced only.
        assert_eq!(repo.blobs().package_hashes().unwrap().len(), 1);
    }

    #[test]
    fn a_signed_mirror_serves_the_signatures_next_to_the_files() {
        use crate::repo::conformance::package_bytes;
        use crate::repo::sign::TestSigner;
        use crate::repo::{Removal, Repository};
        let dir = tempfile::tempdir().unwrap();
        let now = || chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let repo = Repository::new(
            MemoryStore::new(),
            DirBlobs::mirror(dir.path()).unwrap(),
            Arch::new("x86_64").unwrap(),
            crate::db::DbFormat::Current,
            now,
        )
        .with_signer(TestSigner::new());
        let name = RepoName::new("extra").unwrap();
        let publish = |bytes: &[u8]| {
            let mut upload = repo.blobs().create_upload().unwrap();
            upload.write_all(bytes).unwrap();
            repo.publish(&name, upload).unwrap()
        };
        let tool = package_bytes("tool", "1-1", "x86_64", &[]);
        publish(&tool);
        let x86 = dir.path().join("extra/x86_64");
        assert_eq!(served(&x86), ["tool-1-1-x86_64.pkg.tar.zst", "tool-1-1-x86_64.pkg.tar.zst.sig"]);
        assert_eq!(
            fs::read(x86.join("tool-1-1-x86_64.pkg.tar.zst.sig")).unwrap(),
            TestSigner::signature_of(&tool)
        );
        let db = fs::read(x86.join("extra.db")).unwrap();
        assert_eq!(
            fs::read(x86.join("extra.db.sig")).unwrap(),
            TestSigner::signature_of(&db),
            "the db's signature"
        );
        assert_eq!(fs::read_link(x86.join("extra.files.sig")).unwrap(), Path::new("extra.files.tar.gz.sig"));
        publish(&package_bytes("tool", "2-1", "x86_64", &[]));
        assert_eq!(
            served(&x86),
            ["tool-2-1-x86_64.pkg.tar.zst", "tool-2-1-x86_64.pkg.tar.zst.sig"],
            "the old signature went"
        );
        repo.remove(
            &name,
            Removal::Package(&Arch::new("x86_64").unwrap(), &crate::name::PkgName::new("tool").unwrap()),
        )
        .unwrap();
        assert!(served(&x86).is_empty());
        let db = fs::read(x86.join("extra.db")).unwrap();
        assert_eq!(
            fs::read(x86.join("extra.db.sig")).unwrap(),
            TestSigner::signature_of(&db),
            "the empty db's"
        );
        // The server's layout: the signatures in the pool and next to the archives.
        let server = tempfile::tempdir().unwrap();
        let blobs = DirBlobs::open(server.path()).unwrap();
        blobs.keep_package_signature("abc", b"sig").unwrap();
        assert_eq!(fs::read(server.path().join("pool/abc.sig")).unwrap(), b"sig");
        assert!(blobs.package_hashes().unwrap().is_empty(), "a signature is not a package file");
        let (r, a) = (RepoName::new("r").unwrap(), Arch::new("x86_64").unwrap());
        blobs
            .write_archive(&r, &a, ArchiveKind::Db, SystemTime::now(), &mut |w| {
                w.write_all(b"db").map(|()| Some(b"s".to_vec()))
            })
            .unwrap();
        // Served from memory at once, written to the files when settled.
        let held = blobs.archive_signature_in_memory(&r, &a, ArchiveKind::Db).unwrap().unwrap();
        assert_eq!(held.bytes.as_slice(), b"s");
        assert!(!server.path().join("repos/r/x86_64/r.db.tar.gz").exists(), "written behind");
        blobs.settle().unwrap();
        assert_eq!(fs::read(server.path().join("repos/r/x86_64/r.db.tar.gz")).unwrap(), b"db");
        assert_eq!(fs::read(server.path().join("repos/r/x86_64/r.db.tar.gz.sig")).unwrap(), b"s");
        blobs
            .write_archive(&r, &a, ArchiveKind::Db, SystemTime::now(), &mut |w| {
                w.write_all(b"db2").map(|()| None)
            })
            .unwrap();
        assert!(blobs.archive_signature_in_memory(&r, &a, ArchiveKind::Db).unwrap().is_none());
        blobs.settle().unwrap();
        assert!(
            !server.path().join("repos/r/x86_64/r.db.tar.gz.sig").exists(),
            "unsigned: no signature left"
        );
        assert!(blobs
            .write_archive(&r, &a, ArchiveKind::Db, SystemTime::now(), &mut |_| Err(io::Error::other("x")))
            .is_err());
        assert_eq!(
            fs::read(server.path().join("repos/r/x86_64/r.db.tar.gz")).unwrap(),
            b"db2",
            "a failed write changes nothing"
        );
        assert_eq!(
            fs::read_dir(server.path().join("repos/r/x86_64")).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn an_upload_dropped_is_deleted_and_a_kept_one_is_in_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = DirBlobs::open(dir.path()).unwrap();
        let mut upload = blobs.create_upload().unwrap();
        upload.write_all(b"bytes").unwrap();
        let path = upload.path().to_owned();
        drop(upload);
        assert!(!path.exists());
        let mut upload = blobs.create_upload().unwrap();
        upload.write_all(b"bytes").unwrap();
        blobs.keep_package(upload, "abc").unwrap();
        assert_eq!(fs::read(blobs.package_path("abc")).unwrap(), b"bytes");
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn archive_files_survive_a_racing_removal_of_the_repository_directory() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = DirBlobs::open(dir.path()).unwrap();
        let (repo, x86, arm) =
            (RepoName::new("r").unwrap(), Arch::new("x86_64").unwrap(), Arch::new("aarch64").unwrap());
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let _ = blobs.remove_archives(&repo, &arm);
                }
            });
            for i in 0..2000 {
                let written =
                    blobs.write_archive(&repo, &x86, ArchiveKind::Db, SystemTime::now(), &mut |w| {
                        w.write_all(b"x").map(|()| None)
                    });
                if let Err(e) = written {
                    stop.store(true, Ordering::Relaxed);
                    panic!("attempt {i}: {e}");
                }
                blobs.remove_archives(&repo, &x86).unwrap();
            }
            stop.store(true, Ordering::Relaxed);
        });
    }

    #[test]
    fn the_tag_of_an_archive_names_one_content_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = DirBlobs::open(dir.path()).unwrap();
        let (repo, arch) = (RepoName::new("r").unwrap(), Arch::new("x86_64").unwrap());
        // The same time for every write: the tag still changes with each.
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let write = |b: &DirBlobs, content: &'static [u8]| {
            b.write_archive(&repo, &arch, ArchiveKind::Db, at, &mut |w| w.write_all(content).map(|()| None))
                .unwrap();
            b.settle().unwrap();
        };
        let path = blobs.archive_path(&repo, &arch, ArchiveKind::Db);
        let tag = |b: &DirBlobs| {
            let file = File::open(&path).unwrap();
            let meta = file.metadata().unwrap();
            b.archive_etag(&path, &file, meta.len(), meta.modified().unwrap()).unwrap()
        };
        write(&blobs, b"one");
        let first = tag(&blobs);
        assert_eq!(blobs.archive_in_memory(&repo, &arch, ArchiveKind::Db).unwrap().etag, first);
        write(&blobs, b"two");
        let second = tag(&blobs);
        assert_ne!(first, second, "same length, same time, another content");
        let reopened = DirBlobs::open(dir.path()).unwrap();
        assert!(reopened.archive_in_memory(&repo, &arch, ArchiveKind::Db).is_none(), "not read yet");
        assert_eq!(tag(&reopened), second, "as computed after a restart");
        let served = reopened.archive_in_memory(&repo, &arch, ArchiveKind::Db).unwrap();
        assert_eq!(
            (served.bytes.as_slice(), served.etag.as_str()),
            (&b"two"[..], second.as_str()),
            "loaded on first use"
        );
    }
}
