//! Downloads from a repository kept in the directory layout ([`DirBlobs`]): what a URL
//! `{repo}/{arch}/{file}` names ([`crate::repo::download`]: an archive, a package file, or either's
//! signature), opened, with what an HTTP server sends along (length, time, entity tag, media type).
//! The server answers `GET /{repo}/{arch}/{file}` with it; a tool embedding a repository behind its own
//! HTTP stack needs no more.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::name::{Arch, RepoName};
use crate::repo::{blob_err, store_err};
use crate::repo::{Download, RepoError, RepoStore, Repository};

use super::DirBlobs;

/// The bytes of a download.
#[derive(Debug)]
pub enum Content {
    /// A file opened for reading (from its start).
    File(File),
    /// An archive (or its signature) this process holds in memory, shared rather than copied.
    Memory(Arc<Vec<u8>>),
}

/// A download, opened.
#[derive(Debug)]
pub struct Opened {
    pub content: Content,
    /// Its length in bytes.
    pub len: u64,
    /// When it last changed.
    pub modified: SystemTime,
    /// Its entity tag, without quotes: a package file's SHA-256, an archive's tag
    /// ([`DirBlobs::archive_etag`]), a signature's length and time.
    pub etag: String,
    /// Its media type.
    pub content_type: &'static str,
    /// An archive or an archive's signature, rewritten in place by publishes; else a package file (or
    /// its signature), which never changes.
    pub rewritten: bool,
}

impl Opened {
    /// Whether an answer should wait for the running second to end before it sends this: an archive
    /// changed within it ([`crate::repo::changed_this_second`]).
    pub fn changed_this_second(&self, now: SystemTime) -> bool {
        self.rewritten && crate::repo::changed_this_second(self.modified, now)
    }

    /// The `Last-Modified` to announce at `now` ([`crate::repo::last_modified`] for an archive; a
    /// package file's own time).
    pub fn last_modified(&self, now: SystemTime) -> SystemTime {
        if self.rewritten {
            crate::repo::last_modified(self.modified, now)
        } else {
            self.modified
        }
    }
}

const ARCHIVE_TYPE: &str = "application/gzip";
const SIGNATURE_TYPE: &str = "application/pgp-signature";
const PACKAGE_TYPE: &str = "application/octet-stream";

/// The file at `path` opened, with its length and time; `None` when there is none.
fn open(path: &Path) -> Result<Option<(File, u64, SystemTime)>, RepoError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(blob_err(e)),
    };
    let meta = file.metadata().map_err(blob_err)?;
    Ok(Some((file, meta.len(), meta.modified().unwrap_or(UNIX_EPOCH))))
}

/// A signature file, tagged by its length and time.
fn signature(path: &Path, rewritten: bool) -> Result<Option<Opened>, RepoError> {
    let Some((file, len, modified)) = open(path)? else { return Ok(None) };
    let nanos = modified.duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    Ok(Some(Opened {
        content: Content::File(file),
        len,
        modified,
        etag: format!("sig-{len:x}-{nanos:x}"),
        content_type: SIGNATURE_TYPE,
        rewritten,
    }))
}

impl<S: RepoStore> Repository<S, DirBlobs> {
    /// The download `file` of an arch-repo when it is an archive (or an archive's signature) held in
    /// memory and current: found without blocking, no file opened. `Some(None)`: an archive's
    /// signature known not to exist. `None`: ask [`Repository::open_download`].
    pub fn held_download(&self, repo: &RepoName, arch: &Arch, file: &str) -> Option<Option<Opened>> {
        let download = crate::repo::download(repo, file)?;
        if self.archives_stale(repo, arch) {
            return None;
        }
        self.held(repo, arch, download)
    }

    fn held(&self, repo: &RepoName, arch: &Arch, download: Download<'_>) -> Option<Option<Opened>> {
        let (held, content_type) = match download {
            Download::Archive(kind) => (self.blobs().archive_in_memory(repo, arch, kind)?, ARCHIVE_TYPE),
            Download::ArchiveSignature(kind) => {
                match self.blobs().archive_signature_in_memory(repo, arch, kind)? {
                    Some(signature) => (signature, SIGNATURE_TYPE),
                    None => return Some(None),
                }
            }
            Download::File(_) | Download::FileSignature(_) => return None,
        };
        Some(Some(Opened {
            len: held.bytes.len() as u64,
            content: Content::Memory(held.bytes),
            modified: held.modified,
            etag: held.etag,
            content_type,
            rewritten: true,
        }))
    }

