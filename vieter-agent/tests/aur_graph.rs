//! Issue 12 end to end, with real Podman, real makepkg and real pacman: AUR targets whose dependency
//! closure the server resolves against a local AUR (aurweb's RPC v5) and whose package bases two real
//! agents clone from a local `git daemon` (as the AUR serves `{pkgbase}.git`).
//!
//! 1. `app` needs a diamond of AUR bases (depends, makedepends, checkdepends, one only through
//!    `provides`, one split base, two bases needing a common one): adding it creates the automatic
//!    targets, building it builds them in topological order, independent branches on both agents at
//!    once, and pacman installs the result from the server.
//! 2. A dependency whose build() fails fails its dependents, transitively, with step `dependency`
//!    naming the failed job.
//! 3. A cycle of AUR bases is refused with its path; once one member is published (built from a plain
//!    `git` target), the target is added and builds.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::server::aur::{record, with, LocalAur};
use common::server::{Pacman, Server, KEY};
use common::{eventually, finished, log, Agent, GitDaemon, PodmanService, AGENT_KEY};
use libvieter::api::{JobFilter, QueueRequest};
use libvieter::job::{FailureStep, Job, JobId, JobState};
use libvieter::target::{NewTarget, Source, Target, TargetId};
use serde_json::{json, Value};
use vieter_client::{Client, ClientError};

const REPO: &str = "built";

/// A one-package PKGBUILD: `pkgver=1.0`, `pkgrel=1`, x86_64, with `body` (pkgname, deps, functions).
fn pkgbuild(body: &str) -> String {
    format!("pkgver=1.0\npkgrel=1\narch=('x86_64')\nlicense=('MIT')\n{body}\n")
}

/// `package()` writing `/usr/share/{name}/marker`, after `extra` (shell run in package()).
fn package_fn(name: &str, extra: &str) -> String {
    format!(
        "package() {{ {extra} mkdir -p \"$pkgdir/usr/share/{name}\"; echo {name} > \"$pkgdir/usr/share/{name}/marker\"; }}"
    )
}

/// The AUR's git repository of `base`, served as `{base}.git`.
fn aur_repo(git: &GitDaemon, base: &str, pkgbuild: &str) {
    git.repo(&format!("{base}.git"), &[("PKGBUILD", pkgbuild)]);
}

fn aur_target(name: &str) -> NewTarget {
    NewTarget {
        kind: "aur".into(),
        url: name.into(),
        repo: REPO.into(),
        arch: Some(vec!["x86_64".into()]),
        // Only the builds the test queues: no scheduled run of the root may interfere.
        enabled: Some(false),
        ..NewTarget::default()
    }
}

fn aur_name(t: &Target) -> String {
    match &t.source {
        Source::Aur { name } => name.as_str().to_owned(),
        other => panic!("not an aur target: {other:?}"),
    }
}

async fn queue(client: &Client, target: TargetId) -> Job {
    let mut jobs = client.queue(&QueueRequest { target, arch: None, force: false }).await.expect("queue");
    assert_eq!(jobs.len(), 1);
    jobs.remove(0)
}

async fn all_jobs(client: &Client) -> Vec<Job> {
    client.jobs(&JobFilter { limit: Some(1000), ..JobFilter::default() }).await.expect("jobs")
}

fn versions(job: &Job) -> Vec<String> {
    let mut v: Vec<String> = job
        .versions()
        .iter()
        .map(|p| format!("{}-{}-{}", p.name.as_str(), p.version, p.arch.as_str()))
        .collect();
    v.sort();
    v
}

/// The jobs of `targets` (by base name), one each, from `jobs`.
fn jobs_of(jobs: &[Job], targets: &BTreeMap<TargetId, String>) -> BTreeMap<String, Job> {
    let mut out = BTreeMap::new();
    for j in jobs.iter().filter(|j| targets.contains_key(&j.target())) {
        let name = targets[&j.target()].clone();
        assert!(out.insert(name.clone(), j.clone()).is_none(), "two jobs of {name}: {jobs:#?}");
    }
    out
}

