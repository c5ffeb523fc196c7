//! Podman, through its REST API (`podman-api`): builder images, one container per job, commands run in
//! it with their output streamed, packages copied out, containers removed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use libvieter::build::{self, ImageChoice, Step, StepOutput, StepUser};
use libvieter::job::{FailureCause, FailureStep, JobId};
use podman_api::conn::TtyChunk;
use podman_api::models::{LinuxResources, Namespace};
use podman_api::opts::{
    ContainerCommitOpts, ContainerCreateOpts, ContainerDeleteOpts, ContainerListFilter, ContainerListOpts,
    ExecCreateOpts, ImageListFilter, ImageListOpts, PullOpts, UserOpt,
};
use podman_api::Podman;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::config::{AgentConfig, Network};

/// Label naming the agent that made a container.
pub const AGENT_LABEL: &str = "org.vieter.agent";
/// Label naming the job a container builds.
pub const JOB_LABEL: &str = "org.vieter.job";
/// Label of prepared images: the base image they were made from.
pub const BASE_LABEL: &str = "org.vieter.base";

/// A runtime error, as the cause a job reports.
fn runtime_error(step: FailureStep, what: &str, e: impl std::fmt::Display) -> FailureCause {
    FailureCause::new(step, format!("{what}: {e}"))
}

/// The agent's connection to Podman.
#[derive(Clone)]
pub struct Runtime {
    podman: Podman,
    agent: String,
    network: Network,
    resources: Option<LinuxResources>,
    rebuild_after: u64,
}

/// A started build container.
pub struct Container {
    pub id: String,
}

impl Runtime {
    /// Connects to the socket in `config` (nothing is sent yet).
    pub fn new(config: &AgentConfig, agent: &str) -> Result<Runtime, String> {
        let podman = Podman::unix(&config.podman_socket);
        // The generated models have no Default: build the JSON the API takes.
        let mut limits = serde_json::Map::new();
        if config.memory_limit > 0 {
            limits.insert("memory".into(), serde_json::json!({ "limit": config.memory_limit }));
        }
        if config.cpus > 0.0 {
            let period = 100_000u64;
            let quota = (config.cpus * period as f64).round() as i64;
            limits.insert("cpu".into(), serde_json::json!({ "period": period, "quota": quota }));
        }
        if config.pids_limit > 0 {
            limits.insert("pids".into(), serde_json::json!({ "limit": config.pids_limit }));
        }
        let resources = if limits.is_empty() {
            None
        } else {
            let value = serde_json::Value::Object(limits);
            Some(
                serde_json::from_value::<LinuxResources>(value)
                    .map_err(|e| format!("resource limits: {e}"))?,
            )
        };
        Ok(Runtime {
            podman,
            agent: agent.to_owned(),
            network: config.network,
            resources,
            rebuild_after: config.image_rebuild_interval,
        })
    }

    /// Podman's version: checks that the socket answers.
    pub async fn version(&self) -> Result<String, String> {
        let v = self.podman.version().await.map_err(|e| e.to_string())?;
        Ok(v.version.unwrap_or_else(|| "unknown".into()))
    }

