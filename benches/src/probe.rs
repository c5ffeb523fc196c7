//! A server under measurement and a small HTTP/1.1 client over `TcpStream`, shared by the measurement
//! tools (`hostile`, `ui-live`). Only loopback addresses are spoken to; every wait is bounded.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// The admin key the servers started here accept.
pub const ADMIN_KEY: &str = "hostile-admin-key";
/// The agent key the servers started here accept.
pub const AGENT_KEY: &str = "hostile-agent-key";
pub const MIB: u64 = 1 << 20;

/// The machine, for the figures' header.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_owned())))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores, MemTotal {mem}, Linux {}", kernel.trim())
}

/// What the watchdog saw.
#[derive(Default)]
pub struct Watch {
    pub stop: AtomicBool,
    pub max_rss: AtomicU64,
    pub capped: AtomicBool,
    pub hwm_at_cap: AtomicU64,
}

/// A fresh server process on its own data dir, killed when dropped.
pub struct Server {
    pub child: Arc<Mutex<Child>>,
    pub pid: u32,
    pub addr: SocketAddr,
    pub data: PathBuf,
    pub log: PathBuf,
    pub disk_before: u64,
    /// The highest VmHWM before the last [`Server::reset_peak`].
    pub earlier_peak: u64,
    pub watch: Arc<Watch>,
    pub watcher: Option<std::thread::JoinHandle<()>>,
    pub _dir: tempfile::TempDir,
}

/// A server's figures once it is stopped.
pub struct Stopped {
    pub peak: Option<u64>,
    pub capped: bool,
    pub disk: i64,
}

pub fn lock(child: &Mutex<Child>) -> std::sync::MutexGuard<'_, Child> {
    child.lock().unwrap_or_else(|p| p.into_inner())
}

