//! Real pacman against the real server: install, upgrade, removal from the repository; and the test
//! corpus of real makepkg packages (VIETER_CORPUS).

mod common;

use common::*;

#[tokio::test]
async fn pacman_installs_upgrades_and_forgets() {
    if !require_tool("pacman") {
        return;
    }
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    let v1 = package("greeter", "1.0-1", "x86_64", &[("usr/share/greeter/version", b"one\n")]);
    let lib = package("greeter-data", "1-1", "any", &[("usr/share/greeter/data", b"data\n")]);
    assert_eq!(publish(&http, &server.url, "mine", v1).await.status(), 200);
    assert_eq!(publish(&http, &server.url, "mine", lib).await.status(), 200);

    let pacman = Pacman::new(&server.url, &["mine"]);
    let (ok, out) = pacman.run(&["-Sy", "greeter", "greeter-data"]);
    assert!(ok, "{out}");
    assert_eq!(std::fs::read_to_string(pacman.root().join("usr/share/greeter/version")).unwrap(), "one\n");
    let (_, q) = pacman.run(&["-Q"]);
    assert!(q.contains("greeter 1.0-1") && q.contains("greeter-data 1-1"), "{q}");

    let v2 = package("greeter", "1.1-1", "x86_64", &[("usr/share/greeter/version", b"two\n")]);
    assert_eq!(publish(&http, &server.url, "mine", v2).await.status(), 200);
    let (ok, out) = pacman.run(&["-Syu"]);
    assert!(ok, "{out}");
    assert_eq!(std::fs::read_to_string(pacman.root().join("usr/share/greeter/version")).unwrap(), "two\n");

    let r = http
        .delete(format!("{}/mine/x86_64/greeter", server.url))
        .header("X-Api-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (ok, out) = pacman.run(&["-Sy"]);
    assert!(ok, "{out}");
    let (ok, sl) = pacman.run(&["-Sl", "mine"]);
    assert!(ok, "{sl}");
    assert!(!sl.contains("greeter 1.1-1"), "{sl}");
    assert!(sl.contains("greeter-data"), "{sl}");
}

#[tokio::test]
async fn corpus_installs_from_the_server() {
    let Some(corpus) = std::env::var_os("VIETER_CORPUS").filter(|v| !v.is_empty()) else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("VIETER_CORPUS must be set when CI=true (scripts/test.sh builds the corpus)");
        }
        eprintln!("skipping: VIETER_CORPUS is not set");
        return;
    };
    if !require_tool("pacman") {
        return;
    }
    let mut packages: Vec<std::path::PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains(".pkg.tar"))
        .collect();
    packages.sort();
    if packages.is_empty() {
        panic!("the corpus in {corpus:?} is empty");
    }
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    let mut names = Vec::new();
    for p in &packages {
        let (status, v) = json(publish(&http, &server.url, "corpus", std::fs::read(p).unwrap()).await).await;
        assert_eq!(status, 200, "{}: {v}", p.display());
        let arch = v["data"]["archs"][0].as_str().unwrap_or_default().to_owned();
        if arch == "x86_64" || v["data"]["archs"].as_array().is_some_and(|a| a.iter().any(|x| x == "x86_64"))
        {
            names.push(v["data"]["name"].as_str().unwrap().to_owned());
        }
    }
    names.sort();
    names.dedup();

    // The served entries are repo-add's for the same files (minus %MD5SUM%, which pacman >= 6.1 dropped).
    if require_tool("repo-add") {
        let dir = tempfile::tempdir().unwrap();
        for p in &packages {
            std::fs::copy(p, dir.path().join(p.file_name().unwrap())).unwrap();
        }
        let status = std::process::Command::new("bash")
            .args(["-c", "repo-add -q ref.db.tar.gz *.pkg.tar*"])
            .current_dir(dir.path())
            .env("LC_ALL", "C.UTF-8")
            .status()
            .unwrap();
        assert!(status.success());
        let reference =
            libvieter::db::Database::read(std::fs::File::open(dir.path().join("ref.db.tar.gz")).unwrap())
                .unwrap();
        let served = served_entries(&http, &server.url, "corpus", "x86_64").await;
        let mut compared = 0;
        for (dir_name, desc) in &served {
            let Some(r) = reference.iter().find(|e| &e.entry.dir_name() == dir_name) else {
                panic!("{dir_name} is served but repo-add has no such entry");
            };
            let without_md5: String =
                r.entry.desc.split_inclusive("\n\n").filter(|s| !s.starts_with("%MD5SUM%\n")).collect();
            assert_eq!(desc, &without_md5, "served desc of {dir_name}");
            compared += 1;
        }
        assert_eq!(compared, served.len());
        assert!(compared >= 10, "{compared} entries compared");
    }

    let pacman = Pacman::new(&server.url, &["corpus"]);
    let (ok, out) = pacman.run(&["-Sy"]);
    assert!(ok, "{out}");
    // One transaction per package: corpus packages may conflict with or replace each other.
    for name in &names {
        let (ok, out) = pacman.run(&["-Sdd", "--noscriptlet", "--overwrite", "*", name]);
        assert!(ok, "installing {name}: {out}");
        let (ok, q) = pacman.run(&["-Q", name]);
        assert!(ok, "{name} is installed: {q}");
    }
}
