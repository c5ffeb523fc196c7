//! The agent protocol under load, measured (not asserted): `cargo bench -p vieter-server --bench poll`.
//! 100 agents (`VIETER_BENCH_AGENTS`) poll the release server on loopback, each on its own connection:
//! - idle, paced: nothing is due; each agent polls every 20 ms (5,000 polls/s in all), a far higher rate than
//!   long-polling agents cause;
//! - idle, flat out: each agent polls again as soon as it has its answer (the server saturated);
//! - busy: 2,000 queued jobs; each agent leases one at a time (capacity 1) and reports it finished
//!   before polling again, so most polls lease and write to the database.
//!
//! Prints the poll round-trip percentiles of each phase. Figures go to BENCHMARKS.md.
//! `VIETER_BENCH_SERVER=path/to/vieter-server` measures that binary instead (an older build, for an A/B
//! run alternated with this one on the same machine).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Server, KEY};
use libvieter::api::{PollRequest, QueueRequest};
use libvieter::job::{AgentId, Outcome};
use libvieter::name::Arch;
use libvieter::target::NewTarget;
use vieter_client::Client;

const AGENT_KEY: &str = "bench-agent-key";

fn percentiles(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    format!(
        "{} polls: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        v.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    )
}

/// One agent: polls (and finishes what it leased) until `stop`, or with `drain` until a poll finds nothing;
/// returns the poll round trips in ms.
async fn agent(url: String, id: usize, stop: Instant, drain: bool, pace: Option<Duration>) -> Vec<f64> {
    let client = Client::new(&url, Some(AGENT_KEY.into())).expect("client");
    let me = AgentId::new(format!("bench-{id}")).expect("agent id");
    let poll = PollRequest {
        agent_id: me.clone(),
        arch: Arch::new("x86_64").expect("arch"),
        capacity: 1,
        wait: None,
    };
    let mut times = Vec::new();
    let mut ticks = pace.map(|p| {
        // Spread the agents over the period.
        let start = tokio::time::Instant::now() + p.mul_f64(id as f64 / 100.0 % 1.0);
        tokio::time::interval_at(start, p)
    });
    while Instant::now() < stop {
        if let Some(t) = ticks.as_mut() {
            t.tick().await;
        }
        let t = Instant::now();
        let leased = client.poll(&poll).await.expect("poll");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        if leased.is_empty() && drain {
            break;
        }
        for job in leased {
            client.finish(job.job.id(), &me, Outcome::TimedOut).await.expect("finish");
        }
    }
    times
}

async fn run_agents(
    url: &str,
    agents: usize,
    for_secs: u64,
    drain: bool,
    pace: Option<Duration>,
) -> Vec<f64> {
    let stop = Instant::now() + Duration::from_secs(for_secs);
    let tasks: Vec<_> =
        (0..agents).map(|i| tokio::spawn(agent(url.to_owned(), i, stop, drain, pace))).collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("agent task"));
    }
    all
}

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` runs this without `--bench`: a small smoke run then.
    let full = std::env::args().any(|a| a == "--bench");
    let agents: usize = std::env::var("VIETER_BENCH_AGENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 100 } else { 4 });
    let (idle_secs, jobs) = if full { (5, 2000) } else { (1, 20) };
    // MALLOC_ARENA_MAX given to the bench goes to the server (which sets 2 arenas itself otherwise).
    let arenas = std::env::var("MALLOC_ARENA_MAX").ok();
    let mut env = vec![("VIETER_AGENT_KEY", AGENT_KEY)];
    if let Some(a) = arenas.as_deref() {
        env.push(("MALLOC_ARENA_MAX", a));
    }
    let server = match std::env::var_os("VIETER_BENCH_SERVER") {
        Some(binary) => Server::start_binary(std::path::Path::new(&binary), &env),
        None => Server::start(&env),
    };
    let admin = Client::new(&server.url, Some(KEY.into())).expect("client");

    // Warm-up, then the idle phase.
    run_agents(&server.url, agents, 1, false, None).await;
    let pace = Some(Duration::from_millis(20));
    let paced = run_agents(&server.url, agents, idle_secs, false, pace).await;
    println!("idle, {agents} agents, each polling every 20 ms: {}", percentiles(paced));
    let flat_out = run_agents(&server.url, agents, idle_secs, false, None).await;
    println!("idle, {agents} agents polling flat out: {}", percentiles(flat_out));

    // The busy phase: 2,000 targets, one queued job each.
    for i in 0..jobs {
        let target = admin
            .create_target(&NewTarget {
                kind: "git".into(),
                url: format!("https://example.org/p{i}.git"),
                repo: "r".into(),
                enabled: Some(false),
                ..NewTarget::default()
            })
            .await
            .expect("create target");
        admin.queue(&QueueRequest { target: target.id, arch: None, force: false }).await.expect("queue");
    }
    let started = Instant::now();
    let times = run_agents(&server.url, agents, 600, true, None).await;
    assert!(times.len() >= jobs, "every job was leased by a poll");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "busy, {agents} agents, {jobs} jobs leased and finished in {secs:.1} s ({:.0} jobs/s): {}",
        jobs as f64 / secs,
        percentiles(times)
    );
}
