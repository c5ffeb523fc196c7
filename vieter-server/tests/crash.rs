//! `kill -9` of the server in the middle of publishes, then a restart: the repository is consistent.

mod common;

use common::*;
use sha2::Digest;

#[tokio::test]
async fn kill_during_publishes_then_recover() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let http = reqwest::Client::new();
    let mut total_ok = 0;
    for round in 0..3u32 {
        let mut server = Server::start_on(&data, &[]);
        let mut tasks = Vec::new();
        for i in 0..30u32 {
            let (http, url) = (http.clone(), server.url.clone());
            // Versions change between rounds so replacements (and deletions) happen too.
            let pkg = package(
                &format!("p{}", i % 12),
                &format!("{round}.{i}-1"),
                "x86_64",
                &[("usr/share/f", &[i as u8; 3000])],
            );
            tasks.push(tokio::spawn(async move {
                let r = http.post(format!("{url}/r/publish")).header("X-Api-Key", KEY).body(pkg).send().await;
                r.map(|r| r.status().as_u16()).unwrap_or(0)
            }));
        }
        // Kill while uploads are in flight.
        tokio::time::sleep(std::time::Duration::from_millis(15 + 20 * round as u64)).await;
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        for t in tasks {
            if t.await.unwrap() == 200 {
                total_ok += 1;
            }
        }
        std::mem::forget(server);
    }

    // Restart: recovery must leave a consistent repository.
    let server = Server::start_on(&data, &[]);
    assert!(std::fs::read_dir(data.join("tmp")).unwrap().next().is_none(), "tmp/ is emptied");
    let (status, bytes) = get_bytes(&http, &format!("{}/r/x86_64/r.db", server.url)).await;
    if total_ok == 0 && status == 404 {
        return; // Nothing ever committed: an absent repo is consistent.
    }
    assert_eq!(status, 200);
    let db = libvieter::db::Database::read(&bytes[..]).expect("the db is whole");
    let mut referenced = Vec::new();
    for e in db.iter() {
        let desc = &e.entry.desc;
        let sha = desc.split("%SHA256SUM%\n").nth(1).and_then(|s| s.lines().next()).unwrap().to_owned();
        let (status, file) = get_bytes(&http, &format!("{}/r/x86_64/{}", server.url, e.entry.filename)).await;
        assert_eq!(status, 200, "{} is listed but not served", e.entry.filename);
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&file)),
            sha,
            "{} matches its checksum",
            e.entry.filename
        );
        referenced.push(sha);
    }
    referenced.sort();
    assert_eq!(server.pool_files(), referenced, "no orphan file survives recovery");
}
