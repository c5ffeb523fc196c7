//! Reading package archives (`.pkg.tar.*`).
//!
//! [`read_package`] takes any [`Read`] and, in one streaming pass with bounded memory, detects the
//! compression from the magic bytes, walks the tar stream, parses `.PKGINFO`, collects the file list and
//! computes the compressed size, SHA-256 and (optionally) MD5 of the archive bytes. File contents are
//! never held in memory; limits in [`Limits`] bound everything else.
//!
//! # Member names and the `files` entry
//!
//! repo-add 6.0.2 writes the `%FILES%` list as `bsdtar --exclude='^.*' -tf pkg | LC_ALL=C sort -u`.
//! bsdtar prints a name through `safe_fprintf` (libarchive `tar/util.c`): a character the locale finds
//! printable is copied, anything else (and every `\`) is escaped by `bsdtar_expand_char`: `\\`, `\n`,
//! `\t`, `\a` `\b` `\f` `\r` `\v`, other bytes as `\ooo` octal. [`Package::files`] holds the names as
//! they go into the `files` entry, decided per character class:
//!
//! - ASCII control characters (U+0000–U+001F, U+007F) in any member name: the package is refused
//!   ([`PackageError::ForbiddenCharacter`]). repo-add's escaping keeps the `files` entry intact, but
//!   libalpm writes the raw names into the local db when the package is installed, where a `\n` ends the
//!   `%FILES%` line, so such a package corrupts every system that installs it; no real package has one.
//! - `\` is legal and used (systemd unit names such as `system-systemd\x2dcryptsetup.slice`): it is
//!   written as bsdtar writes it, doubled (`system-systemd\\x2dcryptsetup.slice`, checked against real
//!   repo-add). The list is sorted bytewise over the written (escaped) names, as `LC_ALL=C sort -u` sorts
//!   bsdtar's output.
//! - Other ASCII (space included) is copied as it is.
//! - A directory gets a trailing `/` if its header name has none (makepkg always writes one). bsdtar would
//!   list it without; libalpm adds the `/` when it lists a package's files itself, and `pacman -F` needs
//!   it to tell a directory from a file. This is the one deliberate difference from repo-add's list.
//! - Non-ASCII UTF-8 is written raw, as repo-add writes it in a UTF-8 locale (C.UTF-8 or any Arch
//!   system). Under the C locale repo-add writes every non-ASCII byte as `\ooo` (`donn\303\251es`): that
//!   only reflects the locale of the machine that ran it, and pacman's `-F` could not find such names, so
//!   the UTF-8 form is the one kept. Refused: C1 controls (U+0080–U+009F) and the line and paragraph
//!   separators U+2028/U+2029 (both also escaped by bsdtar in a UTF-8 locale), the invisible format
//!   characters that hide or reorder what a name shows (bidi controls U+061C, U+200E/U+200F,
//!   U+202A–U+202E, U+2066–U+2069; zero-width and joiners U+180E, U+200B–U+200D, U+2060–U+2064, U+206A–U+206F,
//!   U+FEFF; annotation U+FFF9–U+FFFB) and noncharacters (U+FDD0–U+FDEF, U+xFFFE/U+xFFFF, also escaped by
//!   bsdtar). A code point unassigned in the C library's Unicode tables is escaped by bsdtar but written
//!   raw here: which code points are unassigned depends on the glibc that runs repo-add (Debian 12's
//!   knows Unicode 14, Arch's a newer one), so there is no single repo-add behaviour to match.
//!
//! The list is bounded while it is read: [`Limits::max_entries`] archive members and
//! [`Limits::max_file_list_bytes`] bytes of `files` lines; no line exceeds [`crate::db::MAX_LINE_LEN`].

use std::cell::Cell;
use std::io::{self, BufReader, Read};
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::db::MAX_LINE_LEN;
use crate::digest::TeeReader;
use crate::pkginfo::{PackageInfo, PkgInfo, PkgInfoError};

/// The compression of a package archive, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Zstd,
    Xz,
    Gzip,
    Bzip2,
    /// An uncompressed tar archive.
    None,
}

