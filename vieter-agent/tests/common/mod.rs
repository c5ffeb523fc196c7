//! Test support for the agent: a Podman service on a private socket, a git daemon on loopback, agent
//! processes, and the server harness of vieter-server's tests.

#![allow(dead_code)]

#[path = "../../../vieter-server/tests/common/mod.rs"]
pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use libvieter::job::{Job, JobId};
use vieter_client::Client;

pub const AGENT_KEY: &str = "test-agent-key";

/// The builder image the tests use (made by scripts/make-builder-image.sh).
pub fn test_image() -> String {
    std::env::var("VIETER_TEST_IMAGE").unwrap_or_else(|_| "localhost/vieter-builder:test".into())
}

/// True when Podman, git and the builder image are here. With CI=true anything missing fails the test.
pub fn require_podman() -> bool {
    for tool in ["podman", "git", "pacman"] {
        if !server::require_tool(tool) {
            return false;
        }
    }
    let image = test_image();
    let exists = Command::new("podman").args(["image", "exists", &image]).status().is_ok_and(|s| s.success());
    if !exists {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("the builder image {image} is missing (scripts/make-builder-image.sh makes it)");
        }
        eprintln!("skipping: builder image {image} missing (scripts/make-builder-image.sh)");
        return false;
    }
    true
}

/// `podman system service` on a socket of its own, stopped when dropped.
pub struct PodmanService {
    child: Child,
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl PodmanService {
    pub fn start() -> PodmanService {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("podman.sock");
        let child = Command::new("podman")
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start podman system service");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "podman's socket did not appear");
            std::thread::sleep(Duration::from_millis(50));
        }
        PodmanService { child, socket, _dir: dir }
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `git daemon` serving the repositories made with [`GitDaemon::repo`] on 127.0.0.1.
pub struct GitDaemon {
    child: Child,
    pub port: u16,
    base: tempfile::TempDir,
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=Test", "-c", "user.email=t@example.org", "-c", "init.defaultBranch=main"])
        .args(args)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl GitDaemon {
    pub fn start() -> GitDaemon {
        let base = tempfile::tempdir().expect("temp dir");
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        // `git daemon` runs `git-daemon` as a child that outlives a killed `git`: start it directly.
        let exec_path = Command::new("git").arg("--exec-path").output().expect("git --exec-path");
        let exec_path = String::from_utf8_lossy(&exec_path.stdout).trim().to_owned();
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .args(["--export-all", "--reuseaddr", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.path().display()))
            .arg(base.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start git daemon");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        GitDaemon { child, port, base }
    }

    /// Creates (or adds a commit to) repository `name` with `files`; returns its clone URL.
    pub fn repo(&self, name: &str, files: &[(&str, &str)]) -> String {
        let dir = self.base.path().join(name);
        if !dir.exists() {
            std::fs::create_dir_all(&dir).expect("mkdir");
            git(&dir, &["init", "-q"]);
        }
        for (path, text) in files {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
            std::fs::write(&file, text).expect("write");
        }
        git(&dir, &["add", "-A"]);
        git(&dir, &["commit", "-q", "-m", "test"]);
        format!("git://127.0.0.1:{}/{name}", self.port)
    }

    /// The commit repository `name`'s HEAD points at.
    pub fn head(&self, name: &str) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(self.base.path().join(name))
            .args(["rev-parse", "HEAD"])
            .output()
            .expect("git rev-parse");
        assert!(out.status.success(), "git rev-parse in {name}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `vieter-agent` binary under test.
pub fn agent_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vieter-agent"))
}

/// A running agent process.
pub struct Agent {
    pub child: Child,
    pub id: String,
    pub data: PathBuf,
}

impl Agent {
    /// Starts agent `id` against `server`, building in containers with the host's network.
    pub fn start(
        id: &str,
        server: &str,
        podman: &PodmanService,
        data: &Path,
        extra: &[(&str, &str)],
    ) -> Agent {
        let mut cmd = Command::new(agent_binary());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("VIETER_ADDRESS", server)
            .env("VIETER_API_KEY", AGENT_KEY)
            .env("VIETER_ID", id)
            .env("VIETER_PODMAN_SOCKET", &podman.socket)
            .env("VIETER_NETWORK", "host")
            .env("VIETER_DATA_DIR", data)
            .env("VIETER_POLL_WAIT", "2")
            .env("VIETER_LOG_LEVEL", std::env::var("VIETER_TEST_AGENT_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start vieter-agent");
        Agent { child, id: id.to_owned(), data: data.to_owned() }
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        self.child.wait().is_ok_and(|s| s.success())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Containers carrying `label=value`, as `podman ps` lists them.
pub fn containers_labelled(label: &str, value: &str) -> Vec<String> {
    let out = Command::new("podman")
        .args(["ps", "-a", "-q", "--filter"])
        .arg(format!("label={label}={value}"))
        .output()
        .expect("podman ps");
    String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect()
}

/// Waits (up to `secs`) until `check` returns something.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until job `id` is final and returns it.
pub async fn finished(client: &Client, id: JobId, secs: u64) -> Job {
    eventually(secs, &format!("job {id} to end"), || async {
        client.job(id).await.ok().filter(|j| j.state().is_final())
    })
    .await
}

/// The whole log of job `id`.
pub async fn log(client: &Client, id: JobId) -> String {
    client.log(id, false).await.expect("log").text().await.expect("log text")
}
