//! The build API against semi-trusted agents (anyone holding an agent key), on the real server binary:
//! bounded logs streamed in chunks, agent ids bound to their key, capped leases, forgotten idle agents,
//! and clear answers about finished jobs.

mod common;

use common::*;
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const AGENT_KEY: &str = "hardening-agent-key";

/// Creates a target and queues `count` builds of it; returns the job ids.
async fn queue_jobs(http: &reqwest::Client, url: &str, count: usize) -> Vec<u64> {
    let body = json!({"kind": "git", "url": "https://example.org/pkg.git", "repo": "r", "arch": ["x86_64"]});
    let (status, v) = call(http, Method::POST, format!("{url}/api/v1/targets"), KEY, Some(body)).await;
    assert_eq!(status, 200, "{v}");
    let target = v["data"]["id"].as_u64().unwrap();
    let mut ids = Vec::new();
    for _ in 0..count {
        let (status, v) = call(
            http,
            Method::POST,
            format!("{url}/api/v1/jobs"),
            KEY,
            Some(json!({"target": target, "force": true})),
        )
        .await;
        assert_eq!(status, 200, "{v}");
        ids.push(v["data"][0]["id"].as_u64().unwrap());
    }
    ids
}

async fn poll_as(http: &reqwest::Client, url: &str, key: &str, agent: &str, capacity: u64) -> (u16, Value) {
    let body = json!({"agent_id": agent, "arch": "x86_64", "capacity": capacity});
    call(http, Method::POST, format!("{url}/api/v1/jobs/poll"), key, Some(body)).await
}

/// Polls as `agent` with the agent key and returns the leased job ids.
async fn lease(http: &reqwest::Client, url: &str, agent: &str, capacity: u64) -> Vec<u64> {
    let (status, v) = poll_as(http, url, AGENT_KEY, agent, capacity).await;
    assert_eq!(status, 200, "{v}");
    v["data"].as_array().unwrap().iter().map(|l| l["job"]["id"].as_u64().unwrap()).collect()
}

async fn append(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    job: u64,
    agent: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let r = http
        .post(format!("{url}/api/v1/jobs/{job}/log?agent_id={agent}"))
        .header("X-Api-Key", key)
        .body(body)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn heartbeat(http: &reqwest::Client, url: &str, key: &str, job: u64, agent: &str) -> (u16, Value) {
    let body = json!({"agent_id": agent});
    call(http, Method::POST, format!("{url}/api/v1/jobs/{job}/heartbeat"), key, Some(body)).await
}

async fn finish(http: &reqwest::Client, url: &str, key: &str, job: u64, agent: &str) -> (u16, Value) {
    let body = json!({"agent_id": agent, "outcome": {"state": "succeeded", "versions": []}});
    call(http, Method::POST, format!("{url}/api/v1/jobs/{job}/finish"), key, Some(body)).await
}

async fn job(http: &reqwest::Client, url: &str, id: u64) -> Value {
    let (status, v) = call(http, Method::GET, format!("{url}/api/v1/jobs/{id}"), KEY, None).await;
    assert_eq!(status, 200, "{v}");
    v["data"].clone()
}

async fn agents(http: &reqwest::Client, url: &str) -> Vec<Value> {
    let (status, v) = call(http, Method::GET, format!("{url}/api/v1/agents"), KEY, None).await;
    assert_eq!(status, 200, "{v}");
    v["data"].as_array().unwrap().clone()
}

fn agent_ids(list: &[Value]) -> Vec<String> {
    list.iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect()
}

fn marker(max: u64) -> String {
    format!("\n[vieter: log truncated at {max} bytes (max_log_size)]\n")
}

#[tokio::test]
async fn a_log_past_max_log_size_ends_with_the_marker_and_the_build_goes_on() {
    let s = Server::start(&[("VIETER_AGENT_KEY", AGENT_KEY), ("VIETER_MAX_LOG_SIZE", "1000")]);
    let http = reqwest::Client::new();
    let id = queue_jobs(&http, &s.url, 1).await[0];
    assert_eq!(lease(&http, &s.url, "chatty", 1).await, [id]);
    assert_eq!(job(&http, &s.url, id).await["log_truncated"], false);
    let mut sent = Vec::new();
    // A build printing forever: every append is accepted, the disk file stops growing at the limit.
    for (i, fill) in [b'a', b'b', b'c', b'd', b'e'].into_iter().enumerate() {
        let chunk = vec![fill; 600];
        sent.extend_from_slice(&chunk);
        let (status, v) = append(&http, &s.url, AGENT_KEY, id, "chatty", chunk).await;
        assert_eq!(status, 200, "append {i}: {v}");
    }
    let expected = [&sent[..1000], marker(1000).as_bytes()].concat();
    let file = s.data.join("logs").join(format!("{id}.log"));
    let on_disk = std::fs::read(&file).unwrap();
    assert_eq!(on_disk.len(), 1000 + marker(1000).len(), "the file stays at the limit plus the marker");
    assert_eq!(on_disk, expected);
    assert!(String::from_utf8_lossy(&on_disk).ends_with(&marker(1000)));
    assert_eq!(job(&http, &s.url, id).await["log_truncated"], true, "the job record tells");
    // The build goes on: renewed and reported as usual.
    assert_eq!(heartbeat(&http, &s.url, AGENT_KEY, id, "chatty").await.0, 200);
    let (status, v) = finish(&http, &s.url, AGENT_KEY, id, "chatty").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["log_truncated"], true);
    // Served as stored, whole and followed, with its length.
    let r =
        http.get(format!("{}/api/v1/jobs/{id}/log", s.url)).header("X-Api-Key", KEY).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(r.content_length(), Some(expected.len() as u64));
    assert_eq!(r.bytes().await.unwrap(), expected);
    let r = http
        .get(format!("{}/api/v1/jobs/{id}/log?follow=true", s.url))
        .header("X-Api-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap(), expected);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), expected.len() as u64);
}

/// The peak resident memory of a process (Linux), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmHWM value");
    kib * 1024
}

