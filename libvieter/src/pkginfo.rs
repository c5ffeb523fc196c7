//! The `.PKGINFO` file that makepkg writes into every package.
//!
//! [`PkgInfo::parse`] reads it exactly as libalpm does: `key = value` lines, `#` comments and blank lines
//! skipped, every key kept in order (unknown keys too), lines of any other shape recorded as ignored.
//! [`PkgInfo::validate`] turns it into a typed [`PackageInfo`] with a validated name, version and arch.
//!
//! Beyond makepkg's own rules, a package must be fit for a repository that pacman reads:
//!
//! - No line is longer than [`MAX_LINE_LEN`] (64 KiB). pacman reads `.PKGINFO` (`-U`) and every
//!   `desc`/`files` line of a sync db with `_alpm_archive_fgets` and a 512 KiB buffer: a line of 524,288
//!   bytes or more fails, and in a sync db it fails the whole repository (`error: could not parse package
//!   description file '...' from db`; checked with pacman 6.0.2: 524,287 bytes still parse). repo-add's
//!   normalisation (runs of whitespace become one space) only shortens values, so bounding the `.PKGINFO`
//!   line bounds the `desc` line.
//! - No control characters in `key = value` lines (C0, DEL, C1), except tab, vertical tab, form feed and
//!   carriage return, which the normalisation turns into spaces. A NUL ends a line for libalpm.
//! - The package file name `{name}-{version}-{arch}.pkg.tar.zst` is at most [`MAX_PACKAGE_FILENAME_LEN`]
//!   (246) bytes: pacman keeps `{filename}.sig.part` in its cache and a file name has at most 255 bytes.
//! - The pkgver is [`validate_repository_pkgver`]'s: ASCII letters, digits and `. _ + ~ @`, so the file
//!   name works unescaped in a download URL.

use serde::{Deserialize, Serialize};

pub use crate::db::MAX_LINE_LEN;
use crate::name::{Arch, NameError, PkgName};
use crate::version::{Version, VersionError};

#[cfg(doc)]
use crate::version::validate_repository_pkgver;

/// The longest package file name accepted: 255 bytes less pacman's `.sig.part` suffix.
pub const MAX_PACKAGE_FILENAME_LEN: usize = 255 - ".sig.part".len();

/// The longest extension a package file can have ([`crate::package::Compression::package_extension`]);
/// the file name limit is checked with it, whatever the compression.
pub(crate) const LONGEST_PACKAGE_EXTENSION: &str = ".pkg.tar.zst";

/// A key for an error message: at most 64 bytes of it.
fn short(key: &str) -> String {
    let mut end = key.len().min(64);
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    key[..end].to_owned()
}

/// Why a `.PKGINFO` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkgInfoError {
    #[error(".PKGINFO line {line} is not valid UTF-8")]
    InvalidUtf8 { line: usize },
    #[error(".PKGINFO has no {0} line")]
    Missing(&'static str),
    #[error(".PKGINFO {key}: {source}")]
    InvalidName {
        key: &'static str,
        #[source]
        source: NameError,
    },
    #[error(".PKGINFO pkgver: {0}")]
    InvalidVersion(#[from] VersionError),
    #[error(".PKGINFO {key} = {value:?} is not a non-negative integer")]
    InvalidNumber { key: &'static str, value: String },
    #[error(".PKGINFO line {line} ({key}) is {len} bytes long; the limit is {limit} bytes per line (pacman cannot read a repository with lines over 512 KiB)")]
    LineTooLong { line: usize, key: String, len: usize, limit: usize },
    #[error(".PKGINFO {key} contains the control character U+{code:04X}; only printable characters and tabs are allowed")]
    ControlCharacter { key: String, code: u32 },
    #[error("the package file name {filename:?} would be {len} bytes long; the limit is {limit} bytes (pacman appends .sig.part to it in its cache, and a file name has at most 255 bytes)")]
    FileNameTooLong { filename: String, len: usize, limit: usize },
}

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub value: String,
}

/// A parsed `.PKGINFO`: every `key = value` line in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PkgInfo {
    /// The `key = value` lines in order; repeatable keys appear once per value.
    pub entries: Vec<Entry>,
    /// 1-based numbers of lines that are neither blank, a comment nor `key = value` (libalpm skips them).
    pub ignored_lines: Vec<usize>,
}

