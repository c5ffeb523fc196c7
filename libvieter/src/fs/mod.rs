//! Repositories in plain directories: the file-system adapter of libvieter (feature `fs`).
//!
//! Everything else in libvieter works on bytes and values; this module is where a small tool that needs
//! no server touches the disk. It holds:
//! - [`write_atomically`]: the one way files are replaced (temp file in the same directory, synced,
//!   renamed over the target, directory synced), so a reader or a crash sees the old or the new file;
//! - [`repo_add`]: pacman's `repo-add` (one database file pair, packages wherever they are);
//! - [`publish_to_dir`]: a whole static mirror, `DIR/REPO/<arch>/` with the packages and their
//!   databases: the repository service over [`DirStore`] and [`DirBlobs::mirror`];
//! - with the `repository` feature, the directory implementations of the repository ports:
//!   [`DirBlobs`] (package files by hash, archives, uploads: what the server uses) and [`DirStore`]
//!   (the metadata in one file, for a single process that wants no database), and the downloads of
//!   an arch-repo in that layout opened with what HTTP sends along ([`Opened`]:
//!   `Repository::open_download`, `Repository::held_download`);
//! - with the `builds` feature, [`LogDir`]: build logs as files (the build service's log store);
//! - with the `openpgp` feature, keys on disk: a signing key generated once and kept
//!   (`OpenPgpSigner::load_or_generate`), packagers' keys read from a directory
//!   (`TrustedKeys::load_dir`) and [`KeyRing`], the current and retired signing keys;
//! - [`write_secret`]: a generated secret kept with mode 0600.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::db::{ArchiveKind, Database, DbError, DbFormat, StoredEntry};
#[cfg(feature = "repository")]
use crate::name::Arch;
use crate::package::{read_package, Package, PackageError, ReadOptions};

#[cfg(feature = "repository")]
mod blobs;
#[cfg(feature = "repository")]
mod download;
#[cfg(feature = "openpgp")]
mod keys;
#[cfg(feature = "builds")]
mod logs;
#[cfg(feature = "repository")]
mod store;

#[cfg(feature = "repository")]
pub use blobs::{DirBlobs, DirUpload};
#[cfg(feature = "repository")]
pub use download::{Content, Opened};
#[cfg(feature = "openpgp")]
pub use keys::{KeyRing, RemoveKeyError};
#[cfg(feature = "builds")]
pub use logs::LogDir;
#[cfg(feature = "repository")]
pub use store::{DirStore, DirStoreError};

/// Why a directory operation failed; each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path}: {source}")]
    Package { path: String, source: PackageError },
    #[error("{path}: {source}")]
    Db { path: String, source: DbError },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
    /// The repository refused the package or its storage failed.
    #[cfg(feature = "repository")]
    #[error("{path}: {source}")]
    Repository { path: String, source: crate::repo::RepoError },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FsError + '_ {
    move |source| FsError::Io { path: path.display().to_string(), source }
}

/// Replaces `path` with what `write` writes: into `.{name}.tmp` next to it, flushed and synced, renamed
/// over `path`, then the directory synced. A crash leaves the old file or the new one, never a mix.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("hello.txt");
/// libvieter::fs::write_atomically(&path, |w| std::io::Write::write_all(w, b"hello")).unwrap();
/// assert_eq!(std::fs::read(&path).unwrap(), b"hello");
/// ```
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&File>) -> io::Result<()>,
) -> io::Result<()> {
    write_atomically_at(path, None, write)
}

/// [`write_atomically`], the new file's modification time set to `mtime` (when given) before it is
/// synced and renamed: a reader never sees the new content with another time.
pub fn write_atomically_at(
    path: &Path,
    mtime: Option<std::time::SystemTime>,
    write: impl FnOnce(&mut BufWriter<&File>) -> io::Result<()>,
) -> io::Result<()> {
    replace(path, mtime, true, write)
}

/// The directory of `path` and the hidden temporary name a new `path` is written under in it.
fn temporary_beside(path: &Path) -> io::Result<(&Path, PathBuf)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((dir, dir.join(format!(".{name}.tmp"))))
}

