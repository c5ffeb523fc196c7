//! `hostile --server PATH/TO/vieter-server [--only NAME[,NAME...]] [--rss-cap-mib N] [--detail-clients N]`
//!
//! Reproduces the hostile inputs of issue 10 against a server binary and prints one line of figures per
//! attack (figures in BENCHMARKS.md, "Hostile input"). Every attack starts a fresh server (its own data dir,
//! a free loopback port, `VIETER_LOG_LEVEL=warn`), so that its peak RSS (VmHWM, read just before the server
//! is killed) and the growth of its data dir belong to that attack alone. Every loop is bounded in count and
//! time and only 127.0.0.1 is spoken to, over plain HTTP/1.1 on `TcpStream`s. A watchdog kills a server
//! whose RSS passes `--rss-cap-mib` (default 8192) so that an old server cannot take the machine down; such
//! a row says so.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant, SystemTime};

use vieter_benches::probe::{
    find_file, machine, once, status, Body, Client, Req, Resp, Server, ADMIN_KEY, AGENT_KEY, MIB,
};

const REPO: &str = "r";
const ARCH: &str = "x86_64";

type Attack = fn(&Opts) -> Result<Row, String>;

/// Every attack, in the order of issue 10.
const ATTACKS: &[(&str, Attack)] = &[
    ("slowloris", slowloris),
    ("long-desc", long_desc),
    ("files-injection", files_injection),
    ("file-list-size", file_list_size),
    ("detail-parallel", detail_parallel),
    ("detail-entries", detail_entries),
    ("chunked-body", chunked_body),
    ("log-size", log_size),
    ("metrics-methods", metrics_methods),
    ("caching", caching),
    ("url-unsafe-version", url_unsafe_version),
    ("agents", agents),
];

struct Opts {
    server: PathBuf,
    only: Option<Vec<String>>,
    rss_cap: u64,
    detail_clients: usize,
}

/// One line of the table: the server's peak RSS, the growth of its data dir and the attack's figures.
struct Row {
    peak: Option<u64>,
    disk: Option<i64>,
    figures: String,
}

fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("hostile: {e}");
            eprintln!(
                "usage: hostile --server PATH [--only NAME[,NAME...]] [--rss-cap-mib N] [--detail-clients N]"
            );
            eprintln!("attacks: {}", ATTACKS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "));
            std::process::exit(2);
        }
    };
    println!("server: {}", opts.server.display());
    println!("machine: {}", machine());
    println!("{:<19} {:>10} {:>11}  figures", "attack", "peak RSS", "data dir");
    for (name, attack) in ATTACKS {
        if opts.only.as_ref().is_some_and(|only| !only.iter().any(|o| o == name)) {
            continue;
        }
        let started = Instant::now();
        let row =
            attack(&opts).unwrap_or_else(|e| Row { peak: None, disk: None, figures: format!("error: {e}") });
        let peak = row.peak.map(fmt_bytes).unwrap_or_else(|| "-".into());
        let disk = row.disk.map(fmt_signed).unwrap_or_else(|| "-".into());
        println!(
            "{name:<19} {peak:>10} {disk:>11}  {} [{:.0} s]",
            row.figures,
            started.elapsed().as_secs_f64()
        );
    }
}

fn parse_args() -> Result<Opts, String> {
    let mut args = std::env::args().skip(1);
    let (mut server, mut only, mut cap_mib, mut clients) = (None, None, 8192u64, 20usize);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--server" => server = Some(PathBuf::from(value()?)),
            "--only" => only = Some(value()?.split(',').map(str::to_owned).collect::<Vec<_>>()),
            "--rss-cap-mib" => cap_mib = value()?.parse().map_err(|_| "--rss-cap-mib takes a number")?,
            "--detail-clients" => {
                clients = value()?.parse().map_err(|_| "--detail-clients takes a number")?
            }
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    let server = server.ok_or("--server is required")?;
    if !server.is_file() {
        return Err(format!("{} is not a file", server.display()));
    }
    if let Some(only) = &only {
        if let Some(bad) = only.iter().find(|o| !ATTACKS.iter().any(|(n, _)| n == o)) {
            return Err(format!("no attack named {bad:?}"));
        }
    }
    Ok(Opts { server, only, rss_cap: cap_mib * MIB, detail_clients: clients.clamp(1, 64) })
}

/// A fresh server for one attack (see [`Server::start`]).
fn start(o: &Opts, env: &[(&str, &str)], wrapper: &[&str]) -> Result<Server, String> {
    Server::start(&o.server, o.rss_cap, env, wrapper)
}

/// The row of an attack that ends with its server.
trait RowOf {
    fn row(self, figures: String) -> Row;
}