impl Server {
    /// Starts the server (through `wrapper`, e.g. `prlimit`), with `env` added to the usual variables, and
    /// reads its listening line.
    pub fn start(bin: &Path, rss_cap: u64, env: &[(&str, &str)], wrapper: &[&str]) -> Result<Server, String> {
        let dir = tempfile::Builder::new()
            .prefix("vieter-probe-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let data = dir.path().join("data");
        let log = dir.path().join("server.stderr");
        let stderr = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("VIETER_ADDRESS", "127.0.0.1:0")
            .env("VIETER_DATA_DIR", &data)
            .env("VIETER_API_KEY", ADMIN_KEY)
            .env("VIETER_AGENT_KEY", AGENT_KEY)
            .env("VIETER_LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let pid = child.id();
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the server's stdout is not piped".into());
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            let _ = io::copy(&mut r, &mut io::sink());
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let addr = line
            .trim()
            .strip_prefix("vieter-server listening on http://")
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .filter(|a| a.ip().is_loopback());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            let err = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("unexpected first line {line:?}; stderr: {}", err.trim()));
        };
        let child = Arc::new(Mutex::new(child));
        let watch = Arc::new(Watch::default());
        let watcher = {
            let (watch, child, cap) = (watch.clone(), child.clone(), rss_cap);
            std::thread::spawn(move || {
                while !watch.stop.load(Ordering::SeqCst) {
                    let Some(rss) = proc_status(pid, "VmRSS") else { break };
                    watch.max_rss.fetch_max(rss, Ordering::SeqCst);
                    if rss > cap {
                        watch.hwm_at_cap.store(proc_status(pid, "VmHWM").unwrap_or(rss), Ordering::SeqCst);
                        watch.capped.store(true, Ordering::SeqCst);
                        let _ = lock(&child).kill();
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        let disk_before = dir_bytes(&data);
        Ok(Server {
            child,
            pid,
            addr,
            data,
            log,
            disk_before,
            earlier_peak: 0,
            watch,
            watcher: Some(watcher),
            _dir: dir,
        })
    }

    /// Whether the watchdog killed the server (its RSS passed the cap).
    pub fn capped(&self) -> bool {
        self.watch.capped.load(Ordering::SeqCst)
    }

    pub fn alive(&self) -> bool {
        matches!(lock(&self.child).try_wait(), Ok(None))
    }

    pub fn rss(&self) -> Option<u64> {
        proc_status(self.pid, "VmRSS")
    }

    /// The peak RSS so far, then resets it (`/proc/PID/clear_refs`), so that the next phase has its own.
    pub fn reset_peak(&mut self) -> Option<u64> {
        let peak = proc_status(self.pid, "VmHWM")?;
        self.earlier_peak = self.earlier_peak.max(peak);
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").ok()?;
        Some(peak)
    }

    /// The peak RSS since the start (or the last reset).
    pub fn peak_now(&self) -> Option<u64> {
        proc_status(self.pid, "VmHWM")
    }

    /// The server's stderr so far.
    pub fn stderr(&self) -> Vec<u8> {
        std::fs::read(&self.log).unwrap_or_default()
    }

    pub fn stop(mut self) -> Stopped {
        let hwm = proc_status(self.pid, "VmHWM");
        self.watch.stop.store(true, Ordering::SeqCst);
        {
            let mut child = lock(&self.child);
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
        let capped = self.watch.capped.load(Ordering::SeqCst);
        let at_cap = Some(self.watch.hwm_at_cap.load(Ordering::SeqCst)).filter(|&p| p > 0);
        let sampled = Some(self.watch.max_rss.load(Ordering::SeqCst)).filter(|&p| p > 0);
        let peak = hwm.or(at_cap).or(sampled).map(|p| p.max(self.earlier_peak));
        let disk = dir_bytes(&self.data) as i64 - self.disk_before as i64;
        Stopped { peak, capped, disk }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.watch.stop.store(true, Ordering::SeqCst);
        let mut child = lock(&self.child);
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A `/proc/PID/status` field in bytes (`VmRSS`, `VmHWM`).
pub fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
    let kib: u64 = line.split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// Bytes of all files under `dir` (apparent sizes, symlinks not followed).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The first file named `name` under `dir`.
pub fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let path = e.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if e.file_name().to_str() == Some(name) {
            return Some(path);
        }
    }
    None
}

// ---- HTTP/1.1 over TcpStream ----

#[derive(Clone, Copy)]
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// A request. Bodies of answers are counted; at most `keep` bytes of them are kept.
#[derive(Clone, Copy)]
pub struct Req<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub key: Option<&'a str>,
    pub body: Body<'a>,
    pub keep: usize,
}

impl<'a> Req<'a> {
    pub fn new(method: &'a str, path: &'a str) -> Self {
        Req { method, path, key: None, body: Body::Empty, keep: MIB as usize }
    }
    pub fn get(path: &'a str) -> Self {
        Req::new("GET", path)
    }
    pub fn key(self, key: &'a str) -> Self {
        Req { key: Some(key), ..self }
    }
    pub fn body(self, body: Body<'a>) -> Self {
        Req { body, ..self }
    }
    pub fn json(self, body: &'a [u8]) -> Self {
        self.body(Body::Bytes(body))
    }
    pub fn keep(self, keep: usize) -> Self {
        Req { keep, ..self }
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Length of the whole body (also the bytes not kept).
    pub len: u64,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    /// The `message` of a JSON answer, shortened.
    pub fn message(&self) -> String {
        let v = self.json();
        let m = v["message"].as_str().unwrap_or_default();
        let short: String = m.chars().take(90).collect();
        if short.len() < m.len() {
            format!("{short}…")
        } else {
            short
        }
    }
}

/// The status of an answer, or a short word for why there was none.
pub fn status(r: &io::Result<Resp>) -> String {
    match r {
        Ok(r) => r.status.to_string(),
        Err(e) => match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timeout".into(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => "reset".into(),
            io::ErrorKind::ConnectionRefused => "refused".into(),
            io::ErrorKind::UnexpectedEof => "closed".into(),
            _ => format!("error({e})"),
        },
    }
}

/// One connection.
pub struct Conn {
    pub stream: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(addr: SocketAddr, timeout: Duration) -> io::Result<Conn> {
        let timeout = timeout.max(Duration::from_millis(10));
        let s = TcpStream::connect_timeout(&addr, timeout.min(Duration::from_secs(5)))?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.set_nodelay(true)?;
        Ok(Conn { stream: BufReader::with_capacity(64 * 1024, s) })
    }

    pub fn call(&mut self, req: Req<'_>, close: bool) -> io::Result<Resp> {
        match self.send(req, close) {
            Ok(()) => self.read(req),
            // The server may answer (413, 400) and close before the whole body is sent.
            Err(e) => self.read(req).map_err(|_| e),
        }
    }

    pub fn send(&mut self, req: Req<'_>, close: bool) -> io::Result<()> {
        let mut head = format!("{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\n", req.method, req.path);
        if let Some(key) = req.key {
            head.push_str(&format!("X-Api-Key: {key}\r\n"));
        }
        let length = match req.body {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::File(p) => std::fs::metadata(p)?.len(),
        };
        if length > 0 || !matches!(req.method, "GET" | "HEAD") {
            head.push_str(&format!("Content-Length: {length}\r\n"));
        }
        if matches!(req.body, Body::Bytes(b) if b.first() == Some(&b'{')) {
            head.push_str("Content-Type: application/json\r\n");
        }
        if close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let s = self.stream.get_mut();
        match req.body {
            Body::Empty => s.write_all(head.as_bytes()),
            Body::Bytes(b) if b.len() < 64 * 1024 => s.write_all(&[head.as_bytes(), b].concat()),
            Body::Bytes(b) => {
                s.write_all(head.as_bytes())?;
                s.write_all(b)
            }
            Body::File(p) => {
                s.write_all(head.as_bytes())?;
                let mut f = BufReader::with_capacity(MIB as usize, File::open(p)?);
                io::copy(&mut f, s).map(drop)
            }
        }
    }

    pub fn line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        if self.stream.read_until(b'\n', &mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
        }
        Ok(String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_owned())
    }

    pub fn read(&mut self, req: Req<'_>) -> io::Result<Resp> {
        let (status, headers) = loop {
            let status_line = self.line()?;
            let status: u16 = status_line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, status_line.clone()))?;
            let mut headers = Vec::new();
            loop {
                let l = self.line()?;
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':') {
                    headers.push((k.trim().to_owned(), v.trim().to_owned()));
                }
            }
            if status != 100 {
                break (status, headers);
            }
        };
        let mut resp = Resp { status, headers, body: Vec::new(), len: 0 };
        if req.method == "HEAD" || status == 204 || status == 304 {
            return Ok(resp);
        }
        let chunked = resp.header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
        let length = resp.header("content-length").and_then(|l| l.parse::<u64>().ok());
        if chunked {
            loop {
                let size_line = self.line()?;
                let size = u64::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
                if size == 0 {
                    while !self.line()?.is_empty() {}
                    break;
                }
                self.copy_body(&mut resp, req.keep, Some(size))?;
                self.line()?;
            }
        } else {
            self.copy_body(&mut resp, req.keep, length)?;
        }
        Ok(resp)
    }

    /// Reads `n` bytes of body (all up to the end when `None`), keeping at most `keep` in `resp`.
    pub fn copy_body(&mut self, resp: &mut Resp, keep: usize, n: Option<u64>) -> io::Result<()> {
        let mut left = n.unwrap_or(u64::MAX);
        while left > 0 {
            let buf = self.stream.fill_buf()?;
            if buf.is_empty() {
                if n.is_none() {
                    return Ok(());
                }
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "body cut short"));
            }
            let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let room = keep.saturating_sub(resp.body.len()).min(take);
            resp.body.extend_from_slice(&buf[..room]);
            resp.len += take as u64;
            left -= take as u64;
            self.stream.consume(take);
        }
        Ok(())
    }
}

