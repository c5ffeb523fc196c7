//! The job graph: targets that need targets, checked for existence and cycles, the targets of an AUR
//! dependency closure, dependency trees, and the plan of jobs a build of a target with needs queues.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{lock, BuildError, BuildService, BuildStore, Invalid, Missing};
use crate::name::RepoName;
use crate::name::{Arch, PkgName};
use crate::resolve::{Closure, ResolveError};
use crate::target::{NewTarget, Source, Target, TargetId};

/// The targets [`BuildService::create_with_closure`] stored: the root, the automatic targets it created
/// and the existing targets it reused (as they are now, with the needs it added).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosureTargets {
    pub root: Target,
    pub created: Vec<Target>,
    pub reused: Vec<Target>,
}

/// A target and the trees of the targets it needs, with the targets that need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyTree {
    pub target: Target,
    pub needs: Vec<DependencyTree>,
    /// The targets whose `needs` name this one, in id order.
    #[serde(default)]
    pub needed_by: Vec<TargetId>,
}

/// What [`BuildService::delete_target`] removed: the target, the automatic targets no longer needed
/// (in the order they were removed) and the active jobs it cancelled (with the jobs that waited for
/// them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    pub removed: TargetId,
    pub automatic: Vec<TargetId>,
    pub cancelled: Vec<crate::job::Job>,
}

/// The jobs one build of a target for an arch needs: each (target, its needs), dependencies first, the
/// target itself last, each target once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    pub arch: Arch,
    pub order: Vec<(TargetId, Vec<TargetId>)>,
    /// Why the target's own job runs (a change check's reason), stored with it when it is new.
    pub reason: Option<String>,
}

impl Plan {
    /// The plan of a target without needs.
    pub fn single(target: TargetId, arch: Arch) -> Plan {
        Plan { arch, order: vec![(target, Vec::new())], reason: None }
    }
}

/// What an `aur` target's closure is resolved from: see [`BuildService::closure_to_resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosureQuery {
    pub base: PkgName,
    pub repo: RepoName,
    /// The architecture whose sync databases count.
    pub arch: Arch,
}

/// A cycle in `needs` found from `starts` (in order), as the path round it, its first target repeated
/// at the end; `name` says how a target is shown.
fn find_cycle(
    needs: &BTreeMap<TargetId, Vec<TargetId>>,
    starts: impl IntoIterator<Item = TargetId>,
    name: &dyn Fn(TargetId) -> String,
) -> Option<Vec<String>> {
    let mut done: BTreeSet<TargetId> = BTreeSet::new();
    for start in starts {
        if done.contains(&start) {
            continue;
        }
        // Depth first, with the path on a stack of (target, index of the next need to visit).
        let mut path: Vec<(TargetId, usize)> = vec![(start, 0)];
        while let Some(&mut (at, ref mut next)) = path.last_mut() {
            let list = needs.get(&at).map_or(&[][..], Vec::as_slice);
            match list.get(*next).copied() {
                Some(n) => {
                    *next += 1;
                    if let Some(pos) = path.iter().position(|&(p, _)| p == n) {
                        let mut cycle: Vec<String> = path[pos..].iter().map(|&(p, _)| name(p)).collect();
                        cycle.push(name(n));
                        return Some(cycle);
                    }
                    if !done.contains(&n) {
                        path.push((n, 0));
                    }
                }
                None => {
                    done.insert(at);
                    path.pop();
                }
            }
        }
    }
    None
}

fn needs_map(targets: &BTreeMap<TargetId, Target>) -> BTreeMap<TargetId, Vec<TargetId>> {
    targets.iter().map(|(&id, t)| (id, t.needs.clone())).collect()
}

impl<S: BuildStore> BuildService<S> {
    /// Every target by id.
    pub(super) fn target_map(&self) -> Result<BTreeMap<TargetId, Target>, BuildError> {
        Ok(self.store.targets()?.into_iter().map(|t| (t.id, t)).collect())
    }

    /// Checks the needs of `target` (stored or about to be) against `all`: each exists, none is the
    /// target itself, and they make no cycle.
    pub(super) fn check_needs(target: &Target, all: &BTreeMap<TargetId, Target>) -> Result<(), BuildError> {
        for &n in &target.needs {
            if n == target.id {
                return Err(Invalid::SelfNeed { target: n }.into());
            }
            if !all.contains_key(&n) {
                return Err(Invalid::UnknownNeed { needed: n }.into());
            }
        }
        let mut needs = needs_map(all);
        needs.insert(target.id, target.needs.clone());
        match find_cycle(&needs, [target.id], &|id| id.to_string()) {
            Some(path) => Err(Invalid::Cycle { path }.into()),
            None => Ok(()),
        }
    }

