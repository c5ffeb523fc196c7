//! A `repo-add` built on libvieter: `repo-add [--md5] REPO.db.tar.gz PKG...`.
//!
//! Adds (or replaces, by package name) each package in the database, writes `REPO.db.tar.gz` and
//! `REPO.files.tar.gz` atomically (temp file + rename) and points the `REPO.db` / `REPO.files` symlinks at
//! them, like pacman's `repo-add`. `--md5` writes the pacman <= 6.0 format with `%MD5SUM%`.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use libvieter::db::{ArchiveKind, Database, DbFormat};
use libvieter::package::{read_package, ReadOptions};

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("repo-add: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let md5 = args.iter().any(|a| a == "--md5");
    let mut rest = args.into_iter().filter(|a| a != "--md5");
    let usage = "usage: repo-add [--md5] REPO.db.tar.gz PKG...";
    let db_path = PathBuf::from(rest.next().ok_or(usage)?);
    let packages: Vec<PathBuf> = rest.map(PathBuf::from).collect();
    if packages.is_empty() {
        return Err(usage.into());
    }
    let db_name = file_name(&db_path)?;
    let repo = db_name
        .strip_suffix(".db.tar.gz")
        .ok_or_else(|| format!("{} must end in .db.tar.gz", db_path.display()))?;
    let dir = db_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let files_path = dir.join(format!("{repo}.files.tar.gz"));

    // The files database holds desc and files of every entry; fall back to the plain db.
    let mut db = match [&files_path, &db_path].into_iter().find(|p| p.exists()) {
        Some(existing) => {
            let f = File::open(existing).map_err(|e| format!("{}: {e}", existing.display()))?;
            Database::read(f).map_err(|e| format!("{}: {e}", existing.display()))?
        }
        None => Database::new(),
    };

    let format = if md5 { DbFormat::WithMd5 } else { DbFormat::Current };
    let options = ReadOptions { md5, ..ReadOptions::default() };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    for path in &packages {
        let f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let pkg = read_package(std::io::BufReader::new(f), &options)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let sig_path = PathBuf::from(format!("{}.sig", path.display()));
        let sig = fs::read(&sig_path).ok();
        let replaced = db
            .add_package(&pkg, &file_name(path)?, format, sig.as_deref(), now)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        match replaced {
            Some(old) => eprintln!("==> replaced {} with {}", old.entry.dir_name(), pkg.info.version),
            None => eprintln!("==> added {}-{}", pkg.info.name, pkg.info.version),
        }
    }

    write_atomically(&db_path, |w| db.write(w, ArchiveKind::Db))?;
    write_atomically(&files_path, |w| db.write(w, ArchiveKind::Files))?;
    symlink(&db_name, &dir.join(format!("{repo}.db")))?;
    symlink(&file_name(&files_path)?, &dir.join(format!("{repo}.files")))?;
    Ok(())
}

fn file_name(path: &Path) -> Result<String, String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| format!("{} has no file name", path.display()))
}

fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), String> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut out = BufWriter::new(File::create(&tmp).map_err(err)?);
    write(&mut out).map_err(err)?;
    out.flush().map_err(err)?;
    out.get_ref().sync_all().map_err(err)?;
    fs::rename(&tmp, path).map_err(err)
}

fn symlink(target: &str, link: &Path) -> Result<(), String> {
    let _ = fs::remove_file(link);
    std::os::unix::fs::symlink(target, link).map_err(|e| format!("{}: {e}", link.display()))
}