impl PkgInfo {
    /// Parses `.PKGINFO` bytes. Fails only on text that is not UTF-8 and on lines longer than
    /// [`MAX_LINE_LEN`].
    ///
    /// ```
    /// use libvieter::pkginfo::PkgInfo;
    /// let info = PkgInfo::parse(b"# made by makepkg\npkgname = foo\ndepend = a\ndepend = b>=2\n").unwrap();
    /// assert_eq!(info.get("pkgname"), Some("foo"));
    /// assert_eq!(info.get_all("depend").collect::<Vec<_>>(), ["a", "b>=2"]);
    /// ```
    pub fn parse(bytes: &[u8]) -> Result<Self, PkgInfoError> {
        let mut info = PkgInfo::default();
        for (index, raw) in bytes.split(|&c| c == b'\n').enumerate() {
            let line_no = index + 1;
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.len() > MAX_LINE_LEN {
                let space = raw.iter().position(|&c| c == b' ');
                let key = match space {
                    _ if raw[0] == b'#' => "comment".to_owned(),
                    Some(space) if raw[space..].starts_with(b" = ") => {
                        short(&String::from_utf8_lossy(&raw[..space.min(64)]))
                    }
                    _ => "not a key = value line".to_owned(),
                };
                return Err(PkgInfoError::LineTooLong {
                    line: line_no,
                    key,
                    len: raw.len(),
                    limit: MAX_LINE_LEN,
                });
            }
            if raw.is_empty() || raw[0] == b'#' {
                continue;
            }
            let line = std::str::from_utf8(raw).map_err(|_| PkgInfoError::InvalidUtf8 { line: line_no })?;
            // As libalpm: the key ends at the first space, which must start " = ".
            match line.find(' ') {
                Some(space) if line[space..].starts_with(" = ") => info
                    .entries
                    .push(Entry { key: line[..space].to_owned(), value: line[space + 3..].to_owned() }),
                _ => info.ignored_lines.push(line_no),
            }
        }
        Ok(info)
    }

