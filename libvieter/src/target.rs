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
//! assert_eq!(target.kind(), TargetKind::Aur);
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

use crate::name::{Arch, CloneUrl, PkgName, PkgbuildUrl};
pub use crate::name::{GitRef, ImageRef, RepoName, SubPath};
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

/// What a target builds from: a git repository, a PKGBUILD's URL or an AUR package base. Only a git
/// source has a branch and a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A git repository holding a PKGBUILD (in its root or in `path`).
    Git {
        url: CloneUrl,
        /// Branch or tag to clone; the default branch when absent.
        branch: Option<GitRef>,
        /// Subdirectory holding the PKGBUILD.
        path: Option<SubPath>,
    },
    /// The URL of a PKGBUILD file.
    Url { url: PkgbuildUrl },
    /// An AUR package base; the clone URL is derived from it.
    Aur { name: PkgName },
}

impl Source {
    /// A git source with no branch and no path.
    pub fn git(url: CloneUrl) -> Source {
        Source::Git { url, branch: None, path: None }
    }

    /// Which kind of source this is.
    pub fn kind(&self) -> TargetKind {
        match self {
            Source::Git { .. } => TargetKind::Git,
            Source::Url { .. } => TargetKind::Url,
            Source::Aur { .. } => TargetKind::Aur,
        }
    }

    /// What the API's `url` field holds: the clone URL, the PKGBUILD's URL or the package base name.
    pub fn url_str(&self) -> &str {
        match self {
            Source::Git { url, .. } => url.as_str(),
            Source::Url { url } => url.as_str(),
            Source::Aur { name } => name.as_str(),
        }
    }

    /// The branch to clone (git only).
    pub fn branch(&self) -> Option<&GitRef> {
        match self {
            Source::Git { branch, .. } => branch.as_ref(),
            _ => None,
        }
    }

    /// The subdirectory holding the PKGBUILD (git only).
    pub fn path(&self) -> Option<&SubPath> {
        match self {
            Source::Git { path, .. } => path.as_ref(),
            _ => None,
        }
    }

    /// Builds a source from the API's loose fields, or says what is wrong with each (`url`, `branch`,
    /// `path`, in that order).
    ///
    /// ```
    /// use libvieter::target::{Source, TargetKind};
    /// let s = Source::from_parts(TargetKind::Aur, "yay", None, None).unwrap();
    /// assert_eq!((s.kind(), s.url_str()), (TargetKind::Aur, "yay"));
    /// let e = Source::from_parts(TargetKind::Url, "https://h/PKGBUILD", Some("main"), None).unwrap_err();
    /// assert_eq!(e.to_string(), "branch: only git targets have a branch, this one is url");
    /// ```
    pub fn from_parts(
        kind: TargetKind,
        url: &str,
        branch: Option<&str>,
        path: Option<&str>,
    ) -> Result<Source, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let source = build_source(Some(kind), url, branch, path, &mut errors);
        match source {
            Some(source) if errors.is_empty() => Ok(source),
            _ => Err(errors),
        }
    }
}

/// A validated build target.
///
/// Construct it with [`NewTarget::validate`] or [`TargetPatch::apply`]; deserialising checks each
/// field's own rules and that the source's fields fit its kind, [`Target::check`] the rest (the arch
/// list, the timeout).
///
/// Its JSON (and stored) shape is flat: `id, kind, url, branch, path, repo, schedule, arch, base_image,
/// build_timeout_secs, enabled, needs, automatic`, with `branch` and `path` `null` for url and aur
/// targets (records without `needs` and `automatic` read as none and `false`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TargetWire", into = "TargetWire")]
pub struct Target {
    pub id: TargetId,
    /// What to build from (the API's `kind`, `url`, `branch` and `path`).
    pub source: Source,
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
    /// Targets whose jobs must end succeeded or skipped before this one builds (by id, no duplicates).
    pub needs: Vec<TargetId>,
    /// Created as an AUR dependency of another target: removed once no target needs it. Set by the
    /// build service only.
    pub automatic: bool,
}

