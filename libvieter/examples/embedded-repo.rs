//! A pacman mirror in a plain directory, built with libvieter alone: `embedded-repo DIR REPO PKG...`.
//!
//! Each package goes to `DIR/REPO/<arch>/` under the name makepkg gives it, next to `REPO.db` and
//! `REPO.files` (and their `.tar.gz`); an `any` package goes to every architecture the repository has
//! (and to `x86_64`, or `--default-arch ARCH`). Running it again with a newer version of a package
//! replaces the old one. Any static web server of `DIR` is then a mirror:
//!
//! ```text
//! [REPO]
//! Server = http://host/$repo/$arch
//! ```
//!
//! All of it is [`libvieter::fs::publish_to_dir`]: libvieter's repository service
//! ([`libvieter::repo::Repository`], the server's rules) over the directory implementations of its
//! ports, [`libvieter::fs::DirStore`] (metadata in `DIR/.vieter/`) and
//! [`libvieter::fs::DirBlobs::mirror`] (the mirror layout).

use std::path::PathBuf;
use std::process::ExitCode;

use libvieter::db::DbFormat;
use libvieter::fs::publish_to_dir;
use libvieter::name::{Arch, RepoName};

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embedded-repo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(mut args: Vec<String>) -> Result<(), String> {
    let usage = "usage: embedded-repo [--default-arch ARCH] DIR REPO PKG...";
    let mut default_arch = Arch::new("x86_64").map_err(|e| e.to_string())?;
    if let Some(i) = args.iter().position(|a| a == "--default-arch") {
        let value = args.get(i + 1).ok_or(usage)?.clone();
        default_arch = Arch::new(value).map_err(|e| e.to_string())?;
        args.drain(i..i + 2);
    }
    let mut args = args.into_iter();
    let dir = PathBuf::from(args.next().ok_or(usage)?);
    let repo = RepoName::new(args.next().ok_or(usage)?).map_err(|e| e.to_string())?;
    let packages: Vec<PathBuf> = args.map(PathBuf::from).collect();
    if packages.is_empty() {
        return Err(usage.into());
    }
    let published =
        publish_to_dir(&dir, &repo, &packages, &default_arch, DbFormat::Current, chrono::Utc::now)
            .map_err(|e| e.to_string())?;
    for p in published {
        let archs: Vec<String> = p.archs.iter().map(|a| a.to_string()).collect();
        println!("{repo}/{{{}}}: {} {}", archs.join(","), p.name, p.version);
    }
    Ok(())
}
