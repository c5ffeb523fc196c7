//! The server's life and its edges: graceful shutdown finishing an upload, the generated key kept across
//! restarts, `db_format = with_md5`, Content-Length lies, an emptied arch-repo.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use md5::Digest;

/// Starts the real binary with exactly these variables (no key unless given); returns it and its URL.
fn spawn(data: &Path, env: &[(&str, &str)]) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vieter-server"));
    cmd.env_clear()
        .env("VIETER_ADDRESS", "127.0.0.1:0")
        .env("VIETER_DATA_DIR", data)
        .env("VIETER_LOG_LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start vieter-server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("listening line");
    let url = line.trim().strip_prefix("vieter-server listening on ").expect("listening line").to_owned();
    (child, url)
}

fn sigterm(child: &Child) {
    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill");
    assert!(status.success());
}

/// Waits (at most 10 s) for the process to exit after a signal.
fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server did not stop within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn connect(url: &str) -> TcpStream {
    let conn = TcpStream::connect(url.trim_start_matches("http://")).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    conn
}

/// Reads a whole `Connection: close` response: (status, body).
fn read_response(conn: TcpStream) -> (u16, String) {
    let mut text = String::new();
    let _ = BufReader::new(conn).read_to_string(&mut text);
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn publish_head(repo: &str, key: &str, length: usize) -> String {
    format!(
        "POST /{repo}/publish HTTP/1.1\r\nHost: x\r\nX-Api-Key: {key}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    )
}

/// Waits until `dir` is empty (uploads are cleaned up asynchronously after a broken connection).
fn wait_empty(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(dir).expect("dir").next().is_some() {
        assert!(Instant::now() < deadline, "{} is not emptied", dir.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn sigterm_lets_an_upload_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, url) = spawn(&data, &[("VIETER_API_KEY", KEY)]);
    let pkg = package("late", "1-1", "x86_64", &[("usr/share/late", &[7u8; 300_000])]);

    let (url2, pkg2) = (url.clone(), pkg.clone());
    let upload = tokio::task::spawn_blocking(move || {
        let mut conn = connect(&url2);
        conn.write_all(publish_head("r", KEY, pkg2.len()).as_bytes()).unwrap();
        conn.write_all(&pkg2[..pkg2.len() / 2]).unwrap();
        conn.flush().unwrap();
        (conn, pkg2)
    })
    .await
    .unwrap();
    let (mut conn, pkg2) = upload;
    // Half the body is in; now the server is asked to stop.
    std::thread::sleep(Duration::from_millis(200));
    sigterm(&child);
    std::thread::sleep(Duration::from_millis(300));
    // It is still waiting for this request; new connections are no longer accepted.
    assert!(child.try_wait().unwrap().is_none(), "the server waits for the upload in flight");
    assert!(TcpStream::connect(url.trim_start_matches("http://")).is_err(), "no new connections");
    conn.write_all(&pkg2[pkg2.len() / 2..]).unwrap();
    let (status, body) = read_response(conn);
    assert_eq!(status, 200, "{body}");
    let exit = wait_exit(&mut child);
    assert!(exit.success(), "clean exit after SIGTERM: {exit}");

    // The package was published for good.
    let server = Server::start_on(&data, &[]);
    let http = reqwest::Client::new();
    let names: Vec<String> =
        served_entries(&http, &server.url, "r", "x86_64").await.into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["late-1-1"]);
    let (status, served) =
        get_bytes(&http, &format!("{}/r/x86_64/late-1-1-x86_64.pkg.tar.zst", server.url)).await;
    assert_eq!((status, served == pkg), (200, true));
}

/// Live streams of the web interface never end by themselves: stopping the server ends them, so a
/// browser left open on the overview or on a running job does not hold the shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_live_streams_of_open_pages() {
    let dir = tempfile::tempdir().unwrap();
    let agent_key = "lifecycle-agent-key";
    let (mut child, url) = spawn(dir.path(), &[("VIETER_API_KEY", KEY), ("VIETER_AGENT_KEY", agent_key)]);
    let http = reqwest::Client::new();
    let target = serde_json::json!({ "kind": "git", "url": "https://example.invalid/x.git", "repo": "r" });
    let (status, t) =
        call(&http, reqwest::Method::POST, format!("{url}/api/v1/targets"), KEY, Some(target)).await;
    assert_eq!(status, 200, "{t}");
    let queue = serde_json::json!({ "target": t["data"]["id"] });
    let (status, q) =
        call(&http, reqwest::Method::POST, format!("{url}/api/v1/jobs"), KEY, Some(queue)).await;
    assert_eq!(status, 200, "{q}");
    let poll = serde_json::json!({ "agent_id": "a1", "arch": "x86_64", "capacity": 1 });
    let (status, leased) =
        call(&http, reqwest::Method::POST, format!("{url}/api/v1/jobs/poll"), agent_key, Some(poll)).await;
    assert_eq!(status, 200, "{leased}");
    let job = leased["data"][0]["job"]["id"].as_u64().expect("a running job");
    let mut streams = Vec::new();
    for path in ["/ui/events/jobs".to_owned(), format!("/ui/jobs/{job}/events")] {
        let resp = http.get(format!("{url}{path}")).header("X-Api-Key", KEY).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], "text/event-stream", "{path}");
        streams.push(resp);
    }
    let started = Instant::now();
    sigterm(&child);
    let exit = wait_exit(&mut child);
    assert!(exit.success(), "clean exit after SIGTERM with live streams open: {exit}");
    assert!(started.elapsed() < Duration::from_secs(5), "the streams held the shutdown");
    for stream in streams {
        // Each stream ended (the server closed it), it did not just break.
        let rest = stream.bytes().await;
        assert!(rest.is_ok(), "a stream cut off instead of ended: {rest:?}");
    }
}