/// [`Target`] as it is serialised: the source's fields flat, as the API has always had them.
#[derive(Serialize, Deserialize)]
struct TargetWire {
    id: TargetId,
    kind: TargetKind,
    url: String,
    branch: Option<GitRef>,
    path: Option<SubPath>,
    repo: RepoName,
    schedule: Option<Schedule>,
    arch: Vec<Arch>,
    base_image: Option<ImageRef>,
    build_timeout_secs: Option<u64>,
    enabled: bool,
    #[serde(default)]
    needs: Vec<TargetId>,
    #[serde(default)]
    automatic: bool,
}

impl TryFrom<TargetWire> for Target {
    type Error = ValidationErrors;
    fn try_from(w: TargetWire) -> Result<Self, Self::Error> {
        let mut errors = ValidationErrors::default();
        push_source_errors(w.kind, &w.url, w.branch.is_some(), w.path.is_some(), &mut errors);
        let source = match w.kind {
            TargetKind::Git => {
                CloneUrl::new(w.url).ok().map(|url| Source::Git { url, branch: w.branch, path: w.path })
            }
            TargetKind::Url => PkgbuildUrl::new(w.url).ok().map(|url| Source::Url { url }),
            TargetKind::Aur => PkgName::new(w.url).ok().map(|name| Source::Aur { name }),
        };
        let (Some(source), true) = (source, errors.is_empty()) else {
            return Err(errors);
        };
        Ok(Target {
            id: w.id,
            source,
            repo: w.repo,
            schedule: w.schedule,
            arch: w.arch,
            base_image: w.base_image,
            build_timeout_secs: w.build_timeout_secs,
            enabled: w.enabled,
            needs: w.needs,
            automatic: w.automatic,
        })
    }
}

impl From<Target> for TargetWire {
    fn from(t: Target) -> TargetWire {
        let kind = t.source.kind();
        let (url, branch, path) = match t.source {
            Source::Git { url, branch, path } => (url.into(), branch, path),
            Source::Url { url } => (url.into(), None, None),
            Source::Aur { name } => (name.into(), None, None),
        };
        TargetWire {
            id: t.id,
            kind,
            url,
            branch,
            path,
            repo: t.repo,
            schedule: t.schedule,
            arch: t.arch,
            base_image: t.base_image,
            build_timeout_secs: t.build_timeout_secs,
            enabled: t.enabled,
            needs: t.needs,
            automatic: t.automatic,
        }
    }
}

/// The AUR clone URL of a package base: `{base}/{name}.git`.
pub fn aur_clone_url(base: &str, name: &PkgName) -> String {
    format!("{}/{name}.git", base.trim_end_matches('/'))
}

impl Target {
    /// The URL to `git clone`: the url itself for `git`, derived from `aur_base` (normally [`AUR_BASE`])
    /// for `aur`, `None` for `url` targets (they download one file).
    pub fn clone_url(&self, aur_base: &str) -> Option<String> {
        match &self.source {
            Source::Git { url, .. } => Some(url.to_string()),
            Source::Aur { name } => Some(aur_clone_url(aur_base, name)),
            Source::Url { .. } => None,
        }
    }

    /// The kind of the target's source.
    pub fn kind(&self) -> TargetKind {
        self.source.kind()
    }

    /// The schedule in force: the target's own, else `default`.
    pub fn effective_schedule<'a>(&'a self, default: &'a Schedule) -> &'a Schedule {
        self.schedule.as_ref().unwrap_or(default)
    }

    /// Checks the rules the types do not hold (the arch list, the timeout): for a target read from
    /// storage. (The source's rules hold by construction: deserialising refuses a mismatch.)
    pub fn check(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        check_arches(&self.arch, &mut errors);
        if self.build_timeout_secs == Some(0) {
            errors.push("build_timeout_secs", "must be greater than 0");
        }
        errors.into_result(())
    }

    /// This target as the input that would create it (for editing forms and round trips).
    pub fn to_new(&self) -> NewTarget {
        NewTarget {
            kind: self.kind().as_str().to_owned(),
            url: self.source.url_str().to_owned(),
            branch: self.source.branch().map(|b| b.to_string()),
            path: self.source.path().map(|p| p.to_string()),
            repo: self.repo.to_string(),
            schedule: self.schedule.as_ref().map(|s| s.to_string()),
            arch: Some(self.arch.iter().map(|a| a.to_string()).collect()),
            base_image: self.base_image.as_ref().map(|i| i.to_string()),
            build_timeout_secs: self.build_timeout_secs,
            enabled: Some(self.enabled),
            needs: self.needs.clone(),
        }
    }
}