#[tokio::test]
async fn parallel_reads_of_a_big_log_are_streamed_not_loaded() {
    const SIZE: usize = 96 << 20;
    let s = Server::start(&[("VIETER_AGENT_KEY", AGENT_KEY)]);
    let http = reqwest::Client::new();
    let id = queue_jobs(&http, &s.url, 1).await[0];
    assert_eq!(lease(&http, &s.url, "big", 1).await, [id]);
    assert_eq!(append(&http, &s.url, AGENT_KEY, id, "big", b"start\n".to_vec()).await.0, 200);
    // A big log (written straight to the file: sending 96 MiB through the API adds nothing here).
    let file = s.data.join("logs").join(format!("{id}.log"));
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&file).unwrap();
        let line: Vec<u8> = (0..1024u32).map(|i| b"0123456789abcdef\n"[(i % 17) as usize]).collect();
        let mut written = 6;
        while written < SIZE {
            f.write_all(&line).unwrap();
            written += line.len();
        }
    }
    let expected = {
        let bytes = std::fs::read(&file).unwrap();
        (bytes.len() as u64, hex::encode(Sha256::digest(&bytes)))
    };
    assert_eq!(finish(&http, &s.url, AGENT_KEY, id, "big").await.0, 200);
    let before = peak_rss(s.child.id());

    let mut readers = Vec::new();
    for i in 0..6 {
        let (http, url) = (http.clone(), s.url.clone());
        readers.push(tokio::spawn(async move {
            let follow = if i == 0 { "?follow=true" } else { "" };
            let r =
                http.get(format!("{url}/api/v1/jobs/{id}/log{follow}")).header("X-Api-Key", KEY).send().await;
            let r = r.expect("request");
            assert_eq!(r.status(), 200);
            let announced = r.content_length();
            let mut hash = Sha256::new();
            let mut len = 0u64;
            let mut body = r.bytes_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.expect("body chunk");
                len += chunk.len() as u64;
                hash.update(&chunk);
            }
            (i, announced, len, hex::encode(hash.finalize()))
        }));
    }
    for reader in readers {
        let (i, announced, len, hash) = reader.await.unwrap();
        assert_eq!((len, &hash), (expected.0, &expected.1), "reader {i}");
        if i != 0 {
            assert_eq!(announced, Some(expected.0), "reader {i}: Content-Length");
        }
    }
    let peak = peak_rss(s.child.id());
    eprintln!("server peak memory: {} MiB before the reads, {} MiB after", before >> 20, peak >> 20);
    // Loading the log whole would take 6 x 96 MiB; streamed, each reader holds a chunk or two.
    assert!(
        peak < before + (SIZE as u64),
        "the server's peak memory grew from {} MiB to {} MiB while serving six reads of a {} MiB log",
        before >> 20,
        peak >> 20,
        SIZE >> 20
    );
}

