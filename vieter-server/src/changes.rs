//! The lookups of the change check ([`libvieter::builds::SourceCheck`], whose rules decide): the AUR
//! over HTTP, `git ls-remote` as a child process, the arch-repos from the repository store. Failures
//! are logged here; the library turns them into the reason the run is built.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use libvieter::api::PackageSummary;
use libvieter::builds::{SourceCheck, SourceLookups};
use libvieter::name::{Arch, PkgName, RepoName};
use libvieter::repo::RepoStore;
use libvieter::vcs::{self, RemoteRef};
use libvieter::version::Version;

/// How long one `git ls-remote` may take before the run is built instead.
const LS_REMOTE_TIMEOUT: Duration = Duration::from_secs(20);
/// How many `git ls-remote` run at once.
const LS_REMOTE_PARALLEL: usize = 8;
/// The most of an `ls-remote` answer read (refs of the asked name only: a few lines).
const LS_REMOTE_MAX_OUTPUT: usize = 1 << 20;

/// What the server's tick asks the world during a change check.
pub struct Lookups {
    app: Arc<crate::App>,
    handle: tokio::runtime::Handle,
}

impl Lookups {
    /// The change check of one tick (it runs on a blocking thread and waits on `handle`).
    pub fn check(app: Arc<crate::App>, handle: tokio::runtime::Handle) -> SourceCheck<Lookups> {
        SourceCheck(Lookups { app, handle })
    }
}

impl SourceLookups for Lookups {
    fn aur_versions(&mut self, bases: &[PkgName]) -> Result<BTreeMap<PkgName, Version>, String> {
        match self.handle.block_on(self.app.aur.info(bases)) {
            Ok(found) => Ok(found.into_iter().map(|p| (p.name, p.version)).collect()),
            Err(e) => {
                tracing::warn!("change check of {} aur targets: {e}; building them", bases.len());
                Err(e.to_string())
            }
        }
    }

    fn remote_commits(&mut self, refs: &[RemoteRef]) -> BTreeMap<RemoteRef, Result<String, String>> {
        let answers = self.handle.block_on(
            futures_util::stream::iter(refs.iter().cloned())
                .map(|r| async move {
                    let answer = ls_remote(&r).await;
                    if let Err(e) = &answer {
                        tracing::warn!("change check: git ls-remote {} {}: {e}", r.url, r.refname);
                    }
                    (r, answer)
                })
                .buffer_unordered(LS_REMOTE_PARALLEL)
                .collect::<Vec<_>>(),
        );
        answers.into_iter().collect()
    }

    fn published(&mut self, repo: &RepoName, arch: &Arch) -> Result<Vec<PackageSummary>, String> {
        self.app.repos.store().summaries(repo, arch).map_err(|e| {
            tracing::warn!("change check: reading {repo}/{arch}: {e}");
            e.to_string()
        })
    }
}

/// What `git ls-remote URL REFNAME` says `refname` points at. Never asks for credentials, gives up
/// after [`LS_REMOTE_TIMEOUT`] (the child is killed).
async fn ls_remote(query: &RemoteRef) -> Result<String, String> {
    let mut command = tokio::process::Command::new("git");
    command
        .args(["ls-remote", "--", &query.url, &query.refname])
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/false")
        .env("SSH_ASKPASS", "/bin/false")
        .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        // No `ext::` or other helper transports from a target URL.
        .env("GIT_ALLOW_PROTOCOL", "file:git:http:https:ssh")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(LS_REMOTE_TIMEOUT, command.output()).await {
        Err(_) => return Err(format!("no answer in {} s", LS_REMOTE_TIMEOUT.as_secs())),
        Ok(Err(e)) => return Err(format!("cannot run git: {e}")),
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
        return Err(format!("{}: {}", output.status, last.chars().take(300).collect::<String>()));
    }
    let stdout = &output.stdout[..output.stdout.len().min(LS_REMOTE_MAX_OUTPUT)];
    vcs::ls_remote_commit(&String::from_utf8_lossy(stdout), &query.refname)
        .ok_or_else(|| format!("{} is not in the repository", query.refname))
}
