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
//! All of it is [`libvieter::fs::publish_to_dir`], which follows the server's rules
//! ([`libvieter::repo::arches_for`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use libvieter::fs::{publish_to_dir, AddOptions, Added};
use libvieter::name::Arch;

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
    let repo = args.next().ok_or(usage)?;
    let packages: Vec<PathBuf> = args.map(PathBuf::from).collect();
    if packages.is_empty() {
        return Err(usage.into());
    }
    let options = AddOptions {
        mtime: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        ..AddOptions::default()
    };
    for (arch, added) in
        publish_to_dir(&dir, &repo, &packages, &default_arch, &options).map_err(|e| e.to_string())?
    {
        match added {
            Added::Replaced { old, name, version } => println!("{repo}/{arch}: {name} {old} -> {version}"),
            Added::Updated { name, version } | Added::New { name, version } => {
                println!("{repo}/{arch}: {name} {version}")
            }
        }
    }
    Ok(())
}
