//! Vieter 0.6's routes, checked against what Vieter's own source (tag 0.6.0) says: `models/logs.v`
//! (`BuildLog { id, target_id, start_time, end_time, arch, exit_code }`, times as V's JSON writes a
//! `time.Time`: Unix seconds), `models/logs.v`'s `BuildLogFilter` (`limit` 25, `offset`, `target`,
//! `before`, `after`, `arch`, `exit_codes` with `!`), `web/response/response.v` (`{message, data}`),
//! `server/api_jobs.v` (`POST /api/v1/jobs/queue?target=&arch=&force`) and `client/jobs.v` (Vieter's
//! CLI sends `force=true` or `force=false`). Vieter's routes all need the API key.

mod common;

use common::*;
use serde_json::{json, Value};

const AGENT_KEY: &str = "test-agent-key";

/// Vieter's envelope with its data.
fn data(v: &Value) -> &Value {
    let o = v.as_object().expect("an object");
    assert_eq!(o.len(), 2, "only message and data: {v}");
    assert!(o["message"].is_string(), "{v}");
    &o["data"]
}

/// The fields and JSON types of Vieter's `BuildLog`, nothing else.
fn check_build_log(log: &Value) {
    let o = log.as_object().unwrap();
    let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["arch", "end_time", "exit_code", "id", "start_time", "target_id"], "{log}");
    for int in ["id", "target_id", "start_time", "end_time", "exit_code"] {
        assert!(o[int].is_i64(), "{int} is an integer: {log}");
    }
    assert!(o["arch"].is_string());
    assert!(o["end_time"].as_i64() >= o["start_time"].as_i64());
}

