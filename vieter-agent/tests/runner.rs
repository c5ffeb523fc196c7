//! The job runner (`vieter_agent::job::run`) on a scripted container runtime and a fake server: no Podman,
//! no server, time paused (tokio's test clock jumps ahead whenever every task waits).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use libvieter::api::{LeasedJob, PublishResult};
use libvieter::build::{self, PlanOptions, Step, StepOutput};
use libvieter::container::{
    Action, ContainerError, ContainerId, ContainerRuntime, ContainerSettings, ContainerSpec, ImageInfo,
    Limits, Network, OutputSink, BASE_LABEL, JOB_LABEL,
};
use libvieter::job::{AgentId, FailureStep, Job, JobId, Outcome, Trigger};
use libvieter::target::{NewTarget, TargetId};
use libvieter::version::Version;
use tokio::sync::watch;
use tokio::time::Instant;
use vieter_agent::job::{self, JobContext, Stop};
use vieter_agent::server::JobServer;
use vieter_client::ClientError;

const SRCINFO: &str = "pkgbase = splitty\n\tpkgver = 2.3\n\tpkgrel = 1\n\tepoch = 1\n\tarch = x86_64\n\n\
                       pkgname = splitty-bin\n\npkgname = splitty-doc\n\tarch = any\n";
const BIN: &str = "splitty-bin-1:2.3-1-x86_64.pkg.tar.zst";
const DOC: &str = "splitty-doc-1:2.3-1-any.pkg.tar.zst";

/// What a step does in the scripted runtime.
#[derive(Clone)]
enum Exec {
    /// Prints `lines` lines (`<title> line N`), then exits with the code.
    Exit { code: i32, lines: usize },
    /// Never ends.
    Hang,
    /// The runtime fails.
    Fail,
}

#[derive(Default)]
struct RuntimeState {
    next: u32,
    /// Containers that exist, with their spec.
    containers: BTreeMap<ContainerId, ContainerSpec>,
    created: Vec<ContainerSpec>,
    removed: Vec<ContainerId>,
    /// Titles of the steps run, in order.
    execs: Vec<String>,
    images: BTreeMap<String, ImageInfo>,
    pulls: Vec<String>,
    saved: Vec<String>,
}

/// A container runtime that plays back a script.
struct FakeRuntime {
    steps: HashMap<&'static str, Exec>,
    /// What the build writes to the output directory.
    files: Vec<&'static str>,
    create_fails: bool,
    /// How long removing a container takes.
    remove_delay: Duration,
    state: Mutex<RuntimeState>,
}

impl FakeRuntime {
    fn new() -> FakeRuntime {
        let state = RuntimeState {
            images: BTreeMap::from([("builder".to_owned(), prepared_image("builder"))]),
            ..RuntimeState::default()
        };
        FakeRuntime {
            steps: HashMap::new(),
            files: vec![BIN, DOC, "splitty-bin-1:2.3-1-x86_64.pkg.tar.zst.sig", "build.log"],
            create_fails: false,
            remove_delay: Duration::ZERO,
            state: Mutex::new(state),
        }
    }

    fn step(mut self, title: &'static str, exec: Exec) -> FakeRuntime {
        self.steps.insert(title, exec);
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RuntimeState> {
        self.state.lock().unwrap()
    }

    fn exists(&self, container: &ContainerId) -> Result<(), ContainerError> {
        match self.state().containers.contains_key(container) {
            true => Ok(()),
            false => Err(ContainerError::new(Action::Exec, format!("no such container {container}"))),
        }
    }
}

fn prepared_image(id: &str) -> ImageInfo {
    ImageInfo {
        id: id.to_owned(),
        labels: BTreeMap::from([(build::PREPARED_LABEL.to_owned(), String::new())]),
        created: Some(Utc::now()),
    }
}

impl ContainerRuntime for FakeRuntime {
    async fn inspect_image(&self, image: &str) -> Result<Option<ImageInfo>, ContainerError> {
        Ok(self.state().images.get(image).cloned())
    }

    async fn pull_image(&self, image: &str) -> Result<(), ContainerError> {
        let mut state = self.state();
        state.pulls.push(image.to_owned());
        let info =
            ImageInfo { id: format!("sha-{image}"), labels: BTreeMap::new(), created: Some(Utc::now()) };
        state.images.insert(image.to_owned(), info);
        Ok(())
    }

