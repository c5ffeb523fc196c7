//! A local AUR for tests, written from aurweb's documented RPC v5: `POST /rpc/v5/info` with a JSON body
//! `{"arg": [names]}` answers `multiinfo`, `GET /rpc/v5/search/{arg}?by=provides` answers `search`
//! (packages named so or providing it); every request is recorded. `/files/...` serves a directory
//! (sync databases made with real `repo-add`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use warp::Filter;

#[derive(Default)]
struct State {
    packages: Vec<Value>,
    requests: Vec<String>,
    /// Statuses answered (with `Retry-After: 0`) before the real answers.
    failures: VecDeque<u16>,
}

/// The running stand-in; stops with the test's runtime.
pub struct LocalAur {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    state: Arc<Mutex<State>>,
}

/// An AUR record as aurweb writes it.
pub fn record(name: &str, version: &str) -> Value {
    json!({
        "ID": 1, "Name": name, "PackageBaseID": 1, "PackageBase": name, "Version": version,
        "Description": format!("{name} from the test AUR"), "URL": null, "NumVotes": 1,
        "Popularity": 0.1, "OutOfDate": null, "Maintainer": "tester", "FirstSubmitted": 1700000000,
        "LastModified": 1700000000, "URLPath": format!("/cgit/aur.git/snapshot/{name}.tar.gz"),
        "Depends": [], "MakeDepends": [], "CheckDepends": [], "Provides": [], "License": ["MIT"]
    })
}

/// `record` with fields replaced (`"Depends": [...]`, `"PackageBase": ...`).
pub fn with(mut record: Value, fields: Value) -> Value {
    if let (Some(r), Some(f)) = (record.as_object_mut(), fields.as_object()) {
        for (k, v) in f {
            r.insert(k.clone(), v.clone());
        }
    }
    record
}

fn names_of(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|s| s.split(['<', '>', '=']).next().unwrap_or(s).to_owned())
                .collect()
        })
        .unwrap_or_default()
}

impl LocalAur {
    /// Starts serving `packages`, and `files` under `/files/`.
    pub async fn start(packages: Vec<Value>, files: Option<PathBuf>) -> LocalAur {
        let state = Arc::new(Mutex::new(State { packages, ..State::default() }));
        let failing = {
            let state = state.clone();
            move || state.lock().unwrap().failures.pop_front()
        };
        let s = state.clone();
        let fail = failing.clone();
        let info = warp::path!("rpc" / "v5" / "info").and(warp::post()).and(warp::body::json::<Value>()).map(
            move |body: Value| {
                let asked: Vec<String> = body["arg"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                    .unwrap_or_default();
                let mut st = s.lock().unwrap();
                st.requests.push(format!("info {}", asked.join(",")));
                drop(st);
                if let Some(status) = fail() {
                    return failure(status);
                }
                let st = s.lock().unwrap();
                let results: Vec<Value> = st
                    .packages
                    .iter()
                    .filter(|p| asked.iter().any(|a| p["Name"] == a.as_str()))
                    .cloned()
                    .collect();
                let n = results.len();
                warp::reply::json(
                    &json!({"version": 5, "type": "multiinfo", "resultcount": n, "results": results}),
                )
                .into_response()
            },
        );
        let s = state.clone();
        let search = warp::path!("rpc" / "v5" / "search" / String)
            .and(warp::get())
            .and(warp::query::<std::collections::HashMap<String, String>>())
            .map(move |term: String, q: std::collections::HashMap<String, String>| {
                let term = percent_decode(&term);
                s.lock().unwrap().requests.push(format!("search {term}"));
                if let Some(status) = failing() {
                    return failure(status);
                }
                if q.get("by").map(String::as_str) != Some("provides") {
                    return warp::reply::json(&json!({"version": 5, "type": "error", "resultcount": 0,
                        "results": [], "error": "Incorrect by field specified."}))
                    .into_response();
                }
                let st = s.lock().unwrap();
                let results: Vec<Value> = st
                    .packages
                    .iter()
                    .filter(|p| p["Name"] == term.as_str() || names_of(&p["Provides"]).contains(&term))
                    .map(|p| {
                        // A search result has no dependency lists.
                        let mut p = p.clone();
                        for k in ["Depends", "MakeDepends", "CheckDepends", "Provides", "License"] {
                            p.as_object_mut().map(|o| o.remove(k));
                        }
                        p
                    })
                    .collect();
                let n = results.len();
                warp::reply::json(
                    &json!({"version": 5, "type": "search", "resultcount": n, "results": results}),
                )
                .into_response()
            });
        let dir = files.unwrap_or_else(std::env::temp_dir);
        let routes = info
            .or(search)
            .unify()
            .or(warp::path("files").and(warp::fs::dir(dir)).map(|f: warp::fs::File| f.into_response()))
            .unify();
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(routes).incoming(listener).run());
        LocalAur { url: format!("http://{addr}"), state }
    }

    /// The RPC base URL (`aur_rpc_url`).
    pub fn rpc(&self) -> String {
        format!("{}/rpc/v5", self.url)
    }

    /// Every request so far: `info a,b` or `search term`.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Replaces a package's record (by name) or adds it.
    pub fn put(&self, record: Value) {
        let mut st = self.state.lock().unwrap();
        st.packages.retain(|p| p["Name"] != record["Name"]);
        st.packages.push(record);
    }

    /// The next requests answer these statuses (with `Retry-After: 0`) first.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.state.lock().unwrap().failures.extend(statuses.iter().copied());
    }
}

use warp::Reply;

fn failure(status: u16) -> warp::reply::Response {
    let mut r =
        warp::reply::with_status("busy", warp::http::StatusCode::from_u16(status).unwrap()).into_response();
    r.headers_mut().insert("retry-after", warp::http::HeaderValue::from_static("0"));
    r
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Builds a sync database with real `repo-add` in `dir/{arch}/{name}.db` from packages made with
/// [`super::package_with`]: `(name, version, extra .PKGINFO lines)`.
pub fn sync_db(dir: &std::path::Path, arch: &str, name: &str, packages: &[(&str, &str, &str)]) {
    let at = dir.join(arch);
    std::fs::create_dir_all(&at).unwrap();
    let mut files = Vec::new();
    for (pkg, version, extra) in packages {
        let file = at.join(format!("{pkg}-{version}-{arch}.pkg.tar.zst"));
        std::fs::write(&file, super::package_with(pkg, version, arch, &[], extra)).unwrap();
        files.push(file);
    }
    let out = std::process::Command::new("repo-add")
        .arg("-q")
        .arg(at.join(format!("{name}.db.tar.gz")))
        .args(&files)
        .output()
        .expect("run repo-add");
    assert!(out.status.success(), "repo-add: {}", String::from_utf8_lossy(&out.stderr));
}
