//! `vieter migrate` from a stand-in of a Vieter 0.6 server to the real server.
//!
//! The stand-in is written from Vieter's source (tag 0.6.0): `GET /api/v1/targets` answers
//! `{"message": "", "data": [...]}` with Vieter's `Target` (`id, kind, url, branch, repo, schedule, path,
//! arch: [{id, target_id, value}]`, unset strings empty) paged by `limit`/`offset`; every API route
//! needs `X-Api-Key`; `GET /{repo}/{arch}/{file}` serves `{repo}.db` as `{repo}.db.tar.gz` and
//! `*.pkg*` from the arch-repo's directory (`server/repo.v`), which is made by the real `repo-add`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../../vieter-server/tests/common/mod.rs"]
mod common;

use common::{require_tool, Server, KEY};
use serde_json::{json, Value};

const OLD_KEY: &str = "old-vieter-key";

/// A Vieter 0.6 stand-in serving `targets` and the files under `root`; its address.
fn vieter06(targets: Value, root: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (targets, root) = (targets.clone(), root.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let target = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let mut key = None;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = h.split_once(':') {
                        if name.eq_ignore_ascii_case("x-api-key") {
                            key = Some(value.trim().to_owned());
                        }
                    }
                }
                let (status, body) = answer(&target, key.as_deref(), &targets, &root);
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            });
        }
    });
    format!("http://{addr}")
}

fn answer(target: &str, key: Option<&str>, targets: &Value, root: &Path) -> (&'static str, Vec<u8>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v.to_owned()))
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", "v1", "targets"] => {
            if key != Some(OLD_KEY) {
                return ("401 Unauthorized", Vec::new());
            }
            // models.TargetFilter: limit 25 by default, offset 0.
            let limit: usize = param("limit").and_then(|v| v.parse().ok()).unwrap_or(25);
            let offset: usize = param("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
            let page: Vec<Value> =
                targets.as_array().unwrap().iter().skip(offset).take(limit).cloned().collect();
            ("200 OK", serde_json::to_vec(&json!({"message": "", "data": page})).unwrap())
        }
        [repo, arch, file] => {
            let name = if ["db", "files"].iter().any(|e| *file == format!("{repo}.{e}")) {
                format!("{file}.tar.gz")
            } else if file.contains(".pkg") {
                file.to_string()
            } else {
                return ("404 Not Found", Vec::new());
            };
            match std::fs::read(root.join(repo).join(arch).join(name)) {
                Ok(bytes) => ("200 OK", bytes),
                Err(_) => ("404 Not Found", Vec::new()),
            }
        }
        _ => ("404 Not Found", Vec::new()),
    }
}

fn package(dir: &Path, name: &str, arch: &str) -> PathBuf {
    let info = format!("pkgname = {name}\npkgver = 1.0-1\narch = {arch}\nsize = 1\npkgdesc = migrated\n");
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in [(".PKGINFO", info.as_bytes()), (&*format!("usr/share/{name}/file"), b"x".as_slice())]
    {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, data).unwrap();
    }
    let path = dir.join(format!("{name}-1.0-1-{arch}.pkg.tar.zst"));
    std::fs::write(&path, zstd::encode_all(&b.into_inner().unwrap()[..], 3).unwrap()).unwrap();
    path
}

/// Vieter's layout: each arch-repo's directory holds its packages (`any` ones in every arch) and the
/// db `repo-add` made. `armv7h` holds only an `any` package.
fn old_repo(root: &Path) {
    let arches: [(&str, &[(&str, &str)]); 3] = [
        ("x86_64", &[("alpha", "x86_64"), ("beta", "any")]),
        ("aarch64", &[("gamma", "aarch64"), ("beta", "any")]),
        ("armv7h", &[("beta", "any")]),
    ];
    for (arch, packages) in arches {
        let dir = root.join("bur").join(arch);
        std::fs::create_dir_all(&dir).unwrap();
        let files: Vec<PathBuf> = packages.iter().map(|(n, a)| package(&dir, n, a)).collect();
        let out =
            Command::new("repo-add").arg("-q").arg(dir.join("bur.db.tar.gz")).args(&files).output().unwrap();
        assert!(out.status.success(), "repo-add: {}", String::from_utf8_lossy(&out.stderr));
    }
    // repo-add wrote the same `any` file twice: make them byte-identical, as Vieter's hard link was.
    let beta = "beta-1.0-1-any.pkg.tar.zst";
    assert_eq!(
        std::fs::read(root.join("bur/x86_64").join(beta)).unwrap(),
        std::fs::read(root.join("bur/aarch64").join(beta)).unwrap()
    );
}

