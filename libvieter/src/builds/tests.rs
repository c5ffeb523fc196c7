//! The build service on a [`MemoryStore`] and a [`ManualClock`]: the scheduled path (DST included),
//! leases, retries, cancellation, agents.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;
use crate::job::{FailureCause, FailureStep};
use crate::name::{PkgName, RepoName};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn arch(a: &str) -> Arch {
    Arch::new(a).unwrap()
}

fn agent(a: &str) -> AgentId {
    AgentId::new(a).unwrap()
}

/// A presented key and the keys accepted now.
struct Key {
    presented: KeyDigest,
    accepted: Vec<KeyDigest>,
}

impl Credentials for Key {
    fn key(&self) -> &KeyDigest {
        &self.presented
    }
    fn accepts(&self, key: &KeyDigest) -> bool {
        self.accepted.contains(key)
    }
}

/// Key `n`, with keys 1 to 3 accepted.
fn key(n: u8) -> Key {
    Key { presented: [n; 32], accepted: vec![[1; 32], [2; 32], [3; 32]] }
}

/// What the service asked its embedder to do.
#[derive(Default)]
struct Recorded {
    queued: Mutex<usize>,
    tick_by: Mutex<Vec<DateTime<Utc>>>,
    changed: Mutex<usize>,
}

impl Wakeups for Recorded {
    fn jobs_queued(&self) {
        *self.queued.lock().unwrap() += 1;
    }
    fn tick_by(&self, at: DateTime<Utc>) {
        self.tick_by.lock().unwrap().push(at);
    }
    fn jobs_changed(&self) {
        *self.changed.lock().unwrap() += 1;
    }
}

fn settings(tz: Tz) -> BuildSettings {
    BuildSettings {
        tz,
        retry: RetryPolicy {
            max_attempts: 3,
            backoff_base_secs: 10,
            backoff_factor: 2,
            backoff_max_secs: 100,
        },
        max_agent_capacity: 3,
        agent_expiry: Some(Duration::hours(1)),
        ..BuildSettings::new(arch("x86_64"), "0 3".parse().unwrap())
    }
}

struct World {
    clock: ManualClock,
    store: MemoryStore,
    wakeups: Arc<Recorded>,
    builds: BuildService<MemoryStore>,
}

impl World {
    fn new(tz: Tz, at: DateTime<Utc>) -> World {
        World::on(MemoryStore::default(), settings(tz), at)
    }

    fn on(store: MemoryStore, settings: BuildSettings, at: DateTime<Utc>) -> World {
        let clock = ManualClock::new(at);
        let wakeups = Arc::new(Recorded::default());
        let builds =
            BuildService::open(store.clone(), settings, clock.clone()).unwrap().with_wakeups(wakeups.clone());
        World { clock, store, wakeups, builds }
    }

    /// The service reopened on the same store at `at` (a restart).
    fn restart(self, at: DateTime<Utc>) -> World {
        let settings = self.builds.settings().clone();
        World::on(self.store, settings, at)
    }

    fn target(&self, schedule: Option<&str>, arches: &[&str]) -> Target {
        let new = NewTarget {
            kind: "git".into(),
            url: "https://example.org/pkg.git".into(),
            repo: "extra".into(),
            schedule: schedule.map(Into::into),
            arch: Some(arches.iter().map(|a| a.to_string()).collect()),
            ..Default::default()
        };
        self.builds.create_target(&new).unwrap()
    }

    fn at(&self, t: DateTime<Utc>) -> &Self {
        self.clock.set(t);
        self
    }

    fn tick(&self) -> TickReport {
        self.builds.tick().unwrap()
    }

    fn queued(&self, t: DateTime<Utc>) -> Vec<(TargetId, String, Trigger)> {
        self.at(t).tick().queued.iter().map(|j| (j.target(), j.arch().to_string(), j.trigger())).collect()
    }

    fn poll(&self, who: &str, capacity: u32) -> Vec<LeasedJob> {
        self.poll_as(who, capacity, &key(1)).unwrap()
    }

    fn poll_as(&self, who: &str, capacity: u32, k: &Key) -> Result<Vec<LeasedJob>, BuildError> {
        let req = PollRequest { agent_id: agent(who), arch: arch("x86_64"), capacity, wait: None };
        self.builds.poll(&req, k)
    }

    fn manual(&self, target: TargetId) -> Job {
        let req = QueueRequest { target, arch: None, force: false };
        self.builds.queue_build(&req).unwrap().remove(0)
    }

    fn succeed(&self, id: JobId, who: &str) -> Job {
        self.builds
            .finish(id, &agent(who), Outcome::Succeeded { versions: vec![], revision: None }, &key(1))
            .unwrap()
    }
}

// ---- the scheduled path ----

