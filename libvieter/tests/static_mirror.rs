//! `libvieter::fs::publish_to_dir` (the `embedded-repo` example: the repository service over `DirStore`
//! and `DirBlobs::mirror`) makes a directory that a plain static web server turns into a pacman
//! mirror: real pacman syncs, installs and upgrades from it.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use libvieter::db::Database;
use libvieter::db::DbFormat;
use libvieter::fs::{publish_to_dir, FsError};
use libvieter::name::{Arch, RepoName};
use libvieter::repo::openpgp::OpenPgpSigner;
use libvieter::repo::Signer;

/// Serves the files under `root` over HTTP/1.1 on loopback, one request per connection, until the
/// process ends. Returns the base URL.
fn static_server(root: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut reader = BufReader::new(conn);
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).map(|n| n == 0).unwrap_or(true) || header == "\r\n" {
                    break;
                }
            }
            let path = line.split(' ').nth(1).unwrap_or("/").trim_start_matches('/').to_owned();
            let file = (!path.split('/').any(|c| c == ".." || c.is_empty()))
                .then(|| std::fs::read(root.join(&path)).ok())
                .flatten();
            let mut conn = reader.into_inner();
            let _ = match file {
                Some(body) => conn
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .and_then(|()| conn.write_all(&body)),
                None => conn
                    .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            };
        }
    });
    url
}

/// A zstd package with one file whose content is `text`.
fn package(dir: &Path, name: &str, version: &str, arch: &str, text: &str) -> PathBuf {
    let info = format!("pkgname = {name}\npkgver = {version}\narch = {arch}\nsize = {}\n", text.len());
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in
        [(".PKGINFO".to_owned(), info.as_bytes()), (format!("usr/share/{name}/version"), text.as_bytes())]
    {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, data).unwrap();
    }
    let path = dir.join(format!("{name}-{version}-{arch}.pkg.tar.zst"));
    std::fs::write(&path, zstd::encode_all(&b.into_inner().unwrap()[..], 3).unwrap()).unwrap();
    path
}

