//! `ui-live --server PATH --packages DIR [--followers N] [--seconds S] [--interval-ms MS] [--samples K]`
//!
//! The web interface's speed goals (figures in BENCHMARKS.md, "Web interface"), against a fresh server
//! (its own data dir, a free loopback port, `VIETER_LOG_LEVEL=warn`):
//! 1. a repository page of the packages in `DIR` (every `*.pkg.tar.*`, published first by 4 clients):
//!    time to first byte and bytes sent, `K` requests each (first page, a far page, a search, a sort);
//! 2. `N` browsers following one running job's live log (`/ui/jobs/{id}/events`, SSE) while an agent
//!    appends a line every `MS` ms for `S` s: how long each line takes from the start of its append to
//!    each follower (p50, p99, max), lines missed, and the server's peak RSS during the phase.
//!
//! Only 127.0.0.1 is spoken to; every loop is bounded in count and time.

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vieter_benches::probe::{machine, Body, Client, Conn, Req, Server, ADMIN_KEY, AGENT_KEY, MIB};

const REPO: &str = "bench";
const ARCH: &str = "x86_64";
const AGENT: &str = "ui-live";

struct Opts {
    server: PathBuf,
    packages: PathBuf,
    followers: usize,
    seconds: u64,
    interval: Duration,
    samples: usize,
}

fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ui-live: {e}");
            eprintln!(
                "usage: ui-live --server PATH --packages DIR [--followers N] [--seconds S] [--interval-ms MS] [--samples K]"
            );
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&opts) {
        eprintln!("ui-live: {e}");
        std::process::exit(1);
    }
}

fn parse_args() -> Result<Opts, String> {
    let mut args = std::env::args().skip(1);
    let mut o = Opts {
        server: PathBuf::new(),
        packages: PathBuf::new(),
        followers: 200,
        seconds: 20,
        interval: Duration::from_millis(50),
        samples: 30,
    };
    let number = |v: String, what: &str| v.parse::<u64>().map_err(|_| format!("{what} takes a number"));
    while let Some(a) = args.next() {
        let value = args.next().ok_or_else(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--server" => o.server = PathBuf::from(value),
            "--packages" => o.packages = PathBuf::from(value),
            "--followers" => o.followers = number(value, &a)?.clamp(1, 1000) as usize,
            "--seconds" => o.seconds = number(value, &a)?.clamp(1, 600),
            "--interval-ms" => o.interval = Duration::from_millis(number(value, &a)?.clamp(5, 10_000)),
            "--samples" => o.samples = number(value, &a)?.clamp(1, 1000) as usize,
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    if !o.server.is_file() {
        return Err(format!("--server {:?} is not a file", o.server));
    }
    if !o.packages.is_dir() {
        return Err(format!("--packages {:?} is not a directory", o.packages));
    }
    Ok(o)
}

fn run(o: &Opts) -> Result<(), String> {
    println!("server: {}", o.server.display());
    println!("machine: {}", machine());
    let server = Server::start(&o.server, 8192 * MIB, &[], &[])?;
    let count = publish_all(&server, &o.packages)?;
    println!("published {count} packages into {REPO}/{ARCH}");

    println!(
        "repository page, {} requests each: first byte p50 / p95 / max, whole page p50, bytes",
        o.samples
    );
    let last_page = count.div_ceil(50).max(1);
    for (what, path) in [
        ("first page", format!("/ui/repos/{REPO}")),
        ("last page", format!("/ui/repos/{REPO}?page={last_page}")),
        ("search", format!("/ui/repos/{REPO}?q=bench001")),
        ("by size, desc", format!("/ui/repos/{REPO}?sort=size&order=desc")),
        ("search rows only", format!("/ui/repos/{REPO}?q=bench001&fragment=rows")),
    ] {
        let (first, whole, bytes) = page_timings(&server, &path, o.samples)?;
        println!(
            "  {what:<17} {:>7.2} / {:>7.2} / {:>7.2} ms, {:>7.2} ms, {bytes} bytes",
            ms(percentile(&first, 50)),
            ms(percentile(&first, 95)),
            ms(percentile(&first, 100)),
            ms(percentile(&whole, 50)),
        );
    }

    let (first, whole, bytes) = page_after_publish(&server, o.samples.min(20))?;
    println!(
        "  {:<17} {:>7.2} / {:>7.2} / {:>7.2} ms, {:>7.2} ms, {bytes} bytes",
        "after a publish",
        ms(percentile(&first, 50)),
        ms(percentile(&first, 95)),
        ms(percentile(&first, 100)),
        ms(percentile(&whole, 50)),
    );

    let mut server = server;
    let job = running_job(&server)?;
    let before = server.reset_peak();
    let followed = follow(&server, job, o)?;
    let peak = server.peak_now();
    let mut lat = followed.latencies;
    lat.sort_unstable();
    let expected = followed.lines * o.followers as u64;
    println!(
        "live log: {} followers, {} lines ({} ms apart) each: {} of {expected} deliveries, latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        o.followers,
        followed.lines,
        o.interval.as_millis(),
        lat.len(),
        ms(percentile(&lat, 50)),
        ms(percentile(&lat, 99)),
        ms(percentile(&lat, 100)),
    );
    println!("server RSS: peak while followed {}, peak before {}", mib(peak), mib(before),);
    let stopped = server.stop();
    if stopped.capped {
        return Err("the server passed the RSS cap".into());
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(b: Option<u64>) -> String {
    b.map(|b| format!("{:.1} MiB", b as f64 / MIB as f64)).unwrap_or_else(|| "-".into())
}

/// The `p`-th percentile (nearest rank) of sorted values; 100 is the maximum.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * p).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Publishes every package of `dir` with 4 clients; returns how many.
fn publish_all(server: &Server, dir: &Path) -> Result<usize, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains(".pkg.tar"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("no package in {}", dir.display()));
    }
    let files = Arc::new(Mutex::new(files));
    let addr = server.addr;
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let files = files.clone();
            std::thread::spawn(move || -> Result<usize, String> {
                let mut c = Client::new(addr);
                let mut done = 0;
                let path = format!("/{REPO}/publish");
                loop {
                    let Some(file) = files.lock().unwrap_or_else(|p| p.into_inner()).pop() else {
                        return Ok(done);
                    };
                    match c.call(Req::new("POST", &path).key(ADMIN_KEY).body(Body::File(&file))) {
                        Ok(r) if r.status == 200 => done += 1,
                        Ok(r) => {
                            return Err(format!(
                                "publishing {}: {} {}",
                                file.display(),
                                r.status,
                                r.message()
                            ))
                        }
                        Err(e) => return Err(format!("publishing {}: {e}", file.display())),
                    }
                }
            })
        })
        .collect();
    let mut total = 0;
    for w in workers {
        total += w.join().map_err(|_| "a publishing thread panicked".to_owned())??;
    }
    Ok(total)
}

