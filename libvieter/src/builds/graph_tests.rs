//! The job graph on a [`MemoryStore`] and a [`ManualClock`]: targets that need targets (checked,
//! removed with their automatic targets), the targets of an AUR closure, jobs that wait and what the
//! ends of their dependencies do to them, across a restart.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;
use crate::aur::AurPackage;
use crate::depend::Dependency;
use crate::job::{FailureCause, FailureStep};
use crate::name::PkgName;
use crate::resolve::{resolve, AurLookup, Available};
use crate::target::Source;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).unwrap()
}

fn arch(a: &str) -> Arch {
    Arch::new(a).unwrap()
}

fn agent(a: &str) -> AgentId {
    AgentId::new(a).unwrap()
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

fn settings() -> BuildSettings {
    BuildSettings {
        retry: RetryPolicy {
            max_attempts: 2,
            backoff_base_secs: 10,
            backoff_factor: 2,
            backoff_max_secs: 100,
        },
        ..BuildSettings::new(arch("x86_64"), "0 3".parse().unwrap())
    }
}

struct World {
    clock: ManualClock,
    store: MemoryStore,
    builds: BuildService<MemoryStore>,
}

impl World {
    fn new() -> World {
        World::on(MemoryStore::default(), ManualClock::new(t0()))
    }

    fn on(store: MemoryStore, clock: ManualClock) -> World {
        let builds = BuildService::open(store.clone(), settings(), clock.clone()).unwrap();
        World { clock, store, builds }
    }

    /// The service reopened on the same store (a restart).
    fn restart(self) -> World {
        World::on(self.store, self.clock)
    }

    fn target_on(&self, url: &str, arches: &[&str], needs: &[TargetId]) -> Result<Target, BuildError> {
        let new = NewTarget {
            kind: "git".into(),
            url: format!("https://example.org/{url}.git"),
            repo: "extra".into(),
            arch: Some(arches.iter().map(|a| a.to_string()).collect()),
            needs: needs.to_vec(),
            ..Default::default()
        };
        self.builds.create_target(&new)
    }

    fn target(&self, url: &str, needs: &[TargetId]) -> TargetId {
        self.target_on(url, &["x86_64"], needs).unwrap().id
    }

    fn queue(&self, target: TargetId) -> Job {
        let req = QueueRequest { target, arch: None, force: false };
        let mut jobs = self.builds.queue_build(&req).unwrap();
        assert_eq!(jobs.len(), 1);
        jobs.remove(0)
    }

    /// The active job of a target (there is one).
    fn job_of(&self, target: TargetId) -> Job {
        let jobs = self.jobs_of(target);
        assert_eq!(jobs.len(), 1, "jobs of target {target}: {jobs:?}");
        jobs[0].clone()
    }

    fn jobs_of(&self, target: TargetId) -> Vec<Job> {
        let f = JobFilter { target: Some(target), ..JobFilter::default() };
        self.builds.list_jobs(&f).unwrap()
    }

    fn state(&self, id: JobId) -> JobState {
        self.builds.job(id).unwrap().state()
    }

    fn poll(&self, who: &str, capacity: u32) -> Vec<Job> {
        let req = PollRequest { agent_id: agent(who), arch: arch("x86_64"), capacity, wait: None };
        self.builds.poll(&req, &Key).unwrap().into_iter().map(|l| l.job).collect()
    }

    fn finish(&self, id: JobId, who: &str, outcome: Outcome) -> Job {
        self.builds.finish(id, &agent(who), outcome, &Key).unwrap()
    }

    fn succeed(&self, id: JobId, who: &str) -> Job {
        self.finish(id, who, Outcome::Succeeded { versions: vec![], revision: None })
    }
}

fn ids(jobs: &[Job]) -> Vec<JobId> {
    let mut ids: Vec<JobId> = jobs.iter().map(Job::id).collect();
    ids.sort_unstable();
    ids
}

/// A (bottom) ← b, c ← d (top): d needs b and c, which both need a.
fn diamond(w: &World) -> [TargetId; 4] {
    let a = w.target("a", &[]);
    let b = w.target("b", &[a]);
    let c = w.target("c", &[a]);
    let d = w.target("d", &[b, c]);
    [a, b, c, d]
}

#[test]
fn a_diamond_builds_bottom_up() {
    let w = World::new();
    let [a, b, c, d] = diamond(&w);
    let top = w.queue(d);
    assert_eq!((top.target(), top.state(), top.trigger()), (d, JobState::Waiting, Trigger::Manual));
    let (ja, jb, jc) = (w.job_of(a), w.job_of(b), w.job_of(c));
    assert_eq!(ja.state(), JobState::Queued);
    assert_eq!((jb.state(), jb.waits_on()), (JobState::Waiting, &[ja.id()][..]));
    assert_eq!((jc.state(), jc.waits_on()), (JobState::Waiting, &[ja.id()][..]));
    assert_eq!(top.waits_on(), ids(&[jb.clone(), jc.clone()]));
    // Queued again (not forced): the same jobs, nothing new.
    assert_eq!(w.queue(d).id(), top.id());
    assert_eq!(w.builds.active_jobs(), 4);
    // Only the bottom is handed out.
    let got = w.poll("a1", 4);
    assert_eq!(ids(&got), [ja.id()]);
    assert!(w.poll("a2", 4).is_empty(), "the rest waits");
    w.succeed(ja.id(), "a1");
    assert_eq!((w.state(jb.id()), w.state(jc.id())), (JobState::Queued, JobState::Queued));
    assert_eq!(w.state(top.id()), JobState::Waiting);
    let got = w.poll("a1", 4);
    assert_eq!(ids(&got), ids(&[jb.clone(), jc.clone()]));
    w.succeed(jb.id(), "a1");
    assert_eq!(w.state(top.id()), JobState::Waiting, "c has not ended");
    // An unchanged dependency ends skipped: that releases too.
    w.finish(jc.id(), "a1", Outcome::Skipped { versions: vec![], revision: None });
    let released = w.builds.job(top.id()).unwrap();
    assert_eq!((released.state(), released.not_before()), (JobState::Queued, t0()));
    assert_eq!(ids(&w.poll("a1", 4)), [top.id()]);
}

#[test]
fn two_agents_get_the_independent_branches_at_once() {
    let w = World::new();
    let [a, b, c, d] = diamond(&w);
    let top = w.queue(d);
    let ja = w.poll("one", 1).remove(0);
    assert_eq!(ja.target(), a);
    w.succeed(ja.id(), "one");
    let first = w.poll("one", 1);
    let second = w.poll("two", 1);
    assert_eq!((first.len(), second.len()), (1, 1));
    let mut targets = vec![first[0].target(), second[0].target()];
    targets.sort_unstable();
    assert_eq!(targets, [b, c], "b and c build at the same time");
    assert_eq!((first[0].agent(), second[0].agent()), (Some(&agent("one")), Some(&agent("two"))));
    assert_eq!((w.state(first[0].id()), w.state(second[0].id())), (JobState::Running, JobState::Running));
    assert_eq!(w.state(top.id()), JobState::Waiting);
    assert!(w.poll("three", 4).is_empty(), "the top waits for both");
}

#[test]
fn a_failure_fails_every_waiting_dependent_naming_the_cause() {
    let w = World::new();
    let a = w.target("a", &[]);
    let b = w.target("b", &[a]);
    let c = w.target("c", &[b]);
    let top = w.queue(c);
    let (ja, jb) = (w.job_of(a), w.job_of(b));
    w.poll("a1", 1);
    let cause = FailureCause { exit_code: Some(4), ..FailureCause::new(FailureStep::Makepkg, "") };
    w.finish(ja.id(), "a1", Outcome::Failed { cause });
    let fb = w.builds.job(jb.id()).unwrap();
    let fc = w.builds.job(top.id()).unwrap();
    assert_eq!((fb.state(), fc.state()), (JobState::Failed, JobState::Failed));
    let (cb, cc) = (fb.cause().unwrap(), fc.cause().unwrap());
    assert_eq!((cb.step, cc.step), (FailureStep::Dependency, FailureStep::Dependency));
    assert_eq!(cb.message, format!("job {} (target {a}) failed: makepkg failed (exit code 4)", ja.id()));
    assert_eq!(
        cc.message,
        format!(
            "job {} (target {b}) failed: dependency failed: job {} (target {a}) failed: makepkg failed (exit code 4)",
            jb.id(),
            ja.id()
        )
    );
    assert_eq!(w.builds.active_jobs(), 0, "nothing retried, nothing left");
    // A timeout fails its dependents too.
    let top = w.queue(b);
    let ja = w.poll("a1", 1).remove(0);
    w.finish(ja.id(), "a1", Outcome::TimedOut);
    let failed = w.builds.job(top.id()).unwrap();
    assert_eq!(
        failed.cause().map(|c| c.message.clone()),
        Some(format!("job {} (target {a}) timed out", ja.id()))
    );
}

#[test]
fn cancelling_a_job_cancels_what_waits_for_it() {
    let w = World::new();
    let [a, b, c, d] = diamond(&w);
    let top = w.queue(d);
    // Cancelling the top alone leaves its dependencies.
    w.builds.cancel(top.id()).unwrap();
    assert_eq!(w.state(top.id()), JobState::Cancelled);
    assert_eq!(w.state(w.job_of(b).id()), JobState::Waiting);
    let top = w.queue(d);
    let ja = w.jobs_of(a)[0].clone();
    assert_eq!(ja.state(), JobState::Queued, "the waiting jobs of b and c were reused");
    assert_eq!(w.jobs_of(b).len(), 1);
    let cancelled = w.builds.cancel(ja.id()).unwrap();
    assert_eq!(cancelled.state(), JobState::Cancelled);
    for job in [w.jobs_of(b)[0].clone(), w.jobs_of(c)[0].clone(), w.builds.job(top.id()).unwrap()] {
        assert_eq!(job.state(), JobState::Cancelled, "job {} of target {}", job.id(), job.target());
    }
    assert_eq!(w.builds.active_jobs(), 0);
}

#[test]
fn a_lost_dependency_is_retried_and_its_dependents_wait_for_the_retry() {
    let w = World::new();
    let a = w.target("a", &[]);
    let b = w.target("b", &[a]);
    let top = w.queue(b);
    let ja = w.poll("a1", 1).remove(0);
    w.clock.advance(Duration::seconds(60));
    let lost = w.builds.tick().unwrap().lost;
    assert_eq!(lost.len(), 1);
    let retry = lost[0].retry.clone().unwrap();
    assert_eq!(lost[0].dependents.len(), 1);
    let waiting = w.builds.job(top.id()).unwrap();
    assert_eq!((waiting.state(), waiting.waits_on()), (JobState::Waiting, &[retry.id()][..]));
    assert_ne!(retry.id(), ja.id());
    // The retry (after its back-off) is lost too, and attempts are used up: the dependent fails.
    w.clock.advance(Duration::seconds(10));
    assert_eq!(ids(&w.poll("a2", 1)), [retry.id()]);
    w.clock.advance(Duration::seconds(60));
    let lost = w.builds.tick().unwrap().lost;
    assert_eq!(lost[0].retry, None);
    let failed = w.builds.job(top.id()).unwrap();
    assert_eq!(failed.state(), JobState::Failed);
    let message = failed.cause().map(|c| c.message.clone()).unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            "job {} (target {a}) was lost: agent failed: agent a2 stopped",
            retry.id()
        )),
        "{message}"
    );
    // An infrastructure failure that is retried re-points as well; its retry succeeding releases.
    let top = w.queue(b);
    let ja = w.poll("a1", 1).remove(0);
    let cause = FailureCause::new(FailureStep::Upload, "502");
    w.finish(ja.id(), "a1", Outcome::Failed { cause });
    let retry = w.builds.job(top.id()).unwrap().waits_on()[0];
    assert_ne!(retry, ja.id());
    w.clock.advance(Duration::seconds(10));
    w.succeed(w.poll("a1", 1).remove(0).id(), "a1");
    assert_eq!(w.state(top.id()), JobState::Queued);
}