#[tokio::test]
async fn the_generated_key_is_kept_and_key_files_are_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let http = reqwest::Client::new();
    let (mut first, url) = spawn(&data, &[]);
    let key_path = data.join("api_key");
    let key = std::fs::read_to_string(&key_path).unwrap();
    assert_eq!(key.trim().len(), 64, "a 256-bit hex key: {key:?}");
    assert_eq!(std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777, 0o600);
    let r = publish_with(&http, &url, key.trim(), package("a", "1-1", "x86_64", &[])).await;
    assert_eq!(r, 200);
    sigterm(&first);
    assert!(wait_exit(&mut first).success());

    // The next start reuses it.
    let (mut second, url) = spawn(&data, &[]);
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), key);
    assert_eq!(publish_with(&http, &url, key.trim(), package("b", "1-1", "x86_64", &[])).await, 200);
    assert_eq!(publish_with(&http, &url, "wrong", package("c", "1-1", "x86_64", &[])).await, 401);
    sigterm(&second);
    assert!(wait_exit(&mut second).success());

    // VIETER_API_KEY_FILE: the configured key wins over the stored one.
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "from-a-file\n").unwrap();
    let (mut third, url) = spawn(&data, &[("VIETER_API_KEY_FILE", secret.to_str().unwrap())]);
    assert_eq!(publish_with(&http, &url, "from-a-file", package("d", "1-1", "x86_64", &[])).await, 200);
    assert_eq!(publish_with(&http, &url, key.trim(), package("e", "1-1", "x86_64", &[])).await, 401);
    sigterm(&third);
    assert!(wait_exit(&mut third).success());

    // A broken configuration is named and stops the start.
    let out = Command::new(env!("CARGO_BIN_EXE_vieter-server"))
        .env_clear()
        .env("VIETER_DATA_DIR", &data)
        .env("VIETER_MAX_UPLOAD_SIZE", "a lot")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("VIETER_MAX_UPLOAD_SIZE"));
}

async fn publish_with(http: &reqwest::Client, url: &str, key: &str, body: Vec<u8>) -> u16 {
    let r = http.post(format!("{url}/r/publish")).header("X-Api-Key", key).body(body).send().await.unwrap();
    r.status().as_u16()
}

