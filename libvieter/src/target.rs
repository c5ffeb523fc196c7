//! Build targets: what to build (a git repository, a PKGBUILD URL or an AUR package), for which
//! architectures, into which repository, and when.
//!
//! Input arrives as [`NewTarget`] (create) or [`TargetPatch`] (edit) with plain strings, so that one
//! request can be checked completely: [`NewTarget::validate`] and [`TargetPatch::apply`] report every
//! problem, each naming its field ([`FieldError`]), and only then produce a [`Target`] whose fields are
//! validated types.
//!
//! ```
//! use libvieter::target::{NewTarget, TargetId, TargetKind};
//! use libvieter::name::Arch;
//!
//! let input = NewTarget {
//!     kind: "aur".into(),
//!     url: "yay".into(),
//!     repo: "extra-aur".into(),
//!     schedule: Some("0 3".into()),
//!     ..NewTarget::default()
//! };
//! let target = input.validate(TargetId(7), &Arch::new("x86_64").unwrap()).unwrap();
//! assert_eq!(target.kind, TargetKind::Aur);
//! assert_eq!(target.clone_url(libvieter::target::AUR_BASE).as_deref(), Some("https://aur.archlinux.org/yay.git"));
//!
//! let bad = NewTarget { kind: "svn".into(), repo: "api".into(), ..NewTarget::default() };
//! let errors = bad.validate(TargetId(8), &Arch::new("x86_64").unwrap()).unwrap_err();
//! let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
//! assert_eq!(fields, ["kind", "repo"]);
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

pub use crate::name::RepoName;
use crate::name::{Arch, PkgName};
use crate::schedule::Schedule;

/// Where AUR package bases are cloned from: `{AUR_BASE}/{pkgbase}.git`. Tests pass another base.
pub const AUR_BASE: &str = "https://aur.archlinux.org";

/// The identifier of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TargetId(pub u64);

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for TargetId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(TargetId)
    }
}

/// What a target's `url` field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// A git repository holding a PKGBUILD (in its root or in `path`).
    Git,
    /// The URL of a PKGBUILD file.
    Url,
    /// An AUR package base; the clone URL is derived from it.
    Aur,
}

impl TargetKind {
    /// The lowercase name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Git => "git",
            TargetKind::Url => "url",
            TargetKind::Aur => "aur",
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TargetKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "git" => Ok(TargetKind::Git),
            "url" => Ok(TargetKind::Url),
            "aur" => Ok(TargetKind::Aur),
            other => Err(format!("unknown kind '{other}': use git, url or aur")),
        }
    }
}