impl RowOf for Server {
    /// The row of an attack that ends with this server: `figures`, plus a note if the watchdog killed it.
    fn row(self, figures: String) -> Row {
        let cap_note = self.capped();
        let s = self.stop();
        let figures = if s.capped || cap_note {
            format!("{figures}; KILLED by the watchdog: RSS passed the cap")
        } else {
            figures
        };
        Row { peak: s.peak, disk: Some(s.disk), figures }
    }
}

/// Counts of outcomes: `200×30, 404×30`.
#[derive(Default)]
struct Tally(BTreeMap<String, usize>);

impl Tally {
    fn add(&mut self, what: impl Into<String>) {
        *self.0.entry(what.into()).or_default() += 1;
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let parts: Vec<String> = self.0.iter().map(|(k, n)| format!("{k}×{n}")).collect();
        f.write_str(&parts.join(", "))
    }
}

// ---- packages and pacman ----

fn pkginfo(name: &str, version: &str, desc: &str) -> String {
    format!(
        "pkgname = {name}\npkgbase = {name}\npkgver = {version}\npkgdesc = {desc}\nurl = https://example.org\nbuilddate = 1700000000\npackager = Hostile <hostile@example.org>\nsize = 1\narch = {ARCH}\nlicense = MIT\n"
    )
}

/// A zstd package written as it is built (nothing but the current member is held).
struct PkgWriter {
    tar: tar::Builder<zstd::stream::write::Encoder<'static, io::BufWriter<File>>>,
    path: PathBuf,
}

impl PkgWriter {
    fn create(path: &Path, name: &str, version: &str, desc: &str) -> io::Result<PkgWriter> {
        let out = io::BufWriter::with_capacity(MIB as usize, File::create(path)?);
        let mut w = PkgWriter {
            tar: tar::Builder::new(zstd::stream::write::Encoder::new(out, 3)?),
            path: path.into(),
        };
        w.add(".PKGINFO", pkginfo(name, version, desc).as_bytes())?;
        Ok(w)
    }

    /// A regular file (names over 100 bytes get a GNU long-name entry).
    fn add(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        self.tar.append_data(&mut h, name, data)
    }

    /// Finishes the file; its size.
    fn finish(self) -> io::Result<u64> {
        let mut out = self.tar.into_inner()?.finish()?;
        out.flush()?;
        Ok(std::fs::metadata(&self.path)?.len())
    }
}

/// A small package `dir/name.pkg.tar.zst` with the given members.
fn small_pkg(
    dir: &Path,
    name: &str,
    version: &str,
    desc: &str,
    members: &[(&str, &[u8])],
) -> io::Result<PathBuf> {
    let path = dir.join(format!("{}.pkg.tar.zst", name.replace('/', "_")));
    let mut w = PkgWriter::create(&path, name, version, desc)?;
    for (m, data) in members {
        w.add(m, data)?;
    }
    w.finish()?;
    Ok(path)
}

/// A path of exactly `len` bytes, unique for `i`, no component over 224 bytes. Its last component holds
/// 16 pseudo-random hex digits, so that zstd does not shrink the list below a real package's ratio (a
/// server may refuse a stream that expands more than 1000 times).
fn long_path(i: usize, len: usize) -> String {
    let mut x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    let tail = format!("{x:016x}-f{i:07}");
    let mut p = String::from("usr/share/hostile/");
    while len.saturating_sub(p.len() + tail.len()) > 200 {
        p.push_str(&"a".repeat(199));
        p.push('/');
    }
    p.push_str(&"b".repeat(len.saturating_sub(p.len() + tail.len())));
    p.push_str(&tail);
    p
}

/// A package of `files` empty files with `len`-byte paths.
fn wide_pkg(dir: &Path, name: &str, files: usize, len: usize) -> io::Result<(PathBuf, u64)> {
    let path = dir.join(format!("{name}-{files}.pkg.tar.zst"));
    let mut w = PkgWriter::create(&path, name, "1-1", "a package with a long file list")?;
    for i in 0..files {
        w.add(&long_path(i, len), b"")?;
    }
    let size = w.finish()?;
    Ok((path, size))
}

fn publish(addr: SocketAddr, file: &Path, timeout: Duration) -> io::Result<Resp> {
    let path = format!("/{REPO}/publish");
    once(addr, Req::new("POST", &path).key(ADMIN_KEY).body(Body::File(file)), timeout)
}

/// `200` or `400 (message)`.
fn publish_status(r: &io::Result<Resp>) -> String {
    match r {
        Ok(resp) if resp.status == 200 => "200".into(),
        Ok(resp) => format!("{} ({})", resp.status, resp.message()),
        Err(_) => status(r),
    }
}