#[tokio::test]
async fn with_md5_adds_the_checksum_pacman_6_0_knows() {
    let server = Server::start(&[("VIETER_DB_FORMAT", "with_md5")]);
    let http = reqwest::Client::new();
    let pkg = package("summed", "1-1", "x86_64", &[("usr/share/summed", b"sum me")]);
    assert_eq!(publish(&http, &server.url, "r", pkg.clone()).await.status(), 200);
    let entries = served_entries(&http, &server.url, "r", "x86_64").await;
    let desc = &entries[0].1;
    let md5 = hex::encode(md5::Md5::digest(&pkg));
    assert!(desc.contains(&format!("%MD5SUM%\n{md5}\n\n")), "{desc}");
    assert!(desc.find("%MD5SUM%") < desc.find("%SHA256SUM%"), "repo-add's order: {desc}");

    // The default format has no MD5.
    let plain = Server::start(&[]);
    assert_eq!(publish(&http, &plain.url, "r", pkg).await.status(), 200);
    let entries = served_entries(&http, &plain.url, "r", "x86_64").await;
    assert!(!entries[0].1.contains("%MD5SUM%"), "{}", entries[0].1);
}

#[tokio::test]
async fn content_length_lies_change_nothing() {
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    let good = package("good", "1-1", "x86_64", &[("usr/share/good", &[1u8; 50_000])]);
    assert_eq!(publish(&http, &server.url, "r", good).await.status(), 200);
    let db_url = format!("{}/r/x86_64/r.db", server.url);
    let (_, db_before) = get_bytes(&http, &db_url).await;
    let pool_before = server.pool_files();
    let other = package("other", "1-1", "x86_64", &[("usr/share/other", &[2u8; 50_000])]);

    let url = server.url.clone();
    let other2 = other.clone();
    let (longer_body, shorter_body) = tokio::task::spawn_blocking(move || {
        // The body is longer than announced: only the announced bytes are the package, and they are
        // not a whole one.
        let mut conn = connect(&url);
        conn.write_all(publish_head("r", KEY, other2.len() - 100).as_bytes()).unwrap();
        conn.write_all(&other2).unwrap();
        let longer = read_response(conn);
        // The body ends before the announced length: the upload is dropped.
        let mut conn = connect(&url);
        conn.write_all(publish_head("r", KEY, other2.len() + 100).as_bytes()).unwrap();
        conn.write_all(&other2).unwrap();
        conn.shutdown(std::net::Shutdown::Write).unwrap();
        let shorter = read_response(conn);
        (longer, shorter)
    })
    .await
    .unwrap();
    assert_eq!(longer_body.0, 400, "{}", longer_body.1);
    assert!(longer_body.1.contains("invalid package"), "{}", longer_body.1);
    assert!(matches!(shorter_body.0, 0 | 400), "{shorter_body:?}");

    wait_empty(&server.data.join("tmp"));
    let (_, db_after) = get_bytes(&http, &db_url).await;
    assert_eq!(db_before, db_after, "the served db is byte-identical");
    assert_eq!(server.pool_files(), pool_before);
}

