//! What the web interface and the API show about the build system beyond a single record: when each
//! target builds next, which job built which package. Read-only; every answer is computed from the
//! store with the same rules the tick and the scheduler use.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use chrono::{DateTime, Utc};

use crate::job::{JobId, JobState};
use crate::name::{Arch, PkgName, RepoName};
use crate::target::{Target, TargetId};
use crate::version::Version;

use super::{BuildError, BuildService, BuildStore};

/// A package a job built and published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageBuild {
    pub name: PkgName,
    pub version: Version,
    pub arch: Arch,
    pub job: JobId,
    pub target: TargetId,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Most job records one [`BuildService::package_builds`] reads: the answer covers the newest jobs only,
/// so that a page stays fast however long the history is.
pub const MAX_SCANNED_JOBS: usize = 5_000;

impl<S: BuildStore> BuildService<S> {
    /// When each target's next scheduled build is due (the earliest of its architectures): `None` for a
    /// disabled target or a schedule that never fires again. A target that never ran is due at the
    /// next tick (now). The rule is the tick's ([`crate::scheduler::due_runs`]).
    pub fn next_runs(
        &self,
        targets: &[Target],
    ) -> Result<BTreeMap<TargetId, Option<DateTime<Utc>>>, BuildError> {
        let last_runs = self.store.last_runs()?;
        let now = self.now();
        let settings = &self.settings;
        Ok(targets
            .iter()
            .map(|target| {
                let schedule = target.effective_schedule(&settings.global_schedule);
                let next = target
                    .enabled
                    .then(|| {
                        target
                            .arch
                            .iter()
                            .filter_map(|arch| match last_runs.get(&(target.id, arch.clone())) {
                                None => Some(now),
                                Some(&last) => schedule.next_after(last, settings.tz),
                            })
                            .min()
                    })
                    .flatten();
                (target.id, next)
            })
            .collect())
    }

    /// The packages of `names` that succeeded jobs of `repo`'s targets built, newest job first (at
    /// most [`MAX_SCANNED_JOBS`] job records are read). Packages published by hand have none.
    pub fn package_builds(
        &self,
        repo: &RepoName,
        names: &BTreeSet<PkgName>,
    ) -> Result<Vec<PackageBuild>, BuildError> {
        let targets: BTreeSet<TargetId> =
            self.store.targets()?.into_iter().filter(|t| &t.repo == repo).map(|t| t.id).collect();
        let mut out = Vec::new();
        if targets.is_empty() || names.is_empty() {
            return Ok(out);
        }
        let mut scanned = 0;
        self.store.scan_jobs(&mut |job| {
            scanned += 1;
            if job.state() == JobState::Succeeded && targets.contains(&job.target()) {
                for built in job.versions().iter().filter(|b| names.contains(&b.name)) {
                    out.push(PackageBuild {
                        name: built.name.clone(),
                        version: built.version.clone(),
                        arch: built.arch.clone(),
                        job: job.id(),
                        target: job.target(),
                        finished_at: job.finished_at(),
                    });
                }
            }
            if scanned >= MAX_SCANNED_JOBS {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(out)
    }
}