/// One request on its own connection.
pub fn once(addr: SocketAddr, req: Req<'_>, timeout: Duration) -> io::Result<Resp> {
    Conn::open(addr, timeout)?.call(req, true)
}

/// Requests on a kept-alive connection, opened again when the server closes it.
pub struct Client {
    pub addr: SocketAddr,
    pub conn: Option<Conn>,
    pub timeout: Duration,
    pub reconnects: usize,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr, conn: None, timeout: Duration::from_secs(120), reconnects: 0 }
    }

    pub fn call(&mut self, req: Req<'_>) -> io::Result<Resp> {
        for attempt in 0..2 {
            let conn = match self.conn.as_mut() {
                Some(c) => c,
                None => {
                    if attempt > 0 {
                        self.reconnects += 1;
                    }
                    self.conn.insert(Conn::open(self.addr, self.timeout)?)
                }
            };
            match conn.call(req, false) {
                Ok(r) => {
                    if r.header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close")) {
                        self.conn = None;
                    }
                    return Ok(r);
                }
                // A kept-alive connection the server had closed: once more on a new one.
                Err(_) if attempt == 0 => self.conn = None,
                Err(e) => {
                    self.conn = None;
                    return Err(e);
                }
            }
        }
        Err(io::Error::other("unreachable"))
    }
}