/// `samples` GETs of `path` on one kept-alive connection: times to the first byte and to the whole
/// answer, and the answer's length.
fn page_timings(
    server: &Server,
    path: &str,
    samples: usize,
) -> Result<(Vec<Duration>, Vec<Duration>, u64), String> {
    let mut conn = Conn::open(server.addr, Duration::from_secs(30)).map_err(|e| e.to_string())?;
    let (mut first, mut whole, mut bytes) = (Vec::new(), Vec::new(), 0);
    for _ in 0..samples {
        let started = Instant::now();
        conn.send(Req::get(path), false).map_err(|e| e.to_string())?;
        conn.stream.fill_buf().map_err(|e| e.to_string())?;
        first.push(started.elapsed());
        let resp = conn.read(Req::get(path)).map_err(|e| e.to_string())?;
        whole.push(started.elapsed());
        if resp.status != 200 {
            return Err(format!("GET {path}: {}", resp.status));
        }
        bytes = resp.len;
    }
    first.sort_unstable();
    whole.sort_unstable();
    Ok((first, whole, bytes))
}

/// The first page right after each of `samples` publishes of a new package into the arch-repo (what a
/// listing costs when the arch-repo just changed): times as [`page_timings`].
fn page_after_publish(
    server: &Server,
    samples: usize,
) -> Result<(Vec<Duration>, Vec<Duration>, u64), String> {
    let mut c = Client::new(server.addr);
    let path = format!("/ui/repos/{REPO}");
    let (mut first, mut whole, mut bytes) = (Vec::new(), Vec::new(), 0);
    for i in 0..samples {
        let package = vieter_benches::small_package(&format!("fresh{i:03}"), "1.0-1", 5);
        match c.call(Req::new("POST", &format!("/{REPO}/publish")).key(ADMIN_KEY).body(Body::Bytes(&package)))
        {
            Ok(r) if r.status == 200 => {}
            Ok(r) => return Err(format!("publishing: {} {}", r.status, r.message())),
            Err(e) => return Err(format!("publishing: {e}")),
        }
        let (f, w, b) = page_timings(server, &path, 1)?;
        first.extend(f);
        whole.extend(w);
        bytes = b;
    }
    first.sort_unstable();
    whole.sort_unstable();
    Ok((first, whole, bytes))
}

