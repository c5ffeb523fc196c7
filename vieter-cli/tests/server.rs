//! The CLI against the real server binary: every build-system command, `--json` parsed, error messages.

use std::process::{Command, Output};

#[path = "../../vieter-server/tests/common/mod.rs"]
mod common;

use common::{Server, KEY};

fn start() -> Server {
    Server::start(&[])
}

fn vieter(s: &Server, key: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vieter"))
        .env_remove("VIETER_ADDRESS")
        .env_remove("VIETER_API_KEY")
        .env("VIETER_CONFIG", "/nonexistent/vieter.toml")
        .args(["--server", &s.url, "--api-key", key])
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn package(name: &str) -> tempfile::NamedTempFile {
    let info =
        format!("pkgname = {name}\npkgver = 1.0-1\narch = x86_64\nsize = 1\npkgdesc = from the cli test\n");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(info.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, ".PKGINFO", info.as_bytes()).unwrap();
    let f = tempfile::Builder::new().suffix(".pkg.tar").tempfile().unwrap();
    std::fs::write(f.path(), b.into_inner().unwrap()).unwrap();
    f
}

#[test]
fn repository_commands() {
    let s = start();
    let (a, b) = (package("alpha"), package("beta"));
    let out = vieter(
        &s,
        KEY,
        &["--json", "publish", "main", a.path().to_str().unwrap(), b.path().to_str().unwrap()],
    );
    let landed = json(&out);
    assert_eq!(landed.as_array().unwrap().len(), 2);
    let repos = json(&vieter(&s, KEY, &["--json", "repos", "list"]));
    assert_eq!(repos[0]["archs"][0]["packages"], 2);
    let pkgs = json(&vieter(&s, KEY, &["--json", "repos", "packages", "main", "--query", "alp"]));
    assert_eq!(pkgs.as_array().unwrap().len(), 1);
    let info = json(&vieter(&s, KEY, &["--json", "repos", "info", "main", "x86_64", "beta"]));
    assert_eq!(info["info"]["desc"], "from the cli test");
    // People get a table.
    let out = vieter(&s, KEY, &["repos", "packages", "main"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NAME") && text.contains("alpha") && text.contains("1.0-1"), "{text}");
    // Removal needs --yes without a terminal.
    let out = vieter(&s, KEY, &["repos", "remove", "main", "x86_64", "alpha"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert!(vieter(&s, KEY, &["repos", "remove", "main", "x86_64", "alpha", "--yes"]).status.success());
    let out = vieter(&s, KEY, &["repos", "info", "main", "x86_64", "alpha"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

#[test]
fn build_commands_and_errors() {
    let s = start();
    let t = json(&vieter(
        &s,
        KEY,
        &[
            "--json",
            "targets",
            "add",
            "--kind",
            "git",
            "--url",
            "https://example.org/x.git",
            "--repo",
            "main",
            "--arch",
            "x86_64,aarch64",
            "--schedule",
            "0 4",
        ],
    ));
    let id = t["id"].as_u64().unwrap().to_string();
    assert_eq!(t["arch"], serde_json::json!(["x86_64", "aarch64"]));
    let out = vieter(
        &s,
        KEY,
        &[
            "targets",
            "add",
            "--kind",
            "git",
            "--url",
            "https://example.org/y.git",
            "--repo",
            "main",
            "--schedule",
            "0 0 30 2",
        ],
    );
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("HTTP 400") && e.contains("schedule"), "{e}");
    let list = json(&vieter(&s, KEY, &["--json", "targets", "list"]));
    assert_eq!(list.as_array().unwrap().len(), 1, "the refused target was not stored");
    let edited = json(&vieter(&s, KEY, &["--json", "targets", "edit", &id, "--branch", "main"]));
    assert_eq!(edited["branch"], "main");
    assert_eq!(json(&vieter(&s, KEY, &["--json", "targets", "info", &id]))["branch"], "main");

    let jobs = json(&vieter(&s, KEY, &["--json", "targets", "build", &id, "--arch", "aarch64"]));
    assert_eq!(jobs.as_array().unwrap().len(), 1);
    let job = jobs[0]["id"].as_u64().unwrap().to_string();
    let listed = json(&vieter(&s, KEY, &["--json", "jobs", "list", "--state", "queued"]));
    assert_eq!(listed[0]["id"].as_u64().unwrap().to_string(), job);
    assert_eq!(json(&vieter(&s, KEY, &["--json", "jobs", "info", &job]))["arch"], "aarch64");
    assert_eq!(json(&vieter(&s, KEY, &["--json", "jobs", "cancel", &job]))["state"], "cancelled");
    let retried = json(&vieter(&s, KEY, &["--json", "jobs", "retry", &job]));
    assert_eq!(retried["trigger"], "retry");
    let out = vieter(&s, KEY, &["logs", &job]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json(&vieter(&s, KEY, &["--json", "agents", "list"])), serde_json::json!([]));

    // A refused key, an unknown target, a server that is down.
    let out = vieter(&s, "wrong", &["targets", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the API key"));
    let out = vieter(&s, KEY, &["targets", "info", "999"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("target 999 not found"));
    assert!(vieter(&s, KEY, &["targets", "remove", &id]).status.success());
    let url = s.url.clone();
    drop(s);
    let out = Command::new(env!("CARGO_BIN_EXE_vieter"))
        .args(["--server", &url, "targets", "list"])
        .env("VIETER_CONFIG", "/nonexistent")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("could not reach the Vieter server at {url}"))
    );
}

/// `targets build --follow` streams the log an agent appends and exits with the job's result; `logs
/// --follow` of an ended job prints it whole; `--quiet` silences what is for people.
#[test]
fn build_follow_streams_the_log_and_exits_with_the_result() {
    use libvieter::api::PollRequest;
    use libvieter::job::{AgentId, FailureCause, FailureStep, Outcome};
    use libvieter::name::Arch;
    use std::process::Stdio;

    const AGENT_KEY: &str = "cli-agent-key";
    let s = Server::start(&[("VIETER_AGENT_KEY", AGENT_KEY)]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let agent = vieter_client::Client::new(&s.url, Some(AGENT_KEY.into())).unwrap();
    let me = AgentId::new("cli-agent").unwrap();
    let poll =
        PollRequest { agent_id: me.clone(), arch: Arch::new("x86_64").unwrap(), capacity: 1, wait: Some(10) };
    let add = |url: &str| {
        let t = json(&vieter(
            &s,
            KEY,
            &[
                "--json", "targets", "add", "--kind", "git", "--url", url, "--repo", "main", "--arch",
                "x86_64",
            ],
        ));
        t["id"].as_u64().unwrap().to_string()
    };
    let follow = |target: &str| {
        Command::new(env!("CARGO_BIN_EXE_vieter"))
            .env("VIETER_CONFIG", "/nonexistent/vieter.toml")
            .args(["--server", &s.url, "--api-key", KEY, "targets", "build", target, "--follow"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    // A build that fails: the log is streamed, the exit code is non-zero and names the cause.
    let failing = add("https://example.org/fails.git");
    let cli = follow(&failing);
    let job = rt.block_on(async {
        let leased = agent.poll(&poll).await.unwrap();
        let id = leased[0].job.id();
        agent.append_log(id, &me, b"==> [vieter] makepkg: started\n".to_vec()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        agent.append_log(id, &me, b"boom\n".to_vec()).await.unwrap();
        let cause =
            FailureCause { exit_code: Some(4), ..FailureCause::new(FailureStep::Makepkg, "build() failed") };
        agent.finish(id, &me, Outcome::Failed { cause }).await.unwrap();
        id
    });
    let out = cli.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "a failed build exits non-zero");
    assert!(stdout.contains("==> [vieter] makepkg: started\nboom\n"), "{stdout}");
    assert!(stderr.contains(&format!("job {job} failed")) && stderr.contains("makepkg"), "{stderr}");

    // A build that succeeds exits 0; `logs --follow` of the ended job prints the whole log.
    let working = add("https://example.org/works.git");
    let cli = follow(&working);
    let job = rt.block_on(async {
        let id = agent.poll(&poll).await.unwrap()[0].job.id();
        agent.append_log(id, &me, b"all good\n".to_vec()).await.unwrap();
        agent.finish(id, &me, Outcome::Skipped { versions: Vec::new(), revision: None }).await.unwrap();
        id
    });
    let out = cli.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("all good\n"));
    let out = vieter(&s, KEY, &["logs", &job.to_string(), "--follow"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "all good\n");

    // --quiet: a command for people prints nothing, and still fails loudly.
    let out = vieter(&s, KEY, &["--quiet", "targets", "remove", &working]);
    assert!(out.status.success() && out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    let out = vieter(&s, KEY, &["--quiet", "targets", "remove", &working]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not found"));
}

/// `targets add --needs`, `targets deps` (indented), `targets info` with needs, `jobs list --state
/// waiting` and `jobs info` with what a job waits on.
#[test]
fn graph_commands() {
    let s = start();
    let add = |url: &str, needs: &[&str]| {
        let mut args = vec!["--json", "targets", "add", "--kind", "git", "--url", url, "--repo", "main"];
        for n in needs {
            args.extend(["--needs", n]);
        }
        json(&vieter(&s, KEY, &args))["id"].as_u64().unwrap().to_string()
    };
    let lib = add("https://example.org/lib.git", &[]);
    let app = add("https://example.org/app.git", &[&lib]);
    let out = vieter(&s, KEY, &["targets", "deps", &app]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text,
        format!(
            "{app} git https://example.org/app.git [main]\n  {lib} git https://example.org/lib.git [main]\n"
        )
    );
    let out = vieter(&s, KEY, &["targets", "info", &app]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NEEDS") && text.contains("AUTOMATIC"), "{text}");
    let jobs = json(&vieter(&s, KEY, &["--json", "targets", "build", &app]));
    let job = jobs[0]["id"].as_u64().unwrap().to_string();
    let waiting = json(&vieter(&s, KEY, &["--json", "jobs", "list", "--state", "waiting"]));
    assert_eq!(waiting.as_array().unwrap().len(), 1);
    assert_eq!(waiting[0]["id"].as_u64().unwrap().to_string(), job);
    let info = json(&vieter(&s, KEY, &["--json", "jobs", "info", &job]));
    assert_eq!(info["waits_on"].as_array().unwrap().len(), 1);
    let out = vieter(&s, KEY, &["jobs", "info", &job]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("WAITS ON"));
    let out = vieter(&s, KEY, &["targets", "remove", &lib]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("needed by target {app}")));
}

/// `vieter targets add --kind aur` prints the closure it added (issue 12, part 6).
#[test]
fn adding_an_aur_target_prints_its_closure() {
    use common::aur::{record, with, LocalAur};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let aur = rt.block_on(LocalAur::start(
        vec![
            with(
                record("app", "1.0-1"),
                serde_json::json!({"Depends": ["libfoo"], "MakeDepends": ["libbar"]}),
            ),
            record("libfoo", "2.0-1"),
            with(
                record("libbar-git", "r1.a-1"),
                serde_json::json!({"Provides": ["libbar"], "Depends": ["libfoo"]}),
            ),
        ],
        None,
    ));
    let s = Server::start(&[("VIETER_AUR_RPC_URL", &aur.rpc())]);
    let out = vieter(&s, KEY, &["targets", "add", "--kind", "aur", "--url", "app", "--repo", "aur"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("added as automatic targets (AUR dependencies): libfoo (1), libbar-git (2)"),
        "{text}"
    );
    assert!(text.contains("libbar: provided by libbar-git (chosen among libbar-git)"), "{text}");
    assert!(text.contains("build order: libfoo → libbar-git → app"), "{text}");
    // Dependencies are written first, the target last.
    let out = vieter(&s, KEY, &["targets", "deps", "3"]);
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.starts_with("3 aur app [aur]\n"), "{tree}");
    assert!(tree.contains("  1 aur libfoo [aur] (automatic)\n"), "{tree}");
    assert!(
        tree.contains("  2 aur libbar-git [aur] (automatic)\n    1 aur libfoo [aur] (automatic)\n"),
        "{tree}"
    );
    let out = vieter(&s, KEY, &["targets", "info", "1"]);
    let info = String::from_utf8_lossy(&out.stdout);
    assert!(info.contains("NEEDED BY"), "{info}");
    let row = info.lines().nth(1).unwrap_or_default();
    assert!(row.trim_end().ends_with("true       2,3"), "libfoo is needed by 2 and 3: {info}");
    // --json: the API's answer, closure included.
    let added = json(&vieter(
        &s,
        KEY,
        &["--json", "targets", "add", "--kind", "aur", "--url", "libfoo", "--repo", "other"],
    ));
    assert_eq!(added["closure"]["created"], serde_json::json!([]));
    drop(rt);
}

#[test]
fn aur_resolve_prints_the_build_order_without_adding_anything() {
    use common::aur::{record, with, LocalAur};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let aur = rt.block_on(LocalAur::start(
        vec![
            with(record("app", "1.0-1"), serde_json::json!({"Depends": ["libfoo"]})),
            record("libfoo", "2.0-1"),
            with(record("broken", "1-1"), serde_json::json!({"Depends": ["nowhere"]})),
        ],
        None,
    ));
    let s = Server::start(&[("VIETER_AUR_RPC_URL", &aur.rpc())]);
    let out = vieter(&s, KEY, &["aur", "resolve", "app"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["LAYER", "BASE", "VERSION", "PACKAGES", "NEEDS"], "{text}");
    assert_eq!(rows[1], ["1", "libfoo", "2.0-1", "libfoo"], "{text}");
    assert_eq!(rows[2], ["2", "app", "1.0-1", "app", "libfoo"], "{text}");
    assert!(text.contains("build order: libfoo → app"), "{text}");
    let report = json(&vieter(&s, KEY, &["--json", "aur", "resolve", "app", "--arch", "x86_64"]));
    assert_eq!(report["layers"], serde_json::json!([["libfoo"], ["app"]]));
    // Nothing was added.
    assert_eq!(json(&vieter(&s, KEY, &["--json", "targets", "list"])), serde_json::json!([]));
    // The server's refusal, with the chain.
    let out = vieter(&s, KEY, &["aur", "resolve", "broken"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HTTP 400") && err.contains("broken → nowhere"), "{err}");
    // A bad name is refused before anything is sent.
    let out = vieter(&s, KEY, &["aur", "resolve", "Bad/Name"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Bad/Name"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(rt);
}

#[test]
fn keys_lists_the_signing_key_and_how_to_trust_it() {
    let s = Server::start(&[("VIETER_SIGNING_KEY", "generate")]);
    let keys = json(&vieter(&s, KEY, &["--json", "keys"]));
    let fingerprint = keys[0]["fingerprint"].as_str().expect("a fingerprint").to_owned();
    assert_eq!(fingerprint.len(), 40, "{keys}");
    let out = vieter(&s, KEY, &["keys"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("{fingerprint} (current)")), "{text}");
    assert!(text.contains(&format!("pacman-key --lsign-key {fingerprint}")), "{text}");
    let export = vieter(&s, KEY, &["keys", "--export"]);
    let armored = String::from_utf8_lossy(&export.stdout);
    assert!(armored.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"), "{armored}");
    assert_eq!(armored.trim_end(), keys[0]["public_key"].as_str().unwrap().trim_end());
    // An unsigned server says so.
    let unsigned = start();
    let out = vieter(&unsigned, KEY, &["keys"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("does not sign"));
}

#[test]
fn publish_sends_the_packagers_signature_with_sig() {
    if !common::require_tool("gpg") {
        return;
    }
    let alice = common::Gpg::new("Alice <alice@example.org>");
    let trusted = tempfile::tempdir().unwrap();
    std::fs::write(trusted.path().join("alice.asc"), alice.public_key()).unwrap();
    let s = Server::start(&[
        ("VIETER_TRUSTED_KEYS", trusted.path().to_str().unwrap()),
        ("VIETER_REQUIRE_SIGNED_UPLOADS", "true"),
    ]);
    let pkg = package("signedcli");
    let path = pkg.path().to_str().unwrap();
    let out = vieter(&s, KEY, &["publish", "main", path]);
    assert!(!out.status.success(), "unsigned is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("requires a packager signature"), "{out:?}");
    let out = vieter(&s, KEY, &["publish", "--sig", "main", path]);
    assert!(!out.status.success(), "no FILE.sig next to it");
    assert!(String::from_utf8_lossy(&out.stderr).contains(".sig"), "{out:?}");
    std::fs::write(format!("{path}.sig"), alice.sign(&std::fs::read(path).unwrap(), false)).unwrap();
    let landed = json(&vieter(&s, KEY, &["--json", "publish", "--sig", "main", path]));
    assert_eq!(landed[0]["name"], "signedcli");
    let _ = std::fs::remove_file(format!("{path}.sig"));
}