#[tokio::test]
async fn an_agent_id_is_bound_to_the_key_it_first_used() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Two agent keys (one per line), one per agent, besides the admin key.
    let keys = "key-one\nkey-two";
    let http = reqwest::Client::new();
    let (id, lease_before) = {
        let s = Server::start_on(&data, &[("VIETER_AGENT_KEY", keys)]);
        let id = queue_jobs(&http, &s.url, 1).await[0];
        let (status, v) = poll_as(&http, &s.url, "key-one", "builder", 1).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["data"][0]["job"]["id"], id);
        let before = job(&http, &s.url, id).await;
        let agents_before = agents(&http, &s.url).await;

        // Another accepted key (the other agent's, or the admin's) cannot speak for "builder".
        for key in ["key-two", KEY] {
            let (status, v) = poll_as(&http, &s.url, key, "builder", 50).await;
            assert_eq!(status, 403, "{key}: {v}");
            assert!(v["message"].as_str().unwrap().contains("bound to another key"), "{v}");
            assert_eq!(heartbeat(&http, &s.url, key, id, "builder").await.0, 403, "{key}");
            assert_eq!(append(&http, &s.url, key, id, "builder", b"forged\n".to_vec()).await.0, 403, "{key}");
            let (status, v) = finish(&http, &s.url, key, id, "builder").await;
            assert_eq!(status, 403, "{key}: {v}");
        }
        // Nothing changed: the job, its lease, its log, the agent's record.
        assert_eq!(job(&http, &s.url, id).await, before);
        assert!(!s.data.join("logs").join(format!("{id}.log")).exists(), "no forged log line");
        assert_eq!(agents(&http, &s.url).await, agents_before, "capacity and last contact unchanged");
        // A new id is free for the other key.
        assert_eq!(poll_as(&http, &s.url, "key-two", "second", 1).await.0, 200);
        // The holder's own key goes on.
        assert_eq!(heartbeat(&http, &s.url, "key-one", id, "builder").await.0, 200);
        (id, before["lease_expires_at"].clone())
    };
    assert!(lease_before.is_string());
    // The binding survives a restart.
    {
        let s = Server::start_on(&data, &[("VIETER_AGENT_KEY", keys)]);
        assert_eq!(poll_as(&http, &s.url, "key-two", "builder", 1).await.0, 403);
        assert_eq!(heartbeat(&http, &s.url, "key-two", id, "builder").await.0, 403);
        assert_eq!(heartbeat(&http, &s.url, "key-one", id, "builder").await.0, 200);
    }
    // Keys rotated: a binding to a key the server no longer accepts is taken over by the next poll, and
    // then protects the id against the others again.
    let s = Server::start_on(&data, &[("VIETER_AGENT_KEY", "key-three")]);
    assert_eq!(poll_as(&http, &s.url, "key-one", "builder", 1).await.0, 401, "the old key is refused");
    assert_eq!(poll_as(&http, &s.url, "key-three", "builder", 1).await.0, 200);
    assert_eq!(heartbeat(&http, &s.url, "key-three", id, "builder").await.0, 200);
    assert_eq!(poll_as(&http, &s.url, KEY, "builder", 1).await.0, 403);
    assert_eq!(finish(&http, &s.url, "key-three", id, "builder").await.0, 200);
}

