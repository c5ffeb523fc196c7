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
/// How long the `git ls-remote`s of one change check may take together: the refs not answered by
/// then are built (a tick must not wait on hundreds of slow remotes; the next one asks again).
const LS_REMOTE_BUDGET: Duration = Duration::from_secs(90);
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
        let deadline = tokio::time::Instant::now() + LS_REMOTE_BUDGET;
        let answers = self.handle.block_on(
            futures_util::stream::iter(refs.iter().cloned())
                .map(|r| async move {
                    let out_of_time = || {
                        format!(
                            "the change check's {} s for git ls-remote ran out",
                            LS_REMOTE_BUDGET.as_secs()
                        )
                    };
                    let answer = if tokio::time::Instant::now() >= deadline {
                        Err(out_of_time())
                    } else {
                        tokio::time::timeout_at(deadline, ls_remote(&r))
                            .await
                            .unwrap_or_else(|_| Err(out_of_time()))
                    };
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
    command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    // The remote is anyone's (a PKGBUILD names it): at most LS_REMOTE_MAX_OUTPUT bytes of its answer
    // are read, counted as they arrive; the child is killed when the time is up.
    let run = async {
        use tokio::io::AsyncReadExt;
        let mut child = command.spawn().map_err(|e| format!("cannot run git: {e}"))?;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let out = child.stdout.take().map(|o| o.take(LS_REMOTE_MAX_OUTPUT as u64));
        let err = child.stderr.take().map(|e| e.take(64 << 10));
        if let (Some(mut out), Some(mut err)) = (out, err) {
            let (a, b) = tokio::join!(out.read_to_end(&mut stdout), err.read_to_end(&mut stderr));
            a.and(b).map_err(|e| format!("reading git's output: {e}"))?;
        }
        if stdout.len() >= LS_REMOTE_MAX_OUTPUT {
            return Err(format!("the answer is larger than {LS_REMOTE_MAX_OUTPUT} bytes"));
        }
        let status = child.wait().await.map_err(|e| format!("waiting for git: {e}"))?;
        Ok((status, stdout, stderr))
    };
    let (status, stdout, stderr) = match tokio::time::timeout(LS_REMOTE_TIMEOUT, run).await {
        Err(_) => return Err(format!("no answer in {} s", LS_REMOTE_TIMEOUT.as_secs())),
        Ok(result) => result?,
    };
    if !status.success() {
        let stderr = String::from_utf8_lossy(&stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
        return Err(format!("{status}: {}", last.chars().take(300).collect::<String>()));
    }
    vcs::ls_remote_commit(&String::from_utf8_lossy(&stdout), &query.refname)
        .ok_or_else(|| format!("{} is not in the repository", query.refname))
}