/// A target, a build of it queued and leased by [`AGENT`]: the job's id.
fn running_job(server: &Server) -> Result<u64, String> {
    let mut c = Client::new(server.addr);
    let json = |r: io::Result<vieter_benches::probe::Resp>, what: &str| match r {
        Ok(r) if r.status == 200 => Ok(r.json()),
        Ok(r) => Err(format!("{what}: {} {}", r.status, r.message())),
        Err(e) => Err(format!("{what}: {e}")),
    };
    let target =
        format!(r#"{{"kind":"git","url":"https://example.org/live.git","repo":"{REPO}","arch":["{ARCH}"]}}"#);
    let t =
        json(c.call(Req::new("POST", "/api/v1/targets").key(ADMIN_KEY).json(target.as_bytes())), "a target")?;
    let id = t["data"]["id"].as_u64().ok_or("no target id")?;
    let queue = format!(r#"{{"target":{id}}}"#);
    json(c.call(Req::new("POST", "/api/v1/jobs").key(ADMIN_KEY).json(queue.as_bytes())), "queueing")?;
    let poll = format!(r#"{{"agent_id":"{AGENT}","arch":"{ARCH}","capacity":1,"wait":0}}"#);
    let leased =
        json(c.call(Req::new("POST", "/api/v1/jobs/poll").key(AGENT_KEY).json(poll.as_bytes())), "a poll")?;
    leased["data"][0]["job"]["id"].as_u64().ok_or_else(|| format!("nothing leased: {leased}"))
}

struct Followed {
    lines: u64,
    latencies: Vec<Duration>,
}

fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// The markers `t=NANOS;` of one line of the stream: the latency of each.
fn markers(line: &str, out: &mut Vec<Duration>) {
    let now = now_nanos();
    for part in line.split("t=").skip(1) {
        if let Some(Ok(sent)) = part.split(';').next().map(str::parse::<u128>) {
            out.push(Duration::from_nanos(now.saturating_sub(sent).min(u64::MAX as u128) as u64));
        }
    }
}

/// `o.followers` followers of the job's live log while lines are appended; then the job ends.
fn follow(server: &Server, job: u64, o: &Opts) -> Result<Followed, String> {
    let ready = Arc::new(Barrier::new(o.followers + 1));
    let deadline = Duration::from_secs(o.seconds + 30);
    let followers: Vec<_> = (0..o.followers)
        .map(|_| {
            let (ready, addr) = (ready.clone(), server.addr);
            std::thread::spawn(move || -> Result<Vec<Duration>, String> {
                let opened = (|| {
                    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
                    s.set_read_timeout(Some(deadline))?;
                    let head = format!(
                        "GET /ui/jobs/{job}/events?from=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: {ADMIN_KEY}\r\nAccept: text/event-stream\r\n\r\n"
                    );
                    s.write_all(head.as_bytes())?;
                    let mut r = BufReader::new(s);
                    let mut status = String::new();
                    r.read_line(&mut status)?;
                    Ok::<_, io::Error>((r, status))
                })();
                ready.wait();
                let (mut r, status) = opened.map_err(|e| e.to_string())?;
                if !status.contains(" 200 ") {
                    return Err(format!("the event stream answered {status:?}"));
                }
                let mut got = Vec::new();
                let mut line = String::new();
                loop {
                    line.clear();
                    match r.read_line(&mut line) {
                        Ok(0) => break,
                        Ok(_) => {
                            if line.starts_with("event: end") {
                                break;
                            }
                            if line.starts_with("data:") {
                                markers(&line, &mut got);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::InvalidData => {}
                        Err(e) => return Err(format!("reading the event stream: {e}")),
                    }
                }
                Ok(got)
            })
        })
        .collect();
    ready.wait();
    // Lines appended by the agent, each with its start time; a heartbeat every 10 s keeps the lease.
    let mut c = Client::new(server.addr);
    let log = format!("/api/v1/jobs/{job}/log?agent_id={AGENT}");
    let beat = format!("/api/v1/jobs/{job}/heartbeat");
    let beat_body = format!(r#"{{"agent_id":"{AGENT}"}}"#);
    let lines = o.seconds * 1000 / o.interval.as_millis().max(1) as u64;
    let started = Instant::now();
    let mut last_beat = Instant::now();
    for i in 0..lines {
        let line = format!("==> line {i} t={};\n", now_nanos());
        match c.call(Req::new("POST", &log).key(AGENT_KEY).body(Body::Bytes(line.as_bytes()))) {
            Ok(r) if r.status == 200 => {}
            Ok(r) => return Err(format!("appending: {} {}", r.status, r.message())),
            Err(e) => return Err(format!("appending: {e}")),
        }
        if last_beat.elapsed() > Duration::from_secs(10) {
            let _ = c.call(Req::new("POST", &beat).key(AGENT_KEY).json(beat_body.as_bytes()));
            last_beat = Instant::now();
        }
        let next = o.interval * (i as u32 + 1);
        if let Some(wait) = next.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let finish = format!(r#"{{"agent_id":"{AGENT}","outcome":{{"state":"succeeded","versions":[]}}}}"#);
    let done = c
        .call(Req::new("POST", &format!("/api/v1/jobs/{job}/finish")).key(AGENT_KEY).json(finish.as_bytes()));
    if !matches!(&done, Ok(r) if r.status == 200) {
        return Err("finishing the job failed".into());
    }
    let mut latencies = Vec::new();
    for f in followers {
        latencies.extend(f.join().map_err(|_| "a follower panicked".to_owned())??);
    }
    Ok(Followed { lines, latencies })
}
