//! [`DirBlobs`]: the repository's blobs in a directory, the layout the server keeps.
//!
//! ```text
//! ROOT/pool/<sha256>                              package files, by content
//! ROOT/repos/<repo>/<arch>/<repo>.db.tar.gz       the archives of each arch-repo
//! ROOT/repos/<repo>/<arch>/<repo>.files.tar.gz
//! ROOT/tmp/upload-<pid>-<n>                        uploads while they arrive
//! ```
//!
//! Package files enter the pool by rename after a sync; archives are replaced with
//! [`super::write_atomically_at`]. The tag of each archive (a digest of its bytes) is computed while it
//! is written and kept, so a server can answer `ETag`s without reading archives again.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::db::ArchiveKind;
use crate::name::{Arch, RepoName};
use crate::repo::{ArchiveDir, BlobStore};

/// The tag of an archive as it was written: valid while its length and time are these.
#[derive(Debug, Clone)]
struct ArchiveTag {
    len: u64,
    mtime: SystemTime,
    etag: String,
}

/// A repository's blobs in a directory.
pub struct DirBlobs {
    root: PathBuf,
    uploads: AtomicU64,
    /// Held shared while an arch-repo's directory is created and an archive written in it, and
    /// exclusively while an emptied repository directory is removed: removing one arch-repo never pulls
    /// the repository directory from under the creation of another.
    repo_dirs: RwLock<()>,
    tags: Mutex<HashMap<PathBuf, ArchiveTag>>,
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

/// A writer that hashes and counts what goes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.hasher.update(&data[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn not_found_is_ok(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl DirBlobs {
    /// Opens (creating its layout) the blob directory `root`.
    pub fn open(root: &Path) -> io::Result<DirBlobs> {
        for sub in ["pool", "repos", "tmp"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir)
                .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", dir.display())))?;
        }
        Ok(DirBlobs {
            root: root.to_owned(),
            uploads: AtomicU64::new(0),
            repo_dirs: RwLock::new(()),
            tags: Mutex::default(),
        })
    }

    /// The package file of a SHA-256.
    pub fn package_path(&self, sha256: &str) -> PathBuf {
        self.root.join("pool").join(sha256)
    }

    /// The `kind` archive of an arch-repo.
    pub fn archive_path(&self, repo: &RepoName, arch: &Arch, kind: ArchiveKind) -> PathBuf {
        let name = match kind {
            ArchiveKind::Db => format!("{repo}.db.tar.gz"),
            ArchiveKind::Files => format!("{repo}.files.tar.gz"),
        };
        self.root.join("repos").join(repo.as_str()).join(arch.as_str()).join(name)
    }

    /// The tag (a digest of the content) of the archive at `path` whose open handle is `file`, of length
    /// `len` and modification time `mtime`: as computed when it was written or, after a restart, from
    /// the file on first use.
    pub fn archive_etag(&self, path: &Path, file: &File, len: u64, mtime: SystemTime) -> io::Result<String> {
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

    fn repo_dir(&self, repo: &str) -> PathBuf {
        self.root.join("repos").join(repo)
    }

    /// Removes an arch-repo directory, then its repository's directory if that is empty now.
    fn remove_dir_of(&self, repo: &str, arch: &str) -> io::Result<()> {
        let dir = self.repo_dir(repo).join(arch);
        not_found_is_ok(fs::remove_dir_all(&dir))
            .map_err(|e| io::Error::new(e.kind(), format!("removing {}: {e}", dir.display())))?;
        self.tags.lock().unwrap_or_else(|p| p.into_inner()).retain(|path, _| !path.starts_with(&dir));
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
        let path = self.root.join("tmp").join(format!("upload-{}-{n}", std::process::id()));
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
        sync_dir(&self.root.join("pool"))
    }

    fn remove_package(&self, sha256: &str) -> io::Result<()> {
        not_found_is_ok(fs::remove_file(self.package_path(sha256)))
    }

    fn package_hashes(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.root.join("pool"))? {
            out.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(out)
    }

    fn write_archive(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
        mtime: SystemTime,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<()> {
        let path = self.archive_path(repo, arch, kind);
        let (len, digest) = {
            let _shared = self.repo_dirs.read().unwrap_or_else(|p| p.into_inner());
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)?;
            }
            let mut written = (0, Vec::new());
            super::write_atomically_at(&path, Some(mtime), |out| {
                let mut hashing = Hashing { inner: out, hasher: Sha256::new(), len: 0 };
                write(&mut hashing)?;
                written = (hashing.len, hashing.hasher.finalize().to_vec());
                Ok(())
            })
            .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))?;
            written
        };
        // The time as the file system keeps it (it may round).
        let mtime = fs::metadata(&path)?.modified()?;
        let tag = ArchiveTag { len, mtime, etag: hex::encode(&digest[..16]) };
        self.tags.lock().unwrap_or_else(|p| p.into_inner()).insert(path, tag);
        Ok(())
    }

    fn open_archive(&self, repo: &RepoName, arch: &Arch, kind: ArchiveKind) -> io::Result<Option<File>> {
        match File::open(self.archive_path(repo, arch, kind)) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn remove_archives(&self, repo: &RepoName, arch: &Arch) -> io::Result<()> {
        self.remove_dir_of(repo.as_str(), arch.as_str())
    }

    fn archive_dirs(&self) -> io::Result<Vec<ArchiveDir>> {
        let mut out = Vec::new();
        for repo in fs::read_dir(self.root.join("repos"))? {
            let repo = repo?;
            if !repo.file_type()?.is_dir() {
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
        let mut removed = 0;
        for entry in fs::read_dir(self.root.join("tmp"))? {
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
        }
        Ok(removed)
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
                        w.write_all(b"x")
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
    fn the_tag_of_an_archive_is_a_digest_of_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = DirBlobs::open(dir.path()).unwrap();
        let (repo, arch) = (RepoName::new("r").unwrap(), Arch::new("x86_64").unwrap());
        blobs
            .write_archive(&repo, &arch, ArchiveKind::Db, SystemTime::now(), &mut |w| w.write_all(b"one"))
            .unwrap();
        let path = blobs.archive_path(&repo, &arch, ArchiveKind::Db);
        let tag = |b: &DirBlobs| {
            let file = File::open(&path).unwrap();
            let meta = file.metadata().unwrap();
            b.archive_etag(&path, &file, meta.len(), meta.modified().unwrap()).unwrap()
        };
        let expected = hex::encode(&Sha256::digest(b"one")[..16]);
        assert_eq!(tag(&blobs), expected, "as written");
        let reopened = DirBlobs::open(dir.path()).unwrap();
        assert_eq!(tag(&reopened), expected, "as computed after a restart");
    }
}