#[tokio::test]
async fn an_emptied_arch_repo_serves_an_empty_db_until_it_is_deleted() {
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    assert_eq!(publish(&http, &server.url, "r", package("only", "1-1", "x86_64", &[])).await.status(), 200);
    let delete = |path: &str| {
        let (http, url) = (http.clone(), format!("{}/{path}", server.url));
        async move { http.delete(url).header("X-Api-Key", KEY).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(delete("r/x86_64/only").await, 200);
    assert!(server.pool_files().is_empty(), "the package file is gone");
    let (status, db) = get_bytes(&http, &format!("{}/r/x86_64/r.db", server.url)).await;
    assert_eq!(status, 200, "pacman still finds a (now empty) database");
    assert!(libvieter::db::Database::read(&db[..]).unwrap().is_empty());
    if require_tool("pacman") {
        let pacman = Pacman::new(&server.url, &["r"]);
        let (ok, out) = pacman.run(&["-Sy"]);
        assert!(ok, "{out}");
        let (ok, out) = pacman.run(&["-Sl", "r"]);
        assert!(ok && out.trim().is_empty(), "{out}");
    }
    // An arch the repository never had, and a deleted arch-repo, have no database.
    assert_eq!(get_bytes(&http, &format!("{}/r/aarch64/r.db", server.url)).await.0, 404);
    assert_eq!(delete("r/x86_64").await, 200);
    assert_eq!(get_bytes(&http, &format!("{}/r/x86_64/r.db", server.url)).await.0, 404);
    assert!(!server.data.join("repos/r").exists(), "its archives are removed");
}

#[tokio::test]
async fn any_packages_reach_the_arches_present_when_published() {
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    let any = package("docs", "1-1", "any", &[]);
    let (status, v) = json(publish(&http, &server.url, "r", any.clone()).await).await;
    assert_eq!((status, v["data"]["archs"].clone()), (200, serde_json::json!(["x86_64"])));
    // A new arch-repo does not receive earlier `any` packages...
    assert_eq!(publish(&http, &server.url, "r", package("arm", "1-1", "aarch64", &[])).await.status(), 200);
    let names: Vec<String> =
        served_entries(&http, &server.url, "r", "aarch64").await.into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["arm-1-1"]);
    // ...until they are published again; the file is still stored once.
    let (status, v) = json(publish(&http, &server.url, "r", any).await).await;
    assert_eq!((status, v["data"]["archs"].clone()), (200, serde_json::json!(["aarch64", "x86_64"])));
    assert_eq!(server.pool_files().len(), 2);
}

#[tokio::test]
async fn db_downloads_are_conditional_and_never_stale() {
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    assert_eq!(publish(&http, &server.url, "r", package("one", "1-1", "x86_64", &[])).await.status(), 200);
    let db_url = format!("{}/r/x86_64/r.db", server.url);
    // Fetched within the second of the change, the db is announced as of the second before: another
    // change may still come within this second, and pacman's If-Modified-Since has whole seconds.
    let fresh = http.get(&db_url).send().await.unwrap();
    let fresh_lm = httpdate::parse_http_date(fresh.headers()["last-modified"].to_str().unwrap()).unwrap();
    assert!(fresh_lm <= std::time::SystemTime::now(), "Last-Modified is never ahead of the clock");
    next_second().await;
    let first = http.get(&db_url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["content-type"], "application/gzip");
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let last_modified = first.headers()["last-modified"].to_str().unwrap().to_owned();
    let first_body = first.bytes().await.unwrap();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "a strong tag: {etag}");

    // Unchanged: 304 for either validator, and HEAD gives the length GET would send.
    let r = http.get(&db_url).header("If-Modified-Since", &last_modified).send().await.unwrap();
    assert_eq!(r.status(), 304);
    let r = http.get(&db_url).header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(r.status(), 304);
    let r = http.head(&db_url).send().await.unwrap();
    assert_eq!(r.headers()["content-length"].to_str().unwrap(), first_body.len().to_string());
    let r = http.get(&db_url).header("Range", "bytes=0-9").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), first_body.slice(0..10));

    // Republishing the same file, or deleting what is not there, changes nothing: same validators.
    assert_eq!(publish(&http, &server.url, "r", package("one", "1-1", "x86_64", &[])).await.status(), 200);
    let r = http
        .delete(format!("{}/r/x86_64/nothing", server.url))
        .header("X-Api-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http.get(&db_url).send().await.unwrap();
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(r.headers()["last-modified"].to_str().unwrap(), last_modified);

    // A change within the same second is never answered 304 (pacman sends If-Modified-Since).
    assert_eq!(publish(&http, &server.url, "r", package("two", "1-1", "x86_64", &[])).await.status(), 200);
    let r = http.get(&db_url).header("If-Modified-Since", &last_modified).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_ne!(r.headers()["etag"].to_str().unwrap(), etag);
    let names: Vec<String> = libvieter::db::Database::read(&r.bytes().await.unwrap()[..])
        .unwrap()
        .iter()
        .map(|e| e.entry.dir_name())
        .collect();
    assert_eq!(names, ["one-1-1", "two-1-1"]);
    let r = http.get(&db_url).header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // No signatures are stored: .sig is 404 (pacman with SigLevel Optional goes on without).
    let (status, body) =
        get_bytes(&http, &format!("{}/r/x86_64/one-1-1-x86_64.pkg.tar.zst.sig", server.url)).await;
    assert_eq!(status, 404);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["message"].as_str().unwrap().contains("not found"), "{v}");
}