fn pacman(conf_dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("pacman")
        .arg("--config")
        .arg(conf_dir.join("pacman.conf"))
        .arg("--root")
        .arg(conf_dir.join("root"))
        .arg("--dbpath")
        .arg(conf_dir.join("root/var/lib/pacman"))
        .arg("--cachedir")
        .arg(conf_dir.join("cache"))
        .arg("--noconfirm")
        .args(args)
        .output()
        .expect("run pacman");
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

/// A pacman root under `work/pacman` whose `pacman.conf` has `options` and the repository `repo` at
/// `url` (`$repo/$arch` below it). Returns the directory [`pacman`] takes.
fn pacman_root(work: &Path, options: &str, repo: &RepoName, url: &str) -> PathBuf {
    let conf = work.join("pacman");
    std::fs::create_dir_all(conf.join("root/var/lib/pacman")).unwrap();
    std::fs::create_dir_all(conf.join("cache")).unwrap();
    let text = format!("[options]\nArchitecture = x86_64\n{options}\n[{repo}]\nServer = {url}/$repo/$arch\n");
    std::fs::write(conf.join("pacman.conf"), text).unwrap();
    conf
}

fn names_in(db: &Path) -> Vec<String> {
    let db = Database::read(std::fs::File::open(db).unwrap()).unwrap();
    db.iter().map(|e| e.entry.dir_name()).collect()
}

#[test]
fn a_published_directory_is_a_pacman_mirror() {
    let Some(corpus) = common::corpus() else { return };
    if !common::require_tool("pacman") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mirror = work.path().join("mirror");
    let pkgs = work.path().join("pkgs");
    std::fs::create_dir_all(&pkgs).unwrap();
    let x86 = Arch::new("x86_64").unwrap();
    let repo = RepoName::new("corpus").unwrap();
    let publish = |packages: &[PathBuf]| -> Result<(), FsError> {
        publish_to_dir(&mirror, &repo, packages, &x86, DbFormat::Current, None, chrono::Utc::now).map(drop)
    };

    // An aarch64 arch-repo first: the corpus' `any` packages then go to both arches.
    let arm = package(&pkgs, "armonly", "1-1", "aarch64", "arm\n");
    publish(&[arm]).unwrap();
    publish(&corpus).unwrap();
    let v1 = package(&pkgs, "greeter", "1.0-1", "any", "one\n");
    publish(&[v1]).unwrap();

    let arm_names = names_in(&mirror.join("corpus/aarch64/corpus.db"));
    assert!(arm_names.contains(&"armonly-1-1".to_owned()), "{arm_names:?}");
    assert!(
        arm_names.contains(&"corpus-tree-20240101-1".to_owned()),
        "any packages reach aarch64: {arm_names:?}"
    );
    assert!(arm_names.contains(&"greeter-1.0-1".to_owned()));
    assert!(!arm_names.iter().any(|n| n.starts_with("corpus-big")), "x86_64 packages stay in x86_64");
    let x86_names = names_in(&mirror.join("corpus/x86_64/corpus.files"));
    assert_eq!(x86_names.len(), corpus.len() + 1, "{x86_names:?}");
    assert!(mirror.join("corpus/x86_64/greeter-1.0-1-any.pkg.tar.zst").is_file());

    let url = static_server(mirror.clone());
    let conf = pacman_root(work.path(), "SigLevel = Never", &repo, &url);
    let (ok, out) = pacman(&conf, &["-Sy", "greeter", "corpus-tree", "corpus-split-doc"]);
    assert!(ok, "{out}");
    assert_eq!(std::fs::read_to_string(conf.join("root/usr/share/greeter/version")).unwrap(), "one\n");

    // A newer version replaces the old one (its file is gone) and pacman upgrades to it.
    let v2 = package(&pkgs, "greeter", "1.1-1", "any", "two\n");
    publish(&[v2]).unwrap();
    assert!(!mirror.join("corpus/x86_64/greeter-1.0-1-any.pkg.tar.zst").exists());
    assert!(!mirror.join("corpus/aarch64/greeter-1.0-1-any.pkg.tar.zst").exists());
    let names = names_in(&mirror.join("corpus/x86_64/corpus.db"));
    assert!(names.contains(&"greeter-1.1-1".to_owned()) && !names.contains(&"greeter-1.0-1".to_owned()));
    let (ok, out) = pacman(&conf, &["-Syu"]);
    assert!(ok, "{out}");
    assert_eq!(std::fs::read_to_string(conf.join("root/usr/share/greeter/version")).unwrap(), "two\n");

    // A bad package changes nothing.
    let junk = pkgs.join("junk-1-1-x86_64.pkg.tar.zst");
    std::fs::write(&junk, b"not a package").unwrap();
    let before = std::fs::read(mirror.join("corpus/x86_64/corpus.db.tar.gz")).unwrap();
    let v3 = package(&pkgs, "greeter", "1.2-1", "any", "three\n");
    let err = publish(&[v3, junk]).unwrap_err();
    assert!(err.to_string().contains("junk-1-1-x86_64.pkg.tar.zst"), "{err}");
    assert_eq!(std::fs::read(mirror.join("corpus/x86_64/corpus.db.tar.gz")).unwrap(), before);
    assert!(!mirror.join("corpus/x86_64/greeter-1.2-1-any.pkg.tar.zst").exists(), "nothing of the batch");

    // The mirror holds the packages its dbs list and nothing else; the metadata and pool are hidden.
    let mut files: Vec<String> = std::fs::read_dir(mirror.join("corpus/x86_64"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".pkg.tar"))
        .collect();
    files.sort();
    let mut listed: Vec<String> =
        Database::read(std::fs::File::open(mirror.join("corpus/x86_64/corpus.db")).unwrap())
            .unwrap()
            .iter()
            .map(|e| e.entry.filename.clone())
            .collect();
    listed.sort();
    assert_eq!(files, listed);
    let top: Vec<String> = std::fs::read_dir(&mirror)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(top.iter().all(|n| n == "corpus" || n.starts_with('.')), "{top:?}");
}

/// Stops the gpg-agent `pacman-key` started for a temporary keyring.
struct AgentGuard(PathBuf);

impl Drop for AgentGuard {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf").arg("--homedir").arg(&self.0).args(["--kill", "gpg-agent"]).output();
    }
}

