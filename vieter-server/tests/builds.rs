//! Targets, jobs and the agent protocol against the real server binary.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{json, Value};

const AGENT_KEY: &str = "test-agent-key";

fn server(extra: &[(&str, &str)]) -> Server {
    let mut env = vec![("VIETER_AGENT_KEY", AGENT_KEY)];
    env.extend_from_slice(extra);
    Server::start(&env)
}

async fn new_target(http: &reqwest::Client, url: &str, arch: &[&str]) -> u64 {
    let body = json!({"kind": "git", "url": "https://example.org/pkg.git", "repo": "r", "arch": arch});
    let (status, v) =
        call(http, reqwest::Method::POST, format!("{url}/api/v1/targets"), KEY, Some(body)).await;
    assert_eq!(status, 200, "{v}");
    v["data"]["id"].as_u64().unwrap()
}

async fn poll(http: &reqwest::Client, url: &str, agent: &str, capacity: u32, wait: u64) -> Vec<Value> {
    let body = json!({"agent_id": agent, "arch": "x86_64", "capacity": capacity, "wait": wait});
    let (status, v) =
        call(http, reqwest::Method::POST, format!("{url}/api/v1/jobs/poll"), AGENT_KEY, Some(body)).await;
    assert_eq!(status, 200, "{v}");
    v["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn targets_are_validated_and_bad_input_stores_nothing() {
    let s = server(&[]);
    let http = reqwest::Client::new();
    let id = new_target(&http, &s.url, &["x86_64"]).await;
    let bad = [
        json!({"kind": "git", "url": "https://example.org/x.git", "repo": "r", "schedule": "0 0 30 2"}),
        json!({"kind": "svn", "url": "https://example.org/x", "repo": "r"}),
        json!({"kind": "git", "url": "https://example.org/x.git", "repo": "r", "arch": ["x86-64"]}),
        json!({"kind": "git", "url": "not a url", "repo": "r"}),
        json!({"kind": "git", "url": "https://example.org/x.git", "repo": "api"}),
    ];
    for body in bad {
        let (status, v) =
            call(&http, reqwest::Method::POST, format!("{}/api/v1/targets", s.url), KEY, Some(body.clone()))
                .await;
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v["message"].as_str().unwrap().contains("invalid target"), "{v}");
    }
    let (_, list) = call(&http, reqwest::Method::GET, format!("{}/api/v1/targets", s.url), KEY, None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "refused targets are not stored");

    // Vieter's query-parameter form.
    let r = http
        .post(format!("{}/api/v1/targets?kind=aur&url=yay&repo=r&arch=x86_64,aarch64&schedule=0%203", s.url))
        .header("X-Api-Key", KEY)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"]["arch"], json!(["x86_64", "aarch64"]), "{v}");
    let yay = v["data"]["id"].as_u64().unwrap();
    // `needs` in the query form: target ids, comma-separated; empty in an edit clears them.
    let query = format!("kind=git&url=https://example.org/n.git&repo=r&needs={yay},{id}");
    let (status, v) =
        call(&http, reqwest::Method::POST, format!("{}/api/v1/targets?{query}", s.url), KEY, None).await;
    assert_eq!(status, 200, "{v}");
    let mut needs = vec![yay, id];
    needs.sort();
    assert_eq!(v["data"]["needs"], json!(needs), "{v}");
    let needing = v["data"]["id"].as_u64().unwrap();
    let (status, v) =
        call(&http, reqwest::Method::PATCH, format!("{}/api/v1/targets/{needing}?needs=", s.url), KEY, None)
            .await;
    assert_eq!((status, v["data"]["needs"].clone()), (200, json!([])), "{v}");
    for bad in ["needs=1,x", "needs=999"] {
        let (status, v) = call(
            &http,
            reqwest::Method::PATCH,
            format!("{}/api/v1/targets/{needing}?{bad}", s.url),
            KEY,
            None,
        )
        .await;
        assert_eq!(status, 400, "{bad}: {v}");
        assert!(v["message"].as_str().unwrap().contains("needs"), "{bad}: {v}");
    }
    let (status, _) =
        call(&http, reqwest::Method::DELETE, format!("{}/api/v1/targets/{needing}", s.url), KEY, None).await;
    assert_eq!(status, 200);

    let (status, v) = call(
        &http,
        reqwest::Method::PATCH,
        format!("{}/api/v1/targets/{id}", s.url),
        KEY,
        Some(json!({"branch": "main", "schedule": "*/5 *"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["branch"], "main");
    let (status, _) = call(
        &http,
        reqwest::Method::PATCH,
        format!("{}/api/v1/targets/{id}", s.url),
        KEY,
        Some(json!({"schedule": "61 *"})),
    )
    .await;
    assert_eq!(status, 400);
    let (_, v) = call(&http, reqwest::Method::GET, format!("{}/api/v1/targets/{id}", s.url), KEY, None).await;
    assert_eq!(v["data"]["schedule"], "*/5 * * *", "a refused patch changes nothing");
    let (status, _) =
        call(&http, reqwest::Method::DELETE, format!("{}/api/v1/targets/{id}", s.url), KEY, None).await;
    assert_eq!(status, 200);
    let (status, _) =
        call(&http, reqwest::Method::GET, format!("{}/api/v1/targets/{id}", s.url), KEY, None).await;
    assert_eq!(status, 404);
    // The agent key cannot manage targets.
    let (status, _) =
        call(&http, reqwest::Method::GET, format!("{}/api/v1/targets", s.url), AGENT_KEY, None).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_job_runs_from_queue_to_success_with_its_log() {
    let s = server(&[]);
    let http = reqwest::Client::new();
    let target = new_target(&http, &s.url, &["x86_64"]).await;
    let (status, v) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/api/v1/jobs", s.url),
        KEY,
        Some(json!({"target": target})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let job_id = v["data"][0]["id"].as_u64().unwrap();
    assert_eq!(v["data"][0]["state"], "queued");

    let leased = poll(&http, &s.url, "agent-a", 2, 0).await;
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0]["job"]["id"], job_id);
    assert_eq!(leased[0]["target"]["url"], "https://example.org/pkg.git");
    assert_eq!(leased[0]["base_image"], "archlinux:base-devel");
    assert!(poll(&http, &s.url, "agent-b", 2, 0).await.is_empty(), "a job is handed out once");

    let beat = json!({"agent_id": "agent-a"});
    let (status, _) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/api/v1/jobs/{job_id}/heartbeat", s.url),
        AGENT_KEY,
        Some(beat),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/api/v1/jobs/{job_id}/heartbeat", s.url),
        AGENT_KEY,
        Some(json!({"agent_id": "agent-b"})),
    )
    .await;
    assert_eq!(status, 409, "only the holder renews a lease");
    // A follower that starts while the job runs gets every line, and its stream ends when the job does.
    let following = tokio::spawn({
        let (http, url) = (http.clone(), format!("{}/api/v1/jobs/{job_id}/log?follow=true", s.url));
        async move { http.get(url).header("X-Api-Key", KEY).send().await.unwrap().text().await.unwrap() }
    });
    for line in ["==> vieter: fetch\n", "==> vieter: makepkg\n"] {
        let r = http
            .post(format!("{}/api/v1/jobs/{job_id}/log?agent_id=agent-a", s.url))
            .header("X-Api-Key", AGENT_KEY)
            .body(line)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let outcome = json!({"agent_id": "agent-a", "outcome": {"state": "succeeded", "versions": [{"name": "pkg", "version": "1.0-1", "arch": "x86_64"}]}});
    let (status, v) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/api/v1/jobs/{job_id}/finish", s.url),
        AGENT_KEY,
        Some(outcome),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (_, v) =
        call(&http, reqwest::Method::GET, format!("{}/api/v1/jobs/{job_id}", s.url), KEY, None).await;
    assert_eq!(v["data"]["state"], "succeeded");
    assert_eq!(v["data"]["agent"], "agent-a");
    assert!(v["data"]["started_at"].is_string() && v["data"]["finished_at"].is_string());
    let log = http
        .get(format!("{}/api/v1/jobs/{job_id}/log", s.url))
        .header("X-Api-Key", KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(log, "==> vieter: fetch\n==> vieter: makepkg\n");
    let follow = http
        .get(format!("{}/api/v1/jobs/{job_id}/log?follow=true", s.url))
        .header("X-Api-Key", KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(follow, log, "following a finished job's log ends");
    let followed = tokio::time::timeout(std::time::Duration::from_secs(30), following).await;
    assert_eq!(followed.expect("the follower's stream ends with the job").unwrap(), log);
    let (_, agents) = call(&http, reqwest::Method::GET, format!("{}/api/v1/agents", s.url), KEY, None).await;
    let ids: BTreeSet<&str> =
        agents["data"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, BTreeSet::from(["agent-a", "agent-b"]));
    // A makepkg failure is final: no retry.
    let (_, v) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/api/v1/jobs", s.url),
        KEY,
        Some(json!({"target": target})),
    )
    .await;
    let second = v["data"][0]["id"].as_u64().unwrap();
    assert_eq!(poll(&http, &s.url, "agent-a", 1, 0).await.len(), 1);
    let failed = json!({"agent_id": "agent-a", "outcome": {"state": "failed", "cause": {"step": "makepkg", "exit_code": 4, "http_status": null, "message": "build() failed"}}});
    let (status, v) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/api/v1/jobs/{second}/finish", s.url),
        AGENT_KEY,
        Some(failed),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["state"], "failed");
    assert_eq!(v["data"]["cause"]["exit_code"], 4);
    let (_, queued) =
        call(&http, reqwest::Method::GET, format!("{}/api/v1/jobs?state=queued", s.url), KEY, None).await;
    assert!(queued["data"].as_array().unwrap().is_empty(), "{queued}");
}

#[tokio::test]
async fn an_unrenewed_lease_is_lost_and_retried_elsewhere() {
    let s = server(&[("VIETER_LEASE_SECS", "1"), ("VIETER_RETRY_BACKOFF_SECS", "0")]);
    let http = reqwest::Client::new();
    let target = new_target(&http, &s.url, &["x86_64"]).await;
    let (_, v) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/api/v1/jobs", s.url),
        KEY,
        Some(json!({"target": target})),
    )
    .await;
    let first = v["data"][0]["id"].as_u64().unwrap();
    assert_eq!(poll(&http, &s.url, "vanishing", 1, 0).await.len(), 1);
    // No heartbeat: the lease ends, the job is lost and its retry goes to another agent.
    let retried = poll(&http, &s.url, "survivor", 1, 10).await;
    assert_eq!(retried.len(), 1, "the retry is handed out within the wait");
    assert_eq!(retried[0]["job"]["attempt"], 2);
    assert_eq!(retried[0]["job"]["retry_of"], first);
    let (_, v) = call(&http, reqwest::Method::GET, format!("{}/api/v1/jobs/{first}", s.url), KEY, None).await;
    assert_eq!(v["data"]["state"], "lost");
    assert_eq!(v["data"]["agent"], "vanishing");
}

#[tokio::test]
async fn a_restart_keeps_queued_and_running_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let http = reqwest::Client::new();
    let env = [("VIETER_AGENT_KEY", AGENT_KEY)];
    let (running, queued) = {
        let s = Server::start_on(&data, &env);
        let target = new_target(&http, &s.url, &["x86_64"]).await;
        let other = new_target(&http, &s.url, &["x86_64"]).await;
        let (_, a) = call(
            &http,
            reqwest::Method::POST,
            format!("{}/api/v1/jobs", s.url),
            KEY,
            Some(json!({"target": target})),
        )
        .await;
        let (_, b) = call(
            &http,
            reqwest::Method::POST,
            format!("{}/api/v1/jobs", s.url),
            KEY,
            Some(json!({"target": other})),
        )
        .await;
        assert_eq!(poll(&http, &s.url, "agent-a", 1, 0).await.len(), 1);
        (a["data"][0]["id"].as_u64().unwrap(), b["data"][0]["id"].as_u64().unwrap())
    };
    let s = Server::start_on(&data, &env);
    let (_, v) =
        call(&http, reqwest::Method::GET, format!("{}/api/v1/jobs/{running}", s.url), KEY, None).await;
    assert_eq!(v["data"]["state"], "running");
    assert_eq!(v["data"]["agent"], "agent-a");
    let (status, _) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/api/v1/jobs/{running}/heartbeat", s.url),
        AGENT_KEY,
        Some(json!({"agent_id": "agent-a"})),
    )
    .await;
    assert_eq!(status, 200, "the lease survived the restart");
    let leased = poll(&http, &s.url, "agent-b", 5, 0).await;
    let ids: Vec<u64> = leased.iter().map(|l| l["job"]["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [queued]);
}

#[tokio::test]
async fn twenty_pollers_share_a_thousand_jobs_exactly_once() {
    let s = server(&[]);
    let http = reqwest::Client::new();
    let target = new_target(&http, &s.url, &["x86_64"]).await;
    for _ in 0..1000 {
        let (status, _) = call(
            &http,
            reqwest::Method::POST,
            format!("{}/api/v1/jobs", s.url),
            KEY,
            Some(json!({"target": target, "force": true})),
        )
        .await;
        assert_eq!(status, 200);
    }
    let mut tasks = Vec::new();
    for p in 0..20 {
        let (http, url) = (http.clone(), s.url.clone());
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = poll(&http, &url, &format!("poller-{p}"), 7, 0).await;
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.iter().map(|l| l["job"]["id"].as_u64().unwrap()));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(all.len(), 1000, "every job handed out");
    assert_eq!(unique.len(), 1000, "no job handed out twice");
}

#[tokio::test]
async fn long_poll_answers_soon_after_a_job_is_queued() {
    let s = server(&[]);
    let http = reqwest::Client::new();
    let target = new_target(&http, &s.url, &["x86_64"]).await;
    let (h, u) = (http.clone(), s.url.clone());
    let waiting = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let jobs = poll(&h, &u, "waiter", 1, 20).await;
        (jobs.len(), started.elapsed())
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (status, _) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/api/v1/jobs", s.url),
        KEY,
        Some(json!({"target": target})),
    )
    .await;
    assert_eq!(status, 200);
    let (count, elapsed) = waiting.await.unwrap();
    assert_eq!(count, 1);
    assert!(
        elapsed < std::time::Duration::from_secs(10),
        "answered after {elapsed:?}, not at the end of the wait"
    );
}

#[tokio::test]
async fn the_shared_client_speaks_the_protocol() {
    use libvieter::api::{PollRequest, QueueRequest};
    use libvieter::job::{AgentId, JobState, Outcome};
    use libvieter::name::Arch;
    use libvieter::target::NewTarget;
    use vieter_client::{Client, ClientError, JobAction};

    let s = server(&[]);
    let admin = Client::new(&s.url, Some(KEY.to_owned())).unwrap();
    let agent_client = Client::new(&s.url, Some(AGENT_KEY.to_owned())).unwrap();
    let target = admin
        .create_target(&NewTarget {
            kind: "git".into(),
            url: "https://example.org/c.git".into(),
            repo: "r".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let jobs = admin.queue(&QueueRequest { target: target.id, arch: None, force: false }).await.unwrap();
    assert_eq!(jobs.len(), 1);
    let agent = AgentId::new("client-agent").unwrap();
    let poll =
        PollRequest { agent_id: agent.clone(), arch: Arch::new("x86_64").unwrap(), capacity: 1, wait: None };
    let leased = agent_client.poll(&poll).await.unwrap();
    assert_eq!(leased[0].job.id(), jobs[0].id());
    agent_client.heartbeat(jobs[0].id(), &agent).await.unwrap();
    agent_client.append_log(jobs[0].id(), &agent, b"hello\n".to_vec()).await.unwrap();
    let done = agent_client.finish(jobs[0].id(), &agent, Outcome::TimedOut).await.unwrap();
    assert_eq!(done.state(), JobState::TimedOut);
    let log = admin.log(jobs[0].id(), false).await.unwrap().text().await.unwrap();
    assert_eq!(log, "hello\n");
    let retry = admin.job_action(jobs[0].id(), JobAction::Retry).await.unwrap();
    let cancelled = admin.job_action(retry.id(), JobAction::Cancel).await.unwrap();
    assert_eq!(cancelled.state(), JobState::Cancelled);
    assert_eq!(admin.agents().await.unwrap()[0].id, agent);
    // The agent key is refused for admin calls, with the server's message.
    match agent_client.targets(&Default::default()).await {
        Err(ClientError::Http { status: 403, message }) => assert!(message.contains("may not"), "{message}"),
        other => panic!("{other:?}"),
    }
    match admin.job(libvieter::job::JobId(999)).await {
        Err(ClientError::NotFound { message }) => assert!(message.contains("999")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn logs_older_than_max_log_age_are_removed_and_their_jobs_kept() {
    use libvieter::api::{PollRequest, QueueRequest};
    use libvieter::job::{AgentId, JobState, Outcome};
    use libvieter::name::Arch;
    use libvieter::target::NewTarget;
    use vieter_client::Client;

    // A one-second lease makes the server tick (and look at old logs) at least every second.
    let s = server(&[("VIETER_MAX_LOG_AGE", "7"), ("VIETER_LEASE_SECS", "1")]);
    let admin = Client::new(&s.url, Some(KEY.to_owned())).unwrap();
    let agent_client = Client::new(&s.url, Some(AGENT_KEY.to_owned())).unwrap();
    let agent = AgentId::new("retention").unwrap();
    let mut ids = Vec::new();
    for name in ["old", "recent"] {
        let target = admin
            .create_target(&NewTarget {
                kind: "git".into(),
                url: format!("https://example.org/{name}.git"),
                repo: "r".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let job = admin.queue(&QueueRequest { target: target.id, arch: None, force: false }).await.unwrap();
        let poll = PollRequest {
            agent_id: agent.clone(),
            arch: Arch::new("x86_64").unwrap(),
            capacity: 1,
            wait: None,
        };
        assert_eq!(agent_client.poll(&poll).await.unwrap()[0].job.id(), job[0].id());
        agent_client.append_log(job[0].id(), &agent, format!("{name} log\n").into_bytes()).await.unwrap();
        agent_client.finish(job[0].id(), &agent, Outcome::TimedOut).await.unwrap();
        ids.push(job[0].id());
    }
    let file = |id: libvieter::job::JobId| s.data.join("logs").join(format!("{}.log", id.0));
    assert!(file(ids[0]).exists() && file(ids[1]).exists(), "logs are files in the data dir");
    // Eight days old, past the seven kept; the other log is eight days younger.
    let eight_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(8 * 86_400);
    std::fs::File::options().write(true).open(file(ids[0])).unwrap().set_modified(eight_days_ago).unwrap();

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while file(ids[0]).exists() {
        assert!(std::time::Instant::now() < deadline, "the old log was not removed");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let old = admin.job(ids[0]).await.expect("the job record is kept");
    assert_eq!(old.state(), JobState::TimedOut);
    assert_eq!(admin.log(ids[0], false).await.unwrap().text().await.unwrap(), "");
    assert_eq!(admin.log(ids[1], false).await.unwrap().text().await.unwrap(), "recent log\n");
}

#[tokio::test]
async fn a_target_with_needs_queues_its_graph_and_waits() {
    let s = server(&[]);
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for (name, needs) in [("lib", vec![]), ("mid", vec![0]), ("app", vec![1])] {
        let needs: Vec<u64> = needs.iter().map(|&i: &usize| ids[i]).collect();
        let body = json!({"kind": "git", "url": format!("https://example.org/{name}.git"), "repo": "r", "needs": needs});
        let (status, v) =
            call(&http, reqwest::Method::POST, format!("{}/api/v1/targets", s.url), KEY, Some(body)).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["data"]["needs"], json!(needs), "{v}");
        ids.push(v["data"]["id"].as_u64().unwrap());
    }
    let (lib, mid, app) = (ids[0], ids[1], ids[2]);
    let (status, v) =
        call(&http, reqwest::Method::GET, format!("{}/api/v1/targets/{app}/deps", s.url), KEY, None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["needs"][0]["needs"][0]["target"]["id"], lib, "{v}");
    let (status, v) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/api/v1/jobs", s.url),
        KEY,
        Some(json!({"target": app})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"][0]["state"], "waiting", "{v}");
    let (_, waiting) =
        call(&http, reqwest::Method::GET, format!("{}/api/v1/jobs?state=waiting", s.url), KEY, None).await;
    let waiting: BTreeSet<u64> =
        waiting["data"].as_array().unwrap().iter().map(|j| j["target"].as_u64().unwrap()).collect();
    assert_eq!(waiting, BTreeSet::from([mid, app]));
    let (_, queued) =
        call(&http, reqwest::Method::GET, format!("{}/api/v1/jobs?state=queued", s.url), KEY, None).await;
    let queued = queued["data"].as_array().unwrap().clone();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0]["target"], lib);
    // The bottom is leased and succeeds: the middle is queued, the top still waits for it.
    let leased = poll(&http, &s.url, "graph-agent", 4, 0).await;
    assert_eq!(leased.len(), 1);
    let job = leased[0]["job"]["id"].as_u64().unwrap();
    let body = json!({"agent_id": "graph-agent", "outcome": {"state": "succeeded", "versions": []}});
    let (status, v) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/api/v1/jobs/{job}/finish", s.url),
        AGENT_KEY,
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (_, waiting) =
        call(&http, reqwest::Method::GET, format!("{}/api/v1/jobs?state=waiting", s.url), KEY, None).await;
    let waiting = waiting["data"].as_array().unwrap().clone();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0]["target"], app);
    // A target a user target needs is not removed.
    let (status, v) =
        call(&http, reqwest::Method::DELETE, format!("{}/api/v1/targets/{lib}", s.url), KEY, None).await;
    assert_eq!(status, 409, "{v}");
    assert!(v["message"].as_str().unwrap().contains(&format!("needed by target {mid}")), "{v}");
}