#[tokio::test]
async fn vieter_06_queue_and_log_routes() {
    let s = Server::start(&[("VIETER_AGENT_KEY", AGENT_KEY)]);
    let http = reqwest::Client::new();
    let url = &s.url;
    use reqwest::Method as M;
    let body = json!({"kind": "git", "url": "https://example.org/pkg.git", "repo": "r", "arch": ["x86_64", "aarch64"]});
    let (st, v) = call(&http, M::POST, format!("{url}/api/v1/targets"), KEY, Some(body)).await;
    assert_eq!(st, 200, "{v}");
    let target = v["data"]["id"].as_u64().unwrap();

    // Vieter's route needs the key, and target.
    let (st, _) =
        call(&http, M::POST, format!("{url}/api/v1/jobs/queue?target={target}&arch=x86_64"), "wrong", None)
            .await;
    assert_eq!(st, 401);
    let (st, v) = call(&http, M::POST, format!("{url}/api/v1/jobs/queue?arch=x86_64"), KEY, None).await;
    assert_eq!(st, 400, "{v}");
    assert!(data(&v).is_null() && v["message"].as_str().unwrap().contains("target"), "{v}");
    let (st, v) =
        call(&http, M::POST, format!("{url}/api/v1/jobs/queue?target=999&arch=x86_64"), KEY, None).await;
    assert_eq!(st, 404, "{v}");

    // What Vieter's CLI sends: force=false does not force (Vieter 0.6 forced whenever force was present).
    let (st, v) = call(
        &http,
        M::POST,
        format!("{url}/api/v1/jobs/queue?target={target}&arch=x86_64&force=false"),
        KEY,
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let jobs = data(&v).as_array().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0]["arch"].as_str(), jobs[0]["force"].as_bool()), (Some("x86_64"), Some(false)));
    assert_eq!(jobs[0]["trigger"], "manual", "a manual job, as POST /api/v1/jobs queues");
    let first = jobs[0]["id"].as_u64().unwrap();
    // `force` with no value (Vieter's documented form), another arch: a second job.
    let (st, v) = call(
        &http,
        M::POST,
        format!("{url}/api/v1/jobs/queue?target={target}&arch=aarch64&force"),
        KEY,
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let second = &data(&v)[0];
    assert_eq!((second["arch"].as_str(), second["force"].as_bool()), (Some("aarch64"), Some(true)));
    let second = second["id"].as_u64().unwrap();

    // No log before a job has run.
    let (st, v) = call(&http, M::GET, format!("{url}/api/v1/logs"), KEY, None).await;
    assert_eq!((st, data(&v).clone()), (200, json!([])));
    let (st, v) = call(&http, M::GET, format!("{url}/api/v1/logs/{first}"), KEY, None).await;
    assert_eq!(st, 404, "{v}");

    // Run both: the x86_64 one fails in makepkg with exit code 4, the aarch64 one succeeds.
    for (arch, id, outcome) in [
        (
            "x86_64",
            first,
            json!({"state": "failed", "cause": {"step": "makepkg", "exit_code": 4, "http_status": null, "message": "build() failed"}}),
        ),
        ("aarch64", second, json!({"state": "succeeded", "versions": []})),
    ] {
        let poll = json!({"agent_id": format!("agent-{arch}"), "arch": arch, "capacity": 1});
        let (st, v) = call(&http, M::POST, format!("{url}/api/v1/jobs/poll"), AGENT_KEY, Some(poll)).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["data"][0]["job"]["id"].as_u64(), Some(id));
        let r = http
            .post(format!("{url}/api/v1/jobs/{id}/log?agent_id=agent-{arch}"))
            .header("X-Api-Key", AGENT_KEY)
            .body(format!("building on {arch}\n"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let finish = json!({"agent_id": format!("agent-{arch}"), "outcome": outcome});
        let (st, v) =
            call(&http, M::POST, format!("{url}/api/v1/jobs/{id}/finish"), AGENT_KEY, Some(finish)).await;
        assert_eq!(st, 200, "{v}");
    }
    // A third, still queued: no log.
    let (st, v) =
        call(&http, M::POST, format!("{url}/api/v1/jobs/queue?target={target}&arch=x86_64"), KEY, None).await;
    assert_eq!(st, 200);
    let third = data(&v)[0]["id"].as_u64().unwrap();

    let list = |q: &'static str| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let (st, v) = call(&http, M::GET, format!("{url}/api/v1/logs{q}"), KEY, None).await;
            assert_eq!(st, 200, "{q}: {v}");
            let logs = data(&v).as_array().unwrap().clone();
            logs.iter().for_each(check_build_log);
            logs.iter().map(|l| l["id"].as_u64().unwrap()).collect::<Vec<_>>()
        }
    };
    assert_eq!(list("").await, [first, second], "finished jobs, in id order");
    assert_eq!(list("?exit_codes=4").await, [first]);
    assert_eq!(list("?exit_codes=!0").await, [first]);
    assert_eq!(list("?exit_codes=!0,!4").await, Vec::<u64>::new());
    assert_eq!(list("?exit_codes=0,4").await, [first, second]);
    assert_eq!(list("?arch=aarch64").await, [second]);
    assert_eq!(list("?target=999").await, Vec::<u64>::new());
    assert_eq!(list("?limit=1&offset=1").await, [second]);
    assert_eq!(list("?limit=&arch=").await, [first, second], "an empty parameter is absent");
    assert_eq!(list("?after=0").await, [first, second]);
    assert_eq!(list("?before=1").await, Vec::<u64>::new());
    let (st, v) = call(&http, M::GET, format!("{url}/api/v1/logs?before=yesterday"), KEY, None).await;
    assert_eq!(st, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("before"));
    let (st, _) = call(&http, M::GET, format!("{url}/api/v1/logs"), "wrong", None).await;
    assert_eq!(st, 401);

    // One log: Vieter's fields, the job's values.
    let (st, v) = call(&http, M::GET, format!("{url}/api/v1/logs/{first}"), KEY, None).await;
    assert_eq!(st, 200, "{v}");
    let log = data(&v);
    check_build_log(log);
    assert_eq!(log["target_id"].as_u64(), Some(target));
    assert_eq!((log["arch"].as_str(), log["exit_code"].as_i64()), (Some("x86_64"), Some(4)));
    let (_, job) = call(&http, M::GET, format!("{url}/api/v1/jobs/{first}"), KEY, None).await;
    let started = chrono::DateTime::parse_from_rfc3339(job["data"]["started_at"].as_str().unwrap()).unwrap();
    assert_eq!(log["start_time"].as_i64(), Some(started.timestamp()));

    // Its content: the log text.
    let r =
        http.get(format!("{url}/api/v1/logs/{first}/content")).header("X-Api-Key", KEY).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "building on x86_64\n");
    let r = http.get(format!("{url}/api/v1/logs/999/content")).header("X-Api-Key", KEY).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // `DELETE /api/v1/logs/{id}` (`v1_delete_log`): the log goes, the job's record stays.
    let (st, _) = call(&http, M::DELETE, format!("{url}/api/v1/logs/{first}"), "wrong", None).await;
    assert_eq!(st, 401);
    let (st, v) = call(&http, M::DELETE, format!("{url}/api/v1/logs/{third}"), KEY, None).await;
    assert_eq!(st, 409, "a queued job's log is not deleted: {v}");
    assert!(v["message"].as_str().unwrap().contains("has not ended"), "{v}");
    let (st, v) = call(&http, M::DELETE, format!("{url}/api/v1/logs/{first}"), KEY, None).await;
    assert_eq!(st, 200, "{v}");
    let (st, _) = call(&http, M::GET, format!("{url}/api/v1/logs/{first}"), KEY, None).await;
    assert_eq!(st, 404, "a deleted log is gone");
    let r =
        http.get(format!("{url}/api/v1/logs/{first}/content")).header("X-Api-Key", KEY).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(list("").await, [second], "and no longer listed");
    let (st, v) = call(&http, M::DELETE, format!("{url}/api/v1/logs/{first}"), KEY, None).await;
    assert_eq!(st, 404, "deleted once: {v}");
    let (st, v) = call(&http, M::DELETE, format!("{url}/api/v1/logs/999"), KEY, None).await;
    assert_eq!(st, 404, "{v}");
    let (st, job) = call(&http, M::GET, format!("{url}/api/v1/jobs/{first}"), KEY, None).await;
    assert_eq!((st, job["data"]["state"].as_str()), (200, Some("failed")), "the job stays: {job}");
}
