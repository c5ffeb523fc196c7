//! Reading package archives (`.pkg.tar.*`).
//!
//! [`read_package`] takes any [`Read`] and, in one streaming pass with bounded memory, detects the
//! compression from the magic bytes, walks the tar stream, parses `.PKGINFO`, collects the file list and
//! computes the compressed size, SHA-256 and (optionally) MD5 of the archive bytes. File contents are
//! never held in memory; limits in [`Limits`] bound everything else.

use std::cell::Cell;
use std::io::{self, BufReader, Read};
use std::rc::Rc;

use serde::{Deserialize, Serialize};

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
    /// Most archive entries.
    pub max_entries: usize,
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
            max_entries: 2_000_000,
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
    #[error("the archive has more than {limit} entries")]
    TooManyEntries { limit: usize },
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
    /// Archive paths that do not start with `.`, directories with a trailing `/`, sorted bytewise and
    /// without duplicates: the `%FILES%` list of the files database.
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
        let mut path = String::from_utf8(raw_path).map_err(|e| PackageError::InvalidPath {
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
        if kind == tar::EntryType::Directory && !path.ends_with('/') {
            path.push('/');
        }
        files.push(path);
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
    if path.contains('\0') {
        return refuse("NUL bytes are not allowed");
    }
    Ok(())
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
