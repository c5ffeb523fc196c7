//! The `.SRCINFO` format that `makepkg --printsrcinfo` prints: which packages, at which version and for
//! which architectures, a PKGBUILD builds.
//!
//! ```text
//! pkgbase = hello
//!     pkgver = 1.2
//!     pkgrel = 1
//!     epoch = 1
//!     arch = x86_64
//!
//! pkgname = hello
//!
//! pkgname = hello-doc
//!     arch = any
//! ```
//!
//! Only what a build agent needs is typed (names, version, architectures, dependencies); every other
//! key is accepted and ignored. Parsing never panics.

use serde::{Deserialize, Serialize};

use crate::name::{Arch, NameError, PkgName};
use crate::version::{validate_pkgrel, validate_pkgver, Version, VersionError};

/// A package version: what a `.SRCINFO` builds for an architecture, and what a job built (or found
/// already published).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltPackage {
    pub name: PkgName,
    pub version: Version,
    pub arch: Arch,
}

/// Why a `.SRCINFO` could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrcinfoError {
    #[error(".SRCINFO line {line}: expected 'key = value', found {text:?}")]
    Syntax { line: usize, text: String },
    #[error(".SRCINFO line {line}: {key} before the pkgbase section")]
    OutsideSection { line: usize, key: String },
    #[error(".SRCINFO has no pkgbase section")]
    NoPkgbase,
    #[error(".SRCINFO has a second pkgbase section at line {line}")]
    SecondPkgbase { line: usize },
    #[error(".SRCINFO declares no package (no pkgname section)")]
    NoPackages,
    #[error(".SRCINFO has no {0}")]
    Missing(&'static str),
    #[error(".SRCINFO line {line}: {source}")]
    Name {
        line: usize,
        #[source]
        source: NameError,
    },
    #[error(".SRCINFO: invalid version: {0}")]
    Version(#[from] VersionError),
}

/// One package of a `.SRCINFO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrcinfoPackage {
    pub name: PkgName,
    /// The package's own `arch` when it overrides the base's.
    pub arch: Option<Vec<Arch>>,
}

/// A parsed `.SRCINFO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srcinfo {
    pub base: PkgName,
    /// `[epoch:]pkgver-pkgrel`.
    pub version: Version,
    pub arch: Vec<Arch>,
    /// `depends` and `makedepends` of the base (all architectures), as written.
    pub depends: Vec<String>,
    pub makedepends: Vec<String>,
    /// `source` and `source_<arch>` entries of the base, as written (`name::git+https://…#branch=x`);
    /// [`crate::vcs::VcsSource`] reads the VCS ones.
    pub sources: Vec<String>,
    pub packages: Vec<SrcinfoPackage>,
}

impl Srcinfo {
    /// Parses the output of `makepkg --printsrcinfo`.
    pub fn parse(text: &str) -> Result<Srcinfo, SrcinfoError> {
        let mut base: Option<PkgName> = None;
        let (mut pkgver, mut pkgrel, mut epoch) = (None, None, None);
        let mut arch = Vec::new();
        let (mut depends, mut makedepends) = (Vec::new(), Vec::new());
        let mut sources = Vec::new();
        let mut packages: Vec<SrcinfoPackage> = Vec::new();

        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let Some((key, value)) = trimmed.split_once('=') else {
                return Err(SrcinfoError::Syntax { line, text: trimmed.chars().take(200).collect() });
            };
            let (key, value) = (key.trim(), value.trim());
            let name = |v: &str| PkgName::new(v).map_err(|source| SrcinfoError::Name { line, source });
            let to_arch = |v: &str| Arch::new(v).map_err(|source| SrcinfoError::Name { line, source });
            match key {
                "pkgbase" => {
                    if base.is_some() {
                        return Err(SrcinfoError::SecondPkgbase { line });
                    }
                    base = Some(name(value)?);
                }
                "pkgname" => {
                    if base.is_none() {
                        return Err(SrcinfoError::OutsideSection { line, key: key.to_owned() });
                    }
                    packages.push(SrcinfoPackage { name: name(value)?, arch: None });
                }
                _ if base.is_none() => {
                    return Err(SrcinfoError::OutsideSection { line, key: key.chars().take(100).collect() })
                }
                "arch" => match packages.last_mut() {
                    Some(package) => package.arch.get_or_insert_with(Vec::new).push(to_arch(value)?),
                    None => arch.push(to_arch(value)?),
                },
                // Version fields and dependencies belong to the base (makepkg refuses them in packages).
                "pkgver" if packages.is_empty() => pkgver = Some(value.to_owned()),
                "pkgrel" if packages.is_empty() => pkgrel = Some(value.to_owned()),
                "epoch" if packages.is_empty() => epoch = Some(value.to_owned()),
                "depends" if packages.is_empty() => depends.push(value.to_owned()),
                "makedepends" if packages.is_empty() => makedepends.push(value.to_owned()),
                _ if packages.is_empty() && (key == "source" || key.starts_with("source_")) => {
                    sources.push(value.to_owned())
                }
                _ => {}
            }
        }

