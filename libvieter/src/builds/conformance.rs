//! The promises of a [`BuildStore`], checked once for every implementation.
//!
//! An implementation's tests call [`check_store`] on an empty store; it panics (as a test assertion
//! does) naming the broken promise. libvieter runs it on [`super::MemoryStore`], `vieter-server` on its
//! redb store.
//!
//! ```
//! libvieter::builds::conformance::check_store(&libvieter::builds::MemoryStore::default());
//! ```

use std::ops::ControlFlow;

use chrono::{DateTime, TimeZone, Utc};

use super::{AgentRecord, BuildStore, Saved};
use crate::api::AgentInfo;
use crate::job::{AgentId, Job, JobId, Trigger};
use crate::name::{Arch, CloneUrl};
use crate::target::{NewTarget, Source, Target, TargetId};

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_735_689_600 + secs, 0).single().expect("a valid instant")
}

fn arch(a: &str) -> Arch {
    Arch::new(a).expect("a valid arch")
}

fn target(url: &str, arches: &[&str]) -> Target {
    NewTarget {
        kind: "git".into(),
        url: url.into(),
        repo: "extra".into(),
        arch: Some(arches.iter().map(|a| a.to_string()).collect()),
        ..Default::default()
    }
    .validate(TargetId(0), &arch("x86_64"))
    .expect("a valid target")
}

fn ids<S: BuildStore>(store: &S, limit: usize) -> Vec<JobId> {
    let mut seen = Vec::new();
    store
        .scan_jobs(&mut |job| {
            seen.push(job.id());
            if seen.len() >= limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .expect("scan_jobs");
    seen
}

/// Checks every promise of [`BuildStore`] on `store`, which must be empty. Times are whole seconds
/// (a store may keep last runs to the second).
pub fn check_store<S: BuildStore>(store: &S) {
    // Empty.
    assert!(store.targets().expect("targets").is_empty(), "a new store has no target");
    assert!(store.last_runs().expect("last_runs").is_empty(), "a new store has no last run");
    assert!(store.agents().expect("agents").is_empty(), "a new store has no agent");
    assert!(ids(store, usize::MAX).is_empty(), "a new store has no job");
    assert_eq!(store.job(JobId(1)).expect("job"), None);

    // Targets: fresh ids, last runs set for each arch, replaced, removed, never reused.
    let a = store.add_target(target("https://h/a", &["x86_64", "aarch64"]), at(10)).expect("add_target");
    let b = store.add_target(target("https://h/b", &["x86_64"]), at(20)).expect("add_target");
    assert!(b.id > a.id, "ids grow: {} then {}", a.id, b.id);
    assert_eq!(store.target(a.id).expect("target"), Some(a.clone()), "a target reads back as added");
    assert_eq!(store.targets().expect("targets"), [a.clone(), b.clone()], "targets by id");
    let runs = store.last_runs().expect("last_runs");
    assert_eq!(runs.get(&(a.id, arch("x86_64"))), Some(&at(10)), "add_target records the last runs");
    assert_eq!(runs.get(&(a.id, arch("aarch64"))), Some(&at(10)));
    assert_eq!(runs.get(&(b.id, arch("x86_64"))), Some(&at(20)));
    assert_eq!(runs.len(), 3);
    let mut edited = a.clone();
    edited.source = Source::git(CloneUrl::new("https://h/a2").expect("a valid URL"));
    store.put_target(&edited).expect("put_target");
    assert_eq!(store.target(a.id).expect("target"), Some(edited), "put_target replaces");
    assert!(store.remove_target(b.id).expect("remove_target"), "removing an existing target");
    assert!(!store.remove_target(b.id).expect("remove_target"), "removing it again finds nothing");
    assert_eq!(store.target(b.id).expect("target"), None);
    let c = store.add_target(target("https://h/c", &["x86_64"]), at(30)).expect("add_target");
    assert!(c.id > b.id, "a removed target's id is never reused ({} after {})", c.id, b.id);
    // A target's needs and whether it is automatic are kept.
    let mut needing = c.clone();
    needing.needs = vec![a.id];
    needing.automatic = true;
    store.put_target(&needing).expect("put_target");
    assert_eq!(store.target(c.id).expect("target"), Some(needing), "needs and automatic read back");

    // Last runs: recorded per pair, replaced.
    store.record_runs(&[(a.id, arch("x86_64")), (c.id, arch("x86_64"))], at(40)).expect("record_runs");
    let runs = store.last_runs().expect("last_runs");
    assert_eq!(runs.get(&(a.id, arch("x86_64"))), Some(&at(40)), "record_runs replaces");
    assert_eq!(runs.get(&(a.id, arch("aarch64"))), Some(&at(10)), "other pairs stay");
    assert_eq!(runs.get(&(c.id, arch("x86_64"))), Some(&at(40)));

    // Jobs: records handed over later win, even before the earlier ones were waited for.
    let x86 = arch("x86_64");
    let agent = AgentId::new("a1").expect("agent id");
    let queued = Job::new(JobId(1), a.id, x86.clone(), false, Trigger::Manual, at(50));
    let mut running = queued.clone();
    running.lease(&agent, at(51), chrono::Duration::seconds(60)).expect("lease");
    let first = store.save_jobs(std::slice::from_ref(&queued)).expect("save_jobs");
    let second = store.save_jobs(std::slice::from_ref(&running)).expect("save_jobs");
    second.wait().expect("durable");
    first.wait().expect("durable");
    assert_eq!(store.job(JobId(1)).expect("job"), Some(running.clone()), "the later record wins");
    let two = Job::new(JobId(2), a.id, x86.clone(), false, Trigger::Schedule, at(52));
    let three = Job::waiting(JobId(3), c.id, x86, true, Trigger::Retry, vec![JobId(1), JobId(2)], at(53));
    store.save_jobs(&[two.clone(), three.clone()]).expect("save_jobs").wait().expect("durable");
    store.save_jobs(&[]).expect("save_jobs").wait().expect("an empty batch");
    assert_eq!(ids(store, usize::MAX), [JobId(3), JobId(2), JobId(1)], "newest first");
    assert_eq!(ids(store, 1), [JobId(3)], "the scan stops when told");
    let read = store.job(JobId(3)).expect("job");
    assert_eq!(
        read.as_ref().map(|j| (j.state(), j.waits_on())),
        Some((crate::job::JobState::Waiting, &[JobId(1), JobId(2)][..])),
        "a waiting job reads back with what it waits for"
    );
    assert_eq!(read, Some(three));

    // Agents: stored with their key, replaced, removed.
    let info = AgentInfo {
        id: agent.clone(),
        arch: arch("x86_64"),
        capacity: 2,
        last_seen: at(60),
        running: vec![],
    };
    let record = AgentRecord { info: info.clone(), key: Some([9; 32]) };
    store.save_agent(&record).expect("save_agent");
    let other = AgentRecord {
        info: AgentInfo { id: AgentId::new("a2").expect("agent id"), ..info.clone() },
        key: None,
    };
    store.save_agent(&other).expect("save_agent");
    let mut agents = store.agents().expect("agents");
    agents.sort_by(|x, y| x.info.id.cmp(&y.info.id));
    assert_eq!(agents, [record.clone(), other.clone()], "agents read back with their keys");
    let moved =
        AgentRecord { info: AgentInfo { capacity: 8, last_seen: at(70), ..info }, key: Some([3; 32]) };
    store.save_agent(&moved).expect("save_agent");
    store.remove_agents(std::slice::from_ref(&other.info.id)).expect("remove_agents");
    assert_eq!(store.agents().expect("agents"), [moved], "save_agent replaces, remove_agents forgets");
}
