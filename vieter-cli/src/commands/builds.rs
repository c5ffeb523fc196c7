//! `vieter targets ...`, `vieter jobs ...`, `vieter logs`, `vieter agents list`.

use std::io::Write;

use clap::{Args, Subcommand};
use futures_util::StreamExt;
use libvieter::api::{JobFilter, QueueRequest, TargetFilter};
use libvieter::builds::DependencyTree;
use libvieter::job::{Job, JobId, JobState};
use libvieter::name::Arch;
use libvieter::target::{NewTarget, Target, TargetId, TargetPatch};
use vieter_client::{Client, JobAction};

use crate::output::table;
use crate::Context;

/// Fields of a target, for `add` and `edit`.
#[derive(Debug, Args)]
pub struct TargetFields {
    /// git, url or aur.
    #[arg(long)]
    kind: Option<String>,
    /// Clone URL (git), PKGBUILD URL (url) or package base (aur).
    #[arg(long)]
    url: Option<String>,
    #[arg(long)]
    branch: Option<String>,
    /// Subdirectory holding the PKGBUILD.
    #[arg(long)]
    path: Option<String>,
    #[arg(long)]
    repo: Option<String>,
    /// e.g. '0 3' (daily at 03:00) or 5-field cron.
    #[arg(long)]
    schedule: Option<String>,
    /// Architectures (repeat or comma-separate).
    #[arg(long, value_delimiter = ',')]
    arch: Vec<String>,
    #[arg(long)]
    base_image: Option<String>,
    /// Build timeout in seconds.
    #[arg(long)]
    timeout: Option<u64>,
    /// Enable or disable scheduled builds.
    #[arg(long)]
    enabled: Option<bool>,
    /// Ids of targets that must build first (repeat or comma-separate; for edit, replaces the list).
    #[arg(long, value_delimiter = ',')]
    needs: Vec<u64>,
}

