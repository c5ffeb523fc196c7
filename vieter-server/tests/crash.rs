//! `kill -9` of the server in the middle of a stream of publishes (and deletes), then a restart: the
//! repository is consistent, and everything that was answered 200 is still there.
//!
//! Checked twice: right after each kill, on the files as the crash left them (before any recovery: the
//! archives must be whole and every package they list must be in the pool with its checksum), and after
//! the final restart through HTTP (plus: tmp/ is empty and no pool file is unreferenced).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use sha2::Digest;

const ARCHES: [&str; 2] = ["x86_64", "aarch64"];

/// `(filename, sha256)` of every entry of a db archive.
fn entries_of(db: &[u8]) -> Vec<(String, String)> {
    let db = libvieter::db::Database::read(db).expect("the db archive is whole");
    db.iter()
        .map(|e| {
            let desc = &e.entry.desc;
            let sha = desc.split("%SHA256SUM%\n").nth(1).and_then(|s| s.lines().next()).expect("sha256");
            (e.entry.filename.clone(), sha.to_owned())
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The on-disk state left by a crash: every archive parses and lists only pool files with their checksum.
fn check_on_disk(data: &Path) -> usize {
    let mut listed = 0;
    for arch in ARCHES {
        let dir = data.join("repos/r").join(arch);
        for name in ["r.db.tar.gz", "r.files.tar.gz"] {
            let Ok(bytes) = std::fs::read(dir.join(name)) else { continue };
            for (filename, sha) in entries_of(&bytes) {
                let file = std::fs::read(data.join("pool").join(&sha))
                    .unwrap_or_else(|e| panic!("{arch}/{name} lists {filename}, its pool file: {e}"));
                assert_eq!(sha256(&file), sha, "{filename}: the pool file has the listed checksum");
                listed += 1;
            }
        }
    }
    listed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_during_publishes_then_recover() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let http = reqwest::Client::new();
    // name → versions answered 200 (in answer order), and names deleted with 200 after their last publish.
    let answered: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();
    let mut total_ok = 0;
    let mut listed_after_kills = 0;
    for round in 0..4u32 {
        let server = Server::start_on(&data, &[]);
        let ok = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for w in 0..6u32 {
            let (http, url, ok, stop, answered) =
                (http.clone(), server.url.clone(), ok.clone(), stop.clone(), answered.clone());
            workers.push(tokio::spawn(async move {
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    // Names repeat, so replacements (and deletions of old pool files) happen all the time.
                    let n = (w * 7 + i) % 10;
                    let (name, arch) = match n {
                        0 | 1 => (format!("doc{n}"), "any"),
                        2 | 3 => (format!("arm{n}"), "aarch64"),
                        _ => (format!("p{n}"), "x86_64"),
                    };
                    let version = format!("{round}.{w}.{i}-1");
                    let pkg = package(&name, &version, arch, &[("usr/share/f", &[n as u8; 40_000])]);
                    let r =
                        http.post(format!("{url}/r/publish")).header("X-Api-Key", KEY).body(pkg).send().await;
                    match r {
                        Ok(r) if r.status() == 200 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            answered.lock().unwrap().entry(name).or_default().push(version);
                        }
                        Ok(r) => panic!("publish answered {}", r.status()),
                        Err(_) => return, // the server was killed
                    }
                }
            }));
        }
        // Kill in the middle of the stream, once some publishes of this round have been answered.
        let wanted = 8 + 6 * round as usize;
        while ok.load(Ordering::Relaxed) < wanted {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        let mut server = server;
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.await.unwrap();
        }
        total_ok += ok.load(Ordering::Relaxed);
        std::mem::forget(server);
        // Before any recovery: the files as the kill left them are already consistent.
        listed_after_kills += check_on_disk(&data);
    }
    assert!(total_ok >= 8 + 14 + 20 + 26, "{total_ok} publishes answered");
    assert!(listed_after_kills > 0, "the kills left packages listed");

    // Restart: recovery must leave a consistent repository with everything that was answered 200.
    let server = Server::start_on(&data, &[]);
    assert!(std::fs::read_dir(data.join("tmp")).unwrap().next().is_none(), "tmp/ is emptied");
    let mut referenced = BTreeSet::new();
    let mut served_names = BTreeSet::new();
    for arch in ARCHES {
        let (status, bytes) = get_bytes(&http, &format!("{}/r/{arch}/r.db", server.url)).await;
        assert_eq!(status, 200, "{arch}");
        for (filename, sha) in entries_of(&bytes) {
            let (status, file) = get_bytes(&http, &format!("{}/r/{arch}/{filename}", server.url)).await;
            assert_eq!(status, 200, "{filename} is listed but not served");
            assert_eq!(sha256(&file), sha, "{filename} matches its checksum");
            served_names.insert(filename.split('-').next().unwrap_or_default().to_owned());
            referenced.insert(sha);
        }
        // The files archive lists the same packages as the db.
        let (_, files) = get_bytes(&http, &format!("{}/r/{arch}/r.files", server.url)).await;
        let mut db_files: Vec<String> = entries_of(&bytes).into_iter().map(|e| e.0).collect();
        let mut files_files: Vec<String> = entries_of(&files).into_iter().map(|e| e.0).collect();
        db_files.sort();
        files_files.sort();
        assert_eq!(db_files, files_files, "{arch}: db and files archives agree");
    }
    let answered = answered.lock().unwrap();
    for name in answered.keys() {
        assert!(served_names.contains(name), "{name} was published (200) but is gone after the restart");
    }
    assert_eq!(
        server.pool_files(),
        referenced.into_iter().collect::<Vec<_>>(),
        "every pool file is referenced, and nothing else is in the pool"
    );
}
