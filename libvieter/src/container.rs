//! The container port: what a build needs from a container engine, as one trait over plain values.
//!
//! A build container idles (it runs nothing of its own) until it is removed; the steps of
//! [`crate::build`] run in it one after the other with `bash -c`, in [`crate::build::BUILD_DIR`], as root
//! or as the builder user. Removing a container kills what still runs in it at once. Containers carry
//! labels naming the agent and the job that made them, so an agent finds and removes what it (or an
//! earlier run of it) left behind. The agent implements [`ContainerRuntime`] with Podman; its tests with a
//! scripted fake.
//!
//! [`builder_image`] drives the port to find or prepare the image a build runs in; the choice itself is
//! [`crate::build::choose_image`]. [`remove_labelled`] is the clean-up of a job's or an agent's containers.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::build::{self, ImageChoice, Step, StepOutput, StepUser};
use crate::job::{AgentId, FailureCause, FailureStep, JobId};

/// Label naming the agent that made a container (and the images it prepared).
pub const AGENT_LABEL: &str = "org.vieter.agent";
/// Label naming the job a container builds.
pub const JOB_LABEL: &str = "org.vieter.job";
/// Label of prepared builder images: the base image they were made from.
pub const BASE_LABEL: &str = "org.vieter.base";

/// The engine's id of a container.
///
/// ```
/// use libvieter::container::ContainerId;
/// assert_eq!(ContainerId::new("3f2a").as_str(), "3f2a");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerId(String);

impl ContainerId {
    /// Wraps the id the engine gave.
    pub fn new(id: impl Into<String>) -> Self {
        ContainerId(id.into())
    }

    /// The id as the engine spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a build container reaches the network.
///
/// ```
/// use libvieter::container::Network;
/// let n: Network = serde_json::from_str("\"host\"").unwrap();
/// assert_eq!(n, Network::Host);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The engine's default bridge: the internet, not the host's loopback.
    Bridge,
    /// The host's network: needed when the Vieter server listens on 127.0.0.1.
    Host,
}

/// Resource limits of a build container; `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    /// Memory in bytes.
    pub memory_bytes: Option<u64>,
    /// CPUs (fractions allowed: `1.5`).
    pub cpus: Option<f64>,
    /// Processes.
    pub pids: Option<u64>,
}

impl Limits {
    /// Limits from settings where `0` means none (the agent's `memory_limit`, `cpus`, `pids_limit`).
    ///
    /// ```
    /// use libvieter::container::Limits;
    /// let l = Limits::from_settings(0, 1.5, 512);
    /// assert_eq!((l.memory_bytes, l.cpus, l.pids), (None, Some(1.5), Some(512)));
    /// ```
    pub fn from_settings(memory_bytes: i64, cpus: f64, pids: i64) -> Limits {
        Limits {
            memory_bytes: u64::try_from(memory_bytes).ok().filter(|m| *m > 0),
            cpus: (cpus > 0.0 && cpus.is_finite()).then_some(cpus),
            pids: u64::try_from(pids).ok().filter(|p| *p > 0),
        }
    }
}

/// What a container is made from.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    /// The image (a name or an id).
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub limits: Limits,
    pub network: Network,
}

/// How one agent makes its containers: its id (the [`AGENT_LABEL`]), their limits and network.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSettings {
    pub agent: AgentId,
    pub limits: Limits,
    pub network: Network,
}

impl ContainerSettings {
    /// The spec of a container from `image`, labelled with the agent and (for a build) the job.
    ///
    /// ```
    /// use libvieter::container::{ContainerSettings, Limits, Network, AGENT_LABEL, JOB_LABEL};
    /// use libvieter::job::{AgentId, JobId};
    /// let settings = ContainerSettings {
    ///     agent: AgentId::new("a1").unwrap(),
    ///     limits: Limits::default(),
    ///     network: Network::Bridge,
    /// };
    /// let spec = settings.spec("archlinux:base-devel", Some(JobId(7)));
    /// assert_eq!(spec.labels[AGENT_LABEL], "a1");
    /// assert_eq!(spec.labels[JOB_LABEL], "7");
    /// ```
    pub fn spec(&self, image: &str, job: Option<JobId>) -> ContainerSpec {
        let mut labels = BTreeMap::from([(AGENT_LABEL.to_owned(), self.agent.as_str().to_owned())]);
        if let Some(job) = job {
            labels.insert(JOB_LABEL.to_owned(), job.to_string());
        }
        ContainerSpec { image: image.to_owned(), labels, limits: self.limits, network: self.network }
    }
}

