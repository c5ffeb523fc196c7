//! Package versions and pacman's version comparison.
//!
//! [`vercmp`] is pacman's `alpm_pkg_vercmp` (lib/libalpm/version.c): it compares arbitrary strings of the
//! form `[epoch:]pkgver[-pkgrel]` segment by segment, exactly like `/usr/bin/vercmp`. [`Version`] is a
//! validated full package version (`[epoch:]pkgver-pkgrel`, makepkg's rules) ordered by [`vercmp`].

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Compares two version strings exactly as pacman's `vercmp` does.
///
/// Works on any bytes; as in C, a NUL byte ends a string. Character classes are ASCII.
///
/// ```
/// use std::cmp::Ordering;
/// use libvieter::version::vercmp;
/// assert_eq!(vercmp("1.0rc", "1.0"), Ordering::Less);
/// assert_eq!(vercmp("1:1.0", "0:1.1"), Ordering::Greater);
/// assert_eq!(vercmp("0:1.0", "1.0"), Ordering::Equal);
/// ```
pub fn vercmp(a: impl AsRef<[u8]>, b: impl AsRef<[u8]>) -> Ordering {
    let a = c_str(a.as_ref());
    let b = c_str(b.as_ref());
    if a == b {
        return Ordering::Equal;
    }
    let (e1, v1, r1) = parse_evr(a);
    let (e2, v2, r2) = parse_evr(b);
    rpmvercmp(e1, e2).then_with(|| rpmvercmp(v1, v2)).then_with(|| match (r1, r2) {
        (Some(r1), Some(r2)) => rpmvercmp(r1, r2),
        _ => Ordering::Equal,
    })
}

/// The bytes up to the first NUL, as C would see them.
fn c_str(s: &[u8]) -> &[u8] {
    match s.iter().position(|&c| c == 0) {
        Some(end) => &s[..end],
        None => s,
    }
}

/// Splits `[epoch:]version[-release]`: the epoch is the leading digits when a `:` follows them (empty
/// means `0`), the release is what follows the last `-` after the epoch.
fn parse_evr(evr: &[u8]) -> (&[u8], &[u8], Option<&[u8]>) {
    let digits = evr.iter().take_while(|c| c.is_ascii_digit()).count();
    let (epoch, rest): (&[u8], &[u8]) = if evr.get(digits) == Some(&b':') {
        let epoch = &evr[..digits];
        (if epoch.is_empty() { b"0" } else { epoch }, &evr[digits + 1..])
    } else {
        (b"0", evr)
    };
    // The search for the release separator starts after the epoch digits, as in pacman.
    match rest.iter().rposition(|&c| c == b'-') {
        Some(dash) => (epoch, &rest[..dash], Some(&rest[dash + 1..])),
        None => (epoch, rest, None),
    }
}

