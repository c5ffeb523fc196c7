//! Hostile and broken input: every case is a typed error, never a panic, never unbounded memory.

mod common;

use std::io::Write;

use libvieter::db::Database;
use libvieter::package::{read_package, Limits, PackageError, ReadOptions};

const PKGINFO: &str = "pkgname = ok\npkgver = 1-1\narch = x86_64\nsize = 1\n";

fn header(path: &[u8], size: u64, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(kind);
    h.set_cksum();
    h
}

/// A tar with the given entries, written block by block (so invalid names can be made).
fn tar(entries: &[(&[u8], &[u8], tar::EntryType)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, data, kind) in entries {
        out.extend_from_slice(header(path, data.len() as u64, *kind).as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn regular(path: &'static str, data: &'static [u8]) -> (&'static [u8], &'static [u8], tar::EntryType) {
    (path.as_bytes(), data, tar::EntryType::Regular)
}

fn read(bytes: &[u8]) -> Result<libvieter::package::Package, PackageError> {
    read_package(bytes, &ReadOptions::default())
}

fn with_pkginfo(info: &str) -> Vec<u8> {
    let leaked: &'static str = Box::leak(info.to_owned().into_boxed_str());
    tar(&[regular(".PKGINFO", leaked.as_bytes())])
}

#[test]
fn random_bytes_and_empty_input() {
    assert!(matches!(read(b""), Err(PackageError::UnknownFormat)));
    let mut state = 0x1234_5678u32;
    for len in [1usize, 5, 100, 511, 512, 4096, 100_000] {
        let noise: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        assert!(read(&noise).is_err(), "{len} random bytes were accepted");
    }
    // Valid magic, garbage after it.
    for magic in [&[0x28u8, 0xb5, 0x2f, 0xfd][..], &[0x1f, 0x8b], b"BZh9", &[0xfd, b'7', b'z', b'X', b'Z', 0]]
    {
        let mut data = magic.to_vec();
        data.extend_from_slice(&[0x55; 600]);
        assert!(matches!(read(&data), Err(PackageError::Corrupt(_))), "garbage after {magic:?}");
    }
}

#[test]
fn missing_duplicate_and_invalid_pkginfo() {
    let no_info = tar(&[regular("usr/bin/x", b"x")]);
    assert!(matches!(read(&no_info), Err(PackageError::MissingPkgInfo)));
    let twice = tar(&[regular(".PKGINFO", PKGINFO.as_bytes()), regular(".PKGINFO", PKGINFO.as_bytes())]);
    assert!(matches!(read(&twice), Err(PackageError::DuplicatePkgInfo)));
    for (info, needle) in [
        ("pkgname = -x\npkgver = 1-1\narch = x86_64\n", "pkgname"),
        ("pkgname = x/y\npkgver = 1-1\narch = x86_64\n", "pkgname"),
        ("pkgname = x\npkgver = 1:2:3-1\narch = x86_64\n", "pkgver"),
        ("pkgname = x\npkgver = 1.0\narch = x86_64\n", "pkgrel"),
        ("pkgname = x\npkgver = 1-1\narch = x86-64\n", "arch"),
        ("pkgname = x\npkgver = 1-1\n", "arch"),
        ("pkgname = x\npkgver = 1-1\narch = any\nsize = 1e99\n", "size"),
        ("pkgname = x\npkgver = 1-1\narch = any\nsize = 184467440737095516150\n", "size"),
        ("pkgname = x\npkgver = 1-1\narch = any\nbuilddate = yesterday\n", "builddate"),
    ] {
        match read(&with_pkginfo(info)) {
            Err(PackageError::PkgInfo(e)) => assert!(e.to_string().contains(needle), "{info:?}: {e}"),
            other => panic!("{info:?}: {other:?}"),
        }
    }
    let huge = "pkgdesc = x\n".repeat(200_000);
    let huge_info = format!("{PKGINFO}{huge}");
    assert!(matches!(read(&with_pkginfo(&huge_info)), Err(PackageError::PkgInfoTooLarge { .. })));
}

#[test]
fn traversal_and_absolute_paths() {
    for path in [&b"../etc/passwd"[..], b"usr/../../etc/shadow", b"/etc/passwd", b"usr/bin/.."] {
        let data = tar(&[regular(".PKGINFO", PKGINFO.as_bytes()), (path, b"x", tar::EntryType::Regular)]);
        assert!(
            matches!(read(&data), Err(PackageError::InvalidPath { .. })),
            "{}",
            String::from_utf8_lossy(path)
        );
    }
    let bad_utf8 = tar(&[
        regular(".PKGINFO", PKGINFO.as_bytes()),
        (&b"usr/\xff\xfe"[..], b"x", tar::EntryType::Regular),
    ]);
    assert!(matches!(read(&bad_utf8), Err(PackageError::InvalidPath { .. })));
}

#[test]
fn absurd_sizes_and_long_name_bombs() {
    // A header announcing far more data than there is.
    let mut data = tar(&[regular(".PKGINFO", PKGINFO.as_bytes())]);
    data.truncate(data.len() - 1024);
    data.extend_from_slice(header(b"usr/big", 1 << 40, tar::EntryType::Regular).as_bytes());
    data.extend_from_slice(&[0u8; 4096]);
    assert!(matches!(read(&data), Err(PackageError::Corrupt(_))));

    // A GNU long name of 1 GiB is refused before anything is allocated.
    let mut bomb = header(b"././@LongLink", 1 << 30, tar::EntryType::GNULongName).as_bytes().to_vec();
    bomb.extend_from_slice(&[b'a'; 4096]);
    assert!(matches!(read(&bomb), Err(PackageError::InvalidPath { .. })));
    // Same for a PAX header.
    let mut pax = header(b"PaxHeader", 1 << 30, tar::EntryType::XHeader).as_bytes().to_vec();
    pax.extend_from_slice(&[b'9'; 4096]);
    assert!(matches!(read(&pax), Err(PackageError::PaxTooLarge { .. })));
}

#[test]
fn too_many_entries() {
    let mut entries = vec![regular(".PKGINFO", PKGINFO.as_bytes())];
    let names: Vec<&'static str> =
        (0..50).map(|i| &*Box::leak(format!("usr/f{i}").into_boxed_str())).collect();
    entries.extend(names.iter().map(|n| regular(n, b"")));
    let data = tar(&entries);
    let options =
        ReadOptions { limits: Limits { max_entries: 10, ..Limits::default() }, ..ReadOptions::default() };
    assert!(matches!(read_package(&data[..], &options), Err(PackageError::TooManyEntries { limit: 10 })));
    assert!(read(&data).is_ok());
}

#[test]
fn decompression_bomb() {
    // 256 MiB of zeros in one file, compressed to a few KiB; streamed, never materialised.
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
    encoder.write_all(&tar(&[regular(".PKGINFO", PKGINFO.as_bytes())])[..512 + 512]).unwrap();
    encoder.write_all(header(b"usr/zeros", 256 << 20, tar::EntryType::Regular).as_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        encoder.write_all(&zeros).unwrap();
    }
    encoder.write_all(&[0u8; 1024]).unwrap();
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 64 << 10, "the bomb is small: {}", bomb.len());

    let limits = Limits { max_uncompressed_size: 64 << 20, ..Limits::default() };
    let options = ReadOptions { limits, ..ReadOptions::default() };
    match read_package(&bomb[..], &options) {
        Err(PackageError::Bomb(message)) => assert!(message.contains("uncompressed"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncated_corpus_packages_fail_cleanly() {
    let Some(packages) = common::corpus() else { return };
    for path in packages.iter().filter(|p| std::fs::metadata(p).unwrap().len() < 1 << 20) {
        let bytes = std::fs::read(path).unwrap();
        assert!(read(&bytes).is_ok(), "{} reads whole", path.display());
        // A compressed stream cut anywhere is refused (the decoder checks its framing to the end). A
        // plain tar cut in the zero padding after its end-of-archive blocks is still a whole archive,
        // so plain tars are only cut within their first entries.
        let plain = path.extension().is_some_and(|e| e == "tar");
        for cut in [0, 1, 10, 100, 300, 1500, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
            if cut >= bytes.len() || (plain && cut > 2048) {
                continue;
            }
            let result = read(&bytes[..cut]);
            assert!(result.is_err(), "{} cut at {cut} was accepted", path.display());
        }
    }
}

#[test]
fn database_read_refuses_garbage() {
    assert!(Database::read(&b"not a database"[..]).is_err());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar(&[regular("foo-1-1/desc", b"%NAME%\nfoo\n\n")])).unwrap();
    let missing_fields = gz.finish().unwrap();
    assert!(Database::read(&missing_fields[..]).is_err(), "a desc without %VERSION% is refused");
    let truncated = &missing_fields[..missing_fields.len() / 2];
    assert!(Database::read(truncated).is_err());
}

/// An endless plain tar: `.PKGINFO`, then entries with 4,000-byte GNU long names, generated as read.
struct EndlessLongNames {
    buf: Vec<u8>,
    pos: usize,
    next: u64,
    produced: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::io::Read for EndlessLongNames {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            if self.next == 0 {
                self.buf.extend_from_slice(
                    header(b".PKGINFO", PKGINFO.len() as u64, tar::EntryType::Regular).as_bytes(),
                );
                self.buf.extend_from_slice(PKGINFO.as_bytes());
                self.buf.resize(1024, 0);
            } else {
                let name = format!("usr/share/{:0>3990}", self.next);
                let mut data = name.clone().into_bytes();
                data.push(0);
                let long = header(b"././@LongLink", data.len() as u64, tar::EntryType::GNULongName);
                self.buf.extend_from_slice(long.as_bytes());
                self.buf.extend_from_slice(&data);
                self.buf.resize(self.buf.len().div_ceil(512) * 512, 0);
                self.buf.extend_from_slice(
                    header(&name.as_bytes()[..100], 0, tar::EntryType::Regular).as_bytes(),
                );
            }
            self.next += 1;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        self.produced.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

#[test]
fn an_oversized_file_list_is_refused_while_it_is_read() {
    // The shape that took 4 GB in the server: 250,000 entries with 4,000-byte paths (1 GB of names).
    // With the default budget (32 MiB of files lines) the walk stops after about 8,400 of them.
    let produced = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let reader = EndlessLongNames { buf: Vec::new(), pos: 0, next: 0, produced: produced.clone() };
    match read_package(reader, &ReadOptions::default()) {
        Err(e @ PackageError::FileListTooLarge { limit }) => {
            assert_eq!(limit, 32 << 20);
            assert!(e.to_string().contains("max_file_list_bytes"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let read = produced.load(std::sync::atomic::Ordering::Relaxed);
    // Each entry is 5,120 bytes of tar for 4,001 bytes of list; a little read-ahead is allowed.
    assert!(read < (32 << 20) / 4001 * 5120 + (8 << 20), "{read} bytes were read");
    assert!(read > (32 << 20), "{read}");
}

#[test]
fn hostile_names_and_metadata_are_typed_errors() {
    let with_name = |name: &'static [u8]| {
        tar(&[regular(".PKGINFO", PKGINFO.as_bytes()), (name, b"", tar::EntryType::Regular)])
    };
    for name in [&b"usr/bin/zz\n\n%FILES%\nusr/bin/sudo"[..], b"usr/bin/a\x01", "usr/\u{2028}".as_bytes()] {
        match read(&with_name(name)) {
            Err(e @ PackageError::ForbiddenCharacter { .. }) => assert!(e.to_string().contains("U+"), "{e}"),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(name)),
        }
    }
    let long_desc = format!("{PKGINFO}pkgdesc = {}\n", "d".repeat(512 << 10));
    match read(&with_pkginfo(&long_desc)) {
        Err(PackageError::PkgInfo(e)) => {
            let message = e.to_string();
            assert!(message.contains("pkgdesc") && message.contains("65536"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    for (info, needle) in [
        (format!("pkgname = {}\npkgver = 1-1\narch = x86_64\n", "n".repeat(255)), "file name"),
        ("pkgname = x\npkgver = 1.é-1\narch = x86_64\n".to_owned(), "pkgver"),
        ("pkgname = x\npkgver = 1-1\narch = x86_64\npkgdesc = bell\x07\n".to_owned(), "U+0007"),
    ] {
        match read(&with_pkginfo(&info)) {
            Err(PackageError::PkgInfo(e)) => assert!(e.to_string().contains(needle), "{needle}: {e}"),
            other => panic!("{needle}: {other:?}"),
        }
    }
}