impl Compression {
    /// Detects the format from the first bytes of a file (at least 262 are needed for plain tar).
    ///
    /// ```
    /// use libvieter::package::Compression;
    /// assert_eq!(Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Some(Compression::Zstd));
    /// assert_eq!(Compression::detect(b"hello"), None);
    /// ```
    pub fn detect(head: &[u8]) -> Option<Self> {
        const TABLE: &[(&[u8], Compression)] = &[
            (&[0x28, 0xb5, 0x2f, 0xfd], Compression::Zstd),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], Compression::Xz),
            (&[0x1f, 0x8b], Compression::Gzip),
            (b"BZh", Compression::Bzip2),
        ];
        if let Some((_, c)) = TABLE.iter().find(|(magic, _)| head.starts_with(magic)) {
            return Some(*c);
        }
        (head.get(257..262) == Some(b"ustar")).then_some(Compression::None)
    }

    /// The file name extension makepkg uses for this compression (`.pkg.tar.zst`, ...).
    pub fn package_extension(self) -> &'static str {
        match self {
            Compression::Zstd => ".pkg.tar.zst",
            Compression::Xz => ".pkg.tar.xz",
            Compression::Gzip => ".pkg.tar.gz",
            Compression::Bzip2 => ".pkg.tar.bz2",
            Compression::None => ".pkg.tar",
        }
    }
}

/// Bounds on what a package may make the reader do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted `.PKGINFO`.
    pub max_pkginfo_size: u64,
    /// Most archive entries (tar headers, long-name headers included).
    pub max_entries: usize,
    /// Most bytes of the package's `files` entry: every listed name as written there (escaped), plus
    /// its newline. Counted while the archive is read, so an oversized list fails before it is held.
    pub max_file_list_bytes: u64,
    /// Longest entry path in bytes.
    pub max_path_len: usize,
    /// Largest PAX extended header.
    pub max_pax_size: u64,
    /// Most uncompressed bytes in the whole tar stream.
    pub max_uncompressed_size: u64,
    /// Once more than 1 GiB is uncompressed, the largest accepted ratio of uncompressed to compressed
    /// bytes (a decompression bomb guard).
    pub max_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pkginfo_size: 1 << 20,
            // The largest real packages list around 100,000 entries (texlive, emscripten, docs) in
            // well under 16 MiB of names.
            max_entries: 500_000,
            max_file_list_bytes: 32 << 20,
            max_path_len: 4096,
            max_pax_size: 1 << 20,
            max_uncompressed_size: 64 << 30,
            max_ratio: 1000,
        }
    }
}

/// How to read a package.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Also compute the MD5 of the archive (only needed for databases in pacman <= 6.0 format).
    pub md5: bool,
    pub limits: Limits,
}