#[test]
fn waiting_jobs_survive_a_restart() {
    let w = World::new();
    let [a, b, c, d] = diamond(&w);
    let top = w.queue(d);
    let w = w.restart();
    assert_eq!(w.builds.active_jobs(), 4);
    for t in [b, c, d] {
        assert_eq!(w.job_of(t).state(), JobState::Waiting);
    }
    assert_eq!(w.job_of(a).state(), JobState::Queued);
    let ja = w.poll("a1", 4).remove(0);
    assert_eq!(ja.target(), a);
    let w = w.restart();
    w.succeed(ja.id(), "a1");
    let w = w.restart();
    assert_eq!(ids(&w.poll("a1", 4)), ids(&[w.job_of(b), w.job_of(c)]));
    assert_eq!(w.state(top.id()), JobState::Waiting);
    // A record of a dependency's end that its dependents never saw (written by hand here) is applied at
    // the next start.
    let (jb, jc) = (w.job_of(b), w.job_of(c));
    w.succeed(jb.id(), "a1");
    let mut done = jc.clone();
    done.finish(&agent("a1"), Outcome::Succeeded { versions: vec![], revision: None }, t0()).unwrap();
    w.store.save_jobs(&[done]).unwrap().wait().unwrap();
    assert_eq!(w.store.job(top.id()).unwrap().map(|j| j.state()), Some(JobState::Waiting));
    let w = w.restart();
    assert_eq!(w.store.job(top.id()).unwrap().map(|j| j.state()), Some(JobState::Queued));
    assert_eq!(ids(&w.poll("a1", 4)), [top.id()]);
}

