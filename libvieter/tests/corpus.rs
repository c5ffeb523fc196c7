//! The corpus of real makepkg packages against Debian's `repo-add` (byte-identical `desc` and `files`) and
//! real `pacman` (installs every package from databases we write).

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::process::Command;

use libvieter::db::{ArchiveKind, Database, DbEntry, DbFormat};
use libvieter::package::{read_package, ReadOptions};

fn read(path: &Path) -> libvieter::package::Package {
    let options = ReadOptions { md5: true, ..ReadOptions::default() };
    read_package(std::io::BufReader::new(File::open(path).unwrap()), &options)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Runs Debian's repo-add on copies of `packages`; returns dir name → (desc, files).
fn repo_add_entries(packages: &[std::path::PathBuf]) -> BTreeMap<String, (String, Option<String>)> {
    let dir = tempfile::tempdir().unwrap();
    for p in packages {
        std::fs::copy(p, dir.path().join(file_name(p))).unwrap();
    }
    // repo-add lists file names with bsdtar, which needs a UTF-8 locale for non-ASCII names.
    let status = Command::new("bash")
        .arg("-c")
        .arg("repo-add -q ref.db.tar.gz *.pkg.tar*")
        .current_dir(dir.path())
        .env("LC_ALL", "C.UTF-8")
        .status()
        .unwrap();
    assert!(status.success(), "repo-add failed");
    let db = Database::read(File::open(dir.path().join("ref.files.tar.gz")).unwrap()).unwrap();
    db.iter().map(|e| (e.entry.dir_name(), (e.entry.desc.clone(), e.entry.files.clone()))).collect()
}

fn without_md5(desc: &str) -> String {
    desc.split_inclusive("\n\n").filter(|section| !section.starts_with("%MD5SUM%\n")).collect()
}

#[test]
fn desc_and_files_are_byte_identical_to_repo_add() {
    let Some(packages) = common::corpus() else { return };
    if !common::require_tool("repo-add") {
        return;
    }
    let reference = repo_add_entries(&packages);
    assert_eq!(reference.len(), packages.len(), "one entry per package");
    for path in &packages {
        let pkg = read(path);
        let entry = DbEntry::new(&pkg, &file_name(path), DbFormat::WithMd5, None).unwrap();
        let (ref_desc, ref_files) = reference
            .get(&entry.dir_name())
            .unwrap_or_else(|| panic!("repo-add has no entry {}", entry.dir_name()));
        assert_eq!(&entry.desc, ref_desc, "desc of {}", file_name(path));
        assert_eq!(&entry.files, ref_files, "files of {}", file_name(path));

        let current = DbEntry::new(&pkg, &file_name(path), DbFormat::Current, None).unwrap();
        assert!(ref_desc.contains("%MD5SUM%\n"));
        assert_eq!(current.desc, without_md5(ref_desc), "current format of {}", file_name(path));
        assert!(!current.desc.contains("%MD5SUM%"));
    }
}

#[test]
fn corpus_covers_what_real_packages_contain() {
    let Some(packages) = common::corpus() else { return };
    let all: Vec<_> = packages.iter().map(|p| read(p)).collect();
    let compressions: std::collections::HashSet<_> = all.iter().map(|p| p.compression).collect();
    assert_eq!(compressions.len(), 5, "every compression: {compressions:?}");
    let meta = all.iter().find(|p| p.info.name.as_str() == "corpus-metadata").unwrap();
    assert_eq!(meta.info.version.as_str(), "2:1.2.3.r45.gabc_beta+x-3.1");
    assert!(meta.info.optdepends.iter().any(|o| o == "python: for the python: bindings"));
    assert_eq!(meta.info.backup, ["etc/corpus/corpus.conf", "etc/corpus/other.conf"]);
    assert!(meta.files.iter().any(|f| f == "usr/share/corpus/données été.txt"));
    let tree = all.iter().find(|p| p.info.name.as_str() == "corpus-tree").unwrap();
    assert!(tree.files.len() > 3000);
    assert!(tree.files.iter().any(|f| f.len() > 255), "a path longer than 255 bytes (PAX)");
    assert!(tree.files.iter().any(|f| f.ends_with("also-empty/")));
    let big = all.iter().find(|p| p.info.name.as_str() == "corpus-big").unwrap();
    assert!(big.csize > 40 << 20);
    let split: Vec<_> =
        all.iter().filter(|p| p.info.base.as_ref().is_some_and(|b| b.as_str() == "corpus-split")).collect();
    assert_eq!(split.len(), 3);
    assert!(split.iter().any(|p| p.info.arch.is_any()));
}

#[test]
fn database_read_gives_back_what_was_written() {
    let Some(packages) = common::corpus() else { return };
    let mut db = Database::new();
    for path in &packages {
        db.add_package(&read(path), &file_name(path), DbFormat::Current, None, 1_700_000_000).unwrap();
    }
    for kind in [ArchiveKind::Db, ArchiveKind::Files] {
        let mut bytes = Vec::new();
        db.write(&mut bytes, kind).unwrap();
        let back = Database::read(&bytes[..]).unwrap();
        assert_eq!(back.len(), db.len());
        for (a, b) in db.iter().zip(back.iter()) {
            assert_eq!(a.entry.desc, b.entry.desc);
            match kind {
                ArchiveKind::Files => assert_eq!(a.entry.files, b.entry.files),
                ArchiveKind::Db => assert_eq!(b.entry.files, None),
            }
        }
    }
}

#[test]
fn pacman_installs_every_corpus_package_from_our_database() {
    let Some(packages) = common::corpus() else { return };
    if !common::require_tool("pacman") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let mut db = Database::new();
    let mut expected = Vec::new();
    for path in &packages {
        std::fs::copy(path, repo.join(file_name(path))).unwrap();
        let pkg = read(path);
        expected.push(format!("{} {}", pkg.info.name, pkg.info.version));
        db.add_package(&pkg, &file_name(path), DbFormat::Current, None, 1_700_000_000).unwrap();
    }
    for (name, kind) in [("corpus.db", ArchiveKind::Db), ("corpus.files", ArchiveKind::Files)] {
        db.write(&mut File::create(repo.join(name)).unwrap(), kind).unwrap();
    }
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("var/lib/pacman")).unwrap();
    let conf = dir.path().join("pacman.conf");
    std::fs::write(
        &conf,
        format!(
            "[options]\nArchitecture = x86_64\nSigLevel = Never\n[corpus]\nServer = file://{}\n",
            repo.display()
        ),
    )
    .unwrap();
    let pacman = |args: &[&str]| {
        let out = Command::new("pacman")
            .arg("--config")
            .arg(&conf)
            .arg("--root")
            .arg(&root)
            .arg("--dbpath")
            .arg(root.join("var/lib/pacman"))
            .arg("--cachedir")
            .arg(dir.path().join("cache"))
            .arg("--noconfirm")
            .args(args)
            .output()
            .unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "pacman {args:?}: {text}");
        text
    };
    pacman(&["-Sy"]);
    let names: Vec<String> = expected.iter().map(|e| e.split(' ').next().unwrap().to_owned()).collect();
    let mut args = vec!["-S", "--nodeps", "--nodeps", "--noscriptlet"];
    args.extend(names.iter().map(String::as_str));
    pacman(&args);
    let installed = pacman(&["-Q"]);
    for e in &expected {
        assert!(installed.lines().any(|l| l == e), "{e} is not installed: {installed}");
    }
    assert!(root.join("usr/share/corpus/données été.txt").exists());
    assert!(root.join("usr/share/corpus/日本語/ファイル").exists());
    assert_eq!(std::fs::metadata(root.join("usr/share/corpus-big/random.bin")).unwrap().len(), 44_040_192);
    assert!(std::fs::symlink_metadata(root.join("usr/share/corpus-tree/symlink-relative"))
        .unwrap()
        .is_symlink());
}