    async fn images_labelled(&self, key: &str, value: &str) -> Result<Vec<ImageInfo>, ContainerError> {
        let state = self.state();
        let images = state.images.values().filter(|i| i.labels.get(key).is_some_and(|v| v == value));
        Ok(images.cloned().collect())
    }

    async fn save_image(
        &self,
        container: &ContainerId,
        repo: &str,
        tag: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), ContainerError> {
        self.exists(container)?;
        let name = format!("{repo}:{tag}");
        let mut state = self.state();
        state.saved.push(name.clone());
        let mut all = labels.clone();
        all.insert(build::PREPARED_LABEL.to_owned(), String::new());
        state.images.insert(name.clone(), ImageInfo { id: name, labels: all, created: Some(Utc::now()) });
        Ok(())
    }

    async fn remove_image(&self, image: &str) -> Result<(), ContainerError> {
        self.state().images.remove(image);
        Ok(())
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<ContainerId, ContainerError> {
        if self.create_fails {
            return Err(ContainerError::new(Action::Create, "no space left on device"));
        }
        let mut state = self.state();
        if !state.images.contains_key(&spec.image) {
            return Err(ContainerError::new(Action::Create, format!("{}: image not known", spec.image)));
        }
        state.next += 1;
        let id = ContainerId::new(format!("c{}", state.next));
        state.containers.insert(id.clone(), spec.clone());
        state.created.push(spec.clone());
        Ok(id)
    }

    async fn exec<O: OutputSink>(
        &self,
        container: &ContainerId,
        step: &Step,
        output: &mut O,
    ) -> Result<StepOutput, ContainerError> {
        self.exists(container)?;
        self.state().execs.push(step.title.to_owned());
        let exec = self.steps.get(step.title).cloned().unwrap_or(Exec::Exit { code: 0, lines: 1 });
        match exec {
            Exec::Exit { code, lines } => {
                for n in 0..lines {
                    output.write(format!("{} line {n}\n", step.title).into_bytes()).await;
                }
                let stdout = if step.capture_stdout { SRCINFO.to_owned() } else { String::new() };
                if step.capture_stdout {
                    output.write(stdout.clone().into_bytes()).await;
                }
                Ok(StepOutput { exit_code: code, stdout, elapsed: Duration::from_secs(1) })
            }
            Exec::Hang => std::future::pending().await,
            Exec::Fail => Err(ContainerError::new(Action::Exec, "reading its output: connection reset")),
        }
    }

    async fn copy_out(
        &self,
        container: &ContainerId,
        from: &str,
        to: &Path,
    ) -> Result<Vec<PathBuf>, ContainerError> {
        self.exists(container)?;
        assert_eq!(from, build::OUTPUT_DIR);
        std::fs::create_dir_all(to).map_err(|e| ContainerError::new(Action::CopyOut, e))?;
        let mut out = Vec::new();
        for name in &self.files {
            let path = to.join(name);
            std::fs::write(&path, b"package").map_err(|e| ContainerError::new(Action::CopyOut, e))?;
            out.push(path);
        }
        out.sort();
        Ok(out)
    }

    async fn remove(&self, container: &ContainerId) -> Result<(), ContainerError> {
        tokio::time::sleep(self.remove_delay).await;
        let mut state = self.state();
        state.containers.remove(container);
        state.removed.push(container.clone());
        Ok(())
    }

    async fn containers_labelled(&self, key: &str, value: &str) -> Result<Vec<ContainerId>, ContainerError> {
        let state = self.state();
        let labelled =
            state.containers.iter().filter(|(_, spec)| spec.labels.get(key).is_some_and(|v| v == value));
        Ok(labelled.map(|(id, _)| id.clone()).collect())
    }
}

#[derive(Default)]
struct ServerState {
    heartbeats: Vec<Instant>,
    batches: Vec<Vec<u8>>,
    /// File names of the upload attempts.
    uploads: Vec<String>,
    finished: Vec<(Outcome, Instant)>,
}

/// A server that records what the runner sends.
#[derive(Default)]
struct FakeServer {
    /// Uploads that fail (with `upload_status`) before they succeed.
    upload_failures: usize,
    upload_status: u16,
    /// The heartbeat after this many answers "409: the job was cancelled".
    heartbeats_until_taken_back: Option<usize>,
    published: HashMap<String, Version>,
    state: Mutex<ServerState>,
}

impl FakeServer {
    fn state(&self) -> std::sync::MutexGuard<'_, ServerState> {
        self.state.lock().unwrap()
    }

