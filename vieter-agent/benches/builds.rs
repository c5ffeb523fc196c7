//! Build agents with real Podman and makepkg, measured (not asserted): `cargo bench -p vieter-agent --bench
//! builds`. Prints
//! - the overhead per build with a warm image: from the job's lease to its report, minus the time of
//!   `makepkg` building the package (the `makepkg` step), with the median of every step;
//! - throughput with 1, 2 and 4 agents on the same set of small targets (`VIETER_BENCH_TARGETS`, default
//!   40): jobs per minute and scaling efficiency against one agent.
//!
//! Needs what the agent's end-to-end test needs (Podman, git, the builder image; scripts/test.sh sets them
//! up). Figures go to BENCHMARKS.md.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::server::{Server, KEY};
use common::{finished, log, Agent, GitDaemon, PodmanService, AGENT_KEY};
use libvieter::api::QueueRequest;
use libvieter::job::{Job, JobState};
use libvieter::target::{NewTarget, Target};
use vieter_client::Client;

/// `name: exit code N after X s` lines of a job's log, as (step, seconds).
fn step_times(log: &str) -> Vec<(String, f64)> {
    log.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("==> [vieter] ")?;
            let (step, rest) = rest.split_once(": exit code ")?;
            let secs = rest.split_once(" after ")?.1.strip_suffix(" s")?;
            Some((step.to_owned(), secs.parse().ok()?))
        })
        .collect()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let i = ((values.len() as f64 - 1.0) * p).round() as usize;
    values.get(i).copied().unwrap_or(f64::NAN)
}

async fn targets(admin: &Client, git: &GitDaemon, repo: &str, count: usize) -> Vec<Target> {
    let mut out = Vec::new();
    for i in 0..count {
        let name = format!("{repo}-small-{i}");
        let url = git.repo(
            &name,
            &[(
                "PKGBUILD",
                &format!(
                    "pkgname={name}\npkgver=1.0\npkgrel=1\narch=('x86_64')\nlicense=('MIT')\n\
                     package() {{ mkdir -p \"$pkgdir/usr/share/{name}\"; echo {i} > \"$pkgdir/usr/share/{name}/n\"; }}\n"
                ),
            )],
        );
        let new = NewTarget {
            kind: "git".into(),
            url,
            repo: repo.into(),
            arch: Some(vec!["x86_64".into()]),
            enabled: Some(false),
            ..NewTarget::default()
        };
        out.push(admin.create_target(&new).await.expect("create target"));
    }
    out
}

/// Queues one job per target and waits for all; returns them and the wall time.
async fn round(admin: &Client, targets: &[Target]) -> (Vec<Job>, f64) {
    let start = Instant::now();
    let mut ids = Vec::new();
    for t in targets {
        let jobs =
            admin.queue(&QueueRequest { target: t.id, arch: None, force: false }).await.expect("queue");
        ids.extend(jobs.into_iter().map(|j| j.id()));
    }
    let mut jobs = Vec::new();
    for id in ids {
        let job = finished(admin, id, 1800).await;
        assert_eq!(job.state(), JobState::Succeeded, "{:?}\n{}", job.cause(), log(admin, job.id()).await);
        jobs.push(job);
    }
    (jobs, start.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    if !common::require_podman() {
        return;
    }
    // `cargo test --all-targets` runs this without `--bench`: one agent, two targets then.
    let full = std::env::args().any(|a| a == "--bench");
    let count: usize = std::env::var("VIETER_BENCH_TARGETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 40 } else { 2 });
    let rounds: &[usize] = if full { &[1, 2, 4] } else { &[1] };
    let podman = PodmanService::start();
    let server = Server::start(&[
        ("VIETER_AGENT_KEY", AGENT_KEY),
        ("VIETER_BASE_IMAGE", &common::test_image()),
        ("VIETER_LEASE_SECS", "30"),
    ]);
    let admin = Client::new(&server.url, Some(KEY.into())).expect("client");
    let git = GitDaemon::start();
    let work = tempfile::tempdir().expect("temp dir");

    // Warm-up: the image is inspected once per agent start; one build each makes every later build warm.
    let mut results = Vec::new();
    for &agents in rounds {
        let repo = format!("bench{agents}");
        let set = targets(&admin, &git, &repo, count).await;
        let running: Vec<Agent> = (0..agents)
            .map(|i| {
                let id = format!("bench-{agents}-{i}");
                Agent::start(&id, &server.url, &podman, &work.path().join(&id), &[("VIETER_POLL_WAIT", "10")])
            })
            .collect();
        let warm = targets(&admin, &git, &format!("{repo}-warm"), agents).await;
        round(&admin, &warm).await;
        let (jobs, wall) = round(&admin, &set).await;
        drop(running);

        let mut overhead = Vec::new();
        let mut per_step: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for job in &jobs {
            let (Some(start), Some(end)) = (job.started_at(), job.finished_at()) else { continue };
            let total = (end - start).num_milliseconds() as f64 / 1000.0;
            let steps = step_times(&log(&admin, job.id()).await);
            let makepkg: f64 = steps.iter().filter(|(s, _)| s == "makepkg").map(|(_, t)| t).sum();
            overhead.push(total - makepkg);
            for (step, secs) in steps {
                per_step.entry(step).or_default().push(secs);
            }
        }
        let per_minute = jobs.len() as f64 * 60.0 / wall;
        println!(
            "{agents} agent(s): {} jobs in {wall:.1} s = {per_minute:.1} jobs/min; overhead per build (lease → \
             report, minus makepkg's build) median {:.2} s, p90 {:.2} s",
            jobs.len(),
            median(&mut overhead.clone()),
            percentile(&mut overhead, 0.9)
        );
        let steps: Vec<String> =
            per_step.iter_mut().map(|(s, v)| format!("{s} {:.2} s", median(v))).collect();
        println!("    median step times: {}", steps.join(", "));
        results.push((agents, per_minute));
    }
    let one = results[0].1;
    for (agents, per_minute) in &results {
        println!(
            "scaling: {agents} agent(s) {per_minute:.1} jobs/min, {:.2}x one agent, efficiency {:.0}%",
            per_minute / one,
            100.0 * per_minute / (one * *agents as f64)
        );
    }
}
