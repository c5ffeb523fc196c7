//! Repository databases (`REPO.db.tar.gz`, `REPO.files.tar.gz`), byte-compatible with `repo-add`.
//!
//! A [`DbEntry`] is the `desc` (and `files`) text of one package, rendered from a [`Package`] exactly as
//! Debian's `repo-add` writes it (see `DbFormat`). A [`StoredEntry`] adds the entry's two gzip members,
//! compressed once when the package is added; [`Database`] writes an archive by concatenating the stored
//! members (pacman reads concatenated gzip members as one stream), so adding or removing one package
//! never re-reads or recompresses the others.
//!
//! No line of an entry is longer than [`MAX_LINE_LEN`] and none holds a control character: pacman
//! refuses the whole repository over one bad line. [`crate::package::read_package`] refuses packages that
//! would need such lines; [`DbEntry::new`] checks again, for packages made some other way.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use base64::Engine as _;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use crate::name::{NameError, PkgName};
use crate::package::Package;
use crate::version::{Version, VersionError};

/// The longest line Vieter writes into a `desc` or `files` entry (and accepts in `.PKGINFO`), in bytes
/// without the newline.
///
/// pacman (`_alpm_archive_fgets`, with the 512 KiB `max_line_size` of `be_sync.c` and `be_package.c`)
/// fails on a line of 524,288 bytes or more and then drops the whole sync db (checked with pacman 6.0.2:
/// 524,287 bytes parse). 64 KiB stays well within that while being far above any real value (package
/// descriptions and dependency lines are at most a few hundred bytes; paths at most 4 KiB, 8 KiB once
/// backslashes are escaped).
pub const MAX_LINE_LEN: usize = 64 * 1024;

/// Which `desc` layout to write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DbFormat {
    /// pacman >= 6.1: no `%MD5SUM%`.
    #[default]
    Current,
    /// pacman <= 6.0 (Debian's `repo-add`): adds `%MD5SUM%`; the package must be read with MD5.
    WithMd5,
}

/// The largest package signature `repo-add` puts into a `desc` entry (`pgpsigsize > 16384` is an
/// error in its `db_write_entry`); Vieter refuses larger uploaded signatures too.
pub const MAX_SIGNATURE_LEN: usize = 16 * 1024;

impl DbFormat {
    /// Whether a package's detached signature goes into its `desc` entry as `%PGPSIG%` (base64).
    ///
    /// This follows `repo-add` of each pacman: 6.0.2 (Debian's, [`DbFormat::WithMd5`]) writes
    /// `%PGPSIG%` whenever `FILE.sig` exists next to the package; since pacman 6.1 (pacman commit
    /// "repo-add: add --include-sigs option") it writes it only with `--include-sigs`, because pacman
    /// downloads `FILE.sig` itself, so [`DbFormat::Current`] keeps entries as `repo-add` writes them by
    /// default: without it. Both pacmans verify with the `.sig` served next to the file when
    /// `%PGPSIG%` is absent.
    pub fn embeds_signature(self) -> bool {
        match self {
            DbFormat::Current => false,
            DbFormat::WithMd5 => true,
        }
    }
}

