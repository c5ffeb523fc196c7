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
    for i in 0..200 {
        let body = json!({"kind": "aur", "url": format!("pkg-{i}"), "repo": "aur", "schedule": "* *"});
        let (status, b) =
            call(&http, Method::POST, format!("{}/api/v1/targets", server.url), KEY, Some(body)).await;
        assert_eq!(status, 200, "{b}");
    }
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
    let requests = aur.requests();
    assert!(requests.len() <= 3, "{requests:?}");
    assert_eq!(requests.len(), 2, "200 names in batches of 150: {requests:?}");
    // No agent was ever involved.
    let (_, agents) = call(&http, Method::GET, format!("{}/api/v1/agents", server.url), KEY, None).await;
    assert_eq!(agents["data"], json!([]));
}
