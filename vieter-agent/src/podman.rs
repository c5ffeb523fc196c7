//! [`ContainerRuntime`] on Podman, through its REST API (`podman-api`, never the podman CLI): images
//! inspected, pulled, saved and removed; containers that idle in `sleep infinity`, commands run in them
//! with their output streamed, files copied out, containers killed and removed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use libvieter::build::{self, Step, StepOutput, StepUser};
use libvieter::container::{
    Action, ContainerError, ContainerId, ContainerRuntime, ContainerSpec, ImageInfo, Limits, Network,
    OutputSink,
};
use podman_api::conn::TtyChunk;
use podman_api::models::{LinuxResources, Namespace};
use podman_api::opts::{
    ContainerCommitOpts, ContainerCreateOpts, ContainerDeleteOpts, ContainerListFilter, ContainerListOpts,
    ExecCreateOpts, ImageListFilter, ImageListOpts, PullOpts, UserOpt,
};
use podman_api::Podman;

/// The most of a step's standard output kept for the driver (a .SRCINFO is a few KiB).
const MAX_CAPTURED_STDOUT: usize = 16 << 20;
use tokio::io::AsyncWriteExt;

/// The agent's connection to Podman.
#[derive(Clone)]
pub struct Runtime {
    podman: Podman,
}

impl Runtime {
    /// Talks to the Podman service on `socket` (nothing is sent yet).
    pub fn new(socket: &Path) -> Runtime {
        Runtime { podman: Podman::unix(socket) }
    }

    /// Podman's version: checks that the socket answers.
    pub async fn version(&self) -> Result<String, String> {
        let v = self.podman.version().await.map_err(|e| e.to_string())?;
        Ok(v.version.unwrap_or_else(|| "unknown".into()))
    }
}

/// Podman's resource limits for `limits` (the generated models have no Default: built from the JSON the
/// API takes).
fn resources(limits: &Limits) -> Result<Option<LinuxResources>, String> {
    let mut json = serde_json::Map::new();
    if let Some(memory) = limits.memory_bytes {
        json.insert("memory".into(), serde_json::json!({ "limit": memory }));
    }
    if let Some(cpus) = limits.cpus {
        let period = 100_000u64;
        let quota = (cpus * period as f64).round() as i64;
        json.insert("cpu".into(), serde_json::json!({ "period": period, "quota": quota }));
    }
    if let Some(pids) = limits.pids {
        json.insert("pids".into(), serde_json::json!({ "limit": pids }));
    }
    if json.is_empty() {
        return Ok(None);
    }
    serde_json::from_value(serde_json::Value::Object(json))
        .map(Some)
        .map_err(|e| format!("resource limits: {e}"))
}

fn labels(map: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    map.unwrap_or_default().into_iter().collect()
}

impl ContainerRuntime for Runtime {
    async fn inspect_image(&self, image: &str) -> Result<Option<ImageInfo>, ContainerError> {
        let fail = |e: podman_api::Error| ContainerError::new(Action::InspectImage, format!("{image}: {e}"));
        let handle = self.podman.images().get(image);
        if !handle.exists().await.map_err(fail)? {
            return Ok(None);
        }
        let data = handle.inspect().await.map_err(fail)?;
        let mut all = labels(data.labels);
        all.extend(labels(data.config.and_then(|c| c.labels)));
        Ok(Some(ImageInfo {
            id: data.id.unwrap_or_else(|| image.to_owned()),
            labels: all,
            created: data.created,
        }))
    }

    async fn pull_image(&self, image: &str) -> Result<(), ContainerError> {
        let fail =
            |e: &dyn std::fmt::Display| ContainerError::new(Action::PullImage, format!("{image}: {e}"));
        let opts = PullOpts::builder().reference(image).build();
        let images = self.podman.images();
        let mut pull = images.pull(&opts);
        while let Some(report) = pull.next().await {
            let report = report.map_err(|e| fail(&e))?;
            if let Some(err) = report.error {
                return Err(fail(&err));
            }
        }
        Ok(())
    }

