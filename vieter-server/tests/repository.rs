//! End-to-end tests of the repository server: the real binary on a loopback port, real HTTP, real pacman.

mod common;

use common::*;

#[tokio::test]
async fn publish_serves_file_and_db_entry() {
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    let pkg = package("hello", "1.0-1", "x86_64", &[("usr/bin/hello", b"#!/bin/sh\necho hi\n")]);
    let (status, body) = json(publish(&http, &server.url, "main", pkg.clone()).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["name"], "hello");
    assert_eq!(body["data"]["version"], "1.0-1");
    assert_eq!(body["data"]["archs"], serde_json::json!(["x86_64"]));

    let (status, served) =
        get_bytes(&http, &format!("{}/main/x86_64/hello-1.0-1-x86_64.pkg.tar.zst", server.url)).await;
    assert_eq!(status, 200);
    assert_eq!(served, pkg, "the served package is the uploaded file");

    // The served db entry is exactly what libvieter renders for the file (repo-add's format).
    let parsed = libvieter::package::read_package(&pkg[..], &Default::default()).unwrap();
    let expected =
        libvieter::db::DbEntry::new(&parsed, &parsed.filename(), Default::default(), None).unwrap();
    let entries = served_entries(&http, &server.url, "main", "x86_64").await;
    assert_eq!(entries, vec![("hello-1.0-1".to_owned(), expected.desc.clone())]);
    // .db.tar.gz and .files serve the archives too.
    for name in ["main.db.tar.gz", "main.files", "main.files.tar.gz"] {
        let (status, _) = get_bytes(&http, &format!("{}/main/x86_64/{name}", server.url)).await;
        assert_eq!(status, 200, "{name}");
    }
    let (_, files) = get_bytes(&http, &format!("{}/main/x86_64/main.files", server.url)).await;
    let files_db = libvieter::db::Database::read(&files[..]).unwrap();
    let entry = files_db.iter().next().unwrap();
    assert_eq!(entry.entry.files.as_deref(), Some("%FILES%\nusr/bin/hello\n"));
}

#[tokio::test]
async fn any_packages_go_to_every_arch_and_are_stored_once() {
    let server = Server::start(&[("VIETER_DEFAULT_ARCH", "x86_64")]);
    let http = reqwest::Client::new();
    let arm = package("armonly", "1-1", "aarch64", &[]);
    assert_eq!(publish(&http, &server.url, "r", arm).await.status(), 200);
    let any = package("docs", "2-1", "any", &[("usr/share/doc/docs/README", b"read me")]);
    let (status, body) = json(publish(&http, &server.url, "r", any).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["archs"], serde_json::json!(["aarch64", "x86_64"]));
    for arch in ["aarch64", "x86_64"] {
        let names: Vec<String> =
            served_entries(&http, &server.url, "r", arch).await.into_iter().map(|e| e.0).collect();
        assert!(names.contains(&"docs-2-1".to_owned()), "{arch}: {names:?}");
        let (status, _) =
            get_bytes(&http, &format!("{}/r/{arch}/docs-2-1-any.pkg.tar.zst", server.url)).await;
        assert_eq!(status, 200);
    }
    assert_eq!(server.pool_files().len(), 2, "the any package is stored once");
}

#[tokio::test]
async fn newer_and_older_versions_replace_and_old_files_go() {
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    for version in ["1.0-1", "2.0-1", "1.5-1"] {
        let pkg = package("tool", version, "x86_64", &[("usr/bin/tool", version.as_bytes())]);
        assert_eq!(publish(&http, &server.url, "r", pkg).await.status(), 200);
        let entries = served_entries(&http, &server.url, "r", "x86_64").await;
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0, format!("tool-{version}"));
        assert_eq!(server.pool_files().len(), 1, "the replaced file is deleted");
    }
    let (status, _) =
        get_bytes(&http, &format!("{}/r/x86_64/tool-2.0-1-x86_64.pkg.tar.zst", server.url)).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn republishing_the_same_file_is_idempotent() {
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    let pkg = package("same", "1-1", "x86_64", &[]);
    for _ in 0..3 {
        assert_eq!(publish(&http, &server.url, "r", pkg.clone()).await.status(), 200);
    }
    assert_eq!(served_entries(&http, &server.url, "r", "x86_64").await.len(), 1);
    assert_eq!(server.pool_files().len(), 1);
}

