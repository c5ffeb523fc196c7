//! VCS sources of a PKGBUILD and the revision a build was made from: what the change detection of `git`
//! targets compares with `git ls-remote` (as paru's devel check does) instead of starting a container.
//!
//! The agent records a [`Revision`] with every successful (or skipped) build: the commit of the
//! target's repository and, for each `git+` source of the PKGBUILD, the commit makepkg fetched (read
//! from makepkg's own clone in `SRCDEST` by [`revision_script`]). Before a scheduled run, the server asks
//! `git ls-remote` for the same refs ([`VcsSource::remote_ref`], [`ls_remote_commit`]); the rule is
//! [`crate::builds::git_change`].
//!
//! ```
//! use libvieter::vcs::{Follow, Vcs, VcsSource};
//! let s = VcsSource::parse("tool::git+https://example.org/tool.git#branch=stable").unwrap();
//! assert_eq!((s.vcs, s.url.as_str(), s.dir.as_str()), (Vcs::Git, "https://example.org/tool.git", "tool"));
//! assert_eq!(s.follow, Follow::Branch("stable".into()));
//! assert_eq!(s.remote_ref().unwrap().refname, "refs/heads/stable");
//! assert!(VcsSource::parse("https://example.org/tool-1.0.tar.gz").is_none());
//! ```

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The version control systems makepkg fetches (`git+…`, `hg+…`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vcs {
    Git,
    Hg,
    Svn,
    Bzr,
    Fossil,
}

impl Vcs {
    fn from_prefix(s: &str) -> Option<Vcs> {
        Some(match s {
            "git" => Vcs::Git,
            "hg" => Vcs::Hg,
            "svn" => Vcs::Svn,
            "bzr" => Vcs::Bzr,
            "fossil" => Vcs::Fossil,
            _ => return None,
        })
    }
}

/// What a VCS source follows: its `#fragment` (makepkg's `branch=`, `tag=`, `commit=`, `revision=`,
/// `bookmark=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Follow {
    /// No fragment: the remote's default branch.
    Head,
    /// `#branch=` (and hg's `#bookmark=`).
    Branch(String),
    /// `#tag=`.
    Tag(String),
    /// `#commit=` or `#revision=`: a fixed point that never moves.
    Fixed(String),
}

/// A VCS entry of a PKGBUILD's `source` array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcsSource {
    pub vcs: Vcs,
    /// The URL fetched: without the `vcs+` prefix, the fragment and the query.
    pub url: String,
    pub follow: Follow,
    /// The directory makepkg keeps its clone in, under `SRCDEST` (the `name::` prefix, else the URL's
    /// last component without `.git`).
    pub dir: String,
}

/// A ref of a remote git repository: what one `git ls-remote URL REFNAME` answers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RemoteRef {
    pub url: String,
    /// `HEAD`, `refs/heads/BRANCH` or `refs/tags/TAG`.
    pub refname: String,
}

impl RemoteRef {
    /// The ref of a branch, or the default branch (`HEAD`) when `branch` is `None`.
    pub fn branch(url: &str, branch: Option<&str>) -> RemoteRef {
        let refname = match branch {
            Some(b) => format!("refs/heads/{b}"),
            None => "HEAD".to_owned(),
        };
        RemoteRef { url: url.to_owned(), refname }
    }
}

impl VcsSource {
    /// Reads one `source` entry; `None` when it is not a VCS source (a file or a plain download).
    pub fn parse(entry: &str) -> Option<VcsSource> {
        let (name, location) = match entry.split_once("::") {
            Some((name, location)) => (Some(name), location),
            None => (None, entry),
        };
        let (prefix, rest) = location.split_once('+')?;
        let vcs = Vcs::from_prefix(prefix)?;
        let (rest, fragment) = match rest.split_once('#') {
            Some((rest, fragment)) => (rest, Some(fragment)),
            None => (rest, None),
        };
        let url = rest.split_once('?').map_or(rest, |(url, _)| url);
        if url.is_empty() {
            return None;
        }
        let follow = match fragment.and_then(|f| f.split_once('=')) {
            None => Follow::Head,
            Some(("branch" | "bookmark", b)) => Follow::Branch(b.to_owned()),
            Some(("tag", t)) => Follow::Tag(t.to_owned()),
            Some((_, fixed)) => Follow::Fixed(fixed.to_owned()),
        };
        let dir = match name {
            Some(name) if !name.is_empty() => name.to_owned(),
            _ => {
                let last = url.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
                let last = if vcs == Vcs::Git { last.split(".git").next().unwrap_or_default() } else { last };
                last.to_owned()
            }
        };
        Some(VcsSource { vcs, url: url.to_owned(), follow, dir })
    }