fn targets() -> Value {
    let arch = |id: u64, a: &[&str]| -> Value {
        a.iter()
            .enumerate()
            .map(|(i, v)| json!({"id": id * 10 + i as u64, "target_id": id, "value": v}))
            .collect()
    };
    json!([
        {"id": 1, "kind": "git", "url": "https://aur.archlinux.org/alpha.git", "branch": "", "repo": "bur",
         "schedule": "0 3", "path": "", "arch": arch(1, &["x86_64"])},
        {"id": 2, "kind": "git", "url": "https://example.org/mono.git", "branch": "main", "repo": "bur",
         "schedule": "", "path": "pkgs/gamma", "arch": arch(2, &["aarch64", "x86_64"])},
        {"id": 3, "kind": "url", "url": "https://example.org/x/PKGBUILD", "branch": "", "repo": "other",
         "schedule": "*/30 *", "path": "", "arch": arch(3, &["x86_64"])},
        {"id": 4, "kind": "git", "url": "https://aur.archlinux.org/alpha.git", "branch": "", "repo": "bur",
         "schedule": "", "path": "", "arch": arch(4, &["x86_64"])},
    ])
}

fn migrate(s: &Server, from: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vieter"))
        .env_remove("VIETER_ADDRESS")
        .env_remove("VIETER_API_KEY")
        .env("VIETER_CONFIG", "/nonexistent/vieter.toml")
        .args(["--server", &s.url, "--api-key", KEY, "migrate", "--from", from, "--from-api-key", OLD_KEY])
        .args(["--arch", "armv7h"])
        .args(extra)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

async fn get(http: &reqwest::Client, url: String) -> Value {
    let r = http.get(url).header("X-Api-Key", KEY).send().await.unwrap();
    r.json().await.unwrap()
}

async fn names(http: &reqwest::Client, s: &Server, arch: &str) -> Vec<String> {
    let v = get(http, format!("{}/api/v1/repos/bur/{arch}/packages", s.url)).await;
    let mut n: Vec<String> = v["data"]
        .as_array()
        .map(|a| a.iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    n.sort();
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn migrates_targets_and_repositories_from_vieter_06() {
    if !require_tool("repo-add") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    old_repo(root.path());
    let from = vieter06(targets(), root.path().to_owned());
    let s = Server::start(&[]);
    let http = reqwest::Client::new();
    // Target 2 is here already (created by hand, other arches and schedule).
    let here = json!({"kind": "git", "url": "https://example.org/mono.git", "branch": "main", "path": "pkgs/gamma",
                      "repo": "bur", "arch": ["aarch64"]});
    let r = http
        .post(format!("{}/api/v1/targets", s.url))
        .header("X-Api-Key", KEY)
        .json(&here)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A wrong key for the old server is named.
    let out = Command::new(env!("CARGO_BIN_EXE_vieter"))
        .env("VIETER_CONFIG", "/nonexistent/vieter.toml")
        .args(["--server", &s.url, "--api-key", KEY, "migrate", "--from", &from, "--from-api-key", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("401"), "{}", text(&out));

    // The dry run prints the plan and changes nothing.
    let out = migrate(&s, &from, &["--dry-run"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("target 1: would create git https://aur.archlinux.org/alpha.git -> bur (x86_64)"),
        "{t}"
    );
    assert!(t.contains("target 2: exists here as target 1, left alone"), "{t}");
    assert!(t.contains("target 4: the same as old target 1, created once"), "{t}");
    assert!(t.contains("bur/x86_64: 2 packages, 2 to copy, 0 already here"), "{t}");
    assert!(t.contains("other/x86_64: not on the old server"), "{t}");
    assert!(t.contains("would copy bur/aarch64/gamma-1.0-1-aarch64.pkg.tar.zst"), "{t}");
    assert!(t.contains("bur/armv7h: 1 packages, 1 to copy, 0 already here"), "{t}");
    assert!(t.contains("bur/armv7h: would create the arch-repo"), "{t}");
    let listed = get(&http, format!("{}/api/v1/targets", s.url)).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "the dry run created nothing");
    assert!(names(&http, &s, "x86_64").await.is_empty());

    // A package whose file does not match its db entry is refused, one larger than its entry says
    // is not downloaded past that size; the rest is copied.
    let alpha = root.path().join("bur/x86_64/alpha-1.0-1-x86_64.pkg.tar.zst");
    let good = std::fs::read(&alpha).unwrap();
    let mut bad = good.clone();
    *bad.last_mut().unwrap() ^= 1;
    std::fs::write(&alpha, &bad).unwrap();
    let gamma = root.path().join("bur/aarch64/gamma-1.0-1-aarch64.pkg.tar.zst");
    let good_gamma = std::fs::read(&gamma).unwrap();
    let mut huge = good_gamma.clone();
    huge.resize(good_gamma.len() + 4 * 1024 * 1024, 0);
    std::fs::write(&gamma, &huge).unwrap();
    let out = migrate(&s, &from, &[]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("alpha-1.0-1-x86_64.pkg.tar.zst") && t.contains("SHA-256"), "{t}");
    assert!(
        t.contains(&format!(
            "gamma-1.0-1-aarch64.pkg.tar.zst: the answer is larger than the {} bytes",
            good_gamma.len()
        )),
        "{t}"
    );
    assert!(t.contains("run again to resume"), "{t}");
    assert!(t.contains("bur/armv7h: created the arch-repo"), "{t}");
    assert!(
        t.lines().any(|l| l.starts_with("copied bur/") && l.ends_with("/beta-1.0-1-any.pkg.tar.zst")),
        "{t}"
    );
    assert_eq!(names(&http, &s, "aarch64").await, ["beta"]);
    assert_eq!(names(&http, &s, "x86_64").await, ["beta"], "beta is an `any` package: every arch-repo");
    assert_eq!(
        names(&http, &s, "armv7h").await,
        ["beta"],
        "an arch-repo of only `any` packages is recreated"
    );

    // The targets: Vieter's fields, empty strings absent, the url target's repo too.
    let listed = get(&http, format!("{}/api/v1/targets", s.url)).await;
    let all = listed["data"].as_array().unwrap();
    assert_eq!(all.len(), 3, "{listed}\n{t}");
    let alpha_t = all.iter().find(|t| t["url"] == "https://aur.archlinux.org/alpha.git").unwrap();
    assert_eq!(
        (alpha_t["kind"].as_str(), alpha_t["branch"].as_str(), alpha_t["schedule"].as_str()),
        (Some("git"), None, Some("0 3 * *"))
    );
    let url_t = all.iter().find(|t| t["kind"] == "url").unwrap();
    assert_eq!((url_t["repo"].as_str(), url_t["arch"].clone()), (Some("other"), json!(["x86_64"])));

    // Resumed: what is here is skipped, the repaired files copied; the targets are left alone.
    std::fs::write(&alpha, &good).unwrap();
    std::fs::write(&gamma, &good_gamma).unwrap();
    let out = migrate(&s, &from, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("target 1: exists here as target"), "{t}");
    assert!(t.contains("bur/x86_64: 2 packages, 1 to copy, 1 already here"), "{t}");
    assert!(t.contains("bur/aarch64: 2 packages, 1 to copy, 1 already here"), "{t}");
    assert!(t.contains("bur/armv7h: 1 packages, 0 to copy, 1 already here"), "{t}");
    assert!(!t.contains("created the arch-repo"), "they exist: {t}");
    assert!(t.contains("packages: 2 copied, 3 already here"), "{t}");
    assert_eq!(names(&http, &s, "x86_64").await, ["alpha", "beta"]);
    assert_eq!(names(&http, &s, "aarch64").await, ["beta", "gamma"]);
    let listed = get(&http, format!("{}/api/v1/targets", s.url)).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 3);
    // The copies are the old server's bytes.
    let r = http.get(format!("{}/bur/x86_64/alpha-1.0-1-x86_64.pkg.tar.zst", s.url)).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), good);
}
