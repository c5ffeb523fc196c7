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
//! With `--sign KEYFILE` every package and database is signed (`FILE.sig` next to each) with the
//! OpenPGP key in `KEYFILE` (an armored secret key without passphrase; an Ed25519 key is generated
//! there, mode 0600, when the file does not exist). Its public key is written to `DIR/REPO.asc`: add
//! it with `pacman-key --add DIR/REPO.asc` and `pacman-key --lsign-key FINGERPRINT` (printed), and the
//! mirror works with `SigLevel = Required`.
//!
//! All of it is [`libvieter::fs::publish_to_dir`]: libvieter's repository service
//! ([`libvieter::repo::Repository`], the server's rules) over the directory implementations of its
//! ports, [`libvieter::fs::DirStore`] (metadata in `DIR/.vieter/`) and
//! [`libvieter::fs::DirBlobs::mirror`] (the mirror layout).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use libvieter::db::DbFormat;
use libvieter::fs::publish_to_dir;
use libvieter::name::{Arch, RepoName};
use libvieter::repo::openpgp::OpenPgpSigner;
use libvieter::repo::Signer;

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
    let usage = "usage: embedded-repo [--default-arch ARCH] [--sign KEYFILE] DIR REPO PKG...";
    let mut option = |name: &str| -> Result<Option<String>, String> {
        let Some(i) = args.iter().position(|a| a == name) else { return Ok(None) };
        let value = args.get(i + 1).ok_or(usage)?.clone();
        args.drain(i..i + 2);
        Ok(Some(value))
    };
    let default_arch = option("--default-arch")?.unwrap_or_else(|| "x86_64".into());
    let default_arch = Arch::new(default_arch).map_err(|e| e.to_string())?;
    let key_file = option("--sign")?.map(PathBuf::from);
    let mut args = args.into_iter();
    let dir = PathBuf::from(args.next().ok_or(usage)?);
    let repo = RepoName::new(args.next().ok_or(usage)?).map_err(|e| e.to_string())?;
    let packages: Vec<PathBuf> = args.map(PathBuf::from).collect();
    if packages.is_empty() {
        return Err(usage.into());
    }
    let mut signer: Option<Arc<dyn Signer>> = None;
    if let Some(key_file) = key_file {
        let key = OpenPgpSigner::load_or_generate(&key_file).map_err(|e| e.to_string())?;
        let public = dir.join(format!("{repo}.asc"));
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&public, key.public_key_armored()))
            .map_err(|e| format!("{}: {e}", public.display()))?;
        println!("signed by {} (public key: {})", key.fingerprint(), public.display());
        signer = Some(Arc::new(key));
    }
    let published =
        publish_to_dir(&dir, &repo, &packages, &default_arch, DbFormat::Current, signer, chrono::Utc::now)
            .map_err(|e| e.to_string())?;
    for p in published {
        let archs: Vec<String> = p.archs.iter().map(|a| a.to_string()).collect();
        println!("{repo}/{{{}}}: {} {}", archs.join(","), p.name, p.version);
    }
    Ok(())
}