    /// Everything the log received, in order.
    fn log(&self) -> String {
        String::from_utf8(self.state().batches.concat()).unwrap()
    }

    fn outcome(&self) -> Outcome {
        let state = self.state();
        assert_eq!(state.finished.len(), 1, "reported once");
        state.finished[0].0.clone()
    }
}

impl JobServer for FakeServer {
    async fn heartbeat(&self, _: JobId, _: &AgentId) -> Result<(), ClientError> {
        let mut state = self.state();
        if self.heartbeats_until_taken_back.is_some_and(|n| state.heartbeats.len() >= n) {
            return Err(ClientError::Http { status: 409, message: "job 3 is cancelled".into() });
        }
        state.heartbeats.push(Instant::now());
        Ok(())
    }

    async fn append_log(&self, _: JobId, _: &AgentId, text: Vec<u8>) -> Result<(), ClientError> {
        self.state().batches.push(text);
        Ok(())
    }

    async fn published_version(&self, _: &str, _: &str, name: &str) -> Result<Option<Version>, ClientError> {
        Ok(self.published.get(name).cloned())
    }

    async fn publish(&self, _: &str, file: &Path) -> Result<PublishResult, ClientError> {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(file.exists(), "{name} was copied out before its upload");
        let mut state = self.state();
        state.uploads.push(name.clone());
        if state.uploads.len() <= self.upload_failures {
            return Err(ClientError::Http { status: self.upload_status, message: "try again".into() });
        }
        // name-epoch:pkgver-pkgrel-arch.pkg.tar.zst
        let stem = name.split(".pkg.tar").next().unwrap();
        let mut fields = stem.rsplitn(4, '-');
        let (_arch, rel, ver, pkg) =
            (fields.next().unwrap(), fields.next().unwrap(), fields.next().unwrap(), fields.next().unwrap());
        Ok(PublishResult {
            name: pkg.parse().unwrap(),
            version: Version::parse(&format!("{ver}-{rel}")).unwrap(),
            archs: vec!["x86_64".parse().unwrap()],
        })
    }

    async fn finish(&self, _: JobId, _: &AgentId, outcome: Outcome) -> Result<(), ClientError> {
        self.state().finished.push((outcome, Instant::now()));
        Ok(())
    }
}

fn leased(timeout_secs: u64, heartbeat_secs: u64) -> LeasedJob {
    let new = NewTarget {
        kind: "git".into(),
        url: "git://example.org/splitty.git".into(),
        repo: "built".into(),
        ..NewTarget::default()
    };
    let x86 = "x86_64".parse().unwrap();
    let target = new.validate(TargetId(7), &x86).unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    LeasedJob {
        job: Job::new(JobId(3), TargetId(7), x86, false, Trigger::Manual, t0),
        target,
        base_image: "builder".into(),
        timeout_secs,
        lease_expires_at: t0,
        heartbeat_secs,
    }
}

struct Run {
    ctx: Arc<JobContext<FakeRuntime, FakeServer>>,
    _staging: tempfile::TempDir,
    started: Instant,
}

impl Run {
    fn runtime(&self) -> std::sync::MutexGuard<'_, RuntimeState> {
        self.ctx.runtime.state()
    }

    fn server(&self) -> &FakeServer {
        &self.ctx.server
    }

    /// Every container the job made was removed, and none is left.
    fn assert_containers_removed(&self) {
        let state = self.runtime();
        assert!(state.containers.is_empty(), "left: {:?}", state.containers.keys().collect::<Vec<_>>());
        assert_eq!(state.removed.len(), state.created.len(), "each created container removed once");
    }
}

fn context(runtime: FakeRuntime, server: FakeServer, upload_attempts: u32) -> Run {
    let staging = tempfile::tempdir().unwrap();
    let ctx = Arc::new(JobContext {
        server,
        runtime,
        containers: ContainerSettings {
            agent: AgentId::new("agent-t").unwrap(),
            limits: Limits { memory_bytes: Some(1 << 30), cpus: Some(1.5), pids: None },
            network: Network::Host,
        },
        plan_options: PlanOptions {
            arch: "x86_64".parse().unwrap(),
            repo_server: "http://127.0.0.1:8000".into(),
            aur_base: "https://aur.example".into(),
        },
        staging: staging.path().to_owned(),
        upload_attempts,
        image_rebuild_interval: 3600,
    });
    Run { ctx, _staging: staging, started: Instant::now() }
}

