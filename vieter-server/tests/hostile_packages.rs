//! Hostile packages against the real server and real pacman: packages are built from PKGBUILDs anyone
//! writes, and one bad package must never poison a repository for pacman. Each is refused with a 400
//! naming the problem; the good packages next to them are served, and pacman reads the whole repository
//! (`-Sy`, `-Ss`, `-F`) without a line naming the attacker.

mod common;

use common::*;

const REPO: &str = "hostile";

/// A `.PKGINFO` as makepkg writes it (plus `extra` lines at the end).
fn pkginfo(name: &str, version: &str, extra: &str) -> String {
    format!(
        "pkgname = {name}\npkgbase = {name}\npkgver = {version}\npkgdesc = package {name}\n\
         url = https://example.org\nbuilddate = 1700000000\npackager = Test <t@example.org>\nsize = 0\n\
         arch = x86_64\nlicense = MIT\n{extra}"
    )
}

fn block(out: &mut Vec<u8>, name: &[u8], data: &[u8], kind: tar::EntryType) {
    let mut h = tar::Header::new_gnu();
    let field = &mut h.as_gnu_mut().expect("gnu header").name;
    let n = name.len().min(field.len());
    field[..n].copy_from_slice(&name[..n]);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_entry_type(kind);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// A zstd package with `.PKGINFO` and the given member names written as raw bytes (no check of what
/// they contain; names over 100 bytes get a GNU long name), each with `data`.
fn raw_package(info: &str, names: &[Vec<u8>], data: &[u8]) -> Vec<u8> {
    let mut tar = Vec::new();
    block(&mut tar, b".PKGINFO", info.as_bytes(), tar::EntryType::Regular);
    for name in names {
        if name.len() > 100 {
            let mut long = name.clone();
            long.push(0);
            block(&mut tar, b"././@LongLink", &long, tar::EntryType::GNULongName);
        }
        block(&mut tar, name, data, tar::EntryType::Regular);
    }
    tar.extend_from_slice(&[0u8; 1024]);
    zstd::encode_all(&tar[..], 3).expect("zstd")
}

/// Publishes `body`; asserts a 400 whose JSON message contains every needle; returns the message.
async fn refused(
    http: &reqwest::Client,
    server: &Server,
    what: &str,
    body: Vec<u8>,
    needles: &[&str],
) -> String {
    let (status, v) = json(publish(http, &server.url, REPO, body).await).await;
    assert_eq!(status, 400, "{what}: {v}");
    let message = v["message"].as_str().unwrap_or_else(|| panic!("{what}: no message in {v}")).to_owned();
    for needle in needles {
        assert!(message.contains(needle), "{what}: {needle:?} is not in {message:?}");
    }
    message
}

#[tokio::test]
async fn hostile_packages_are_refused_and_pacman_reads_the_rest() {
    let server = Server::start(&[]);
    let http = reqwest::Client::new();

    // 1. A description pacman cannot read: 512 KiB made pacman 6.0.2 fail -Sy/-Ss on the whole repo.
    let long_desc = pkginfo("evil-desc", "1-1", &format!("pkgdesc = {}\n", "A".repeat(512 << 10)));
    let body = raw_package(&long_desc, &[b"usr/share/evil-desc/x".to_vec()], b"x");
    refused(&http, &server, "512 KiB pkgdesc", body, &["pkgdesc", "65536"]).await;

    // 2. A member name that injects lines into the files db (pacman -F usr/bin/sudo would name it).
    let injected = b"usr/bin/zz\n\n%FILES%\nusr/bin/sudo".to_vec();
    let body = raw_package(&pkginfo("evil-files", "1-1", ""), &[injected], b"x");
    refused(&http, &server, "newline in a member name", body, &["U+000A", "control character"]).await;
    // The same through a name reordered by a bidi override.
    let bidi = "usr/share/evil-bidi/\u{202e}txt.exe".as_bytes().to_vec();
    let body = raw_package(&pkginfo("evil-bidi", "1-1", ""), &[bidi], b"x");
    refused(&http, &server, "bidi override in a member name", body, &["U+202E"]).await;

    // 3. Names that make an unusable package file: 255 bytes fits a name but not
    // `{name}-1-1-x86_64.pkg.tar.zst.sig.part` in pacman's cache; 256 bytes is no name.
    let name255 = "n".repeat(255);
    let body = raw_package(&pkginfo(&name255, "1-1", ""), &[b"usr/share/n/x".to_vec()], b"x");
    refused(&http, &server, "255-byte pkgname", body, &["file name", "246"]).await;
    let name256 = "n".repeat(256);
    let body = raw_package(&pkginfo(&name256, "1-1", ""), &[b"usr/share/n/x".to_vec()], b"x");
    refused(&http, &server, "256-byte pkgname", body, &["pkgname", "255"]).await;

    // 4. Versions whose download URL does not work unescaped.
    for version in ["1.é-1", "1#2-1", "1%2F-1"] {
        let body = raw_package(&pkginfo("evil-version", version, ""), &[b"usr/share/v/x".to_vec()], b"x");
        refused(&http, &server, version, body, &["pkgver", "ASCII letters, digits"]).await;
    }

    // 5. A control character in a value that goes into desc.
    let escape = pkginfo("evil-escape", "1-1", "pkgdesc = \x1b[2J\x1b[31mred\n");
    let body = raw_package(&escape, &[b"usr/share/e/x".to_vec()], b"x");
    refused(&http, &server, "escape sequence in pkgdesc", body, &["pkgdesc", "U+001B"]).await;

    // 6. A file list too large to hold: 9,000 names of 4,000 bytes (36 MB of names, a small upload).
    let names: Vec<Vec<u8>> =
        (0..9_000).map(|i| format!("usr/share/evil-list/{i:0>3980}").into_bytes()).collect();
    let body = raw_package(&pkginfo("evil-list", "1-1", ""), &names, b"");
    assert!(body.len() < 8 << 20, "the upload is small: {} bytes", body.len());
    refused(&http, &server, "36 MB file list", body, &["file list", "33554432", "max_file_list_bytes"]).await;

    // Nothing of them was kept.
    assert!(server.pool_files().is_empty(), "refused packages are not stored: {:?}", server.pool_files());
    let tmp: Vec<_> = std::fs::read_dir(server.data.join("tmp")).expect("tmp dir").flatten().collect();
    assert!(tmp.is_empty(), "no upload left in tmp/: {tmp:?}");

    // Good packages next to them: a plain one, one with legal but tricky names, one with a
    // description at the line limit (64 KiB with its key), and one whose file name is 246 bytes long.
    let good = raw_package(&pkginfo("good", "1.0-1", ""), &[b"usr/bin/good".to_vec()], b"#!/bin/sh\n");
    let tricky_names: Vec<Vec<u8>> = [
        "usr/lib/systemd/system/system-systemd\\x2dcryptsetup.slice",
        "usr/share/tricky/données été.txt",
        "usr/share/tricky/with spaces",
        "usr/share/tricky/日本語",
    ]
    .iter()
    .map(|n| n.as_bytes().to_vec())
    .collect();
    let tricky = raw_package(&pkginfo("tricky", "2.39+r22+gf3c0f4a~rc1-1", ""), &tricky_names, b"t\n");
    let at_limit = pkginfo("wordy", "1-1", &format!("pkgdesc = wordy {}\n", "w".repeat((64 << 10) - 16)));
    let wordy = raw_package(&at_limit, &[b"usr/share/wordy/x".to_vec()], b"x");
    let name223 = format!("long{}", "l".repeat(219));
    assert_eq!(format!("{name223}-1-1-x86_64.pkg.tar.zst").len(), 246);
    let long_name = raw_package(&pkginfo(&name223, "1-1", ""), &[b"usr/share/long/x".to_vec()], b"x");
    for (what, body) in [("good", good), ("tricky", tricky), ("wordy", wordy), ("long name", long_name)] {
        let (status, v) = json(publish(&http, &server.url, REPO, body).await).await;
        assert_eq!(status, 200, "{what}: {v}");
    }
    let entries = served_entries(&http, &server.url, REPO, "x86_64").await;
    let dirs: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(dirs.len(), 4, "{dirs:?}");
    assert!(!dirs.iter().any(|d| d.starts_with("evil") || d.starts_with("nnn")), "{dirs:?}");

    if !require_tool("pacman") {
        return;
    }
    let pacman = Pacman::new(&server.url, &[REPO]);
    let (ok, out) = pacman.run(&["-Sy"]);
    assert!(ok && !out.contains("error"), "pacman -Sy: {out}");
    // Every package of the repository is read (one unreadable entry makes pacman drop the whole db).
    let (ok, out) = pacman.run(&["-Ss", "."]);
    assert!(ok && !out.contains("could not parse"), "pacman -Ss: {out}");
    for name in ["good 1.0-1", "tricky 2.39+r22+gf3c0f4a~rc1-1", "wordy 1-1", &format!("{name223} 1-1")] {
        assert!(out.contains(&format!("{REPO}/{name}")), "{name} in pacman -Ss: {out}");
    }
    assert!(out.contains(&"w".repeat(1000)), "the long description is shown");

    let (ok, out) = pacman.run(&["-Fy"]);
    assert!(ok && !out.contains("error"), "pacman -Fy: {out}");
    let (_, out) = pacman.run(&["-F", "usr/bin/sudo"]);
    assert!(!out.contains("evil"), "pacman -F usr/bin/sudo names the attacker: {out}");
    assert!(!out.contains(&format!("{REPO}/")), "no package in {REPO} owns usr/bin/sudo: {out}");
    let (ok, out) = pacman.run(&["-F", "usr/bin/good"]);
    assert!(ok && out.contains(&format!("{REPO}/good 1.0-1")), "pacman -F usr/bin/good: {out}");
    let (ok, out) = pacman.run(&["-F", "usr/share/tricky/données été.txt"]);
    assert!(ok && out.contains(&format!("{REPO}/tricky")), "pacman -F of a non-ASCII name: {out}");
    // repo-add's form of a backslash (doubled) is what pacman finds.
    let (ok, out) = pacman.run(&["-F", "usr/lib/systemd/system/system-systemd\\\\x2dcryptsetup.slice"]);
    assert!(ok && out.contains(&format!("{REPO}/tricky")), "pacman -F of an escaped backslash: {out}");

    // And the packages install: the long file name fits pacman's cache, the version's URL works.
    let (ok, out) = pacman.run(&["-S", "--noscriptlet", "good", "tricky", "wordy", &name223]);
    assert!(ok, "pacman -S: {out}");
    assert!(pacman.root().join("usr/share/tricky/données été.txt").exists());
    assert!(pacman.root().join("usr/lib/systemd/system/system-systemd\\x2dcryptsetup.slice").exists());
}