/// One problem with one input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's name as in the API (`kind`, `url`, `branch`, `path`, `repo`, `schedule`, `arch`,
    /// `base_image`, `build_timeout_secs`, `needs`).
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

/// Pushes what is wrong with a source's url for its kind, and a branch or path on a non-git source.
fn push_source_errors(
    kind: TargetKind,
    url: &str,
    has_branch: bool,
    has_path: bool,
    errors: &mut ValidationErrors,
) {
    let url_problem = match kind {
        TargetKind::Git => CloneUrl::new(url).err().map(|e| e.to_string()),
        TargetKind::Url => PkgbuildUrl::new(url).err().map(|e| e.to_string()),
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

/// The source of the loose fields, pushing every problem (`url`, then `branch`, then `path`); `None`
/// when there is one, or when `kind` is unknown (the branch and path are still checked).
fn build_source(
    kind: Option<TargetKind>,
    url: &str,
    branch: Option<&str>,
    path: Option<&str>,
    errors: &mut ValidationErrors,
) -> Option<Source> {
    let before = errors.len();
    if let Some(kind) = kind {
        push_source_errors(kind, url, branch.is_some(), path.is_some(), errors);
    }
    let branch = parse_field(errors, "branch", branch, |s| GitRef::new(s));
    let path = parse_field(errors, "path", path, |s| SubPath::new(s));
    if errors.len() != before {
        return None;
    }
    // No problem was pushed: the url parses for its kind, and a non-git source has no branch or path.
    Some(match kind? {
        TargetKind::Git => Source::Git { url: CloneUrl::new(url).ok()?, branch, path },
        TargetKind::Url => Source::Url { url: PkgbuildUrl::new(url).ok()? },
        TargetKind::Aur => Source::Aur { name: PkgName::new(url).ok()? },
    })
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

fn parse_field<T, E: fmt::Display>(
    errors: &mut ValidationErrors,
    field: &'static str,
    value: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Option<T> {
    let value = value?;
    match parse(value) {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(field, e.to_string());
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
    /// Targets that must build first (their jobs end succeeded or skipped); duplicates are dropped. The
    /// build service checks that they exist and form no cycle.
    pub needs: Vec<TargetId>,
}

impl NewTarget {
    /// Checks every field and builds the target, or returns every problem found.
    pub fn validate(&self, id: TargetId, default_arch: &Arch) -> Result<Target, ValidationErrors> {
        self.build(id, Some(default_arch))
    }

    fn build(&self, id: TargetId, default_arch: Option<&Arch>) -> Result<Target, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let kind = parse_field(&mut errors, "kind", Some(&self.kind), TargetKind::from_str);
        let source = build_source(kind, &self.url, self.branch.as_deref(), self.path.as_deref(), &mut errors);
        let repo = parse_field(&mut errors, "repo", Some(&self.repo), |s| RepoName::new(s));
        let schedule = parse_field(&mut errors, "schedule", self.schedule.as_deref(), Schedule::parse);
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
        let (Some(source), Some(repo), Some(arch), true) = (source, repo, arch, errors.is_empty()) else {
            return Err(errors);
        };
        Ok(Target {
            id,
            source,
            repo,
            schedule,
            arch,
            base_image,
            build_timeout_secs: self.build_timeout_secs,
            enabled: self.enabled.unwrap_or(true),
            needs: normalized_needs(&self.needs),
            automatic: false,
        })
    }
}

/// `needs` in id order, each once.
fn normalized_needs(needs: &[TargetId]) -> Vec<TargetId> {
    let mut needs = needs.to_vec();
    needs.sort_unstable();
    needs.dedup();
    needs
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
    /// Replaces the list of targets that must build first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needs: Option<Vec<TargetId>>,
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
        if let Some(needs) = &self.needs {
            new.needs = needs.clone();
        }
        let mut edited = new.build(target.id, None)?;
        edited.automatic = target.automatic;
        Ok(edited)
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
        assert_eq!(t.source.branch().map(GitRef::as_str), Some("release/1.x"));
        assert_eq!(t.source.path().map(SubPath::as_str), Some("pkgs/foo/"));
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
            needs: Vec::new(),
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
    fn repo_names() {
        // Git refs, subdirectories and URLs are tested in `name`.
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
        assert_eq!(edited.source.branch(), None);
        assert_eq!(edited.repo.as_str(), "other");
        assert_eq!(edited.arch, [Arch::new("aarch64").unwrap()]);
        assert_eq!(edited.schedule, t.schedule);
        // Switching to aur keeps the git branch: refused, naming the fields.
        let patch = TargetPatch { kind: Some("aur".into()), url: Some("yay".into()), ..Default::default() };
        let e = patch.apply(&t).unwrap_err();
        assert_eq!(e.iter().map(|e| e.field).collect::<Vec<_>>(), ["branch"]);
        let patch = TargetPatch { branch: Some(None), ..patch };
        let aur = patch.apply(&t).unwrap();
        assert_eq!(aur.source, Source::Aur { name: PkgName::new("yay").unwrap() });
        assert_eq!(aur.kind(), TargetKind::Aur);
        // An invalid edit reports it and leaves nothing half-applied (the input target is untouched).
        let patch = TargetPatch { schedule: Some(Some("0 0 30 2".into())), ..Default::default() };
        assert_eq!(patch.apply(&t).unwrap_err().first().map(|e| e.field), Some("schedule"));
        assert_eq!(t.schedule.as_ref().map(ToString::to_string).as_deref(), Some("0 3 * *"));
        let patch = TargetPatch { arch: Some(vec![]), ..Default::default() };
        assert_eq!(patch.apply(&t).unwrap_err().first().map(|e| e.field), Some("arch"));
    }

    /// Today's JSON of each kind of target, byte for byte: clients, the OpenAPI document and stored
    /// records depend on it.
    #[test]
    fn json_shape_of_each_source() {
        let x86 = x86();
        let cases = [
            (
                git("https://h/x.git"),
                r#"{"id":3,"kind":"git","url":"https://h/x.git","branch":null,"path":null,"repo":"main","schedule":null,"arch":["x86_64"],"base_image":null,"build_timeout_secs":null,"enabled":true,"needs":[],"automatic":false}"#,
            ),
            (
                NewTarget {
                    branch: Some("dev".into()),
                    path: Some("pkgs/a".into()),
                    schedule: Some("0 3".into()),
                    base_image: Some("img:1".into()),
                    build_timeout_secs: Some(60),
                    enabled: Some(false),
                    arch: Some(vec!["x86_64".into(), "aarch64".into()]),
                    ..git("https://h/x.git")
                },
                r#"{"id":3,"kind":"git","url":"https://h/x.git","branch":"dev","path":"pkgs/a","repo":"main","schedule":"0 3 * *","arch":["x86_64","aarch64"],"base_image":"img:1","build_timeout_secs":60,"enabled":false,"needs":[],"automatic":false}"#,
            ),
            (
                NewTarget { kind: "url".into(), url: "https://h/PKGBUILD".into(), ..git("") },
                r#"{"id":3,"kind":"url","url":"https://h/PKGBUILD","branch":null,"path":null,"repo":"main","schedule":null,"arch":["x86_64"],"base_image":null,"build_timeout_secs":null,"enabled":true,"needs":[],"automatic":false}"#,
            ),
            (
                NewTarget { kind: "aur".into(), url: "yay".into(), ..git("") },
                r#"{"id":3,"kind":"aur","url":"yay","branch":null,"path":null,"repo":"main","schedule":null,"arch":["x86_64"],"base_image":null,"build_timeout_secs":null,"enabled":true,"needs":[],"automatic":false}"#,
            ),
        ];
        let mut kinds = Vec::new();
        for (input, json) in cases {
            let t = input.validate(TargetId(3), &x86).unwrap();
            assert_eq!(serde_json::to_string(&t).unwrap(), json);
            let back: Target = serde_json::from_str(json).unwrap();
            assert_eq!(back, t);
            assert_eq!(back.source.url_str(), input.url);
            kinds.push(back.kind());
        }
        assert_eq!(kinds, [TargetKind::Git, TargetKind::Git, TargetKind::Url, TargetKind::Aur]);
        // Records without the optional fields read as before (absent = null).
        let t: Target = serde_json::from_str(
            r#"{"id":1,"kind":"git","url":"https://h/x","repo":"main","arch":["x86_64"],"enabled":true}"#,
        )
        .unwrap();
        assert_eq!(t.source, Source::git(CloneUrl::new("https://h/x").unwrap()));
    }

    #[test]
    fn needs_and_automatic_round_trip_and_survive_edits() {
        let input = NewTarget { needs: vec![TargetId(5), TargetId(2), TargetId(5)], ..git("https://h/x") };
        let mut t = input.validate(TargetId(7), &x86()).unwrap();
        assert_eq!(t.needs, [TargetId(2), TargetId(5)], "sorted, each once");
        assert!(!t.automatic);
        t.automatic = true;
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(
            (&json["needs"], &json["automatic"]),
            (&serde_json::json!([2, 5]), &serde_json::json!(true))
        );
        assert_eq!(serde_json::from_value::<Target>(json).unwrap(), t);
        // An edit keeps `automatic` (users cannot set it) and replaces `needs` when given.
        let patch: TargetPatch = serde_json::from_str(r#"{"needs": [9]}"#).unwrap();
        let edited = patch.apply(&t).unwrap();
        assert_eq!((edited.needs.as_slice(), edited.automatic), (&[TargetId(9)][..], true));
        let edited = TargetPatch::default().apply(&t).unwrap();
        assert_eq!(edited, t);
    }

    #[test]
    fn deserialising_refuses_mixed_sources() {
        let base = serde_json::json!({
            "id": 1, "kind": "url", "url": "https://h/PKGBUILD", "branch": "main", "path": null,
            "repo": "main", "schedule": null, "arch": ["x86_64"], "base_image": null,
            "build_timeout_secs": null, "enabled": true,
        });
        let refused =
            |v: &serde_json::Value| serde_json::from_value::<Target>(v.clone()).unwrap_err().to_string();
        assert_eq!(refused(&base), "branch: only git targets have a branch, this one is url");
        let mut v = base.clone();
        v["kind"] = "aur".into();
        v["url"] = "-bad".into();
        v["branch"] = serde_json::Value::Null;
        v["path"] = "pkgs".into();
        assert_eq!(
            refused(&v),
            "url: not an AUR package base: package name \"-bad\" may only contain letters, digits and @ . _ + - \
             and must not start with '-' or '.'; path: only git targets have a path, this one is aur"
        );
        let mut v = base.clone();
        v["kind"] = "git".into();
        v["url"] = "ftp://h/x".into();
        assert_eq!(refused(&v), "url: 'ftp://h/x' has scheme 'ftp': use http, https, git, ssh, file");
        v["url"] = "https://h/x".into();
        v["branch"] = "a..b".into();
        assert!(refused(&v).contains("'a..b' is not a valid git branch name"), "{}", refused(&v));
        let mut v = base;
        v["kind"] = "url".into();
        v["url"] = "git://h/x".into();
        v["branch"] = serde_json::Value::Null;
        assert_eq!(refused(&v), "url: 'git://h/x' has scheme 'git': use http, https");
        // The same rules as the input's: the loose fields of a valid target build its source.
        let s = Source::from_parts(TargetKind::Git, "https://h/x", Some("dev"), Some("a")).unwrap();
        assert_eq!(
            (s.kind(), s.url_str(), s.branch().map(GitRef::as_str)),
            (TargetKind::Git, "https://h/x", Some("dev"))
        );
        let e = Source::from_parts(TargetKind::Aur, "a b", Some("x"), Some("/abs")).unwrap_err();
        assert_eq!(e.iter().map(|e| e.field).collect::<Vec<_>>(), ["url", "branch", "path", "path"]);
    }
}