#[tokio::test]
async fn delete_package_arch_and_repo() {
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    for (n, arch) in [("a", "x86_64"), ("b", "x86_64"), ("c", "aarch64")] {
        assert_eq!(publish(&http, &server.url, "r", package(n, "1-1", arch, &[])).await.status(), 200);
    }
    let delete = |path: String| {
        let http = http.clone();
        async move { http.delete(path).header("X-Api-Key", KEY).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(delete(format!("{}/r/x86_64/a", server.url)).await, 200);
    let names: Vec<String> =
        served_entries(&http, &server.url, "r", "x86_64").await.into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["b-1-1"]);
    assert_eq!(delete(format!("{}/r/x86_64/a", server.url)).await, 404, "already gone");
    assert_eq!(delete(format!("{}/r/aarch64", server.url)).await, 200);
    assert_eq!(get_bytes(&http, &format!("{}/r/aarch64/r.db", server.url)).await.0, 404);
    assert_eq!(server.pool_files().len(), 1);
    assert_eq!(delete(format!("{}/r", server.url)).await, 200);
    assert_eq!(get_bytes(&http, &format!("{}/r/x86_64/r.db", server.url)).await.0, 404);
    assert!(server.pool_files().is_empty());
    assert_eq!(delete(format!("{}/r", server.url)).await, 404);
    // Deleting needs the admin key.
    let r = http.delete(format!("{}/r", server.url)).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let server = Server::start(&[("VIETER_MAX_UPLOAD_SIZE", "100000")]);
    let http = reqwest::Client::new();
    let good = package("good", "1-1", "x86_64", &[("usr/share/good", b"x")]);
    assert_eq!(publish(&http, &server.url, "r", good.clone()).await.status(), 200);
    let db_url = format!("{}/r/x86_64/r.db", server.url);
    let (_, db_before) = get_bytes(&http, &db_url).await;
    let pool_before = server.pool_files();

    let no_pkginfo = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(1);
        b.append_data(&mut h, "usr/x", &b"x"[..]).unwrap();
        zstd::encode_all(&b.into_inner().unwrap()[..], 1).unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("random bytes", b"\x00\x01 definitely not a package".to_vec(), 400, "not a package"),
        ("truncated", good[..good.len() / 2].to_vec(), 400, "invalid package"),
        ("no .PKGINFO", no_pkginfo, 400, ".PKGINFO"),
        ("bad name", package("-bad", "1-1", "x86_64", &[]), 400, "pkgname"),
        ("bad version", package("ok", "1.0", "x86_64", &[]), 400, "pkgrel"),
        ("bad arch", package("ok", "1-1", "x86-64", &[]), 400, "arch"),
        ("too large", vec![0u8; 200_000], 413, "limit"),
    ];
    for (what, body, want, needle) in cases {
        let (status, v) = json(publish(&http, &server.url, "r", body).await).await;
        assert_eq!(status, want, "{what}: {v}");
        let message = v["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{what}: message {message:?} should mention {needle:?}");
        assert_eq!(v["data"], serde_json::Value::Null);
    }
    // Authentication: answered before the body is read (curl sends `Expect: 100-continue` and waits).
    for key_header in ["", "X-Api-Key: wrong\r\n"] {
        let head = format!(
            "POST /r/publish HTTP/1.1\r\nHost: x\r\n{key_header}Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            good.len()
        );
        let status_line = raw_status_line(&server.url, head).await;
        assert!(status_line.starts_with("HTTP/1.1 401"), "{key_header:?}: {status_line}");
    }
    // Reserved and invalid repository names.
    for repo in ["api", ".hidden", "a%20b"] {
        let (status, v) = json(publish(&http, &server.url, repo, good.clone()).await).await;
        assert!(status == 400 || status == 404, "{repo}: {status} {v}");
    }
    // No Content-Length (a chunked body) → 411, answered before any body is read.
    let head = format!(
        "POST /r/publish HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let status_line = raw_status_line(&server.url, head).await;
    assert!(status_line.starts_with("HTTP/1.1 411"), "{status_line}");

    let (_, db_after) = get_bytes(&http, &db_url).await;
    assert_eq!(db_before, db_after, "the served db is byte-identical after refused uploads");
    assert_eq!(server.pool_files(), pool_before, "no file was left behind");
    let tmp: Vec<_> = std::fs::read_dir(server.data.join("tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "no temp file left behind");
}

#[tokio::test]
async fn concurrent_publishes_all_land() {
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (http, url) = (http.clone(), server.url.clone());
        tasks.push(tokio::spawn(async move {
            let pkg = package(&format!("pkg{i:02}"), "1-1", if i % 5 == 0 { "any" } else { "x86_64" }, &[]);
            publish(&http, &url, "busy", pkg).await.status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let entries = served_entries(&http, &server.url, "busy", "x86_64").await;
    assert_eq!(entries.len(), 50, "every concurrent publish is in the db");
    assert_eq!(server.pool_files().len(), 50);
}

#[tokio::test]
async fn conditional_and_range_requests() {
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let pkg = package("big", "1-1", "x86_64", &[("usr/share/big", &data)]);
    assert_eq!(publish(&http, &server.url, "r", pkg.clone()).await.status(), 200);
    let url = format!("{}/r/x86_64/big-1-1-x86_64.pkg.tar.zst", server.url);

    let full = http.get(&url).send().await.unwrap();
    let etag = full.headers()["etag"].to_str().unwrap().to_owned();
    let last_modified = full.headers()["last-modified"].to_str().unwrap().to_owned();
    assert_eq!(full.headers()["content-length"].to_str().unwrap(), pkg.len().to_string());

    let r = http.get(&url).header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(r.status(), 304);
    let r = http.get(&url).header("If-Modified-Since", &last_modified).send().await.unwrap();
    assert_eq!(r.status(), 304);
    let r = http.get(&url).header("If-None-Match", "\"other\"").send().await.unwrap();
    assert_eq!(r.status(), 200);

    let r = http.get(&url).header("Range", "bytes=10-19").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"].to_str().unwrap(), format!("bytes 10-19/{}", pkg.len()));
    assert_eq!(r.bytes().await.unwrap().to_vec(), pkg[10..20].to_vec());
    // pacman resumes a .part download with an open range.
    let r = http.get(&url).header("Range", format!("bytes={}-", pkg.len() - 5)).send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().to_vec(), pkg[pkg.len() - 5..].to_vec());
    let r = http.get(&url).header("Range", "bytes=-7").send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), pkg[pkg.len() - 7..].to_vec());
    let r = http.get(&url).header("Range", format!("bytes={}-", pkg.len())).send().await.unwrap();
    assert_eq!(r.status(), 416);

    let r = http.head(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"].to_str().unwrap(), pkg.len().to_string());
    assert!(r.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn path_tricks_never_escape() {
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    assert_eq!(publish(&http, &server.url, "r", package("p", "1-1", "x86_64", &[])).await.status(), 200);
    std::fs::write(server.data.join("secret"), "do not serve").unwrap();
    // Sent byte for byte (an HTTP client library would resolve `..` and `%2e%2e` itself).
    let tricks = [
        "/r/x86_64/..%2F..%2Fsecret",
        "/r/x86_64/%2e%2e",
        "/r/%2e%2e/secret",
        "/%2e%2e/%2e%2e/secret",
        "/r/x86_64/..",
        "/r/x86_64/../../secret",
        "/r/x86_64/../../vieter.redb",
        "/r/x86_64/vieter.redb",
        "/r/x86_64/%00",
        "/r/x86_64/r.db%00",
        "/r/x86_64/p%2F..%2F..%2Fsecret",
        "/pool/x/y",
        "/r/x86_64/p-1-1-x86_64.pkg.tar.zst/..",
        "/r/x86_64/..%2F..%2Fvieter.redb",
        "/r/x86_64/%2e%2e%2f%2e%2e%2fsecret",
        "/api/v1/nothing",
    ];
    for path in tricks.iter().chain(&["/r", "/r/x86_64"]) {
        let (status, body) =
            raw_request(&server.url, format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
                .await;
        assert!(matches!(status, 400 | 404), "GET {path}: {status}");
        assert!(!body.contains("do not serve"), "{path}");
    }
    // The same tricks in a delete, with the admin key, remove nothing.
    for path in tricks {
        let head =
            format!("DELETE {path} HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY}\r\nConnection: close\r\n\r\n");
        let (status, body) = raw_request(&server.url, head).await;
        assert!(matches!(status, 400 | 404), "DELETE {path}: {status} {body}");
    }
    assert!(server.data.join("secret").exists());
    let names: Vec<String> =
        served_entries(&http, &server.url, "r", "x86_64").await.into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["p-1-1"], "nothing was removed");
}

/// Sends a request head on a fresh connection (`Connection: close`) and returns the status and body.
async fn raw_request(url: &str, head: String) -> (u16, String) {
    let addr = url.trim_start_matches("http://").to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.write_all(head.as_bytes()).unwrap();
        let mut text = String::new();
        let _ = conn.read_to_string(&mut text);
        let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn multipart_upload() {
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    let pkg = package("viaform", "3-1", "x86_64", &[]);
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(pkg).file_name("viaform-3-1-x86_64.pkg.tar.zst"));
    let r = http
        .post(format!("{}/r/publish", server.url))
        .header("X-Api-Key", KEY)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, v) = json(r).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["name"], "viaform");
}

#[tokio::test]
async fn repository_rest_api() {
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    let extra = "depend = glibc>=2.0\noptdepend = python: for scripts\n";
    for n in ["alpha", "beta", "gamma"] {
        let pkg = package_with(n, "1-1", "x86_64", &[("usr/share/x", n.as_bytes())], extra);
        assert_eq!(publish(&http, &server.url, "r", pkg).await.status(), 200);
    }
    let (_, repos) = json(http.get(format!("{}/api/v1/repos", server.url)).send().await.unwrap()).await;
    assert_eq!(repos["data"][0]["name"], "r");
    assert_eq!(repos["data"][0]["archs"][0]["packages"], 3);
    let (_, page) = json(
        http.get(format!("{}/api/v1/repos/r/x86_64/packages?limit=2&offset=1", server.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let names: Vec<&str> =
        page["data"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["beta", "gamma"]);
    let (_, found) = json(
        http.get(format!("{}/api/v1/repos/r/x86_64/packages?query=GAM", server.url)).send().await.unwrap(),
    )
    .await;
    assert_eq!(found["data"].as_array().unwrap().len(), 1);
    let (status, detail) =
        json(http.get(format!("{}/api/v1/repos/r/x86_64/packages/beta", server.url)).send().await.unwrap())
            .await;
    assert_eq!(status, 200);
    assert_eq!(detail["data"]["info"]["depends"], serde_json::json!(["glibc>=2.0"]));
    assert_eq!(detail["data"]["files"], serde_json::json!(["usr/share/x"]));
    let (status, _) =
        json(http.get(format!("{}/api/v1/repos/r/x86_64/packages/nope", server.url)).send().await.unwrap())
            .await;
    assert_eq!(status, 404);
    let (status, _) =
        json(http.get(format!("{}/api/v1/repos/nope/x86_64/packages", server.url)).send().await.unwrap())
            .await;
    assert_eq!(status, 404);

    let metrics =
        http.get(format!("{}/api/v1/metrics", server.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("vieter_repo_packages{arch=\"x86_64\",repo=\"r\"} 3"), "{metrics}");
    assert!(
        metrics.contains(
            "vieter_http_requests_total{method=\"POST\",route=\"/{repo}/publish\",status=\"200\"} 3"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn starts_with_only_env_and_generates_a_private_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vieter-server"));
    cmd.env_clear()
        .env("VIETER_ADDRESS", "127.0.0.1:0")
        .env("VIETER_DATA_DIR", &data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line)
        .unwrap();
    let url = line.trim().strip_prefix("vieter-server listening on ").unwrap().to_owned();
    let key_file = data.join("api_key");
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{url}/r/publish"))
        .header("X-Api-Key", key.trim())
        .body(package("k", "1-1", "x86_64", &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let health = http.get(format!("{url}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    // SIGTERM stops it cleanly.
    unsafe_sigterm(child.id());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

fn unsafe_sigterm(pid: u32) {
    let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
}

/// Sends a request head on a fresh connection and returns the response's status line.
async fn raw_status_line(url: &str, head: String) -> String {
    let addr = url.trim_start_matches("http://").to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::{BufRead, Write};
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.write_all(head.as_bytes()).unwrap();
        let mut line = String::new();
        std::io::BufReader::new(conn).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap()
}