    async fn containers_labelled(&self, key: &str, value: &str) -> Result<Vec<String>, String> {
        let opts = ContainerListOpts::builder()
            .all(true)
            .filter([ContainerListFilter::LabelKeyVal(key.to_owned(), value.to_owned())])
            .build();
        let list = self.podman.containers().list(&opts).await.map_err(|e| e.to_string())?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    async fn delete(&self, id: &str) -> Result<(), String> {
        // `sleep infinity` as PID 1 ignores SIGTERM: kill at once rather than after podman's 10 s.
        let opts = ContainerDeleteOpts::builder().force(true).volumes(true).timeout(0).build();
        match self.podman.containers().get(id).delete(&opts).await {
            Ok(()) => Ok(()),
            Err(e) if e.to_string().contains("no such container") => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Removes every container an earlier run of this agent left behind; returns how many.
    pub async fn remove_leftovers(&self) -> Result<usize, String> {
        let ids = self.containers_labelled(AGENT_LABEL, &self.agent).await?;
        for id in &ids {
            self.delete(id).await?;
        }
        Ok(ids.len())
    }

    /// Removes the containers of `job` (killing what runs in them).
    pub async fn remove_job(&self, job: JobId) -> Result<(), String> {
        for id in self.containers_labelled(JOB_LABEL, &job.to_string()).await? {
            self.delete(&id).await?;
        }
        Ok(())
    }

    /// The image to build in for `base`: the base itself when it is a builder image, else a prepared image
    /// younger than the rebuild interval, else a new one prepared now (older prepared images of that base
    /// are removed when unused). `log` receives the preparation's output.
    pub async fn builder_image(
        &self,
        base: &str,
        log: &mpsc::Sender<Vec<u8>>,
    ) -> Result<String, FailureCause> {
        let images = self.podman.images();
        let image_error = |what: &str, e: podman_api::Error| runtime_error(FailureStep::Image, what, e);
        if !images.get(base).exists().await.map_err(|e| image_error("inspecting the base image", e))? {
            let _ = log.send(format!("==> [vieter] image: pulling {base}\n").into_bytes()).await;
            let opts = PullOpts::builder().reference(base).build();
            let mut pull = images.pull(&opts);
            while let Some(report) = pull.next().await {
                let report = report.map_err(|e| image_error(&format!("pulling {base}"), e))?;
                if let Some(err) = report.error {
                    return Err(FailureCause::new(FailureStep::Image, format!("pulling {base}: {err}")));
                }
            }
        }
        let info =
            images.get(base).inspect().await.map_err(|e| image_error("inspecting the base image", e))?;
        let is_prepared = info.labels.as_ref().is_some_and(|l| l.contains_key(build::PREPARED_LABEL))
            || info
                .config
                .as_ref()
                .and_then(|c| c.labels.as_ref())
                .is_some_and(|l| l.contains_key(build::PREPARED_LABEL));

        let repo = build::prepared_image_repo(base);
        let opts = ImageListOpts::builder()
            .filter([ImageListFilter::LabelKeyVal(BASE_LABEL.to_owned(), base.to_owned())])
            .build();
        let now = chrono::Utc::now().timestamp();
        let prepared: Vec<(String, u64)> = images
            .list(&opts)
            .await
            .map_err(|e| image_error("listing prepared images", e))?
            .into_iter()
            .filter_map(|i| Some((i.id?, u64::try_from(now - i.created.unwrap_or(0)).unwrap_or(0))))
            .collect();
        match build::choose_image(is_prepared, &prepared, self.rebuild_after) {
            ImageChoice::UseAsIs => Ok(base.to_owned()),
            ImageChoice::Reuse(id) => Ok(id),
            ImageChoice::Prepare => {
                let _ = log
                    .send(format!("==> [vieter] image: preparing a builder image from {base}\n").into_bytes())
                    .await;
                let tag = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
                let container = self.create(base, None).await?;
                let step = Step {
                    kind: FailureStep::Image,
                    title: "image",
                    user: StepUser::Root,
                    script: build::prepare_image_script(),
                    capture_stdout: false,
                };
                let result = self.exec(&container, &step, log).await;
                let committed = match result {
                    Ok(out) if out.exit_code == 0 => {
                        let opts = ContainerCommitOpts::builder()
                            .repo(&repo)
                            .tag(&tag)
                            .changes([format!("LABEL {BASE_LABEL}={base}")])
                            .build();
                        self.podman
                            .containers()
                            .get(&container.id)
                            .commit(&opts)
                            .await
                            .map_err(|e| image_error("saving the prepared image", e))
                    }
                    Ok(out) => Err(build::step_failure(&step, out.exit_code)),
                    Err(cause) => Err(cause),
                };
                let _ = self.delete(&container.id).await;
                committed?;
                for (old, _) in prepared {
                    // An image still used by a running build is refused: it goes at a later preparation.
                    let _ = images.get(old).remove().await;
                }
                Ok(format!("{repo}:{tag}"))
            }
        }
    }

    /// Creates and starts a container from `image` that idles until commands are run in it.
    pub async fn create(&self, image: &str, job: Option<JobId>) -> Result<Container, FailureCause> {
        let mut labels = HashMap::from([(AGENT_LABEL.to_owned(), self.agent.clone())]);
        if let Some(job) = job {
            labels.insert(JOB_LABEL.to_owned(), job.to_string());
        }
        let nsmode = match self.network {
            Network::Bridge => "bridge",
            Network::Host => "host",
        };
        let mut opts = ContainerCreateOpts::builder()
            .image(image)
            .command(["sleep", "infinity"])
            .labels(labels)
            .work_dir(build::BUILD_DIR)
            .net_namespace(Namespace { nsmode: Some(nsmode.to_owned()), value: None });
        if let Some(resources) = &self.resources {
            opts = opts.resource_limits(resources.clone());
        }
        let created =
            self.podman.containers().create(&opts.build()).await.map_err(|e| {
                runtime_error(FailureStep::ContainerRuntime, "creating the build container", e)
            })?;
        let container = Container { id: created.id };
        if let Err(e) = self.podman.containers().get(&container.id).start(None).await {
            let _ = self.delete(&container.id).await;
            return Err(runtime_error(FailureStep::ContainerRuntime, "starting the build container", e));
        }
        Ok(container)
    }

    /// Runs `step` in `container` with `bash -c`, sending its output to `log` as it comes.
    pub async fn exec(
        &self,
        container: &Container,
        step: &Step,
        log: &mpsc::Sender<Vec<u8>>,
    ) -> Result<StepOutput, FailureCause> {
        let fail =
            |what: &str, e: &dyn std::fmt::Display| runtime_error(FailureStep::ContainerRuntime, what, e);
        let mut opts = ExecCreateOpts::builder()
            .command(["bash", "-c", step.script.as_str()])
            .attach_stdout(true)
            .attach_stderr(true)
            .working_dir(build::BUILD_DIR);
        if step.user == StepUser::Builder {
            opts = opts.user(UserOpt::User(build::BUILDER_USER.to_owned())).env([("HOME", build::BUILD_DIR)]);
        }
        let handle = self.podman.containers().get(&container.id);
        let exec = handle.create_exec(&opts.build()).await.map_err(|e| fail("creating a command", &e))?;
        let mut stdout = Vec::new();
        let began = std::time::Instant::now();
        let started = exec.start(&Default::default()).await.map_err(|e| fail("starting a command", &e))?;
        if let Some(mut stream) = started {
            while let Some(chunk) = stream.next().await {
                let bytes = match chunk.map_err(|e| fail("reading a command's output", &e))? {
                    TtyChunk::StdOut(bytes) => {
                        if step.capture_stdout {
                            stdout.extend_from_slice(&bytes);
                        }
                        bytes
                    }
                    TtyChunk::StdErr(bytes) => bytes,
                    TtyChunk::StdIn(_) => continue,
                };
                // A closed log (the job is ending) must not stop the command's output from being read.
                let _ = log.send(bytes).await;
            }
        }
        // The stream ends when the command's output closes; its exit code is set a moment later.
        for _ in 0..100 {
            let info = exec.inspect().await.map_err(|e| fail("inspecting a command", &e))?;
            if info.get("Running").and_then(|v| v.as_bool()) == Some(false) {
                let code = info.get("ExitCode").and_then(|v| v.as_i64()).unwrap_or(-1);
                return Ok(StepOutput {
                    exit_code: i32::try_from(code).unwrap_or(-1),
                    stdout: String::from_utf8_lossy(&stdout).into_owned(),
                    elapsed: began.elapsed(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(FailureCause::new(FailureStep::ContainerRuntime, "a command's output ended but it kept running"))
    }

    /// Copies the package files in [`build::OUTPUT_DIR`] out of `container` into `dir`; returns their paths.
    pub async fn copy_packages(
        &self,
        container: &Container,
        dir: &Path,
    ) -> Result<Vec<PathBuf>, FailureCause> {
        let fail =
            |what: &str, e: &dyn std::fmt::Display| runtime_error(FailureStep::ContainerRuntime, what, e);
        tokio::fs::create_dir_all(dir).await.map_err(|e| fail(&format!("creating {}", dir.display()), &e))?;
        let archive = dir.join("out.tar");
        let mut file = tokio::fs::File::create(&archive)
            .await
            .map_err(|e| fail(&format!("creating {}", archive.display()), &e))?;
        let handle = self.podman.containers().get(&container.id);
        let mut stream = Box::pin(handle.copy_from(build::OUTPUT_DIR));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| fail("copying the packages out of the container", &e))?;
            file.write_all(&chunk).await.map_err(|e| fail(&format!("writing {}", archive.display()), &e))?;
        }
        file.flush().await.map_err(|e| fail(&format!("writing {}", archive.display()), &e))?;
        drop(file);
        let target = dir.to_owned();
        tokio::task::spawn_blocking(move || extract_packages(&archive, &target))
            .await
            .map_err(|e| fail("extracting the packages", &e))?
            .map_err(|e| fail("extracting the packages", &e))
    }
}

/// Extracts the regular files whose names look like packages (`*.pkg.tar*`, signatures excluded) from a
/// `podman cp` archive, flat into `dir`.
fn extract_packages(archive: &Path, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut tar = tar::Archive::new(std::fs::File::open(archive)?);
    let mut out = Vec::new();
    for entry in tar.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path()?.into_owned();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
        if !name.contains(".pkg.tar") || name.ends_with(".sig") || name.starts_with('.') {
            continue;
        }
        let dest = dir.join(&name);
        entry.unpack(&dest)?;
        out.push(dest);
    }
    std::fs::remove_file(archive)?;
    out.sort();
    Ok(out)
}
