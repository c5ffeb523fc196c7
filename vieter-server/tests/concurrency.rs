//! Publishes (own-arch and `any`) racing deletes of packages, arch-repos and the whole repository:
//! whatever the interleaving, every served database lists exactly package files that are served with
//! their checksum, the pool holds nothing else, and the REST listing agrees with the databases.

mod common;

use std::collections::BTreeSet;

use common::*;
use sha2::Digest;

const ARCHES: [&str; 3] = ["x86_64", "aarch64", "armv7h"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publishes_racing_deletes_stay_consistent() {
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for w in 0..6u32 {
        let (http, url) = (http.clone(), server.url.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..25u32 {
                let n = (w * 5 + i) % 9;
                let arch = if n < 3 { "any" } else { ARCHES[n as usize % 3] };
                let pkg = package(
                    &format!("p{n}"),
                    &format!("{w}.{i}-1"),
                    arch,
                    &[("usr/share/p", &[n as u8; 5000])],
                );
                let r = publish(&http, &url, "r", pkg).await;
                let status = r.status().as_u16();
                let body = r.text().await.unwrap_or_default();
                assert_eq!(status, 200, "publish p{n} {w}.{i}-1 ({arch}): {body}");
            }
        }));
    }
    for d in 0..2u32 {
        let (http, url) = (http.clone(), server.url.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..20u32 {
                let path = match (d + i) % 4 {
                    0 => "r".to_owned(),
                    1 => format!("r/{}", ARCHES[(i % 3) as usize]),
                    _ => format!("r/{}/p{}", ARCHES[(i % 3) as usize], i % 9),
                };
                let r = http.delete(format!("{url}/{path}")).header("X-Api-Key", KEY).send().await.unwrap();
                assert!(matches!(r.status().as_u16(), 200 | 404), "DELETE {path}: {}", r.status());
                tokio::time::sleep(std::time::Duration::from_millis(3)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    let (_, repos) = json(http.get(format!("{}/api/v1/repos", server.url)).send().await.unwrap()).await;
    let listed: BTreeSet<String> = repos["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["archs"].as_array().unwrap().iter().map(|a| a["arch"].as_str().unwrap().to_owned()))
        .collect();
    let mut referenced = BTreeSet::new();
    for arch in ARCHES {
        let (status, db) = get_bytes(&http, &format!("{}/r/{arch}/r.db", server.url)).await;
        assert_eq!(status == 200, listed.contains(arch), "{arch}: db {status}, listed {listed:?}");
        if status != 200 {
            assert!(!server.data.join("repos/r").join(arch).exists(), "{arch}: no archives left behind");
            continue;
        }
        let db = libvieter::db::Database::read(&db[..]).unwrap();
        for e in db.iter() {
            let sha = e.entry.desc.split("%SHA256SUM%\n").nth(1).and_then(|s| s.lines().next()).unwrap();
            let (status, file) =
                get_bytes(&http, &format!("{}/r/{arch}/{}", server.url, e.entry.filename)).await;
            assert_eq!(status, 200, "{arch}: {} listed but not served", e.entry.filename);
            assert_eq!(hex::encode(sha2::Sha256::digest(&file)), sha);
            referenced.insert(sha.to_owned());
        }
        let (_, page) = json(
            http.get(format!("{}/api/v1/repos/r/{arch}/packages?limit=1000", server.url))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(page["data"].as_array().unwrap().len(), db.len(), "{arch}: REST listing = db");
    }
    assert_eq!(
        server.pool_files(),
        referenced.into_iter().collect::<Vec<_>>(),
        "the pool holds exactly the listed files"
    );
}
