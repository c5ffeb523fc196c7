//! Member names that are legal but need care (backslashes, non-ASCII letters, spaces, long names in PAX
//! and GNU headers, directories) against Debian's real `repo-add`: our `files` and `desc` entries must be
//! byte-identical to the ones it writes in a UTF-8 locale. Also what it writes under the C locale, which
//! is why the UTF-8 form is the one kept (see the docs of `libvieter::package`).

mod common;

use std::path::Path;
use std::process::Command;

use libvieter::db::{Database, DbEntry, DbFormat};
use libvieter::package::{read_package, ReadOptions};

const PKGINFO: &str = "pkgname = parity\npkgbase = parity\npkgver = 1.0+r2~x-1\npkgdesc = names   that\tneed care\n\
url = https://example.org\nbuilddate = 1700000000\npackager = Test <t@example.org>\nsize = 0\narch = any\nlicense = MIT\n";

/// The names in the package, as bytes in the archive. `/` at the end: a directory.
const NAMES: &[&str] = &[
    "usr/",
    "usr/lib/",
    "usr/lib/systemd/",
    "usr/lib/systemd/system/",
    "usr/lib/systemd/system/system-systemd\\x2dcryptsetup.slice",
    "usr/lib/systemd/system/dev-disk-by\\x2dlabel-My\\x20Disk.device",
    "usr/share/",
    "usr/share/parity/",
    "usr/share/parity/a b/",
    "usr/share/parity/a b/two  spaces and trailing ",
    "usr/share/parity/données été.txt",
    "usr/share/parity/日本語/",
    "usr/share/parity/日本語/ファイル",
    "usr/share/parity/Ωmega\\ünïcode\\",
    "usr/share/parity/back\\\\slashes\\\\",
    "usr/share/parity/x",
    "usr/share/parity/x!",
    "usr/share/parity/x[y",
    "usr/share/parity/x\\",
    "usr/share/parity/x\\!",
    "usr/share/parity/x]y",
    "usr/share/parity/X",
    "usr/share/parity/~tilde#hash%percent'quote\"dq",
    "usr/share/parity/.hidden-in-a-directory",
    // A directory whose header name has no trailing slash.
    "usr/share/parity/noslash-dir",
];

/// Names longer than a ustar header holds: one through a PAX `path` record, one through a GNU long name.
fn long_names() -> (String, String) {
    let pax = format!("usr/share/parity/pax-été-\\{}", "p".repeat(150));
    let gnu = format!("usr/share/parity/gnu-日本-\\{}", "g".repeat(150));
    (pax, gnu)
}

