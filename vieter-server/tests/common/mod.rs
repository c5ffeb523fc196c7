//! Test support: start the real `vieter-server` binary, make packages, run real pacman.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub mod aur;

pub const KEY: &str = "test-admin-key";

/// A running server on a free loopback port, killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub data: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a server on a fresh data dir.
    pub fn start(extra_env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let mut s = Server::start_on(&data, extra_env);
        s._dir = Some(dir);
        s
    }

    /// Starts a server on an existing data dir.
    pub fn start_on(data: &Path, extra_env: &[(&str, &str)]) -> Server {
        Server::start_wrapped(data, extra_env, &[])
    }

    /// Starts a server on an existing data dir, run through `wrapper` (e.g. `["prlimit", "--nofile=256"]`).
    pub fn start_wrapped(data: &Path, extra_env: &[(&str, &str)], wrapper: &[&str]) -> Server {
        Server::spawn(&server_binary(), data, extra_env, wrapper, Stdio::inherit())
    }

    /// Starts another build of the server (a benchmark's A/B) on a fresh data dir.
    pub fn start_binary(binary: &Path, extra_env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let mut s = Server::spawn(binary, &data, extra_env, &[], Stdio::inherit());
        s._dir = Some(dir);
        s
    }

    /// Starts a server on an existing data dir with its log (stderr) written to `log`.
    pub fn start_logged(data: &Path, extra_env: &[(&str, &str)], log: &Path) -> Server {
        let file = std::fs::File::create(log).expect("creating the log file");
        Server::spawn(&server_binary(), data, extra_env, &[], Stdio::from(file))
    }

    fn spawn(
        binary: &Path,
        data: &Path,
        extra_env: &[(&str, &str)],
        wrapper: &[&str],
        stderr: Stdio,
    ) -> Server {
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("VIETER_ADDRESS", "127.0.0.1:0")
            .env("VIETER_DATA_DIR", data)
            .env("VIETER_API_KEY", KEY)
            .env("VIETER_LOG_LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start vieter-server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read the listening line");
        let url = line
            .trim()
            .strip_prefix("vieter-server listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        Server { child, url, data: data.to_owned(), _dir: None }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server as a service manager does (SIGTERM), and waits for its clean exit.
    pub fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(sent.success(), "SIGTERM to {pid}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "the server did not stop within 40 s of SIGTERM");
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert!(status.success(), "clean exit after SIGTERM: {status}");
    }

    /// Files in the pool.
    pub fn pool_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.data.join("pool"))
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `vieter-server` binary: Cargo's for this crate's tests; next to the test executable (built on
/// demand) when another crate's tests include this module.
pub fn server_binary() -> PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_vieter-server") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = profile_dir.join("vieter-server");
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-p", "vieter-server"]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("cargo build");
        assert!(status.success(), "building vieter-server failed");
    }
    path
}

/// A package file's bytes: a zstd tar with `.PKGINFO` and the given files.
pub fn package(name: &str, version: &str, arch: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
    package_with(name, version, arch, files, "")
}

/// Like [`package`], with extra `.PKGINFO` lines.
pub fn package_with(name: &str, version: &str, arch: &str, files: &[(&str, &[u8])], extra: &str) -> Vec<u8> {
    let size: usize = files.iter().map(|(_, d)| d.len()).sum();
    let info = format!(
        "pkgname = {name}\npkgbase = {name}\npkgver = {version}\npkgdesc = test package {name}\nurl = https://example.org\nbuilddate = 1700000000\npackager = Test <t@example.org>\nsize = {size}\narch = {arch}\nlicense = MIT\n{extra}"
    );
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data).expect("tar");
    };
    add(".PKGINFO", info.as_bytes(), 0o644);
    for (path, data) in files {
        add(path, data, 0o644);
    }
    let tar = b.into_inner().expect("tar");
    zstd::encode_all(&tar[..], 3).expect("zstd")
}

/// Uploads raw bytes as Vieter's clients do.
pub async fn publish(client: &reqwest::Client, url: &str, repo: &str, body: Vec<u8>) -> reqwest::Response {
    client
        .post(format!("{url}/{repo}/publish"))
        .header("X-Api-Key", KEY)
        .body(body)
        .send()
        .await
        .expect("request")
}

pub async fn json(resp: reqwest::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let v = resp.json::<serde_json::Value>().await.expect("JSON body");
    (status, v)
}

pub async fn get_bytes(client: &reqwest::Client, url: &str) -> (u16, Vec<u8>) {
    let r = client.get(url).send().await.expect("request");
    (r.status().as_u16(), r.bytes().await.expect("body").to_vec())
}

/// The db entries served for an arch-repo: `(dir name, desc)`.
pub async fn served_entries(
    client: &reqwest::Client,
    url: &str,
    repo: &str,
    arch: &str,
) -> Vec<(String, String)> {
    let (status, bytes) = get_bytes(client, &format!("{url}/{repo}/{arch}/{repo}.db")).await;
    assert_eq!(status, 200, "db of {repo}/{arch}");
    let db = libvieter::db::Database::read(&bytes[..]).expect("served db parses");
    db.iter().map(|e| (e.entry.dir_name(), e.entry.desc.clone())).collect()
}