    /// The jobs a build of `top` for `arch` needs (see [`Plan`]). Refused when a needed target is gone
    /// or not built for `arch`.
    pub(super) fn plan(
        top: &Target,
        arch: &Arch,
        lookup: &mut dyn FnMut(TargetId) -> Result<Option<Target>, BuildError>,
    ) -> Result<Plan, BuildError> {
        let mut order: Vec<(TargetId, Vec<TargetId>)> = Vec::new();
        let mut placed: BTreeSet<TargetId> = BTreeSet::new();
        // Depth first: (target, its needs, index of the next one to visit).
        let mut stack: Vec<(TargetId, Vec<TargetId>, usize)> = vec![(top.id, top.needs.clone(), 0)];
        while let Some(entry) = stack.last_mut() {
            let at = entry.0;
            let Some(n) = entry.1.get(entry.2).copied() else {
                if let Some((at, needs, _)) = stack.pop() {
                    placed.insert(at);
                    order.push((at, needs));
                }
                continue;
            };
            entry.2 += 1;
            if placed.contains(&n) {
                continue;
            }
            if stack.iter().any(|(s, _, _)| *s == n) {
                let mut path: Vec<String> = stack.iter().map(|(s, _, _)| s.to_string()).collect();
                path.push(n.to_string());
                return Err(Invalid::Cycle { path }.into());
            }
            let needed = lookup(n)?.ok_or(Invalid::UnknownNeed { needed: n })?;
            if !needed.arch.contains(arch) {
                return Err(Invalid::NeedArch { target: at, needed: n, arch: arch.clone() }.into());
            }
            stack.push((n, needed.needs.clone(), 0));
        }
        Ok(Plan { arch: arch.clone(), order, reason: None })
    }

    /// The tree of the targets `id` needs, each with its own (a target needed twice appears twice).
    pub fn dependency_tree(&self, id: TargetId) -> Result<DependencyTree, BuildError> {
        let all = self.target_map()?;
        let Some(top) = all.get(&id) else { return Err(BuildError::NotFound(Missing::Target(id))) };
        fn tree(t: &Target, all: &BTreeMap<TargetId, Target>, path: &mut Vec<TargetId>) -> DependencyTree {
            path.push(t.id);
            let mut needs = Vec::new();
            for n in &t.needs {
                // A cycle cannot be stored; a corrupt one is cut rather than followed forever.
                if let (false, Some(needed)) = (path.contains(n), all.get(n)) {
                    needs.push(tree(needed, all, path));
                }
            }
            path.pop();
            let needed_by = all.values().filter(|o| o.needs.contains(&t.id)).map(|o| o.id).collect();
            DependencyTree { target: t.clone(), needs, needed_by }
        }
        Ok(tree(top, &all, &mut Vec::new()))
    }

    /// What must be resolved before `input` is created: for a valid `aur` target, its package base,
    /// repository and the architecture whose sync databases count (its first; the AUR's dependency
    /// lists merge every architecture's). `None` for any other target (create it with
    /// [`BuildService::create_target`], which says why an invalid one is refused).
    pub fn closure_to_resolve(&self, input: &NewTarget) -> Option<ClosureQuery> {
        let target = input.validate(TargetId(0), &self.settings.default_arch).ok()?;
        let Source::Aur { name } = target.source else { return None };
        let arch = target.arch.first().cloned().unwrap_or_else(|| self.settings.default_arch.clone());
        Some(ClosureQuery { base: name, repo: target.repo, arch })
    }

