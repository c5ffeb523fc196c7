//! CLI behaviour that needs no server: repo-add, config init, error messages.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

fn vieter(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vieter"));
    cmd.args(args).env_remove("VIETER_ADDRESS").env_remove("VIETER_API_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run vieter")
}

/// A minimal valid package: a tar with a .PKGINFO and one file.
fn package(dir: &std::path::Path, name: &str, version: &str) -> std::path::PathBuf {
    let info = format!("pkgname = {name}\npkgver = {version}\narch = any\nsize = 5\ndepend = glibc\n");
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in [(".PKGINFO", info.as_bytes()), ("usr/share/x/file", b"hello".as_slice())] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, data).unwrap();
    }
    let path = dir.join(format!("{name}-{version}-any.pkg.tar"));
    std::fs::write(&path, b.into_inner().unwrap()).unwrap();
    path
}

#[test]
fn repo_add_writes_both_databases_and_replaces_versions() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("local.db.tar.gz");
    let v1 = package(dir.path(), "foo", "1.0-1");
    let bar = package(dir.path(), "bar", "2-1");
    let out = vieter(&["repo-add", db.to_str().unwrap(), v1.to_str().unwrap(), bar.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v2 = package(dir.path(), "foo", "1.1-1");
    let out = vieter(&["repo-add", "-R", db.to_str().unwrap(), v2.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!v1.exists(), "-R deletes the replaced package file");

    let read =
        |p: &str| libvieter::db::Database::read(std::fs::File::open(dir.path().join(p)).unwrap()).unwrap();
    let files = read("local.files");
    let names: Vec<String> = files.iter().map(|e| e.entry.dir_name()).collect();
    assert_eq!(names, ["bar-2-1", "foo-1.1-1"]);
    let foo = files.iter().find(|e| e.entry.name.as_str() == "foo").unwrap();
    assert_eq!(foo.entry.files.as_deref(), Some("%FILES%\nusr/share/x/file\n"));
    assert!(foo.entry.desc.contains("%DEPENDS%\nglibc\n\n"));
    assert!(!foo.entry.desc.contains("%MD5SUM%"));
    assert_eq!(read("local.db").len(), 2);
}

#[test]
fn repo_add_names_a_bad_package() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pkg.tar.zst");
    std::fs::write(&junk, b"not a package at all").unwrap();
    let db = dir.path().join("r.db.tar.gz");
    let out = vieter(&["repo-add", db.to_str().unwrap(), junk.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("junk.pkg.tar.zst") && err.contains("not a package"), "{err}");
    assert!(!db.exists(), "nothing is written when a package is refused");
}

#[test]
fn server_down_names_the_address() {
    let out =
        vieter(&["--server", "http://127.0.0.1:9", "repos", "list"], &[("VIETER_CONFIG", "/nonexistent")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("could not reach the Vieter server at http://127.0.0.1:9"), "{err}");
}

#[test]
fn config_init_writes_a_private_file_that_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vieter/config.toml");
    let p = path.to_str().unwrap();
    let out = vieter(
        &["--config", p, "--server", "http://127.0.0.1:9", "--api-key", "s3cr\"t", "config", "init"],
        &[],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    let parsed: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(parsed["api_key"].as_str(), Some("s3cr\"t"), "{text}");
    assert_eq!(parsed["address"].as_str(), Some("http://127.0.0.1:9"), "{text}");
    // The written address is used when no flag or variable overrides it.
    let out = vieter(&["--config", p, "repos", "list"], &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("http://127.0.0.1:9"));
    // A second init refuses to overwrite.
    let out = vieter(&["--config", p, "config", "init"], &[]);
    assert!(!out.status.success());
}

#[test]
fn schedule_prints_run_times_and_names_bad_fields() {
    let out = vieter(&["--json", "schedule", "0 3", "--count", "3", "--tz", "Europe/Brussels"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let runs: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.len(), 3);
    let times: Vec<chrono::DateTime<chrono::Utc>> = runs.iter().map(|r| r.parse().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[1] - w[0] == chrono::Duration::days(1)
        || w[1] - w[0] == chrono::Duration::hours(23)
        || w[1] - w[0] == chrono::Duration::hours(25)));
    let local = times[0].with_timezone(&chrono_tz::Europe::Brussels);
    assert_eq!(chrono::Timelike::hour(&local), 3);

    let out = vieter(&["schedule", "0 0 32"], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("day") && err.contains("32"), "{err}");
}

#[test]
fn completions_and_man_pages_cover_every_command() {
    let out = vieter(&["completions", "bash"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let script = String::from_utf8_lossy(&out.stdout);
    for word in ["vieter", "publish", "targets", "jobs", "logs", "agents", "schedule", "repo-add", "--follow"]
    {
        assert!(script.contains(word), "bash completion lacks {word}");
    }
    let out = vieter(&["completions", "nosuchshell"], &[]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("nosuchshell"));

    let dir = tempfile::tempdir().unwrap();
    let out = vieter(&["man", dir.path().to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut pages: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for page in
        ["vieter.1", "vieter-publish.1", "vieter-targets-build.1", "vieter-jobs-retry.1", "vieter-logs.1"]
    {
        assert!(pages.iter().any(|p| p == page), "{page} missing from {pages:?}");
    }
    let top = std::fs::read_to_string(dir.path().join("vieter.1")).unwrap();
    assert!(top.starts_with(".ie") || top.contains(".TH"), "a roff page");
}
