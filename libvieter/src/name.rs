//! Validated names: package names, architectures, repository names, and the strings a build target
//! is made of (git refs, subdirectories, image references, clone and PKGBUILD URLs).
//!
//! Invalid values cannot be constructed: [`PkgName`] follows makepkg's rules for `pkgname`/`pkgbase`,
//! [`Arch`] pacman's rules for an architecture (`any` included), [`GitRef`] `git check-ref-format`'s.
//! Every refusal is a [`NameError`] whose message says what is wrong.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("package name is empty")]
    EmptyName,
    #[error("package name {0:?} may only contain letters, digits and @ . _ + - and must not start with '-' or '.'")]
    InvalidName(String),
    #[error("package name {0:?} is longer than 255 bytes")]
    NameTooLong(String),
    #[error("architecture {0:?} may only contain letters, digits and '_' (and must not be empty)")]
    InvalidArch(String),
    #[error(
        "'{0}' is not a valid repository name: use letters, digits, '.', '_' and '-', not starting with '.' \
         or '-', at most 128 bytes; 'api' and 'ui' are reserved"
    )]
    InvalidRepo(String),
    /// Not a valid git branch or tag name; `reason` completes "it ...".
    #[error("'{value}' is not a valid git branch name: it {reason}")]
    InvalidGitRef { value: String, reason: &'static str },
    /// Not a valid subdirectory of a repository; `reason` completes "it ...".
    #[error("'{value}' is not a valid subdirectory: it {reason}")]
    InvalidSubPath { value: String, reason: &'static str },
    #[error("'{0}' is not a valid image reference: it must be 1-256 bytes without whitespace")]
    InvalidImage(String),
    /// Not a URL `git clone` may use ([`CloneUrl::SCHEMES`]).
    #[error("{}", url_message(.problem, .value, CloneUrl::SCHEMES))]
    InvalidCloneUrl { value: String, problem: UrlProblem },
    /// Not a URL a PKGBUILD may be downloaded from ([`PkgbuildUrl::SCHEMES`]).
    #[error("{}", url_message(.problem, .value, PkgbuildUrl::SCHEMES))]
    InvalidPkgbuildUrl { value: String, problem: UrlProblem },
}

/// What is wrong with a URL ([`NameError::InvalidCloneUrl`], [`NameError::InvalidPkgbuildUrl`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlProblem {
    Empty,
    /// Longer than 2048 bytes, or whitespace or control characters in it.
    TooLongOrWhitespace,
    /// No `scheme://`.
    NoScheme,
    /// A scheme that is not allowed here.
    Scheme(String),
    /// A `file://` URL without a path.
    NoPath,
    /// No host after `scheme://` (and any `user@`).
    NoHost,
}

/// The message for `problem` of URL `url`, where `schemes` are allowed.
fn url_message(problem: &UrlProblem, url: &str, schemes: &[&str]) -> String {
    let allowed = schemes.join(", ");
    match problem {
        UrlProblem::Empty => "is empty".to_owned(),
        UrlProblem::TooLongOrWhitespace => {
            format!("'{url}' is not a valid URL: it is longer than 2048 bytes or contains whitespace")
        }
        UrlProblem::NoScheme => format!("'{url}' is not a URL: it needs a scheme ({allowed})"),
        UrlProblem::Scheme(scheme) => format!("'{url}' has scheme '{scheme}': use {allowed}"),
        UrlProblem::NoPath => format!("'{url}' has no path"),
        UrlProblem::NoHost => format!("'{url}' has no host"),
    }
}

/// A package name (`pkgname` or `pkgbase`): `[A-Za-z0-9@._+-]`, not starting with `-` or `.`.
///
/// ```
/// use libvieter::name::PkgName;
/// assert!(PkgName::new("python-foo_bar+1@x").is_ok());
/// assert!(PkgName::new("-rf").is_err());
/// assert!(PkgName::new("../etc").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PkgName(String);

impl PkgName {
    /// Validates `name`.
    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(NameError::EmptyName);
        }
        if name.len() > 255 {
            return Err(NameError::NameTooLong(name));
        }
        let valid_char = |c: u8| c.is_ascii_alphanumeric() || b"@._+-".contains(&c);
        if name.starts_with(['-', '.']) || !name.bytes().all(valid_char) {
            return Err(NameError::InvalidName(name));
        }
        Ok(PkgName(name))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A package architecture: `[A-Za-z0-9_]+` (`x86_64`, `aarch64`, `any`, ...).
///
/// ```
/// use libvieter::name::Arch;
/// let any: Arch = "any".parse().unwrap();
/// assert!(any.is_any());
/// assert!("x86-64".parse::<Arch>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Arch(String);

