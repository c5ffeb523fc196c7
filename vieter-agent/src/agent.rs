//! The agent's main loop: remove leftovers, long-poll the server for as many jobs as there are free
//! build slots, run each job in its own task; on the first stop signal take no new job and let running
//! builds finish (up to `shutdown_grace`), on the second (or at the grace's end) hand them back.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use libvieter::api::PollRequest;
use libvieter::build::PlanOptions;
use libvieter::container::{self, ContainerSettings, Limits};
use libvieter::job::AgentId;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use vieter_client::{Client, ClientError};

use crate::config::AgentConfig;
use crate::job::{self, JobContext, Stop};
use crate::podman::Runtime;

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("agent id: {0}")]
    Id(String),
    #[error("Podman at {socket}: {message} (is `podman system service --time=0 unix://{socket}` running?)")]
    Podman { socket: String, message: String },
}

/// The agent's id: the configured one, else the one generated on the first start and kept in
/// `{data_dir}/agent_id`.
pub fn agent_id(config: &AgentConfig) -> Result<AgentId, StartError> {
    if let Some(id) = &config.id {
        return AgentId::new(id.clone()).map_err(|e| StartError::Id(e.to_string()));
    }
    let path = config.data_dir.join("agent_id");
    let io = |source| StartError::DataDir { path: path.display().to_string(), source };
    match std::fs::read_to_string(&path) {
        Ok(text) => AgentId::new(text.trim()).map_err(|e| StartError::Id(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            let host: String = host
                .trim()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
                .take(60)
                .collect();
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
                .unwrap_or(0);
            let suffix = format!("{:08x}", nanos ^ std::process::id().rotate_left(16));
            let id = if host.is_empty() { format!("agent-{suffix}") } else { format!("{host}-{suffix}") };
            let agent = AgentId::new(id.clone()).map_err(|e| StartError::Id(e.to_string()))?;
            write_atomically(&path, id.as_bytes()).map_err(io)?;
            Ok(agent)
        }
        Err(e) => Err(io(e)),
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    libvieter::fs::write_atomically(path, |w| std::io::Write::write_all(w, bytes))
}

/// Runs the agent until `shutdown` resolves (first signal) and its builds are done or handed back
/// (`force` resolves: second signal).
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
    force: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let data = |source| StartError::DataDir { path: config.data_dir.display().to_string(), source };
    std::fs::create_dir_all(&config.data_dir).map_err(data)?;
    let agent = agent_id(&config)?;
    let client = Client::new(&config.address, config.api_key.clone())?;
    let socket = config.podman_socket.display().to_string();
    let podman_error = |message: String| StartError::Podman { socket: socket.clone(), message };
    let runtime = Runtime::new(&config.podman_socket);
    let version = runtime.version().await.map_err(podman_error)?;
    // Containers an earlier run of this agent left behind (killed, or the machine went down).
    let removed = container::remove_labelled(&runtime, container::AGENT_LABEL, agent.as_str())
        .await
        .map_err(|e| podman_error(e.to_string()))?;
    tracing::info!(agent = %agent, podman = %version, removed, "agent started: {} slot(s) for {}", config.capacity, config.arch.as_str());

    let staging = config.data_dir.join("staging");
    let _ = std::fs::remove_dir_all(&staging);
    let ctx = Arc::new(JobContext {
        server: client.clone(),
        runtime,
        containers: ContainerSettings {
            agent: agent.clone(),
            limits: Limits::from_settings(config.memory_limit, config.cpus, config.pids_limit),
            network: config.network,
        },
        plan_options: PlanOptions {
            arch: config.arch.clone(),
            repo_server: config.repo_server().to_owned(),
            aur_base: config.aur_base.clone(),
        },
        staging,
        upload_attempts: config.upload_attempts,
        image_rebuild_interval: config.image_rebuild_interval,
    });
    let slots = Arc::new(Semaphore::new(config.capacity as usize));
    let (stop_tx, stop_rx) = watch::channel(Stop::No);
    let mut running = JoinSet::new();
    let mut failures = 0u32;
    tokio::pin!(shutdown);

    loop {
        // Reap finished builds so the set does not grow.
        while running.try_join_next().is_some() {}
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let free = 1 + slots.available_permits();
        let request = PollRequest {
            agent_id: agent.clone(),
            arch: config.arch.clone(),
            capacity: free as u32,
            wait: Some(config.poll_wait),
        };
        let jobs = tokio::select! {
            answer = client.poll(&request) => answer,
            () = &mut shutdown => break,
        };
        match jobs {
            Ok(jobs) => {
                failures = 0;
                let mut permit = Some(first);
                for leased in jobs {
                    let slot = match permit.take() {
                        Some(p) => p,
                        // The server never leases more than asked; wait for a slot if it ever did.
                        None => match slots.clone().acquire_owned().await {
                            Ok(p) => p,
                            Err(_) => break,
                        },
                    };
                    let ctx = ctx.clone();
                    let stop = stop_rx.clone();
                    running.spawn(async move {
                        job::run(ctx, leased, stop).await;
                        drop(slot);
                    });
                }
            }
            Err(e) => {
                failures += 1;
                let wait = Duration::from_secs(u64::from(failures.min(5)) * 2);
                tracing::warn!("polling the server failed: {e}; next attempt in {} s", wait.as_secs());
                drop(first);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = &mut shutdown => break,
                }
            }
        }
    }

    if !running.is_empty() {
        tracing::info!(
            "stopping: waiting up to {} s for {} running build(s); signal again to hand them back",
            config.shutdown_grace,
            running.len()
        );
        let grace = tokio::time::sleep(Duration::from_secs(config.shutdown_grace));
        tokio::pin!(grace);
        tokio::pin!(force);
        let mut handed_back = false;
        while !running.is_empty() {
            tokio::select! {
                _ = running.join_next() => {}
                () = &mut grace, if !handed_back => { handed_back = true; let _ = stop_tx.send(Stop::Shutdown); }
                () = &mut force, if !handed_back => { handed_back = true; let _ = stop_tx.send(Stop::Shutdown); }
            }
        }
    }
    tracing::info!("agent stopped");
    Ok(())
}