macro_rules! validated_string {
    ($(#[$doc:meta])* $ty:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(String);

        impl $ty {
            /// Validates `value`; the error says what is wrong.
            pub fn new(value: impl Into<String>) -> Result<Self, String> {
                let value = value.into();
                $check(&value)?;
                Ok($ty(value))
            }

            /// The value as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::new(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = String;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                $ty::new(s)
            }
        }

        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
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

validated_string!(
    /// A git branch or tag name, following `git check-ref-format`'s rules: no whitespace or control
    /// characters, none of `~ ^ : ? * [ \`, no `..`, `@{` or `//`, not starting with `-` or `/`, not
    /// ending with `/`, `.` or `.lock`, no component starting with `.`.
    GitRef,
    check_git_ref
);
validated_string!(
    /// A subdirectory of a git repository: relative (no leading `/`), no `..` or empty component, no
    /// backslash or control characters.
    SubPath,
    check_sub_path
);
validated_string!(
    /// A container image reference for the build: non-empty, at most 256 bytes, no whitespace or control
    /// characters.
    ImageRef,
    check_image
);

fn check_git_ref(s: &str) -> Result<(), String> {
    let problem = if s.is_empty() {
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
    match problem {
        Some(p) => Err(format!("'{s}' is not a valid git branch name: it {p}")),
        None => Ok(()),
    }
}

fn check_sub_path(s: &str) -> Result<(), String> {
    let problem = if s.is_empty() {
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
    match problem {
        Some(p) => Err(format!("'{s}' is not a valid subdirectory: it {p}")),
        None => Ok(()),
    }
}

fn check_image(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 256 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(format!("'{s}' is not a valid image reference: it must be 1-256 bytes without whitespace"))
    } else {
        Ok(())
    }
}

/// The part of a URL between `scheme://` and the next `/`, `?` or `#`.
fn url_host(rest: &str) -> &str {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

/// Checks a clone URL (`http`, `https`, `git`, `ssh` or `file` scheme) or, with `http_only`, a PKGBUILD
/// URL (`http` or `https`).
fn check_url(s: &str, http_only: bool) -> Result<(), String> {
    let allowed: &[&str] =
        if http_only { &["http", "https"] } else { &["http", "https", "git", "ssh", "file"] };
    let allowed_text = allowed.join(", ");
    if s.is_empty() {
        return Err("is empty".to_owned());
    }
    if s.len() > 2048 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("'{s}' is not a valid URL: it is longer than 2048 bytes or contains whitespace"));
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(format!("'{s}' is not a URL: it needs a scheme ({allowed_text})"));
    };
    if !allowed.iter().any(|a| a.eq_ignore_ascii_case(scheme)) {
        return Err(format!("'{s}' has scheme '{scheme}': use {allowed_text}"));
    }
    let file = scheme.eq_ignore_ascii_case("file");
    if file {
        if rest.len() <= url_host(rest).len() {
            return Err(format!("'{s}' has no path"));
        }
    } else if url_host(rest).rsplit('@').next().is_none_or(|h| h.is_empty() || h.starts_with(':')) {
        return Err(format!("'{s}' has no host"));
    }
    Ok(())
}

/// A validated build target.
///
/// Construct it with [`NewTarget::validate`] or [`TargetPatch::apply`]; deserialising checks each
/// field's own rules, [`Target::check`] the rules between fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub id: TargetId,
    pub kind: TargetKind,
    /// `git`: the clone URL; `url`: the PKGBUILD's URL; `aur`: the package base name.
    pub url: String,
    /// Branch or tag to clone (`git` only); the default branch when absent.
    pub branch: Option<GitRef>,
    /// Subdirectory holding the PKGBUILD (`git` only).
    pub path: Option<SubPath>,
    /// Repository the packages are published to.
    pub repo: RepoName,
    /// When to build; the server's global schedule when absent.
    pub schedule: Option<Schedule>,
    /// Architectures to build for: not empty, no duplicates, no `any`.
    pub arch: Vec<Arch>,
    /// Image the build container starts from; the server's default when absent.
    pub base_image: Option<ImageRef>,
    /// Build timeout in seconds (> 0); the server's default when absent.
    pub build_timeout_secs: Option<u64>,
    /// Disabled targets are never scheduled (manual builds still work).
    pub enabled: bool,
}

/// The AUR clone URL of a package base: `{base}/{name}.git`.
pub fn aur_clone_url(base: &str, name: &PkgName) -> String {
    format!("{}/{name}.git", base.trim_end_matches('/'))
}

impl Target {
    /// The URL to `git clone`: the url itself for `git`, derived from `aur_base` (normally [`AUR_BASE`])
    /// for `aur`, `None` for `url` targets (they download one file).
    pub fn clone_url(&self, aur_base: &str) -> Option<String> {
        match self.kind {
            TargetKind::Git => Some(self.url.clone()),
            TargetKind::Aur => PkgName::new(self.url.as_str()).ok().map(|n| aur_clone_url(aur_base, &n)),
            TargetKind::Url => None,
        }
    }

    /// The schedule in force: the target's own, else `default`.
    pub fn effective_schedule<'a>(&'a self, default: &'a Schedule) -> &'a Schedule {
        self.schedule.as_ref().unwrap_or(default)
    }

    /// Re-checks the rules between fields (url against kind, branch/path only for git, the arch list,
    /// the timeout): for a target read from storage.
    pub fn check(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        check_source(self.kind, &self.url, self.branch.is_some(), self.path.is_some(), &mut errors);
        check_arches(&self.arch, &mut errors);
        if self.build_timeout_secs == Some(0) {
            errors.push("build_timeout_secs", "must be greater than 0");
        }
        errors.into_result(())
    }

    /// This target as the input that would create it (for editing forms and round trips).
    pub fn to_new(&self) -> NewTarget {
        NewTarget {
            kind: self.kind.as_str().to_owned(),
            url: self.url.clone(),
            branch: self.branch.as_ref().map(|b| b.to_string()),
            path: self.path.as_ref().map(|p| p.to_string()),
            repo: self.repo.to_string(),
            schedule: self.schedule.as_ref().map(|s| s.to_string()),
            arch: Some(self.arch.iter().map(|a| a.to_string()).collect()),
            base_image: self.base_image.as_ref().map(|i| i.to_string()),
            build_timeout_secs: self.build_timeout_secs,
            enabled: Some(self.enabled),
        }
    }
}

/// One problem with one input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's name as in the API (`kind`, `url`, `branch`, `path`, `repo`, `schedule`, `arch`,
    /// `base_image`, `build_timeout_secs`).
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found in one input, in field order. Never empty when returned as an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct ValidationErrors(Vec<FieldError>);

impl ValidationErrors {
    fn push(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push(FieldError { field, message: message.into() });
    }

    fn into_result<T>(self, value: T) -> Result<T, ValidationErrors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// The first problem.
    pub fn first(&self) -> Option<&FieldError> {
        self.0.first()
    }

    /// All problems.
    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.0.iter()
    }

    /// How many problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `true` when there is no problem.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

fn check_source(
    kind: TargetKind,
    url: &str,
    has_branch: bool,
    has_path: bool,
    errors: &mut ValidationErrors,
) {
    let url_problem = match kind {
        TargetKind::Git => check_url(url, false).err(),
        TargetKind::Url => check_url(url, true).err(),
        TargetKind::Aur => PkgName::new(url).err().map(|e| format!("not an AUR package base: {e}")),
    };
    if let Some(p) = url_problem {
        errors.push("url", p);
    }
    if kind != TargetKind::Git {
        if has_branch {
            errors.push("branch", format!("only git targets have a branch, this one is {kind}"));
        }
        if has_path {
            errors.push("path", format!("only git targets have a path, this one is {kind}"));
        }
    }
}

fn check_arches(arches: &[Arch], errors: &mut ValidationErrors) {
    if arches.is_empty() {
        errors.push("arch", "give at least one architecture");
    }
    for (i, a) in arches.iter().enumerate() {
        if a.is_any() {
            errors.push("arch", "'any' is not a build architecture: packages of arch any are built on any");
        } else if arches[..i].contains(a) {
            errors.push("arch", format!("'{a}' is listed twice"));
        }
    }
}

fn parse_field<T>(
    errors: &mut ValidationErrors,
    field: &'static str,
    value: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    let value = value?;
    match parse(value) {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(field, e);
            None
        }
    }
}