#[test]
fn needs_are_checked_cycles_refused_with_their_path() {
    let w = World::new();
    let one = w.target("one", &[]);
    let unknown = w.target_on("x", &["x86_64"], &[TargetId(99)]).unwrap_err();
    assert_eq!(unknown.to_string(), "needs: target 99 does not exist");
    assert!(matches!(unknown, BuildError::Invalid(Invalid::UnknownNeed { needed: TargetId(99) })));
    let two = w.target("two", &[one]);
    let three = w.target("three", &[two]);
    let patch = |id: TargetId, needs: &[TargetId]| {
        w.builds.patch_target(id, &TargetPatch { needs: Some(needs.to_vec()), ..Default::default() })
    };
    let e = patch(one, &[three]).unwrap_err();
    assert!(matches!(e, BuildError::Invalid(Invalid::Cycle { .. })), "{e}");
    assert_eq!(e.to_string(), format!("needs: this would make a cycle: {one} → {three} → {two} → {one}"));
    assert_eq!(
        patch(one, &[one]).unwrap_err().to_string(),
        format!("needs: target {one} cannot need itself")
    );
    assert!(w.builds.target(one).unwrap().needs.is_empty(), "a refused edit changes nothing");
    assert_eq!(patch(three, &[one, two]).unwrap().needs, [one, two]);
    // An edit that keeps the needs is not checked again; other fields still change.
    let renamed = TargetPatch { url: Some("https://example.org/t.git".into()), ..Default::default() };
    assert_eq!(w.builds.patch_target(three, &renamed).unwrap().needs, [one, two]);
}