impl Arch {
    /// Validates `arch`.
    pub fn new(arch: impl Into<String>) -> Result<Self, NameError> {
        let arch = arch.into();
        let valid_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        if arch.is_empty() || arch.len() > 64 || !arch.bytes().all(valid_char) {
            return Err(NameError::InvalidArch(arch));
        }
        Ok(Arch(arch))
    }

    /// `true` for the architecture-independent `any`.
    pub fn is_any(&self) -> bool {
        self.0 == "any"
    }

    /// The architecture as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A repository name: `[A-Za-z0-9._-]+`, at most 128 bytes, not starting with `.` or `-`, not `api`
/// or `ui` (the server's API lives under `/api`, its web interface under `/ui`). It is a directory name and a URL segment as it stands.
///
/// ```
/// use libvieter::name::RepoName;
/// assert!(RepoName::new("extra-testing").is_ok());
/// assert!(RepoName::new("api").is_err());
/// assert!(RepoName::new("ui").is_err());
/// assert!(RepoName::new("../etc").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoName(String);

impl RepoName {
    /// Validates `name`.
    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let name = name.into();
        let ok = !name.is_empty()
            && name.len() <= 128
            && !name.starts_with(['.', '-'])
            && name.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
            && name != "api"
            && name != "ui";
        if ok {
            Ok(RepoName(name))
        } else {
            Err(NameError::InvalidRepo(name))
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A git branch or tag name, following `git check-ref-format`'s rules: no whitespace or control
/// characters, none of `~ ^ : ? * [ \`, no `..`, `@{` or `//`, not starting with `-` or `/`, not ending
/// with `/`, `.` or `.lock`, no component starting with `.`.
///
/// ```
/// use libvieter::name::GitRef;
/// assert!(GitRef::new("release/1.x").is_ok());
/// assert_eq!(
///     GitRef::new("-x").unwrap_err().to_string(),
///     "'-x' is not a valid git branch name: it starts with '-' or '/'"
/// );
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GitRef(String);

impl GitRef {
    /// Validates `value`.
    pub fn new(value: impl Into<String>) -> Result<Self, NameError> {
        let s = value.into();
        let reason = if s.is_empty() {
            Some("is empty")
        } else if s.len() > 255 {
            Some("is longer than 255 bytes")
        } else if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Some("contains whitespace or control characters")
        } else if s.contains(['~', '^', ':', '?', '*', '[', '\\']) {
            Some("contains one of ~ ^ : ? * [ \\")
        } else if s.contains("..") || s.contains("@{") || s.contains("//") {
            Some("contains '..', '@{' or '//'")
        } else if s.starts_with(['-', '/']) {
            Some("starts with '-' or '/'")
        } else if s.ends_with(['/', '.']) || s.ends_with(".lock") || s == "@" {
            Some("ends with '/', '.' or '.lock' (or is '@')")
        } else if s.split('/').any(|c| c.starts_with('.')) {
            Some("has a component starting with '.'")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(NameError::InvalidGitRef { value: s, reason }),
            None => Ok(GitRef(s)),
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A subdirectory of a git repository: relative (no leading `/`), no `..` or empty component, no
/// backslash or control characters.
///
/// ```
/// use libvieter::name::SubPath;
/// assert!(SubPath::new("pkgs/foo/").is_ok());
/// assert!(SubPath::new("../etc").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SubPath(String);

impl SubPath {
    /// Validates `value`.
    pub fn new(value: impl Into<String>) -> Result<Self, NameError> {
        let s = value.into();
        let reason = if s.is_empty() {
            Some("is empty")
        } else if s.len() > 1024 {
            Some("is longer than 1024 bytes")
        } else if s.starts_with('/') {
            Some("is absolute: give a path relative to the repository root")
        } else if s.chars().any(|c| c.is_control() || c == '\\') {
            Some("contains a control character or backslash")
        } else if s.trim_end_matches('/').split('/').any(|c| c.is_empty() || c == "..") {
            Some("has an empty or '..' component")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(NameError::InvalidSubPath { value: s, reason }),
            None => Ok(SubPath(s)),
        }
    }

    /// The path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A container image reference for the build: non-empty, at most 256 bytes, no whitespace or control
/// characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageRef(String);

impl ImageRef {
    /// Validates `value`.
    pub fn new(value: impl Into<String>) -> Result<Self, NameError> {
        let s = value.into();
        if s.is_empty() || s.len() > 256 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Err(NameError::InvalidImage(s))
        } else {
            Ok(ImageRef(s))
        }
    }

    /// The reference as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The part of a URL between `scheme://` and the next `/`, `?` or `#`.
fn url_host(rest: &str) -> &str {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

/// Checks URL `s` against `schemes` (compared without case).
fn check_url(s: &str, schemes: &[&str]) -> Result<(), UrlProblem> {
    if s.is_empty() {
        return Err(UrlProblem::Empty);
    }
    if s.len() > 2048 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UrlProblem::TooLongOrWhitespace);
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(UrlProblem::NoScheme);
    };
    if !schemes.iter().any(|a| a.eq_ignore_ascii_case(scheme)) {
        return Err(UrlProblem::Scheme(scheme.to_owned()));
    }
    if scheme.eq_ignore_ascii_case("file") {
        if rest.len() <= url_host(rest).len() {
            return Err(UrlProblem::NoPath);
        }
    } else if url_host(rest).rsplit('@').next().is_none_or(|h| h.is_empty() || h.starts_with(':')) {
        return Err(UrlProblem::NoHost);
    }
    Ok(())
}

/// A URL `git clone` may use: scheme `http`, `https`, `git`, `ssh` or `file`, a host (a path for
/// `file`), at most 2048 bytes, no whitespace.
///
/// ```
/// use libvieter::name::CloneUrl;
/// assert!(CloneUrl::new("ssh://git@host/x.git").is_ok());
/// assert_eq!(
///     CloneUrl::new("ftp://host/x").unwrap_err().to_string(),
///     "'ftp://host/x' has scheme 'ftp': use http, https, git, ssh, file"
/// );
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CloneUrl(String);

impl CloneUrl {
    /// The schemes allowed.
    pub const SCHEMES: &'static [&'static str] = &["http", "https", "git", "ssh", "file"];

    /// Validates `value`.
    pub fn new(value: impl Into<String>) -> Result<Self, NameError> {
        let value = value.into();
        match check_url(&value, Self::SCHEMES) {
            Ok(()) => Ok(CloneUrl(value)),
            Err(problem) => Err(NameError::InvalidCloneUrl { value, problem }),
        }
    }

    /// The URL as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The URL of a PKGBUILD file: like [`CloneUrl`], with scheme `http` or `https` only.
///
/// ```
/// use libvieter::name::PkgbuildUrl;
/// assert!(PkgbuildUrl::new("https://host/PKGBUILD").is_ok());
/// assert!(PkgbuildUrl::new("git://host/x").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PkgbuildUrl(String);

impl PkgbuildUrl {
    /// The schemes allowed.
    pub const SCHEMES: &'static [&'static str] = &["http", "https"];

    /// Validates `value`.
    pub fn new(value: impl Into<String>) -> Result<Self, NameError> {
        let value = value.into();
        match check_url(&value, Self::SCHEMES) {
            Ok(()) => Ok(PkgbuildUrl(value)),
            Err(problem) => Err(NameError::InvalidPkgbuildUrl { value, problem }),
        }
    }

    /// The URL as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_newtype_impls {
    ($ty:ident) => {
        impl FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::new(s)
            }
        }
        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                $ty::new(s)
            }
        }
        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), self.0)
            }
        }
    };
}
string_newtype_impls!(PkgName);
string_newtype_impls!(Arch);
string_newtype_impls!(RepoName);
string_newtype_impls!(GitRef);
string_newtype_impls!(SubPath);
string_newtype_impls!(ImageRef);
string_newtype_impls!(CloneUrl);
string_newtype_impls!(PkgbuildUrl);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "glibc", "lib32-gcc-libs", "python3.11", "c++utilities", "foo@bar", "0ad", "_x"] {
            assert!(PkgName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", ".a", "a b", "a/b", "a:b", "ä", "a\0", "a=b", "..", "a\n"] {
            assert!(PkgName::new(bad).is_err(), "{bad:?}");
        }
        assert!(PkgName::new("a".repeat(256)).is_err());
    }

    #[test]
    fn arches() {
        for ok in ["x86_64", "aarch64", "any", "i686", "armv7h"] {
            assert!(Arch::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "x86-64", "../x", "a b", "é"] {
            assert!(Arch::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn target_strings() {
        for ok in ["main", "release/1.0", "v1.2.3", "feature-x_y"] {
            assert!(GitRef::new(ok).is_ok(), "{ok}");
        }
        for bad in
            ["", "a b", "a..b", "-x", "/x", "x/", "x.lock", "a~1", "a:b", "a@{1}", "a//b", ".x", "a/.b", "x."]
        {
            assert!(GitRef::new(bad).is_err(), "{bad:?}");
        }
        for ok in ["pkg", "a/b", "a/b/", "./a", "a.b/c..d"] {
            assert!(SubPath::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/abs", "a/../b", "..", "a//b", "a\\b", "a\nb"] {
            assert!(SubPath::new(bad).is_err(), "{bad:?}");
        }
        for ok in ["archlinux:latest", "localhost/vieter-builder:test", "x"] {
            assert!(ImageRef::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a\tb"] {
            assert!(ImageRef::new(bad).is_err(), "{bad:?}");
        }
        assert!(ImageRef::new("x".repeat(257)).is_err());
        for ok in [
            "git://127.0.0.1:9418/repo",
            "ssh://git@host/x.git",
            "file:///srv/git/x",
            "http://[::1]:8080/x",
            "HTTPS://host",
        ] {
            assert!(CloneUrl::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "https://",
            "https:///x",
            "http://@/",
            "file://host",
            "noscheme/x",
            "https://h/a b",
            "ftp://h/x",
        ] {
            assert!(CloneUrl::new(bad).is_err(), "{bad:?}");
        }
        for ok in ["https://h/PKGBUILD", "http://h:80/x?raw=1"] {
            assert!(PkgbuildUrl::new(ok).is_ok(), "{ok}");
        }
        for bad in ["git://h/x", "ssh://h/x", "file:///x", "https://"] {
            assert!(PkgbuildUrl::new(bad).is_err(), "{bad:?}");
        }
        let url: CloneUrl = serde_json::from_str("\"https://h/x\"").unwrap();
        assert_eq!((url.as_str(), url.to_string()), ("https://h/x", "https://h/x".to_owned()));
        assert_eq!(format!("{url:?}"), "CloneUrl(\"https://h/x\")");
        assert_eq!(serde_json::to_string(&url).unwrap(), "\"https://h/x\"");
        assert!(serde_json::from_str::<PkgbuildUrl>("\"git://h/x\"").is_err());
        assert!(serde_json::from_str::<GitRef>("\"a..b\"").is_err());
        assert!(serde_json::from_str::<SubPath>("\"/abs\"").is_err());
        assert!(serde_json::from_str::<ImageRef>("\"a b\"").is_err());
        assert_eq!("pkgs/a".parse::<SubPath>().unwrap().as_str(), "pkgs/a");
    }

    #[test]
    fn messages() {
        let cases: [(NameError, &str); 13] = [
            (GitRef::new("").unwrap_err(), "'' is not a valid git branch name: it is empty"),
            (
                GitRef::new("a b").unwrap_err(),
                "'a b' is not a valid git branch name: it contains whitespace or control characters",
            ),
            (GitRef::new("a~1").unwrap_err(), "'a~1' is not a valid git branch name: it contains one of ~ ^ : ? * [ \\"),
            (
                GitRef::new("x.lock").unwrap_err(),
                "'x.lock' is not a valid git branch name: it ends with '/', '.' or '.lock' (or is '@')",
            ),
            (
                SubPath::new("/abs").unwrap_err(),
                "'/abs' is not a valid subdirectory: it is absolute: give a path relative to the repository root",
            ),
            (SubPath::new("a/../b").unwrap_err(), "'a/../b' is not a valid subdirectory: it has an empty or '..' component"),
            (
                ImageRef::new("has space").unwrap_err(),
                "'has space' is not a valid image reference: it must be 1-256 bytes without whitespace",
            ),
            (CloneUrl::new("").unwrap_err(), "is empty"),
            (
                CloneUrl::new("https://h/a b").unwrap_err(),
                "'https://h/a b' is not a valid URL: it is longer than 2048 bytes or contains whitespace",
            ),
            (CloneUrl::new("noscheme/x").unwrap_err(), "'noscheme/x' is not a URL: it needs a scheme (http, https, git, ssh, file)"),
            (CloneUrl::new("file://host").unwrap_err(), "'file://host' has no path"),
            (CloneUrl::new("http://@/").unwrap_err(), "'http://@/' has no host"),
            (PkgbuildUrl::new("git://h/x").unwrap_err(), "'git://h/x' has scheme 'git': use http, https"),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
        assert_eq!(
            PkgbuildUrl::new("x").unwrap_err(),
            NameError::InvalidPkgbuildUrl { value: "x".into(), problem: UrlProblem::NoScheme }
        );
        assert_eq!(
            SubPath::new("").unwrap_err(),
            NameError::InvalidSubPath { value: String::new(), reason: "is empty" }
        );
        assert_eq!(ImageRef::new("").unwrap_err(), NameError::InvalidImage(String::new()));
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<PkgName>("\"-bad\"").is_err());
        let n: PkgName = serde_json::from_str("\"good\"").unwrap();
        assert_eq!(n.as_str(), "good");
    }
}