/// What the engine knows of an image.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageInfo {
    /// The engine's id of the image (usable wherever an image name is).
    pub id: String,
    pub labels: BTreeMap<String, String>,
    /// When it was made, if the engine says.
    pub created: Option<DateTime<Utc>>,
}

impl ImageInfo {
    /// Whether the image is already a builder image (it carries [`build::PREPARED_LABEL`]).
    pub fn is_prepared(&self) -> bool {
        self.labels.contains_key(build::PREPARED_LABEL)
    }

    /// Its age at `now` in whole seconds; an image of unknown age counts as ancient.
    pub fn age_secs(&self, now: DateTime<Utc>) -> u64 {
        self.created.map_or(u64::MAX, |created| u64::try_from((now - created).num_seconds()).unwrap_or(0))
    }
}

/// What the engine was asked to do when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    InspectImage,
    PullImage,
    ListImages,
    SaveImage,
    RemoveImage,
    Create,
    Start,
    Exec,
    CopyOut,
    Remove,
    List,
}

impl Action {
    /// The step a job blames when this failed: the image's, or the container runtime's.
    pub fn step(self) -> FailureStep {
        match self {
            Action::InspectImage
            | Action::PullImage
            | Action::ListImages
            | Action::SaveImage
            | Action::RemoveImage => FailureStep::Image,
            _ => FailureStep::ContainerRuntime,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::InspectImage => "inspecting an image",
            Action::PullImage => "pulling an image",
            Action::ListImages => "listing images",
            Action::SaveImage => "saving an image",
            Action::RemoveImage => "removing an image",
            Action::Create => "creating the build container",
            Action::Start => "starting the build container",
            Action::Exec => "running a command",
            Action::CopyOut => "copying files out of the container",
            Action::Remove => "removing a container",
            Action::List => "listing containers",
        })
    }
}

/// The engine failed (or could not be reached); `message` is its own words.
///
/// ```
/// use libvieter::container::{Action, ContainerError};
/// use libvieter::job::{FailureCause, FailureStep};
/// let e = ContainerError::new(Action::Create, "no space left on device");
/// let cause = FailureCause::from(e);
/// assert_eq!(cause.step, FailureStep::ContainerRuntime);
/// assert_eq!(cause.message, "creating the build container: no space left on device");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{action}: {message}")]
pub struct ContainerError {
    pub action: Action,
    pub message: String,
}

impl ContainerError {
    /// An error of `action` with the engine's `message`.
    pub fn new(action: Action, message: impl fmt::Display) -> Self {
        ContainerError { action, message: message.to_string() }
    }
}

impl From<ContainerError> for FailureCause {
    fn from(e: ContainerError) -> FailureCause {
        FailureCause::new(e.action.step(), e.to_string())
    }
}

/// Where a command's output goes as it comes (the build log).
pub trait OutputSink: Send {
    /// Takes the next chunk of output (standard output and error, as they arrive). A sink that can take no
    /// more drops it: a closed log must not stop a command.
    fn write(&mut self, chunk: Vec<u8>) -> impl Future<Output = ()> + Send;
}

/// Collects the output in memory.
///
/// ```
/// use libvieter::container::OutputSink;
/// let mut out = Vec::new();
/// let _ = out.write(b"hello\n".to_vec()); // ready at once
/// assert_eq!(out, b"hello\n");
/// ```
impl OutputSink for Vec<u8> {
    fn write(&mut self, chunk: Vec<u8>) -> impl Future<Output = ()> + Send {
        self.extend_from_slice(&chunk);
        std::future::ready(())
    }
}

/// A container engine, as a build uses it. Calls may run concurrently (one agent builds several jobs).
pub trait ContainerRuntime: Send + Sync {
    /// What the engine knows of `image`; `None` when it is not here.
    fn inspect_image(
        &self,
        image: &str,
    ) -> impl Future<Output = Result<Option<ImageInfo>, ContainerError>> + Send;

    /// Fetches `image` from its registry.
    fn pull_image(&self, image: &str) -> impl Future<Output = Result<(), ContainerError>> + Send;