    async fn images_labelled(&self, key: &str, value: &str) -> Result<Vec<ImageInfo>, ContainerError> {
        let opts = ImageListOpts::builder()
            .filter([ImageListFilter::LabelKeyVal(key.to_owned(), value.to_owned())])
            .build();
        let list =
            self.podman.images().list(&opts).await.map_err(|e| ContainerError::new(Action::ListImages, e))?;
        Ok(list
            .into_iter()
            .filter_map(|i| {
                Some(ImageInfo {
                    id: i.id?,
                    labels: labels(i.labels),
                    created: i.created.and_then(|secs| chrono::DateTime::from_timestamp(secs, 0)),
                })
            })
            .collect())
    }

    async fn save_image(
        &self,
        container: &ContainerId,
        repo: &str,
        tag: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), ContainerError> {
        let opts = ContainerCommitOpts::builder()
            .repo(repo)
            .tag(tag)
            .changes(labels.iter().map(|(k, v)| format!("LABEL {k}={v}")))
            .build();
        self.podman
            .containers()
            .get(container.as_str())
            .commit(&opts)
            .await
            .map_err(|e| ContainerError::new(Action::SaveImage, e))
    }

    async fn remove_image(&self, image: &str) -> Result<(), ContainerError> {
        self.podman
            .images()
            .get(image)
            .remove()
            .await
            .map(|_| ())
            .map_err(|e| ContainerError::new(Action::RemoveImage, format!("{image}: {e}")))
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<ContainerId, ContainerError> {
        let nsmode = match spec.network {
            Network::Bridge => "bridge",
            Network::Host => "host",
        };
        let labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        let mut opts = ContainerCreateOpts::builder()
            .image(&spec.image)
            .command(["sleep", "infinity"])
            .labels(labels)
            .work_dir(build::BUILD_DIR)
            .net_namespace(Namespace { nsmode: Some(nsmode.to_owned()), value: None });
        if let Some(resources) =
            resources(&spec.limits).map_err(|e| ContainerError::new(Action::Create, e))?
        {
            opts = opts.resource_limits(resources);
        }
        let created = self
            .podman
            .containers()
            .create(&opts.build())
            .await
            .map_err(|e| ContainerError::new(Action::Create, e))?;
        let id = ContainerId::new(created.id);
        if let Err(e) = self.podman.containers().get(id.as_str()).start(None).await {
            let _ = self.remove(&id).await;
            return Err(ContainerError::new(Action::Start, e));
        }
        Ok(id)
    }

    async fn exec<O: OutputSink>(
        &self,
        container: &ContainerId,
        step: &Step,
        output: &mut O,
    ) -> Result<StepOutput, ContainerError> {
        let fail =
            |what: &str, e: &dyn std::fmt::Display| ContainerError::new(Action::Exec, format!("{what}: {e}"));
        let mut opts = ExecCreateOpts::builder()
            .command(["bash", "-c", step.script.as_str()])
            .attach_stdout(true)
            .attach_stderr(true)
            .working_dir(build::BUILD_DIR);
        if step.user == StepUser::Builder {
            opts = opts.user(UserOpt::User(build::BUILDER_USER.to_owned())).env([("HOME", build::BUILD_DIR)]);
        }
        let handle = self.podman.containers().get(container.as_str());
        let exec = handle.create_exec(&opts.build()).await.map_err(|e| fail("creating it", &e))?;
        let mut stdout = Vec::new();
        let began = std::time::Instant::now();
        let started = exec.start(&Default::default()).await.map_err(|e| fail("starting it", &e))?;
        if let Some(mut stream) = started {
            while let Some(chunk) = stream.next().await {
                let bytes = match chunk.map_err(|e| fail("reading its output", &e))? {
                    TtyChunk::StdOut(bytes) => {
                        // A PKGBUILD is anyone's: what a step prints is kept up to a bound (the whole
                        // output still goes to the log, which the server caps).
                        if step.capture_stdout && stdout.len() < MAX_CAPTURED_STDOUT {
                            let room = MAX_CAPTURED_STDOUT - stdout.len();
                            stdout.extend_from_slice(&bytes[..bytes.len().min(room)]);
                            if bytes.len() >= room {
                                // A line no parser takes: a cut .SRCINFO fails instead of reading short.
                                stdout.extend_from_slice(b"\n(output cut at the capture limit)\n");
                            }
                        }
                        bytes
                    }
                    TtyChunk::StdErr(bytes) => bytes,
                    TtyChunk::StdIn(_) => continue,
                };
                output.write(bytes).await;
            }
        }
        // The stream ends when the command's output closes; its exit code is set a moment later.
        for _ in 0..100 {
            let info = exec.inspect().await.map_err(|e| fail("inspecting it", &e))?;
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
        Err(ContainerError::new(Action::Exec, "its output ended but it kept running"))
    }

    async fn copy_out(
        &self,
        container: &ContainerId,
        from: &str,
        to: &Path,
    ) -> Result<Vec<PathBuf>, ContainerError> {
        let fail = |what: String, e: &dyn std::fmt::Display| {
            ContainerError::new(Action::CopyOut, format!("{what}: {e}"))
        };
        tokio::fs::create_dir_all(to).await.map_err(|e| fail(format!("creating {}", to.display()), &e))?;
        let archive = to.join(".copy.tar");
        let mut file = tokio::fs::File::create(&archive)
            .await
            .map_err(|e| fail(format!("creating {}", archive.display()), &e))?;
        let handle = self.podman.containers().get(container.as_str());
        let mut stream = Box::pin(handle.copy_from(from));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| fail(format!("reading {from}"), &e))?;
            file.write_all(&chunk).await.map_err(|e| fail(format!("writing {}", archive.display()), &e))?;
        }
        file.flush().await.map_err(|e| fail(format!("writing {}", archive.display()), &e))?;
        drop(file);
        let target = to.to_owned();
        tokio::task::spawn_blocking(move || extract_flat(&archive, &target))
            .await
            .map_err(|e| fail("extracting the files".into(), &e))?
            .map_err(|e| fail("extracting the files".into(), &e))
    }