        let base = base.ok_or(SrcinfoError::NoPkgbase)?;
        if packages.is_empty() {
            return Err(SrcinfoError::NoPackages);
        }
        let pkgver = pkgver.ok_or(SrcinfoError::Missing("pkgver"))?;
        let pkgrel = pkgrel.ok_or(SrcinfoError::Missing("pkgrel"))?;
        validate_pkgver(&pkgver)?;
        validate_pkgrel(&pkgrel)?;
        let version = match epoch.filter(|e| !e.is_empty() && e != "0") {
            Some(epoch) => Version::parse(&format!("{epoch}:{pkgver}-{pkgrel}"))?,
            None => Version::parse(&format!("{pkgver}-{pkgrel}"))?,
        };
        if arch.is_empty() {
            return Err(SrcinfoError::Missing("arch"));
        }
        Ok(Srcinfo { base, version, arch, depends, makedepends, sources, packages })
    }

    /// The packages a build on `build_arch` produces, with their version and the architecture written in
    /// their file name (`any` when the package says so). Packages whose architectures exclude
    /// `build_arch` are not built there.
    pub fn packages_for(&self, build_arch: &Arch) -> Vec<BuiltPackage> {
        self.packages
            .iter()
            .filter_map(|p| {
                let archs = p.arch.as_ref().unwrap_or(&self.arch);
                let arch = if archs.iter().any(Arch::is_any) {
                    Arch::new("any").ok()?
                } else if archs.contains(build_arch) {
                    build_arch.clone()
                } else {
                    return None;
                };
                Some(BuiltPackage { name: p.name.clone(), version: self.version.clone(), arch })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPLIT: &str = "pkgbase = hello\n\tpkgdesc = Hi = there\n\tpkgver = 1.2.r3.gabc\n\tpkgrel = 2\n\
        \tepoch = 1\n\tarch = x86_64\n\tarch = aarch64\n\tdepends = glibc>=2\n\tmakedepends = git\n\
        \tsource = git+https://example.invalid/x.git\n\npkgname = hello\n\npkgname = hello-doc\n\tarch = any\n\
        \tdepends = hello\n\npkgname = hello-arm\n\tarch = aarch64\n";

    fn arch(s: &str) -> Arch {
        Arch::new(s).unwrap()
    }

    #[test]
    fn split_packages_with_epoch_and_arch_overrides() {
        let info = Srcinfo::parse(SPLIT).unwrap();
        assert_eq!(info.base.as_str(), "hello");
        assert_eq!(info.version.as_str(), "1:1.2.r3.gabc-2");
        assert_eq!(info.depends, ["glibc>=2"]);
        assert_eq!(info.makedepends, ["git"]);
        assert_eq!(info.sources, ["git+https://example.invalid/x.git"]);
        let built: Vec<_> = info
            .packages_for(&arch("x86_64"))
            .into_iter()
            .map(|p| format!("{}-{}-{}", p.name.as_str(), p.version, p.arch.as_str()))
            .collect();
        assert_eq!(built, ["hello-1:1.2.r3.gabc-2-x86_64", "hello-doc-1:1.2.r3.gabc-2-any"]);
        assert_eq!(info.packages_for(&arch("aarch64")).len(), 3);
        assert!(info.packages_for(&arch("riscv64")).iter().all(|p| p.arch.is_any()));
    }

    #[test]
    fn epoch_zero_is_no_epoch() {
        let text = "pkgbase = a\n\tpkgver = 1\n\tpkgrel = 1\n\tepoch = 0\n\tarch = any\npkgname = a\n";
        assert_eq!(Srcinfo::parse(text).unwrap().version.as_str(), "1-1");
    }

    #[test]
    fn errors_name_the_problem() {
        let cases = [
            ("", SrcinfoError::NoPkgbase),
            ("pkgname = a\n", SrcinfoError::OutsideSection { line: 1, key: "pkgname".into() }),
            ("pkgbase = a\n\tpkgver = 1\n\tpkgrel = 1\n\tarch = any\n", SrcinfoError::NoPackages),
            ("pkgbase = a\npkgname = a\n\tarch = any\n", SrcinfoError::Missing("pkgver")),
            ("pkgbase = a\npkgbase = b\n", SrcinfoError::SecondPkgbase { line: 2 }),
            ("pkgbase = a\nnonsense\n", SrcinfoError::Syntax { line: 2, text: "nonsense".into() }),
        ];
        for (text, expected) in cases {
            assert_eq!(Srcinfo::parse(text).unwrap_err(), expected, "{text:?}");
        }
        let bad_version = "pkgbase = a\n\tpkgver = 1-2\n\tpkgrel = 1\n\tarch = any\npkgname = a\n";
        assert!(matches!(Srcinfo::parse(bad_version), Err(SrcinfoError::Version(_))));
        let colon_in_pkgver = "pkgbase = a\n\tpkgver = 1:2\n\tpkgrel = 1\n\tarch = any\npkgname = a\n";
        assert!(matches!(Srcinfo::parse(colon_in_pkgver), Err(SrcinfoError::Version(_))));
        let bad_name = "pkgbase = -a\n";
        assert!(matches!(Srcinfo::parse(bad_name), Err(SrcinfoError::Name { line: 1, .. })));
    }

    #[test]
    fn never_panics_on_odd_bytes() {
        for text in ["=", " = ", "pkgbase =", "pkgbase = a\narch =", "\u{0}\u{ffff} = \u{1f600}", "a\rb"] {
            let _ = Srcinfo::parse(text);
        }
    }
}
