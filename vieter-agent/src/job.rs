//! One leased job from start to report: image, container, the library's build driver, timeout,
//! heartbeats, the log streamed to the server, the packages published by the agent, the container removed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use libvieter::api::LeasedJob;
use libvieter::build::{self, BuildHost, BuildPlan, PlanOptions, Step, StepOutput};
use libvieter::job::{AgentId, BuiltPackage, FailureCause, FailureStep, JobId, Outcome};
use tokio::sync::{mpsc, watch};
use vieter_client::{Client, ClientError};

use crate::podman::{Container, Runtime};

/// What every job of one agent shares.
pub struct JobContext {
    pub client: Client,
    pub runtime: Runtime,
    pub agent: AgentId,
    pub plan_options: PlanOptions,
    pub staging: PathBuf,
    pub upload_attempts: u32,
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
struct Host<'a> {
    ctx: &'a JobContext,
    job: &'a LeasedJob,
    container: &'a Container,
    log: mpsc::Sender<Vec<u8>>,
}

impl BuildHost for Host<'_> {
    async fn run(&mut self, step: &Step) -> Result<StepOutput, FailureCause> {
        self.ctx.runtime.exec(self.container, step, &self.log).await
    }

    async fn note(&mut self, line: String) {
        let _ = self.log.send(format!("{line}\n").into_bytes()).await;
    }

    async fn is_published(&mut self, packages: &[BuiltPackage]) -> Result<bool, FailureCause> {
        let repo = self.job.target.repo.as_str();
        let arch = self.job.job.arch.as_str();
        for package in packages {
            match self.ctx.client.package(repo, arch, package.name.as_str()).await {
                Ok(detail) if detail.summary.version == package.version => {}
                Ok(_) | Err(ClientError::NotFound { .. }) => return Ok(false),
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
        let dir = self.ctx.staging.join(format!("job-{}", self.job.job.id));
        let _ = tokio::fs::remove_dir_all(&dir).await;
        let files = self.ctx.runtime.copy_packages(self.container, &dir).await?;
        let result = self.upload_all(&files).await;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        result
    }
}

impl Host<'_> {
    async fn upload_all(&mut self, files: &[PathBuf]) -> Result<Vec<BuiltPackage>, FailureCause> {
        let repo = self.job.target.repo.as_str();
        let mut published = Vec::new();
        for file in files {
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let mut attempt = 1;
            let result = loop {
                match self.ctx.client.publish(repo, file, |_| {}).await {
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
                    // The package's own architecture is the last field of its file name.
                    let arch = name
                        .split(".pkg.tar")
                        .next()
                        .and_then(|stem| stem.rsplit('-').next())
                        .and_then(|a| a.parse().ok())
                        .unwrap_or_else(|| self.job.job.arch.clone());
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
async fn ship_log(client: Client, job: LeasedJob, agent: AgentId, mut rx: mpsc::Receiver<Vec<u8>>) {
    const MAX_BATCH: usize = 256 * 1024;
    let id = job.job.id;
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
            match client.append_log(id, &agent, batch.clone()).await {
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
async fn heartbeat(client: Client, job: LeasedJob, agent: AgentId, lost: watch::Sender<bool>) {
    let every = Duration::from_secs(job.heartbeat_secs.max(1));
    loop {
        tokio::time::sleep(every).await;
        // A renewal that hangs must not hold up the next one.
        let renewal = tokio::time::timeout(every * 2, client.heartbeat(job.job.id, &agent)).await;
        let Ok(renewal) = renewal else {
            tracing::warn!(job = %job.job.id, "heartbeat got no answer in {} s", every.as_secs() * 2);
            continue;
        };
        match renewal {
            Ok(()) => tracing::debug!(job = %job.job.id, "lease renewed"),
            Err(ClientError::Http { status: 409, message } | ClientError::NotFound { message }) => {
                tracing::warn!(job = %job.job.id, "the server took the job back: {message}");
                let _ = lost.send(true);
                return;
            }
            Err(e) => tracing::warn!(job = %job.job.id, "heartbeat failed: {e}"),
        }
    }
}

/// Runs `job` to its end and reports it. `stop` turns to [`Stop::Shutdown`] when the agent must hand
/// its jobs back.
pub async fn run(ctx: Arc<JobContext>, job: LeasedJob, mut stop: watch::Receiver<Stop>) {
    let id = job.job.id;
    tracing::info!(job = %id, target = %job.target.id, "build started");
    let (log_tx, log_rx) = mpsc::channel::<Vec<u8>>(256);
    let shipper = tokio::spawn(ship_log(ctx.client.clone(), job.clone(), ctx.agent.clone(), log_rx));
    let (lost_tx, mut lost_rx) = watch::channel(false);
    let beat = tokio::spawn(heartbeat(ctx.client.clone(), job.clone(), ctx.agent.clone(), lost_tx));

    let header = format!(
        "{} job {id} on agent {}: target {} ({} {}), {} for {}, timeout {} s\n",
        build::LOG_PREFIX,
        ctx.agent,
        job.target.id,
        job.target.kind.as_str(),
        job.target.url,
        job.base_image,
        job.job.arch.as_str(),
        job.timeout_secs
    );
    let _ = log_tx.send(header.into_bytes()).await;

    let work = async {
        let image = ctx
            .runtime
            .builder_image(&job.base_image, &log_tx)
            .await
            .map_err(|c| Outcome::Failed { cause: c })?;
        let container =
            ctx.runtime.create(&image, Some(id)).await.map_err(|c| Outcome::Failed { cause: c })?;
        let plan = BuildPlan::new(&job, &ctx.plan_options);
        let mut host = Host { ctx: &ctx, job: &job, container: &container, log: log_tx.clone() };
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
        result = work => Some(result.unwrap_or_else(|failed| failed)),
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
    if let Err(e) = ctx.runtime.remove_job(id).await {
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
async fn report(ctx: &JobContext, id: JobId, outcome: Outcome) {
    let state = match &outcome {
        Outcome::Succeeded { .. } => "succeeded",
        Outcome::Skipped { .. } => "skipped",
        Outcome::Failed { .. } => "failed",
        Outcome::TimedOut => "timed_out",
    };
    for attempt in 1..=5u32 {
        match ctx.client.finish(id, &ctx.agent, outcome.clone()).await {
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