/// Why a package was refused.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("not a package: the data is neither zstd, xz, gzip, bzip2 nor tar")]
    UnknownFormat,
    #[error("the archive is damaged or truncated: {0}")]
    Corrupt(#[source] io::Error),
    #[error("the package has no .PKGINFO")]
    MissingPkgInfo,
    #[error("the package has more than one .PKGINFO")]
    DuplicatePkgInfo,
    #[error(".PKGINFO is larger than {limit} bytes")]
    PkgInfoTooLarge { limit: u64 },
    #[error(transparent)]
    PkgInfo(#[from] PkgInfoError),
    #[error("archive path {path:?} is not allowed: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("the archive has more than {limit} entries (limit max_entries)")]
    TooManyEntries { limit: usize },
    #[error("the package's file list is larger than {limit} bytes (limit max_file_list_bytes)")]
    FileListTooLarge { limit: u64 },
    #[error("archive path {path:?} contains the character U+{code:04X} ({reason}), which pacman's databases cannot hold")]
    ForbiddenCharacter { path: String, code: u32, reason: &'static str },
    #[error("a PAX header is larger than {limit} bytes")]
    PaxTooLarge { limit: u64 },
    #[error("decompression bomb: {0}")]
    Bomb(String),
    #[error("reading the package failed: {0}")]
    Io(#[source] io::Error),
}

/// Everything a repository needs to know about one package file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// The typed `.PKGINFO`.
    pub info: PackageInfo,
    /// The `.PKGINFO` as written (every line, unknown keys included).
    pub pkginfo: PkgInfo,
    /// Archive paths that do not start with `.`, directories with a trailing `/`, as repo-add writes
    /// them (a `\` doubled, see the module docs), sorted bytewise and without duplicates: the `%FILES%`
    /// list of the files database.
    pub files: Vec<String>,
    pub compression: Compression,
    /// Size of the archive in bytes (`%CSIZE%`).
    pub csize: u64,
    /// Lower-case hex SHA-256 of the archive.
    pub sha256: String,
    /// Lower-case hex MD5 of the archive, when [`ReadOptions::md5`] was set.
    pub md5: Option<String>,
}

impl Package {
    /// The file name makepkg would give this package: `{name}-{version}-{arch}.pkg.tar{.ext}`.
    pub fn filename(&self) -> String {
        format!(
            "{}-{}-{}{}",
            self.info.name,
            self.info.version,
            self.info.arch,
            self.compression.package_extension()
        )
    }
}

/// Reads a package archive from `reader` in one pass.
///
/// The whole stream is read (so the size and checksums cover it all), but only `.PKGINFO` and the entry
/// names are kept in memory.
pub fn read_package<R: Read>(reader: R, options: &ReadOptions) -> Result<Package, PackageError> {
    std::thread::scope(|scope| {
        let mut tee = TeeReader::new(scope, reader, options.md5);
        let (pkginfo, files, compression) = read_archive(&mut tee, &options.limits)?;
        let digests = tee.finish().map_err(PackageError::Io)?;
        let info = pkginfo.validate()?;
        Ok(Package {
            info,
            pkginfo,
            files,
            compression,
            csize: digests.size,
            sha256: digests.sha256,
            md5: digests.md5,
        })
    })
}

/// Counts uncompressed bytes and enforces the size and ratio limits.
struct Guard<'a, R> {
    inner: R,
    read: u64,
    compressed: Rc<Cell<u64>>,
    limits: &'a Limits,
}

impl<R: Read> Read for Guard<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limits.max_uncompressed_size {
            return Err(bomb(format!("more than {} bytes uncompressed", self.limits.max_uncompressed_size)));
        }
        let compressed = self.compressed.get().max(1);
        if self.read > 1 << 30 && self.read / compressed > self.limits.max_ratio {
            return Err(bomb(format!(
                "{} bytes expand to more than {} times their size",
                compressed, self.limits.max_ratio
            )));
        }
        Ok(n)
    }
}

/// Marker for errors raised by [`Guard`], so they are not reported as corruption.
#[derive(Debug)]
struct BombError(String);
impl std::fmt::Display for BombError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for BombError {}

fn bomb(msg: String) -> io::Error {
    io::Error::other(BombError(msg))
}

/// Counts compressed bytes handed to the decompressor.
struct Counted<'a, R> {
    inner: &'a mut R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Classifies an I/O error that happened while walking the archive.
fn archive_error(e: io::Error) -> PackageError {
    if let Some(b) = e.get_ref().and_then(|inner| inner.downcast_ref::<BombError>()) {
        return PackageError::Bomb(b.0.clone());
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => {
            PackageError::Corrupt(e)
        }
        // Decoders report malformed data with kind Other.
        io::ErrorKind::Other => PackageError::Corrupt(e),
        _ => PackageError::Io(e),
    }
}

fn read_archive<R: Read>(
    input: &mut R,
    limits: &Limits,
) -> Result<(PkgInfo, Vec<String>, Compression), PackageError> {
    let mut head = Vec::with_capacity(512);
    input.take(512).read_to_end(&mut head).map_err(PackageError::Io)?;
    let compression = Compression::detect(&head).ok_or(PackageError::UnknownFormat)?;
    let compressed = Rc::new(Cell::new(head.len() as u64));
    let rest = Counted { inner: input, count: Rc::clone(&compressed) };
    let source = io::Cursor::new(head).chain(rest);
    let decoder: Box<dyn Read + '_> = match compression {
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(source).map_err(PackageError::Io)?),
        Compression::Xz => {
            Box::new(liblzma::read::XzDecoder::new_multi_decoder(BufReader::with_capacity(64 * 1024, source)))
        }
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(source)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(source)),
        Compression::None => Box::new(source),
    };
    let guard = Guard { inner: decoder, read: 0, compressed, limits };
    walk_tar(guard, limits).map(|(info, files)| (info, files, compression))
}