/// The input that creates a target (JSON body of `POST /api/v1/targets`). Plain strings, so that every
/// problem can be reported at once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NewTarget {
    /// `git`, `url` or `aur`.
    pub kind: String,
    /// Clone URL (`git`), PKGBUILD URL (`url`) or package base name (`aur`).
    pub url: String,
    pub branch: Option<String>,
    pub path: Option<String>,
    pub repo: String,
    pub schedule: Option<String>,
    /// Absent: the server's default architecture. Present: must not be empty.
    pub arch: Option<Vec<String>>,
    pub base_image: Option<String>,
    pub build_timeout_secs: Option<u64>,
    /// Absent: enabled.
    pub enabled: Option<bool>,
}

impl NewTarget {
    /// Checks every field and builds the target, or returns every problem found.
    pub fn validate(&self, id: TargetId, default_arch: &Arch) -> Result<Target, ValidationErrors> {
        self.build(id, Some(default_arch))
    }

    fn build(&self, id: TargetId, default_arch: Option<&Arch>) -> Result<Target, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let kind = parse_field(&mut errors, "kind", Some(&self.kind), TargetKind::from_str);
        if let Some(kind) = kind {
            check_source(kind, &self.url, self.branch.is_some(), self.path.is_some(), &mut errors);
        }
        let branch = parse_field(&mut errors, "branch", self.branch.as_deref(), |s| GitRef::new(s));
        let path = parse_field(&mut errors, "path", self.path.as_deref(), |s| SubPath::new(s));
        let repo = parse_field(&mut errors, "repo", Some(&self.repo), |s| {
            RepoName::new(s).map_err(|e| e.to_string())
        });
        let schedule = parse_field(&mut errors, "schedule", self.schedule.as_deref(), |s| {
            Schedule::parse(s).map_err(|e| e.to_string())
        });
        let arch = match (&self.arch, default_arch) {
            (None, Some(default)) => Some(vec![default.clone()]),
            (None, None) => {
                errors.push("arch", "give at least one architecture");
                None
            }
            (Some(list), _) => {
                let mut arches = Vec::with_capacity(list.len());
                let mut ok = true;
                for a in list {
                    match Arch::new(a.as_str()) {
                        Ok(a) => arches.push(a),
                        Err(e) => {
                            errors.push("arch", e.to_string());
                            ok = false;
                        }
                    }
                }
                let before = errors.len();
                check_arches(&arches, &mut errors);
                (ok && errors.len() == before).then_some(arches)
            }
        };
        let base_image =
            parse_field(&mut errors, "base_image", self.base_image.as_deref(), |s| ImageRef::new(s));
        if self.build_timeout_secs == Some(0) {
            errors.push("build_timeout_secs", "must be greater than 0");
        }
        let (Some(kind), Some(repo), Some(arch), true) = (kind, repo, arch, errors.is_empty()) else {
            return Err(errors);
        };
        Ok(Target {
            id,
            kind,
            url: self.url.clone(),
            branch,
            path,
            repo,
            schedule,
            arch,
            base_image,
            build_timeout_secs: self.build_timeout_secs,
            enabled: self.enabled.unwrap_or(true),
        })
    }
}