#[test]
fn every_change_of_a_job_state_is_told_and_a_heartbeat_is_not() {
    let w = World::new(chrono_tz::UTC, utc(2025, 1, 1, 10, 30, 0));
    let changed = || *w.wakeups.changed.lock().unwrap();
    let t = w.target(None, &["x86_64"]);
    assert_eq!(changed(), 0, "a new target has no job");
    let job = w.manual(t.id);
    assert_eq!(changed(), 1, "queued");
    assert_eq!(w.poll("a1", 1).len(), 1);
    assert_eq!(changed(), 2, "leased");
    w.at(utc(2025, 1, 1, 10, 30, 10));
    w.builds.heartbeat(job.id(), &agent("a1"), &key(1)).unwrap();
    assert_eq!(changed(), 2, "a heartbeat changes no state");
    w.succeed(job.id(), "a1");
    assert_eq!(changed(), 3, "ended");
    let again = w.builds.retry(job.id()).unwrap();
    assert_eq!(changed(), 4, "retried");
    w.builds.cancel(again.id()).unwrap();
    assert_eq!(changed(), 5, "cancelled");
    assert!(w.poll("a1", 1).is_empty());
    assert_eq!(changed(), 5, "an empty poll changes nothing");
}

#[test]
fn the_tick_queues_due_runs_with_trigger_schedule() {
    let w = World::new(chrono_tz::UTC, utc(2025, 1, 1, 10, 30, 0));
    let hourly = w.target(Some("0 *"), &["x86_64", "aarch64"]);
    let daily = w.target(None, &["x86_64"]);
    assert_eq!(w.queued(utc(2025, 1, 1, 10, 59, 59)), []);
    let at_11 = w.queued(utc(2025, 1, 1, 11, 0, 0));
    let s = Trigger::Schedule;
    assert_eq!(at_11, [(hourly.id, "x86_64".into(), s), (hourly.id, "aarch64".into(), s)]);
    assert!(*w.wakeups.queued.lock().unwrap() >= 1, "pollers are woken");
    let jobs = w.builds.list_jobs(&JobFilter::default()).unwrap();
    assert!(jobs.iter().all(|j| j.state() == JobState::Queued && j.trigger() == s && !j.force()));
    assert_eq!(w.queued(utc(2025, 1, 1, 11, 0, 30)), [], "ran at 11:00: nothing until 12:00");
    // At 12:00 the 11:00 jobs still wait: they cover the new run, nothing is added.
    assert_eq!(w.queued(utc(2025, 1, 1, 12, 0, 0)), []);
    assert_eq!(w.builds.active_jobs(), 2);
    // The global schedule (03:00) for the other target.
    assert_eq!(w.queued(utc(2025, 1, 2, 3, 0, 0)), [(daily.id, "x86_64".into(), s)]);
    // The tick never plans to sleep past a lease period (30 s at most).
    let report = w.at(utc(2025, 1, 2, 3, 0, 1)).tick();
    assert!(report.next <= utc(2025, 1, 2, 3, 0, 31), "{}", report.next);
}

#[test]
fn a_disabled_target_is_not_scheduled_but_builds_by_hand() {
    let w = World::new(chrono_tz::UTC, utc(2025, 1, 1, 10, 30, 0));
    let t = w.target(Some("* *"), &["x86_64"]);
    w.builds.patch_target(t.id, &TargetPatch { enabled: Some(false), ..Default::default() }).unwrap();
    assert_eq!(w.queued(utc(2025, 1, 1, 12, 0, 0)), []);
    assert_eq!(w.manual(t.id).trigger(), Trigger::Manual);
}

#[test]
fn a_new_target_waits_for_its_first_slot() {
    let w = World::new(chrono_tz::UTC, utc(2025, 1, 1, 12, 0, 0));
    let t = w.target(None, &["x86_64"]);
    // Created at 12:00: not built at once, nor before the next 03:00.
    assert_eq!(w.queued(utc(2025, 1, 1, 12, 0, 0)), []);
    assert_eq!(w.queued(utc(2025, 1, 2, 2, 59, 59)), []);
    assert_eq!(w.queued(utc(2025, 1, 2, 3, 0, 0)), [(t.id, "x86_64".into(), Trigger::Schedule)]);
}

#[test]
fn a_run_missed_while_down_runs_once() {
    let w = World::new(chrono_tz::UTC, utc(2025, 1, 1, 10, 0, 0));
    let t = w.target(Some("0 *"), &["x86_64"]);
    // Down from 10:00 to 15:30: 11:00 to 15:00 were missed, five runs.
    let w = w.restart(utc(2025, 1, 1, 15, 30, 0));
    assert_eq!(w.queued(utc(2025, 1, 1, 15, 30, 0)), [(t.id, "x86_64".into(), Trigger::Schedule)]);
    assert_eq!(w.queued(utc(2025, 1, 1, 15, 30, 1)), [], "once, not five times");
    // The job survives another restart, and the next run is the next slot.
    let w = w.restart(utc(2025, 1, 1, 15, 45, 0));
    assert_eq!(w.builds.active_jobs(), 1, "the queued job is reloaded");
    let leased = w.poll("a1", 1);
    w.succeed(leased[0].job.id(), "a1");
    assert_eq!(w.queued(utc(2025, 1, 1, 15, 59, 59)), []);
    assert_eq!(w.queued(utc(2025, 1, 1, 16, 0, 0)).len(), 1);
    assert!(w.builds.list_jobs(&JobFilter::default()).unwrap()[0].id() > leased[0].job.id(), "ids go on");
}