/// The local AUR's records: the diamond of part 1, the broken chain of part 2, the cycle of part 3.
fn records() -> Vec<Value> {
    vec![
        // 1. app: depends on foo-tool (only provided, by foo-tool-git) and splitpair-lib (a package of
        //    the split base splitpair), makedepends on mk-helper, checkdepends on chk-helper; both
        //    helpers need core-lib.
        with(
            record("app", "1.0-1"),
            json!({"Depends": ["foo-tool", "splitpair-lib"], "MakeDepends": ["mk-helper"],
                   "CheckDepends": ["chk-helper"]}),
        ),
        with(record("mk-helper", "1.0-1"), json!({"Depends": ["core-lib"]})),
        with(record("chk-helper", "1.0-1"), json!({"Depends": ["core-lib"]})),
        record("core-lib", "1.0-1"),
        with(record("foo-tool-git", "1.0-1"), json!({"Provides": ["foo-tool"]})),
        with(record("splitpair-lib", "1.0-1"), json!({"PackageBase": "splitpair"})),
        with(record("splitpair-extra", "1.0-1"), json!({"PackageBase": "splitpair"})),
        // 2. victim → middle → broken-lib, whose build() fails.
        with(record("victim", "1.0-1"), json!({"Depends": ["middle"]})),
        with(record("middle", "1.0-1"), json!({"Depends": ["broken-lib"]})),
        record("broken-lib", "1.0-1"),
        // 3. cyc-a ↔ cyc-b.
        with(record("cyc-a", "1.0-1"), json!({"Depends": ["cyc-b"]})),
        with(record("cyc-b", "1.0-1"), json!({"MakeDepends": ["cyc-a"]})),
    ]
}