/// Writes `bytes` as the new file `path`, readable by its owner only (mode 0600), atomically and
/// durably (a temporary file synced and renamed, the directory synced): for a secret a program makes
/// once and keeps (a signing key, an API key). A reader or a crash sees no file or the whole secret.
pub fn write_secret(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let (dir, tmp) = temporary_beside(path)?;
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// [`write_atomically_at`]; with `durable` false, nothing is synced: a reader sees the old file or the
/// new one, but after a crash the file may be old, or new and incomplete. For files remade from durable
/// state at every start (the archives of [`DirBlobs`], which recovery compares and rewrites).
pub(crate) fn replace(
    path: &Path,
    mtime: Option<std::time::SystemTime>,
    durable: bool,
    write: impl FnOnce(&mut BufWriter<&File>) -> io::Result<()>,
) -> io::Result<()> {
    let (dir, tmp) = temporary_beside(path)?;
    let result = (|| {
        let file = File::create(&tmp)?;
        let mut out = BufWriter::with_capacity(1 << 20, &file);
        write(&mut out)?;
        out.flush()?;
        drop(out);
        if let Some(mtime) = mtime {
            file.set_modified(mtime)?;
        }
        if durable {
            file.sync_all()?;
        }
        let exchanged = move_into_place(&tmp, path)?;
        if durable {
            File::open(dir)?.sync_all()?;
        }
        if exchanged {
            // The old file, now under the temporary name. Should this fail, the next write of `path`
            // truncates it.
            let _ = fs::remove_file(&tmp);
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Puts `tmp` at `path` in one step: a reader sees the old file or the new one. Returns whether the two
/// were exchanged (the old file is then at `tmp`) rather than `tmp` renamed over `path`.
///
/// Renaming over an existing file makes ext4 (its default `auto_da_alloc`) allocate and start writing
/// the new file's data inside the rename: 5–9 ms for a 4 MiB archive measured on the CI machines (the
/// largest single cost of a publish into 10,000 packages). An exchange (`renameat2(RENAME_EXCHANGE)`)
/// is as atomic and does not; where it is not supported, or `path` does not exist yet, a rename.
fn move_into_place(tmp: &Path, path: &Path) -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        use rustix::io::Errno;
        match renameat_with(CWD, tmp, CWD, path, RenameFlags::EXCHANGE) {
            Ok(()) => return Ok(true),
            // `path` is not there yet, or the file system cannot exchange: rename.
            Err(Errno::NOENT | Errno::INVAL | Errno::NOSYS | Errno::NOTSUP) => {}
            Err(e) => return Err(e.into()),
        }
    }
    fs::rename(tmp, path)?;
    Ok(false)
}

/// How [`repo_add`] and [`publish_to_dir`] write databases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddOptions {
    /// `with_md5` for pacman <= 6.0 (the packages are then also hashed with MD5).
    pub format: DbFormat,
    /// Delete the package file (and its `.sig`) of each replaced version (`repo-add -R`).
    pub remove_replaced: bool,
    /// Modification time written into the database entries' tar headers (seconds since 1970).
    pub mtime: u64,
}

/// What adding one package did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// A new package name.
    New { name: String, version: String },
    /// Replaced another version (`old` is the replaced entry's `name-version`).
    Replaced { old: String, name: String, version: String },
    /// The same file name again: its entry was rewritten.
    Updated { name: String, version: String },
}

/// pacman's `repo-add`: adds (or replaces, by name) each package in `REPO.db.tar.gz`, writes it and
/// `REPO.files.tar.gz` atomically and points the `REPO.db` / `REPO.files` symlinks at them. A package's
/// `FILE.sig` next to it goes into its entry as `%PGPSIG%` when the format embeds signatures
/// ([`DbFormat::embeds_signature`]: `with_md5`, as repo-add 6.0.2; not `current`, as pacman 6.1's
/// repo-add without `--include-sigs`). Nothing is written when any package is refused.
pub fn repo_add(db_path: &Path, packages: &[PathBuf], options: &AddOptions) -> Result<Vec<Added>, FsError> {
    let shown = db_path.display().to_string();
    let db_name = db_path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    let repo = db_name.strip_suffix(".db.tar.gz").ok_or_else(|| FsError::Invalid {
        path: shown.clone(),
        reason: "the database name must end in .db.tar.gz".into(),
    })?;
    let dir = match db_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let files_path = dir.join(format!("{repo}.files.tar.gz"));
    // The files database holds desc and files of every entry; fall back to the plain db.
    let mut db = match [&files_path, &db_path.to_path_buf()].into_iter().find(|p| p.exists()) {
        Some(existing) => read_db(existing)?,
        None => Database::new(),
    };
    let mut added = Vec::new();
    let mut replaced_files = Vec::new();
    for path in packages {
        let (package, filename) = read_package_file(path, options.format)?;
        let signature = fs::read(format!("{}.sig", path.display())).ok();
        let old = db.add_package(&package, &filename, options.format, signature.as_deref(), options.mtime);
        let old = old.map_err(|source| FsError::Db { path: path.display().to_string(), source })?;
        added.push(describe(old.as_ref(), &package, &filename, &mut replaced_files));
    }
    for (path, kind) in [(db_path, ArchiveKind::Db), (files_path.as_path(), ArchiveKind::Files)] {
        write_atomically(path, |out| db.write(out, kind)).map_err(io_err(path))?;
        let link = dir.join(format!("{repo}.{}", if kind == ArchiveKind::Db { "db" } else { "files" }));
        symlink(path, &link)?;
    }
    if options.remove_replaced {
        for f in replaced_files {
            for name in [f.clone(), format!("{f}.sig")] {
                let _ = fs::remove_file(dir.join(name));
            }
        }
    }
    Ok(added)
}

fn describe(
    old: Option<&StoredEntry>,
    package: &Package,
    filename: &str,
    replaced_files: &mut Vec<String>,
) -> Added {
    let (name, version) = (package.info.name.to_string(), package.info.version.to_string());
    match old {
        Some(old) if old.entry.filename != filename => {
            replaced_files.push(old.entry.filename.clone());
            Added::Replaced { old: old.entry.dir_name(), name, version }
        }
        Some(_) => Added::Updated { name, version },
        None => Added::New { name, version },
    }
}

fn read_db(path: &Path) -> Result<Database, FsError> {
    let file = File::open(path).map_err(io_err(path))?;
    Database::read(io::BufReader::new(file))
        .map_err(|source| FsError::Db { path: path.display().to_string(), source })
}

fn read_package_file(path: &Path, format: DbFormat) -> Result<(Package, String), FsError> {
    let shown = || path.display().to_string();
    let file = File::open(path).map_err(io_err(path))?;
    let options = ReadOptions { md5: format == DbFormat::WithMd5, ..ReadOptions::default() };
    let package = read_package(io::BufReader::with_capacity(256 * 1024, file), &options)
        .map_err(|source| FsError::Package { path: shown(), source })?;
    let filename = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| FsError::Invalid { path: shown(), reason: "not a file name".into() })?
        .to_owned();
    Ok((package, filename))
}