#[test]
fn spring_forward_runs_at_the_end_of_the_gap() {
    // Brussels, 2025-03-30: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 does not exist that day.
    let tz = chrono_tz::Europe::Brussels;
    let created = utc(2025, 3, 29, 12, 0, 0);
    let w = World::new(tz, created);
    let t = w.target(Some("30 2"), &["x86_64"]);
    let schedule: Schedule = "30 2".parse().unwrap();
    let slot = schedule.next_after(created, tz).unwrap();
    assert_eq!(slot, utc(2025, 3, 30, 1, 0, 0), "libvieter::schedule: the end of the gap");
    assert_eq!(w.queued(slot - Duration::seconds(1)), []);
    assert_eq!(w.queued(slot), [(t.id, "x86_64".into(), Trigger::Schedule)]);
    let leased = w.poll("a1", 1);
    w.succeed(leased[0].job.id(), "a1");
    assert_eq!(w.queued(utc(2025, 3, 30, 1, 30, 0)), [], "once in the gap");
    // The next day at 02:30 CEST.
    let next = schedule.next_after(slot, tz).unwrap();
    assert_eq!(next, utc(2025, 3, 31, 0, 30, 0));
    assert_eq!(w.queued(next - Duration::seconds(1)), []);
    assert_eq!(w.queued(next).len(), 1);
}

#[test]
fn fall_back_runs_a_repeated_time_once() {
    // Brussels, 2025-10-26: 03:00 CEST falls back to 02:00 CET; 02:30 happens at 00:30 and 01:30 UTC.
    let tz = chrono_tz::Europe::Brussels;
    let created = utc(2025, 10, 25, 12, 0, 0);
    let w = World::new(tz, created);
    let t = w.target(Some("30 2"), &["x86_64"]);
    let schedule: Schedule = "30 2".parse().unwrap();
    let first = schedule.next_after(created, tz).unwrap();
    assert_eq!(first, utc(2025, 10, 26, 0, 30, 0), "libvieter::schedule: the first occurrence");
    assert_eq!(w.queued(first), [(t.id, "x86_64".into(), Trigger::Schedule)]);
    let leased = w.poll("a1", 1);
    w.succeed(leased[0].job.id(), "a1");
    assert_eq!(w.queued(utc(2025, 10, 26, 1, 30, 0)), [], "the second 02:30 does not run again");
    let next = schedule.next_after(first, tz).unwrap();
    assert_eq!(next, utc(2025, 10, 27, 1, 30, 0), "02:30 CET the next day");
    assert_eq!(w.queued(next - Duration::seconds(1)), []);
    assert_eq!(w.queued(next).len(), 1);
}

// ---- leases, retries, cancellation ----

#[test]
fn an_unrenewed_lease_is_lost_and_retried_with_back_off() {
    let t0 = utc(2025, 1, 1, 0, 0, 0);
    let w = World::new(chrono_tz::UTC, t0);
    let t = w.target(None, &["x86_64"]);
    let first = w.manual(t.id);
    let leased = w.poll("a1", 1);
    assert_eq!((leased[0].job.id(), leased[0].lease_expires_at), (first.id(), t0 + Duration::seconds(60)));
    w.at(t0 + Duration::seconds(30));
    let expiry = w.builds.heartbeat(first.id(), &agent("a1"), &key(1)).unwrap();
    assert_eq!(expiry, t0 + Duration::seconds(90));
    assert!(w.at(t0 + Duration::seconds(89)).tick().lost.is_empty());
    let lost = w.at(t0 + Duration::seconds(90)).tick().lost;
    assert_eq!((lost.len(), lost[0].job.state()), (1, JobState::Lost));
    assert_eq!(lost[0].job.cause().map(|c| c.step), Some(FailureStep::Agent));
    let retry = lost[0].retry.clone().unwrap();
    assert_eq!((retry.attempt(), retry.retry_of(), retry.trigger()), (2, Some(first.id()), Trigger::Retry));
    assert_eq!(retry.not_before(), t0 + Duration::seconds(100), "back-off 10 s");
    assert_eq!(w.builds.job(first.id()).unwrap().state(), JobState::Lost, "the lost attempt is stored");
    // The late agent is told the job is over.
    let late = w.builds.heartbeat(first.id(), &agent("a1"), &key(1)).unwrap_err();
    assert_eq!(late.to_string(), format!("job {} is already lost", first.id()));
    assert!(matches!(late, BuildError::Conflict { .. }));
    // Not before the back-off, then to another agent.
    assert!(w.at(t0 + Duration::seconds(99)).poll("a2", 1).is_empty());
    let again = w.at(t0 + Duration::seconds(100)).poll("a2", 1);
    assert_eq!((again[0].job.id(), again[0].job.attempt()), (retry.id(), 2));
    // Lost again (a poll expires leases too): back-off doubles; the third attempt is the last.
    w.at(t0 + Duration::seconds(160));
    assert!(w.poll("a2", 1).is_empty());
    let third =
        w.builds.list_jobs(&JobFilter { state: Some(JobState::Queued), ..Default::default() }).unwrap();
    assert_eq!((third[0].attempt(), third[0].not_before()), (3, t0 + Duration::seconds(180)));
    w.at(t0 + Duration::seconds(180));
    assert_eq!(w.poll("a2", 1).len(), 1);
    let lost = w.at(t0 + Duration::seconds(240)).tick().lost;
    assert_eq!((lost.len(), lost[0].retry.as_ref()), (1, None), "attempts used up");
    assert_eq!(w.builds.active_jobs(), 0);
}