#[test]
fn a_needed_target_not_built_for_the_arch_is_refused() {
    let w = World::new();
    let arm = w.target_on("arm", &["aarch64"], &[]).unwrap().id;
    let top = w.target_on("top", &["x86_64", "aarch64"], &[arm]).unwrap().id;
    let req = QueueRequest { target: top, arch: None, force: false };
    let e = w.builds.queue_build(&req).unwrap_err();
    assert_eq!(e.to_string(), format!("target {top} needs target {arm}, which is not built for x86_64"));
    assert_eq!(w.builds.active_jobs(), 0, "nothing queued");
    let req = QueueRequest { arch: Some(arch("aarch64")), ..req };
    assert_eq!(w.builds.queue_build(&req).unwrap()[0].state(), JobState::Waiting);
}

#[test]
fn the_schedule_queues_the_graph_too() {
    let w = World::new();
    let a = w.target("a", &[]);
    let b = w.target("b", &[a]);
    // Both are due: a's own run and b's need share one job of a.
    w.clock.set(Utc.with_ymd_and_hms(2025, 1, 2, 3, 0, 0).unwrap());
    let queued = w.builds.tick().unwrap().queued;
    let mut got: Vec<(TargetId, JobState)> = queued.iter().map(|j| (j.target(), j.state())).collect();
    got.sort_unstable_by_key(|(t, _)| *t);
    assert_eq!(got, [(a, JobState::Queued), (b, JobState::Waiting)], "one job of a, reused by b");
    assert!(queued.iter().all(|j| j.trigger() == Trigger::Schedule));
}