#[derive(Debug, Subcommand)]
pub enum TargetsCommand {
    /// List targets.
    List {
        #[arg(long)]
        repo: Option<String>,
        #[arg(long)]
        arch: Option<String>,
        #[arg(long)]
        query: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        offset: Option<usize>,
    },
    /// Add a target.
    Add(TargetFields),
    /// Show a target (with the targets it needs and whether it is automatic).
    Info { id: u64 },
    /// Show the tree of the targets a target needs, indented.
    Deps { id: u64 },
    /// Change fields of a target.
    Edit {
        id: u64,
        #[command(flatten)]
        fields: TargetFields,
    },
    /// Delete a target (its active jobs are cancelled; refused while a target needs it; automatic targets
    /// nothing needs any more go too).
    Remove { id: u64 },
    /// Queue a build now; with --follow, stream its log and exit with its result.
    Build {
        id: u64,
        #[arg(long)]
        arch: Option<String>,
        /// Build even if the same versions are already published.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// waiting, queued, running, succeeded, skipped, failed, timed_out, lost or cancelled.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        target: Option<u64>,
        #[arg(long)]
        arch: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Show a job.
    Info { id: u64 },
    /// Cancel a waiting, queued or running job (and the jobs waiting for it).
    Cancel { id: u64 },
    /// Queue a new attempt of an ended job.
    Retry { id: u64 },
}

fn err(e: vieter_client::ClientError) -> String {
    e.to_string()
}

fn target_table(targets: &[Target]) -> comfy_table::Table {
    let mut t = table(["ID", "KIND", "URL", "REPO", "ARCH", "SCHEDULE", "ENABLED"]);
    for x in targets {
        let arch = x.arch.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(",");
        let schedule = x.schedule.as_ref().map(|s| s.to_string()).unwrap_or_else(|| "(global)".into());
        t.add_row(vec![
            x.id.to_string(),
            x.kind().to_string(),
            x.source.url_str().to_owned(),
            x.repo.to_string(),
            arch,
            schedule,
            x.enabled.to_string(),
        ]);
    }
    t
}

fn ids<T: ToString>(ids: &[T]) -> String {
    ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// One target with every field, its needs and whether it is automatic.
fn target_info(x: &Target, needed_by: &[TargetId]) -> comfy_table::Table {
    let mut t = target_table(std::slice::from_ref(x));
    t.set_header([
        "ID",
        "KIND",
        "URL",
        "REPO",
        "ARCH",
        "SCHEDULE",
        "ENABLED",
        "NEEDS",
        "AUTOMATIC",
        "NEEDED BY",
    ]);
    if let Some(row) = t.row_mut(0) {
        row.add_cell(ids(&x.needs).into());
        row.add_cell(x.automatic.to_string().into());
        row.add_cell(ids(needed_by).into());
    }
    t
}

/// What adding an `aur` target resolved, for people: the targets added and reused, the providers
/// chosen, what was found installable, or why nothing was resolved.
fn closure_lines(c: &libvieter::api::TargetClosure) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(e) = &c.error {
        out.push(format!("warning: dependencies not resolved, the target was added alone: {e}"));
    }
    let named = |ts: &[libvieter::target::Target]| {
        ts.iter().map(|t| format!("{} ({})", t.source.url_str(), t.id)).collect::<Vec<_>>().join(", ")
    };
    if !c.created.is_empty() {
        out.push(format!("added as automatic targets (AUR dependencies): {}", named(&c.created)));
    }
    if !c.reused.is_empty() {
        out.push(format!("dependencies already targets: {}", named(&c.reused)));
    }
    if let Some(r) = &c.resolved {
        out.extend(report_lines(r));
    }
    out
}

/// What a resolution chose and found installable, and the build order.
pub fn report_lines(r: &libvieter::resolve::ClosureReport) -> Vec<String> {
    let mut out = Vec::new();
    for choice in &r.choices {
        let candidates: Vec<&str> = choice.candidates.iter().map(|n| n.as_str()).collect();
        out.push(format!(
            "{}: provided by {} (chosen among {})",
            choice.dependency,
            choice.chosen,
            candidates.join(", ")
        ));
    }
    for i in &r.installed {
        let from = if i.source == "sync" { "sync db" } else { "repository" };
        out.push(format!("{}: {} {} from {from} {}", i.dependency, i.package, i.version, i.repo));
    }
    if r.layers.len() > 1 {
        let layers: Vec<String> =
            r.layers.iter().map(|l| l.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(" ")).collect();
        out.push(format!("build order: {}", layers.join(" → ")));
    }
    out
}

/// A dependency tree, one target a line, each need indented under what needs it.
fn tree_lines(tree: &DependencyTree, depth: usize, out: &mut Vec<String>) {
    let t = &tree.target;
    let automatic = if t.automatic { " (automatic)" } else { "" };
    out.push(format!(
        "{}{} {} {} [{}]{automatic}",
        "  ".repeat(depth),
        t.id,
        t.kind(),
        t.source.url_str(),
        t.repo
    ));
    for need in &tree.needs {
        tree_lines(need, depth + 1, out);
    }
}

fn job_table(jobs: &[Job]) -> comfy_table::Table {
    let mut t = table(["ID", "TARGET", "ARCH", "STATE", "TRIGGER", "ATTEMPT", "QUEUED", "AGENT", "CAUSE"]);
    for j in jobs {
        t.add_row(vec![
            j.id().to_string(),
            j.target().to_string(),
            j.arch().to_string(),
            j.state().to_string(),
            format!("{:?}", j.trigger()).to_lowercase(),
            j.attempt().to_string(),
            j.queued_at().format("%Y-%m-%d %H:%M:%S").to_string(),
            j.agent().map(|a| a.to_string()).unwrap_or_default(),
            j.cause().map(|c| c.to_string()).unwrap_or_default(),
        ]);
    }
    t
}

pub async fn targets(ctx: &Context, cmd: TargetsCommand) -> Result<(), String> {
    let client = ctx.client()?;
    match cmd {
        TargetsCommand::List { repo, arch, query, limit, offset } => {
            let filter = TargetFilter { repo, arch, query, limit, offset };
            let list = client.targets(&filter).await.map_err(err)?;
            ctx.out.print(&list, || target_table(&list))
        }
        TargetsCommand::Add(f) => {
            let input = NewTarget {
                kind: f.kind.unwrap_or_default(),
                url: f.url.unwrap_or_default(),
                branch: f.branch,
                path: f.path,
                repo: f.repo.unwrap_or_default(),
                schedule: f.schedule,
                arch: (!f.arch.is_empty()).then_some(f.arch),
                base_image: f.base_image,
                build_timeout_secs: f.timeout,
                enabled: f.enabled,
                needs: f.needs.into_iter().map(TargetId).collect(),
            };
            let added = client.add_target(&input).await.map_err(err)?;
            let t = &added.target;
            ctx.out.print(&added, || target_table(std::slice::from_ref(t)))?;
            if let Some(closure) = &added.closure {
                for line in closure_lines(closure) {
                    ctx.out.say(line);
                }
            }
            Ok(())
        }
        TargetsCommand::Info { id } => {
            let t = client.target(TargetId(id)).await.map_err(err)?;
            let needed_by = client.target_deps(TargetId(id)).await.map_err(err)?.needed_by;
            ctx.out.print(&t, || target_info(&t, &needed_by))
        }
        TargetsCommand::Deps { id } => {
            let tree = client.target_deps(TargetId(id)).await.map_err(err)?;
            if ctx.out.json {
                return ctx.out.print(&tree, comfy_table::Table::new);
            }
            let mut lines = Vec::new();
            tree_lines(&tree, 0, &mut lines);
            for line in lines {
                ctx.out.say(line);
            }
            Ok(())
        }
        TargetsCommand::Edit { id, fields: f } => {
            let patch = TargetPatch {
                kind: f.kind,
                url: f.url,
                branch: f.branch.map(Some),
                path: f.path.map(Some),
                repo: f.repo,
                schedule: f.schedule.map(Some),
                arch: (!f.arch.is_empty()).then_some(f.arch),
                base_image: f.base_image.map(Some),
                build_timeout_secs: f.timeout.map(Some),
                enabled: f.enabled,
                needs: (!f.needs.is_empty()).then(|| f.needs.into_iter().map(TargetId).collect()),
            };
            let t = client.patch_target(TargetId(id), &patch).await.map_err(err)?;
            ctx.out.print(&t, || target_table(std::slice::from_ref(&t)))
        }
        TargetsCommand::Remove { id } => {
            let automatic = client.delete_target(TargetId(id)).await.map_err(err)?;
            ctx.out.say(format!("removed target {id}"));
            if !automatic.is_empty() {
                ctx.out
                    .say(format!("removed automatic targets no target needs any more: {}", ids(&automatic)));
            }
            Ok(())
        }
        TargetsCommand::Build { id, arch, force, follow } => {
            let arch = arch.map(|a| Arch::new(a).map_err(|e| e.to_string())).transpose()?;
            let jobs =
                client.queue(&QueueRequest { target: TargetId(id), arch, force }).await.map_err(err)?;
            if !follow {
                return ctx.out.print(&jobs, || job_table(&jobs));
            }
            let mut failed = Vec::new();
            for job in &jobs {
                ctx.out.say(format!("==> job {} ({})", job.id(), job.arch()));
                stream_log(&client, job.id(), true, !ctx.out.json).await?;
                let end = wait_for_end(&client, job.id()).await?;
                if !matches!(
                    end.state(),
                    libvieter::job::JobState::Succeeded | libvieter::job::JobState::Skipped
                ) {
                    failed.push(format!(
                        "job {} {}{}",
                        end.id(),
                        end.state(),
                        end.cause().map(|c| format!(": {c}")).unwrap_or_default()
                    ));
                }
            }
            if failed.is_empty() {
                Ok(())
            } else {
                Err(failed.join("; "))
            }
        }
    }
}

async fn stream_log(client: &Client, id: JobId, follow: bool, print: bool) -> Result<(), String> {
    let resp = client.log(id, follow).await.map_err(err)?;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("the log stream broke: {e}"))?;
        if print {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&chunk);
            let _ = out.flush();
        }
    }
    Ok(())
}