    async fn remove(&self, container: &ContainerId) -> Result<(), ContainerError> {
        // `sleep infinity` as PID 1 ignores SIGTERM: kill at once rather than after podman's 10 s.
        let opts = ContainerDeleteOpts::builder().force(true).volumes(true).timeout(0).build();
        match self.podman.containers().get(container.as_str()).delete(&opts).await {
            Ok(()) => Ok(()),
            Err(e) if e.to_string().contains("no such container") => Ok(()),
            Err(e) => Err(ContainerError::new(Action::Remove, format!("{container}: {e}"))),
        }
    }

    async fn containers_labelled(&self, key: &str, value: &str) -> Result<Vec<ContainerId>, ContainerError> {
        let opts = ContainerListOpts::builder()
            .all(true)
            .filter([ContainerListFilter::LabelKeyVal(key.to_owned(), value.to_owned())])
            .build();
        let list =
            self.podman.containers().list(&opts).await.map_err(|e| ContainerError::new(Action::List, e))?;
        Ok(list.into_iter().filter_map(|c| c.id).map(ContainerId::new).collect())
    }
}

/// Extracts the regular files of a `podman cp` archive flat into `dir` (under their own names, so nothing
/// lands outside it), then deletes the archive.
fn extract_flat(archive: &Path, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut tar = tar::Archive::new(std::fs::File::open(archive)?);
    let mut out = Vec::new();
    for entry in tar.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path()?.into_owned();
        let Some(name) = path.file_name().map(ToOwned::to_owned) else { continue };
        let dest = dir.join(&name);
        if dest == archive {
            continue;
        }
        entry.unpack(&dest)?;
        out.push(dest);
    }
    std::fs::remove_file(archive)?;
    out.sort();
    out.dedup();
    Ok(out)
}
