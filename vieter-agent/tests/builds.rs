//! End to end with real Podman, real makepkg and real pacman: a server, two agents, targets in local git
//! repositories served on loopback.

mod common;

use common::server::{Pacman, Server, KEY};
use common::{containers_labelled, eventually, finished, log, Agent, GitDaemon, PodmanService, AGENT_KEY};
use libvieter::api::QueueRequest;
use libvieter::job::{FailureStep, Job, JobState};
use libvieter::target::{NewTarget, Target};
use vieter_client::Client;

const REPO: &str = "built";

fn pkgbuild(body: &str) -> String {
    format!("pkgver=1.0\npkgrel=1\narch=('x86_64')\nlicense=('MIT')\n{body}\n")
}

async fn target(client: &Client, url: &str, path: Option<&str>, timeout: Option<u64>) -> Target {
    let new = NewTarget {
        kind: "git".into(),
        url: url.into(),
        path: path.map(Into::into),
        repo: REPO.into(),
        arch: Some(vec!["x86_64".into()]),
        build_timeout_secs: timeout,
        // Only the builds the test queues: no scheduled run may interfere.
        enabled: Some(false),
        ..NewTarget::default()
    };
    client.create_target(&new).await.expect("create target")
}

async fn queue(client: &Client, target: &Target, force: bool) -> Job {
    let mut jobs = client.queue(&QueueRequest { target: target.id, arch: None, force }).await.expect("queue");
    assert_eq!(jobs.len(), 1);
    jobs.remove(0)
}