/// The package bases' git repositories, matching [`records`]. Every build proves its dependencies were
/// installed by reading their files.
fn serve_bases(git: &GitDaemon) {
    let needs = |name: &str| format!("test -f /usr/share/{name}/marker;");
    aur_repo(
        git,
        "core-lib",
        &pkgbuild(&format!("pkgname=core-lib\nbuild() {{ sleep 3; }}\n{}", package_fn("core-lib", ""))),
    );
    aur_repo(
        git,
        "mk-helper",
        &pkgbuild(&format!(
            "pkgname=mk-helper\ndepends=('core-lib')\n{}",
            package_fn("mk-helper", &needs("core-lib"))
        )),
    );
    aur_repo(
        git,
        "chk-helper",
        &pkgbuild(&format!(
            "pkgname=chk-helper\ndepends=('core-lib')\n{}",
            package_fn("chk-helper", &needs("core-lib"))
        )),
    );
    aur_repo(
        git,
        "foo-tool-git",
        &pkgbuild(&format!(
            "pkgname=foo-tool-git\nprovides=('foo-tool')\nbuild() {{ sleep 3; }}\n{}",
            package_fn("foo-tool", "")
        )),
    );
    aur_repo(
        git,
        "splitpair",
        "pkgbase=splitpair\npkgname=('splitpair-lib' 'splitpair-extra')\npkgver=1.0\npkgrel=1\narch=('x86_64')\nlicense=('MIT')\n\
         build() { sleep 3; }\n\
         package_splitpair-lib() { mkdir -p \"$pkgdir/usr/share/splitpair-lib\"; echo lib > \"$pkgdir/usr/share/splitpair-lib/marker\"; }\n\
         package_splitpair-extra() { arch=('any'); mkdir -p \"$pkgdir/usr/share/splitpair-extra\"; echo extra > \"$pkgdir/usr/share/splitpair-extra/marker\"; }\n",
    );
    aur_repo(
        git,
        "app",
        &pkgbuild(&format!(
            "pkgname=app\ndepends=('foo-tool' 'splitpair-lib')\nmakedepends=('mk-helper')\ncheckdepends=('chk-helper')\n\
             build() {{ {} }}\ncheck() {{ {} }}\n{}",
            needs("mk-helper"),
            needs("chk-helper"),
            package_fn("app", &format!("{} {}", needs("foo-tool"), needs("splitpair-lib")))
        )),
    );
    aur_repo(
        git,
        "broken-lib",
        &pkgbuild(&format!(
            "pkgname=broken-lib\nbuild() {{ echo 'broken on purpose'; return 1; }}\n{}",
            package_fn("broken-lib", "")
        )),
    );
    aur_repo(
        git,
        "middle",
        &pkgbuild(&format!("pkgname=middle\ndepends=('broken-lib')\n{}", package_fn("middle", ""))),
    );
    aur_repo(
        git,
        "victim",
        &pkgbuild(&format!("pkgname=victim\ndepends=('middle')\n{}", package_fn("victim", ""))),
    );
    aur_repo(
        git,
        "cyc-a",
        &pkgbuild(&format!("pkgname=cyc-a\ndepends=('cyc-b')\n{}", package_fn("cyc-a", &needs("cyc-b")))),
    );
    aur_repo(
        git,
        "cyc-b",
        &pkgbuild(&format!("pkgname=cyc-b\nmakedepends=('cyc-a')\n{}", package_fn("cyc-b", &needs("cyc-a")))),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_aur_closure_builds_in_order_on_two_agents_fails_dependents_and_breaks_a_published_cycle() {
    if !common::require_podman() {
        return;
    }
    let podman = PodmanService::start();
    let image = common::test_image();
    let aur = LocalAur::start(records(), None).await;
    let git = GitDaemon::start();
    serve_bases(&git);
    let server = Server::start(&[
        ("VIETER_AGENT_KEY", AGENT_KEY),
        ("VIETER_BASE_IMAGE", &image),
        ("VIETER_AUR_RPC_URL", &aur.rpc()),
        ("VIETER_LOG_LEVEL", &std::env::var("VIETER_TEST_SERVER_LOG").unwrap_or_else(|_| "warn".into())),
    ]);
    let admin = Client::new(&server.url, Some(KEY.into())).unwrap();
    let work = tempfile::tempdir().unwrap();
    let aur_base = format!("git://127.0.0.1:{}", git.port);
    let _agents: Vec<Agent> = ["agent-a", "agent-b"]
        .iter()
        .map(|id| {
            Agent::start(id, &server.url, &podman, &work.path().join(id), &[("VIETER_AUR_BASE", &aur_base)])
        })
        .collect();
    // Both agents poll before anything is queued, so that the first layer can go to both at once.
    eventually(60, "both agents to poll", || async {
        let agents = admin.agents().await.ok()?;
        let ids: BTreeSet<&str> = agents.iter().map(|a| a.id.as_str()).collect();
        (ids.contains("agent-a") && ids.contains("agent-b")).then_some(())
    })
    .await;

    // ---- 1. The diamond. ----
    let added = admin.add_target(&aur_target("app")).await.expect("add app");
    let closure = added.closure.expect("an aur target reports its closure");
    assert_eq!(closure.error, None);
    assert!(closure.reused.is_empty(), "{closure:?}");
    let mut base_of: BTreeMap<TargetId, String> =
        closure.created.iter().map(|t| (t.id, aur_name(t))).collect();
    let created: BTreeSet<&str> = base_of.values().map(String::as_str).collect();
    assert_eq!(
        created,
        BTreeSet::from(["chk-helper", "core-lib", "foo-tool-git", "mk-helper", "splitpair"]),
        "one automatic target per dependency base"
    );
    assert!(closure.created.iter().all(|t| t.automatic && t.repo.as_str() == REPO), "{:?}", closure.created);
    let app = added.target;
    assert!(!app.automatic);
    base_of.insert(app.id, "app".into());
    let id_of: BTreeMap<&str, TargetId> = base_of.iter().map(|(id, b)| (b.as_str(), *id)).collect();
    let needs_of = |t: &Target| -> BTreeSet<String> { t.needs.iter().map(|n| base_of[n].clone()).collect() };
    assert_eq!(
        needs_of(&app),
        BTreeSet::from(["chk-helper", "foo-tool-git", "mk-helper", "splitpair"].map(String::from))
    );
    for t in &closure.created {
        let expected: BTreeSet<String> = match aur_name(t).as_str() {
            "mk-helper" | "chk-helper" => BTreeSet::from(["core-lib".to_owned()]),
            _ => BTreeSet::new(),
        };
        assert_eq!(needs_of(t), expected, "needs of {}", aur_name(t));
    }
    let resolved = closure.resolved.expect("the resolution");
    let choice = resolved.choices.iter().find(|c| c.dependency == "foo-tool").expect("foo-tool's provider");
    assert_eq!(choice.chosen.as_str(), "foo-tool-git");
    let layers: Vec<Vec<&str>> =
        resolved.layers.iter().map(|l| l.iter().map(|n| n.as_str()).collect()).collect();
    assert_eq!(
        layers,
        [vec!["core-lib", "foo-tool-git", "splitpair"], vec!["chk-helper", "mk-helper"], vec!["app"]]
    );

    let top = queue(&admin, app.id).await;
    assert_eq!(top.state(), JobState::Waiting);
    // What each job waits on, as queued (a job forgets a dependency once it is released).
    let planned = jobs_of(&all_jobs(&admin).await, &base_of);
    assert_eq!(planned.len(), 6, "a job for every base: {planned:#?}");
    let job_base: BTreeMap<JobId, String> = planned.iter().map(|(b, j)| (j.id(), b.clone())).collect();
    let waits: BTreeMap<String, BTreeSet<String>> = planned
        .iter()
        .map(|(b, j)| (b.clone(), j.waits_on().iter().map(|w| job_base[w].clone()).collect()))
        .collect();
    for (b, j) in &planned {
        let target = if *b == "app" { app.clone() } else { admin.target(id_of[b.as_str()]).await.unwrap() };
        assert_eq!(waits[b], needs_of(&target), "job of {b} waits on the jobs of the targets it needs");
        let expected = if target.needs.is_empty() { JobState::Queued } else { JobState::Waiting };
        assert!(
            j.state() == expected || (expected == JobState::Queued && j.state() == JobState::Running),
            "{b}: {:?}",
            j.state()
        );
    }

    let top = finished(&admin, top.id(), 600).await;
    assert_eq!(top.state(), JobState::Succeeded, "{:?}\n{}", top.cause(), log(&admin, top.id()).await);
    let done = jobs_of(&all_jobs(&admin).await, &base_of);
    for (b, j) in &done {
        assert_eq!(j.state(), JobState::Succeeded, "{b}: {:?}\n{}", j.cause(), log(&admin, j.id()).await);
    }
    assert_eq!(versions(&done["app"]), ["app-1.0-1-x86_64"]);
    assert_eq!(versions(&done["foo-tool-git"]), ["foo-tool-git-1.0-1-x86_64"]);
    assert_eq!(versions(&done["splitpair"]), ["splitpair-extra-1.0-1-any", "splitpair-lib-1.0-1-x86_64"]);
    // Topological order: every job started after each job it waited on ended.
    for (b, deps) in &waits {
        let started = done[b].started_at().expect("started");
        for d in deps {
            let ended = done[d].finished_at().expect("ended");
            assert!(started >= ended, "{b} started at {started}, before {d} ended at {ended}");
        }
    }
    // Independent branches ran on both agents at the same time.
    let intervals: Vec<(&str, &str, chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> = done
        .iter()
        .map(|(b, j)| {
            (
                b.as_str(),
                j.agent().expect("an agent").as_str(),
                j.started_at().unwrap(),
                j.finished_at().unwrap(),
            )
        })
        .collect();
    let overlapping: Vec<(&str, &str)> = intervals
        .iter()
        .enumerate()
        .flat_map(|(i, x)| intervals[i + 1..].iter().map(move |y| (x, y)))
        .filter(|(x, y)| x.1 != y.1 && x.2 < y.3 && y.2 < x.3)
        .map(|(x, y)| (x.0, y.0))
        .collect();
    assert!(!overlapping.is_empty(), "no two jobs ran at once on different agents: {intervals:#?}");
    for (x, y) in &overlapping {
        assert!(!waits[*x].contains(*y) && !waits[*y].contains(*x), "{x} and {y} depend on each other");
    }
    let agents: BTreeSet<&str> = intervals.iter().map(|i| i.1).collect();
    assert_eq!(agents, BTreeSet::from(["agent-a", "agent-b"]));

    // Real pacman installs app from the server, with what it depends on.
    let pacman = Pacman::new(&server.url, &[REPO]);
    let (ok, out) = pacman.run(&["-Sy", "app"]);
    assert!(ok, "{out}");
    let root = pacman.root();
    for name in ["app", "foo-tool", "splitpair-lib"] {
        assert!(root.join(format!("usr/share/{name}/marker")).exists(), "{name} installed:\n{out}");
    }
    assert!(!root.join("usr/share/mk-helper").exists(), "a makedepends is not a runtime dependency");
    let (ok, out) = pacman.run(&["-Q", "foo-tool-git", "splitpair-lib"]);
    assert!(ok, "{out}");

    // ---- 2. A broken dependency fails its dependents, naming the failed job. ----
    let added = admin.add_target(&aur_target("victim")).await.expect("add victim");
    let closure = added.closure.expect("closure");
    let mut chain: BTreeMap<TargetId, String> = closure.created.iter().map(|t| (t.id, aur_name(t))).collect();
    assert_eq!(
        chain.values().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from(["broken-lib", "middle"])
    );
    chain.insert(added.target.id, "victim".into());
    let top = queue(&admin, added.target.id).await;
    let top = finished(&admin, top.id(), 600).await;
    let jobs = jobs_of(&all_jobs(&admin).await, &chain);
    let broken = &jobs["broken-lib"];
    assert_eq!(broken.state(), JobState::Failed);
    assert_eq!(broken.cause().map(|c| c.step), Some(FailureStep::Makepkg), "{:?}", broken.cause());
    assert!(log(&admin, broken.id()).await.contains("broken on purpose"));
    let middle = &jobs["middle"];
    for (dependent, failed) in [(middle, broken), (&top, middle)] {
        assert_eq!(dependent.state(), JobState::Failed);
        assert!(dependent.agent().is_none() && dependent.started_at().is_none(), "{dependent:?} never ran");
        let cause = dependent.cause().expect("a cause");
        assert_eq!(cause.step, FailureStep::Dependency, "{cause}");
        assert!(
            cause.message.starts_with(&format!("job {} (target {}) failed", failed.id(), failed.target())),
            "{cause}"
        );
    }

    // ---- 3. A cycle is refused; one published member breaks it. ----
    match admin.add_target(&aur_target("cyc-a")).await {
        Err(ClientError::Http { status: 400, message }) => assert_eq!(
            message,
            "dependency cycle among AUR package bases: cyc-a → cyc-b → cyc-a (makepkg cannot build them)"
        ),
        other => panic!("a cycle is refused with 400: {other:?}"),
    }
    let targets_before = admin.targets(&Default::default()).await.unwrap().len();
    // cyc-b bootstrapped: built without cyc-a from a plain git target.
    let bootstrap = git.repo(
        "cyc-b-bootstrap",
        &[("PKGBUILD", &pkgbuild(&format!("pkgname=cyc-b\n{}", package_fn("cyc-b", ""))))],
    );
    let boot = admin
        .create_target(&NewTarget {
            kind: "git".into(),
            url: bootstrap,
            repo: REPO.into(),
            arch: Some(vec!["x86_64".into()]),
            enabled: Some(false),
            ..NewTarget::default()
        })
        .await
        .expect("the bootstrap target");
    assert_eq!(
        admin.targets(&Default::default()).await.unwrap().len(),
        targets_before + 1,
        "the refused cycle added nothing"
    );
    let boot_job = queue(&admin, boot.id).await;
    let boot_job = finished(&admin, boot_job.id(), 600).await;
    assert_eq!(
        boot_job.state(),
        JobState::Succeeded,
        "{:?}\n{}",
        boot_job.cause(),
        log(&admin, boot_job.id()).await
    );
    assert_eq!(versions(&boot_job), ["cyc-b-1.0-1-x86_64"]);

    let added = admin.add_target(&aur_target("cyc-a")).await.expect("cyc-a is added once cyc-b is published");
    let closure = added.closure.expect("closure");
    assert!(closure.created.is_empty() && closure.error.is_none(), "{closure:?}");
    let resolved = closure.resolved.expect("the resolution");
    let used =
        resolved.installed.iter().find(|i| i.dependency == "cyc-b").expect("cyc-b was found installable");
    assert_eq!((used.package.as_str(), used.source.as_str(), used.repo.as_str()), ("cyc-b", "target", REPO));
    assert!(added.target.needs.is_empty());
    let cyc = queue(&admin, added.target.id).await;
    let cyc = finished(&admin, cyc.id(), 600).await;
    assert_eq!(cyc.state(), JobState::Succeeded, "{:?}\n{}", cyc.cause(), log(&admin, cyc.id()).await);
    assert_eq!(versions(&cyc), ["cyc-a-1.0-1-x86_64"]);
    let (ok, out) = pacman.run(&["-Sy", "cyc-a"]);
    assert!(ok, "{out}");
    assert!(
        root.join("usr/share/cyc-a/marker").exists() && root.join("usr/share/cyc-b/marker").exists(),
        "{out}"
    );
}