/// What a job was built from, for people: the commit, then each VCS source with its commit.
fn revision_text(revision: Option<&libvieter::job::Revision>) -> String {
    let Some(r) = revision else { return String::new() };
    let mut lines: Vec<String> = r.commit.iter().cloned().collect();
    lines.extend(
        r.sources.iter().map(|p| format!("{} {}", p.source, p.commit.as_deref().unwrap_or("(not read)"))),
    );
    lines.join("\n")
}

async fn wait_for_end(client: &Client, id: JobId) -> Result<Job, String> {
    loop {
        let job = client.job(id).await.map_err(err)?;
        if job.state().is_final() {
            return Ok(job);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

pub async fn jobs(ctx: &Context, cmd: JobsCommand) -> Result<(), String> {
    let client = ctx.client()?;
    match cmd {
        JobsCommand::List { state, target, arch, limit } => {
            let state = match state {
                Some(s) => Some(s.parse::<JobState>().map_err(|e| format!("--state {s:?}: {e}"))?),
                None => None,
            };
            let filter =
                JobFilter { state, target: target.map(TargetId), arch, limit, ..JobFilter::default() };
            let list = client.jobs(&filter).await.map_err(err)?;
            ctx.out.print(&list, || job_table(&list))
        }
        JobsCommand::Info { id } => {
            let j = client.job(JobId(id)).await.map_err(err)?;
            ctx.out.print(&j, || {
                let mut t = job_table(std::slice::from_ref(&j));
                t.set_header([
                    "ID", "TARGET", "ARCH", "STATE", "TRIGGER", "ATTEMPT", "QUEUED", "AGENT", "CAUSE",
                    "WAITS ON", "REASON", "COMMIT",
                ]);
                if let Some(row) = t.row_mut(0) {
                    row.add_cell(ids(j.waits_on()).into());
                    row.add_cell(j.reason().unwrap_or("").into());
                    row.add_cell(revision_text(j.revision()).into());
                }
                t
            })
        }
        JobsCommand::Cancel { id } | JobsCommand::Retry { id } => {
            let action =
                if matches!(cmd, JobsCommand::Cancel { .. }) { JobAction::Cancel } else { JobAction::Retry };
            let j = client.job_action(JobId(id), action).await.map_err(err)?;
            ctx.out.print(&j, || job_table(std::slice::from_ref(&j)))
        }
    }
}

pub async fn logs(ctx: &Context, job: u64, follow: bool) -> Result<(), String> {
    stream_log(&ctx.client()?, JobId(job), follow, true).await
}

pub async fn agents(ctx: &Context) -> Result<(), String> {
    let list = ctx.client()?.agents().await.map_err(err)?;
    ctx.out.print(&list, || {
        let mut t = table(["AGENT", "ARCH", "CAPACITY", "LAST SEEN", "RUNNING"]);
        for a in &list {
            let running = a.running.iter().map(|j| j.to_string()).collect::<Vec<_>>().join(",");
            t.add_row(vec![
                a.id.to_string(),
                a.arch.to_string(),
                a.capacity.to_string(),
                a.last_seen.to_rfc3339(),
                running,
            ]);
        }
        t
    })
}
