//! Dependency strings: `name[<|<=|=|>=|>version][: description]`.
//!
//! Used for `depend`, `makedepend`, `checkdepend`, `conflict`, `provides`, `replaces` (no description) and
//! `optdepend` (with a description), as pacman's `alpm_dep_from_string` reads them.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::version::vercmp;

/// A version constraint operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "=")]
    Eq,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = ">")]
    Gt,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">",
        }
    }
}

/// Why a dependency string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DependError {
    #[error("dependency {0:?} has no package name")]
    EmptyName(String),
    #[error("dependency {0:?} has an operator but no version")]
    EmptyVersion(String),
}

/// A parsed dependency.
///
/// ```
/// use libvieter::depend::{Dependency, Op};
/// let d = Dependency::parse("python>=3.11: for the scripts").unwrap();
/// assert_eq!(d.name, "python");
/// assert_eq!(d.constraint, Some((Op::Ge, "3.11".to_owned())));
/// assert_eq!(d.description.as_deref(), Some("for the scripts"));
/// assert!(d.satisfied_by("python", "3.12.1-1"));
/// assert!(!d.satisfied_by("python", "3.10-1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dependency {
    pub name: String,
    pub constraint: Option<(Op, String)>,
    pub description: Option<String>,
}

impl Dependency {
    /// Parses a dependency string as libalpm does: the description starts at the first `": "`, the operator
    /// is the first `<`, `>` or `=` in what precedes it.
    pub fn parse(s: &str) -> Result<Self, DependError> {
        let (spec, description) = match s.find(": ") {
            Some(i) => (&s[..i], Some(s[i + 2..].to_owned())),
            None => (s, None),
        };
        let (name, constraint) = match spec.find(['<', '>', '=']) {
            None => (spec, None),
            Some(i) => {
                let rest = &spec[i..];
                let op = [(">=", Op::Ge), ("<=", Op::Le), ("=", Op::Eq), (">", Op::Gt), ("<", Op::Lt)]
                    .into_iter()
                    .find(|(text, _)| rest.starts_with(text));
                // One of the three characters is there, so one of the operators matches.
                let (text, op) = op.unwrap_or(("=", Op::Eq));
                let version = &rest[text.len()..];
                if version.is_empty() {
                    return Err(DependError::EmptyVersion(s.to_owned()));
                }
                (&spec[..i], Some((op, version.to_owned())))
            }
        };
        if name.is_empty() {
            return Err(DependError::EmptyName(s.to_owned()));
        }
        Ok(Dependency { name: name.to_owned(), constraint, description })
    }

    /// Whether a package `name` at `version` satisfies this dependency (name match only; `provides` are
    /// the caller's business).
    pub fn satisfied_by(&self, name: &str, version: &str) -> bool {
        if name != self.name {
            return false;
        }
        let Some((op, wanted)) = &self.constraint else { return true };
        // As pacman: a constraint without pkgrel ignores the candidate's pkgrel.
        let cmp = vercmp(version, wanted);
        match op {
            Op::Lt => cmp == Ordering::Less,
            Op::Le => cmp != Ordering::Greater,
            Op::Eq => cmp == Ordering::Equal,
            Op::Ge => cmp != Ordering::Less,
            Op::Gt => cmp == Ordering::Greater,
        }
    }
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some((op, v)) = &self.constraint {
            write!(f, "{}{v}", op.as_str())?;
        }
        if let Some(d) = &self.description {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_operator() {
        for (s, op, v) in [
            ("a<1", Op::Lt, "1"),
            ("a<=1", Op::Le, "1"),
            ("a=1:2-3", Op::Eq, "1:2-3"),
            ("a>=1", Op::Ge, "1"),
            ("a>1", Op::Gt, "1"),
        ] {
            let d = Dependency::parse(s).unwrap();
            assert_eq!((d.name.as_str(), d.constraint.clone()), ("a", Some((op, v.to_owned()))), "{s}");
            assert_eq!(d.to_string(), s);
        }
    }

    #[test]
    fn descriptions_may_contain_colons() {
        let d = Dependency::parse("foo: for foo: bar").unwrap();
        assert_eq!(d.name, "foo");
        assert_eq!(d.description.as_deref(), Some("for foo: bar"));
        // An epoch colon is not followed by a space.
        let d = Dependency::parse("foo>=1:2.0: needed").unwrap();
        assert_eq!(d.constraint, Some((Op::Ge, "1:2.0".to_owned())));
    }

    #[test]
    fn refuses_empty_parts() {
        assert!(Dependency::parse("").is_err());
        assert!(Dependency::parse(">=1").is_err());
        assert!(Dependency::parse("a>=").is_err());
    }

    #[test]
    fn satisfaction_follows_vercmp() {
        let d = Dependency::parse("a=1.0").unwrap();
        assert!(d.satisfied_by("a", "1.0-3"));
        assert!(!d.satisfied_by("b", "1.0-3"));
        assert!(Dependency::parse("a").unwrap().satisfied_by("a", "0-1"));
        assert!(Dependency::parse("a<2").unwrap().satisfied_by("a", "1.9-1"));
    }
}