#[test]
fn a_needed_target_is_kept_automatic_ones_go_when_unneeded() {
    let w = World::new();
    let auto = |id: TargetId| {
        let mut t = w.builds.target(id).unwrap();
        t.automatic = true;
        w.store.put_target(&t).unwrap();
    };
    let lib = w.target("lib", &[]);
    auto(lib);
    let mid = w.target("mid", &[lib]);
    auto(mid);
    let app = w.target("app", &[mid]);
    let user = w.target("user", &[lib]);
    let e = w.builds.delete_target(lib).unwrap_err();
    assert!(matches!(&e, BuildError::Needed { target, by } if *target == lib && by == &[user]), "{e}");
    assert_eq!(
        e.to_string(),
        format!("target {lib} is needed by target {user}: remove it from their needs first")
    );
    let app_job = w.queue(app);
    let removal = w.builds.delete_target(app).unwrap();
    assert_eq!((removal.removed, removal.automatic.as_slice()), (app, &[mid][..]), "lib is still needed");
    let mut cancelled = ids(&removal.cancelled);
    cancelled.retain(|id| *id != app_job.id());
    assert_eq!(cancelled.len(), 1, "mid's job: {:?}", removal.cancelled);
    assert!(removal.cancelled.iter().all(|j| j.state() == JobState::Cancelled));
    assert_eq!(w.job_of(lib).state(), JobState::Queued, "lib's job stays");
    assert!(matches!(w.builds.target(mid), Err(BuildError::NotFound(_))));
    let removal = w.builds.delete_target(user).unwrap();
    assert_eq!(removal.automatic, [lib]);
    assert!(w.builds.list_targets(&TargetFilter::default()).unwrap().is_empty());
}

/// An AUR where each package is its own base.
struct FakeAur(Vec<AurPackage>);

impl AurLookup for FakeAur {
    type Error = std::convert::Infallible;
    fn info(&mut self, names: &[PkgName]) -> Result<Vec<AurPackage>, Self::Error> {
        Ok(self.0.iter().filter(|p| names.contains(&p.name)).cloned().collect())
    }
    fn search_provides(&mut self, _: &str) -> Result<Vec<AurPackage>, Self::Error> {
        Ok(Vec::new())
    }
}

fn aur(name: &str, depends: &[&str]) -> AurPackage {
    AurPackage {
        name: PkgName::new(name).unwrap(),
        package_base: PkgName::new(name).unwrap(),
        version: "1.0-1".parse().unwrap(),
        description: None,
        url: None,
        maintainer: None,
        num_votes: 0,
        popularity: 0.0,
        out_of_date: None,
        first_submitted: None,
        last_modified: None,
        depends: depends.iter().map(|d| Dependency::parse(d).unwrap()).collect(),
        make_depends: Vec::new(),
        check_depends: Vec::new(),
        opt_depends: Vec::new(),
        provides: Vec::new(),
        conflicts: Vec::new(),
        replaces: Vec::new(),
        license: Vec::new(),
        keywords: Vec::new(),
    }
}

fn aur_target(name: &str, repo: &str) -> NewTarget {
    NewTarget {
        kind: "aur".into(),
        url: name.into(),
        repo: repo.into(),
        arch: Some(vec!["x86_64".into(), "aarch64".into()]),
        ..Default::default()
    }
}