/// True when `tool` is on PATH. With CI=true a missing tool fails the test.
pub fn require_tool(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{tool} is required when CI=true (scripts/setup-test-env.sh installs it)");
        }
        eprintln!("skipping: {tool} is not installed");
    }
    found
}

/// A pacman root configured for one repository on the server.
pub struct Pacman {
    pub dir: tempfile::TempDir,
}

impl Pacman {
    pub fn new(url: &str, repos: &[&str]) -> Pacman {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("root/var/lib/pacman")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("cache")).expect("mkdir");
        let mut conf = String::from("[options]\nArchitecture = x86_64\nSigLevel = Never\n");
        for r in repos {
            conf.push_str(&format!("[{r}]\nServer = {url}/$repo/$arch\n"));
        }
        std::fs::write(dir.path().join("pacman.conf"), conf).expect("pacman.conf");
        Pacman { dir }
    }

    /// A pacman root that requires signed packages and databases, trusting the keys of `keyring`.
    pub fn signed(url: &str, repos: &[&str], keyring: &Keyring) -> Pacman {
        let pacman = Pacman::new(url, repos);
        let conf = pacman.dir.path().join("pacman.conf");
        let text = std::fs::read_to_string(&conf).expect("pacman.conf").replace(
            "SigLevel = Never\n",
            &format!("SigLevel = Required DatabaseRequired\nGPGDir = {}\n", keyring.dir.path().display()),
        );
        std::fs::write(conf, text).expect("pacman.conf");
        pacman
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Runs pacman with this root; returns (success, stdout+stderr).
    pub fn run(&self, args: &[&str]) -> (bool, String) {
        let d = self.dir.path();
        let out = Command::new("pacman")
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
            .output()
            .expect("run pacman");
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }
}

/// A temporary pacman keyring (`pacman-key --gpgdir DIR --init`); its gpg-agent is stopped when
/// dropped.
pub struct Keyring {
    pub dir: tempfile::TempDir,
}

impl Keyring {
    pub fn new() -> Keyring {
        let dir = tempfile::Builder::new().prefix("kr").tempdir_in("/tmp").expect("temp dir");
        let keyring = Keyring { dir };
        keyring.pacman_key(&["--init"]);
        keyring
    }

    fn pacman_key(&self, args: &[&str]) -> String {
        let out = Command::new("pacman-key")
            .arg("--gpgdir")
            .arg(self.dir.path())
            .args(args)
            .output()
            .expect("run pacman-key");
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "pacman-key {args:?}: {text}");
        text
    }

    /// Adds an armored public key and signs it locally (trusts it), as a user does.
    pub fn trust(&self, armored: &str, fingerprint: &str) {
        let file = self.dir.path().join("add.asc");
        std::fs::write(&file, armored).expect("writing a key");
        self.pacman_key(&["--add", file.to_str().expect("a UTF-8 path")]);
        self.pacman_key(&["--lsign-key", fingerprint]);
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.dir.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

/// One JSON request with a key: the status and the body as JSON (`Null` when it is not JSON).
pub async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    key: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = http.request(method, url).header("X-Api-Key", key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("the request reaches the server");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// A temporary GnuPG home with one Ed25519 signing key, as a packager has (`gpg --quick-gen-key`);
/// its gpg-agent is stopped when dropped.
pub struct Gpg {
    pub dir: tempfile::TempDir,
    pub fingerprint: String,
}

impl Gpg {
    pub fn new(user_id: &str) -> Gpg {
        let dir = tempfile::Builder::new().prefix("gpg").tempdir_in("/tmp").expect("temp dir");
        let mut gpg = Gpg { dir, fingerprint: String::new() };
        gpg.run(&["--passphrase", "", "--quick-gen-key", user_id, "ed25519", "sign", "never"]);
        let listing = String::from_utf8(gpg.run(&["--with-colons", "--list-keys", user_id])).expect("UTF-8");
        gpg.fingerprint = listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|l| l.trim_matches(':').split(':').next_back())
            .expect("a fingerprint")
            .to_owned();
        gpg
    }

    /// Runs gpg in this home (`--batch`, no tty); its stdout.
    pub fn run(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(self.dir.path())
            .args(["--batch", "--yes", "--pinentry-mode", "loopback"])
            .args(args)
            .output()
            .expect("run gpg");
        assert!(out.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// `gpg --detach-sign` of `data` (with `--armor` when asked).
    pub fn sign(&self, data: &[u8], armor: bool) -> Vec<u8> {
        let file = self.dir.path().join("data");
        std::fs::write(&file, data).expect("writing data");
        let sig = self.dir.path().join("data.sig");
        let (file, out) = (file.to_str().expect("UTF-8"), sig.to_str().expect("UTF-8"));
        let mut args = vec!["--local-user", &self.fingerprint, "--detach-sign", "--output", out];
        if armor {
            args.push("--armor");
        }
        args.push(file);
        self.run(&args);
        std::fs::read(&sig).expect("the signature")
    }

    /// The armored public key.
    pub fn public_key(&self) -> String {
        String::from_utf8(self.run(&["--armor", "--export", &self.fingerprint])).expect("armor is ASCII")
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.dir.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}
