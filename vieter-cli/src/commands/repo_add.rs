//! `vieter repo-add [--md5] [--remove] <db> <pkg>...`: pacman's repo-add, offline, on libvieter.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use libvieter::db::{ArchiveKind, Database, DbFormat};
use libvieter::package::{read_package, ReadOptions};

use crate::Context;

#[derive(Debug, Args)]
pub struct RepoAddArgs {
    /// Write the pacman <= 6.0 format (with %MD5SUM%), as Debian's and older Arch's repo-add do.
    #[arg(long)]
    md5: bool,
    /// Delete the package file (and its .sig) of each replaced version, like repo-add -R.
    #[arg(long, short = 'R')]
    remove: bool,
    /// The database, REPO.db.tar.gz; REPO.files.tar.gz and the REPO.db/REPO.files links go next to it.
    db: PathBuf,
    /// Package files to add; a newer or older version of the same name replaces the present one.
    #[arg(required = true)]
    packages: Vec<PathBuf>,
}

pub fn run(ctx: &Context, args: RepoAddArgs) -> Result<(), String> {
    let shown = |p: &Path| p.display().to_string();
    let db_name = args.db.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    let repo = db_name
        .strip_suffix(".db.tar.gz")
        .ok_or_else(|| format!("{}: the database name must end in .db.tar.gz", shown(&args.db)))?;
    let dir = match args.db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let files_db = dir.join(format!("{repo}.files.tar.gz"));
    let mut db = Database::new();
    if let Some(existing) = [&files_db, &args.db].into_iter().find(|p| p.exists()) {
        let file = fs::File::open(existing).map_err(|e| format!("{}: {e}", shown(existing)))?;
        db =
            Database::read(std::io::BufReader::new(file)).map_err(|e| format!("{}: {e}", shown(existing)))?;
    }
    let format = if args.md5 { DbFormat::WithMd5 } else { DbFormat::Current };
    let options = ReadOptions { md5: args.md5, ..Default::default() };
    let mtime = chrono::Utc::now().timestamp().max(0) as u64;
    for path in &args.packages {
        let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", shown(path));
        let file = fs::File::open(path).map_err(|e| fail(&e))?;
        let pkg = read_package(std::io::BufReader::new(file), &options).map_err(|e| fail(&e))?;
        let filename = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| fail(&"not a file name"))?;
        let signature = fs::read(format!("{}.sig", path.display())).ok();
        match db.add_package(&pkg, filename, format, signature.as_deref(), mtime).map_err(|e| fail(&e))? {
            Some(old) if old.entry.filename != filename => {
                ctx.out.say(format!("replaced {} with {}", old.entry.dir_name(), pkg.info.version));
                if args.remove {
                    for f in [old.entry.filename.clone(), format!("{}.sig", old.entry.filename)] {
                        let _ = fs::remove_file(dir.join(f));
                    }
                }
            }
            Some(_) => ctx.out.say(format!("updated {}-{}", pkg.info.name, pkg.info.version)),
            None => ctx.out.say(format!("added {}-{}", pkg.info.name, pkg.info.version)),
        }
    }
    for (path, kind, link) in [(&args.db, ArchiveKind::Db, "db"), (&files_db, ArchiveKind::Files, "files")] {
        replace_file(path, |out| db.write(out, kind)).map_err(|e| format!("{}: {e}", shown(path)))?;
        let link_path = dir.join(format!("{repo}.{link}"));
        let target = path.file_name().unwrap_or_default();
        let _ = fs::remove_file(&link_path);
        std::os::unix::fs::symlink(target, &link_path).map_err(|e| format!("{}: {e}", shown(&link_path)))?;
    }
    Ok(())
}

/// Writes through a temp file in the same directory, synced, then renamed over `path`.
fn replace_file(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<&fs::File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = path.with_extension("gz.part");
    let file = fs::File::create(&tmp)?;
    let mut out = std::io::BufWriter::new(&file);
    write(&mut out)?;
    out.flush()?;
    drop(out);
    file.sync_all()?;
    fs::rename(&tmp, path)
}