/// A pacman root of its own, configured for [`REPO`] on the server (as the server's tests do).
struct Pacman {
    dir: tempfile::TempDir,
}

impl Pacman {
    fn new(addr: SocketAddr) -> io::Result<Pacman> {
        let dir = tempfile::Builder::new().prefix("vieter-hostile-pacman-").tempdir()?;
        std::fs::create_dir_all(dir.path().join("root/var/lib/pacman"))?;
        std::fs::create_dir_all(dir.path().join("cache"))?;
        let conf = format!(
            "[options]\nArchitecture = {ARCH}\nSigLevel = Never\n[{REPO}]\nServer = http://{addr}/$repo/$arch\n"
        );
        std::fs::write(dir.path().join("pacman.conf"), conf)?;
        Ok(Pacman { dir })
    }

    /// Runs pacman (at most 120 s); (success, stdout+stderr).
    fn run(&self, args: &[&str]) -> (bool, String) {
        let d = self.dir.path();
        let out = Command::new("timeout")
            .arg("120")
            .arg("pacman")
            .arg("--config")
            .arg(d.join("pacman.conf"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--dbpath")
            .arg(d.join("root/var/lib/pacman"))
            .arg("--cachedir")
            .arg(d.join("cache"))
            .arg("--noconfirm")
            .args(args)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) => (
                o.status.success(),
                format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
            ),
            Err(e) => (false, format!("cannot run pacman: {e}")),
        }
    }
}