/// Runs `job` to its end (the agent never stops).
async fn run(runtime: FakeRuntime, server: FakeServer, job: LeasedJob, upload_attempts: u32) -> Run {
    let run = context(runtime, server, upload_attempts);
    let (_stop_tx, stop_rx) = watch::channel(Stop::No);
    job::run(run.ctx.clone(), job, stop_rx).await;
    run
}

#[tokio::test(start_paused = true)]
async fn success_publishes_every_package_with_the_arch_of_its_file_name() {
    let run = run(FakeRuntime::new(), FakeServer::default(), leased(600, 10), 3).await;
    let Outcome::Succeeded { versions, .. } = run.server().outcome() else {
        panic!("{:?}\n{}", run.server().outcome(), run.server().log())
    };
    let got: Vec<String> =
        versions.iter().map(|p| format!("{}-{}-{}", p.name.as_str(), p.version, p.arch.as_str())).collect();
    assert_eq!(got, ["splitty-bin-1:2.3-1-x86_64", "splitty-doc-1:2.3-1-any"]);
    // Signatures and other files in the output directory are not uploaded.
    assert_eq!(run.server().state().uploads, [BIN, DOC]);
    assert_eq!(run.runtime().execs, ["pacman", "fetch", "pkgver", "srcinfo", "revision", "makepkg"]);
    let spec = run.runtime().created[0].clone();
    assert_eq!((spec.image.as_str(), spec.labels[JOB_LABEL].as_str()), ("builder", "3"));
    assert_eq!((spec.network, spec.limits.cpus), (Network::Host, Some(1.5)));
    run.assert_containers_removed();
    let staged = std::fs::read_dir(&run.ctx.staging).unwrap().count();
    assert_eq!(staged, 0, "the staged packages are deleted");
    assert!(run.server().log().contains("==> [vieter] published: splitty-bin-1:2.3-1-x86_64, splitty-doc"));
}

#[tokio::test(start_paused = true)]
async fn published_versions_are_skipped() {
    let mut server = FakeServer::default();
    for name in ["splitty-bin", "splitty-doc"] {
        server.published.insert(name.into(), Version::parse("1:2.3-1").unwrap());
    }
    let run = run(FakeRuntime::new(), server, leased(600, 10), 3).await;
    assert!(matches!(run.server().outcome(), Outcome::Skipped { .. }), "{:?}", run.server().outcome());
    assert!(!run.runtime().execs.iter().any(|s| s == "makepkg"));
    assert!(run.server().state().uploads.is_empty());
    run.assert_containers_removed();
}

#[tokio::test(start_paused = true)]
async fn a_failing_step_is_reported_with_its_cause() {
    let runtime = FakeRuntime::new().step("makepkg", Exec::Exit { code: 4, lines: 3 });
    let run = run(runtime, FakeServer::default(), leased(600, 10), 3).await;
    let Outcome::Failed { cause } = run.server().outcome() else { panic!("{:?}", run.server().outcome()) };
    assert_eq!((cause.step, cause.exit_code), (FailureStep::Makepkg, Some(4)), "{cause}");
    assert!(run.server().state().uploads.is_empty());
    let log = run.server().log();
    assert!(log.contains("makepkg line 2\n") && log.contains("makepkg: exit code 4"), "{log}");
    run.assert_containers_removed();
}

#[tokio::test(start_paused = true)]
async fn a_build_past_its_timeout_is_timed_out_and_killed() {
    let runtime = FakeRuntime::new().step("makepkg", Exec::Hang);
    let run = run(runtime, FakeServer::default(), leased(60, 10), 3).await;
    assert_eq!(run.server().outcome(), Outcome::TimedOut);
    let at = run.server().state().finished[0].1 - run.started;
    assert!(at >= Duration::from_secs(60) && at < Duration::from_secs(61), "reported after {at:?}");
    assert!(run.server().log().contains("timed out after 60 s: the build was killed"));
    run.assert_containers_removed();
}

