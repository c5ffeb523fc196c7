//! The blob port of a repository: package files (by SHA-256) and their detached signatures, the
//! database archives of each arch-repo with theirs, and temporary uploads.

use std::io::{self, Read, Seek, Write};
use std::time::SystemTime;

use crate::db::ArchiveKind;
use crate::name::{Arch, RepoName};

/// What writes an archive for [`BlobStore::write_archive`]: the archive's bytes to the writer it is
/// given, then its detached signature (or `None`: unsigned).
pub type ArchiveWriter<'a> = dyn FnMut(&mut dyn Write) -> io::Result<Option<Vec<u8>>> + 'a;

/// An arch-repo's archives as the blob store holds them, named as found (recovery removes those of
/// arch-repos the metadata store does not have, whatever their names).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ArchiveDir {
    pub repo: String,
    pub arch: String,
}

/// Where the bytes live. Every operation is atomic when it returns: an archive is replaced whole (a
/// reader sees the old or the new one), a package file is complete before it has its name. Package
/// files and their signatures are durable when kept; archives need not be: [`super::Repository::recover`]
/// (run before serving) rewrites every archive that is not what the store says.
pub trait BlobStore: Send + Sync {
    type Error: std::error::Error + Send + Sync + From<io::Error> + 'static;
    /// A temporary upload, written by the caller, read back by [`super::Repository::publish`]. Dropped
    /// without [`BlobStore::keep_package`], it is gone.
    type Upload: Read + Write + Seek + Send;
    /// An archive (or a package file) opened for reading.
    type Archive: Read;

    /// A new, empty upload.
    fn create_upload(&self) -> Result<Self::Upload, Self::Error>;
    /// Makes a complete upload the package file of `sha256`, durably (when that file exists already,
    /// the upload is dropped).
    fn keep_package(&self, upload: Self::Upload, sha256: &str) -> Result<(), Self::Error>;
    /// Deletes the package file of `sha256` and its signature (absent is fine). The signature goes
    /// first: what an interruption leaves is an unsigned file, which nothing references.
    fn remove_package(&self, sha256: &str) -> Result<(), Self::Error>;
    /// Every package file held (not their signatures).
    fn package_hashes(&self) -> Result<Vec<String>, Self::Error>;
    /// Every package signature held, by the hash of its package file (which may be gone: a
    /// signature kept before an interrupted publish kept its file; recovery deletes those).
    fn signature_hashes(&self) -> Result<Vec<String>, Self::Error>;
    /// The package file of `sha256`, if held.
    fn open_package(&self, sha256: &str) -> Result<Option<Self::Archive>, Self::Error>;
    /// Makes `signature` the detached signature of the package file of `sha256` (served as
    /// `FILENAME.sig`), durably, replacing one it had.
    fn keep_package_signature(&self, sha256: &str, signature: &[u8]) -> Result<(), Self::Error>;
    /// The detached signature of the package file of `sha256`, if it has one.
    fn package_signature(&self, sha256: &str) -> Result<Option<Vec<u8>>, Self::Error>;

    /// Replaces the `kind` archive of an arch-repo with what `write` writes, and gives it the
    /// modification time `mtime`; atomic. `write` returns the archive's detached signature, which
    /// replaces the old one in the same step (`REPO.db.sig`), or `None`: the archive then has no
    /// signature (an old one is removed). When `write` fails, nothing changes.
    fn write_archive(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
        mtime: SystemTime,
        write: &mut ArchiveWriter<'_>,
    ) -> Result<(), Self::Error>;
    /// Replaces (or, with `None`, removes) the signature of an existing archive alone; atomic. Used by
    /// recovery, which re-signs archives that are current.
    fn write_archive_signature(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
        signature: Option<&[u8]>,
    ) -> Result<(), Self::Error>;
    /// The detached signature of the `kind` archive of an arch-repo, if it has one.
    fn archive_signature(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
    ) -> Result<Option<Vec<u8>>, Self::Error>;
    /// The `kind` archive of an arch-repo, if there is one.
    fn open_archive(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
    ) -> Result<Option<Self::Archive>, Self::Error>;
    /// Removes both archives of an arch-repo and their signatures (absent is fine).
    fn remove_archives(&self, repo: &RepoName, arch: &Arch) -> Result<(), Self::Error>;
    /// Every arch-repo that has archives here.
    fn archive_dirs(&self) -> Result<Vec<ArchiveDir>, Self::Error>;
    /// Removes what [`BlobStore::archive_dirs`] named.
    fn remove_archive_dir(&self, dir: &ArchiveDir) -> Result<(), Self::Error>;
    /// Deletes what an interrupted process left: uploads and half-written archives. Returns how many
    /// uploads it deleted. Called at recovery, before anything else runs.
    fn clear_temporary(&self) -> Result<usize, Self::Error>;
    /// Whether archives were written to memory only so far (a store that writes them behind, as
    /// [`crate::fs::DirBlobs`] in the server's layout): what other processes read is then older.
    fn unsettled(&self) -> bool {
        false
    }
    /// Writes archives held in memory only to where other processes read them. Through this trait
    /// every archive is seen as written when [`BlobStore::write_archive`] returns; a store that writes
    /// behind settles before it reads archives back. [`super::Repository`] settles before it deletes
    /// a package file an archive written behind may still name.
    fn settle(&self) -> Result<(), Self::Error> {
        Ok(())
    }
}