#[test]
fn a_closure_reuses_targets_of_its_repo_and_creates_the_rest() {
    let w = World::new();
    let mut fake = FakeAur(vec![
        aur("app", &["liba", "libb"]),
        aur("libb", &["liba"]),
        aur("liba", &[]),
        aur("app2", &["libb"]),
    ]);
    let closure = |root: &str, fake: &mut FakeAur| {
        resolve(&[PkgName::new(root).unwrap()], &Available::new(), fake).unwrap()
    };
    let liba = w.builds.create_target(&aur_target("liba", "extra")).unwrap();
    // An aur target of libb in another repository is not reused.
    let elsewhere = w.builds.create_target(&aur_target("libb", "other")).unwrap();
    let made = w.builds.create_with_closure(&aur_target("app", "extra"), &closure("app", &mut fake)).unwrap();
    assert_eq!(made.reused, std::slice::from_ref(&liba), "liba needs nothing new");
    assert_eq!(made.created.len(), 1);
    let libb = &made.created[0];
    assert_eq!(libb.source, Source::Aur { name: PkgName::new("libb").unwrap() });
    assert!(libb.id != elsewhere.id && libb.automatic && libb.enabled && libb.schedule.is_none());
    assert_eq!((libb.repo.as_str(), libb.arch.len(), libb.needs.as_slice()), ("extra", 2, &[liba.id][..]));
    assert_eq!(made.root.needs, [liba.id, libb.id]);
    assert!(!made.root.automatic);
    assert_eq!(w.builds.target(made.root.id).unwrap(), made.root, "stored");
    // Another root needing libb reuses the automatic target.
    let mut fake2 = FakeAur(fake.0.clone());
    let made2 =
        w.builds.create_with_closure(&aur_target("app2", "extra"), &closure("app2", &mut fake2)).unwrap();
    assert!(made2.created.is_empty());
    let mut reused: Vec<TargetId> = made2.reused.iter().map(|t| t.id).collect();
    reused.sort_unstable();
    assert_eq!(reused, [liba.id, libb.id]);
    assert_eq!(made2.root.needs, [libb.id], "only what app2 needs directly");
    // The tree of app.
    let tree = w.builds.dependency_tree(made.root.id).unwrap();
    let names: Vec<TargetId> = tree.needs.iter().map(|n| n.target.id).collect();
    assert_eq!(names, [liba.id, libb.id]);
    assert_eq!(tree.needs[1].needs[0].target.id, liba.id);
    // Removing app keeps libb (app2 needs it); removing app2 then removes it.
    assert!(w.builds.delete_target(made.root.id).unwrap().automatic.is_empty());
    assert_eq!(w.builds.delete_target(made2.root.id).unwrap().automatic, [libb.id]);
    // Not an aur target, or not the closure's root: refused.
    let git = NewTarget {
        kind: "git".into(),
        url: "https://h/x".into(),
        repo: "extra".into(),
        ..Default::default()
    };
    let e = w.builds.create_with_closure(&git, &closure("app", &mut FakeAur(fake.0.clone()))).unwrap_err();
    assert!(matches!(e, BuildError::Invalid(Invalid::Closure(_))), "{e}");
    let e = w
        .builds
        .create_with_closure(&aur_target("other", "extra"), &closure("app", &mut FakeAur(fake.0.clone())))
        .unwrap_err();
    assert_eq!(e.to_string(), "other is not a package base of the dependency closure");
}

#[test]
fn a_running_dependency_job_is_waited_for_not_queued_again() {
    let w = World::new();
    let a = w.target("a", &[]);
    let b = w.target("b", &[a]);
    let ja = w.queue(a);
    assert_eq!(ids(&w.poll("a1", 1)), [ja.id()]);
    let jb = w.queue(b);
    assert_eq!(jb.waits_on(), [ja.id()], "the running job of a is used");
    assert_eq!(w.jobs_of(a).len(), 1);
    w.succeed(ja.id(), "a1");
    assert_eq!(w.state(jb.id()), JobState::Queued);
}

#[test]
fn a_closure_that_would_close_a_cycle_through_reused_targets_writes_nothing() {
    let w = World::new();
    let liba = w.builds.create_target(&aur_target("liba", "extra")).unwrap();
    let libb = w.builds.create_target(&aur_target("libb", "extra")).unwrap();
    // The user says liba needs libb; the AUR says libb needs liba.
    let patch = TargetPatch { needs: Some(vec![libb.id]), ..Default::default() };
    w.builds.patch_target(liba.id, &patch).unwrap();
    let mut fake = FakeAur(vec![aur("app", &["libb"]), aur("libb", &["liba"]), aur("liba", &[])]);
    let closure = resolve(&[PkgName::new("app").unwrap()], &Available::new(), &mut fake).unwrap();
    let e = w.builds.create_with_closure(&aur_target("app", "extra"), &closure).unwrap_err();
    assert!(matches!(e, BuildError::Invalid(Invalid::Cycle { .. })), "{e}");
    assert_eq!(e.to_string(), format!("needs: this would make a cycle: {0} → {1} → {0}", liba.id, libb.id));
    assert_eq!(w.builds.list_targets(&TargetFilter::default()).unwrap().len(), 2, "nothing created");
    assert!(w.builds.target(libb.id).unwrap().needs.is_empty(), "no need added");
}
