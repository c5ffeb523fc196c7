//! Change detection without a container: before a scheduled run is queued, the server may find its
//! target unchanged since its packages were published, and the run is then recorded as a `skipped` job
//! that no agent ever sees.
//!
//! The rule for `aur` targets is [`aur_change`]: the AUR's version of the package base equals the
//! version of every package of that base published in the target's repository for that architecture.
//! The lookups are the embedder's, through [`ChangeCheck`] (the server asks the AUR with one batched
//! `info` for all due targets). Manual builds, forced builds and retries never go through it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::api::PackageSummary;
use crate::job::{BuiltPackage, Job, Trigger};
use crate::name::{Arch, PkgName};
use crate::target::{Source, Target, TargetId};
use crate::version::Version;

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
        let due: Vec<DueTarget<'_>> =
            checked.iter().map(|(target, arch)| DueTarget { target, arch }).collect();
        let answers = check.check(&due);
        let mut skipped = Vec::new();
        let saved = {
            let mut q = self.queue();
            for (i, (target, arch)) in checked.into_iter().enumerate() {
                match answers.get(i).cloned().flatten() {
                    Some(Change::Unchanged { versions, reason }) => {
                        let id = q.next_job_id();
                        skipped.push(Job::unchanged(
                            id,
                            target.id,
                            arch,
                            Trigger::Schedule,
                            versions,
                            reason,
                            now,
                        ));
                    }
                    Some(Change::Changed { reason }) => queue.push((target.id, arch, Some(reason))),
                    None => queue.push((target.id, arch, None)),
                }
            }
            // Handed to the store under the queue's lock, as every change is (records in id order).
            self.store.save_jobs(&skipped)?
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
    use crate::job::{AgentId, JobState};
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
}
