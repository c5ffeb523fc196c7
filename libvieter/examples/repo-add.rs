//! A `repo-add` built on libvieter: `repo-add [--md5] REPO.db.tar.gz PKG...`.
//!
//! Adds (or replaces, by package name) each package in the database, writes `REPO.db.tar.gz` and
//! `REPO.files.tar.gz` atomically and points the `REPO.db` / `REPO.files` symlinks at them, like pacman's
//! `repo-add`. `--md5` writes the pacman <= 6.0 format with `%MD5SUM%`. All of it is
//! [`libvieter::fs::repo_add`], the same code as `vieter repo-add`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use libvieter::db::DbFormat;
use libvieter::fs::{repo_add, AddOptions, Added};

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
    let options = AddOptions {
        format: if md5 { DbFormat::WithMd5 } else { DbFormat::Current },
        remove_replaced: false,
        mtime: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    };
    for added in repo_add(&db_path, &packages, &options).map_err(|e| e.to_string())? {
        match added {
            Added::Replaced { old, version, .. } => eprintln!("==> replaced {old} with {version}"),
            Added::Updated { name, version } | Added::New { name, version } => {
                eprintln!("==> added {name}-{version}")
            }
        }
    }
    Ok(())
}