    /// The ref `git ls-remote` is asked for: `None` for a fixed commit (it cannot change) and for other
    /// VCSs (no cheap remote check: such a target is always built).
    pub fn remote_ref(&self) -> Option<RemoteRef> {
        if self.vcs != Vcs::Git {
            return None;
        }
        let refname = match &self.follow {
            Follow::Head => "HEAD".to_owned(),
            Follow::Branch(b) => format!("refs/heads/{b}"),
            Follow::Tag(t) => format!("refs/tags/{t}"),
            Follow::Fixed(_) => return None,
        };
        Some(RemoteRef { url: self.url.clone(), refname })
    }

    /// The expression `git rev-parse` resolves in makepkg's clone for the commit built.
    fn rev(&self) -> Option<String> {
        match &self.follow {
            Follow::Head => Some("HEAD".to_owned()),
            Follow::Branch(b) => Some(format!("refs/heads/{b}")),
            Follow::Tag(t) => Some(format!("refs/tags/{t}")),
            Follow::Fixed(_) => None,
        }
    }
}

/// Whether `s` is a full commit id (40 hex digits for SHA-1, 64 for SHA-256 repositories).
pub fn is_commit(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The commit `refname` points at in the output of `git ls-remote`: the peeled line (`^{}`) of an
/// annotated tag wins over the tag object. `None` when the ref is not listed.
///
/// ```
/// let out = "1111111111111111111111111111111111111111\trefs/tags/v1\n\
///            2222222222222222222222222222222222222222\trefs/tags/v1^{}\n";
/// assert_eq!(libvieter::vcs::ls_remote_commit(out, "refs/tags/v1").unwrap(), "2222222222222222222222222222222222222222");
/// ```
pub fn ls_remote_commit(output: &str, refname: &str) -> Option<String> {
    let mut found = None;
    for line in output.lines() {
        let Some((commit, name)) = line.split_once('\t') else { continue };
        if !is_commit(commit) {
            continue;
        }
        if name == refname && found.is_none() {
            found = Some(commit.to_ascii_lowercase());
        } else if name.strip_suffix("^{}") == Some(refname) {
            return Some(commit.to_ascii_lowercase());
        }
    }
    found
}

/// What a build was made from, as the agent read it in the build container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// The commit of the target's repository that was built (`git` and `aur` targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The VCS sources of the PKGBUILD, each with the commit makepkg fetched when it could be read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<PinnedSource>,
}

/// A VCS `source` entry and the commit a build fetched for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedSource {
    /// The entry as written in the .SRCINFO (`name::git+https://…#branch=x`).
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// Quotes `s` for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The script, run in the build container once makepkg fetched the sources, that prints what the build
/// is made from: `commit SHA` for the repository in `repo_dir` (when given) and `source INDEX SHA` for
/// each git source of `sources` (indexes into `sources`), read from makepkg's clones in `srcdest`. It
/// never fails: what cannot be read is not printed. [`parse_revision`] reads its output.
pub fn revision_script(repo_dir: Option<&str>, srcdest: &str, sources: &[String]) -> String {
    let mut script = String::new();
    if let Some(dir) = repo_dir {
        let _ = writeln!(
            script,
            "c=$(git -C {} rev-parse --verify -q 'HEAD^{{commit}}' 2>/dev/null) && printf 'commit %s\\n' \"$c\"",
            quote(dir)
        );
    }
    for (index, entry) in sources.iter().enumerate() {
        let Some(source) = VcsSource::parse(entry) else { continue };
        let Some(rev) = source.rev().filter(|_| source.vcs == Vcs::Git) else { continue };
        let _ = writeln!(
            script,
            "c=$(git --git-dir={} rev-parse --verify -q {} 2>/dev/null) && printf 'source {index} %s\\n' \"$c\"",
            quote(&format!("{srcdest}/{}", source.dir)),
            quote(&format!("{rev}^{{commit}}")),
        );
    }
    script.push_str("exit 0\n");
    script
}