fn block_pad(out: &mut Vec<u8>) {
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn header(name: &[u8], size: u64, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    let field = &mut h.as_gnu_mut().expect("gnu header").name;
    let n = name.len().min(field.len());
    field[..n].copy_from_slice(&name[..n]);
    h.set_size(size);
    h.set_mode(if kind == tar::EntryType::Directory { 0o755 } else { 0o644 });
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(kind);
    h.set_cksum();
    h
}

fn entry(out: &mut Vec<u8>, name: &[u8], data: &[u8], kind: tar::EntryType) {
    out.extend_from_slice(header(name, data.len() as u64, kind).as_bytes());
    out.extend_from_slice(data);
    block_pad(out);
}

/// A PAX record `LEN key=value\n`, LEN counting the whole record.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let base = 1 + key.len() + 1 + value.len() + 1;
    let mut len = base + 1;
    while len.to_string().len() + base != len {
        len = len.to_string().len() + base;
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    assert_eq!(r.len(), len);
    r
}

/// The package: `.PKGINFO` first, then every name (makepkg's order does not matter to either side).
fn package() -> Vec<u8> {
    let mut tar = Vec::new();
    entry(&mut tar, b".PKGINFO", PKGINFO.as_bytes(), tar::EntryType::Regular);
    for name in NAMES {
        let kind = if name.ends_with('/') || name.ends_with("noslash-dir") {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        };
        entry(&mut tar, name.as_bytes(), if kind == tar::EntryType::Regular { b"x\n" } else { b"" }, kind);
    }
    let (pax, gnu) = long_names();
    entry(&mut tar, b"PaxHeaders/long", &pax_record("path", pax.as_bytes()), tar::EntryType::XHeader);
    entry(&mut tar, b"truncated-by-pax", b"pax\n", tar::EntryType::Regular);
    let mut gnu_data = gnu.clone().into_bytes();
    gnu_data.push(0);
    entry(&mut tar, b"././@LongLink", &gnu_data, tar::EntryType::GNULongName);
    entry(&mut tar, &gnu.as_bytes()[..100], b"gnu\n", tar::EntryType::Regular);
    tar.extend_from_slice(&[0u8; 1024]);
    zstd::encode_all(&tar[..], 3).expect("zstd")
}

/// Runs repo-add on `file` in `dir` with `LC_ALL=locale`; returns (desc, files) of its one entry.
fn repo_add(dir: &Path, file: &str, locale: &str) -> (String, String) {
    let db = format!("ref-{}.db.tar.gz", locale.replace('.', "-"));
    let out = Command::new("repo-add")
        .args(["-q", &db, file])
        .current_dir(dir)
        .env_remove("LANG")
        .env_remove("LANGUAGE")
        .env("LC_ALL", locale)
        .output()
        .expect("run repo-add");
    assert!(out.status.success(), "repo-add under {locale}: {}", String::from_utf8_lossy(&out.stderr));
    let files_db = dir.join(db.replace(".db.", ".files."));
    let db = Database::read(std::fs::File::open(files_db).expect("files db")).expect("repo-add's db parses");
    let entry = db.iter().next().expect("one entry");
    assert_eq!(db.len(), 1);
    (entry.entry.desc.clone(), entry.entry.files.clone().expect("files entry"))
}

/// What bsdtar writes for a line under the C locale: every non-ASCII byte as `\ooo`.
fn c_locale_escape(line: &str) -> String {
    let mut out = String::new();
    for b in line.bytes() {
        if b.is_ascii() {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\{b:03o}"));
        }
    }
    out
}

#[test]
fn files_entry_is_byte_identical_to_repo_add() {
    if !common::require_tool("repo-add") {
        return;
    }
    let bytes = package();
    let options = ReadOptions { md5: true, ..ReadOptions::default() };
    let pkg = read_package(&bytes[..], &options).expect("the package is accepted");
    let filename = pkg.filename();
    assert_eq!(filename, "parity-1.0+r2~x-1-any.pkg.tar.zst");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(&filename), &bytes).expect("write package");
    let ours = DbEntry::new(&pkg, &filename, DbFormat::WithMd5, None).expect("entry");
    let our_files = ours.files.clone().expect("files");

    // Sanity of the fixture: every kind of name is in the list, escaped where bsdtar escapes.
    for needle in [
        "usr/lib/systemd/system/system-systemd\\\\x2dcryptsetup.slice\n",
        "usr/share/parity/données été.txt\n",
        "usr/share/parity/a b/two  spaces and trailing \n",
        "usr/share/parity/日本語/\n",
        "usr/share/parity/noslash-dir/\n",
        "usr/share/parity/.hidden-in-a-directory\n",
    ] {
        assert!(our_files.contains(needle), "{needle:?} in {our_files}");
    }
    assert!(our_files.contains(&long_names().0.replace('\\', "\\\\")));
    assert!(our_files.contains(&long_names().1.replace('\\', "\\\\")));

    let (desc, files) = repo_add(dir.path(), &filename, "C.UTF-8");
    // The one deliberate difference: a directory whose header name lacks the trailing `/` (makepkg
    // always writes it) is listed by bsdtar as it is; we add the `/`, as libalpm does when it lists a
    // package's files itself, so `pacman -F` knows it is a directory.
    let dir_slash =
        |list: String| list.replace("usr/share/parity/noslash-dir\n", "usr/share/parity/noslash-dir/\n");
    let files = dir_slash(files);
    assert_eq!(our_files, files, "files entry (ours, then repo-add's under C.UTF-8)");
    assert_eq!(ours.desc, desc, "desc entry");

    // Under the C locale repo-add writes every non-ASCII byte in octal (and sorts those lines anew);
    // the ASCII-only lines are the same. This is the locale-dependent form we do not copy.
    let (_, c_files) = repo_add(dir.path(), &filename, "C");
    let c_files = dir_slash(c_files);
    let mut escaped: Vec<String> = our_files.lines().map(c_locale_escape).collect();
    escaped.sort();
    escaped.dedup();
    let c_lines: Vec<&str> = c_files.lines().collect();
    assert_eq!(c_lines, escaped, "repo-add under C = our list with non-ASCII bytes in octal");
    assert!(c_files.contains("donn\\303\\251es \\303\\251t\\303\\251.txt"), "{c_files}");
}