    /// Creates the `aur` target `input` once its closure was resolved ([`Self::closure_to_resolve`]):
    /// with its closure when it resolved; alone, saying why, when the AUR or a mirror could not be asked
    /// or the AUR has no package of the base's name (the RPC finds bases by package name only: such a
    /// base may still build); refused (the inner `Err`) when the closure cannot be built (a missing
    /// dependency, a cycle).
    pub fn create_resolved<E: std::fmt::Display>(
        &self,
        input: &NewTarget,
        resolution: Result<Closure, ResolveError<E>>,
    ) -> Result<Result<crate::api::CreatedTarget, ResolveError<E>>, BuildError> {
        use crate::api::{CreatedTarget, TargetClosure};
        match resolution {
            Ok(closure) => {
                let resolved = Some(closure.report());
                let made = self.create_with_closure(input, &closure)?;
                let closure =
                    TargetClosure { created: made.created, reused: made.reused, resolved, error: None };
                Ok(Ok(CreatedTarget { target: made.root, closure: Some(closure) }))
            }
            Err(e @ (ResolveError::Lookup(_) | ResolveError::NotInAur { .. })) => {
                let target = self.create_target(input)?;
                let closure = TargetClosure { error: Some(e.to_string()), ..TargetClosure::default() };
                Ok(Ok(CreatedTarget { target, closure: Some(closure) }))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// Creates the `aur` target `input` (its package base is the closure's root) with what it needs:
    /// for each base of `closure` the root needs (transitively), an existing `aur` target of that base
    /// in the same repository is reused, else an automatic target is created (same repository and
    /// architectures as the root, no schedule, enabled). The root and every created or reused target
    /// get the needs of `closure` (added to their own; none is removed).
    ///
    /// Written dependencies first, the root last, so a failure halfway leaves no need of a target that
    /// does not exist.
    pub fn create_with_closure(
        &self,
        input: &NewTarget,
        closure: &Closure,
    ) -> Result<ClosureTargets, BuildError> {
        let mut root = input.validate(TargetId(0), &self.settings.default_arch).map_err(Invalid::Target)?;
        let Source::Aur { name: root_base } = root.source.clone() else {
            return Err(Invalid::Closure(format!(
                "a dependency closure is for aur targets, this one is {}",
                root.kind()
            ))
            .into());
        };
        if closure.base(&root_base).is_none() {
            return Err(Invalid::Closure(format!(
                "{root_base} is not a package base of the dependency closure"
            ))
            .into());
        }
        // The bases the root needs, transitively, in build order (dependencies first).
        let mut wanted: BTreeSet<&PkgName> = BTreeSet::new();
        let mut todo = vec![&root_base];
        while let Some(b) = todo.pop() {
            for n in closure.needs(b) {
                if wanted.insert(n) {
                    todo.push(n);
                }
            }
        }
        let order: Vec<PkgName> =
            closure.build_order().into_iter().filter(|b| *b != root_base && wanted.contains(b)).collect();

        let _edit = lock(&self.targets);
        let mut all = self.target_map()?;
        for &n in &root.needs {
            if !all.contains_key(&n) {
                return Err(Invalid::UnknownNeed { needed: n }.into());
            }
        }
        // Reused or to be created (shown by a stand-in id until it is stored).
        let mut ids: BTreeMap<PkgName, TargetId> = BTreeMap::new();
        let mut to_create: BTreeSet<TargetId> = BTreeSet::new();
        let mut names: BTreeMap<TargetId, String> = BTreeMap::new();
        for (i, base) in order.iter().enumerate() {
            let existing = all
                .values()
                .find(|t| t.repo == root.repo && matches!(&t.source, Source::Aur { name } if name == base));
            let id = match existing {
                Some(t) => t.id,
                None => {
                    let stand_in = TargetId(u64::MAX - i as u64);
                    to_create.insert(stand_in);
                    names.insert(stand_in, format!("new target {base}"));
                    stand_in
                }
            };
            ids.insert(base.clone(), id);
        }
        let needs_of = |base: &PkgName, ids: &BTreeMap<PkgName, TargetId>| -> Vec<TargetId> {
            closure.needs(base).filter_map(|n| ids.get(n).copied()).collect()
        };
        // The graph as it would be, checked for cycles through the reused targets' own needs.
        let mut graph = needs_map(&all);
        for base in &order {
            let Some(&id) = ids.get(base) else { continue };
            let entry = graph.entry(id).or_default();
            entry.extend(needs_of(base, &ids));
            entry.sort_unstable();
            entry.dedup();
        }
        let reused_ids: Vec<TargetId> =
            order.iter().filter_map(|b| ids.get(b).copied()).filter(|id| !to_create.contains(id)).collect();
        let name = |id: TargetId| names.get(&id).cloned().unwrap_or_else(|| id.to_string());
        if let Some(path) = find_cycle(&graph, reused_ids.iter().copied(), &name) {
            return Err(Invalid::Cycle { path }.into());
        }

        let now = self.now();
        let mut created = Vec::new();
        let mut reused = Vec::new();
        for base in &order {
            let Some(&id) = ids.get(base) else { continue };
            let mut needs = needs_of(base, &ids);
            if to_create.contains(&id) {
                needs.sort_unstable();
                needs.dedup();
                let target = Target {
                    id: TargetId(0),
                    source: Source::Aur { name: base.clone() },
                    repo: root.repo.clone(),
                    schedule: None,
                    arch: root.arch.clone(),
                    base_image: None,
                    build_timeout_secs: None,
                    enabled: true,
                    needs,
                    automatic: true,
                };
                let stored = self.store.add_target(target, now)?;
                ids.insert(base.clone(), stored.id);
                all.insert(stored.id, stored.clone());
                created.push(stored);
            } else if let Some(t) = all.get_mut(&id) {
                let before = t.needs.clone();
                t.needs.extend(needs);
                t.needs.sort_unstable();
                t.needs.dedup();
                if t.needs != before {
                    self.store.put_target(t)?;
                }
                reused.push(t.clone());
            }
        }
        root.needs.extend(needs_of(&root_base, &ids));
        root.needs.sort_unstable();
        root.needs.dedup();
        let root = self.store.add_target(root, now)?;
        Ok(ClosureTargets { root, created, reused })
    }
}
