//! AUR dependency closures over HTTP: a local AUR (aurweb's RPC v5 format), a sync database made by
//! real `repo-add` and served over HTTP, and the packages of the target repository.

mod common;

use common::aur::{record, sync_db, with, LocalAur};
use common::{call, Server, KEY};
use reqwest::Method;
use serde_json::{json, Value};

fn names(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_owned()).collect()
}

/// The diamond of the issue: `app` depends on `libfoo` (AUR), makedepends on `libbar` (only provided,
/// by `libbar-git`), checkdepends on `zlib` (sync db); `libfoo` needs `libbaz>=1` (published in the
/// target repository) and `libbar-git` needs `libfoo` and `libqux` (a split package of base `qux`).
fn diamond() -> Vec<Value> {
    vec![
        with(
            record("app", "1.0-1"),
            json!({"Depends": ["libfoo"], "MakeDepends": ["libbar"], "CheckDepends": ["zlib>=1.2"]}),
        ),
        with(record("libfoo", "2.0-1"), json!({"Depends": ["libbaz>=1", "glibc"]})),
        with(
            record("libbar-git", "r10.abc-1"),
            json!({"Provides": ["libbar=0.9"], "Depends": ["libfoo", "libqux"]}),
        ),
        with(record("libbar-old", "0.1-1"), json!({"Provides": ["libbar"], "NumVotes": 0})),
        with(record("libqux", "3-1"), json!({"PackageBase": "qux"})),
        with(record("libnope-user", "1-1"), json!({"Depends": ["libnope"]})),
        with(record("cyc-a", "1-1"), json!({"Depends": ["cyc-b"]})),
        with(record("cyc-b", "1-1"), json!({"MakeDepends": ["cyc-a"]})),
    ]
}

async fn setup() -> Option<(LocalAur, Server, tempfile::TempDir)> {
    if !common::require_tool("repo-add") {
        return None;
    }
    let mirror = tempfile::tempdir().unwrap();
    sync_db(
        mirror.path(),
        "x86_64",
        "core",
        &[("zlib", "1:1.3.1-2", "provides = libz.so=1-64\n"), ("glibc", "2.40-1", "")],
    );
    let aur = LocalAur::start(diamond(), Some(mirror.path().to_owned())).await;
    let sync = format!("{}/files/$arch/core.db", aur.url);
    let server = Server::start(&[("VIETER_AUR_RPC_URL", &aur.rpc()), ("VIETER_SYNC_DBS", &sync)]);
    Some((aur, server, mirror))
}