/// The first line of pacman's output that reports an error, shortened.
fn pacman_error(out: &str) -> Option<String> {
    out.lines().find(|l| l.contains("error")).map(|l| l.trim().chars().take(100).collect())
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

// ---- the attacks ----

/// A GET /health answered 200 within `timeout`.
fn healthy(addr: SocketAddr, timeout: Duration) -> bool {
    once(addr, Req::get("/health"), timeout).is_ok_and(|r| r.status == 200)
}

/// 1. 300 connections that send half a request head, under a 256-descriptor limit.
fn slowloris(o: &Opts) -> Result<Row, String> {
    let s = start(o, &[("VIETER_HEADER_READ_TIMEOUT", "10")], &["prlimit", "--nofile=256:256"])?;
    let before = healthy(s.addr, Duration::from_secs(5));
    let log_before = s.stderr().len();
    let mut conns = Vec::new();
    let mut failed = 0;
    let opening = Instant::now();
    for _ in 0..300 {
        if opening.elapsed() > Duration::from_secs(60) {
            break;
        }
        match TcpStream::connect_timeout(&s.addr, Duration::from_secs(3)) {
            Ok(c) if (&c).write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n").is_ok() => conns.push(c),
            _ => failed += 1,
        }
    }
    let opened_in = opening.elapsed().as_secs_f64();
    let attacked = Instant::now();
    let limit = Duration::from_secs(60);
    let mut recovered = None;
    while attacked.elapsed() < limit {
        let left = limit.saturating_sub(attacked.elapsed());
        if healthy(s.addr, left) {
            recovered = Some(attacked.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // What became of the idle connections: closed by the server, answered, or still open.
    let mut idle = Tally::default();
    for c in &mut conns {
        let _ = c.set_nonblocking(true);
        let mut buf = [0u8; 512];
        idle.add(match c.read(&mut buf) {
            Ok(0) => "closed",
            Ok(_) => "answered",
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => "open",
            Err(_) => "reset",
        });
    }
    drop(conns);
    let log = s.stderr();
    let new_log = String::from_utf8_lossy(log.get(log_before..).unwrap_or_default()).into_owned();
    let emfile = new_log.lines().filter(|l| l.contains("Too many open files")).count();
    let recovered = match recovered {
        Some(t) => format!("{:.1} s", t.as_secs_f64()),
        None => "never (>60 s)".into(),
    };
    let after = healthy(s.addr, Duration::from_secs(10));
    let figures = format!(
        "/health before: {}; {} partial heads sent in {opened_in:.1} s ({failed} could not connect); /health 200 again (counted from the last one): {recovered}; idle connections then: {idle}; once they were dropped /health: {}; server log during the attack: {} lines, {emfile} \"Too many open files\"",
        if before { "200" } else { "no answer" },
        300 - failed,
        if after { "200" } else { "no answer" },
        new_log.lines().count(),
    );
    Ok(s.row(figures))
}

/// 2. A 512 KiB `pkgdesc`, then real pacman on the repository.
fn long_desc(o: &Opts) -> Result<Row, String> {
    let s = start(o, &[], &[])?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let pkgs = (|| {
        let normal = small_pkg(
            tmp.path(),
            "normal",
            "1-1",
            "an ordinary package",
            &[("usr/bin/normal", b"#!/bin/sh\n")],
        )?;
        let desc = "d".repeat(512 * 1024);
        let long =
            small_pkg(tmp.path(), "longdesc", "1-1", &desc, &[("usr/share/longdesc/readme", b"hi\n")])?;
        Ok::<_, io::Error>((normal, long))
    })();
    let (normal, long) = pkgs.map_err(|e| format!("building packages: {e}"))?;
    let t = Duration::from_secs(60);
    let normal_status = publish_status(&publish(s.addr, &normal, t));
    let long_status = publish_status(&publish(s.addr, &long, t));
    let pacman = Pacman::new(s.addr).map_err(|e| format!("pacman root: {e}"))?;
    let (sy_ok, sy_out) = pacman.run(&["-Sy"]);
    let (_, ss_out) = pacman.run(&["-Ss", "."]);
    let lists = |name: &str| ss_out.lines().any(|l| l.starts_with(&format!("{REPO}/{name} ")));
    let error = pacman_error(&sy_out).or_else(|| pacman_error(&ss_out));
    let figures = format!(
        "publish 512 KiB pkgdesc: {long_status}; ordinary package: {normal_status}; pacman -Sy: {}; -Ss . lists the ordinary package: {}, the long one: {}{}",
        if sy_ok { "ok" } else { "failed" },
        yes(lists("normal")),
        yes(lists("longdesc")),
        error.map(|e| format!(" (pacman: {e})")).unwrap_or_default()
    );
    Ok(s.row(figures))
}

/// 3. A member name that would add `usr/bin/sudo` to the package's `%FILES%`.
fn files_injection(o: &Opts) -> Result<Row, String> {
    let s = start(o, &[], &[])?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let evil = "usr/bin/zz\n\n%FILES%\nusr/bin/sudo";
    let pkg = small_pkg(
        tmp.path(),
        "inject",
        "1-1",
        "files injection",
        &[(evil, b"x"), ("usr/bin/inject-ok", b"#!/bin/sh\n")],
    )
    .map_err(|e| format!("building the package: {e}"))?;
    let published = publish_status(&publish(s.addr, &pkg, Duration::from_secs(60)));
    let pacman = Pacman::new(s.addr).map_err(|e| format!("pacman root: {e}"))?;
    let (fy_ok, fy_out) = pacman.run(&["-Fy"]);
    let (_, f_out) = pacman.run(&["-F", "usr/bin/sudo"]);
    let shown: String =
        f_out.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" / ");
    let figures = format!(
        "publish: {published}; pacman -Fy: {}; pacman -F usr/bin/sudo: \"{}\" → attacker named: {}",
        if fy_ok {
            "ok".to_owned()
        } else {
            format!("failed ({})", pacman_error(&fy_out).unwrap_or_default())
        },
        shown.chars().take(120).collect::<String>(),
        yes(f_out.contains("inject"))
    );
    Ok(s.row(figures))
}

/// 4. 250,000 entries with 4,000-byte paths (a GB-sized file list in a few MB of zstd).
fn file_list_size(o: &Opts) -> Result<Row, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let built = Instant::now();
    let (pkg, size) = wide_pkg(tmp.path(), "wide", 250_000, 4000).map_err(|e| format!("building: {e}"))?;
    let built = built.elapsed();
    let s = start(o, &[], &[])?;
    let started = Instant::now();
    let r = publish(s.addr, &pkg, Duration::from_secs(900));
    let figures = format!(
        "upload {} (250,000 × 4,000-byte paths = 1.0 GB of names, built in {:.0} s); publish: {} after {:.1} s",
        fmt_bytes(size),
        built.as_secs_f64(),
        publish_status(&r),
        started.elapsed().as_secs_f64()
    );
    Ok(s.row(figures))
}

/// `n` GETs of `path` started together on their own connections, answers counted (not kept); and how
/// long they took.
fn parallel_gets(addr: SocketAddr, path: &str, key: Option<&str>, n: usize) -> (Vec<io::Result<Resp>>, f64) {
    let barrier = Barrier::new(n);
    let started = Instant::now();
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let req = Req::get(path).keep(0);
                    let req = match key {
                        Some(k) => req.key(k),
                        None => req,
                    };
                    once(addr, req, Duration::from_secs(600))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(io::Error::other("thread")))).collect()
    });
    (results, started.elapsed().as_secs_f64())
}

/// Statuses of answers, and the largest body.
fn tally_answers(results: &[io::Result<Resp>]) -> (Tally, u64) {
    let mut statuses = Tally::default();
    for r in results {
        statuses.add(status(r));
    }
    (statuses, results.iter().flatten().map(|r| r.len).max().unwrap_or(0))
}