#[tokio::test(start_paused = true)]
async fn a_runtime_error_fails_the_job_as_the_runtime_s() {
    let run =
        run(FakeRuntime::new().step("fetch", Exec::Fail), FakeServer::default(), leased(600, 10), 3).await;
    let Outcome::Failed { cause } = run.server().outcome() else { panic!("{:?}", run.server().outcome()) };
    assert_eq!(cause.step, FailureStep::ContainerRuntime);
    assert_eq!(cause.message, "running a command: reading its output: connection reset");
    assert_eq!(run.runtime().execs, ["pacman", "fetch"]);
    run.assert_containers_removed();

    let mut runtime = FakeRuntime::new();
    runtime.create_fails = true;
    let run = self::run(runtime, FakeServer::default(), leased(600, 10), 3).await;
    let Outcome::Failed { cause } = run.server().outcome() else { panic!("{:?}", run.server().outcome()) };
    assert_eq!(cause.step, FailureStep::ContainerRuntime);
    assert_eq!(cause.message, "creating the build container: no space left on device");
    assert!(run.server().log().contains("no space left on device"), "the log says why");
}

#[tokio::test(start_paused = true)]
async fn the_lease_is_renewed_until_the_report_is_in() {
    // The build takes no time; removing its container 45 s.
    let mut runtime = FakeRuntime::new();
    runtime.remove_delay = Duration::from_secs(45);
    let run = run(runtime, FakeServer::default(), leased(600, 10), 3).await;
    assert!(matches!(run.server().outcome(), Outcome::Succeeded { .. }));
    let reported = run.server().state().finished[0].1;
    assert!(reported - run.started >= Duration::from_secs(45));
    let beats = run.server().state().heartbeats.clone();
    assert!(beats.len() >= 4, "heartbeats during the clean-up: {}", beats.len());
    let last = beats.iter().max().copied().unwrap_or(run.started);
    assert!(reported - last <= Duration::from_secs(10), "no gap of more than one period before the report");
    run.assert_containers_removed();

    // After the report the renewals stop.
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(run.server().state().heartbeats.len(), beats.len(), "no heartbeat after the report");
}

#[tokio::test(start_paused = true)]
async fn a_job_the_server_took_back_is_stopped_and_not_reported() {
    let server = FakeServer { heartbeats_until_taken_back: Some(2), ..FakeServer::default() };
    let runtime = FakeRuntime::new().step("makepkg", Exec::Hang);
    let run = run(runtime, server, leased(600, 10), 3).await;
    assert!(run.server().state().finished.is_empty(), "nothing reported");
    let at = Instant::now() - run.started;
    assert!(at >= Duration::from_secs(30) && at < Duration::from_secs(31), "stopped after {at:?}");
    assert!(run.server().log().contains("the server took the job back: build stopped"));
    run.assert_containers_removed();
}

#[tokio::test(start_paused = true)]
async fn a_stopping_agent_hands_the_job_back() {
    let run = context(FakeRuntime::new().step("makepkg", Exec::Hang), FakeServer::default(), 3);
    let (stop_tx, stop_rx) = watch::channel(Stop::No);
    let task = tokio::spawn(job::run(run.ctx.clone(), leased(600, 10), stop_rx));
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop_tx.send(Stop::Shutdown).unwrap();
    task.await.unwrap();
    let Outcome::Failed { cause } = run.server().outcome() else { panic!("{:?}", run.server().outcome()) };
    assert_eq!(cause.step, FailureStep::Agent);
    assert!(run.server().log().contains("handing the job back"));
    run.assert_containers_removed();
}