fn walk_tar<R: Read>(stream: R, limits: &Limits) -> Result<(PkgInfo, Vec<String>), PackageError> {
    let mut archive = tar::Archive::new(stream);
    let result = walk_entries(&mut archive, limits)?;
    // Read the decompressed stream to its end (the tar padding after the end-of-archive blocks): the
    // decoder then verifies the compressed framing and checksums, so a cut or damaged tail is refused.
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(archive_error)?;
    Ok(result)
}

fn walk_entries<R: Read>(
    archive: &mut tar::Archive<R>,
    limits: &Limits,
) -> Result<(PkgInfo, Vec<String>), PackageError> {
    let mut pkginfo: Option<PkgInfo> = None;
    let mut files: Vec<String> = Vec::new();
    let mut list_bytes = 0u64;
    let mut entries_seen = 0usize;
    // Long names from GNU 'L' entries or PAX 'path' records apply to the next real entry.
    let mut pending_path: Option<Vec<u8>> = None;
    let entries = archive.entries().map_err(archive_error)?.raw(true);
    for entry in entries {
        let mut entry = entry.map_err(archive_error)?;
        entries_seen += 1;
        if entries_seen > limits.max_entries {
            return Err(PackageError::TooManyEntries { limit: limits.max_entries });
        }
        let kind = entry.header().entry_type();
        let size = entry.header().entry_size().map_err(archive_error)?;
        match kind {
            tar::EntryType::GNULongName | tar::EntryType::XHeader => {
                let limit = if kind == tar::EntryType::GNULongName {
                    limits.max_path_len as u64 + 1
                } else {
                    limits.max_pax_size
                };
                if size > limit {
                    return Err(match kind {
                        tar::EntryType::XHeader => PackageError::PaxTooLarge { limit },
                        _ => PackageError::InvalidPath {
                            path: String::from("(GNU long name)"),
                            reason: "longer than the path limit",
                        },
                    });
                }
                let mut data = Vec::with_capacity(size as usize);
                entry.read_to_end(&mut data).map_err(archive_error)?;
                if kind == tar::EntryType::GNULongName {
                    while data.last() == Some(&0) {
                        data.pop();
                    }
                    pending_path = Some(data);
                } else if let Some(path) = pax_path(&data)? {
                    pending_path = Some(path);
                }
                continue;
            }
            // Global PAX headers and long link names carry nothing a repository needs.
            tar::EntryType::XGlobalHeader | tar::EntryType::GNULongLink => continue,
            _ => {}
        }
        let raw_path = match pending_path.take() {
            Some(p) => p,
            None => entry.header().path_bytes().into_owned(),
        };
        let path = String::from_utf8(raw_path).map_err(|e| PackageError::InvalidPath {
            path: String::from_utf8_lossy(e.as_bytes()).into_owned(),
            reason: "not valid UTF-8",
        })?;
        check_path(&path, limits)?;
        if path == ".PKGINFO" {
            if pkginfo.is_some() {
                return Err(PackageError::DuplicatePkgInfo);
            }
            if size > limits.max_pkginfo_size {
                return Err(PackageError::PkgInfoTooLarge { limit: limits.max_pkginfo_size });
            }
            let mut data = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut data).map_err(archive_error)?;
            pkginfo = Some(PkgInfo::parse(&data)?);
            continue;
        }
        if path.starts_with('.') {
            continue;
        }
        let mut line = files_line(&path);
        if kind == tar::EntryType::Directory && !line.ends_with('/') {
            line.push('/');
        }
        if line.len() > MAX_LINE_LEN {
            return Err(PackageError::InvalidPath {
                path,
                reason: "longer than a files database line may be",
            });
        }
        list_bytes += line.len() as u64 + 1;
        if list_bytes > limits.max_file_list_bytes {
            return Err(PackageError::FileListTooLarge { limit: limits.max_file_list_bytes });
        }
        files.push(line);
    }
    let pkginfo = pkginfo.ok_or(PackageError::MissingPkgInfo)?;
    files.sort_unstable();
    files.dedup();
    Ok((pkginfo, files))
}