fn opt_bytes(b: Option<u64>) -> String {
    b.map(fmt_bytes).unwrap_or_else(|| "?".into())
}

/// 5. The largest package the server accepts by file-list size, then parallel detail requests.
fn detail_parallel(o: &Opts) -> Result<Row, String> {
    // The old issue's package first; then one just under the new limits (libvieter `Limits`:
    // max_file_list_bytes 32 MiB, so 8,300 names of 4,000 bytes + newline = 33.2 MB < 33,554,432).
    detail(o, &[(100_000, 4000), (8_300, 4000)])
}

/// 5b. The most entries the new limits allow (max_entries 500,000; 499,000 names of 60 bytes + newline
/// = 30.4 MB of list), then parallel detail requests.
fn detail_entries(o: &Opts) -> Result<Row, String> {
    detail(o, &[(499_000, 60)])
}

/// Publishes the first of `candidates` (files, path length) that the server accepts, then
/// `--detail-clients` parallel GETs of its detail (default page); when the server pages the file list,
/// the same again with the largest page the API allows (`files_limit=10000`).
fn detail(o: &Opts, candidates: &[(usize, usize)]) -> Result<Row, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut s = start(o, &[], &[])?;
    let mut refused = Vec::new();
    let mut chosen = None;
    for &(files, len) in candidates {
        let (pkg, size) = wide_pkg(tmp.path(), "detail", files, len).map_err(|e| format!("building: {e}"))?;
        let r = publish(s.addr, &pkg, Duration::from_secs(900));
        if r.as_ref().is_ok_and(|r| r.status == 200) {
            chosen = Some((files, len, size));
            break;
        }
        refused.push(format!("{files} × {len} B: {}", publish_status(&r)));
        if !s.alive() {
            break;
        }
    }
    let refused_note =
        if refused.is_empty() { String::new() } else { format!("refused first: {}; ", refused.join("; ")) };
    let Some((files, len, size)) = chosen else {
        return Ok(s.row(format!("{refused_note}no package accepted")));
    };
    let list_bytes = (files * (len + 1)) as u64;
    let publish_peak = s.reset_peak();
    let rss_before = s.rss();
    let clients = o.detail_clients;
    let path = format!("/api/v1/repos/{REPO}/{ARCH}/packages/detail");
    let (results, secs) = parallel_gets(s.addr, &path, None, clients);
    let (statuses, biggest) = tally_answers(&results);
    let gets_peak = s.peak_now();
    let mut figures = format!(
        "{refused_note}published {files} × {len}-byte paths ({} list, {} upload) → 200, publish peak {}; RSS before the GETs {}; {clients} parallel GET …/packages/detail: {statuses}, largest answer {}, in {secs:.1} s; peak during the GETs {}",
        fmt_bytes(list_bytes),
        fmt_bytes(size),
        opt_bytes(publish_peak),
        opt_bytes(rss_before),
        fmt_bytes(biggest),
        gets_peak.map(fmt_bytes).unwrap_or_else(|| "? (server gone)".into()),
    );
    if biggest > 0 && biggest < list_bytes / 2 && s.alive() {
        s.reset_peak();
        let big_page = format!("{path}?files_limit=10000");
        let (results, secs) = parallel_gets(s.addr, &big_page, None, clients);
        let (statuses, biggest) = tally_answers(&results);
        figures.push_str(&format!(
            "; with ?files_limit=10000: {statuses}, largest answer {}, in {secs:.1} s, peak {}",
            fmt_bytes(biggest),
            s.peak_now().map(fmt_bytes).unwrap_or_else(|| "? (server gone)".into()),
        ));
    }
    Ok(s.row(figures))
}