fn names(job: &Job) -> Vec<String> {
    let mut v: Vec<String> = job
        .versions()
        .iter()
        .map(|p| format!("{}-{}-{}", p.name.as_str(), p.version, p.arch.as_str()))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_build_publish_fail_time_out_survive_a_kill_and_skip() {
    if !common::require_podman() {
        return;
    }
    let podman = PodmanService::start();
    let image = common::test_image();
    let server = Server::start(&[
        ("VIETER_AGENT_KEY", AGENT_KEY),
        ("VIETER_BASE_IMAGE", &image),
        ("VIETER_LEASE_SECS", "4"),
        // The server signs what agents upload; agents never hold the key.
        ("VIETER_SIGNING_KEY", "generate"),
        ("VIETER_RETRY_BACKOFF_SECS", "1"),
        ("VIETER_LOG_LEVEL", &std::env::var("VIETER_TEST_SERVER_LOG").unwrap_or_else(|_| "warn".into())),
    ]);
    let admin = Client::new(&server.url, Some(KEY.into())).unwrap();
    let git = GitDaemon::start();
    let work = tempfile::tempdir().unwrap();

    // A monorepo whose PKGBUILD lives in a subdirectory and computes its version in pkgver(), with a
    // VCS source (its commit is recorded with the build, for the change check of `git` targets).
    let vlib = git.repo("vlib", &[("README", "a library fetched by makepkg\n")]);
    let mono = git.repo(
        "mono",
        &[(
            "pkgs/hello/PKGBUILD",
            &pkgbuild(
                &format!("source=('vlib::git+{vlib}')\nsha256sums=('SKIP')\n\
                 pkgname=vieter-hello\n\
                 pkgver() {{ echo \"1.0.r$(git -C \"$startdir\" rev-list --count HEAD)\"; }}\n\
                 build() {{ env | sort; }}\n\
                 package() {{ mkdir -p \"$pkgdir/usr/share/vieter-hello\"; echo hello > \"$pkgdir/usr/share/vieter-hello/greeting\"; }}"),
            ),
        )],
    );
    let split = git.repo(
        "split",
        &[(
            "PKGBUILD",
            "pkgbase=splitty\npkgname=('splitty-bin' 'splitty-doc')\npkgver=2.3\npkgrel=1\nepoch=1\narch=('x86_64')\nlicense=('GPL')\n\
             package_splitty-bin() { mkdir -p \"$pkgdir/usr/lib/splitty\"; echo bin > \"$pkgdir/usr/lib/splitty/bin\"; }\n\
             package_splitty-doc() { arch=('any'); mkdir -p \"$pkgdir/usr/share/doc/splitty\"; echo doc > \"$pkgdir/usr/share/doc/splitty/README\"; }\n",
        )],
    );
    let dependent = git.repo(
        "dependent",
        &[(
            "PKGBUILD",
            &pkgbuild(
                "pkgname=needs-hello\ndepends=('vieter-hello')\n\
                 package() { mkdir -p \"$pkgdir/usr/share/needs-hello\"; cp /usr/share/vieter-hello/greeting \"$pkgdir/usr/share/needs-hello/\"; }",
            ),
        )],
    );
    let failing = git.repo(
        "failing",
        &[("PKGBUILD", &pkgbuild("pkgname=always-fails\nbuild() { echo 'boom: deliberate failure'; return 3; }\npackage() { :; }"))],
    );
    let sleeper = git.repo(
        "sleeper",
        &[("PKGBUILD", &pkgbuild("pkgname=sleeps-forever\nbuild() { sleep 300; }\npackage() { :; }"))],
    );
    let slow = git.repo(
        "slow",
        &[(
            "PKGBUILD",
            &pkgbuild(
                "pkgname=slow-one\nbuild() { sleep 8; }\n\
                 package() { mkdir -p \"$pkgdir/usr/share/slow-one\"; echo slow > \"$pkgdir/usr/share/slow-one/done\"; }",
            ),
        )],
    );
    let t_hello = target(&admin, &mono, Some("pkgs/hello"), None).await;
    let t_split = target(&admin, &split, None, None).await;
    let t_dependent = target(&admin, &dependent, None, None).await;
    let t_failing = target(&admin, &failing, None, None).await;
    let t_sleeper = target(&admin, &sleeper, None, Some(6)).await;
    let t_slow = target(&admin, &slow, None, None).await;

    // 1. kill -9 of an agent mid-build: its job is lost, retried on the other agent, published once; the
    //    killed agent's leftover container is removed when it starts again.
    let data_a = work.path().join("agent-a");
    let data_b = work.path().join("agent-b");
    let mut agent_a = Agent::start("agent-a", &server.url, &podman, &data_a, &[]);
    let first = queue(&admin, &t_slow, false).await;
    inside_makepkg(&admin, &first, "agent-a").await;
    agent_a.kill9();
    assert_eq!(
        containers_labelled("org.vieter.agent", "agent-a").len(),
        1,
        "the killed agent's container is left"
    );
    let mut agent_b = Agent::start("agent-b", &server.url, &podman, &data_b, &[]);
    let lost = finished(&admin, first.id(), 60).await;
    assert_eq!(lost.state(), JobState::Lost);
    let retry = eventually(30, "the retry of the lost job", || async {
        let jobs = admin
            .jobs(&libvieter::api::JobFilter { target: Some(t_slow.id), ..Default::default() })
            .await
            .ok()?;
        jobs.into_iter().find(|j| j.retry_of() == Some(first.id()))
    })
    .await;
    let retry = finished(&admin, retry.id(), 180).await;
    assert_eq!(retry.state(), JobState::Succeeded, "{:?}\n{}", retry.cause(), log(&admin, retry.id()).await);
    assert_eq!(retry.agent().map(|a| a.as_str()), Some("agent-b"));
    assert_eq!(names(&retry), ["slow-one-1.0-1-x86_64"]);
    let listed = admin.packages(REPO, "x86_64", &Default::default()).await.unwrap();
    assert_eq!(listed.iter().filter(|p| p.name.as_str() == "slow-one").count(), 1);
    let mut agent_a = Agent::start("agent-a", &server.url, &podman, &data_a, &[]);
    eventually(60, "agent-a's leftover container to be removed", || async {
        containers_labelled("org.vieter.agent", "agent-a").is_empty().then_some(())
    })
    .await;

    // 2. Both agents: a subdirectory PKGBUILD with pkgver(), a split package, a failure and a timeout.
    let hello = queue(&admin, &t_hello, false).await;
    let split_job = queue(&admin, &t_split, false).await;
    let fail_job = queue(&admin, &t_failing, false).await;
    let sleep_job = queue(&admin, &t_sleeper, false).await;
    let hello = finished(&admin, hello.id(), 240).await;
    let hello_log = log(&admin, hello.id()).await;
    assert_eq!(hello.state(), JobState::Succeeded, "{:?}\n{hello_log}", hello.cause());
    assert_eq!(names(&hello), ["vieter-hello-1.0.r1-1-x86_64"], "pkgver() ran");
    // What it was built from, read in the container: the clone's commit and makepkg's clone of vlib.
    let revision = hello.revision().expect("a revision is recorded");
    assert_eq!(revision.commit.as_deref(), Some(git.head("mono").as_str()), "{hello_log}");
    assert_eq!(revision.sources.len(), 1, "{revision:?}");
    assert_eq!(revision.sources[0].source, format!("vlib::git+{vlib}"));
    assert_eq!(revision.sources[0].commit.as_deref(), Some(git.head("vlib").as_str()), "{hello_log}");
    for step in ["pacman", "fetch", "pkgver", "srcinfo", "makepkg"] {
        assert!(hello_log.contains(&format!("==> [vieter] {step}: started")), "{step} in\n{hello_log}");
    }
    assert!(hello_log.contains("==> [vieter] published: vieter-hello-1.0.r1-1-x86_64"), "{hello_log}");
    assert!(hello_log.contains("HOME=/build"), "the build's environment is in the log:\n{hello_log}");
    assert!(!hello_log.contains(AGENT_KEY) && !hello_log.contains(KEY), "a key leaked into the build");
    // Built packages arrive signed by the server, and the secret key is nowhere in the build: the log
    // holds the container's whole environment (`env | sort` in build()).
    let secret = std::fs::read_to_string(server.data.join("signing_key.asc")).expect("generated signing key");
    let secret_lines: Vec<&str> =
        secret.lines().filter(|l| l.len() >= 40 && !l.starts_with("-----") && !l.contains(':')).collect();
    assert!(!secret_lines.is_empty(), "the armored key has body lines");
    for line in &secret_lines {
        assert!(!hello_log.contains(line), "the signing key leaked into the build log");
    }
    let http = reqwest::Client::new();
    let entries = common::server::served_entries(&http, &server.url, REPO, "x86_64").await;
    let desc = &entries.iter().find(|(dir, _)| dir.starts_with("vieter-hello-")).expect("hello in the db").1;
    let file = desc.lines().skip_while(|l| *l != "%FILENAME%").nth(1).expect("%FILENAME%").to_owned();
    let (status, sig) =
        common::server::get_bytes(&http, &format!("{}/{REPO}/x86_64/{file}.sig", server.url)).await;
    assert_eq!(status, 200, "{file}.sig");
    assert!(!sig.is_empty() && sig[0] & 0x80 != 0, "a binary OpenPGP packet");
    let (status, _) =
        common::server::get_bytes(&http, &format!("{}/{REPO}/x86_64/{REPO}.db.sig", server.url)).await;
    assert_eq!(status, 200, "the db is signed");

    let split_job = finished(&admin, split_job.id(), 240).await;
    assert_eq!(
        split_job.state(),
        JobState::Succeeded,
        "{:?}\n{}",
        split_job.cause(),
        log(&admin, split_job.id()).await
    );
    assert_eq!(names(&split_job), ["splitty-bin-1:2.3-1-x86_64", "splitty-doc-1:2.3-1-any"]);

    let fail_job = finished(&admin, fail_job.id(), 240).await;
    assert_eq!(fail_job.state(), JobState::Failed);
    let cause = fail_job.cause().cloned().expect("a cause");
    assert_eq!((cause.step, cause.exit_code), (FailureStep::Makepkg, Some(4)), "{cause}");
    assert!(log(&admin, fail_job.id()).await.contains("boom: deliberate failure"));

    let sleep_job = finished(&admin, sleep_job.id(), 240).await;
    assert_eq!(sleep_job.state(), JobState::TimedOut, "{:?}", sleep_job.cause());
    assert!(log(&admin, sleep_job.id()).await.contains("timed out after 6 s"));
    let all = admin.jobs(&Default::default()).await.unwrap();
    let agents: std::collections::BTreeSet<String> =
        all.iter().filter_map(|j| j.agent().map(|a| a.as_str().to_owned())).collect();
    assert_eq!(agents.into_iter().collect::<Vec<_>>(), ["agent-a", "agent-b"], "both agents built");

    // 3. A dependency that is another target's package, resolved from our own repository.
    let dep_job = queue(&admin, &t_dependent, false).await;
    let dep_job = finished(&admin, dep_job.id(), 240).await;
    assert_eq!(
        dep_job.state(),
        JobState::Succeeded,
        "{:?}\n{}",
        dep_job.cause(),
        log(&admin, dep_job.id()).await
    );

    // 4. An unchanged target builds nothing the second time, unless forced.
    let again = queue(&admin, &t_hello, false).await;
    let again = finished(&admin, again.id(), 240).await;
    assert_eq!(again.state(), JobState::Skipped, "{:?}\n{}", again.cause(), log(&admin, again.id()).await);
    assert_eq!(names(&again), ["vieter-hello-1.0.r1-1-x86_64"]);

    // 5. Real pacman installs what the agents built.
    let pacman = Pacman::new(&server.url, &[REPO]);
    let (ok, out) =
        pacman.run(&["-Sy", "--noconfirm", "needs-hello", "splitty-bin", "splitty-doc", "slow-one"]);
    assert!(ok, "{out}");
    let root = pacman.root();
    assert_eq!(std::fs::read_to_string(root.join("usr/share/needs-hello/greeting")).unwrap(), "hello\n");
    assert!(root.join("usr/share/vieter-hello/greeting").exists(), "the dependency came along");
    assert!(root.join("usr/share/doc/splitty/README").exists() && root.join("usr/lib/splitty/bin").exists());
    assert!(root.join("usr/share/slow-one/done").exists());

    // 6. Every container is gone.
    assert!(containers_labelled("org.vieter.agent", "agent-a").is_empty());
    assert!(containers_labelled("org.vieter.agent", "agent-b").is_empty());

    // 7. SIGTERM: an idle agent exits at once; one in the middle of a build finishes it, reports it and
    //    then exits.
    assert!(agent_a.terminate(), "agent-a exits cleanly");
    let drained = queue(&admin, &t_slow, true).await;
    inside_makepkg(&admin, &drained, "agent-b").await;
    assert!(agent_b.terminate(), "agent-b exits cleanly after its build");
    let drained = admin.job(drained.id()).await.unwrap();
    assert_eq!(
        drained.state(),
        JobState::Succeeded,
        "{:?}\n{}",
        drained.cause(),
        log(&admin, drained.id()).await
    );

    // 8. With a short grace the build is handed back instead: an agent failure, which the server retries.
    let mut agent_c = Agent::start(
        "agent-c",
        &server.url,
        &podman,
        &work.path().join("agent-c"),
        &[("VIETER_SHUTDOWN_GRACE", "1")],
    );
    let handed = queue(&admin, &t_slow, true).await;
    inside_makepkg(&admin, &handed, "agent-c").await;
    assert!(agent_c.terminate(), "agent-c exits cleanly after handing its build back");
    let handed = admin.job(handed.id()).await.unwrap();
    assert_eq!(handed.state(), JobState::Failed);
    assert_eq!(handed.cause().map(|c| c.step), Some(FailureStep::Agent), "{:?}", handed.cause());
    assert!(log(&admin, handed.id()).await.contains("handing the job back"));
    let jobs = admin
        .jobs(&libvieter::api::JobFilter { target: Some(t_slow.id), ..Default::default() })
        .await
        .unwrap();
    assert!(
        jobs.iter().any(|j| j.retry_of() == Some(handed.id()) && j.state() == JobState::Queued),
        "retried"
    );
    assert!(containers_labelled("org.vieter.agent", "agent-c").is_empty(), "its container was removed");
}

/// Waits until `job` runs on `agent` and has started its `makepkg` step.
async fn inside_makepkg(admin: &Client, job: &Job, agent: &str) {
    eventually(120, &format!("job {} to be inside makepkg on {agent}", job.id()), || async {
        let j = admin.job(job.id()).await.ok()?;
        let text = log(admin, job.id()).await;
        (j.state() == JobState::Running && text.contains("==> [vieter] makepkg: started")).then_some(())
    })
    .await;
    let holder = admin.job(job.id()).await.unwrap().agent().map(|a| a.as_str().to_owned());
    assert_eq!(holder.as_deref(), Some(agent));
}