/// The `path` record of a PAX extended header, if any.
fn pax_path(data: &[u8]) -> Result<Option<Vec<u8>>, PackageError> {
    let mut path = None;
    let mut rest = data;
    while !rest.is_empty() {
        // Each record is "LEN key=value\n", LEN counting the whole record.
        let corrupt = || {
            PackageError::Corrupt(io::Error::new(io::ErrorKind::InvalidData, "malformed PAX header record"))
        };
        let space = rest.iter().position(|&c| c == b' ').ok_or_else(corrupt)?;
        let len: usize =
            std::str::from_utf8(&rest[..space]).ok().and_then(|s| s.parse().ok()).ok_or_else(corrupt)?;
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(corrupt());
        }
        let record = &rest[space + 1..len - 1];
        if let Some(value) = record.strip_prefix(b"path=") {
            path = Some(value.to_vec());
        }
        rest = &rest[len..];
    }
    Ok(path)
}

fn check_path(path: &str, limits: &Limits) -> Result<(), PackageError> {
    let refuse = |reason| Err(PackageError::InvalidPath { path: path.to_owned(), reason });
    if path.is_empty() {
        return refuse("empty");
    }
    if path.len() > limits.max_path_len {
        return refuse("longer than the path limit");
    }
    if path.starts_with('/') {
        return refuse("absolute paths are not allowed");
    }
    if path.split('/').any(|c| c == "..") {
        return refuse("'..' components are not allowed");
    }
    if let Some((c, reason)) = path.chars().find_map(|c| forbidden_char(c).map(|r| (c, r))) {
        return Err(PackageError::ForbiddenCharacter { path: path.to_owned(), code: u32::from(c), reason });
    }
    Ok(())
}

/// Why `c` may not occur in a member name, if it may not (see the module docs).
fn forbidden_char(c: char) -> Option<&'static str> {
    let code = u32::from(c);
    match code {
        0x00..=0x1f | 0x7f => Some("an ASCII control character"),
        0x80..=0x9f => Some("a C1 control character"),
        0x2028 | 0x2029 => Some("a line or paragraph separator"),
        0x061c | 0x200e | 0x200f | 0x202a..=0x202e | 0x2066..=0x2069 => Some("a bidirectional control"),
        0x180e | 0x200b..=0x200d | 0x2060..=0x2064 | 0x206a..=0x206f | 0xfeff | 0xfff9..=0xfffb => {
            Some("an invisible format character")
        }
        0xfdd0..=0xfdef => Some("a Unicode noncharacter"),
        _ if code & 0xfffe == 0xfffe => Some("a Unicode noncharacter"),
        _ => None,
    }
}