/// 6. Up to 1 GiB of chunked spaces as a poll body.
fn chunked_body(o: &Opts) -> Result<Row, String> {
    let s = start(o, &[], &[])?;
    let mut c = TcpStream::connect_timeout(&s.addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    let _ = c.set_write_timeout(Some(Duration::from_secs(30)));
    let head = format!(
        "POST /api/v1/jobs/poll HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: {AGENT_KEY}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    c.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    // A reader notes the first thing the server sends (or that it closed).
    let answered = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    {
        let mut reader = c.try_clone().map_err(|e| e.to_string())?;
        let _ = reader.set_read_timeout(Some(Duration::from_secs(300)));
        let answered = answered.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            let outcome = loop {
                match reader.read(&mut buf) {
                    Ok(0) if got.is_empty() => break "closed without an answer".to_owned(),
                    Ok(0) => {
                        break String::from_utf8_lossy(&got).lines().next().unwrap_or_default().to_owned()
                    }
                    Ok(n) => {
                        answered.store(true, Ordering::SeqCst);
                        got.extend_from_slice(&buf[..n]);
                        if got.windows(2).any(|w| w == b"\r\n") {
                            break String::from_utf8_lossy(&got)
                                .lines()
                                .next()
                                .unwrap_or_default()
                                .to_owned();
                        }
                    }
                    Err(e) => break format!("read error: {e}"),
                }
            };
            answered.store(true, Ordering::SeqCst);
            let _ = tx.send(outcome);
        });
    }
    let chunk =
        [format!("{:x}\r\n", 64 * 1024).into_bytes(), vec![b' '; 64 * 1024], b"\r\n".to_vec()].concat();
    let started = Instant::now();
    let (mut sent, mut stop) = (0u64, "all sent");
    for _ in 0..(1u64 << 30) / (64 * 1024) {
        if answered.load(Ordering::SeqCst) {
            stop = "the server answered";
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            stop = "300 s passed";
            break;
        }
        if c.write_all(&chunk).is_err() {
            stop = "write failed (closed)";
            break;
        }
        sent += 64 * 1024;
    }
    if stop == "all sent" {
        let _ = c.write_all(b"0\r\n\r\n");
    }
    let secs = started.elapsed().as_secs_f64();
    let outcome = rx.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| "no answer in 120 s".into());
    let rss_now = s.rss();
    drop(c);
    let figures = format!(
        "sent {} of 1 GiB in {secs:.1} s (stopped: {stop}); server: \"{outcome}\"; RSS right after {}",
        fmt_bytes(sent),
        rss_now.map(fmt_bytes).unwrap_or_else(|| "?".into())
    );
    Ok(s.row(figures))
}

/// Creates a git target building for [`ARCH`]; its id.
fn create_target(c: &mut Client, name: &str) -> Result<u64, String> {
    let body = format!(
        r#"{{"kind":"git","url":"https://example.org/{name}.git","repo":"{REPO}","arch":["{ARCH}"]}}"#
    );
    let r = c.call(Req::new("POST", "/api/v1/targets").key(ADMIN_KEY).json(body.as_bytes()));
    match r {
        Ok(r) if r.status == 200 => r.json()["data"]["id"].as_u64().ok_or_else(|| "no target id".into()),
        r => Err(format!("creating a target: {}", publish_status(&r))),
    }
}