    /// The last value of `key` (scalar keys: a later line overrides an earlier one, as in libalpm).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().rev().find(|e| e.key == key).map(|e| e.value.as_str())
    }

    /// Every value of a repeatable `key`, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries.iter().filter(move |e| e.key == key).map(|e| e.value.as_str())
    }

    /// Validates the required fields and the repository rules (module docs) and returns the typed view.
    pub fn validate(&self) -> Result<PackageInfo, PkgInfoError> {
        // Tab, vertical tab, form feed and carriage return become spaces in the db (normalisation).
        let forbidden = |c: &char| c.is_control() && !matches!(c, '\t' | '\x0b' | '\x0c' | '\r');
        for e in &self.entries {
            if let Some(c) = e.key.chars().chain(e.value.chars()).find(forbidden) {
                return Err(PkgInfoError::ControlCharacter { key: short(&e.key), code: u32::from(c) });
            }
        }
        let scalar = |key: &str| self.get(key).map(str::trim).filter(|v| !v.is_empty());
        let list = |key: &str| self.get_all(key).map(str::to_owned).collect::<Vec<_>>();
        let name_of = |key: &'static str, v: &str| {
            PkgName::new(v).map_err(|source| PkgInfoError::InvalidName { key, source })
        };
        let number = |key: &'static str| -> Result<Option<u64>, PkgInfoError> {
            scalar(key)
                .map(|v| {
                    v.parse::<u64>().map_err(|_| PkgInfoError::InvalidNumber { key, value: v.to_owned() })
                })
                .transpose()
        };
        let name = name_of("pkgname", scalar("pkgname").ok_or(PkgInfoError::Missing("pkgname"))?)?;
        let base = scalar("pkgbase").map(|b| name_of("pkgbase", b)).transpose()?;
        let version = Version::parse(scalar("pkgver").ok_or(PkgInfoError::Missing("pkgver"))?)?;
        let arch = scalar("arch").ok_or(PkgInfoError::Missing("arch"))?;
        let arch = Arch::new(arch).map_err(|source| PkgInfoError::InvalidName { key: "arch", source })?;
        version.check_repository_safe()?;
        let filename = format!("{name}-{version}-{arch}{LONGEST_PACKAGE_EXTENSION}");
        if filename.len() > MAX_PACKAGE_FILENAME_LEN {
            return Err(PkgInfoError::FileNameTooLong {
                len: filename.len(),
                filename,
                limit: MAX_PACKAGE_FILENAME_LEN,
            });
        }
        const KNOWN: &[&str] = &[
            "pkgname",
            "pkgbase",
            "pkgver",
            "pkgdesc",
            "url",
            "builddate",
            "packager",
            "size",
            "arch",
            "license",
            "replaces",
            "group",
            "conflict",
            "provides",
            "backup",
            "depend",
            "optdepend",
            "makedepend",
            "checkdepend",
            "xdata",
        ];
        Ok(PackageInfo {
            name,
            base,
            version,
            desc: scalar("pkgdesc").map(str::to_owned),
            url: scalar("url").map(str::to_owned),
            builddate: number("builddate")?,
            packager: scalar("packager").map(str::to_owned),
            size: number("size")?.unwrap_or(0),
            arch,
            licenses: list("license"),
            replaces: list("replaces"),
            groups: list("group"),
            conflicts: list("conflict"),
            provides: list("provides"),
            backup: list("backup"),
            depends: list("depend"),
            optdepends: list("optdepend"),
            makedepends: list("makedepend"),
            checkdepends: list("checkdepend"),
            xdata: list("xdata"),
            extra: self.entries.iter().filter(|e| !KNOWN.contains(&e.key.as_str())).cloned().collect(),
        })
    }
}

/// The typed content of a valid `.PKGINFO`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageInfo {
    pub name: PkgName,
    pub base: Option<PkgName>,
    pub version: Version,
    pub desc: Option<String>,
    pub url: Option<String>,
    /// Seconds since the epoch.
    pub builddate: Option<u64>,
    pub packager: Option<String>,
    /// Installed size in bytes (`size`, the db's `%ISIZE%`).
    pub size: u64,
    pub arch: Arch,
    pub licenses: Vec<String>,
    pub replaces: Vec<String>,
    pub groups: Vec<String>,
    pub conflicts: Vec<String>,
    pub provides: Vec<String>,
    pub backup: Vec<String>,
    pub depends: Vec<String>,
    pub optdepends: Vec<String>,
    pub makedepends: Vec<String>,
    pub checkdepends: Vec<String>,
    pub xdata: Vec<String>,
    /// Keys this version of libvieter does not know, in file order.
    pub extra: Vec<Entry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAKEPKG: &str = "# Generated by makepkg 6.0.2
