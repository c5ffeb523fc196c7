//! The contract of `libvieter::container::ContainerRuntime`, checked on the Podman implementation (real
//! Podman, the builder image): what the runner's fakes assume is what Podman does.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::PodmanService;
use libvieter::build::{self, Step, StepUser};
use libvieter::container::{
    remove_labelled, ContainerRuntime, ContainerSettings, Limits, Network, AGENT_LABEL, JOB_LABEL,
};
use libvieter::job::{AgentId, FailureStep, JobId};
use vieter_agent::podman::Runtime;

fn step(user: StepUser, script: &str, capture_stdout: bool) -> Step {
    Step { kind: FailureStep::Makepkg, title: "test", user, script: script.into(), capture_stdout }
}

/// Checks `runtime` against the port's contract, building in `image` (a builder image).
async fn conformance<R: ContainerRuntime>(runtime: &R, image: &str, staging: &Path) {
    let info = runtime.inspect_image(image).await.expect("inspect").expect("the builder image is here");
    assert!(info.is_prepared(), "{:?}", info.labels);
    assert!(runtime.inspect_image("localhost/vieter-no-such-image:none").await.expect("inspect").is_none());

    let settings = ContainerSettings {
        agent: AgentId::new("port-test").expect("id"),
        limits: Limits { memory_bytes: Some(512 << 20), cpus: Some(1.0), pids: Some(256) },
        network: Network::Bridge,
    };
    let id = runtime.create(&settings.spec(image, Some(JobId(42)))).await.expect("create");
    assert_eq!(runtime.containers_labelled(JOB_LABEL, "42").await.expect("list"), std::slice::from_ref(&id));
    assert_eq!(
        runtime.containers_labelled(AGENT_LABEL, "port-test").await.expect("list"),
        std::slice::from_ref(&id)
    );
    assert!(runtime.containers_labelled(JOB_LABEL, "43").await.expect("list").is_empty());

    // Output streamed (both streams), stdout captured, the exit code returned, as the builder in /build.
    let mut log = Vec::new();
    let script = "echo out; echo err >&2; id -un; pwd; echo \"HOME=$HOME\"; exit 3";
    let out = runtime.exec(&id, &step(StepUser::Builder, script, true), &mut log).await.expect("exec");
    assert_eq!(out.exit_code, 3);
    assert_eq!(out.stdout, "out\nbuilder\n/build\nHOME=/build\n");
    let log = String::from_utf8(log).expect("utf-8");
    assert!(log.contains("out\n") && log.contains("err\n") && log.contains("builder\n"), "{log}");
    let mut log = Vec::new();
    let out = runtime.exec(&id, &step(StepUser::Root, "id -un", false), &mut log).await.expect("exec");
    assert_eq!((out.exit_code, out.stdout.as_str(), log.as_slice()), (0, "", b"root\n".as_slice()));

    // Files copied out flat under their own names.
    let script = format!(
        "set -e; mkdir -p {0}/sub; printf one > {0}/a-1-1-any.pkg.tar.zst; printf two > {0}/sub/b.txt; \
         ln -s a-1-1-any.pkg.tar.zst {0}/link",
        build::OUTPUT_DIR
    );
    let out = runtime.exec(&id, &step(StepUser::Root, &script, false), &mut Vec::new()).await.expect("exec");
    assert_eq!(out.exit_code, 0);
    let dir = staging.join("out");
    let files = runtime.copy_out(&id, build::OUTPUT_DIR, &dir).await.expect("copy out");
    assert_eq!(files, [dir.join("a-1-1-any.pkg.tar.zst"), dir.join("b.txt")], "regular files only");
    assert_eq!(std::fs::read(&files[0]).expect("read"), b"one");
    assert_eq!(std::fs::read(&files[1]).expect("read"), b"two");

    // Removed at once, with a command still running; removing again is fine.
    let background = step(StepUser::Root, "sleep 300 >/dev/null 2>&1 &", false);
    runtime.exec(&id, &background, &mut Vec::new()).await.expect("exec");
    let began = Instant::now();
    runtime.remove(&id).await.expect("remove");
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "killed at once, not after a grace: {:?}",
        began.elapsed()
    );
    runtime.remove(&id).await.expect("removing a removed container");
    assert!(runtime.containers_labelled(JOB_LABEL, "42").await.expect("list").is_empty());
    assert!(runtime.exec(&id, &step(StepUser::Root, "true", false), &mut Vec::new()).await.is_err());

    // The clean-up by label.
    let a = runtime.create(&settings.spec(image, Some(JobId(1)))).await.expect("create");
    let b = runtime.create(&settings.spec(image, None)).await.expect("create");
    assert_eq!(remove_labelled(runtime, AGENT_LABEL, "port-test").await.expect("clean-up"), 2);
    assert!(runtime.containers_labelled(AGENT_LABEL, "port-test").await.expect("list").is_empty(), "{a} {b}");

    // An image that cannot be used is an error, not a container.
    let bad = settings.spec("localhost/vieter-no-such-image:none", None);
    let e = runtime.create(&bad).await.expect_err("no such image");
    assert_eq!(e.action.step(), FailureStep::ContainerRuntime, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_keeps_the_container_port_contract() {
    if !common::require_podman() {
        return;
    }
    let podman = PodmanService::start();
    let staging = tempfile::tempdir().expect("temp dir");
    let runtime = Runtime::new(&podman.socket);
    runtime.version().await.expect("podman answers");
    conformance(&runtime, &common::test_image(), staging.path()).await;
}