#[tokio::test]
async fn a_huge_capacity_leases_at_most_max_agent_capacity() {
    let s = Server::start(&[("VIETER_AGENT_KEY", AGENT_KEY), ("VIETER_MAX_AGENT_CAPACITY", "3")]);
    let http = reqwest::Client::new();
    let ids = queue_jobs(&http, &s.url, 10).await;
    let first = lease(&http, &s.url, "greedy", 1_000_000).await;
    assert_eq!(first, ids[..3]);
    // Polling again without finishing anything leases nothing more: the cap is on what an agent holds.
    assert!(lease(&http, &s.url, "greedy", 1_000_000).await.is_empty());
    let listed = agents(&http, &s.url).await;
    assert_eq!(listed[0]["capacity"], 3, "{listed:?}");
    assert_eq!(listed[0]["running"], json!(ids[..3]));
    assert_eq!(lease(&http, &s.url, "other", 2).await, ids[3..5]);
    // A finished job frees a slot.
    assert_eq!(finish(&http, &s.url, AGENT_KEY, ids[0], "greedy").await.0, 200);
    assert_eq!(lease(&http, &s.url, "greedy", 1_000_000).await, ids[5..6]);
    let (_, queued) =
        call(&http, Method::GET, format!("{}/api/v1/jobs?state=queued", s.url), KEY, None).await;
    assert_eq!(queued["data"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn idle_agents_are_forgotten_and_agents_holding_a_job_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("VIETER_AGENT_KEY", AGENT_KEY), ("VIETER_AGENT_EXPIRY_SECS", "2")];
    let http = reqwest::Client::new();
    let id = {
        let s = Server::start_on(&data, &env);
        let id = queue_jobs(&http, &s.url, 1).await[0];
        assert_eq!(lease(&http, &s.url, "busy", 1).await, [id]);
        let started = std::time::Instant::now();
        assert!(lease(&http, &s.url, "ghost", 1).await.is_empty());
        assert_eq!(agent_ids(&agents(&http, &s.url).await), ["busy", "ghost"]);
        // The tick forgets "ghost" (no job, no contact for 2 s); "busy" is as idle but holds a job.
        let deadline = started + std::time::Duration::from_secs(20);
        loop {
            let ids = agent_ids(&agents(&http, &s.url).await);
            if ids == ["busy"] {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "ghost was not forgotten: {ids:?}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert!(started.elapsed() >= std::time::Duration::from_secs(2), "not before its expiry");
        id
    };
    // Gone from the database too; the agent holding a job survives the restart and its idle time.
    let s = Server::start_on(&data, &env);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(agent_ids(&agents(&http, &s.url).await), ["busy"]);
    // Once its job is done, it expires too.
    assert_eq!(finish(&http, &s.url, AGENT_KEY, id, "busy").await.0, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !agents(&http, &s.url).await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "busy was not forgotten after its job ended");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // A forgotten id is free again (for any accepted key).
    assert_eq!(poll_as(&http, &s.url, KEY, "ghost", 1).await.0, 200);
}

#[tokio::test]
async fn actions_on_a_finished_job_say_it_is_finished_and_unknown_ids_are_404() {
    let s = Server::start(&[("VIETER_AGENT_KEY", AGENT_KEY)]);
    let http = reqwest::Client::new();
    let ids = queue_jobs(&http, &s.url, 2).await;
    let (done, queued) = (ids[0], ids[1]);
    assert_eq!(lease(&http, &s.url, "a", 1).await, [done]);
    assert_eq!(finish(&http, &s.url, AGENT_KEY, done, "a").await.0, 200);
    let already = format!("job {done} is already succeeded");
    let (status, v) = heartbeat(&http, &s.url, AGENT_KEY, done, "a").await;
    assert_eq!((status, v["message"].as_str()), (409, Some(already.as_str())), "heartbeat: {v}");
    let (status, v) =
        call(&http, Method::POST, format!("{}/api/v1/jobs/{done}/cancel", s.url), KEY, None).await;
    assert_eq!((status, v["message"].as_str()), (409, Some(already.as_str())), "cancel: {v}");
    let (status, v) = finish(&http, &s.url, AGENT_KEY, done, "a").await;
    assert_eq!((status, v["message"].as_str()), (409, Some(already.as_str())), "finish: {v}");
    let (status, v) = append(&http, &s.url, AGENT_KEY, done, "a", b"late\n".to_vec()).await;
    assert_eq!((status, v["message"].as_str()), (409, Some(already.as_str())), "log: {v}");
    // A cancelled job says so.
    let (status, _) =
        call(&http, Method::POST, format!("{}/api/v1/jobs/{queued}/cancel", s.url), KEY, None).await;
    assert_eq!(status, 200);
    let (status, v) =
        call(&http, Method::POST, format!("{}/api/v1/jobs/{queued}/cancel", s.url), KEY, None).await;
    assert_eq!(status, 409);
    assert_eq!(v["message"], format!("job {queued} is already cancelled"));
    // An id that never existed is 404 everywhere.
    let (status, v) = heartbeat(&http, &s.url, AGENT_KEY, 999, "a").await;
    assert_eq!((status, v["message"].as_str()), (404, Some("job 999 not found")), "{v}");
    let (status, _) = call(&http, Method::POST, format!("{}/api/v1/jobs/999/cancel", s.url), KEY, None).await;
    assert_eq!(status, 404);
    assert_eq!(finish(&http, &s.url, AGENT_KEY, 999, "a").await.0, 404);
    assert_eq!(append(&http, &s.url, AGENT_KEY, 999, "a", b"x".to_vec()).await.0, 404);
}