/// Queues a build of `target`: the new job's id.
fn queue_job(c: &mut Client, target: u64) -> Result<u64, String> {
    let body = format!(r#"{{"target":{target}}}"#);
    match c.call(Req::new("POST", "/api/v1/jobs").key(ADMIN_KEY).json(body.as_bytes())) {
        Ok(r) if r.status == 200 => r.json()["data"][0]["id"].as_u64().ok_or_else(|| "no job id".into()),
        r => Err(format!("queueing a job: {}", publish_status(&r))),
    }
}

/// One poll as an agent: the answer.
fn poll(c: &mut Client, agent: &str, capacity: u64) -> io::Result<Resp> {
    let body = format!(r#"{{"agent_id":"{agent}","arch":"{ARCH}","capacity":{capacity},"wait":0}}"#);
    c.call(Req::new("POST", "/api/v1/jobs/poll").key(AGENT_KEY).json(body.as_bytes()).keep(64 * MIB as usize))
}

/// 7. 310 MB of build log in 8 MiB appends, then 6 parallel reads of it.
fn log_size(o: &Opts) -> Result<Row, String> {
    let mut s = start(o, &[], &[])?;
    let mut c = Client::new(s.addr);
    let target = create_target(&mut c, "logs")?;
    queue_job(&mut c, target)?;
    let agent = "hostile-log-agent";
    let leased = poll(&mut c, agent, 1).map_err(|e| format!("poll: {e}"))?;
    let job = leased.json()["data"][0]["job"]["id"]
        .as_u64()
        .ok_or_else(|| format!("the poll leased nothing: {} {}", leased.status, leased.message()))?;
    let line = b"==> hostile: a line of build output that goes on and on to fill the log quickly ....\n";
    let block: Vec<u8> = line.iter().copied().cycle().take(8 * MIB as usize).collect();
    let appends = 37; // 37 × 8 MiB = 310 MB
    let (mut appended, mut heartbeats) = (Tally::default(), Tally::default());
    let log_path = format!("/api/v1/jobs/{job}/log?agent_id={agent}");
    let beat_path = format!("/api/v1/jobs/{job}/heartbeat");
    let beat = format!(r#"{{"agent_id":"{agent}"}}"#);
    let started = Instant::now();
    for i in 0..appends {
        if started.elapsed() > Duration::from_secs(600) {
            appended.add("stopped at 600 s");
            break;
        }
        appended.add(status(&c.call(Req::new("POST", &log_path).key(AGENT_KEY).body(Body::Bytes(&block)))));
        if i % 4 == 3 {
            heartbeats
                .add(status(&c.call(Req::new("POST", &beat_path).key(AGENT_KEY).json(beat.as_bytes()))));
        }
    }
    let append_secs = started.elapsed().as_secs_f64();
    let on_disk =
        find_file(&s.data, &format!("{job}.log")).and_then(|p| std::fs::metadata(p).ok()).map(|m| m.len());
    let append_peak = s.reset_peak();
    let rss_before = s.rss();
    let path = format!("/api/v1/jobs/{job}/log");
    let (reads, read_secs) = parallel_gets(s.addr, &path, Some(ADMIN_KEY), 6);
    let mut read = Tally::default();
    for r in &reads {
        read.add(match r {
            Ok(r) => format!("{} ({})", r.status, fmt_bytes(r.len)),
            Err(_) => status(r),
        });
    }
    let reads_peak = s.peak_now();
    let figures = format!(
        "{appends} × 8 MiB appends ({}) in {append_secs:.0} s: {appended}; heartbeats {heartbeats}; log on disk {}; append peak {}; RSS before the reads {}; 6 parallel GET …/log: {read} in {read_secs:.1} s; peak during the reads {}",
        fmt_bytes(appends * 8 * MIB),
        on_disk.map(fmt_bytes).unwrap_or_else(|| "none".into()),
        opt_bytes(append_peak),
        opt_bytes(rss_before),
        reads_peak.map(fmt_bytes).unwrap_or_else(|| "? (server gone)".into()),
    );
    Ok(s.row(figures))
}

/// 8. 20,000 requests with invented methods, then the metrics.
fn metrics_methods(o: &Opts) -> Result<Row, String> {
    let s = start(o, &[], &[])?;
    let mut c = Client::new(s.addr);
    let metrics = |c: &mut Client| c.call(Req::get("/api/v1/metrics").keep(0)).map(|r| r.len).ok();
    let size_before = metrics(&mut c);
    let rss_before = s.rss();
    let mut statuses = Tally::default();
    let started = Instant::now();
    let mut sent = 0;
    for i in 0..20_000 {
        if started.elapsed() > Duration::from_secs(300) {
            break;
        }
        statuses.add(status(&c.call(Req::new(&format!("M{i}"), "/"))));
        sent += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    let size_after = metrics(&mut c);
    let rss_after = s.rss();
    let growth = match (rss_before, rss_after) {
        (Some(b), Some(a)) => fmt_signed(a as i64 - b as i64),
        _ => "?".into(),
    };
    let figures = format!(
        "{sent} requests `M{{i}} / HTTP/1.1` in {secs:.1} s: {statuses} ({} reconnects); GET /api/v1/metrics {} → {}; VmRSS {} → {} ({growth})",
        c.reconnects,
        size_before.map(fmt_bytes).unwrap_or_else(|| "?".into()),
        size_after.map(fmt_bytes).unwrap_or_else(|| "?".into()),
        rss_before.map(fmt_bytes).unwrap_or_else(|| "?".into()),
        rss_after.map(fmt_bytes).unwrap_or_else(|| "?".into()),
    );
    Ok(s.row(figures))
}

/// 9. 30 no-op deletes and identical re-publishes: does the db's Last-Modified run ahead of the clock?
fn caching(o: &Opts) -> Result<Row, String> {
    let s = start(o, &[], &[])?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let pkg = small_pkg(tmp.path(), "cached", "1-1", "caching", &[("usr/bin/cached", b"#!/bin/sh\n")])
        .map_err(|e| format!("building: {e}"))?;
    let t = Duration::from_secs(60);
    let first = publish_status(&publish(s.addr, &pkg, t));
    let archive = s.data.join("repos").join(REPO).join(ARCH).join(format!("{REPO}.db.tar.gz"));
    let mtime = || std::fs::metadata(&archive).and_then(|m| m.modified()).ok();
    let mtime_before = mtime();
    let (mut deletes, mut publishes) = (Tally::default(), Tally::default());
    let missing = format!("/{REPO}/{ARCH}/no-such-package");
    let mut c = Client::new(s.addr);
    for _ in 0..30 {
        deletes.add(status(&c.call(Req::new("DELETE", &missing).key(ADMIN_KEY))));
        publishes.add(status(&publish(s.addr, &pkg, t)));
    }
    let db_path = format!("/{REPO}/{ARCH}/{REPO}.db");
    let db = c.call(Req::get(&db_path).keep(0));
    let now = SystemTime::now();
    let last_modified = db.as_ref().ok().and_then(|r| r.header("last-modified")).map(str::to_owned);
    let ahead = last_modified.as_deref().and_then(|lm| httpdate::parse_http_date(lm).ok()).map(|lm| {
        let secs =
            |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        secs(lm) - secs(now)
    });
    let changed = match (mtime_before, mtime()) {
        (Some(a), Some(b)) => yes(a != b),
        _ => "? (no archive file)",
    };
    let figures = format!(
        "first publish {first}; 30 × DELETE of a missing package: {deletes}; 30 × identical re-publish: {publishes}; GET {REPO}.db {}: Last-Modified {} the clock; {REPO}.db.tar.gz mtime changed: {changed}",
        status(&db),
        match ahead {
            Some(a) if a > 0 => format!("{a} s AHEAD of"),
            Some(a) => format!("{} s behind (not ahead of)", -a),
            None => "missing, vs".into(),
        },
    );
    Ok(s.row(figures))
}

/// Percent-encodes everything but unreserved characters.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// 10. Versions and names that are not URL-safe as written.
fn url_unsafe_version(o: &Opts) -> Result<Row, String> {
    let s = start(o, &[], &[])?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut c = Client::new(s.addr);
    let mut parts = Vec::new();
    for (name, version) in [("uv", "1.é-1"), ("a+b", "1+2-1")] {
        let pkg = small_pkg(tmp.path(), name, version, "url-unsafe", &[("usr/share/uv/x", b"x")])
            .map_err(|e| format!("building: {e}"))?;
        let published = publish_status(&publish(s.addr, &pkg, Duration::from_secs(60)));
        let file = format!("{name}-{version}-{ARCH}.pkg.tar.zst");
        let raw = format!("/{REPO}/{ARCH}/{file}");
        let encoded = format!("/{REPO}/{ARCH}/{}", percent_encode(&file));
        let got = |c: &mut Client, p: &str| status(&c.call(Req::get(p).keep(0)));
        parts.push(format!(
            "{name} {version}: publish {published}, GET raw {} / percent-encoded {}",
            got(&mut c, &raw),
            got(&mut c, &encoded)
        ));
    }
    Ok(s.row(parts.join("; ")))
}

/// 11. 2,000 invented agent ids, then one poll asking for a million jobs with 200 queued.
fn agents(o: &Opts) -> Result<Row, String> {
    let s = start(o, &[], &[])?;
    let mut c = Client::new(s.addr);
    let mut polls = Tally::default();
    let started = Instant::now();
    for i in 0..2000 {
        if started.elapsed() > Duration::from_secs(300) {
            polls.add("stopped at 300 s");
            break;
        }
        polls.add(status(&poll(&mut c, &format!("invented-{i:05}"), 1)));
    }
    let poll_secs = started.elapsed().as_secs_f64();
    let listed = c
        .call(Req::get("/api/v1/agents").key(ADMIN_KEY).keep(64 * MIB as usize))
        .map(|r| r.json()["data"].as_array().map_or(0, Vec::len))
        .map_err(|e| format!("GET /api/v1/agents: {e}"))?;
    let mut queued = 0;
    for i in 0..200 {
        let target = create_target(&mut c, &format!("t{i:03}"))?;
        queue_job(&mut c, target)?;
        queued += 1;
    }
    // One agent asking for a million jobs, then again (a poll may be capped while the agent's holdings
    // are not), until a poll leases nothing: at most 10 polls.
    let (mut greedy, mut first, mut total) = (Tally::default(), None, 0);
    for _ in 0..10 {
        let r = poll(&mut c, "greedy", 1_000_000);
        greedy.add(status(&r));
        let n = r.as_ref().ok().and_then(|r| r.json()["data"].as_array().map(Vec::len)).unwrap_or(0);
        first.get_or_insert(n);
        total += n;
        if n == 0 {
            break;
        }
    }
    let figures = format!(
        "2,000 polls with invented ids in {poll_secs:.1} s: {polls}; GET /api/v1/agents lists {listed}; {queued} jobs queued, a poll with capacity 1,000,000 leased {}; repeated by the same agent ({greedy}) it holds {total}",
        first.unwrap_or(0)
    );
    Ok(s.row(figures))
}

// ---- formatting ----

fn fmt_bytes(b: u64) -> String {
    let f = b as f64;
    if b < 1024 {
        format!("{b} B")
    } else if b < MIB {
        format!("{:.1} KiB", f / 1024.0)
    } else if b < 1 << 30 {
        format!("{:.1} MiB", f / MIB as f64)
    } else {
        format!("{:.2} GiB", f / (1u64 << 30) as f64)
    }
}

fn fmt_signed(b: i64) -> String {
    if b < 0 {
        format!("-{}", fmt_bytes(b.unsigned_abs()))
    } else {
        format!("+{}", fmt_bytes(b as u64))
    }
}