#[test]
fn refused_names_are_the_ones_repo_add_would_escape_or_hide() {
    // What repo-add writes for them (bsdtar's escaping) is harmless in its files db, but the names are
    // refused: pacman writes raw names into the local db when installing.
    for name in [
        "usr/bin/zz\n\n%FILES%\nusr/bin/sudo",
        "usr/bin/a\tb",
        "usr/share/ls\u{2028}x",
        "usr/share/\u{202e}txt.exe",
    ] {
        let mut tar = Vec::new();
        entry(&mut tar, b".PKGINFO", PKGINFO.as_bytes(), tar::EntryType::Regular);
        entry(&mut tar, name.as_bytes(), b"", tar::EntryType::Regular);
        tar.extend_from_slice(&[0u8; 1024]);
        let err = read_package(&tar[..], &ReadOptions::default()).expect_err(name);
        assert!(
            matches!(err, libvieter::package::PackageError::ForbiddenCharacter { .. }),
            "{name:?}: {err}"
        );
    }
}

/// Runs gpg in a temporary home (`--batch`); its stdout.
fn gpg(home: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("gpg")
        .arg("--homedir")
        .arg(home)
        .args(["--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""])
        .args(args)
        .output()
        .expect("run gpg");
    assert!(out.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn desc_with_a_signature_is_byte_identical_to_repo_add_sign() {
    if !(common::require_tool("repo-add") && common::require_tool("gpg")) {
        return;
    }
    // A temporary keyring with one Ed25519 key: it signs the package (FILE.sig next to it, as makepkg
    // --sign leaves it) and repo-add --sign signs its db with it.
    let home = tempfile::Builder::new().prefix("gpg").tempdir_in("/tmp").expect("temp dir");
    gpg(home.path(), &["--quick-gen-key", "Parity <parity@example.org>", "ed25519", "sign", "never"]);
    let bytes = package();
    let pkg =
        read_package(&bytes[..], &ReadOptions { md5: true, ..ReadOptions::default() }).expect("package");
    let filename = pkg.filename();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join(&filename);
    std::fs::write(&file, &bytes).expect("write package");
    let sig_path = dir.path().join(format!("{filename}.sig"));
    let (sig_arg, file_arg) = (sig_path.to_str().expect("UTF-8"), file.to_str().expect("UTF-8"));
    gpg(home.path(), &["--detach-sign", "--output", sig_arg, file_arg]);
    let sig = std::fs::read(&sig_path).expect("the signature");

    let out = Command::new("repo-add")
        .args(["-q", "--sign", "ref.db.tar.gz", &filename])
        .current_dir(dir.path())
        .env("GNUPGHOME", home.path())
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("run repo-add");
    let _ = Command::new("gpgconf").arg("--homedir").arg(home.path()).args(["--kill", "gpg-agent"]).output();
    assert!(out.status.success(), "repo-add --sign: {}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("ref.db.tar.gz.sig").exists(), "repo-add signed its db");
    let db = Database::read(std::fs::File::open(dir.path().join("ref.db.tar.gz")).expect("db")).expect("db");
    let theirs = &db.iter().next().expect("one entry").entry.desc;
    assert!(theirs.contains("%PGPSIG%\n"), "{theirs}");

    let ours = DbEntry::new(&pkg, &filename, DbFormat::WithMd5, Some(&sig)).expect("entry");
    assert_eq!(&ours.desc, theirs, "desc with %PGPSIG% (ours, then repo-add --sign's)");
    // pacman >= 6.1's repo-add leaves the signature out unless given --include-sigs: so do we.
    let current = DbEntry::new(&pkg, &filename, DbFormat::Current, Some(&sig)).expect("entry");
    assert!(!current.desc.contains("%PGPSIG%"), "{}", current.desc);
}
