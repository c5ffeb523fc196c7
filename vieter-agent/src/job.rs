//! One leased job from start to report: image, container, the library's build driver, timeout,
//! heartbeats, the log streamed to the server, the packages published by the agent, the container removed.
//!
//! The runner is generic over the container engine ([`ContainerRuntime`]) and the server ([`JobServer`]):
//! the agent runs it on Podman and [`vieter_client::Client`], its tests on scripted fakes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use libvieter::api::LeasedJob;
use libvieter::build::{self, BuildHost, BuildPlan, PlanOptions, Step, StepOutput};
use libvieter::container::{self, ContainerId, ContainerRuntime, ContainerSettings, OutputSink};
use libvieter::job::{AgentId, BuiltPackage, FailureCause, FailureStep, JobId, Outcome};
use tokio::sync::{mpsc, watch};
use vieter_client::ClientError;

use crate::server::JobServer;

/// What every job of one agent shares.
pub struct JobContext<R, S> {
    /// The server the jobs come from.
    pub server: S,
    /// The container engine the builds run in.
    pub runtime: R,
    /// The agent's id, and how its containers are made.
    pub containers: ContainerSettings,
    pub plan_options: PlanOptions,
    /// Where packages are copied out to before their upload (one directory per job under it).
    pub staging: PathBuf,
    /// Attempts to upload each package before the job fails.
    pub upload_attempts: u32,
    /// Seconds a prepared builder image is reused before a fresh one is made.
    pub image_rebuild_interval: u64,
}

impl<R, S> JobContext<R, S> {
    /// The agent's id.
    pub fn agent(&self) -> &AgentId {
        &self.containers.agent
    }
}

/// The build log on its way to the server (see [`ship_log`]).
struct LogSink(mpsc::Sender<Vec<u8>>);

impl OutputSink for LogSink {
    async fn write(&mut self, chunk: Vec<u8>) {
        // A closed log (the job is ending) must not stop the command's output from being read.
        let _ = self.0.send(chunk).await;
    }
}

/// Why a running job must stop early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Keep going.
    No,
    /// The agent is shutting down: hand the job back.
    Shutdown,
}

/// The build's view of the world (see [`BuildHost`]).
struct Host<'a, R, S> {
    ctx: &'a JobContext<R, S>,
    job: &'a LeasedJob,
    container: &'a ContainerId,
    log: LogSink,
}

impl<R: ContainerRuntime, S: JobServer> BuildHost for Host<'_, R, S> {
    async fn run(&mut self, step: &Step) -> Result<StepOutput, FailureCause> {
        Ok(self.ctx.runtime.exec(self.container, step, &mut self.log).await?)
    }

    async fn note(&mut self, line: String) {
        self.log.write(format!("{line}\n").into_bytes()).await;
    }

    async fn is_published(&mut self, packages: &[BuiltPackage]) -> Result<bool, FailureCause> {
        let repo = self.job.target.repo.as_str();
        let arch = self.job.job.arch().as_str();
        for package in packages {
            match self.ctx.server.published_version(repo, arch, package.name.as_str()).await {
                Ok(Some(version)) if version == package.version => {}
                Ok(_) => return Ok(false),
                Err(e) => {
                    return Err(FailureCause::new(
                        FailureStep::Agent,
                        format!("could not ask the server which versions are published: {e}"),
                    ))
                }
            }
        }
        Ok(true)
    }

    async fn publish(&mut self) -> Result<Vec<BuiltPackage>, FailureCause> {
        let dir = self.ctx.staging.join(format!("job-{}", self.job.job.id()));
        let _ = tokio::fs::remove_dir_all(&dir).await;
        let copied = self.ctx.runtime.copy_out(self.container, build::OUTPUT_DIR, &dir).await;
        let result = match copied {
            Ok(files) => {
                let packages: Vec<PathBuf> = files
                    .into_iter()
                    .filter(|f| f.file_name().and_then(|n| n.to_str()).is_some_and(build::is_package_file))
                    .collect();
                self.upload_all(&packages).await
            }
            Err(e) => Err(e.into()),
        };
        let _ = tokio::fs::remove_dir_all(&dir).await;
        result
    }
}

