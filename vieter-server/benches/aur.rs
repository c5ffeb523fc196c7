//! Resolving a 300-package AUR closure through the release server against the local AUR of the test
//! support, measured (not asserted): `cargo bench -p vieter-server --bench aur`.
//!
//! The closure: `root` needs 19 packages, which need 80, which need 200 (the next level split among
//! the packages of a level, each also needing its neighbour's share); the last level needs `glibc`,
//! which is in the target repository. Each resolution is one `POST /api/v1/aur/resolve`; the AUR answers on loopback.
//! Prints the wall time of each run and the RPC requests each needed. Figures go to BENCHMARKS.md.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::aur::{record, with, LocalAur};
use common::{call, Server, KEY};
use serde_json::{json, Value};

fn level(n: usize, of: usize) -> Vec<String> {
    (0..of).map(|i| format!("l{n}-{i}")).collect()
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let runs: usize =
        std::env::var("RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(if full { 10 } else { 1 });
    let levels = [vec!["root".to_owned()], level(1, 19), level(2, 80), level(3, 200)];
    let mut records: Vec<Value> = Vec::new();
    for (n, names) in levels.iter().enumerate() {
        for (i, name) in names.iter().enumerate() {
            let depends: Vec<String> = match levels.get(n + 1) {
                // The next level split among this one (every package is reached), plus a neighbour's
                // share (a DAG, not a tree).
                Some(next) => next
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| j % names.len() == i || j % names.len() == (i + 1) % names.len())
                    .map(|(_, d)| d.clone())
                    .collect(),
                None => vec!["glibc".to_owned()],
            };
            records.push(with(record(name, "1.0-1"), json!({ "Depends": depends })));
        }
    }
    let aur = LocalAur::start(records, None).await;
    let server = Server::start(&[("VIETER_AUR_RPC_URL", &aur.rpc())]);
    let http = reqwest::Client::new();
    let glibc = common::package("glibc", "2.40-1", "x86_64", &[]);
    assert_eq!(common::publish(&http, &server.url, "bench", glibc).await.status(), 200);
    let mut times = Vec::new();
    for run in 0..runs {
        let before = aur.requests().len();
        let started = Instant::now();
        let (status, body) = call(
            &http,
            reqwest::Method::POST,
            format!("{}/api/v1/aur/resolve", server.url),
            KEY,
            Some(json!({"names": ["root"], "repo": "bench"})),
        )
        .await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(status, 200, "{body}");
        let bases = body["data"]["bases"].as_array().map_or(0, Vec::len);
        let requests = aur.requests().len() - before;
        println!("run {}: {bases} bases resolved in {ms:.1} ms with {requests} RPC requests", run + 1);
        times.push(ms);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "resolve a 300-package closure: median {:.1} ms, min {:.1} ms, max {:.1} ms over {runs} runs",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
}