#[test]
fn a_package_failure_is_never_retried_an_upload_failure_is() {
    let w = World::new(chrono_tz::UTC, utc(2025, 1, 1, 0, 0, 0));
    let t = w.target(None, &["x86_64"]);
    let job = w.manual(t.id);
    w.poll("a1", 1);
    let cause =
        FailureCause { exit_code: Some(4), ..FailureCause::new(FailureStep::Makepkg, "build() failed") };
    let done = w.builds.finish(job.id(), &agent("a1"), Outcome::Failed { cause }, &key(1)).unwrap();
    assert_eq!(done.state(), JobState::Failed);
    assert_eq!(w.builds.active_jobs(), 0);
    let job = w.manual(t.id);
    w.poll("a1", 1);
    let queued_before = *w.wakeups.queued.lock().unwrap();
    let cause =
        FailureCause { http_status: Some(502), ..FailureCause::new(FailureStep::Upload, "bad gateway") };
    w.builds.finish(job.id(), &agent("a1"), Outcome::Failed { cause }, &key(1)).unwrap();
    assert_eq!(w.builds.active_jobs(), 1, "retried");
    assert!(*w.wakeups.queued.lock().unwrap() > queued_before, "pollers are woken for the retry");
}

#[test]
fn cancel_queued_and_running_jobs() {
    let w = World::new(chrono_tz::UTC, utc(2025, 1, 1, 0, 0, 0));
    let t = w.target(None, &["x86_64"]);
    let running = w.manual(t.id);
    w.poll("a1", 1);
    let queued = w.builds.queue_build(&QueueRequest { target: t.id, arch: None, force: true }).unwrap();
    let cancelled = w.builds.cancel(queued[0].id()).unwrap();
    assert_eq!(cancelled.state(), JobState::Cancelled);
    assert_eq!(w.builds.job(queued[0].id()).unwrap().state(), JobState::Cancelled, "stored");
    let again = w.builds.cancel(queued[0].id()).unwrap_err();
    assert_eq!(again.to_string(), format!("job {} is already cancelled", queued[0].id()));
    assert_eq!(w.builds.cancel(running.id()).unwrap().state(), JobState::Cancelled);
    // Its agent learns it at the next heartbeat, and cannot report on it any more.
    let hb = w.builds.heartbeat(running.id(), &agent("a1"), &key(1)).unwrap_err();
    assert!(matches!(hb, BuildError::Conflict { reason: JobError::Finished { .. }, .. }), "{hb}");
    let fin = w.builds.finish(running.id(), &agent("a1"), Outcome::TimedOut, &key(1)).unwrap_err();
    assert!(matches!(fin, BuildError::Conflict { .. }));
    assert!(matches!(w.builds.cancel(JobId(999)), Err(BuildError::NotFound(Missing::Job(JobId(999))))));
    assert_eq!(w.builds.cancel(JobId(999)).unwrap_err().to_string(), "job 999 not found");
}

#[test]
fn only_an_ended_job_is_retried() {
    let w = World::new(chrono_tz::UTC, utc(2025, 1, 1, 0, 0, 0));
    let t = w.target(None, &["x86_64"]);
    let job = w.manual(t.id);
    let refused = w.builds.retry(job.id()).unwrap_err();
    assert_eq!(refused.to_string(), format!("job {} is queued: it has not ended", job.id()));
    w.poll("a1", 1);
    assert!(matches!(w.builds.retry(job.id()), Err(BuildError::Conflict { .. })), "running");
    w.succeed(job.id(), "a1");
    let retry = w.builds.retry(job.id()).unwrap();
    assert_eq!((retry.trigger(), retry.force(), retry.state()), (Trigger::Retry, true, JobState::Queued));
    assert_ne!(retry.id(), job.id());
    assert!(matches!(w.builds.retry(JobId(999)), Err(BuildError::NotFound(_))));
    // A job whose target is gone cannot be built again.
    w.builds.delete_target(t.id).unwrap();
    assert_eq!(w.builds.job(retry.id()).unwrap().state(), JobState::Cancelled, "deleting cancels");
    let gone = w.builds.retry(job.id()).unwrap_err();
    assert_eq!(gone.to_string(), format!("target {} not found", t.id));
}