async fn resolve(server: &Server, body: Value) -> (u16, Value) {
    let http = reqwest::Client::new();
    call(&http, Method::POST, format!("{}/api/v1/aur/resolve", server.url), KEY, Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diamond_resolves_against_the_sync_db_the_target_repo_and_the_aur() {
    let Some((aur, server, _mirror)) = setup().await else { return };
    let http = reqwest::Client::new();
    let r =
        common::publish(&http, &server.url, "extra-aur", common::package("libbaz", "1.5-1", "x86_64", &[]))
            .await;
    assert_eq!(r.status(), 200);

    let (status, body) = resolve(&server, json!({"names": ["app"], "repo": "extra-aur"})).await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    let layers: Vec<Vec<String>> = data["layers"].as_array().unwrap().iter().map(names).collect();
    assert_eq!(layers, [vec!["libfoo", "qux"], vec!["libbar-git"], vec!["app"]]);
    let bases: Vec<(String, Vec<String>)> = data["bases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["name"].as_str().unwrap().to_owned(), names(&b["needs"])))
        .collect();
    assert!(bases.contains(&("app".into(), vec!["libbar-git".into(), "libfoo".into()])), "{bases:?}");
    assert!(bases.contains(&("libbar-git".into(), vec!["libfoo".into(), "qux".into()])), "{bases:?}");
    // The provider of `libbar`: two candidates, the most voted wins, and the choice is shown.
    let choice = &data["choices"][0];
    assert_eq!(choice["dependency"], "libbar");
    assert_eq!(choice["chosen"], "libbar-git");
    assert_eq!(names(&choice["candidates"]), ["libbar-git", "libbar-old"]);
    // What was installable: from the sync db (versioned, epoch) and from the target repository.
    let installed: Vec<(String, String, String)> = data["installed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["dependency"].as_str().unwrap().to_owned(),
                i["source"].as_str().unwrap().to_owned(),
                i["repo"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(installed.contains(&("zlib>=1.2".into(), "sync".into(), "core".into())), "{installed:?}");
    assert!(installed.contains(&("glibc".into(), "sync".into(), "core".into())), "{installed:?}");
    assert!(installed.contains(&("libbaz>=1".into(), "target".into(), "extra-aur".into())), "{installed:?}");
    // Batched: one info per round, one search; no name asked twice.
    let requests = aur.requests();
    assert!(requests.len() <= 5, "{requests:?}");
    assert_eq!(requests.iter().filter(|r| r.starts_with("search")).count(), 1, "{requests:?}");
    let mut asked: Vec<String> = requests
        .iter()
        .filter_map(|r| r.strip_prefix("info "))
        .flat_map(|r| r.split(',').map(str::to_owned))
        .collect();
    let total = asked.len();
    asked.sort();
    asked.dedup();
    assert_eq!(asked.len(), total, "a name asked twice: {requests:?}");

    // The client's typed call reads the same report.
    let client = vieter_client::Client::new(&server.url, Some(KEY.to_owned())).unwrap();
    let request = libvieter::api::ResolveRequest {
        names: vec!["app".parse().unwrap()],
        repo: Some("extra-aur".parse().unwrap()),
        arch: None,
    };
    let report = client.aur_resolve(&request).await.unwrap();
    assert_eq!(serde_json::to_value(&report).unwrap(), *data);

    // Without the target repository libbaz is nowhere: the chain is named.
    let (status, body) = resolve(&server, json!({"names": ["app"]})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["message"],
        "app → libfoo → libbaz>=1: no version in the AUR or any sync db satisfies it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsatisfiable_cycles_unknown_names_and_bad_requests_are_400() {
    let Some((_aur, server, _mirror)) = setup().await else { return };
    let (status, body) = resolve(&server, json!({"names": ["libnope-user"]})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "libnope-user → libnope: not in the AUR or any sync db");
    let (status, body) = resolve(&server, json!({"names": ["cyc-a"]})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["message"],
        "dependency cycle among AUR package bases: cyc-a → cyc-b → cyc-a (makepkg cannot build them)"
    );
    let (status, body) = resolve(&server, json!({"names": ["no-such-package"]})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().starts_with("no-such-package: no AUR package"), "{body}");
    let (status, body) = resolve(&server, json!({"names": []})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = resolve(&server, json!({"names": ["Bad Name"]})).await;
    assert_eq!(status, 400, "{body}");
    // Admin only.
    let http = reqwest::Client::new();
    let (status, _) = call(
        &http,
        Method::POST,
        format!("{}/api/v1/aur/resolve", server.url),
        "wrong",
        Some(json!({"names": ["app"]})),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aur_busy_is_retried_and_the_aur_gone_is_a_502() {
    let Some((aur, server, _mirror)) = setup().await else { return };
    aur.fail_next(&[503, 429]);
    let (status, body) = resolve(&server, json!({"names": ["libqux"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(aur.requests().len(), 3, "two refusals, then the answer: {:?}", aur.requests());
    aur.fail_next(&[503; 5]);
    let (status, body) = resolve(&server, json!({"names": ["libfoo"]})).await;
    assert_eq!(status, 502, "{body}");
    assert!(body["message"].as_str().unwrap().contains("503"), "{body}");

    // An AUR that does not answer at all.
    let gone = Server::start(&[("VIETER_AUR_RPC_URL", "http://127.0.0.1:9/rpc/v5")]);
    let (status, body) = resolve(&gone, json!({"names": ["app"]})).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("cannot reach http://127.0.0.1:9/rpc/v5/info"),
        "{body}"
    );
}

const AGENT_KEY: &str = "test-agent-key";

/// Runs git in `dir` (a fixed identity: the tests make their own commits) and returns its stdout.
fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A git repository with one commit; returns its HEAD.
fn repo_with_commit(dir: &std::path::Path, text: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    if !dir.join(".git").exists() {
        git(dir, &["init", "-q", "-b", "main"]);
    }
    std::fs::write(dir.join("PKGBUILD"), text).unwrap();
    git(dir, &["add", "PKGBUILD"]);
    git(dir, &["commit", "-q", "-m", text]);
    git(dir, &["rev-parse", "HEAD"])
}

/// Issue 12's scheduled pass: 200 `aur` and 100 `git` targets due at once. The AUR is asked in two
/// batched `info` requests and git with one `ls-remote` per distinct ref; the 190 `aur` targets whose
/// AUR version is published and the 96 `git` targets whose branch (and VCS source) is still at the
/// commit of their last build end `skipped` (reason `unchanged`) with no agent and no container; the
/// others are queued with their reason: newer in the AUR, never published, a branch that moved, a VCS
/// source that moved, a package deleted since, a target never built.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_pass_over_unchanged_aur_and_git_targets_starts_nothing() {
    if !common::require_tool("git") {
        return;
    }
    let records: Vec<Value> = (0..200)
        .map(|i| record(&format!("pkg-{i}"), if (190..195).contains(&i) { "2.0-1" } else { "1.0-1" }))
        .collect();
    let aur = LocalAur::start(records, None).await;
    let server = Server::start(&[("VIETER_AUR_RPC_URL", &aur.rpc()), ("VIETER_AGENT_KEY", AGENT_KEY)]);
    let http = reqwest::Client::new();
    let api = |path: &str| format!("{}{path}", server.url);
    for i in 0..195 {
        let arch = if i % 50 == 0 { "any" } else { "x86_64" };
        let r = common::publish(
            &http,
            &server.url,
            "aur",
            common::package(&format!("pkg-{i}"), "1.0-1", arch, &[]),
        )
        .await;
        assert_eq!(r.status(), 200);
    }

    // 100 git targets in local repositories, each built once through the agent protocol (an agent
    // reports the commit it built): target 0 also fetched a VCS source, target 99 never built.
    let work = tempfile::tempdir().unwrap();
    let vcs_dir = work.path().join("vcs");
    let vcs_commit = repo_with_commit(&vcs_dir, "lib v1");
    let vcs_source = format!("lib::git+file://{}#branch=main", vcs_dir.display());
    let mut git_targets = Vec::new();
    for i in 0..100 {
        let dir = work.path().join(format!("g{i}"));
        let commit = repo_with_commit(&dir, &format!("gpkg-{i} 1"));
        let body = json!({"kind": "git", "url": format!("file://{}", dir.display()), "branch": "main",
                          "repo": "gits", "arch": ["x86_64"], "schedule": "* *", "enabled": false});
        let (status, t) = call(&http, Method::POST, api("/api/v1/targets"), KEY, Some(body)).await;
        assert_eq!(status, 200, "{t}");
        let id = t["data"]["id"].as_u64().unwrap();
        git_targets.push((id, dir, commit));
    }
    for (i, (id, _, commit)) in git_targets.iter().enumerate().take(99) {
        let (status, q) =
            call(&http, Method::POST, api("/api/v1/jobs"), KEY, Some(json!({"target": id}))).await;
        assert_eq!(status, 200, "{q}");
        let poll = json!({"agent_id": "builder-1", "arch": "x86_64", "capacity": 1, "wait": 0});
        let (_, leased) = call(&http, Method::POST, api("/api/v1/jobs/poll"), AGENT_KEY, Some(poll)).await;
        let job = leased["data"][0]["job"]["id"].as_u64().unwrap();
        let name = format!("gpkg-{i}");
        let r =
            common::publish(&http, &server.url, "gits", common::package(&name, "1.0-1", "x86_64", &[])).await;
        assert_eq!(r.status(), 200);
        let sources = if i == 0 { json!([{"source": vcs_source, "commit": vcs_commit}]) } else { json!([]) };
        let outcome = json!({"state": "succeeded",
                             "versions": [{"name": name, "version": "1.0-1", "arch": "x86_64"}],
                             "revision": {"commit": commit, "sources": sources}});
        let (status, done) = call(
            &http,
            Method::POST,
            api(&format!("/api/v1/jobs/{job}/finish")),
            AGENT_KEY,
            Some(json!({"agent_id": "builder-1", "outcome": outcome})),
        )
        .await;
        assert_eq!(status, 200, "{done}");
        assert_eq!(done["data"]["revision"]["commit"], json!(commit), "the job keeps its revision");
    }
    // Since then: target 0's VCS source moved, target 1's branch moved, target 2's package was deleted.
    repo_with_commit(&vcs_dir, "lib v2");
    let moved = repo_with_commit(&git_targets[1].1, "gpkg-1 2");
    let (status, _) = call(&http, Method::DELETE, api("/gits/x86_64/gpkg-2"), KEY, None).await;
    assert_eq!(status, 200);

    // Every target is due once, at the same minute: the first whole minute at least 45 s from now (in
    // UTC, the server's time zone), so that adding them all ends before it and one tick takes them all.
    let now = chrono::Utc::now();
    let slot = {
        use chrono::{DurationRound, TimeDelta};
        (now + TimeDelta::seconds(45 + 60)).duration_trunc(TimeDelta::minutes(1)).unwrap()
    };
    let schedule = slot.format("%M %H").to_string();
    for i in 0..200 {
        let body = json!({"kind": "aur", "url": format!("pkg-{i}"), "repo": "aur", "schedule": schedule});
        let (status, b) = call(&http, Method::POST, api("/api/v1/targets"), KEY, Some(body)).await;
        assert_eq!(status, 200, "{b}");
    }
    for (id, _, _) in &git_targets {
        let patch = json!({"enabled": true, "schedule": schedule});
        let (status, b) =
            call(&http, Method::PATCH, api(&format!("/api/v1/targets/{id}")), KEY, Some(patch)).await;
        assert_eq!(status, 200, "{b}");
    }
    assert!(chrono::Utc::now() < slot, "adding the targets took until the slot ({slot})");
    // Adding them resolved each one's closure (one info each); the scheduled pass is what counts here.
    let before = aur.requests().len();
    assert_eq!(before, 200, "one info per added target");
    let jobs_url = api("/api/v1/jobs?limit=1000");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(200);
    let jobs = loop {
        let (_, body) = call(&http, Method::GET, jobs_url.clone(), KEY, None).await;
        let mut jobs = body["data"].as_array().cloned().unwrap_or_default();
        jobs.retain(|j| j["trigger"] == "schedule");
        if jobs.len() >= 300 {
            break jobs;
        }
        assert!(std::time::Instant::now() < deadline, "only {} jobs after 200 s", jobs.len());
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    let state = |j: &Value| j["state"].as_str().unwrap().to_owned();
    let is_git = |j: &Value| git_targets.iter().any(|(id, _, _)| j["target"].as_u64() == Some(*id));
    let (git_jobs, aur_jobs): (Vec<&Value>, Vec<&Value>) = jobs.iter().partition(|j| is_git(j));
    let skipped: Vec<&Value> = aur_jobs.iter().copied().filter(|j| state(j) == "skipped").collect();
    let queued: Vec<&Value> = aur_jobs.iter().copied().filter(|j| state(j) == "queued").collect();
    assert_eq!((skipped.len(), queued.len(), aur_jobs.len()), (190, 10, 200));
    for j in &skipped {
        assert!(j["agent"].is_null() && j["started_at"].is_null(), "{j}");
        assert!(j["reason"].as_str().unwrap().starts_with("unchanged: the AUR's pkg-"), "{j}");
        assert_eq!(j["versions"][0]["version"], "1.0-1", "{j}");
    }
    let reasons: Vec<&str> = queued.iter().map(|j| j["reason"].as_str().unwrap()).collect();
    assert!(reasons.contains(&"the AUR has pkg-190 2.0-1, the repository pkg-190 1.0-1"), "{reasons:?}");
    assert!(reasons.contains(&"pkg-199 1.0-1 in the AUR is not published yet"), "{reasons:?}");
    let requests = aur.requests()[before..].to_vec();
    assert!(requests.len() <= 3, "{requests:?}");
    assert_eq!(requests.len(), 2, "200 names in batches of 150: {requests:?}");

    let of = |i: usize| git_jobs.iter().find(|j| j["target"].as_u64() == Some(git_targets[i].0)).unwrap();
    let git_skipped = git_jobs.iter().filter(|j| state(j) == "skipped").count();
    assert_eq!((git_skipped, git_jobs.len()), (96, 100));
    for (i, (_, _, commit)) in git_targets.iter().enumerate().take(99).skip(3) {
        let j = of(i);
        assert_eq!(state(j), "skipped", "{j}");
        assert!(j["agent"].is_null() && j["started_at"].is_null(), "{j}");
        assert!(j["reason"].as_str().unwrap().starts_with("unchanged: file://"), "{j}");
        assert_eq!(j["versions"][0]["name"], json!(format!("gpkg-{i}")), "{j}");
        assert_eq!(j["revision"]["commit"], json!(commit), "carried forward: {j}");
    }
    let reason = |i: usize| {
        let j = of(i);
        assert_eq!(state(j), "queued", "{j}");
        j["reason"].as_str().unwrap().to_owned()
    };
    assert!(
        reason(0).starts_with(&format!("VCS source {vcs_source} moved: {} → ", &vcs_commit[..12])),
        "{}",
        reason(0)
    );
    assert!(
        reason(1).ends_with(&format!(
            "refs/heads/main moved: {} → {}",
            &git_targets[1].2[..12],
            &moved[..12]
        )),
        "{}",
        reason(1)
    );
    assert_eq!(reason(2), "gpkg-2 1.0-1 is no longer published");
    assert_eq!(reason(99), "no earlier build to compare with");
    // The only agent ever seen is the test's own, for the manual builds.
    let (_, agents) = call(&http, Method::GET, api("/api/v1/agents"), KEY, None).await;
    let agents: Vec<&str> =
        agents["data"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(agents, ["builder-1"]);
}

/// Issue 12 part 3: adding an `aur` target adds the AUR packages it needs as automatic targets of the
/// same repository, each needing what it needs; the tree is served; removing the target removes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_an_aur_target_adds_its_dependencies_as_automatic_targets() {
    let Some((aur, server, _mirror)) = setup().await else { return };
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", server.url);
    let r =
        common::publish(&http, &server.url, "extra-aur", common::package("libbaz", "1.5-1", "x86_64", &[]))
            .await;
    assert_eq!(r.status(), 200);
    // A user's own target of one of the bases is reused, not duplicated.
    let (status, own) = call(
        &http,
        Method::POST,
        url("/api/v1/targets"),
        KEY,
        Some(json!({"kind": "aur", "url": "qux", "repo": "extra-aur"})),
    )
    .await;
    assert_eq!(status, 200, "{own}");
    let own_id = own["data"]["id"].as_u64().unwrap();

    let (status, body) = call(
        &http,
        Method::POST,
        url("/api/v1/targets"),
        KEY,
        Some(json!({"kind": "aur", "url": "app", "repo": "extra-aur"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let app = &body["data"];
    assert_eq!((app["url"].as_str(), app["automatic"].as_bool()), (Some("app"), Some(false)));
    let created: Vec<(String, bool)> = app["closure"]["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["url"].as_str().unwrap().to_owned(), t["automatic"].as_bool().unwrap()))
        .collect();
    assert_eq!(created, [("libfoo".to_owned(), true), ("libbar-git".to_owned(), true)]);
    let reused: Vec<u64> =
        app["closure"]["reused"].as_array().unwrap().iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert_eq!(reused, [own_id]);
    assert_eq!(app["closure"]["resolved"]["choices"][0]["chosen"], "libbar-git");

    // Every target as stored: the needs follow the closure.
    let (_, list) = call(&http, Method::GET, url("/api/v1/targets"), KEY, None).await;
    let targets = list["data"].as_array().unwrap().clone();
    let id_of = |name: &str| targets.iter().find(|t| t["url"] == name).unwrap()["id"].as_u64().unwrap();
    let needs_of = |name: &str| -> Vec<u64> {
        let mut n: Vec<u64> = targets.iter().find(|t| t["url"] == name).unwrap()["needs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        n.sort();
        n
    };
    let mut app_needs = vec![id_of("libfoo"), id_of("libbar-git")];
    app_needs.sort();
    assert_eq!(needs_of("app"), app_needs);
    let mut bar_needs = vec![id_of("libfoo"), own_id];
    bar_needs.sort();
    assert_eq!(needs_of("libbar-git"), bar_needs);
    assert_eq!(targets.len(), 4);

    // The tree.
    let app_id = id_of("app");
    let (status, tree) =
        call(&http, Method::GET, url(&format!("/api/v1/targets/{app_id}/deps")), KEY, None).await;
    assert_eq!(status, 200, "{tree}");
    let below: Vec<&str> = tree["data"]["needs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["target"]["url"].as_str().unwrap())
        .collect();
    assert_eq!(below.len(), 2, "{tree}");
    assert!(below.contains(&"libfoo") && below.contains(&"libbar-git"), "{tree}");

    // Building app queues its dependencies first; app waits.
    let (status, jobs) =
        call(&http, Method::POST, url("/api/v1/jobs"), KEY, Some(json!({"target": app_id}))).await;
    assert_eq!(status, 200, "{jobs}");
    let (_, waiting) = call(&http, Method::GET, url("/api/v1/jobs?state=waiting"), KEY, None).await;
    let waiting_targets: Vec<u64> =
        waiting["data"].as_array().unwrap().iter().map(|j| j["target"].as_u64().unwrap()).collect();
    assert!(waiting_targets.contains(&app_id) && waiting_targets.contains(&id_of("libbar-git")), "{waiting}");

    // Removing app removes the automatic targets; the user's own qux stays.
    let (status, removed) =
        call(&http, Method::DELETE, url(&format!("/api/v1/targets/{app_id}")), KEY, None).await;
    assert_eq!(status, 200, "{removed}");
    let (_, list) = call(&http, Method::GET, url("/api/v1/targets"), KEY, None).await;
    let left: Vec<&str> =
        list["data"].as_array().unwrap().iter().map(|t| t["url"].as_str().unwrap()).collect();
    assert_eq!(left, ["qux"]);

    // A dependency nothing satisfies refuses the target, naming the chain; nothing is created.
    let (status, body) = call(
        &http,
        Method::POST,
        url("/api/v1/targets"),
        KEY,
        Some(json!({"kind": "aur", "url": "libnope-user", "repo": "extra-aur"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "libnope-user → libnope: not in the AUR or any sync db");
    let (_, list) = call(&http, Method::GET, url("/api/v1/targets"), KEY, None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let _ = aur;

    // With the AUR unreachable the target is still added, alone, and says why.
    let gone = Server::start(&[("VIETER_AUR_RPC_URL", "http://127.0.0.1:9/rpc/v5")]);
    let (status, body) = call(
        &http,
        Method::POST,
        format!("{}/api/v1/targets", gone.url),
        KEY,
        Some(json!({"kind": "aur", "url": "app", "repo": "r"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["data"]["closure"]["error"].as_str().unwrap().starts_with("AUR lookup failed: cannot reach"),
        "{body}"
    );
}