fn pacman_key(gpgdir: &Path, args: &[&str]) {
    let out = Command::new("pacman-key").arg("--gpgdir").arg(gpgdir).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "pacman-key {args:?}: {text}");
}

/// With a signer (`embedded-repo --sign KEYFILE`), the mirror carries the signature of every package
/// and database, files published unsigned before included, and real pacman installs from it with
/// `SigLevel = Required` after trusting the key; a database signature that does not match is refused.
#[test]
fn a_signed_mirror_installs_with_siglevel_required() {
    if !["pacman", "pacman-key", "gpg", "gpgconf"].into_iter().all(common::require_tool) {
        return;
    }
    let work = tempfile::Builder::new().prefix("sm").tempdir_in("/tmp").unwrap();
    let mirror = work.path().join("mirror");
    let pkgs = work.path().join("pkgs");
    std::fs::create_dir_all(&pkgs).unwrap();
    let x86 = Arch::new("x86_64").unwrap();
    let repo = RepoName::new("signed").unwrap();
    let key = OpenPgpSigner::load_or_generate(&work.path().join("key.asc")).unwrap();
    let (public, fingerprint) = (key.public_key_armored().to_owned(), key.fingerprint().to_owned());
    let signer: Arc<dyn Signer> = Arc::new(key);

    let plain = package(&pkgs, "plain", "1-1", "x86_64", "plain\n");
    publish_to_dir(&mirror, &repo, &[plain], &x86, DbFormat::Current, None, chrono::Utc::now).unwrap();
    let arch_dir = mirror.join("signed/x86_64");
    assert!(!arch_dir.join("plain-1-1-x86_64.pkg.tar.zst.sig").exists(), "unsigned at first");
    let greeter = package(&pkgs, "greeter", "1.0-1", "any", "one\n");
    publish_to_dir(&mirror, &repo, &[greeter], &x86, DbFormat::Current, Some(signer), chrono::Utc::now)
        .unwrap();
    for file in [
        "signed.db.sig",
        "signed.files.sig",
        "greeter-1.0-1-any.pkg.tar.zst.sig",
        "plain-1-1-x86_64.pkg.tar.zst.sig",
    ] {
        assert!(arch_dir.join(file).is_file(), "{file} is in the mirror");
    }

    let gpgdir = work.path().join("gnupg");
    let _agent = AgentGuard(gpgdir.clone());
    pacman_key(&gpgdir, &["--init"]);
    let public_file = work.path().join("signed.asc");
    std::fs::write(&public_file, public).unwrap();
    pacman_key(&gpgdir, &["--add", public_file.to_str().unwrap()]);
    pacman_key(&gpgdir, &["--lsign-key", &fingerprint]);

    let url = static_server(mirror.clone());
    let options = format!("SigLevel = Required\nGPGDir = {}", gpgdir.display());
    let conf = pacman_root(work.path(), &options, &repo, &url);
    let (ok, out) = pacman(&conf, &["-Sy", "greeter", "plain"]);
    assert!(ok, "{out}");
    assert_eq!(std::fs::read_to_string(conf.join("root/usr/share/greeter/version")).unwrap(), "one\n");

    // The signature of other bytes in place of the db's: pacman refuses the database.
    let db_sig = std::fs::canonicalize(arch_dir.join("signed.db.sig")).unwrap();
    std::fs::copy(arch_dir.join("greeter-1.0-1-any.pkg.tar.zst.sig"), &db_sig).unwrap();
    let (ok, out) = pacman(&conf, &["-Syy"]);
    assert!(!ok, "a database whose signature does not match is refused: {out}");
    assert!(out.contains("signature"), "{out}");
}