#[test]
fn a_job_whose_target_vanished_is_cancelled_not_leased() {
    let w = World::new(chrono_tz::UTC, utc(2025, 1, 1, 0, 0, 0));
    let t = w.target(None, &["x86_64"]);
    let job = w.manual(t.id);
    w.store.remove_target(t.id).unwrap();
    assert!(w.poll("a1", 1).is_empty());
    assert_eq!(w.builds.job(job.id()).unwrap().state(), JobState::Cancelled);
}

// ---- manual builds, leases ----

#[test]
fn manual_builds_check_the_arch_and_deduplicate() {
    let w = World::new(chrono_tz::UTC, utc(2025, 1, 1, 0, 0, 0));
    let t = w.target(None, &["x86_64", "aarch64"]);
    let all = w.builds.queue_build(&QueueRequest { target: t.id, arch: None, force: false }).unwrap();
    assert_eq!(all.iter().map(|j| j.arch().as_str()).collect::<Vec<_>>(), ["x86_64", "aarch64"]);
    let one = QueueRequest { target: t.id, arch: Some(arch("aarch64")), force: false };
    assert_eq!(w.builds.queue_build(&one).unwrap()[0].id(), all[1].id(), "already waiting");
    let forced = w.builds.queue_build(&QueueRequest { force: true, ..one }).unwrap();
    assert_ne!(forced[0].id(), all[1].id());
    let wrong = QueueRequest { target: t.id, arch: Some(arch("riscv64")), force: false };
    let err = w.builds.queue_build(&wrong).unwrap_err();
    assert!(matches!(err, BuildError::Invalid(Invalid::Arch { .. })));
    assert_eq!(err.to_string(), format!("target {} is not built for riscv64", t.id));
    let missing = QueueRequest { target: TargetId(99), arch: None, force: false };
    assert_eq!(w.builds.queue_build(&missing).unwrap_err().to_string(), "target 99 not found");
}

#[test]
fn a_leased_job_carries_the_defaults() {
    let w = World::new(chrono_tz::UTC, utc(2025, 1, 1, 0, 0, 0));
    let plain = w.target(None, &["x86_64"]);
    let own = NewTarget {
        kind: "aur".into(),
        url: "yay".into(),
        repo: "extra".into(),
        base_image: Some("ghcr.io/me/builder:1".into()),
        build_timeout_secs: Some(120),
        ..Default::default()
    };
    let own = w.builds.create_target(&own).unwrap();
    w.manual(plain.id);
    w.manual(own.id);
    let leased = w.poll("a1", 2);
    assert_eq!(leased[0].base_image, "archlinux:base-devel");
    assert_eq!(leased[0].timeout_secs, 3600);
    assert_eq!(leased[0].heartbeat_secs, 20, "a third of the lease");
    assert_eq!((leased[1].base_image.as_str(), leased[1].timeout_secs), ("ghcr.io/me/builder:1", 120));
    assert_eq!(leased[1].target, own);
}

#[test]
fn one_agent_holds_at_most_max_agent_capacity_jobs() {
    let w = World::new(chrono_tz::UTC, utc(2025, 1, 1, 0, 0, 0));
    let t = w.target(None, &["x86_64"]);
    for _ in 0..10 {
        w.builds.queue_build(&QueueRequest { target: t.id, arch: None, force: true }).unwrap();
    }
    let got = w.poll("greedy", 1_000_000);
    assert_eq!(got.len(), 3);
    assert!(w.poll("greedy", 1_000_000).is_empty(), "already holding the cap");
    assert_eq!(w.builds.agents()[0].capacity, 3, "the capacity is recorded capped");
    assert_eq!(w.builds.agents()[0].running.len(), 3);
    w.succeed(got[0].job.id(), "greedy");
    assert_eq!(w.poll("greedy", 1_000_000).len(), 1, "finishing frees a slot");
    assert_eq!(w.poll("other", 2).len(), 2, "others are not held back");
}