    /// Opens the download `file` of an arch-repo: an archive (written first when publishes deferred
    /// it; from memory when held there), a package file recorded under that name, or the signature of either. `None`: nothing of
    /// that name. Blocks: it reads the store and opens files.
    pub fn open_download(
        &self,
        repo: &RepoName,
        arch: &Arch,
        file: &str,
    ) -> Result<Option<Opened>, RepoError> {
        let Some(download) = crate::repo::download(repo, file) else { return Ok(None) };
        let kind = match download {
            Download::Archive(kind) | Download::ArchiveSignature(kind) => {
                self.current_archives(repo, arch)?;
                if let Some(held) = self.held(repo, arch, download) {
                    return Ok(held);
                }
                kind
            }
            Download::File(name) | Download::FileSignature(name) => {
                let hash = self.store().file_hash(repo, arch, name);
                let Some(sha) = hash.map_err(store_err)? else { return Ok(None) };
                if matches!(download, Download::FileSignature(_)) {
                    return signature(&self.blobs().package_signature_path(&sha), false);
                }
                let Some((file, len, modified)) = open(&self.blobs().package_path(&sha))? else {
                    return Ok(None);
                };
                let content = Content::File(file);
                let content_type = PACKAGE_TYPE;
                return Ok(Some(Opened {
                    content,
                    len,
                    modified,
                    etag: sha,
                    content_type,
                    rewritten: false,
                }));
            }
        };
        if matches!(download, Download::ArchiveSignature(_)) {
            // Rewritten with its archive, in the same step: served as the archive is.
            return signature(&self.blobs().archive_signature_path(repo, arch, kind), true);
        }
        let path = self.blobs().archive_path(repo, arch, kind);
        let Some((file, len, modified)) = open(&path)? else { return Ok(None) };
        let etag = self.blobs().archive_etag(&path, &file, len, modified).map_err(blob_err)?;
        let content = Content::File(file);
        Ok(Some(Opened { content, len, modified, etag, content_type: ARCHIVE_TYPE, rewritten: true }))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;
    use crate::repo::conformance::package_bytes;
    use crate::repo::memory::MemoryStore;
    use crate::repo::BlobStore;

    fn read(opened: Opened) -> Vec<u8> {
        match opened.content {
            Content::Memory(bytes) => bytes.to_vec(),
            Content::File(mut file) => {
                let mut out = Vec::new();
                file.read_to_end(&mut out).unwrap();
                out
            }
        }
    }

    #[test]
    fn every_download_name_opens_what_pacman_expects() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::new();
        let repo = Repository::new(
            store.clone(),
            DirBlobs::open(dir.path()).unwrap(),
            Arch::new("x86_64").unwrap(),
            crate::db::DbFormat::Current,
            chrono::Utc::now,
        )
        .with_deferred_archives();
        let (name, arch) = (RepoName::new("extra").unwrap(), Arch::new("x86_64").unwrap());
        let bytes = package_bytes("tool", "1-1", "x86_64", &["usr/bin/tool"]);
        let mut upload = repo.blobs().create_upload().unwrap();
        upload.write_all(&bytes).unwrap();
        repo.publish(&name, upload).unwrap();

        // The publish deferred the archives: nothing is served from memory until they are current.
        assert!(repo.archives_stale(&name, &arch));
        assert!(repo.held_download(&name, &arch, "extra.db").is_none());
        let db = repo.open_download(&name, &arch, "extra.db").unwrap().expect("the db");
        assert!(!repo.archives_stale(&name, &arch), "opening the db wrote it");
        assert_eq!((db.content_type, db.rewritten), ("application/gzip", true));
        let (etag, len) = (db.etag.clone(), db.len);
        let listed = read(db);
        assert_eq!(listed.len() as u64, len);
        let listing = crate::db::read_entries(&listed[..]).unwrap();
        assert_eq!(listing.len(), 1, "the db lists the package");
        // The same archive, from memory now, with the same tag.
        let held = repo.held_download(&name, &arch, "extra.db.tar.gz").unwrap().unwrap();
        assert!(matches!(held.content, Content::Memory(_)));
        assert_eq!((held.etag.as_str(), held.len), (etag.as_str(), len));
        let files = repo.open_download(&name, &arch, "extra.files").unwrap().unwrap();
        assert_eq!(files.content_type, "application/gzip");

        // The package file: by the name recorded, tagged by its SHA-256, never rewritten.
        let package = repo.open_download(&name, &arch, "tool-1-1-x86_64.pkg.tar.zst").unwrap().unwrap();
        assert_eq!(package.etag, hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)));
        assert_eq!((package.content_type, package.rewritten), ("application/octet-stream", false));
        let now = SystemTime::now();
        assert!(!package.changed_this_second(now) && package.last_modified(now) == package.modified);
        assert_eq!(read(package), bytes);

        // Unsigned: no signature, of the archive (known in memory) or of the package.
        assert!(matches!(repo.held_download(&name, &arch, "extra.db.sig"), Some(None) | None));
        assert!(repo.open_download(&name, &arch, "extra.db.sig").unwrap().is_none());
        assert!(repo.open_download(&name, &arch, "tool-1-1-x86_64.pkg.tar.zst.sig").unwrap().is_none());
        // Names that are nothing here.
        for nothing in ["other.db", "tool-2-1-x86_64.pkg.tar.zst", "", "../extra.db", "extra.db/x"] {
            assert!(repo.open_download(&name, &arch, nothing).unwrap().is_none(), "{nothing}");
        }
        let other = Arch::new("aarch64").unwrap();
        assert!(repo.open_download(&name, &other, "tool-1-1-x86_64.pkg.tar.zst").unwrap().is_none());

        // Another process over the same directory (after this one settled): nothing held, the
        // archive is opened from its file, with the same bytes and tag.
        repo.settle().unwrap();
        let later = Repository::new(
            store,
            DirBlobs::open(dir.path()).unwrap(),
            Arch::new("x86_64").unwrap(),
            crate::db::DbFormat::Current,
            chrono::Utc::now,
        );
        assert!(later.held_download(&name, &arch, "extra.db").is_none());
        let db = later.open_download(&name, &arch, "extra.db").unwrap().unwrap();
        assert!(matches!(db.content, Content::File(_)));
        assert_eq!((db.etag.as_str(), db.len), (etag.as_str(), len));
        assert_eq!(read(db), listed);
    }
}