/// Deserialises a field that may be absent (outer `None`), `null` (`Some(None)`: clear it) or a value.
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// An edit of a target (JSON body of `PATCH /api/v1/targets/{id}`): absent fields stay as they are;
/// for optional fields, `null` clears them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TargetPatch {
    pub kind: Option<String>,
    pub url: Option<String>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub branch: Option<Option<String>>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub path: Option<Option<String>>,
    pub repo: Option<String>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Option<String>>,
    pub arch: Option<Vec<String>>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub base_image: Option<Option<String>>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub build_timeout_secs: Option<Option<u64>>,
    pub enabled: Option<bool>,
}

impl TargetPatch {
    /// The edited target, checked as a whole (e.g. a new kind must fit the url), or every problem.
    pub fn apply(&self, target: &Target) -> Result<Target, ValidationErrors> {
        let mut new = target.to_new();
        if let Some(kind) = &self.kind {
            new.kind = kind.clone();
        }
        if let Some(url) = &self.url {
            new.url = url.clone();
        }
        if let Some(branch) = &self.branch {
            new.branch = branch.clone();
        }
        if let Some(path) = &self.path {
            new.path = path.clone();
        }
        if let Some(repo) = &self.repo {
            new.repo = repo.clone();
        }
        if let Some(schedule) = &self.schedule {
            new.schedule = schedule.clone();
        }
        if let Some(arch) = &self.arch {
            new.arch = Some(arch.clone());
        }
        if let Some(image) = &self.base_image {
            new.base_image = image.clone();
        }
        if let Some(timeout) = self.build_timeout_secs {
            new.build_timeout_secs = timeout;
        }
        if let Some(enabled) = self.enabled {
            new.enabled = Some(enabled);
        }
        new.build(target.id, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x86() -> Arch {
        Arch::new("x86_64").unwrap()
    }

    fn git(url: &str) -> NewTarget {
        NewTarget { kind: "git".into(), url: url.into(), repo: "main".into(), ..NewTarget::default() }
    }

    #[test]
    fn valid_targets() {
        let t = git("https://example.invalid/pkgs/foo.git").validate(TargetId(1), &x86()).unwrap();
        assert_eq!(t.arch, [x86()]);
        assert!(t.enabled);
        assert_eq!(t.clone_url(AUR_BASE).as_deref(), Some("https://example.invalid/pkgs/foo.git"));
        for url in [
            "git://127.0.0.1:9418/repo",
            "ssh://git@host/x.git",
            "file:///srv/git/x",
            "http://[::1]:8080/x",
            "HTTPS://host",
        ] {
            assert!(git(url).validate(TargetId(1), &x86()).is_ok(), "{url}");
        }
        let full = NewTarget {
            branch: Some("release/1.x".into()),
            path: Some("pkgs/foo/".into()),
            schedule: Some("0 0 * * mon".into()),
            arch: Some(vec!["x86_64".into(), "aarch64".into()]),
            base_image: Some("localhost/vieter-builder:test".into()),
            build_timeout_secs: Some(600),
            enabled: Some(false),
            ..git("https://h/x")
        };
        let t = full.validate(TargetId(2), &x86()).unwrap();
        assert_eq!(t.branch.as_ref().map(GitRef::as_str), Some("release/1.x"));
        assert_eq!(t.schedule.as_ref().map(ToString::to_string).as_deref(), Some("0 0 * * 1"));
        assert!(!t.enabled);
        assert_eq!(t.to_new().validate(TargetId(2), &x86()).unwrap(), t);
        t.check().unwrap();
        // Serde round trip (JSON).
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Target>(&json).unwrap(), t);
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let input = NewTarget {
            kind: "git".into(),
            url: "ftp://host/x".into(),
            branch: Some("-x".into()),
            path: Some("../etc".into()),
            repo: ".hidden".into(),
            schedule: Some("0 0 32".into()),
            arch: Some(vec!["x86_64".into(), "any".into(), "x86_64".into(), "bad-arch".into()]),
            base_image: Some("has space".into()),
            build_timeout_secs: Some(0),
            enabled: None,
        };
        let errors = input.validate(TargetId(1), &x86()).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "url",
                "branch",
                "path",
                "repo",
                "schedule",
                "arch",
                "arch",
                "arch",
                "base_image",
                "build_timeout_secs"
            ]
        );
        let text = errors.to_string();
        assert!(text.contains("schedule: day field '32': 32 is outside 1-31"), "{text}");
        assert!(text.contains("scheme 'ftp'"), "{text}");
        assert_eq!(errors.first().map(|e| e.field), Some("url"));
    }

    #[test]
    fn kind_rules() {
        let url =
            NewTarget { kind: "url".into(), url: "git://h/x".into(), repo: "r".into(), ..Default::default() };
        let e = url.validate(TargetId(1), &x86()).unwrap_err();
        assert_eq!(e.first().map(|e| e.field), Some("url"));
        let url = NewTarget { url: "https://h/PKGBUILD".into(), branch: Some("main".into()), ..url };
        let e = url.validate(TargetId(1), &x86()).unwrap_err();
        assert_eq!(e.iter().map(|e| e.field).collect::<Vec<_>>(), ["branch"]);
        let aur = NewTarget {
            kind: "aur".into(),
            url: "https://h/x".into(),
            repo: "r".into(),
            ..Default::default()
        };
        assert_eq!(aur.validate(TargetId(1), &x86()).unwrap_err().first().map(|e| e.field), Some("url"));
        let aur = NewTarget { url: "yay-bin".into(), ..aur };
        let t = aur.validate(TargetId(1), &x86()).unwrap();
        assert_eq!(
            t.clone_url("http://127.0.0.1:1234/").as_deref(),
            Some("http://127.0.0.1:1234/yay-bin.git")
        );
        assert_eq!(
            NewTarget { kind: "svn".into(), ..git("https://h/x") }
                .validate(TargetId(1), &x86())
                .unwrap_err()
                .to_string(),
            "kind: unknown kind 'svn': use git, url or aur"
        );
        for bad in ["", "https://", "https:///x", "http://@/", "file://host", "noscheme/x", "https://h/a b"] {
            assert!(git(bad).validate(TargetId(1), &x86()).is_err(), "{bad:?}");
        }
        assert!(NewTarget { arch: Some(vec![]), ..git("https://h/x") }
            .validate(TargetId(1), &x86())
            .is_err());
    }

    #[test]
    fn names_and_paths() {
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
        for ok in ["main", "extra-aur", "a.b_c", "API", "apis"] {
            assert!(RepoName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "api", ".x", "-x", "a/b", "a b", "é"] {
            assert!(RepoName::new(bad).is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<RepoName>("\"api\"").is_err());
    }

    #[test]
    fn patches() {
        let t = NewTarget { branch: Some("main".into()), schedule: Some("0 3".into()), ..git("https://h/x") }
            .validate(TargetId(5), &x86())
            .unwrap();
        // Absent fields stay, null clears, values replace.
        let patch: TargetPatch =
            serde_json::from_str(r#"{"branch": null, "repo": "other", "arch": ["aarch64"]}"#).unwrap();
        let edited = patch.apply(&t).unwrap();
        assert_eq!(edited.id, TargetId(5));
        assert_eq!(edited.branch, None);
        assert_eq!(edited.repo.as_str(), "other");
        assert_eq!(edited.arch, [Arch::new("aarch64").unwrap()]);
        assert_eq!(edited.schedule, t.schedule);
        // Switching to aur keeps the git branch: refused, naming the fields.
        let patch = TargetPatch { kind: Some("aur".into()), url: Some("yay".into()), ..Default::default() };
        let e = patch.apply(&t).unwrap_err();
        assert_eq!(e.iter().map(|e| e.field).collect::<Vec<_>>(), ["branch"]);
        let patch = TargetPatch { branch: Some(None), ..patch };
        assert_eq!(patch.apply(&t).unwrap().kind, TargetKind::Aur);
        // An invalid edit reports it and leaves nothing half-applied (the input target is untouched).
        let patch = TargetPatch { schedule: Some(Some("0 0 30 2".into())), ..Default::default() };
        assert_eq!(patch.apply(&t).unwrap_err().first().map(|e| e.field), Some("schedule"));
        assert_eq!(t.schedule.as_ref().map(ToString::to_string).as_deref(), Some("0 3 * *"));
        let patch = TargetPatch { arch: Some(vec![]), ..Default::default() };
        assert_eq!(patch.apply(&t).unwrap_err().first().map(|e| e.field), Some("arch"));
    }
}