/// Reads the output of [`revision_script`] for the same `sources`: every VCS source is listed, with the
/// commit when one was printed. Lines it does not know are ignored.
pub fn parse_revision(output: &str, sources: &[String]) -> Revision {
    let mut revision = Revision {
        commit: None,
        sources: sources
            .iter()
            .filter(|s| VcsSource::parse(s).is_some())
            .map(|s| PinnedSource { source: s.clone(), commit: None })
            .collect(),
    };
    for line in output.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("commit"), Some(c), None) if is_commit(c) => revision.commit = Some(c.to_ascii_lowercase()),
            (Some("source"), Some(i), Some(c)) if is_commit(c) => {
                let Some(entry) = i.parse::<usize>().ok().and_then(|i| sources.get(i)) else { continue };
                if let Some(pinned) = revision.sources.iter_mut().find(|p| &p.source == entry) {
                    pinned.commit = Some(c.to_ascii_lowercase());
                }
            }
            _ => {}
        }
    }
    revision
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn sources_as_makepkg_reads_them() {
        let s = VcsSource::parse("git+https://github.com/o/tool.git").unwrap();
        assert_eq!(
            (s.url.as_str(), s.dir.as_str(), &s.follow),
            ("https://github.com/o/tool.git", "tool", &Follow::Head)
        );
        assert_eq!(s.remote_ref().unwrap(), RemoteRef::branch("https://github.com/o/tool.git", None));
        let s = VcsSource::parse("git+file:///srv/x/#tag=v1.2").unwrap();
        assert_eq!((s.url.as_str(), s.dir.as_str()), ("file:///srv/x/", "x"));
        assert_eq!(s.remote_ref().unwrap().refname, "refs/tags/v1.2");
        let s = VcsSource::parse("git+https://h/p?signed#commit=abc").unwrap();
        assert_eq!((s.url.as_str(), &s.follow), ("https://h/p", &Follow::Fixed("abc".into())));
        assert!(s.remote_ref().is_none(), "a fixed commit never moves");
        let s = VcsSource::parse("hg+https://h/repo#branch=default").unwrap();
        assert_eq!(s.vcs, Vcs::Hg);
        assert!(s.remote_ref().is_none(), "no cheap check for hg");
        for plain in ["https://h/a.tar.gz", "local.patch", "name::https://h/x", "foo+https://h/x", "git+"] {
            assert!(VcsSource::parse(plain).is_none(), "{plain}");
        }
    }

    #[test]
    fn ls_remote_output() {
        let out = format!("{A}\tHEAD\n{B}\trefs/heads/main\n{B}\trefs/remotes/origin/HEAD\nnot a line\n");
        assert_eq!(ls_remote_commit(&out, "HEAD").as_deref(), Some(A));
        assert_eq!(ls_remote_commit(&out, "refs/heads/main").as_deref(), Some(B));
        assert_eq!(ls_remote_commit(&out, "refs/heads/other"), None);
        assert_eq!(
            ls_remote_commit(&format!("xyz\tHEAD\n{}\tHEAD", A.to_uppercase()), "HEAD").as_deref(),
            Some(A)
        );
    }

    #[test]
    fn the_revision_script_and_its_output() {
        let sources = vec![
            "https://h/a.tar.gz".to_owned(),
            "tool::git+https://h/tool.git#branch=dev".to_owned(),
            "git+https://h/pinned.git#commit=123".to_owned(),
            "hg+https://h/hgrepo".to_owned(),
        ];
        let script = revision_script(Some("/build/src"), "/build/sources", &sources);
        assert!(script.contains("git -C '/build/src' rev-parse"), "{script}");
        assert!(script
            .contains("--git-dir='/build/sources/tool' rev-parse --verify -q 'refs/heads/dev^{commit}'"));
        assert!(script.contains("printf 'source 1 %s\\n'"));
        assert!(!script.contains("pinned") && !script.contains("hgrepo"), "{script}");
        assert!(script.ends_with("exit 0\n"));

        let out = format!("commit {A}\nsource 1 {B}\nsource 9 {A}\nsource 0 nonsense\ngarbage\n");
        let revision = parse_revision(&out, &sources);
        assert_eq!(revision.commit.as_deref(), Some(A));
        let pinned: Vec<(&str, Option<&str>)> =
            revision.sources.iter().map(|p| (p.source.as_str(), p.commit.as_deref())).collect();
        assert_eq!(
            pinned,
            [
                ("tool::git+https://h/tool.git#branch=dev", Some(B)),
                ("git+https://h/pinned.git#commit=123", None),
                ("hg+https://h/hgrepo", None),
            ]
        );
        assert_eq!(parse_revision("", &[]), Revision::default());
    }
}
