//! Strangers on the network: each test reproduces an attack on the real server binary and checks that the
//! server keeps answering and its data stays as it was.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime};

use common::*;

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

/// A GET /health over a fresh connection; `None` when it does not answer within `timeout`.
fn health(url: &str, timeout: Duration) -> Option<String> {
    let mut conn = TcpStream::connect(addr(url)).ok()?;
    conn.set_read_timeout(Some(timeout)).ok()?;
    conn.set_write_timeout(Some(timeout)).ok()?;
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    conn.read_to_string(&mut out).ok()?;
    out.starts_with("HTTP/1.1 200").then_some(out)
}

/// Sends `head`, then reads the answer's status line (the server may close early).
fn status_of(conn: &mut TcpStream) -> String {
    conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match conn.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&buf).lines().next().unwrap_or_default().to_owned()
}

#[test]
fn silent_connections_under_a_small_fd_limit_do_not_stall_the_server() {
    if !require_tool("prlimit") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_wrapped(
        &dir.path().join("data"),
        &[("VIETER_HEADER_READ_TIMEOUT", "2")],
        &["prlimit", "--nofile=256:256"],
    );
    assert!(health(&server.url, Duration::from_secs(5)).is_some(), "healthy before the attack");

    // 300 connections (more than the server's 256 descriptors): half send a partial request head and
    // stop, half send nothing at all.
    let mut idle = Vec::new();
    for i in 0..300 {
        let mut c = TcpStream::connect(addr(&server.url)).expect("connect (the backlog takes them)");
        if i % 2 == 0 {
            c.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n").unwrap();
        }
        idle.push(c);
    }
    let attacked = Instant::now();
    // The server answers again within header_read_timeout + 2 s.
    let mut answered = None;
    while attacked.elapsed() < Duration::from_secs(4) {
        if health(
            &server.url,
            Duration::from_millis(4000) - attacked.elapsed().min(Duration::from_millis(3900)),
        )
        .is_some()
        {
            answered = Some(attacked.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let answered = answered.expect("/health answered within header_read_timeout + 2 s of the attack");
    eprintln!("/health answered {answered:?} after 300 idle connections");

    // The idle connections were closed by the server (read sees the end), not kept forever.
    let mut closed = 0;
    for c in &mut idle {
        c.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
        let mut buf = [0u8; 512];
        match c.read(&mut buf) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            Ok(n) => panic!("an idle connection got {n} bytes: {:?}", String::from_utf8_lossy(&buf[..n])),
            Err(e) => panic!("an idle connection is still open: {e}"),
        }
    }
    assert_eq!(closed, idle.len());
    // And it still publishes.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let r = publish(&http, &server.url, "r", package("after", "1-1", "x86_64", &[])).await;
        assert_eq!(r.status(), 200);
    });
}

#[test]
fn a_connection_that_sends_nothing_is_closed_after_the_head_timeout() {
    let server = Server::start(&[("VIETER_HEADER_READ_TIMEOUT", "1")]);
    let started = Instant::now();
    let mut c = TcpStream::connect(addr(&server.url)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).expect("the server closes the connection (EOF), no read timeout");
    assert_eq!(n, 0, "closed without an answer");
    assert!(started.elapsed() < Duration::from_secs(10));
    // A kept-alive connection that goes quiet after one request is closed too.
    let mut c = TcpStream::connect(addr(&server.url)).unwrap();
    c.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut all = Vec::new();
    let _ = c.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[test]
fn chunked_bodies_are_counted_against_the_limit() {
    let server = Server::start(&[]);
    // POST /api/v1/targets takes at most 64 KiB; send 64 MiB in chunks without Content-Length.
    let mut c = TcpStream::connect(addr(&server.url)).unwrap();
    let head = format!(
        "POST /api/v1/targets HTTP/1.1\r\nHost: t\r\nX-Api-Key: {KEY}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    c.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0usize;
    for _ in 0..1024 {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if c.write_all(&framed).is_err() {
            break;
        }
        sent += chunk.len();
    }
    let status = status_of(&mut c);
    assert!(status.starts_with("HTTP/1.1 413"), "{status:?} after {sent} bytes");
    assert!(sent < 64 << 20, "the server stopped reading long before 64 MiB");
    assert!(health(&server.url, Duration::from_secs(5)).is_some());
}

#[test]
fn a_stalled_upload_is_dropped_and_leaves_nothing_behind() {
    let server = Server::start(&[("VIETER_BODY_IDLE_TIMEOUT", "1")]);
    let mut c = TcpStream::connect(addr(&server.url)).unwrap();
    let head =
        format!("POST /r/publish HTTP/1.1\r\nHost: t\r\nX-Api-Key: {KEY}\r\nContent-Length: 100000\r\n\r\n");
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]).unwrap();
    let started = Instant::now();
    let status = status_of(&mut c);
    assert!(status.starts_with("HTTP/1.1 408"), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(15));
    // The temp file of the upload is gone and nothing was published.
    std::thread::sleep(Duration::from_millis(200));
    let left: Vec<_> = std::fs::read_dir(server.data.join("tmp")).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(server.pool_files().is_empty());
}