#[tokio::test]
async fn a_restart_keeps_intact_archives_and_rewrites_damaged_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let http = reqwest::Client::new();
    let validators = |r: &reqwest::Response| {
        (
            r.headers()["etag"].to_str().unwrap().to_owned(),
            r.headers()["last-modified"].to_str().unwrap().to_owned(),
        )
    };
    let mut server = Server::start_on(&data, &[]);
    assert_eq!(publish(&http, &server.url, "r", package("kept", "1-1", "x86_64", &[])).await.status(), 200);
    next_second().await;
    let before = http.get(format!("{}/r/x86_64/r.db", server.url)).send().await.unwrap();
    let (etag, last_modified) = validators(&before);
    let db_before = before.bytes().await.unwrap();
    // Stopped as a service is: what it held in memory only is in the files.
    server.stop();

    // Intact: same bytes, same validators, so pacman's If-Modified-Since still gets 304.
    let mut server = Server::start_on(&data, &[]);
    let db_url = format!("{}/r/x86_64/r.db", server.url);
    let r = http.get(&db_url).send().await.unwrap();
    assert_eq!(validators(&r), (etag.clone(), last_modified.clone()));
    assert_eq!(r.bytes().await.unwrap(), db_before);
    let r = http.get(&db_url).header("If-Modified-Since", &last_modified).send().await.unwrap();
    assert_eq!(r.status(), 304);
    server.kill();

    // Damaged (cut short) and a leftover temp file: rewritten from redb, the leftover removed.
    let archive = data.join("repos/r/x86_64/r.db.tar.gz");
    let bytes = std::fs::read(&archive).unwrap();
    std::fs::write(&archive, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(data.join("repos/r/x86_64/.r.files.tar.gz.tmp"), b"half").unwrap();
    let server = Server::start_on(&data, &[]);
    let (status, served) = get_bytes(&http, &format!("{}/r/x86_64/r.db", server.url)).await;
    assert_eq!(status, 200);
    let names: Vec<String> =
        libvieter::db::Database::read(&served[..]).unwrap().iter().map(|e| e.entry.dir_name()).collect();
    assert_eq!(names, ["kept-1-1"]);
    assert!(!data.join("repos/r/x86_64/.r.files.tar.gz.tmp").exists());
}

#[tokio::test]
async fn the_agent_key_publishes_but_never_deletes() {
    let server = Server::start(&[("VIETER_AGENT_KEY", "agent-key")]);
    let http = reqwest::Client::new();
    let pkg = package("built", "1-1", "x86_64", &[]);
    assert_eq!(publish_with(&http, &server.url, "agent-key", pkg).await, 200);
    for path in ["r/x86_64/built", "r/x86_64", "r"] {
        let r = http
            .delete(format!("{}/{path}", server.url))
            .header("X-Api-Key", "agent-key")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    let names: Vec<String> =
        served_entries(&http, &server.url, "r", "x86_64").await.into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["built-1-1"]);
}

#[tokio::test]
async fn a_config_file_is_read_and_the_environment_overrides_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("from-file");
    let config = dir.path().join("vieter.toml");
    std::fs::write(
        &config,
        format!(
            "address = \"127.0.0.1:0\"\ndata_dir = \"{}\"\napi_key = \"file-key\"\ndefault_arch = \"aarch64\"\nmax_upload_size = 1000\n",
            data.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vieter-server"));
    cmd.env_clear()
        .arg("--config")
        .arg(&config)
        .env("VIETER_MAX_UPLOAD_SIZE", "100000")
        .env("VIETER_LOG_LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("vieter-server listening on ").unwrap().to_owned();
    let http = reqwest::Client::new();
    // The file's key and default arch, the environment's upload limit (the file's 1000 would refuse it).
    let any = package("docs", "1-1", "any", &[("usr/share/doc/docs", &[3u8; 2000])]);
    let r =
        http.post(format!("{url}/r/publish")).header("X-Api-Key", "file-key").body(any).send().await.unwrap();
    let (status, v) = json(r).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["archs"], serde_json::json!(["aarch64"]));
    assert!(data.join("vieter.redb").exists(), "the file's data_dir is used");
    sigterm(&child);
    assert!(wait_exit(&mut child).success());

    // An unknown key is refused, naming it.
    std::fs::write(&config, "adress = \"127.0.0.1:0\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vieter-server"))
        .env_clear()
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("adress"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until the wall clock's second has turned (a db changed in an earlier second is announced as
/// of that second).
async fn next_second() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let rest = std::time::Duration::from_secs(1) - std::time::Duration::from_nanos(now.subsec_nanos() as u64);
    tokio::time::sleep(rest + std::time::Duration::from_millis(20)).await;
}