/// The segment comparison of rpm's `rpmvercmp` as pacman carries it.
fn rpmvercmp(a: &[u8], b: &[u8]) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    // `i`/`j` walk the strings; `seg_end1`/`seg_end2` are where the previous segment ended.
    let (mut i, mut j) = (0usize, 0usize);
    let (mut seg_end1, mut seg_end2) = (0usize, 0usize);
    let at = |s: &[u8], k: usize| s.get(k).copied().unwrap_or(0);
    while at(a, i) != 0 && at(b, j) != 0 {
        while at(a, i) != 0 && !at(a, i).is_ascii_alphanumeric() {
            i += 1;
        }
        while at(b, j) != 0 && !at(b, j).is_ascii_alphanumeric() {
            j += 1;
        }
        if at(a, i) == 0 || at(b, j) == 0 {
            break;
        }
        // Different separator lengths decide: more separators is newer.
        let (sep1, sep2) = (i - seg_end1, j - seg_end2);
        if sep1 != sep2 {
            return sep1.cmp(&sep2);
        }
        let is_num = at(a, i).is_ascii_digit();
        let class = |c: u8| {
            if is_num {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let mut p1 = i;
        while at(a, p1) != 0 && class(at(a, p1)) {
            p1 += 1;
        }
        let mut p2 = j;
        while at(b, p2) != 0 && class(at(b, p2)) {
            p2 += 1;
        }
        if p2 == j {
            // Segments of different types: numeric is newer than alpha.
            return if is_num { Ordering::Greater } else { Ordering::Less };
        }
        let (mut s1, mut s2) = (&a[i..p1], &b[j..p2]);
        if is_num {
            while s1.first() == Some(&b'0') {
                s1 = &s1[1..];
            }
            while s2.first() == Some(&b'0') {
                s2 = &s2[1..];
            }
            match s1.len().cmp(&s2.len()) {
                Ordering::Equal => {}
                longer_wins => return longer_wins,
            }
        }
        match s1.cmp(s2) {
            Ordering::Equal => {}
            other => return other,
        }
        i = p1;
        j = p2;
        seg_end1 = p1;
        seg_end2 = p2;
    }
    let (c1, c2) = (at(a, i), at(b, j));
    if c1 == 0 && c2 == 0 {
        return Ordering::Equal;
    }
    // A remaining alpha segment never beats an empty string.
    if (c1 == 0 && !c2.is_ascii_alphabetic()) || c1.is_ascii_alphabetic() {
        Ordering::Less
    } else {
        Ordering::Greater
    }
}

/// Why a version string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("version is empty")]
    Empty,
    #[error("version {0:?} has no pkgrel (expected [epoch:]pkgver-pkgrel)")]
    MissingPkgrel(String),
    #[error("epoch {0:?} must be a non-negative integer")]
    InvalidEpoch(String),
    #[error("pkgver {0:?} must be non-empty and must not contain whitespace, ':', '/', '-', '<', '>', '=' or control characters")]
    InvalidPkgver(String),
    #[error("pkgrel {0:?} must be digits, optionally followed by '.' and digits (e.g. 1 or 2.1)")]
    InvalidPkgrel(String),
    #[error("pkgver {0:?} may only contain ASCII letters, digits and . _ + ~ @ in a repository (its package file name must be usable in a download URL as written)")]
    UnsafePkgver(String),
}

/// A validated full package version `[epoch:]pkgver-pkgrel`, ordered as pacman orders it.
///
/// Two versions that pacman considers equal but spell differently (`1.01-1` and `1.1-1`) are ordered by
/// their text after the pacman comparison, so `Ord` and `Eq` agree.
///
/// ```
/// use libvieter::version::Version;
/// let v: Version = "2:1.2.3.r45.gabc_beta+x-3.1".parse().unwrap();
/// assert_eq!(v.epoch(), Some("2"));
/// assert_eq!(v.pkgver(), "1.2.3.r45.gabc_beta+x");
/// assert_eq!(v.pkgrel(), "3.1");
/// assert!(v > "1:9.9-1".parse().unwrap());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Version {
    full: String,
    /// Byte offset of the pkgver in `full`.
    ver_start: usize,
    /// Byte offset of the `-` before the pkgrel.
    rel_dash: usize,
}

impl Version {
    /// Parses and validates `[epoch:]pkgver-pkgrel` with makepkg's rules.
    pub fn parse(s: &str) -> Result<Self, VersionError> {
        if s.is_empty() {
            return Err(VersionError::Empty);
        }
        let (epoch, rest, ver_start) = match s.find(':') {
            Some(colon) => (Some(&s[..colon]), &s[colon + 1..], colon + 1),
            None => (None, s, 0),
        };
        if let Some(epoch) = epoch {
            if epoch.is_empty() || !epoch.bytes().all(|c| c.is_ascii_digit()) {
                return Err(VersionError::InvalidEpoch(epoch.to_owned()));
            }
        }
        let dash = rest.rfind('-').ok_or_else(|| VersionError::MissingPkgrel(s.to_owned()))?;
        let (pkgver, pkgrel) = (&rest[..dash], &rest[dash + 1..]);
        validate_pkgver(pkgver)?;
        validate_pkgrel(pkgrel)?;
        Ok(Version { full: s.to_owned(), ver_start, rel_dash: ver_start + dash })
    }

    /// The epoch as written, if any (`None` means the implicit `0`).
    pub fn epoch(&self) -> Option<&str> {
        (self.ver_start > 0).then(|| &self.full[..self.ver_start - 1])
    }

    /// The upstream version.
    pub fn pkgver(&self) -> &str {
        &self.full[self.ver_start..self.rel_dash]
    }

    /// The package release.
    pub fn pkgrel(&self) -> &str {
        &self.full[self.rel_dash + 1..]
    }