#[test]
fn poll_is_idle_only_for_a_fresh_agent_with_nothing_due() {
    let w = World::new(chrono_tz::UTC, utc(2025, 1, 1, 0, 0, 0));
    let req = PollRequest { agent_id: agent("a1"), arch: arch("x86_64"), capacity: 1, wait: Some(30) };
    assert!(!w.builds.poll_is_idle(&req, &key(1)).unwrap(), "unknown agent: its record must be written");
    assert!(w.builds.poll(&req, &key(1)).unwrap().is_empty());
    assert!(w.builds.poll_is_idle(&req, &key(1)).unwrap());
    assert!(!w.builds.poll_is_idle(&PollRequest { capacity: 2, ..req.clone() }, &key(1)).unwrap(), "changed");
    assert!(matches!(w.builds.poll_is_idle(&req, &key(2)), Err(BuildError::Forbidden { .. })));
    w.clock.advance(AGENT_PERSIST_EVERY);
    assert!(!w.builds.poll_is_idle(&req, &key(1)).unwrap(), "the record is due to be written again");
    let t = w.target(None, &["x86_64"]);
    w.builds.poll(&req, &key(1)).unwrap();
    w.manual(t.id);
    assert!(!w.builds.poll_is_idle(&req, &key(1)).unwrap(), "a job is due");
    assert_eq!(w.builds.poll_again(&req).unwrap().len(), 1);
}

// ---- agents ----

#[test]
fn agent_ids_are_bound_to_their_first_key() {
    let w = World::new(chrono_tz::UTC, utc(2025, 1, 1, 0, 0, 0));
    let t = w.target(None, &["x86_64"]);
    w.poll_as("a1", 1, &key(1)).unwrap();
    let err = w.poll_as("a1", 1, &key(2)).unwrap_err();
    assert_eq!(err.to_string(), "agent id a1 is bound to another key: use the key it registered with");
    let job = w.manual(t.id);
    assert_eq!(w.poll("a1", 1).len(), 1);
    for refused in [
        w.builds.heartbeat(job.id(), &agent("a1"), &key(2)).map(|_| ()),
        w.builds.finish(job.id(), &agent("a1"), Outcome::TimedOut, &key(2)).map(|_| ()),
        w.builds.check_log_append(job.id(), &agent("a1"), &key(2)),
    ] {
        assert!(matches!(refused, Err(BuildError::Forbidden { .. })), "{refused:?}");
    }
    assert_eq!(w.builds.job(job.id()).unwrap().state(), JobState::Running, "nothing changed");
    // Key 1 rotated out: its binding is stale and another key takes the id over.
    let rotated = Key { presented: [4; 32], accepted: vec![[4; 32]] };
    w.poll_as("a1", 1, &rotated).unwrap();
    assert!(w.builds.heartbeat(job.id(), &agent("a1"), &rotated).is_ok());
    // The binding is stored: it survives a restart.
    let w = w.restart(utc(2025, 1, 1, 0, 1, 0));
    assert!(matches!(
        w.poll_as("a1", 1, &Key { presented: [5; 32], accepted: vec![[4; 32], [5; 32]] }),
        Err(BuildError::Forbidden { .. })
    ));
}

#[test]
fn one_key_has_at_most_max_agents_per_key_agents() {
    let t0 = utc(2025, 1, 1, 0, 0, 0);
    let few = BuildSettings { max_agents_per_key: 3, ..settings(chrono_tz::UTC) };
    let w = World::on(MemoryStore::default(), few, t0);
    for id in ["a1", "a2", "a3"] {
        w.poll_as(id, 1, &key(1)).unwrap();
    }
    let err = w.poll_as("a4", 1, &key(1)).unwrap_err();
    assert!(matches!(err, BuildError::TooManyAgents { limit: 3 }), "{err:?}");
    assert!(err.to_string().contains("max_agents_per_key"), "{err}");
    // Known ids keep polling; another key has its own allowance.
    w.poll_as("a2", 1, &key(1)).unwrap();
    w.poll_as("b1", 1, &key(2)).unwrap();
    let ids: Vec<String> = w.builds.agents().iter().map(|a| a.id.to_string()).collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert!(!ids.contains(&"a4".to_owned()));
}

#[test]
fn idle_agents_expire_busy_ones_are_kept() {
    let t0 = utc(2025, 1, 1, 0, 0, 0);
    // Leases longer than the agents' expiry: the busy agent keeps its job without heartbeats.
    let long_leases = BuildSettings { lease: Duration::hours(3), ..settings(chrono_tz::UTC) };
    let w = World::on(MemoryStore::default(), long_leases, t0);
    let t = w.target(None, &["x86_64"]);
    w.poll("idle", 1);
    assert_eq!(
        w.wakeups.tick_by.lock().unwrap().last(),
        Some(&(t0 + Duration::hours(1))),
        "tick by the expiry"
    );
    w.manual(t.id);
    let job = w.poll("busy", 1).remove(0).job;
    assert!(w.at(t0 + Duration::minutes(59)).tick().forgotten.is_empty());
    let report = w.at(t0 + Duration::hours(1)).tick();
    assert_eq!(report.forgotten, [agent("idle")]);
    assert!(report.next <= t0 + Duration::hours(1) + Duration::seconds(30));
    assert_eq!(w.store.agents().unwrap().len(), 1, "forgotten in the store too");
    assert_eq!(w.builds.agents().iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["busy"]);
    assert!(w.at(t0 + Duration::hours(2)).tick().forgotten.is_empty(), "holding a job");
    let finished_at = t0 + Duration::hours(2);
    w.succeed(job.id(), "busy");
    assert_eq!(w.wakeups.tick_by.lock().unwrap().last(), Some(&(finished_at + Duration::hours(1))));
    assert!(w.at(finished_at + Duration::minutes(59)).tick().forgotten.is_empty(), "its last contact counts");
    assert_eq!(w.at(finished_at + Duration::hours(1)).tick().forgotten, [agent("busy")]);
    assert!(w.builds.agents().is_empty());
    // No expiry configured: kept forever.
    let forever = BuildSettings { agent_expiry: None, ..settings(chrono_tz::UTC) };
    let w = World::on(MemoryStore::default(), forever, t0);
    w.poll("a", 1);
    assert!(w.at(t0 + Duration::days(3650)).tick().forgotten.is_empty());
}