impl<R: ContainerRuntime, S: JobServer> Host<'_, R, S> {
    async fn upload_all(&mut self, files: &[PathBuf]) -> Result<Vec<BuiltPackage>, FailureCause> {
        let repo = self.job.target.repo.as_str();
        let mut published = Vec::new();
        for file in files {
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let mut attempt = 1;
            let result = loop {
                match self.ctx.server.publish(repo, file).await {
                    Ok(result) => break Ok(result),
                    Err(e) if attempt < self.ctx.upload_attempts && retryable(&e) => {
                        self.note(format!(
                            "{} upload of {name} failed (attempt {attempt}): {e}",
                            build::LOG_PREFIX
                        ))
                        .await;
                        tokio::time::sleep(Duration::from_secs(1 << attempt.min(5))).await;
                        attempt += 1;
                    }
                    Err(e) => break Err(e),
                }
            };
            match result {
                Ok(result) => {
                    self.note(format!("{} uploaded {name}", build::LOG_PREFIX)).await;
                    // The package's own architecture (`any` in a split build) is in its file name.
                    let arch = build::package_file_arch(&name).unwrap_or_else(|| self.job.job.arch().clone());
                    published.push(BuiltPackage { name: result.name, version: result.version, arch });
                }
                Err(e) => {
                    let status = match &e {
                        ClientError::Http { status, .. } => Some(*status),
                        ClientError::Unauthorized { .. } => Some(401),
                        ClientError::NotFound { .. } => Some(404),
                        _ => None,
                    };
                    return Err(FailureCause {
                        step: FailureStep::Upload,
                        exit_code: None,
                        http_status: status,
                        message: format!("uploading {name}: {e}"),
                    });
                }
            }
        }
        Ok(published)
    }
}

/// Connection problems and server errors are worth another attempt; a refused package is not.
fn retryable(e: &ClientError) -> bool {
    match e {
        ClientError::Connect { .. } => true,
        ClientError::Http { status, .. } => *status >= 500 || *status == 408 || *status == 429,
        _ => false,
    }
}

