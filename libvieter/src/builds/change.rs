//! Change detection without a container: before a scheduled run is queued, the server may find its
//! target unchanged since its packages were published, and the run is then recorded as a `skipped` job
//! that no agent ever sees.
//!
//! The rule for `aur` targets is [`aur_change`]: the AUR's version of the package base equals the
//! version of every package of that base published in the target's repository for that architecture.
//! The rule for `git` targets is [`git_change`]: the branch still points at the commit of the last
//! build, so does every git VCS source of its PKGBUILD, and what it built is still published.
//! [`SourceCheck`] applies both to the due runs of a tick, with one batched AUR lookup and one
//! `git ls-remote` per distinct ref; the lookups are the embedder's, through [`SourceLookups`] (the
//! server asks the AUR over HTTP and runs git). Manual builds, forced builds and retries never go
//! through it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::api::PackageSummary;
use crate::job::JobState;
use crate::job::{BuiltPackage, Job, Trigger};
use crate::name::{Arch, GitRef, PkgName, RepoName};
use crate::target::{Source, Target, TargetId};
use crate::vcs::{RemoteRef, Vcs, VcsSource};
use crate::version::{vercmp, Version};

use super::{BuildError, BuildService, BuildStore, Saved};

/// What a change check found for one due run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing to build: exactly these versions are published. The reason is shown with the job.
    Unchanged { versions: Vec<BuiltPackage>, reason: String },
    /// Build it, for this reason (shown with the job).
    Changed { reason: String },
}

/// One due run, as a change check sees it.
#[derive(Debug, Clone, Copy)]
pub struct DueTarget<'a> {
    pub target: &'a Target,
    pub arch: &'a Arch,
    /// The target's last job for this architecture that built (or found published) something and
    /// recorded what it was made from: what [`git_change`] compares with.
    pub last: Option<&'a Job>,
}