// ---- logs ----

#[test]
fn only_the_lease_holder_appends_to_a_running_jobs_log() {
    let w = World::new(chrono_tz::UTC, utc(2025, 1, 1, 0, 0, 0));
    let t = w.target(None, &["x86_64"]);
    let job = w.manual(t.id);
    let not_running = w.builds.check_log_append(job.id(), &agent("a1"), &key(1)).unwrap_err();
    assert_eq!(not_running.to_string(), format!("job {} is not running on agent a1", job.id()));
    w.poll("a1", 1);
    w.builds.check_log_append(job.id(), &agent("a1"), &key(1)).unwrap();
    let other = w.builds.check_log_append(job.id(), &agent("a2"), &key(1)).unwrap_err();
    assert_eq!(other.to_string(), format!("job {} is not running on agent a2", job.id()));
    w.builds.log_truncated(job.id()).unwrap();
    assert!(w.store.job(job.id()).unwrap().unwrap().log_truncated(), "the mark is stored");
    w.succeed(job.id(), "a1");
    let done = w.builds.check_log_append(job.id(), &agent("a1"), &key(1)).unwrap_err();
    assert_eq!(done.to_string(), format!("job {} is already succeeded", job.id()));
    assert!(matches!(
        w.builds.check_log_append(JobId(99), &agent("a1"), &key(1)),
        Err(BuildError::NotFound(_))
    ));
    assert_eq!(w.builds.plan_log_append(64 << 20, 1), LogAppend { keep: 0, truncate: true });
}

#[test]
fn old_logs_are_removed_after_the_retention() {
    let now = utc(2025, 6, 1, 0, 0, 0);
    let w = World::new(chrono_tz::UTC, now);
    let logs = [
        (1, now - Duration::days(31)),
        (2, now - Duration::days(30)),
        (3, now),
        (4, now + Duration::days(1)),
    ];
    assert_eq!(w.builds.logs_to_remove(logs), [1]);
    let keep = BuildSettings { log_retention: None, ..settings(chrono_tz::UTC) };
    let w = World::on(MemoryStore::default(), keep, now);
    assert!(w.builds.logs_to_remove([(1, now - Duration::days(3650))]).is_empty());
}

// ---- targets, filters, paging ----

#[test]
fn targets_are_validated_edited_and_removed() {
    let w = World::new(chrono_tz::UTC, utc(2025, 1, 1, 0, 0, 0));
    let bad = NewTarget { kind: "svn".into(), url: "x".into(), repo: "api".into(), ..Default::default() };
    let err = w.builds.create_target(&bad).unwrap_err();
    assert!(matches!(&err, BuildError::Invalid(Invalid::Target(e)) if e.len() >= 2), "{err}");
    assert!(err.to_string().starts_with("invalid target: "));
    let t = w.target(None, &["x86_64"]);
    assert_eq!(t.id, TargetId(1), "a refused target used no id");
    let patched =
        w.builds.patch_target(t.id, &TargetPatch { url: Some("https://h/y".into()), ..Default::default() });
    assert_eq!(patched.unwrap().source.url_str(), "https://h/y");
    let bad_patch = TargetPatch { build_timeout_secs: Some(Some(0)), ..Default::default() };
    assert!(matches!(w.builds.patch_target(t.id, &bad_patch), Err(BuildError::Invalid(_))));
    assert!(matches!(
        w.builds.patch_target(TargetId(9), &TargetPatch::default()),
        Err(BuildError::NotFound(_))
    ));
    w.builds.delete_target(t.id).unwrap();
    assert!(matches!(w.builds.delete_target(t.id), Err(BuildError::NotFound(Missing::Target(_)))));
    assert_eq!(w.target(None, &["x86_64"]).id, TargetId(2), "ids are not reused");
}