    /// The images carrying the label `key=value`.
    fn images_labelled(
        &self,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<Vec<ImageInfo>, ContainerError>> + Send;

    /// Saves the file system of `container` as the image `repo:tag`, with `labels` added.
    fn save_image(
        &self,
        container: &ContainerId,
        repo: &str,
        tag: &str,
        labels: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), ContainerError>> + Send;

    /// Removes `image`; an image a container still uses is refused.
    fn remove_image(&self, image: &str) -> impl Future<Output = Result<(), ContainerError>> + Send;

    /// Creates and starts a container that idles until it is removed. A container that was created but
    /// could not be started is removed again before the error is returned.
    fn create(
        &self,
        spec: &ContainerSpec,
    ) -> impl Future<Output = Result<ContainerId, ContainerError>> + Send;

    /// Runs `step.script` with `bash -c` in `container`, in [`build::BUILD_DIR`], as root or as
    /// [`build::BUILDER_USER`] (with `HOME` = [`build::BUILD_DIR`]) per `step.user`. Standard output and
    /// error go to `output` as they come; standard output is also returned when `step.capture_stdout`.
    /// A non-zero exit is not an error: the exit code is in the [`StepOutput`].
    fn exec<O: OutputSink>(
        &self,
        container: &ContainerId,
        step: &Step,
        output: &mut O,
    ) -> impl Future<Output = Result<StepOutput, ContainerError>> + Send;

    /// Copies the regular files under the directory `from` of `container` into the directory `to` on the
    /// host (created if missing), flat, under their own names; returns their paths, sorted.
    fn copy_out(
        &self,
        container: &ContainerId,
        from: &str,
        to: &Path,
    ) -> impl Future<Output = Result<Vec<PathBuf>, ContainerError>> + Send;

    /// Removes `container`, killing what runs in it at once. A container that is already gone is fine.
    fn remove(&self, container: &ContainerId) -> impl Future<Output = Result<(), ContainerError>> + Send;

    /// The containers (running or not) carrying the label `key=value`.
    fn containers_labelled(
        &self,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<Vec<ContainerId>, ContainerError>> + Send;
}

/// Removes every container carrying `key=value` (a job's: [`JOB_LABEL`], an agent's: [`AGENT_LABEL`]);
/// returns how many there were.
pub async fn remove_labelled<R: ContainerRuntime>(
    runtime: &R,
    key: &str,
    value: &str,
) -> Result<usize, ContainerError> {
    let ids = runtime.containers_labelled(key, value).await?;
    for id in &ids {
        runtime.remove(id).await?;
    }
    Ok(ids.len())
}

/// The image to build in for `base`: the base itself when it is a builder image, else a prepared image of
/// it younger than `rebuild_after_secs`, else one prepared now (in a container made with `settings`,
/// running [`build::prepare_image_script`]; older prepared images of that base are removed when unused).
/// `log` gets a line for a pull and the preparation's output. `now` names and ages the images.
pub async fn builder_image<R: ContainerRuntime, O: OutputSink>(
    runtime: &R,
    settings: &ContainerSettings,
    base: &str,
    rebuild_after_secs: u64,
    now: DateTime<Utc>,
    log: &mut O,
) -> Result<String, FailureCause> {
    let info = match runtime.inspect_image(base).await? {
        Some(info) => info,
        None => {
            log.write(format!("{} image: pulling {base}\n", build::LOG_PREFIX).into_bytes()).await;
            runtime.pull_image(base).await?;
            runtime.inspect_image(base).await?.ok_or_else(|| {
                FailureCause::new(FailureStep::Image, format!("{base} is still missing after its pull"))
            })?
        }
    };
    let prepared: Vec<(String, u64)> = runtime
        .images_labelled(BASE_LABEL, base)
        .await?
        .into_iter()
        .map(|image| {
            let age = image.age_secs(now);
            (image.id, age)
        })
        .collect();
    match build::choose_image(info.is_prepared(), &prepared, rebuild_after_secs) {
        ImageChoice::UseAsIs => Ok(base.to_owned()),
        ImageChoice::Reuse(id) => Ok(id),
        ImageChoice::Prepare => {
            let text = format!("{} image: preparing a builder image from {base}\n", build::LOG_PREFIX);
            log.write(text.into_bytes()).await;
            let repo = build::prepared_image_repo(base);
            let tag = now.format("%Y%m%d%H%M%S").to_string();
            let container = runtime.create(&settings.spec(base, None)).await?;
            let step = Step {
                kind: FailureStep::Image,
                title: "image",
                user: StepUser::Root,
                script: build::prepare_image_script(),
                capture_stdout: false,
            };
            let saved = match runtime.exec(&container, &step, log).await {
                Ok(out) if out.exit_code == 0 => {
                    let labels = BTreeMap::from([(BASE_LABEL.to_owned(), base.to_owned())]);
                    runtime.save_image(&container, &repo, &tag, &labels).await.map_err(FailureCause::from)
                }
                Ok(out) => Err(build::step_failure(&step, out.exit_code)),
                Err(e) => Err(e.into()),
            };
            let _ = runtime.remove(&container).await;
            saved?;
            for (old, _) in prepared {
                // An image still used by a running build is refused: it goes at a later preparation.
                let _ = runtime.remove_image(&old).await;
            }
            Ok(format!("{repo}:{tag}"))
        }
    }
}