# using fakeroot version 1.31
pkgname = foo
pkgbase = foo-base
xdata = pkgtype=split
pkgver = 2:1.2.3.r45.gabc_beta+x-3.1
pkgdesc = A package: with = signs
url = https://example.org/?a=b
builddate = 1700000000
packager = Some One <one@example.org>
size = 12345
arch = x86_64
license = GPL
license = MIT
depend = bar>=1.0
optdepend = baz: for the baz: feature
future = kept
";

    #[test]
    fn parses_makepkg_output() {
        let raw = PkgInfo::parse(MAKEPKG.as_bytes()).unwrap();
        assert!(raw.ignored_lines.is_empty());
        let info = raw.validate().unwrap();
        assert_eq!(info.name.as_str(), "foo");
        assert_eq!(info.base.as_ref().map(PkgName::as_str), Some("foo-base"));
        assert_eq!(info.version.as_str(), "2:1.2.3.r45.gabc_beta+x-3.1");
        assert_eq!(info.desc.as_deref(), Some("A package: with = signs"));
        assert_eq!(info.url.as_deref(), Some("https://example.org/?a=b"));
        assert_eq!(info.builddate, Some(1_700_000_000));
        assert_eq!(info.size, 12345);
        assert_eq!(info.licenses, ["GPL", "MIT"]);
        assert_eq!(info.optdepends, ["baz: for the baz: feature"]);
        assert_eq!(info.xdata, ["pkgtype=split"]);
        assert_eq!(info.extra, [Entry { key: "future".into(), value: "kept".into() }]);
    }

    #[test]
    fn odd_lines_are_ignored_like_libalpm() {
        let raw = PkgInfo::parse(b"pkgname=foo\n  pkgname = bar\npkgname = ok\r\nx\n\n").unwrap();
        assert_eq!(raw.get("pkgname"), Some("ok"));
        assert_eq!(raw.ignored_lines, [1, 2, 4]);
    }

    #[test]
    fn errors_name_the_problem() {
        let err = |s: &str| PkgInfo::parse(s.as_bytes()).unwrap().validate().unwrap_err().to_string();
        assert!(err("pkgver = 1-1\narch = any\n").contains("no pkgname"));
        assert!(err("pkgname = -x\npkgver = 1-1\narch = any\n").contains("pkgname"));
        assert!(err("pkgname = x\npkgver = 1\narch = any\n").contains("pkgrel"));
        assert!(err("pkgname = x\npkgver = 1-1\narch = any\nsize = -5\n").contains("size"));
        assert!(
            err("pkgname = x\npkgver = 1-1\narch = any\nsize = 99999999999999999999999\n").contains("size")
        );
        assert!(PkgInfo::parse(b"pkgdesc = \xff\n").is_err());
    }

    const BASE: &str = "pkgname = x\npkgver = 1-1\narch = any\n";

    fn check(extra: &str) -> Result<PackageInfo, PkgInfoError> {
        PkgInfo::parse(format!("{BASE}{extra}").as_bytes())?.validate()
    }

    #[test]
    fn lines_are_bounded() {
        // "pkgdesc = " is 10 bytes: this line is exactly at the limit.
        let at_limit = format!("pkgdesc = {}\n", "a".repeat(MAX_LINE_LEN - 10));
        assert_eq!(check(&at_limit).unwrap().desc.map(|d| d.len()), Some(MAX_LINE_LEN - 10));
        let over = format!("pkgdesc = {}\n", "a".repeat(MAX_LINE_LEN - 9));
        let err = check(&over).unwrap_err();
        assert_eq!(
            err,
            PkgInfoError::LineTooLong {
                line: 4,
                key: "pkgdesc".into(),
                len: MAX_LINE_LEN + 1,
                limit: MAX_LINE_LEN
            }
        );
        let message = err.to_string();
        assert!(message.contains("pkgdesc") && message.contains("65536"), "{message}");
        // What pacman 6.0.2 failed on (and a whole repository with it).
        let half_mib = format!("pkgdesc = {}\n", "a".repeat(512 << 10));
        assert!(matches!(check(&half_mib), Err(PkgInfoError::LineTooLong { .. })));
        // Any line: a dependency, a comment, a line libalpm would skip, one with a CR before its newline.
        for (line, key) in [
            (format!("depend = {}\n", "b".repeat(MAX_LINE_LEN)), "depend"),
            (format!("# {}\n", "c".repeat(MAX_LINE_LEN)), "comment"),
            (format!("{}\n", "d".repeat(MAX_LINE_LEN + 1)), "not a key = value line"),
            (format!("url = {}\r\n", "e".repeat(MAX_LINE_LEN)), "url"),
        ] {
            match check(&line) {
                Err(PkgInfoError::LineTooLong { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}: {other:?}"),
            }
        }
        // Whitespace that normalisation would collapse still counts: the raw line is what pacman -U reads.
        let spaced = format!("pkgdesc = a{}b\n", " ".repeat(MAX_LINE_LEN));
        assert!(matches!(check(&spaced), Err(PkgInfoError::LineTooLong { .. })));
    }

    #[test]
    fn control_characters_are_refused() {
        for (value, code) in
            [("a\0b", 0u32), ("a\x01b", 1), ("a\x1bb", 0x1b), ("a\x7fb", 0x7f), ("a\u{85}b", 0x85)]
        {
            match check(&format!("pkgdesc = {value}\n")) {
                Err(e @ PkgInfoError::ControlCharacter { .. }) => {
                    assert_eq!(e, PkgInfoError::ControlCharacter { key: "pkgdesc".into(), code });
                    assert!(e.to_string().contains(&format!("U+{code:04X}")), "{e}");
                }
                other => panic!("{value:?}: {other:?}"),
            }
        }
        // In any key's value (or in a key), not only the ones written into desc.
        assert!(matches!(check("backup = etc/\x01x\n"), Err(PkgInfoError::ControlCharacter { .. })));
        assert!(matches!(check("x\x01y = z\n"), Err(PkgInfoError::ControlCharacter { .. })));
        // Whitespace that repo-add's normalisation turns into spaces is fine.
        let info = check("pkgdesc = a\tb\x0bc\x0cd\re\n").unwrap();
        assert_eq!(info.desc.as_deref(), Some("a\tb\x0bc\x0cd\re"));
    }

    #[test]
    fn package_file_names_fit_pacman_s_cache() {
        // `{name}-1-1-any.pkg.tar.zst`: 8 + 12 bytes besides the name.
        let fits = "n".repeat(MAX_PACKAGE_FILENAME_LEN - 20);
        let info =
            PkgInfo::parse(format!("pkgname = {fits}\npkgver = 1-1\narch = any\n").as_bytes()).unwrap();
        assert!(info.validate().is_ok());
        let long = format!("{fits}n");
        let info =
            PkgInfo::parse(format!("pkgname = {long}\npkgver = 1-1\narch = any\n").as_bytes()).unwrap();
        match info.validate() {
            Err(e @ PkgInfoError::FileNameTooLong { len: 247, limit: 246, .. }) => {
                assert!(e.to_string().contains("246"), "{e}");
                assert!(e.to_string().contains(&format!("{long}-1-1-any.pkg.tar.zst")), "{e}");
            }
            other => panic!("{other:?}"),
        }
        // The version counts too.
        let info =
            PkgInfo::parse(format!("pkgname = x\npkgver = {}-1\narch = any\n", "1".repeat(240)).as_bytes());
        assert!(matches!(info.unwrap().validate(), Err(PkgInfoError::FileNameTooLong { .. })));
        // 255 bytes is a valid name but no usable file; 256 is not a name.
        for (len, want_file_name_error) in [(255, true), (256, false)] {
            let name = "n".repeat(len);
            let info =
                PkgInfo::parse(format!("pkgname = {name}\npkgver = 1-1\narch = any\n").as_bytes()).unwrap();
            match info.validate() {
                Err(PkgInfoError::FileNameTooLong { .. }) if want_file_name_error => {}
                Err(PkgInfoError::InvalidName { key: "pkgname", .. }) if !want_file_name_error => {}
                other => panic!("{len}: {other:?}"),
            }
        }
        assert_eq!(MAX_PACKAGE_FILENAME_LEN, 246);
    }

    #[test]
    fn versions_must_be_url_safe() {
        for bad in ["1.é-1", "1#2-1", "1?2-1", "1%2F-1", "1,2-1"] {
            match check(&format!("pkgver = {bad}\n")) {
                Err(e @ PkgInfoError::InvalidVersion(VersionError::UnsafePkgver(_))) => {
                    assert!(e.to_string().contains("pkgver"), "{e}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(check("pkgver = 1:2.39+r22+gf3c0f4a~x@y_z-1.1\n").is_ok());
    }
}
