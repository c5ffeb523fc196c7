//! The `.PKGINFO` file that makepkg writes into every package.
//!
//! [`PkgInfo::parse`] reads it exactly as libalpm does: `key = value` lines, `#` comments and blank lines
//! skipped, every key kept in order (unknown keys too), lines of any other shape recorded as ignored.
//! [`PkgInfo::validate`] turns it into a typed [`PackageInfo`] with a validated name, version and arch.

use serde::{Deserialize, Serialize};

use crate::name::{Arch, NameError, PkgName};
use crate::version::{Version, VersionError};

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
    /// Parses `.PKGINFO` bytes. Fails only on text that is not UTF-8.
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

    /// Validates the required fields and returns the typed view.
    pub fn validate(&self) -> Result<PackageInfo, PkgInfoError> {
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
}