/// Why a database entry could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the MD5 of the package is needed for this database format but was not computed")]
    MissingMd5,
    #[error("file name {0:?} must be a plain file name")]
    InvalidFilename(String),
    #[error("desc entry has no %{0}% section")]
    MissingField(&'static str),
    #[error("desc entry is not valid UTF-8")]
    InvalidUtf8,
    #[error("desc entry: {0}")]
    InvalidName(#[from] NameError),
    #[error("desc entry: {0}")]
    InvalidVersion(#[from] VersionError),
    #[error("database entry {dir:?} has no desc file")]
    MissingDesc { dir: String },
    #[error("database archive is damaged: {0}")]
    Corrupt(#[source] io::Error),
    #[error("database entry {0:?} is larger than the limit")]
    TooLarge(String),
    /// The archive decompresses to more than [`MAX_ARCHIVE_BYTES`] (a decompression bomb).
    #[error("database archive decompresses to more than {limit} bytes")]
    ArchiveTooLarge { limit: u64 },
    #[error("%{section}% would have a line of {len} bytes; the limit is {limit} bytes per line")]
    LineTooLong { section: &'static str, len: usize, limit: usize },
    #[error("%{section}% would have a line with the control character U+{code:04X}")]
    ControlCharacter { section: &'static str, code: u32 },
    /// A signature `repo-add` refuses to put into an entry: armored, or over [`MAX_SIGNATURE_LEN`].
    #[error("the package signature cannot go into the database: {0}")]
    InvalidSignature(&'static str),
    #[error("writing the database failed: {0}")]
    Io(#[from] io::Error),
}

/// The `desc` and `files` text of one package in a repository database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbEntry {
    pub name: PkgName,
    pub version: Version,
    /// `%FILENAME%`: the package file's name in the repository.
    pub filename: String,
    /// The `desc` file.
    pub desc: String,
    /// The `files` file (`%FILES%` list); `None` for an entry read from a db without file lists.
    pub files: Option<String>,
}

/// repo-add's value normalisation: runs of whitespace become one space, ends are trimmed.
fn normalize(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for word in value.split([' ', '\t', '\n', '\x0b', '\x0c', '\r']) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Checks that `line` is fit for a db entry: no control character, at most [`MAX_LINE_LEN`] bytes.
fn check_line(section: &'static str, line: &str) -> Result<(), DbError> {
    if line.len() > MAX_LINE_LEN {
        return Err(DbError::LineTooLong { section, len: line.len(), limit: MAX_LINE_LEN });
    }
    match line.chars().find(|c| c.is_control()) {
        Some(c) => Err(DbError::ControlCharacter { section, code: u32::from(c) }),
        None => Ok(()),
    }
}

fn section(out: &mut String, key: &'static str, values: &[String]) -> Result<(), DbError> {
    if values.is_empty() {
        return Ok(());
    }
    for v in values {
        check_line(key, v)?;
    }
    out.push('%');
    out.push_str(key);
    out.push_str("%\n");
    for v in values {
        out.push_str(v);
        out.push('\n');
    }
    out.push('\n');
    Ok(())
}

impl DbEntry {
    /// Renders the entry for `package`, stored in the repository as `filename`.
    ///
    /// `signature` is the package's detached binary PGP signature (its `FILE.sig`), written as
    /// `%PGPSIG%` after `%SHA256SUM%` when the format embeds signatures
    /// ([`DbFormat::embeds_signature`]) and ignored otherwise. Like `repo-add`, an armored signature
    /// or one larger than [`MAX_SIGNATURE_LEN`] is refused.
    pub fn new(
        package: &Package,
        filename: &str,
        format: DbFormat,
        signature: Option<&[u8]>,
    ) -> Result<Self, DbError> {
        if filename.is_empty() || filename.contains(['/', '\0', '\n']) || filename.starts_with('.') {
            return Err(DbError::InvalidFilename(filename.to_owned()));
        }
        // repo-add reads .PKGINFO line by line: scalars keep their last value, lists every value.
        let info = &package.pkginfo;
        let one = |key: &str| info.get(key).map(normalize).filter(|v| !v.is_empty());
        let all = |key: &str| info.get_all(key).map(normalize).filter(|v| !v.is_empty()).collect::<Vec<_>>();
        let opt = |v: Option<String>| v.into_iter().collect::<Vec<_>>();
        let md5 = match format {
            DbFormat::Current => None,
            DbFormat::WithMd5 => Some(package.md5.clone().ok_or(DbError::MissingMd5)?),
        };
        let mut desc = String::with_capacity(1024);
        section(&mut desc, "FILENAME", &[filename.to_owned()])?;
        section(&mut desc, "NAME", &opt(one("pkgname")))?;
        section(&mut desc, "BASE", &opt(one("pkgbase")))?;
        section(&mut desc, "VERSION", &opt(one("pkgver")))?;
        section(&mut desc, "DESC", &opt(one("pkgdesc")))?;
        section(&mut desc, "GROUPS", &all("group"))?;
        section(&mut desc, "CSIZE", &[package.csize.to_string()])?;
        section(&mut desc, "ISIZE", &opt(one("size")))?;
        section(&mut desc, "MD5SUM", &opt(md5))?;
        section(&mut desc, "SHA256SUM", std::slice::from_ref(&package.sha256))?;
        let pgpsig = match signature.filter(|_| format.embeds_signature()) {
            // repo-add: `grep -q 'BEGIN PGP SIGNATURE'` and `wc -c` > 16384.
            Some(s) if s.windows(19).any(|w| w == b"BEGIN PGP SIGNATURE") => {
                return Err(DbError::InvalidSignature("an armored signature (repo-add takes binary ones)"));
            }
            Some(s) if s.len() > MAX_SIGNATURE_LEN => {
                return Err(DbError::InvalidSignature("larger than 16384 bytes"));
            }
            Some(s) => Some(base64::engine::general_purpose::STANDARD.encode(s)),
            None => None,
        };
        section(&mut desc, "PGPSIG", &opt(pgpsig))?;
        section(&mut desc, "URL", &opt(one("url")))?;
        section(&mut desc, "LICENSE", &all("license"))?;
        section(&mut desc, "ARCH", &opt(one("arch")))?;
        section(&mut desc, "BUILDDATE", &opt(one("builddate")))?;
        section(&mut desc, "PACKAGER", &opt(one("packager")))?;
        section(&mut desc, "REPLACES", &all("replaces"))?;
        section(&mut desc, "CONFLICTS", &all("conflict"))?;
        section(&mut desc, "PROVIDES", &all("provides"))?;
        section(&mut desc, "DEPENDS", &all("depend"))?;
        section(&mut desc, "OPTDEPENDS", &all("optdepend"))?;
        section(&mut desc, "MAKEDEPENDS", &all("makedepend"))?;
        section(&mut desc, "CHECKDEPENDS", &all("checkdepend"))?;

        let mut files = String::with_capacity(8 + package.files.iter().map(|f| f.len() + 1).sum::<usize>());
        files.push_str("%FILES%\n");
        for f in &package.files {
            check_line("FILES", f)?;
            files.push_str(f);
            files.push('\n');
        }
        Ok(DbEntry {
            name: package.info.name.clone(),
            version: package.info.version.clone(),
            filename: filename.to_owned(),
            desc,
            files: Some(files),
        })
    }

    /// Reads an entry back from the text of its `desc` (and `files`) file.
    pub fn from_parts(desc: String, files: Option<String>) -> Result<Self, DbError> {
        let field = |key: &'static str| -> Result<String, DbError> {
            let header = format!("%{key}%");
            let mut lines = desc.lines();
            while let Some(line) = lines.next() {
                if line == header {
                    return lines.next().map(str::to_owned).ok_or(DbError::MissingField(key));
                }
            }
            Err(DbError::MissingField(key))
        };
        Ok(DbEntry {
            name: PkgName::new(field("NAME")?)?,
            version: Version::parse(&field("VERSION")?)?,
            filename: field("FILENAME")?,
            desc,
            files,
        })
    }

    /// The entry's directory in the database archives: `{name}-{version}`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }

    /// Compresses the entry's two archive members; `mtime` is written into the tar headers.
    pub fn compress(self, mtime: u64) -> io::Result<StoredEntry> {
        let dir = self.dir_name();
        let mut db = TarMember::new(mtime);
        db.dir(&dir)?;
        db.file(&format!("{dir}/desc"), self.desc.as_bytes())?;
        let mut files = TarMember::new(mtime);
        files.dir(&dir)?;
        files.file(&format!("{dir}/desc"), self.desc.as_bytes())?;
        if let Some(list) = &self.files {
            files.file(&format!("{dir}/files"), list.as_bytes())?;
        }
        Ok(StoredEntry { db_member: db.finish()?, files_member: files.finish()?, mtime, entry: self })
    }
}

/// Tar blocks of one entry, gzip-compressed as one member (without the end-of-archive blocks).
struct TarMember {
    builder: tar::Builder<Vec<u8>>,
    mtime: u64,
}

impl TarMember {
    fn new(mtime: u64) -> Self {
        TarMember { builder: tar::Builder::new(Vec::with_capacity(2048)), mtime }
    }

    fn header(&self, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(self.mtime);
        h.set_uid(0);
        h.set_gid(0);
        // Names are ASCII and at most 32 bytes: these cannot fail.
        let _ = h.set_username("root");
        let _ = h.set_groupname("root");
        h
    }

    fn dir(&mut self, path: &str) -> io::Result<()> {
        let mut h = self.header(tar::EntryType::Directory, 0o755, 0);
        self.builder.append_data(&mut h, format!("{path}/"), io::empty())
    }

    fn file(&mut self, path: &str, data: &[u8]) -> io::Result<()> {
        let mut h = self.header(tar::EntryType::Regular, 0o644, data.len() as u64);
        self.builder.append_data(&mut h, path, data)
    }

    fn finish(mut self) -> io::Result<Vec<u8>> {
        // Take the blocks before the builder is dropped: dropping it appends the end-of-archive
        // blocks, which the database writes once, after the last member.
        let blocks = std::mem::take(self.builder.get_mut());
        let mut gz = GzEncoder::new(Vec::with_capacity(blocks.len() / 2), flate2::Compression::default());
        gz.write_all(&blocks)?;
        gz.finish()
    }
}

/// A database entry with its compressed archive members, ready to be stored and reused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEntry {
    pub entry: DbEntry,
    /// Modification time written into the members' tar headers.
    pub mtime: u64,
    /// gzip member holding the entry's `REPO.db` tar blocks.
    pub db_member: Vec<u8>,
    /// gzip member holding the entry's `REPO.files` tar blocks.
    pub files_member: Vec<u8>,
}

/// The gzip member that ends every archive: the two zero blocks of a tar end-of-archive.
fn trailer() -> io::Result<Vec<u8>> {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&[0u8; 1024])?;
    gz.finish()
}

/// Which of the two archives to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArchiveKind {
    /// `REPO.db.tar.gz`: `desc` only.
    Db,
    /// `REPO.files.tar.gz`: `desc` and `files`.
    Files,
}

/// Writes an archive from stored entries, in the given order.
pub fn write_archive<'a, W: Write>(
    out: &mut W,
    kind: ArchiveKind,
    entries: impl IntoIterator<Item = &'a StoredEntry>,
) -> io::Result<()> {
    for e in entries {
        out.write_all(match kind {
            ArchiveKind::Db => &e.db_member,
            ArchiveKind::Files => &e.files_member,
        })?;
    }
    out.write_all(&trailer()?)
}

/// The packages of one repository and architecture, one version per name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Database {
    entries: BTreeMap<PkgName, StoredEntry>,
}

impl Database {
    /// An empty database.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry, returning the one it replaces (same package name, any version).
    pub fn insert(&mut self, entry: StoredEntry) -> Option<StoredEntry> {
        self.entries.insert(entry.entry.name.clone(), entry)
    }

    /// Renders, compresses and inserts the entry of `package` stored as `filename`; returns the entry it
    /// replaces. This is what `repo-add` does for one package.
    pub fn add_package(
        &mut self,
        package: &Package,
        filename: &str,
        format: DbFormat,
        signature: Option<&[u8]>,
        mtime: u64,
    ) -> Result<Option<StoredEntry>, DbError> {
        let stored = DbEntry::new(package, filename, format, signature)?.compress(mtime)?;
        Ok(self.insert(stored))
    }

    /// Removes the entry of a package name.
    pub fn remove(&mut self, name: &PkgName) -> Option<StoredEntry> {
        self.entries.remove(name)
    }

    /// The entry of a package name.
    pub fn get(&self, name: &PkgName) -> Option<&StoredEntry> {
        self.entries.get(name)
    }

    /// Entries in name order.
    pub fn iter(&self) -> impl Iterator<Item = &StoredEntry> {
        self.entries.values()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes `REPO.db.tar.gz` or `REPO.files.tar.gz`.
    pub fn write<W: Write>(&self, out: &mut W, kind: ArchiveKind) -> io::Result<()> {
        write_archive(out, kind, self.entries.values())
    }

    /// Reads a database archive (`.db` or `.files`; see [`read_entries`]) written by us or by
    /// `repo-add`. Each entry is recompressed once.
    pub fn read<R: Read>(reader: R) -> Result<Self, DbError> {
        let mut db = Database::new();
        for (entry, mtime) in read_entries_with_mtime(reader, MAX_ARCHIVE_BYTES)? {
            db.insert(entry.compress(mtime)?);
        }
        Ok(db)
    }
}

/// The entries of a database archive (`.db` or `.files`: plain tar, or tar compressed with gzip,
/// zstd or xz, as `repo-add` and Arch's mirrors write them), in directory-name order, without
/// recompressing anything: what reading a pacman sync database needs.
///
/// The archive may decompress to at most [`MAX_ARCHIVE_BYTES`] ([`DbError::ArchiveTooLarge`] beyond):
/// a sync database comes from a mirror, not from us.
pub fn read_entries<R: Read>(reader: R) -> Result<Vec<DbEntry>, DbError> {
    read_entries_limited(reader, MAX_ARCHIVE_BYTES)
}

/// How many bytes a database archive read by [`read_entries`] may decompress to (tar headers and
/// skipped members included). Arch's largest sync db, `extra.db`, is about 40 MiB.
pub const MAX_ARCHIVE_BYTES: u64 = 1 << 30;

/// [`read_entries`] with another limit on the decompressed size.
pub fn read_entries_limited<R: Read>(reader: R, max_bytes: u64) -> Result<Vec<DbEntry>, DbError> {
    Ok(read_entries_with_mtime(reader, max_bytes)?.into_iter().map(|(e, _)| e).collect())
}

/// A reader that fails once more than `left` bytes went through it, and says so in `exceeded`.
struct Capped<R> {
    inner: R,
    left: u64,
    exceeded: std::rc::Rc<std::cell::Cell<bool>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte more than allowed may be read: that is how going over is seen.
        let want = buf.len().min(usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            self.exceeded.set(true);
            return Err(io::Error::other("database archive over the size limit"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn read_entries_with_mtime<R: Read>(reader: R, max_bytes: u64) -> Result<Vec<(DbEntry, u64)>, DbError> {
    let exceeded = std::rc::Rc::new(std::cell::Cell::new(false));
    let flag = exceeded.clone();
    read_capped(reader, max_bytes, flag).map_err(|e| {
        if exceeded.get() {
            DbError::ArchiveTooLarge { limit: max_bytes }
        } else {
            e
        }
    })
}

fn read_capped<R: Read>(
    reader: R,
    max_bytes: u64,
    exceeded: std::rc::Rc<std::cell::Cell<bool>>,
) -> Result<Vec<(DbEntry, u64)>, DbError> {
    const MAX_ENTRY_FILE: u64 = 256 << 20;
    let mut head = io::BufReader::new(reader);
    let magic = io::BufRead::fill_buf(&mut head).map_err(DbError::Corrupt)?;
    let stream: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(head))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::new(head).map_err(DbError::Corrupt)?)
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(head))
    } else {
        Box::new(head)
    };
    let mut archive = tar::Archive::new(Capped { inner: stream, left: max_bytes, exceeded });
    // dir -> (desc, files, mtime)
    let mut parts: BTreeMap<String, (Option<String>, Option<String>, u64)> = BTreeMap::new();
    for entry in archive.entries().map_err(DbError::Corrupt)? {
        let mut entry = entry.map_err(DbError::Corrupt)?;
        let path = String::from_utf8(entry.path_bytes().into_owned()).map_err(|_| DbError::InvalidUtf8)?;
        let Some((dir, file)) = path.trim_end_matches('/').split_once('/') else {
            continue;
        };
        if file != "desc" && file != "files" {
            continue;
        }
        if entry.size() > MAX_ENTRY_FILE {
            return Err(DbError::TooLarge(path));
        }
        let mtime = entry.header().mtime().unwrap_or(0);
        let mut text = String::new();
        entry.read_to_string(&mut text).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData => DbError::InvalidUtf8,
            _ => DbError::Corrupt(e),
        })?;
        let slot = parts.entry(dir.to_owned()).or_insert((None, None, mtime));
        if file == "desc" {
            slot.0 = Some(text)
        } else {
            slot.1 = Some(text)
        }
    }
    parts
        .into_iter()
        .map(|(dir, (desc, files, mtime))| {
            let desc = desc.ok_or(DbError::MissingDesc { dir })?;
            Ok((DbEntry::from_parts(desc, files)?, mtime))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decompression_bomb_is_refused_by_its_total_size() {
        // One real entry after a 4 MiB member of zeros that nobody reads: gzip makes it 4 KiB.
        let mut b = tar::Builder::new(Vec::new());
        let zeros = vec![0u8; 4 << 20];
        let desc = b"%FILENAME%\nfoo-1-1-any.pkg.tar.zst\n\n%NAME%\nfoo\n\n%VERSION%\n1-1\n\n";
        for (path, data) in [("padding", &zeros[..]), ("foo-1-1/desc", &desc[..])] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, path, data).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        assert!(gz.len() < 64 << 10, "{}", gz.len());
        match read_entries_limited(&gz[..], 1 << 20) {
            Err(DbError::ArchiveTooLarge { limit }) => assert_eq!(limit, 1 << 20),
            other => panic!("{other:?}"),
        }
        let entries = read_entries_limited(&gz[..], tar.len() as u64).unwrap();
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn normalizes_like_repo_add() {
        assert_eq!(normalize("  a \t b\n\nc  "), "a b c");
        assert_eq!(normalize(""), "");
    }

    fn package() -> Package {
        let info = b"pkgname = foo\npkgver = 1-1\narch = any\npkgdesc = a  \t b\n";
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in [(".PKGINFO", &info[..]), ("usr/share/foo", b"")] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, path, data).unwrap();
        }
        crate::package::read_package(&b.into_inner().unwrap()[..], &Default::default()).unwrap()
    }

    #[test]
    fn entries_never_get_long_lines_or_control_characters() {
        let pkg = package();
        let entry = DbEntry::new(&pkg, "foo-1-1-any.pkg.tar", DbFormat::Current, None).unwrap();
        assert!(entry.desc.contains("%DESC%\na b\n\n"), "{}", entry.desc);

        // A package made without read_package (its fields are public) is checked again, after
        // normalisation.
        let with_desc = |desc: String| {
            let mut p = package();
            p.pkginfo.entries.push(crate::pkginfo::Entry { key: "pkgdesc".into(), value: desc });
            DbEntry::new(&p, "foo-1-1-any.pkg.tar", DbFormat::Current, None)
        };
        assert!(with_desc(format!("{}  ", "a".repeat(MAX_LINE_LEN))).is_ok(), "trailing blanks are trimmed");
        match with_desc("a".repeat(MAX_LINE_LEN + 1)) {
            Err(e @ DbError::LineTooLong { section: "DESC", len, limit: MAX_LINE_LEN }) => {
                assert_eq!(len, MAX_LINE_LEN + 1);
                assert!(e.to_string().contains("%DESC%") && e.to_string().contains("65536"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            with_desc("a\0b".into()),
            Err(DbError::ControlCharacter { section: "DESC", code: 0 })
        ));
        let mut injected = package();
        injected.files.push("usr/bin/zz\n%FILES%\nusr/bin/sudo".into());
        assert!(matches!(
            DbEntry::new(&injected, "foo-1-1-any.pkg.tar", DbFormat::Current, None),
            Err(DbError::ControlCharacter { section: "FILES", code: 0x0a })
        ));
    }

    #[test]
    fn the_signature_goes_into_desc_only_in_the_format_of_repo_add_6_0() {
        let mut pkg = package();
        pkg.md5 = Some("0".repeat(32));
        let sig = [0x88u8, 0x75, 1, 2, 3];
        let old = DbEntry::new(&pkg, "foo-1-1-any.pkg.tar", DbFormat::WithMd5, Some(&sig)).unwrap();
        let sha = format!("%SHA256SUM%\n{}\n\n", pkg.sha256);
        assert!(old.desc.contains(&format!("{sha}%PGPSIG%\niHUBAgM=\n\n%ARCH%")), "{}", old.desc);
        let current = DbEntry::new(&pkg, "foo-1-1-any.pkg.tar", DbFormat::Current, Some(&sig)).unwrap();
        assert!(!current.desc.contains("%PGPSIG%"), "{}", current.desc);
        assert_eq!(current, DbEntry::new(&pkg, "foo-1-1-any.pkg.tar", DbFormat::Current, None).unwrap());

        let armored = b"-----BEGIN PGP SIGNATURE-----\n\niHUB\n-----END PGP SIGNATURE-----\n";
        for bad in [&armored[..], &[0u8; MAX_SIGNATURE_LEN + 1][..]] {
            let e = DbEntry::new(&pkg, "foo-1-1-any.pkg.tar", DbFormat::WithMd5, Some(bad)).unwrap_err();
            assert!(matches!(e, DbError::InvalidSignature(_)), "{e}");
        }
        let largest = vec![0u8; MAX_SIGNATURE_LEN];
        assert!(DbEntry::new(&pkg, "foo-1-1-any.pkg.tar", DbFormat::WithMd5, Some(&largest)).is_ok());
    }

    #[test]
    fn from_parts_reads_back() {
        let desc = "%FILENAME%\nfoo-1-1-any.pkg.tar.zst\n\n%NAME%\nfoo\n\n%VERSION%\n1-1\n\n".to_owned();
        let e = DbEntry::from_parts(desc, None).unwrap();
        assert_eq!(e.dir_name(), "foo-1-1");
        assert_eq!(e.filename, "foo-1-1-any.pkg.tar.zst");
        assert!(DbEntry::from_parts("%NAME%\nfoo\n".to_owned(), None).is_err());
    }
}