#[test]
fn listings_filter_and_page() {
    let w = World::new(chrono_tz::UTC, utc(2025, 1, 1, 0, 0, 0));
    for i in 0..30 {
        let t = w.target(None, if i % 3 == 0 { &["x86_64", "aarch64"] } else { &["x86_64"] });
        w.manual(t.id);
    }
    assert_eq!(w.builds.list_targets(&TargetFilter::default()).unwrap().len(), 25, "default page");
    let arm = TargetFilter { arch: Some("aarch64".into()), ..Default::default() };
    assert_eq!(w.builds.list_targets(&arm).unwrap().len(), 10);
    let paged = TargetFilter { offset: Some(28), limit: Some(5), ..Default::default() };
    assert_eq!(w.builds.list_targets(&paged).unwrap().iter().map(|t| t.id.0).collect::<Vec<_>>(), [29, 30]);
    let jobs = w.builds.list_jobs(&JobFilter::default()).unwrap();
    assert_eq!(jobs.len(), 40);
    assert!(jobs.windows(2).all(|p| p[0].id() > p[1].id()), "newest first");
    let page =
        JobFilter { arch: Some("aarch64".into()), offset: Some(2), limit: Some(3), ..Default::default() };
    let got = w.builds.list_jobs(&page).unwrap();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|j| j.arch().as_str() == "aarch64"));
    assert!(w.builds.list_jobs(&JobFilter { limit: Some(0), ..Default::default() }).unwrap().is_empty());
    let none = JobFilter { state: Some(JobState::Running), ..Default::default() };
    assert!(w.builds.list_jobs(&none).unwrap().is_empty());
}

#[test]
fn the_memory_store_keeps_the_store_promises() {
    conformance::check_store(&MemoryStore::default());
}

// ---- views ----

#[test]
fn next_runs_follow_the_tick_and_package_builds_name_the_job() {
    let w = World::new(chrono_tz::UTC, utc(2025, 1, 1, 12, 0, 0));
    let hourly = w.target(Some("0 *"), &["x86_64"]);
    let off = w.target(None, &["x86_64"]);
    let off =
        w.builds.patch_target(off.id, &TargetPatch { enabled: Some(false), ..Default::default() }).unwrap();
    let next = w.builds.next_runs(&[hourly.clone(), off.clone()]).unwrap();
    assert_eq!(next[&hourly.id], Some(utc(2025, 1, 1, 13, 0, 0)), "a new target waits for its first slot");
    assert_eq!(next[&off.id], None, "a disabled target never runs by schedule");
    // The tick agrees: nothing before 13:00, a job at 13:00.
    assert_eq!(w.queued(utc(2025, 1, 1, 12, 59, 59)), []);
    assert_eq!(w.queued(utc(2025, 1, 1, 13, 0, 0)).len(), 1);
    let next = w.builds.next_runs(std::slice::from_ref(&hourly)).unwrap();
    assert_eq!(next[&hourly.id], Some(utc(2025, 1, 1, 14, 0, 0)));

    let job = w.poll("a1", 1).remove(0).job;
    let built = crate::srcinfo::BuiltPackage {
        name: PkgName::new("pkg").unwrap(),
        version: "1.0-1".parse().unwrap(),
        arch: arch("x86_64"),
    };
    let outcome = Outcome::Succeeded { versions: vec![built.clone()], revision: None };
    w.builds.finish(job.id(), &agent("a1"), outcome, &key(1)).unwrap();
    let names: BTreeSet<PkgName> = [PkgName::new("pkg").unwrap()].into();
    let builds = w.builds.package_builds(&RepoName::new("extra").unwrap(), &names).unwrap();
    assert_eq!(builds.len(), 1);
    assert_eq!((builds[0].job, builds[0].target, &builds[0].version), (job.id(), hourly.id, &built.version));
    let other = w.builds.package_builds(&RepoName::new("core").unwrap(), &names).unwrap();
    assert!(other.is_empty(), "only the targets of the repository count");
}

#[test]
fn the_service_keeps_its_settings_within_limits() {
    let mut wild = settings(chrono_tz::UTC);
    wild.lease = Duration::zero();
    wild.retry.max_attempts = 0;
    wild.max_agents_per_key = 0;
    wild.log_retention = Some(Duration::zero());
    wild.agent_expiry = Some(Duration::seconds(-5));
    let clock = ManualClock::new(utc(2025, 1, 1, 0, 0, 0));
    let service = BuildService::open(MemoryStore::default(), wild, clock).unwrap();
    let s = service.settings();
    assert_eq!(s.lease, Duration::seconds(1), "a lease that expires at once is no lease");
    assert_eq!((s.retry.max_attempts, s.max_agents_per_key), (1, 1));
    assert_eq!((s.log_retention, s.agent_expiry), (None, None), "zero means kept forever");
    let mut long = settings(chrono_tz::UTC);
    long.lease = Duration::days(30);
    long.log_retention = Some(BuildSettings::seconds(u64::MAX));
    let long = long.within_limits();
    assert_eq!(long.lease, Duration::days(1));
    assert_eq!(long.log_retention, Some(Duration::days(36_500)), "at most a century");
    assert_eq!(BuildSettings::seconds(90), Duration::seconds(90));
    assert_eq!(BuildSettings::seconds(0), Duration::zero());
}