#[tokio::test]
async fn invented_methods_do_not_grow_the_metrics() {
    let server = Server::start(&[]);
    for i in 0..200 {
        let mut c = TcpStream::connect(addr(&server.url)).unwrap();
        c.write_all(format!("INVENTED{i} /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
            .unwrap();
        let _ = status_of(&mut c);
    }
    let http = reqwest::Client::new();
    let text = http.get(format!("{}/api/v1/metrics", server.url)).send().await.unwrap().text().await.unwrap();
    assert!(!text.contains("INVENTED"), "no invented method is a label");
    assert!(text.contains("method=\"other\""), "they are counted as other");
    assert!(text.len() < 64 * 1024, "metrics stay small: {} bytes", text.len());
}

#[tokio::test]
async fn a_db_changed_after_an_arch_repo_was_recreated_is_never_304() {
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    assert_eq!(publish(&http, &server.url, "r", package("one", "1-1", "x86_64", &[])).await.status(), 200);
    let db_url = format!("{}/r/x86_64/r.db", server.url);
    for _ in 0..5 {
        let r = http.get(&db_url).send().await.unwrap();
        let last_modified = r.headers()["last-modified"].to_str().unwrap().to_owned();
        let announced = httpdate::parse_http_date(&last_modified).unwrap();
        assert!(announced <= SystemTime::now(), "never ahead of the clock");
        // Delete the arch-repo and publish something else into it, at once (the same second).
        let d =
            http.delete(format!("{}/r/x86_64", server.url)).header("X-Api-Key", KEY).send().await.unwrap();
        assert_eq!(d.status(), 200);
        assert_eq!(
            publish(&http, &server.url, "r", package("two", "1-1", "x86_64", &[])).await.status(),
            200
        );
        let r = http.get(&db_url).header("If-Modified-Since", &last_modified).send().await.unwrap();
        assert_eq!(r.status(), 200, "the db changed: never 304");
        let names: Vec<String> = libvieter::db::Database::read(&r.bytes().await.unwrap()[..])
            .unwrap()
            .iter()
            .map(|e| e.entry.dir_name())
            .collect();
        assert_eq!(names, ["two-1-1"]);
        // Back to "one" for the next round.
        let d =
            http.delete(format!("{}/r/x86_64", server.url)).header("X-Api-Key", KEY).send().await.unwrap();
        assert_eq!(d.status(), 200);
        assert_eq!(
            publish(&http, &server.url, "r", package("one", "1-1", "x86_64", &[])).await.status(),
            200
        );
    }
}

#[tokio::test]
async fn requests_that_change_nothing_write_nothing() {
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    let pkg = package("same", "1-1", "x86_64", &[("usr/bin/same", b"x")]);
    assert_eq!(publish(&http, &server.url, "r", pkg.clone()).await.status(), 200);
    let db_url = format!("{}/r/x86_64/r.db", server.url);
    let tag = |r: &reqwest::Response| r.headers()["etag"].to_str().unwrap().to_owned();
    let before = tag(&http.get(&db_url).send().await.unwrap());
    let redb_before = std::fs::metadata(server.data.join("vieter.redb")).unwrap().len();
    for _ in 0..30 {
        assert_eq!(publish(&http, &server.url, "r", pkg.clone()).await.status(), 200);
        for path in ["r/x86_64/nothing", "r/aarch64", "nothing"] {
            let d =
                http.delete(format!("{}/{path}", server.url)).header("X-Api-Key", KEY).send().await.unwrap();
            assert_eq!(d.status(), 404, "{path}");
        }
    }
    let r = http.get(&db_url).send().await.unwrap();
    assert_eq!(tag(&r), before, "the archive was not rewritten (its tag is its length and time)");
    let announced = httpdate::parse_http_date(r.headers()["last-modified"].to_str().unwrap()).unwrap();
    assert!(announced <= SystemTime::now());
    assert_eq!(std::fs::metadata(server.data.join("vieter.redb")).unwrap().len(), redb_before);
}

#[tokio::test]
async fn percent_encoded_paths_name_the_same_files() {
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    let pkg = package("a+b@c", "1.0+2-1", "x86_64", &[]);
    assert_eq!(publish(&http, &server.url, "r", pkg.clone()).await.status(), 200);
    let raw = format!("{}/r/x86_64/a+b@c-1.0+2-1-x86_64.pkg.tar.zst", server.url);
    let encoded = format!("{}/r/x86_64/a%2Bb%40c-1.0%2B2-1-x86_64.pkg.tar.zst", server.url);
    assert_eq!(get_bytes(&http, &raw).await, (200, pkg.clone()));
    assert_eq!(get_bytes(&http, &encoded).await, (200, pkg.clone()));
    let r =
        http.get(format!("{}/api/v1/repos/r/x86_64/packages/a%2Bb%40c", server.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // An encoded slash or dot-dot never escapes: not found.
    for bad in ["r/x86_64/..%2F..%2Fvieter.redb", "r/x86_64/%2e%2e", "r%2Fx86_64/r.db"] {
        let (status, _) = get_bytes(&http, &format!("{}/{bad}", server.url)).await;
        assert_eq!(status, 404, "{bad}");
    }
    let d = http
        .delete(format!("{}/r/x86_64/a%2Bb%40c", server.url))
        .header("X-Api-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), 200);
    assert_eq!(get_bytes(&http, &raw).await.0, 404);
}

#[tokio::test]
async fn a_package_detail_pages_its_file_list() {
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    let names: Vec<String> = (0..2500).map(|i| format!("usr/share/big/f{i:05}")).collect();
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
    assert_eq!(publish(&http, &server.url, "r", package("big", "1-1", "x86_64", &files)).await.status(), 200);
    let url = format!("{}/api/v1/repos/r/x86_64/packages/big", server.url);
    let (status, v) = json(http.get(&url).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(v["data"]["files_total"], 2500);
    let first: Vec<String> = serde_json::from_value(v["data"]["files"].clone()).unwrap();
    assert_eq!(first.len(), 1000);
    assert_eq!(first, names[..1000]);
    let (_, v) =
        json(http.get(format!("{url}?files_offset=1999&files_limit=600")).send().await.unwrap()).await;
    let page: Vec<String> = serde_json::from_value(v["data"]["files"].clone()).unwrap();
    assert_eq!(page, names[1999..2500]);
    let (_, v) = json(http.get(format!("{url}?files_offset=5000")).send().await.unwrap()).await;
    assert_eq!(v["data"]["files"], serde_json::json!([]));
    assert_eq!(v["data"]["files_total"], 2500);
    // Long names: a page stops at 512 KiB of names, and paging by what came back reads the whole list.
    let long: Vec<String> = (0..300).map(|i| format!("usr/share/long/{i:04}{}", "n".repeat(3900))).collect();
    let long_files: Vec<(&str, &[u8])> = long.iter().map(|n| (n.as_str(), &b""[..])).collect();
    assert_eq!(
        publish(&http, &server.url, "r", package("long", "1-1", "x86_64", &long_files)).await.status(),
        200
    );
    let long_url = format!("{}/api/v1/repos/r/x86_64/packages/long", server.url);
    let mut seen: Vec<String> = Vec::new();
    while seen.len() < long.len() {
        let page_url = format!("{long_url}?files_limit=10000&files_offset={}", seen.len());
        let (_, v) = json(http.get(&page_url).send().await.unwrap()).await;
        assert_eq!(v["data"]["files_total"], 300);
        let page: Vec<String> = serde_json::from_value(v["data"]["files"].clone()).unwrap();
        assert!(!page.is_empty());
        assert!(page.iter().map(String::len).sum::<usize>() <= 512 * 1024, "a page is bounded in bytes");
        seen.extend(page);
    }
    assert_eq!(seen, long);

    // Replaced by a version with fewer files: no row of the old list is left.
    assert_eq!(
        publish(&http, &server.url, "r", package("big", "2-1", "x86_64", &files[..3])).await.status(),
        200
    );
    let (_, v) = json(http.get(format!("{url}?files_limit=10000")).send().await.unwrap()).await;
    assert_eq!(v["data"]["files_total"], 3);
    assert_eq!(v["data"]["files"].as_array().unwrap().len(), 3);
}