/// Decides, for the due runs of one tick, which targets changed. Called once per tick with every due
/// run (so lookups can be batched); answers one entry per run, in order: `None` is no opinion (the run
/// is queued as without a check). The check must not fail the tick: on a lookup failure it answers
/// `None` and reports the failure itself.
pub trait ChangeCheck {
    fn check(&mut self, due: &[DueTarget<'_>]) -> Vec<Option<Change>>;
}

/// No change detection: every due run is queued.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCheck;

impl ChangeCheck for NoCheck {
    fn check(&mut self, due: &[DueTarget<'_>]) -> Vec<Option<Change>> {
        vec![None; due.len()]
    }
}

/// The package base an `aur` target builds (its name is the base's name), `None` for other kinds.
pub fn aur_base(target: &Target) -> Option<&PkgName> {
    match &target.source {
        Source::Aur { name } => Some(name),
        _ => None,
    }
}

/// The rule for an `aur` target building package base `base`: unchanged when the AUR's version
/// (`aur`, `None` when the AUR has no package of that name) equals the version of every package of
/// the base in `published` (the target repository's packages for the run's architecture, `any` ones
/// included), and there is at least one.
///
/// ```
/// use libvieter::builds::{aur_change, Change};
/// let v = |s: &str| s.parse().unwrap();
/// assert!(matches!(aur_change(&"yay".parse().unwrap(), Some(&v("12.4.2-1")), &[]), Change::Changed { .. }));
/// ```
pub fn aur_change(base: &PkgName, aur: Option<&Version>, published: &[PackageSummary]) -> Change {
    let Some(aur) = aur else {
        return Change::Changed { reason: format!("{base}: the AUR has no package of this name to compare") };
    };
    let of_base: Vec<&PackageSummary> =
        published.iter().filter(|s| s.base.as_ref().unwrap_or(&s.name) == base).collect();
    if of_base.is_empty() {
        return Change::Changed { reason: format!("{base} {aur} in the AUR is not published yet") };
    }
    if let Some(other) = of_base
        .iter()
        .find(|s| crate::version::vercmp(s.version.as_str(), aur.as_str()) != std::cmp::Ordering::Equal)
    {
        return Change::Changed {
            reason: format!("the AUR has {base} {aur}, the repository {} {}", other.name, other.version),
        };
    }
    Change::Unchanged {
        versions: of_base
            .iter()
            .map(|s| BuiltPackage { name: s.name.clone(), version: s.version.clone(), arch: s.arch.clone() })
            .collect(),
        reason: format!("unchanged: the AUR's {base} {aur} is published"),
    }
}

/// The most VCS sources of one build that are checked with `git ls-remote`: a PKGBUILD (written by
/// anyone) listing more is built instead, so it cannot make a tick run hundreds of remote lookups.
pub const MAX_CHECKED_VCS_SOURCES: usize = 16;

/// The first 12 digits of a commit, as shown in reasons.
fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// The refs `git ls-remote` must answer for [`git_change`] of a `git` target whose last build is
/// `last`: the target's branch (or `HEAD`) and every git VCS source that follows a branch or tag.
/// None when there is nothing to compare with (the target is built anyway).
pub fn git_queries(target: &Target, last: Option<&Job>) -> Vec<RemoteRef> {
    let Source::Git { url, branch, .. } = &target.source else { return Vec::new() };
    let Some(revision) = last.and_then(Job::revision).filter(|r| r.commit.is_some()) else {
        return Vec::new();
    };
    let mut refs = vec![RemoteRef::branch(url.as_str(), branch.as_ref().map(GitRef::as_str))];
    if revision.sources.len() <= MAX_CHECKED_VCS_SOURCES {
        refs.extend(revision.sources.iter().filter_map(|p| VcsSource::parse(&p.source)?.remote_ref()));
    }
    refs
}

/// The rule for a `git` target (`url`, `branch`) whose last build is `last`: unchanged when that build
/// recorded its commit and the branch still points at it (`remote`: what `git ls-remote` answered for
/// [`git_queries`]), every VCS source it fetched is a git one still at the commit built (a fixed
/// `#commit=` never moves; hg, svn, bzr and fossil sources cannot be checked without building), and
/// every package it built is still published at that version (`published`: the target repository's
/// packages for the run's architecture, `any` ones included).
pub fn git_change(
    url: &str,
    branch: Option<&GitRef>,
    last: Option<&Job>,
    remote: &BTreeMap<RemoteRef, Result<String, String>>,
    published: &[PackageSummary],
) -> Change {
    let changed = |reason: String| Change::Changed { reason };
    let Some(last) = last else { return changed("no earlier build to compare with".into()) };
    let Some((revision, built)) = last.revision().and_then(|r| Some((r, r.commit.as_deref()?))) else {
        return changed(format!("job {} did not record the commit it built", last.id()));
    };
    let moved = |what: &str, query: &RemoteRef, built: &str| -> Option<Change> {
        match remote.get(query) {
            Some(Ok(now)) if now == built => None,
            Some(Ok(now)) => Some(changed(format!("{what} moved: {} → {}", short(built), short(now)))),
            Some(Err(e)) => {
                Some(changed(format!("git ls-remote {} {} failed: {e}", query.url, query.refname)))
            }
            None => Some(changed(format!("{what}: {} not listed by git ls-remote", query.refname))),
        }
    };
    let head = RemoteRef::branch(url, branch.map(GitRef::as_str));
    if let Some(change) = moved(&format!("{url} {}", head.refname), &head, built) {
        return change;
    }
    if revision.sources.len() > MAX_CHECKED_VCS_SOURCES {
        return changed(format!(
            "{} VCS sources: more than {MAX_CHECKED_VCS_SOURCES} are not checked without building",
            revision.sources.len()
        ));
    }
    for pinned in &revision.sources {
        let Some(source) = VcsSource::parse(&pinned.source) else { continue };
        if source.vcs != Vcs::Git {
            return changed(format!(
                "{}: {:?} sources are not checked without building",
                pinned.source, source.vcs
            ));
        }
        let Some(query) = source.remote_ref() else { continue };
        let Some(commit) = pinned.commit.as_deref() else {
            return changed(format!("job {} did not record the commit of {}", last.id(), pinned.source));
        };
        if let Some(change) = moved(&format!("VCS source {}", pinned.source), &query, commit) {
            return change;
        }
    }
    if last.versions().is_empty() {
        return changed(format!("job {} recorded no package", last.id()));
    }
    for built in last.versions() {
        let found = published.iter().any(|p| {
            p.name == built.name
                && p.arch == built.arch
                && vercmp(p.version.as_str(), built.version.as_str()).is_eq()
        });
        if !found {
            return changed(format!("{} {} is no longer published", built.name, built.version));
        }
    }
    let vcs = match revision.sources.len() {
        0 => String::new(),
        1 => " and its VCS source".to_owned(),
        n => format!(" and its {n} VCS sources"),
    };
    Change::Unchanged {
        versions: last.versions().to_vec(),
        reason: format!("unchanged: {url} {}{vcs} still at the commit of job {}", head.refname, last.id()),
    }
}

/// What [`SourceCheck`] asks the world. Failures are messages: the run is then built, with the failure
/// as its reason (the implementation also logs them).
pub trait SourceLookups {
    /// The AUR's version of each of `bases` that it knows (one batched request).
    fn aur_versions(&mut self, bases: &[PkgName]) -> Result<BTreeMap<PkgName, Version>, String>;
    /// What each of `refs` points at now (`git ls-remote`), one answer per ref.
    fn remote_commits(&mut self, refs: &[RemoteRef]) -> BTreeMap<RemoteRef, Result<String, String>>;
    /// The packages of an arch-repo (`any` ones included).
    fn published(&mut self, repo: &RepoName, arch: &Arch) -> Result<Vec<PackageSummary>, String>;
}

/// The change check of `aur` and `git` targets ([`aur_change`], [`git_change`]) over the embedder's
/// [`SourceLookups`]: one AUR lookup for every due `aur` target, one ls-remote per distinct ref, each
/// arch-repo read once. `url` targets get no opinion (they are built).
pub struct SourceCheck<L>(pub L);

/// An arch-repo's packages, as both rules read them.
struct Published {
    all: Vec<PackageSummary>,
    by_base: BTreeMap<PkgName, Vec<PackageSummary>>,
}

impl<L: SourceLookups> ChangeCheck for SourceCheck<L> {
    fn check(&mut self, due: &[DueTarget<'_>]) -> Vec<Option<Change>> {
        let bases: BTreeSet<PkgName> = due.iter().filter_map(|d| aur_base(d.target).cloned()).collect();
        let aur = if bases.is_empty() {
            Ok(BTreeMap::new())
        } else {
            self.0.aur_versions(&bases.into_iter().collect::<Vec<_>>())
        };
        let refs: BTreeSet<RemoteRef> = due.iter().flat_map(|d| git_queries(d.target, d.last)).collect();
        let remote = if refs.is_empty() {
            BTreeMap::new()
        } else {
            self.0.remote_commits(&refs.into_iter().collect::<Vec<_>>())
        };
        let mut repos: BTreeMap<(RepoName, Arch), Result<Published, String>> = BTreeMap::new();
        let lookups = &mut self.0;
        due.iter()
            .map(|d| {
                let published = repos.entry((d.target.repo.clone(), d.arch.clone())).or_insert_with(|| {
                    let all = lookups.published(&d.target.repo, d.arch)?;
                    Ok(Published { by_base: by_base(all.clone()), all })
                });
                match (&d.target.source, &*published, &aur) {
                    (Source::Url { .. }, _, _) => None,
                    (_, Err(e), _) => Some(Change::Changed {
                        reason: format!("reading {}/{} failed: {e}", d.target.repo, d.arch),
                    }),
                    (Source::Aur { .. }, _, Err(e)) => {
                        Some(Change::Changed { reason: format!("the AUR could not be asked: {e}") })
                    }
                    (Source::Aur { name }, Ok(p), Ok(versions)) => {
                        let of_base = p.by_base.get(name).map_or(&[][..], Vec::as_slice);
                        Some(aur_change(name, versions.get(name), of_base))
                    }
                    (Source::Git { url, branch, .. }, Ok(p), _) => {
                        Some(git_change(url.as_str(), branch.as_ref(), d.last, &remote, &p.all))
                    }
                }
            })
            .collect()
    }
}

/// Whether `job` can be the `last` of a [`DueTarget`]: it ended with packages built or found, and
/// recorded its revision.
fn is_last_build(job: &Job) -> bool {
    matches!(job.state(), JobState::Succeeded | JobState::Skipped) && job.revision().is_some()
}

/// A due run to queue, with the check's reason if it gave one.
pub(super) type ToQueue = (TargetId, Arch, Option<String>);

/// An arch-repo's packages grouped by package base (a package without a base is its own), so that
/// [`aur_change`] over many targets reads each target's packages only.
pub fn by_base(published: Vec<PackageSummary>) -> BTreeMap<PkgName, Vec<PackageSummary>> {
    let mut out: BTreeMap<PkgName, Vec<PackageSummary>> = BTreeMap::new();
    for s in published {
        out.entry(s.base.clone().unwrap_or_else(|| s.name.clone())).or_default().push(s);
    }
    out
}

impl<S: BuildStore> BuildService<S> {
    /// Splits due runs into the ones to queue (with the check's reason, if any) and the jobs recorded
    /// `skipped` for the unchanged ones (stored, ended, no agent). A run whose target already has an
    /// active job is not checked: it joins that job as before.
    pub(super) fn check_changes(
        &self,
        targets: &[Target],
        pairs: Vec<(TargetId, Arch)>,
        check: &mut dyn ChangeCheck,
        now: DateTime<Utc>,
    ) -> Result<(Vec<ToQueue>, Vec<Job>), BuildError> {
        let active: std::collections::BTreeSet<(TargetId, Arch)> = self
            .queue()
            .jobs()
            .filter(|j| !j.state().is_final())
            .map(|j| (j.target(), j.arch().clone()))
            .collect();
        let mut checked = Vec::new();
        let mut queue = Vec::new();
        for (id, arch) in pairs {
            match targets.iter().find(|t| t.id == id) {
                Some(target) if !active.contains(&(id, arch.clone())) => checked.push((target, arch)),
                _ => queue.push((id, arch, None)),
            }
        }
        if checked.is_empty() {
            return Ok((queue, Vec::new()));
        }
        // The last build of each due `git` run, newest first; an unchanged run carries its revision
        // forward, so the scan rarely goes further back than the previous run.
        let mut wanted: BTreeSet<(TargetId, Arch)> = checked
            .iter()
            .filter(|(t, _)| matches!(t.source, Source::Git { .. }))
            .map(|(t, a)| (t.id, a.clone()))
            .collect();
        let mut last: BTreeMap<(TargetId, Arch), Job> = BTreeMap::new();
        if !wanted.is_empty() {
            self.store.scan_jobs(&mut |job| {
                let key = (job.target(), job.arch().clone());
                if is_last_build(&job) && wanted.remove(&key) {
                    last.insert(key, job);
                }
                if wanted.is_empty() {
                    std::ops::ControlFlow::Break(())
                } else {
                    std::ops::ControlFlow::Continue(())
                }
            })?;
        }
        let due: Vec<DueTarget<'_>> = checked
            .iter()
            .map(|(target, arch)| DueTarget { target, arch, last: last.get(&(target.id, arch.clone())) })
            .collect();
        let answers = check.check(&due);
        let mut skipped = Vec::new();
        let saved = {
            let mut q = self.queue();
            for (i, (target, arch)) in checked.into_iter().enumerate() {
                match answers.get(i).cloned().flatten() {
                    Some(Change::Unchanged { versions, reason }) => {
                        let id = q.next_job_id();
                        let revision =
                            last.get(&(target.id, arch.clone())).and_then(|j| j.revision().cloned());
                        let mut job =
                            Job::unchanged(id, target.id, arch, Trigger::Schedule, versions, reason, now);
                        job.carry_revision(revision);
                        skipped.push(job);
                    }
                    Some(Change::Changed { reason }) => queue.push((target.id, arch, Some(reason))),
                    None => queue.push((target.id, arch, None)),
                }
            }
            // Handed to the store under the queue's lock, as every change is (records in id order).
            self.save_jobs(&skipped)?
        };
        saved.wait()?;
        Ok((queue, skipped))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::api::PollRequest;
    use crate::builds::{BuildSettings, Credentials, ManualClock, MemoryStore};
    use crate::job::{AgentId, JobId};
    use crate::scheduler::KeyDigest;
    use crate::target::NewTarget;

    fn summary(name: &str, base: Option<&str>, version: &str, arch: &str) -> PackageSummary {
        PackageSummary {
            name: name.parse().unwrap(),
            base: base.map(|b| b.parse().unwrap()),
            version: version.parse().unwrap(),
            arch: arch.parse().unwrap(),
            desc: None,
            filename: format!("{name}-{version}-{arch}.pkg.tar.zst"),
            csize: 1,
            isize: 1,
            sha256: String::new(),
            builddate: None,
            published_at: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
        }
    }

    #[test]
    fn the_aur_rule() {
        let base: PkgName = "foo".parse().unwrap();
        let v = |s: &str| -> Version { s.parse().unwrap() };
        let published = [
            summary("foo", None, "1.0-1", "x86_64"),
            summary("foo-docs", Some("foo"), "1.0-1", "any"),
            summary("other", None, "9-1", "x86_64"),
        ];
        match aur_change(&base, Some(&v("1.0-1")), &published) {
            Change::Unchanged { versions, reason } => {
                let names: Vec<&str> = versions.iter().map(|b| b.name.as_str()).collect();
                assert_eq!(names, ["foo", "foo-docs"]);
                assert_eq!(reason, "unchanged: the AUR's foo 1.0-1 is published");
            }
            other => panic!("{other:?}"),
        }
        // An epoch written as 0: is the same version for pacman.
        assert!(matches!(aur_change(&base, Some(&v("0:1.0-1")), &published), Change::Unchanged { .. }));
        let newer = aur_change(&base, Some(&v("1.1-1")), &published);
        assert_eq!(
            newer,
            Change::Changed { reason: "the AUR has foo 1.1-1, the repository foo 1.0-1".into() }
        );
        // One package of the base behind is enough to build.
        let mixed =
            [summary("foo", None, "1.1-1", "x86_64"), summary("foo-docs", Some("foo"), "1.0-1", "any")];
        assert!(matches!(aur_change(&base, Some(&v("1.1-1")), &mixed), Change::Changed { .. }));
        assert_eq!(
            aur_change(&base, Some(&v("1.0-1")), &published[2..]),
            Change::Changed { reason: "foo 1.0-1 in the AUR is not published yet".into() }
        );
        assert!(matches!(aur_change(&base, None, &published), Change::Changed { .. }));
    }

    /// A check that says "unchanged" for targets named `same-*`, "changed" for `new-*`, nothing else.
    #[derive(Default)]
    struct ByName {
        calls: Vec<usize>,
    }

    impl ChangeCheck for ByName {
        fn check(&mut self, due: &[DueTarget<'_>]) -> Vec<Option<Change>> {
            self.calls.push(due.len());
            due.iter()
                .map(|d| {
                    let name = d.target.source.url_str();
                    if name.starts_with("same-") {
                        Some(Change::Unchanged {
                            versions: vec![BuiltPackage {
                                name: name.parse().unwrap(),
                                version: "1-1".parse().unwrap(),
                                arch: d.arch.clone(),
                            }],
                            reason: format!("unchanged: {name}"),
                        })
                    } else if name.starts_with("new-") {
                        Some(Change::Changed { reason: format!("changed: {name}") })
                    } else {
                        None
                    }
                })
                .collect()
        }
    }

    struct Key;
    impl Credentials for Key {
        fn key(&self) -> &KeyDigest {
            &[1; 32]
        }
        fn accepts(&self, key: &KeyDigest) -> bool {
            *key == [1; 32]
        }
    }

    #[test]
    fn unchanged_scheduled_runs_are_recorded_skipped_and_never_handed_out() {
        let x86: Arch = "x86_64".parse().unwrap();
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).unwrap());
        let settings = BuildSettings::new(x86.clone(), "0 3".parse().unwrap());
        let store = MemoryStore::default();
        let builds = BuildService::open(store.clone(), settings.clone(), clock.clone()).unwrap();
        let add = |name: &str| {
            let new = NewTarget {
                kind: "aur".into(),
                url: name.into(),
                repo: "extra".into(),
                ..Default::default()
            };
            builds.create_target(&new).unwrap()
        };
        let same: Vec<Target> = (0..200).map(|i| add(&format!("same-{i}"))).collect();
        let changed = add("new-pkg");
        let unknown = add("plain");

        let mut check = ByName::default();
        assert!(builds.tick_with(&mut check).unwrap().unchanged.is_empty());
        assert!(check.calls.is_empty(), "nothing due: not called");
        clock.advance(Duration::hours(15));
        let report = builds.tick_with(&mut check).unwrap();
        assert_eq!(check.calls, [202], "one call for every due run");
        assert_eq!(report.unchanged.len(), 200);
        for job in &report.unchanged {
            assert_eq!(
                (job.state(), job.trigger(), job.agent()),
                (JobState::Skipped, Trigger::Schedule, None)
            );
            assert!(job.reason().unwrap().starts_with("unchanged: same-"), "{job:?}");
            assert!(job.finished_at().is_some() && job.started_at().is_none());
            assert_eq!(job.versions().len(), 1);
        }
        let queued: Vec<(TargetId, Option<&str>)> =
            report.queued.iter().map(|j| (j.target(), j.reason())).collect();
        assert_eq!(queued, [(changed.id, Some("changed: new-pkg")), (unknown.id, None)]);
        // Stored: ended jobs in the store, with the reason.
        let stored = builds.job(report.unchanged[0].id()).unwrap();
        assert_eq!(stored, report.unchanged[0]);
        assert_eq!(builds.job(report.queued[0].id()).unwrap().reason(), Some("changed: new-pkg"));
        // An agent gets the two queued jobs and nothing else.
        let poll =
            PollRequest { agent_id: AgentId::new("a").unwrap(), arch: x86.clone(), capacity: 64, wait: None };
        let leased = builds.poll(&poll, &Key).unwrap();
        let mut got: Vec<TargetId> = leased.iter().map(|l| l.job.target()).collect();
        got.sort();
        assert_eq!(got, [changed.id, unknown.id]);
        // Ids stay unique after a restart.
        drop(builds);
        let reopened = BuildService::open(store, settings, clock.clone()).unwrap();
        let new =
            NewTarget { kind: "aur".into(), url: "after".into(), repo: "extra".into(), ..Default::default() };
        let after = reopened.create_target(&new).unwrap();
        let jobs = reopened
            .queue_build(&crate::api::QueueRequest { target: after.id, arch: None, force: false })
            .unwrap();
        assert!(jobs[0].id() > report.unchanged.iter().map(Job::id).max().unwrap());
        let _ = same;
    }

    #[test]
    fn a_run_with_an_active_job_is_not_checked() {
        let x86: Arch = "x86_64".parse().unwrap();
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).unwrap());
        let builds = BuildService::open(
            MemoryStore::default(),
            BuildSettings::new(x86, "0 3".parse().unwrap()),
            clock.clone(),
        )
        .unwrap();
        let new = NewTarget {
            kind: "aur".into(),
            url: "same-x".into(),
            repo: "extra".into(),
            ..Default::default()
        };
        let t = builds.create_target(&new).unwrap();
        let manual =
            builds.queue_build(&crate::api::QueueRequest { target: t.id, arch: None, force: false }).unwrap();
        clock.advance(Duration::hours(15));
        let mut check = ByName::default();
        let report = builds.tick_with(&mut check).unwrap();
        assert!(check.calls.is_empty(), "the queued manual job covers the run");
        assert!(report.unchanged.is_empty() && report.queued.is_empty());
        assert_eq!(builds.job(manual[0].id()).unwrap().state(), JobState::Queued);
    }

    const C1: &str = "1111111111111111111111111111111111111111";
    const C2: &str = "2222222222222222222222222222222222222222";
    const V1: &str = "3333333333333333333333333333333333333333";

    /// Lookups from values, counting calls.
    #[derive(Default)]
    struct Values {
        aur: BTreeMap<PkgName, Version>,
        remote: BTreeMap<RemoteRef, Result<String, String>>,
        published: Vec<PackageSummary>,
        asked: Vec<Vec<RemoteRef>>,
        aur_calls: usize,
        repo_reads: usize,
    }

    impl SourceLookups for &mut Values {
        fn aur_versions(&mut self, bases: &[PkgName]) -> Result<BTreeMap<PkgName, Version>, String> {
            self.aur_calls += 1;
            Ok(bases.iter().filter_map(|b| Some((b.clone(), self.aur.get(b)?.clone()))).collect())
        }
        fn remote_commits(&mut self, refs: &[RemoteRef]) -> BTreeMap<RemoteRef, Result<String, String>> {
            self.asked.push(refs.to_vec());
            refs.iter().filter_map(|r| Some((r.clone(), self.remote.get(r)?.clone()))).collect()
        }
        fn published(&mut self, _: &RepoName, _: &Arch) -> Result<Vec<PackageSummary>, String> {
            self.repo_reads += 1;
            Ok(self.published.clone())
        }
    }

    fn built(job: Job, name: &str, revision: Option<crate::vcs::Revision>) -> Job {
        let mut job = job;
        let agent = AgentId::new("a").unwrap();
        let t0 = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        job.lease(&agent, t0, Duration::minutes(5)).unwrap();
        let versions = vec![BuiltPackage {
            name: name.parse().unwrap(),
            version: "1.0-1".parse().unwrap(),
            arch: "x86_64".parse().unwrap(),
        }];
        job.finish(&agent, crate::job::Outcome::Succeeded { versions, revision }, t0).unwrap();
        job
    }

    #[test]
    fn the_git_rule() {
        use crate::vcs::{PinnedSource, Revision};
        let url = "https://h/pkg.git";
        let branch: GitRef = "main".parse().unwrap();
        let head = RemoteRef::branch(url, Some("main"));
        let lib = "lib::git+https://h/lib.git#branch=dev";
        let lib_ref = RemoteRef { url: "https://h/lib.git".into(), refname: "refs/heads/dev".into() };
        let revision = Revision {
            commit: Some(C1.into()),
            sources: vec![
                PinnedSource { source: lib.into(), commit: Some(V1.into()) },
                PinnedSource { source: "git+https://h/pinned#commit=abc".into(), commit: None },
            ],
        };
        let t0 = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let fresh = || Job::new(JobId(7), TargetId(1), "x86_64".parse().unwrap(), false, Trigger::Manual, t0);
        let last = built(fresh(), "pkg", Some(revision.clone()));
        let published = [summary("pkg", None, "1.0-1", "x86_64")];
        let mut remote =
            BTreeMap::from([(head.clone(), Ok(C1.to_owned())), (lib_ref.clone(), Ok(V1.to_owned()))]);
        let change = git_change(url, Some(&branch), Some(&last), &remote, &published);
        let Change::Unchanged { versions, reason } = change else { panic!("{change:?}") };
        assert_eq!(versions, last.versions());
        assert_eq!(
            reason,
            "unchanged: https://h/pkg.git refs/heads/main and its 2 VCS sources still at the commit of job 7"
        );

        let reason = |c: Change| match c {
            Change::Changed { reason } => reason,
            other => panic!("{other:?}"),
        };
        // The branch moved.
        remote.insert(head.clone(), Ok(C2.to_owned()));
        assert_eq!(
            reason(git_change(url, Some(&branch), Some(&last), &remote, &published)),
            "https://h/pkg.git refs/heads/main moved: 111111111111 → 222222222222"
        );
        remote.insert(head.clone(), Ok(C1.to_owned()));
        // The VCS source moved, failed, or was not listed.
        remote.insert(lib_ref.clone(), Ok(C2.to_owned()));
        assert!(reason(git_change(url, Some(&branch), Some(&last), &remote, &published))
            .starts_with("VCS source lib::git+https://h/lib.git#branch=dev moved: 333333333333 → "));
        remote.insert(lib_ref.clone(), Err("no answer in 20 s".into()));
        assert_eq!(
            reason(git_change(url, Some(&branch), Some(&last), &remote, &published)),
            "git ls-remote https://h/lib.git refs/heads/dev failed: no answer in 20 s"
        );
        remote.remove(&lib_ref);
        assert!(
            reason(git_change(url, Some(&branch), Some(&last), &remote, &published)).contains("not listed")
        );
        remote.insert(lib_ref.clone(), Ok(V1.to_owned()));
        // The package was deleted, or never recorded; an hg source; no commit; no build.
        assert_eq!(
            reason(git_change(url, Some(&branch), Some(&last), &remote, &[])),
            "pkg 1.0-1 is no longer published"
        );
        let hg = Revision {
            commit: Some(C1.into()),
            sources: vec![PinnedSource { source: "hg+https://h/r".into(), commit: None }],
        };
        let with_hg = built(fresh(), "pkg", Some(hg));
        assert_eq!(
            reason(git_change(url, Some(&branch), Some(&with_hg), &remote, &published)),
            "hg+https://h/r: Hg sources are not checked without building"
        );
        let no_commit = built(fresh(), "pkg", Some(Revision::default()));
        assert_eq!(
            reason(git_change(url, Some(&branch), Some(&no_commit), &remote, &published)),
            "job 7 did not record the commit it built"
        );
        assert_eq!(
            reason(git_change(url, None, None, &remote, &published)),
            "no earlier build to compare with"
        );

        // Too many VCS sources: built, and none is asked about.
        let many = Revision {
            commit: Some(C1.into()),
            sources: (0..=MAX_CHECKED_VCS_SOURCES)
                .map(|i| PinnedSource { source: format!("git+https://h/s{i}"), commit: Some(V1.into()) })
                .collect(),
        };
        let crowded = built(fresh(), "pkg", Some(many));
        assert_eq!(
            reason(git_change(url, Some(&branch), Some(&crowded), &remote, &published)),
            "17 VCS sources: more than 16 are not checked without building"
        );
        // What ls-remote is asked: the branch and the moving VCS source, not the fixed one.
        let new = NewTarget {
            kind: "git".into(),
            url: url.into(),
            branch: Some("main".into()),
            repo: "r".into(),
            ..Default::default()
        };
        let target = new.validate(TargetId(1), &"x86_64".parse().unwrap()).unwrap();
        assert_eq!(git_queries(&target, Some(&last)), [head, lib_ref]);
        assert!(git_queries(&target, None).is_empty());
        assert_eq!(git_queries(&target, Some(&crowded)), [RemoteRef::branch(url, Some("main"))]);
    }

    #[test]
    fn the_source_check_batches_its_lookups_and_carries_the_revision_forward() {
        use crate::vcs::Revision;
        let x86: Arch = "x86_64".parse().unwrap();
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).unwrap());
        let builds = BuildService::open(
            MemoryStore::default(),
            BuildSettings::new(x86.clone(), "0 3".parse().unwrap()),
            clock.clone(),
        )
        .unwrap();
        let mut values = Values::default();
        let mut gits = Vec::new();
        for i in 0..3 {
            let url = format!("https://h/g{i}.git");
            let new =
                NewTarget { kind: "git".into(), url: url.clone(), repo: "r".into(), ..Default::default() };
            let t = builds.create_target(&new).unwrap();
            let job = builds
                .queue_build(&crate::api::QueueRequest { target: t.id, arch: None, force: false })
                .unwrap();
            let poll = PollRequest {
                agent_id: AgentId::new("a").unwrap(),
                arch: x86.clone(),
                capacity: 1,
                wait: None,
            };
            assert_eq!(builds.poll(&poll, &Key).unwrap().len(), 1);
            let versions = vec![BuiltPackage {
                name: format!("g{i}").parse().unwrap(),
                version: "1-1".parse().unwrap(),
                arch: x86.clone(),
            }];
            let revision = Some(Revision { commit: Some(C1.into()), sources: vec![] });
            let outcome = crate::job::Outcome::Succeeded { versions, revision };
            builds.finish(job[0].id(), &AgentId::new("a").unwrap(), outcome, &Key).unwrap();
            values.published.push(summary(&format!("g{i}"), None, "1-1", "x86_64"));
            values.remote.insert(RemoteRef::branch(&url, None), Ok(if i == 2 { C2 } else { C1 }.to_owned()));
            gits.push(t);
        }
        let aur = NewTarget { kind: "aur".into(), url: "foo".into(), repo: "r".into(), ..Default::default() };
        builds.create_target(&aur).unwrap();
        values.aur.insert("foo".parse().unwrap(), "1.0-1".parse().unwrap());
        values.published.push(summary("foo", None, "1.0-1", "x86_64"));
        let url = NewTarget {
            kind: "url".into(),
            url: "https://h/PKGBUILD".into(),
            repo: "r".into(),
            ..Default::default()
        };
        builds.create_target(&url).unwrap();

        clock.advance(Duration::hours(15));
        let report = builds.tick_with(&mut SourceCheck(&mut values)).unwrap();
        assert_eq!((values.aur_calls, values.asked.len(), values.repo_reads), (1, 1, 1), "one of each");
        assert_eq!(values.asked[0].len(), 3);
        assert_eq!(report.unchanged.len(), 3, "{:?}", report.unchanged);
        let queued: Vec<(TargetId, Option<&str>)> =
            report.queued.iter().map(|j| (j.target(), j.reason())).collect();
        assert_eq!(queued.len(), 2, "g2 moved, the url target has no check: {queued:?}");
        assert!(
            queued.contains(&(gits[2].id, Some("https://h/g2.git HEAD moved: 111111111111 → 222222222222")))
        );
        let skipped_git = report.unchanged.iter().find(|j| j.target() == gits[0].id).unwrap();
        assert_eq!(skipped_git.revision().and_then(|r| r.commit.as_deref()), Some(C1), "carried forward");
        assert_eq!(skipped_git.versions()[0].name.as_str(), "g0");

        // The next day: the unchanged job is the last build, found without going further back.
        clock.advance(Duration::days(1));
        let report = builds.tick_with(&mut SourceCheck(&mut values)).unwrap();
        assert!(report.unchanged.iter().any(|j| j.target() == gits[0].id && j.revision().is_some()));
    }
}