/// Sends the log to the server in batches (at most every 250 ms, at most 256 KiB at a time) until the
/// sender side closes.
async fn ship_log<R, S: JobServer>(ctx: Arc<JobContext<R, S>>, id: JobId, mut rx: mpsc::Receiver<Vec<u8>>) {
    const MAX_BATCH: usize = 256 * 1024;
    let mut open = true;
    while open {
        let mut batch = match rx.recv().await {
            Some(bytes) => bytes,
            None => break,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_millis(250);
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(more)) => batch.extend_from_slice(&more),
                Ok(None) => {
                    open = false;
                    break;
                }
                Err(_) => break,
            }
        }
        for attempt in 0..3 {
            match ctx.server.append_log(id, ctx.agent(), batch.clone()).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(job = %id, attempt, "sending the build log failed: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

/// Renews the lease every `heartbeat_secs` until dropped; tells `lost` when the server says the job is no
/// longer ours (cancelled, or leased to another agent after this one went silent).
async fn heartbeat<R, S: JobServer>(ctx: Arc<JobContext<R, S>>, job: LeasedJob, lost: watch::Sender<bool>) {
    let every = Duration::from_secs(job.heartbeat_secs.max(1));
    loop {
        tokio::time::sleep(every).await;
        // A renewal that hangs must not hold up the next one.
        let renewal = tokio::time::timeout(every * 2, ctx.server.heartbeat(job.job.id(), ctx.agent())).await;
        let Ok(renewal) = renewal else {
            tracing::warn!(job = %job.job.id(), "heartbeat got no answer in {} s", every.as_secs() * 2);
            continue;
        };
        match renewal {
            Ok(()) => tracing::debug!(job = %job.job.id(), "lease renewed"),
            Err(ClientError::Http { status: 409, message } | ClientError::NotFound { message }) => {
                tracing::warn!(job = %job.job.id(), "the server took the job back: {message}");
                let _ = lost.send(true);
                return;
            }
            Err(e) => tracing::warn!(job = %job.job.id(), "heartbeat failed: {e}"),
        }
    }
}

/// Runs `job` to its end and reports it. `stop` turns to [`Stop::Shutdown`] when the agent must hand
/// its jobs back.
pub async fn run<R, S>(ctx: Arc<JobContext<R, S>>, job: LeasedJob, mut stop: watch::Receiver<Stop>)
where
    R: ContainerRuntime + 'static,
    S: JobServer + 'static,
{
    let id = job.job.id();
    tracing::info!(job = %id, target = %job.target.id, "build started");
    let (log_tx, log_rx) = mpsc::channel::<Vec<u8>>(256);
    let shipper = tokio::spawn(ship_log(ctx.clone(), id, log_rx));
    let (lost_tx, mut lost_rx) = watch::channel(false);
    let beat = tokio::spawn(heartbeat(ctx.clone(), job.clone(), lost_tx));

    let header = format!(
        "{} job {id} on agent {}: target {} ({} {}), {} for {}, timeout {} s\n",
        build::LOG_PREFIX,
        ctx.agent(),
        job.target.id,
        job.target.kind().as_str(),
        job.target.source.url_str(),
        job.base_image,
        job.job.arch().as_str(),
        job.timeout_secs
    );
    let _ = log_tx.send(header.into_bytes()).await;

    let work = async {
        let mut log = LogSink(log_tx.clone());
        let image = container::builder_image(
            &ctx.runtime,
            &ctx.containers,
            &job.base_image,
            ctx.image_rebuild_interval,
            chrono::Utc::now(),
            &mut log,
        )
        .await
        .map_err(|cause| Outcome::Failed { cause })?;
        let spec = ctx.containers.spec(&image, Some(id));
        let container = ctx.runtime.create(&spec).await.map_err(|e| Outcome::Failed { cause: e.into() })?;
        let plan = BuildPlan::new(&job, &ctx.plan_options);
        let mut host = Host { ctx: &ctx, job: &job, container: &container, log };
        let timeout = Duration::from_secs(job.timeout_secs.max(1));
        match tokio::time::timeout(timeout, build::run_build(&mut host, &plan)).await {
            Ok(outcome) => Ok(outcome),
            Err(_) => {
                let _ = log_tx
                    .send(
                        format!(
                            "{} timed out after {} s: the build was killed\n",
                            build::LOG_PREFIX,
                            job.timeout_secs
                        )
                        .into_bytes(),
                    )
                    .await;
                Ok(Outcome::TimedOut)
            }
        }
    };
    let outcome = tokio::select! {
        result = work => Some(match result {
            Ok(outcome) => outcome,
            // The image or the container failed before the build began: the driver did not log it.
            Err(failed) => {
                if let Outcome::Failed { cause } = &failed {
                    let _ = log_tx.send(format!("{} failed: {cause}\n", build::LOG_PREFIX).into_bytes()).await;
                }
                failed
            }
        }),
        () = async { let _ = stop.wait_for(|s| *s == Stop::Shutdown).await; } => {
            let cause = FailureCause::new(FailureStep::Agent, "the agent was stopped before the build finished");
            let _ = log_tx.send(format!("{} {cause}: handing the job back\n", build::LOG_PREFIX).into_bytes()).await;
            Some(Outcome::Failed { cause })
        }
        () = async { let _ = lost_rx.wait_for(|lost| *lost).await; } => {
            let _ = log_tx.send(format!("{} the server took the job back: build stopped\n", build::LOG_PREFIX).into_bytes()).await;
            None
        }
    };
    // The lease is renewed until the report is in: removing the container and sending the rest of the
    // log take time too.
    if let Err(e) = container::remove_labelled(&ctx.runtime, container::JOB_LABEL, &id.to_string()).await {
        tracing::warn!(job = %id, "removing the build container failed: {e}");
    }
    if let Some(Outcome::Failed { cause }) = &outcome {
        tracing::info!(job = %id, "build failed: {cause}");
    }
    drop(log_tx);
    let _ = shipper.await;
    let Some(outcome) = outcome else { return };
    report(&ctx, id, outcome).await;
    beat.abort();
}

/// Tells the server how the job ended, retrying while the server is unreachable or failing.
async fn report<R, S: JobServer>(ctx: &JobContext<R, S>, id: JobId, outcome: Outcome) {
    let state = match &outcome {
        Outcome::Succeeded { .. } => "succeeded",
        Outcome::Skipped { .. } => "skipped",
        Outcome::Failed { .. } => "failed",
        Outcome::TimedOut => "timed_out",
    };
    for attempt in 1..=5u32 {
        match ctx.server.finish(id, ctx.agent(), outcome.clone()).await {
            Ok(_) => {
                tracing::info!(job = %id, state, "build reported");
                return;
            }
            Err(e @ (ClientError::Connect { .. } | ClientError::Http { status: 500.., .. }))
                if attempt < 5 =>
            {
                tracing::warn!(job = %id, "reporting the job failed (attempt {attempt}): {e}");
                tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
            }
            Err(e) => {
                tracing::error!(job = %id, "the server refused the job's report: {e}");
                return;
            }
        }
    }
}
