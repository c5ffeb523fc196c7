//! Validated package names, architectures and repository names.
//!
//! Invalid values cannot be constructed: [`PkgName`] follows makepkg's rules for `pkgname`/`pkgbase`,
//! [`Arch`] pacman's rules for an architecture (`any` included).

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
         or '-', at most 128 bytes; 'api' is reserved"
    )]
    InvalidRepo(String),
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
/// (the server's API lives under `/api`). It is a directory name and a URL segment as it stands.
///
/// ```
/// use libvieter::name::RepoName;
/// assert!(RepoName::new("extra-testing").is_ok());
/// assert!(RepoName::new("api").is_err());
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
            && name != "api";
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
    fn serde_validates() {
        assert!(serde_json::from_str::<PkgName>("\"-bad\"").is_err());
        let n: PkgName = serde_json::from_str("\"good\"").unwrap();
        assert_eq!(n.as_str(), "good");
    }
}