    /// The whole version as written.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// Checks the stricter rule for versions of packages in a repository
    /// ([`validate_repository_pkgver`]). [`Version::parse`] keeps makepkg's rule, so versions stored or
    /// reported before this rule existed still parse.
    pub fn check_repository_safe(&self) -> Result<(), VersionError> {
        validate_repository_pkgver(self.pkgver())
    }
}

/// Checks a pkgver with makepkg's rules (no whitespace, `:`, `/`, `-`, no `<>=`, printable).
pub fn validate_pkgver(pkgver: &str) -> Result<(), VersionError> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || ":/-<>=".contains(c);
    if pkgver.is_empty() || pkgver.chars().any(bad) {
        return Err(VersionError::InvalidPkgver(pkgver.to_owned()));
    }
    Ok(())
}

/// Checks that a pkgver is fit for a repository: only ASCII letters, digits and `. _ + ~ @`.
///
/// [`validate_pkgver`] is makepkg's rule, which lets through anything printable (`1.é`, `1#2`, `1?x`, `1%41`):
/// such a version becomes part of the package file name, and pacman requests `{server}/{filename}` without
/// escaping it, so the download fails (or fetches another name). The characters kept are the ones real
/// Arch and AUR versions use and that mean the same unescaped in a URL path segment (RFC 3986 `pchar`):
/// letters and digits, `.` and `_` (separators), `+` (`2.39+r22+gf3c0f4a`), `~` (`1.0~rc1`) and `@`
/// (allowed in package names too). `:` and `-` cannot occur in a pkgver; the epoch and pkgrel are digits.
///
/// ```
/// use libvieter::version::validate_repository_pkgver;
/// assert!(validate_repository_pkgver("2.39+r22+gf3c0f4a").is_ok());
/// assert!(validate_repository_pkgver("1.é").is_err());
/// assert!(validate_repository_pkgver("1%2F").is_err());
/// ```
pub fn validate_repository_pkgver(pkgver: &str) -> Result<(), VersionError> {
    validate_pkgver(pkgver)?;
    let safe = |c: u8| c.is_ascii_alphanumeric() || b"._+~@".contains(&c);
    if !pkgver.bytes().all(safe) {
        return Err(VersionError::UnsafePkgver(pkgver.to_owned()));
    }
    Ok(())
}

/// Checks a pkgrel with makepkg's rules: `digits[.digits]`.
pub fn validate_pkgrel(pkgrel: &str) -> Result<(), VersionError> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    let ok = match pkgrel.split_once('.') {
        Some((major, minor)) => digits(major) && digits(minor),
        None => digits(pkgrel),
    };
    if ok {
        Ok(())
    } else {
        Err(VersionError::InvalidPkgrel(pkgrel.to_owned()))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        vercmp(&self.full, &other.full).then_with(|| self.full.cmp(&other.full))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

impl TryFrom<String> for Version {
    type Error = VersionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Version::parse(&s)
    }
}

impl From<Version> for String {
    fn from(v: Version) -> String {
        v.full
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({:?})", self.full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ord(n: i32) -> Ordering {
        n.cmp(&0)
    }

    /// pacman's test/util/vercmptest.sh vectors (and the ones in PACMAN-FORMATS.md).
    const VECTORS: &[(&str, &str, i32)] = &[
        ("1.5.0", "1.5.0", 0),
        ("1.5.1", "1.5.0", 1),
        ("1.5.1", "1.5", 1),
        ("1.5.0", "1.5", 1),
        ("1.5b", "1.5", -1),
        ("1.5", "1.5b", 1),
        ("1.5-1", "1.5.1-1", -1),
        ("1.5", "1.5-1", 0),
        ("1.0a", "1.0alpha", -1),
        ("1.0alpha", "1.0b", -1),
        ("1.0b", "1.0beta", -1),
        ("1.0beta", "1.0p", -1),
        ("1.0p", "1.0pre", -1),
        ("1.0pre", "1.0rc", -1),
        ("1.0rc", "1.0", -1),
        ("1.0", "1.0.a", -1),
        ("1.0.a", "1.0.1", -1),
        ("1", "1.0", -1),
        ("1.0", "1.1", -1),
        ("1.1", "1.1.1", -1),
        ("1.1.1", "1.2", -1),
        ("1.2", "2.0", -1),
        ("2.0", "3.0.0", -1),
        ("1.5.a", "1.5", 1),
        ("1.5.1", "1.5.b", 1),
        ("1.5.b", "1.5.c", -1),
        ("1.5.b", "1.5.2", -1),
        ("2.0", "2_0", 0),
        ("2.0", "2_0", 0),
        ("2.0_a", "2_0.a", 0),
        ("2.0a", "2.0.a", -1),
        ("2___a", "2_a", 1),
        ("1.5.0-1", "1.5.0-1", 0),
        ("1.5.0-1", "1.5.0-2", -1),
        ("1.5.0-1", "1.5.1-1", -1),
        ("1.5.0-2", "1.5.1-1", -1),
        ("1.5-1", "1.5", 0),
        ("1.1-1", "1.1", 0),
        ("1.1-1", "1.1-1.1", -1),
        ("1.0-1", "1.0-1.0", -1),
        ("0:1.0", "1.0", 0),
        ("0:1.0", "1:1.0", -1),
        ("1:1.0", "0:1.1", 1),
        ("1:1.0", "2:1.1", -1),
        ("1:1.0", "0:1.0-1", 1),
        ("1:1.0-1", "2:1.1-1", -1),
        ("1:1.0-1", "1.1-1", 1),
        ("1:1.0", "1.1", 1),
        ("1.0~rc1", "1.0", 1),
        ("1.01", "1.1", 0),
        ("1.a", "1.1", -1),
        ("", "", 0),
        ("1", "", 1),
        ("a", "", -1),
    ];

