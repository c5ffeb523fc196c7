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

/// Issue 12's scheduled pass: 200 `aur` targets due at once. The AUR is asked in two batched `info`
/// requests; the 190 whose AUR version is published end `skipped` (reason `unchanged`) with no agent
/// and no container; the 5 newer in the AUR and the 5 never published are queued with their reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_pass_over_unchanged_aur_targets_starts_nothing() {
    let records: Vec<Value> = (0..200)
        .map(|i| record(&format!("pkg-{i}"), if (190..195).contains(&i) { "2.0-1" } else { "1.0-1" }))
        .collect();
    let aur = LocalAur::start(records, None).await;
    let server = Server::start(&[("VIETER_AUR_RPC_URL", &aur.rpc())]);
    let http = reqwest::Client::new();
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
    // All 200 are added within one minute, so that the next minute is the first slot of every one.
    let second = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() % 60;
    if second >= 40 {
        tokio::time::sleep(std::time::Duration::from_secs(61 - second)).await;
    }
    for i in 0..200 {
        let body = json!({"kind": "aur", "url": format!("pkg-{i}"), "repo": "aur", "schedule": "* *"});
        let (status, b) =
            call(&http, Method::POST, format!("{}/api/v1/targets", server.url), KEY, Some(body)).await;
        assert_eq!(status, 200, "{b}");
    }
    // Adding them resolved each one's closure (one info each); the scheduled pass is what counts here.
    let before = aur.requests().len();
    assert_eq!(before, 200, "one info per added target");
    // Every target is due at the next minute.
    let jobs_url = format!("{}/api/v1/jobs?limit=1000", server.url);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(100);
    let jobs = loop {
        let (_, body) = call(&http, Method::GET, jobs_url.clone(), KEY, None).await;
        let jobs = body["data"].as_array().cloned().unwrap_or_default();
        if jobs.len() >= 200 {
            break jobs;
        }
        assert!(std::time::Instant::now() < deadline, "only {} jobs after 100 s", jobs.len());
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    let state = |j: &Value| j["state"].as_str().unwrap().to_owned();
    let skipped: Vec<&Value> = jobs.iter().filter(|j| state(j) == "skipped").collect();
    let queued: Vec<&Value> = jobs.iter().filter(|j| state(j) == "queued").collect();
    assert_eq!((skipped.len(), queued.len(), jobs.len()), (190, 10, 200));
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
    // No agent was ever involved.
    let (_, agents) = call(&http, Method::GET, format!("{}/api/v1/agents", server.url), KEY, None).await;
    assert_eq!(agents["data"], json!([]));
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