fn symlink(target: &Path, link: &Path) -> Result<(), FsError> {
    let target_name = target.file_name().unwrap_or_default();
    let _ = fs::remove_file(link);
    std::os::unix::fs::symlink(target_name, link).map_err(io_err(link))
}

/// Publishes `packages` into the static mirror at `dir` with the [`crate::repo::Repository`]'s rules:
/// the blobs are [`DirBlobs::mirror`] (each package in `dir/REPO/<arch>/` under the name makepkg gives
/// it, next to `REPO.db` and `REPO.files`), the metadata a [`DirStore`] in `dir/.vieter/`. An `any`
/// package goes to every architecture the repository has (and `default_arch`); a package replaces the
/// one of the same name, whose file is deleted. Every package is read first: one that is refused
/// changes nothing. With a `signer`, every package file and database gets its detached signature next
/// to it (`FILE.sig`, and `REPO.db.sig`/`REPO.files.sig`), what pacman's `SigLevel = Required` checks;
/// files published unsigned earlier are signed too. `clock` gives the publication times
/// (`chrono::Utc::now`).
#[cfg(feature = "repository")]
pub fn publish_to_dir(
    dir: &Path,
    repo: &crate::name::RepoName,
    packages: &[PathBuf],
    default_arch: &Arch,
    format: DbFormat,
    signer: Option<std::sync::Arc<dyn crate::repo::Signer>>,
    clock: impl crate::builds::Clock + 'static,
) -> Result<Vec<crate::api::PublishResult>, FsError> {
    use crate::repo::{BlobStore, Repository};
    for path in packages {
        read_package_file(path, format)?;
    }
    let meta = dir.join(".vieter");
    fs::create_dir_all(&meta).map_err(io_err(&meta))?;
    let meta = meta.join("repository");
    let store = DirStore::open(&meta)
        .map_err(|e| FsError::Invalid { path: meta.display().to_string(), reason: e.to_string() })?;
    let blobs = DirBlobs::mirror(dir).map_err(io_err(dir))?;
    let mut repository = Repository::new(store, blobs, default_arch.clone(), format, clock);
    if let Some(signer) = signer {
        repository = repository.with_signer(signer);
    }
    let failed = |path: &Path| {
        let path = path.display().to_string();
        move |source| FsError::Repository { path, source }
    };
    repository.recover().map_err(failed(dir))?;
    let mut published = Vec::new();
    for path in packages {
        let mut upload = repository.blobs().create_upload().map_err(io_err(dir))?;
        io::copy(&mut File::open(path).map_err(io_err(path))?, &mut upload).map_err(io_err(path))?;
        published.push(repository.publish(repo, upload).map_err(failed(path))?);
    }
    Ok(published)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_is_new_at_once_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo.db.tar.gz");
        // Created (nothing to exchange with), then replaced twice (exchanged where the system can).
        for content in [&b"first"[..], b"second", b"third"] {
            replace(&path, None, false, |w| std::io::Write::write_all(w, content)).unwrap();
            assert_eq!(fs::read(&path).unwrap(), content);
            let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(names, ["repo.db.tar.gz"], "only the file itself is left");
        }
        // A reader holding the old file keeps reading the old content; a new open sees the new one.
        let held = File::open(&path).unwrap();
        write_atomically(&path, |w| std::io::Write::write_all(w, b"fourth")).unwrap();
        assert_eq!(io::read_to_string(held).unwrap(), "third");
        assert_eq!(fs::read(&path).unwrap(), b"fourth");
    }

    #[test]
    fn an_atomic_write_that_fails_leaves_the_old_file_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomically(&path, |w| w.write_all(b"old")).unwrap();
        let failed = write_atomically(&path, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, ["f"]);
    }
}