/// A member name as repo-add's `bsdtar -t` writes it in a UTF-8 locale, for a name [`check_path`]
/// accepted: every other character is printable there, and bsdtar escapes `\` as `\\`.
fn files_line(path: &str) -> String {
    path.replace('\\', "\\\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, path, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    const PKGINFO: &[u8] = b"pkgname = foo\npkgver = 1.0-1\narch = x86_64\nsize = 3\n";

    #[test]
    fn reads_a_plain_tar() {
        let long = format!("usr/share/{}/file", "d".repeat(150));
        let data = tar_with(&[(".PKGINFO", PKGINFO), ("usr/bin/foo", b"abc"), (&long, b"x")]);
        let pkg = read_package(&data[..], &ReadOptions::default()).unwrap();
        assert_eq!(pkg.info.name.as_str(), "foo");
        assert_eq!(pkg.files, vec!["usr/bin/foo".to_owned(), long.clone()]);
        assert_eq!(pkg.csize, data.len() as u64);
        assert_eq!(pkg.compression, Compression::None);
        assert_eq!(pkg.filename(), "foo-1.0-1-x86_64.pkg.tar");
    }

    #[test]
    fn refuses_bad_archives() {
        let opts = ReadOptions::default();
        assert!(matches!(read_package(&b"random bytes"[..], &opts), Err(PackageError::UnknownFormat)));
        let no_info = tar_with(&[("usr/bin/foo", b"abc")]);
        assert!(matches!(read_package(&no_info[..], &opts), Err(PackageError::MissingPkgInfo)));
        let truncated = &tar_with(&[(".PKGINFO", PKGINFO), ("big", &[0u8; 5000])])[..2048];
        assert!(matches!(read_package(truncated, &opts), Err(PackageError::Corrupt(_))));
    }

    /// A plain tar of `.PKGINFO` and the given names (raw bytes, written block by block; names over 100
    /// bytes get a PAX `path` record).
    fn raw_tar(names: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |name: &[u8], data: &[u8], kind: tar::EntryType| {
            let mut h = tar::Header::new_ustar();
            if name.len() > 100 {
                // "LEN path=NAME\n", LEN counting itself.
                let base = " path=\n".len() + name.len();
                let mut len = base + 1;
                while len.to_string().len() + base != len {
                    len = len.to_string().len() + base;
                }
                let mut record = format!("{len} path=").into_bytes();
                record.extend_from_slice(name);
                record.push(b'\n');
                assert_eq!(record.len(), len);
                let mut x = tar::Header::new_ustar();
                x.as_ustar_mut().unwrap().name[..9].copy_from_slice(b"PaxHeader");
                x.set_entry_type(tar::EntryType::XHeader);
                x.set_size(record.len() as u64);
                x.set_cksum();
                out.extend_from_slice(x.as_bytes());
                out.extend_from_slice(&record);
                out.resize(out.len().div_ceil(512) * 512, 0);
                h.as_ustar_mut().unwrap().name[..5].copy_from_slice(b"long/");
            } else {
                h.as_ustar_mut().unwrap().name[..name.len()].copy_from_slice(name);
            }
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            h.set_entry_type(kind);
            h.set_cksum();
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        };
        put(b".PKGINFO", PKGINFO, tar::EntryType::Regular);
        for name in names {
            let kind = if name.ends_with(b"/") { tar::EntryType::Directory } else { tar::EntryType::Regular };
            put(name, b"", kind);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    fn read(data: &[u8]) -> Result<Package, PackageError> {
        read_package(data, &ReadOptions::default())
    }

    #[test]
    fn control_characters_in_member_names_are_refused() {
        for (name, code) in [
            (&b"usr/bin/zz\n\n%FILES%\nusr/bin/sudo"[..], 0x0a),
            (b"usr/bin/tab\there", 0x09),
            (b"usr/bin/cr\rx", 0x0d),
            (b"usr/bin/del\x7fx", 0x7f),
            (b"usr/bin/esc\x1b[31m", 0x1b),
            (b".hidden\nusr/bin/sudo", 0x0a),
        ] {
            match read(&raw_tar(&[name])) {
                Err(e @ PackageError::ForbiddenCharacter { code: c, .. }) => {
                    assert_eq!(c, code, "{e}");
                    let message = e.to_string();
                    assert!(message.contains(&format!("U+{code:04X}")), "{message}");
                    assert!(message.contains("control character"), "{message}");
                    assert!(!message.contains('\n'), "the message shows the name escaped: {message}");
                }
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(name)),
            }
        }
        // The same names with the injection through a PAX path record.
        let long = format!("usr/share/{}\n%FILES%\nusr/bin/sudo", "d".repeat(120));
        assert!(matches!(
            read(&raw_tar(&[long.as_bytes()])),
            Err(PackageError::ForbiddenCharacter { code: 0x0a, .. })
        ));
    }

    #[test]
    fn invisible_and_separator_code_points_are_refused() {
        for c in [
            '\u{80}',
            '\u{85}',
            '\u{9f}',
            '\u{2028}',
            '\u{2029}',
            '\u{202a}',
            '\u{202e}',
            '\u{2066}',
            '\u{2069}',
            '\u{200b}',
            '\u{200f}',
            '\u{061c}',
            '\u{2060}',
            '\u{feff}',
            '\u{fdd0}',
            '\u{fffe}',
            '\u{1ffff}',
        ] {
            let name = format!("usr/share/a{c}b");
            match read(&raw_tar(&[name.as_bytes()])) {
                Err(PackageError::ForbiddenCharacter { code, .. }) => assert_eq!(code, u32::from(c)),
                other => panic!("U+{:04X}: {other:?}", u32::from(c)),
            }
        }
        // Printable non-ASCII is written raw, as repo-add writes it in a UTF-8 locale.
        let names: [&[u8]; 5] = [
            "usr/share/données été.txt".as_bytes(),
            "usr/share/日本語/".as_bytes(),
            "usr/share/emoji😀".as_bytes(),
            "usr/share/nbsp\u{a0}x".as_bytes(),
            "usr/share/private\u{e000}".as_bytes(),
        ];
        let pkg = read(&raw_tar(&names)).unwrap();
        let mut want: Vec<String> = names.iter().map(|n| String::from_utf8(n.to_vec()).unwrap()).collect();
        want.sort();
        assert_eq!(pkg.files, want);
    }

    #[test]
    fn backslashes_are_written_as_repo_add_writes_them() {
        let pkg = read(&raw_tar(&[
            b"usr/lib/systemd/system/system-systemd\\x2dcryptsetup.slice",
            b"usr/share/x",
            b"usr/share/x\\",
            b"usr/share/x\\!",
            b"usr/share/x]y",
            b"usr/share/x[y",
            b"usr/share/x!",
            b"usr/share/X",
            b"usr/share/back\\\\slash",
            b"usr/share/dir\\/",
        ]))
        .unwrap();
        // Exactly what repo-add 6.0.2 wrote for these names (LC_ALL=C sort -u over bsdtar's escaping).
        assert_eq!(
            pkg.files,
            [
                "usr/lib/systemd/system/system-systemd\\\\x2dcryptsetup.slice",
                "usr/share/X",
                "usr/share/back\\\\\\\\slash",
                "usr/share/dir\\\\/",
                "usr/share/x",
                "usr/share/x!",
                "usr/share/x[y",
                "usr/share/x\\\\",
                "usr/share/x\\\\!",
                "usr/share/x]y",
            ]
        );
        let mut sorted = pkg.files.clone();
        sorted.sort();
        assert_eq!(sorted, pkg.files);
    }

    #[test]
    fn the_file_list_budget_is_enforced_while_reading() {
        let names: Vec<String> = (0..200).map(|i| format!("usr/share/f{i:03}")).collect();
        let refs: Vec<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
        let data = raw_tar(&refs);
        // Each line is 14 bytes plus its newline.
        let exact = 200 * 15;
        let with_budget = |bytes: u64| ReadOptions {
            limits: Limits { max_file_list_bytes: bytes, ..Limits::default() },
            ..ReadOptions::default()
        };
        assert_eq!(read_package(&data[..], &with_budget(exact)).unwrap().files.len(), 200);
        match read_package(&data[..], &with_budget(exact - 1)) {
            Err(e @ PackageError::FileListTooLarge { limit }) => {
                assert_eq!(limit, exact - 1);
                assert!(e.to_string().contains("max_file_list_bytes"), "{e}");
                assert!(e.to_string().contains(&(exact - 1).to_string()), "{e}");
            }
            other => panic!("{other:?}"),
        }
        // The walk stops at the entry that exceeds the budget: an archive damaged after it is refused
        // for its list, not for the damage (the rest was never read).
        let mut cut = data[..512 * 2 * 20].to_vec();
        cut.extend_from_slice(&[0xff; 4096]);
        assert!(matches!(
            read_package(&cut[..], &with_budget(10 * 15)),
            Err(PackageError::FileListTooLarge { .. })
        ));
        assert!(matches!(read_package(&cut[..], &with_budget(exact)), Err(PackageError::Corrupt(_))));
    }

    #[test]
    fn default_limits() {
        let limits = Limits::default();
        assert_eq!(limits.max_entries, 500_000);
        assert_eq!(limits.max_file_list_bytes, 32 << 20);
        // A name at the path limit fits a files line even when every byte is an escaped backslash.
        assert!(2 * limits.max_path_len < MAX_LINE_LEN);
    }

    #[test]
    fn every_extension_fits_the_file_name_limit() {
        use crate::pkginfo::LONGEST_PACKAGE_EXTENSION;
        for c in
            [Compression::Zstd, Compression::Xz, Compression::Gzip, Compression::Bzip2, Compression::None]
        {
            assert!(c.package_extension().len() <= LONGEST_PACKAGE_EXTENSION.len(), "{c:?}");
        }
    }

    #[test]
    fn refuses_traversal() {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"../etc/passwd");
        h.set_cksum();
        let mut data = Vec::new();
        data.extend_from_slice(h.as_bytes());
        data.extend_from_slice(&[0u8; 1024]);
        let err = read_package(&data[..], &ReadOptions::default()).unwrap_err();
        assert!(matches!(err, PackageError::InvalidPath { .. }), "{err}");
    }
}