#[tokio::test(start_paused = true)]
async fn failed_uploads_are_retried_upload_attempts_times() {
    // Two failures, then success: three attempts of the first package, one of the second.
    let server = FakeServer { upload_failures: 2, upload_status: 503, ..FakeServer::default() };
    let run = run(FakeRuntime::new(), server, leased(600, 10), 3).await;
    assert!(matches!(run.server().outcome(), Outcome::Succeeded { .. }), "{:?}", run.server().outcome());
    assert_eq!(run.server().state().uploads, [BIN, BIN, BIN, DOC]);
    assert!(run.server().log().contains(&format!("upload of {BIN} failed (attempt 2)")));

    // Always failing: exactly `upload_attempts` attempts, then the job fails with the HTTP status.
    let server = FakeServer { upload_failures: usize::MAX, upload_status: 503, ..FakeServer::default() };
    let run = self::run(FakeRuntime::new(), server, leased(600, 10), 4).await;
    let Outcome::Failed { cause } = run.server().outcome() else { panic!("{:?}", run.server().outcome()) };
    assert_eq!((cause.step, cause.http_status), (FailureStep::Upload, Some(503)), "{cause}");
    assert_eq!(run.server().state().uploads, [BIN, BIN, BIN, BIN]);
    run.assert_containers_removed();

    // A refused package is not retried.
    let server = FakeServer { upload_failures: usize::MAX, upload_status: 400, ..FakeServer::default() };
    let run = self::run(FakeRuntime::new(), server, leased(600, 10), 4).await;
    let Outcome::Failed { cause } = run.server().outcome() else { panic!("{:?}", run.server().outcome()) };
    assert_eq!((cause.step, cause.http_status), (FailureStep::Upload, Some(400)));
    assert_eq!(run.server().state().uploads, [BIN]);
}

#[tokio::test(start_paused = true)]
async fn output_reaches_the_log_in_batches_and_none_is_lost() {
    // 20,000 lines of about 20 bytes: 400 KB, more than one batch may carry.
    let lines = 20_000;
    let runtime = FakeRuntime::new().step("makepkg", Exec::Exit { code: 0, lines });
    let run = run(runtime, FakeServer::default(), leased(600, 10), 3).await;
    assert!(matches!(run.server().outcome(), Outcome::Succeeded { .. }));
    let batches = run.server().state().batches.iter().map(Vec::len).collect::<Vec<_>>();
    assert!(batches.len() >= 2, "more than 256 KiB takes several batches: {batches:?}");
    assert!(batches.len() < 100, "lines are batched, not sent one by one: {} batches", batches.len());
    assert!(batches.iter().all(|len| *len <= 256 * 1024 + 64), "a batch is at most 256 KiB: {batches:?}");
    let log = run.server().log();
    let mut rest = log.as_str();
    for n in 0..lines {
        let line = format!("makepkg line {n}\n");
        let at = rest.find(&line).unwrap_or_else(|| panic!("line {n} missing or out of order"));
        rest = &rest[at + line.len()..];
    }
    assert!(log.starts_with("==> [vieter] job 3 on agent agent-t"), "{}", &log[..80]);
    assert!(log.trim_end().ends_with("published: splitty-bin-1:2.3-1-x86_64, splitty-doc-1:2.3-1-any"));
}

#[tokio::test(start_paused = true)]
async fn a_plain_base_is_pulled_and_prepared_once_then_reused() {
    let mut job = leased(600, 10);
    job.base_image = "archlinux:base-devel".into();
    let run = context(FakeRuntime::new(), FakeServer::default(), 3);
    let (_stop_tx, stop_rx) = watch::channel(Stop::No);
    job::run(run.ctx.clone(), job.clone(), stop_rx.clone()).await;
    assert!(matches!(run.server().outcome(), Outcome::Succeeded { .. }), "{}", run.server().log());
    {
        let state = run.runtime();
        assert_eq!(state.pulls, ["archlinux:base-devel"]);
        assert_eq!(state.saved.len(), 1);
        assert!(
            state.saved[0].starts_with("localhost/vieter-prepared-archlinux-base-devel:"),
            "{:?}",
            state.saved
        );
        let images: Vec<&str> = state.created.iter().map(|s| s.image.as_str()).collect();
        assert_eq!(images, ["archlinux:base-devel", state.saved[0].as_str()], "prepared, then built in it");
        assert!(!state.created[0].labels.contains_key(JOB_LABEL), "the preparation is no job's container");
        assert_eq!(state.images[&state.saved[0]].labels[BASE_LABEL], "archlinux:base-devel");
        assert_eq!(state.execs[0], "image");
    }
    run.assert_containers_removed();
    assert!(run.server().log().contains("image: preparing a builder image from archlinux:base-devel"));

    // The next job reuses the prepared image.
    run.server().state().finished.clear();
    job::run(run.ctx.clone(), job, stop_rx).await;
    let state = run.runtime();
    assert_eq!((state.pulls.len(), state.saved.len()), (1, 1));
    assert_eq!(state.created.last().map(|s| s.image.as_str()), Some(state.saved[0].as_str()));
}