    #[test]
    fn pacman_vectors() {
        for &(a, b, want) in VECTORS {
            assert_eq!(vercmp(a, b), ord(want), "vercmp {a} {b}");
            assert_eq!(vercmp(b, a), ord(-want), "vercmp {b} {a}");
        }
    }

    #[test]
    fn nul_ends_the_string() {
        assert_eq!(vercmp(b"1.0\0zzz", b"1.0"), Ordering::Equal);
    }

    #[test]
    fn version_parts() {
        let v = Version::parse("1.2-3").unwrap();
        assert_eq!((v.epoch(), v.pkgver(), v.pkgrel()), (None, "1.2", "3"));
        let v = Version::parse("10:a.b+c_d@e-1.2").unwrap();
        assert_eq!((v.epoch(), v.pkgver(), v.pkgrel()), (Some("10"), "a.b+c_d@e", "1.2"));
    }

    #[test]
    fn invalid_versions() {
        for bad in [
            "",
            "1.0",
            ":1.0-1",
            "a:1.0-1",
            "1.0-",
            "1.0-a",
            "1.0-1.",
            "1.0-1.2.3",
            "1 0-1",
            "1/0-1",
            "1:2:3-1",
            "1<2-1",
            "-1",
            "1.0\n-1",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn repository_versions_are_url_safe() {
        // Real Arch and AUR versions.
        for ok in [
            "1.0-1",
            "2:1.2.3.r45.gabc_beta+x-3.1",
            "2.39+r22+gf3c0f4a-1",
            "6.6.1.arch1-1",
            "1:9.0.2153-1",
            "0.9.8zh-1",
            "1.0~rc1-1",
            "r1234.0abcdef-1",
            "20240101-1",
            "1_2_3-1.1",
            "10:a.b+c_d@e-1.2",
        ] {
            let v = Version::parse(ok).unwrap();
            assert!(v.check_repository_safe().is_ok(), "{ok}");
        }
        for bad in [
            "1.é-1", "1#2-1", "1?x-1", "1%41-1", "1&2-1", "1'2-1", "1\\2-1", "1\"2-1", "1,2-1", "1!-1",
            "1^2-1",
        ] {
            let v = Version::parse(bad).unwrap_or_else(|e| panic!("{bad}: makepkg's rule allows it: {e}"));
            let err = v.check_repository_safe().unwrap_err();
            assert!(matches!(err, VersionError::UnsafePkgver(_)), "{bad}");
            assert!(err.to_string().contains("ASCII letters, digits"), "{err}");
        }
        // A pkgver makepkg refuses is refused by the stricter rule for makepkg's reason.
        assert!(matches!(validate_repository_pkgver("1 0"), Err(VersionError::InvalidPkgver(_))));
    }

    #[test]
    fn ord_is_consistent_with_eq() {
        let a = Version::parse("1.01-1").unwrap();
        let b = Version::parse("1.1-1").unwrap();
        assert_eq!(vercmp(a.as_str(), b.as_str()), Ordering::Equal);
        assert_ne!(a, b);
        assert_ne!(a.cmp(&b), Ordering::Equal);
    }
}
