//! The dependency closure of AUR builds and the order to build it in.
//!
//! Building an AUR package base with `makepkg --syncdeps` needs every `depends`, `makedepends` and
//! `checkdepends` entry of its packages installable: from a pacman sync database, from the repository
//! the build publishes to, or else built first from another AUR package base. [`resolve`] finds those
//! other bases, transitively, and [`Closure::layers`] orders them into build jobs.
//!
//! # Rules
//!
//! - **What satisfies a dependency** (pacman's, libalpm `deps.c`: `_alpm_depcmp_literal` and
//!   `_alpm_depcmp_provides`): a package of the dependency's name whose version meets the constraint
//!   ([`Dependency::satisfied_by`], pacman's `vercmp`), or a package with a matching `provides` entry.
//!   An unversioned dependency (`sh`) is satisfied by any provision of its name, versioned or not; a
//!   versioned one (`libfoo.so>=2`) only by a provision with an exact version (`libfoo.so=2-64`) that
//!   meets the constraint: `provides=('foo')` or `provides=('foo>=2')` provide no version
//!   ([`crate::aur::provision_satisfies`]).
//! - **Where to look**, in order: [`Available`] (sync databases and the target repository, in the
//!   order they were added, like pacman's repository order); AUR packages already in the closure (so
//!   a `foo-git` that provides `foo` is not joined by the AUR's `foo`); the AUR package of the
//!   dependency's name, asked by name with the constraint stripped and the constraint then checked
//!   against the AUR version; else the AUR packages that provide it (the RPC's search by `provides`).
//!   An AUR package whose version does not meet the constraint is no provider.
//! - **Several AUR providers**: the one named like the dependency (found by the name lookup before
//!   any search), else the most voted, ties broken by name. Every dependency resolved through the search is
//!   recorded as a [`Choice`] (with a single candidate too), so the user can see it and pin another.
//! - **Package bases**: the AUR builds bases; a base with split packages is one build. Dependencies of
//!   two packages of one base give one base, and a base needing its own package adds no edge. The RPC
//!   does not list a base's other packages; an [`AurLookup::base_packages`] implementation can (from the
//!   base's `.SRCINFO`), and their dependencies are then resolved too.
//! - **Lookups**: every name unknown after a round goes to one [`AurLookup::info`] call (the embedder
//!   splits it into requests with [`crate::aur::info_requests`]); every search term needed in a round
//!   is searched once, and the info of the providers it finds joins that round's info call. No name is
//!   asked twice and no term searched twice in one resolution.
//! - **Cycles** among AUR bases are an error naming the cycle, makedepends-only cycles included. Every
//!   edge here is a build-time need (`makepkg --syncdeps` installs `depends` as well as `makedepends`
//!   and `checkdepends` before building), and had a base in the cycle been installable, it would have
//!   satisfied the edge from [`Available`] instead: no order can build them. AUR helpers stop too
//!   (pacaur errors out on a detected cycle, rmarquis/pacaur#285; aura reports the cycle and stops,
//!   fosskers/aura#782). Such cycles are meant to be bootstrapped: the AUR ships `-bootstrap` packages
//!   for them (`mingw-w64-freetype2` → `mingw-w64-harfbuzz` → `mingw-w64-freetype2`, with
//!   `mingw-w64-freetype2-bootstrap`, falconindy/auracle#7). Once one member (or its bootstrap
//!   package, providing its name) is in the target repository, that edge is satisfied from there and
//!   the cycle is gone.
//!
//! The AUR's dependency lists merge every architecture's (`depends_x86_64` and `depends_aarch64`
//! alike): a closure can include a base only another architecture needs. The build's own `.SRCINFO`
//! stays the authority.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use crate::aur::{provision_satisfies, AurPackage, MIN_SEARCH_TERM_LEN};
use crate::db::{Database, DbEntry};
use crate::depend::Dependency;
use crate::name::{Arch, PkgName, RepoName};
use crate::version::Version;

/// The most AUR packages one closure holds; more is an error rather than an endless resolution
/// against a misbehaving lookup. The largest real AUR closures have a few dozen packages.
pub const MAX_CLOSURE_PACKAGES: usize = 2000;

/// Where an installable package comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A pacman sync database (`core`, `extra`, ...).
    Sync(RepoName),
    /// The repository the build publishes to.
    Target(RepoName),
}

/// A package that is installable without building it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub name: PkgName,
    pub version: Version,
    pub provides: Vec<Dependency>,
    pub source: Source,
}

impl Provider {
    /// The package of a database entry: its name, version and `%PROVIDES%` (a line that is not a
    /// dependency string, such as an empty name, is skipped: pacman would match nothing against it).
    pub fn from_entry(source: Source, entry: &DbEntry) -> Provider {
        let provides =
            desc_section(&entry.desc, "PROVIDES").filter_map(|line| Dependency::parse(line).ok()).collect();
        Provider { name: entry.name.clone(), version: entry.version.clone(), provides, source }
    }

    /// Whether this package satisfies `dep`, by name and version or by a provision.
    pub fn satisfies(&self, dep: &Dependency) -> bool {
        dep.satisfied_by(self.name.as_str(), self.version.as_str())
            || self.provides.iter().any(|p| provision_satisfies(p, dep))
    }
}

/// The packages of the configured sync databases for one architecture, in the configured order (as
/// `pacman.conf` lists repositories: an earlier one is preferred).
#[derive(Debug, Clone, Default)]
pub struct SyncSet {
    /// In the configured order: URL and the number of packages read from it.
    pub dbs: Vec<(String, usize)>,
    pub providers: Vec<Provider>,
}

impl SyncSet {
    /// Adds the entries of the sync database read from `url`, after those added before; the packages
    /// come from the repository [`sync_db_repo`] names.
    pub fn add_db(&mut self, url: &str, entries: &[DbEntry]) {
        let source = Source::Sync(sync_db_repo(url));
        self.dbs.push((url.to_owned(), entries.len()));
        self.providers.extend(entries.iter().map(|e| Provider::from_entry(source.clone(), e)));
    }

    /// What is installable for a build publishing to a repository whose packages are `target`: the
    /// sync databases first, then the target repository (the AUR comes after both).
    pub fn available_with(&self, target: Vec<Provider>) -> Available {
        let mut available = Available::new();
        for provider in self.providers.iter().cloned().chain(target) {
            available.add(provider);
        }
        available
    }
}

/// A sync database URL with `$arch` replaced (pacman's mirrorlist variable).
pub fn sync_db_url(template: &str, arch: &Arch) -> String {
    template.replace("$arch", arch.as_str())
}

/// The repository a sync database URL names: its file name without `.db` (`…/extra.db` and
/// `…/extra.db.tar.gz` are `extra`); `sync` when that is not a repository name.
pub fn sync_db_repo(url: &str) -> RepoName {
    let file = url.rsplit('/').next().unwrap_or_default();
    let stem = file.split(".db").next().unwrap_or_default();
    RepoName::new(stem).or_else(|_| RepoName::new("sync")).unwrap_or_else(|_| unreachable!("a valid name"))
}

/// What is installable already: the packages of sync databases and of the target repository, indexed
/// by name and by the names they provide.
#[derive(Debug, Clone, Default)]
pub struct Available {
    providers: Vec<Provider>,
    /// Name or provided name -> indices into `providers`, in the order added.
    index: BTreeMap<String, Vec<usize>>,
}

impl Available {
    /// Nothing installable.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one package. Packages added earlier are preferred, like repositories listed earlier in
    /// `pacman.conf`.
    pub fn add(&mut self, provider: Provider) {
        let at = self.providers.len();
        let mut keys: BTreeSet<&str> = provider.provides.iter().map(|p| p.name.as_str()).collect();
        keys.insert(provider.name.as_str());
        for key in keys {
            self.index.entry(key.to_owned()).or_default().push(at);
        }
        self.providers.push(provider);
    }

    /// Adds the package of a database entry (its name, version and `%PROVIDES%`).
    ///
    /// A `%PROVIDES%` line that is not a dependency string (an empty name) is skipped: pacman's own
    /// parser would not match it against anything either, and one odd line should not hide a whole
    /// database.
    pub fn add_entry(&mut self, source: Source, entry: &DbEntry) {
        self.add(Provider::from_entry(source, entry));
    }

    /// Adds every package of a database (a sync db read with [`Database::read`], or the target
    /// repository's), in name order.
    pub fn add_database(&mut self, source: Source, db: &Database) {
        for stored in db.iter() {
            self.add_entry(source.clone(), &stored.entry);
        }
    }

    /// The first package added that satisfies `dep`, by name or by a provision (pacman's rules, see
    /// the module documentation).
    ///
    /// ```
    /// use libvieter::depend::Dependency;
    /// use libvieter::resolve::{Available, Provider, Source};
    /// let mut available = Available::new();
    /// available.add(Provider {
    ///     name: "libfoo".parse().unwrap(),
    ///     version: "2.1-1".parse().unwrap(),
    ///     provides: vec![Dependency::parse("libfoo.so=2-64").unwrap(), Dependency::parse("foo-virtual").unwrap()],
    ///     source: Source::Sync("extra".parse().unwrap()),
    /// });
    /// let dep = |s| Dependency::parse(s).unwrap();
    /// assert!(available.satisfies(&dep("libfoo>=2")).is_some());
    /// assert!(available.satisfies(&dep("libfoo.so>=2")).is_some());
    /// assert!(available.satisfies(&dep("foo-virtual")).is_some());
    /// assert!(available.satisfies(&dep("foo-virtual>=1")).is_none());
    /// assert!(available.satisfies(&dep("libfoo.so>=3")).is_none());
    /// ```
    pub fn satisfies(&self, dep: &Dependency) -> Option<&Provider> {
        self.index.get(&dep.name)?.iter().map(|&i| &self.providers[i]).find(|p| p.satisfies(dep))
    }

    /// The number of packages added.
    pub fn len(&self) -> usize {
        self.providers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }
}

/// The values of one `%SECTION%` of a `desc` text (until the blank line that ends it).
fn desc_section<'a>(desc: &'a str, key: &str) -> impl Iterator<Item = &'a str> {
    let header = format!("%{key}%");
    let mut lines = desc.lines();
    let found = lines.by_ref().any(|l| l == header);
    lines.take_while(move |l| found && !l.is_empty())
}

/// The AUR lookups a resolution needs (the server implements them over HTTP with [`crate::aur`]).
pub trait AurLookup {
    type Error;

    /// The info records of `names` (a package name the AUR does not know is simply absent). Several
    /// names come at once: split them into requests with [`crate::aur::info_requests`].
    fn info(&mut self, names: &[PkgName]) -> Result<Vec<AurPackage>, Self::Error>;

    /// The packages that provide `name` or are named so (the RPC's search by `provides`). Only their
    /// names are used; their lists may be empty, as the RPC's search results are.
    fn search_provides(&mut self, name: &str) -> Result<Vec<AurPackage>, Self::Error>;

    /// All package names of a package base, if the implementation can tell (the RPC cannot; the
    /// base's `.SRCINFO` at `https://aur.archlinux.org/cgit/aur.git/plain/.SRCINFO?h={base}`, read with
    /// [`crate::srcinfo::Srcinfo::parse`], can). Asked once per base. The default knows none: then only
    /// the packages of a base that something needs are resolved.
    fn base_packages(&mut self, base: &PkgName) -> Result<Vec<PkgName>, Self::Error> {
        let _ = base;
        Ok(Vec::new())
    }
}

/// An AUR package base in a closure, with the packages of it the resolution met.
#[derive(Debug, Clone, PartialEq)]
pub struct AurBase {
    pub name: PkgName,
    pub version: Version,
    /// In the order they were met.
    pub packages: Vec<AurPackage>,
}

/// A provider picked among several AUR packages found by a search by `provides`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The dependency, without description.
    pub dependency: Dependency,
    /// The package picked.
    pub chosen: PkgName,
    /// Every AUR package that satisfies the dependency, in name order (`chosen` included).
    pub candidates: Vec<PkgName>,
}

/// The AUR package bases a set of roots needs, what needs what, and the choices made.
#[derive(Debug, Clone, PartialEq)]
pub struct Closure {
    roots: Vec<PkgName>,
    bases: BTreeMap<PkgName, AurBase>,
    needs: BTreeMap<PkgName, BTreeSet<PkgName>>,
    choices: Vec<Choice>,
    installed: Vec<Installed>,
}

/// A dependency satisfied without building: by a sync database or by a package already in the target
/// repository (which is how a published member breaks a cycle of AUR bases).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The dependency, without description.
    pub dependency: Dependency,
    /// The package that satisfies it.
    pub provider: Provider,
}

impl Closure {
    /// The dependencies satisfied by [`Available`], each once, in the order they were met.
    pub fn installed(&self) -> &[Installed] {
        &self.installed
    }

    /// What the closure says, as the API shows it.
    pub fn report(&self) -> ClosureReport {
        let layers = self.layers();
        ClosureReport {
            roots: self.roots.clone(),
            bases: self
                .bases
                .values()
                .map(|b| BaseReport {
                    name: b.name.clone(),
                    version: b.version.to_string(),
                    packages: b.packages.iter().map(|p| p.name.clone()).collect(),
                    needs: self.needs(&b.name).cloned().collect(),
                })
                .collect(),
            layers,
            choices: self
                .choices
                .iter()
                .map(|c| ChoiceReport {
                    dependency: c.dependency.to_string(),
                    chosen: c.chosen.clone(),
                    candidates: c.candidates.clone(),
                })
                .collect(),
            installed: self
                .installed
                .iter()
                .map(|i| {
                    let (kind, repo) = match &i.provider.source {
                        Source::Sync(r) => ("sync", r.clone()),
                        Source::Target(r) => ("target", r.clone()),
                    };
                    InstalledReport {
                        dependency: i.dependency.to_string(),
                        package: i.provider.name.clone(),
                        version: i.provider.version.to_string(),
                        source: kind.to_owned(),
                        repo,
                    }
                })
                .collect(),
        }
    }

    /// The bases of the roots, in the order the roots were given (each once).
    pub fn roots(&self) -> &[PkgName] {
        &self.roots
    }

    /// Every base, roots included, in name order.
    pub fn bases(&self) -> impl Iterator<Item = &AurBase> {
        self.bases.values()
    }

    /// One base.
    pub fn base(&self, name: &PkgName) -> Option<&AurBase> {
        self.bases.get(name)
    }

    /// The bases `base` needs built first, in name order.
    pub fn needs(&self, base: &PkgName) -> impl Iterator<Item = &PkgName> {
        self.needs.get(base).into_iter().flatten()
    }

    /// Every edge `(base, needed base)`, in order.
    pub fn edges(&self) -> impl Iterator<Item = (&PkgName, &PkgName)> {
        self.needs.iter().flat_map(|(base, needed)| needed.iter().map(move |n| (base, n)))
    }

    /// The choices made among several AUR providers, in the order they were made.
    pub fn choices(&self) -> &[Choice] {
        &self.choices
    }

    /// The bases in build layers: the first layer needs nothing from the closure, every later one only
    /// bases of earlier layers. The bases of one layer can build in parallel; each layer is in name
    /// order.
    pub fn layers(&self) -> Vec<Vec<PkgName>> {
        let mut waiting: BTreeMap<&PkgName, usize> =
            self.bases.keys().map(|b| (b, self.needs.get(b).map_or(0, BTreeSet::len))).collect();
        let mut needed_by: BTreeMap<&PkgName, Vec<&PkgName>> = BTreeMap::new();
        for (base, needed) in self.edges() {
            needed_by.entry(needed).or_default().push(base);
        }
        let mut layers = Vec::new();
        let mut ready: Vec<&PkgName> = waiting.iter().filter(|(_, &n)| n == 0).map(|(&b, _)| b).collect();
        while !ready.is_empty() {
            let mut next = Vec::new();
            for base in &ready {
                waiting.remove(base);
                for dependent in needed_by.get(base).into_iter().flatten() {
                    if let Some(n) = waiting.get_mut(dependent) {
                        *n -= 1;
                        if *n == 0 {
                            next.push(*dependent);
                        }
                    }
                }
            }
            next.sort();
            layers.push(ready.into_iter().cloned().collect());
            ready = next;
        }
        // `resolve` refuses cycles, so nothing is left waiting.
        layers
    }

    /// The bases in one build order: [`Closure::layers`] one after the other.
    pub fn build_order(&self) -> Vec<PkgName> {
        self.layers().into_iter().flatten().collect()
    }
}

/// A [`Closure`] as JSON: bases with what they need, build layers, provider choices, and the
/// dependencies found installable (`source`: `sync` for a sync database, `target` for the repository
/// the builds publish to).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClosureReport {
    pub roots: Vec<PkgName>,
    pub bases: Vec<BaseReport>,
    pub layers: Vec<Vec<PkgName>>,
    pub choices: Vec<ChoiceReport>,
    pub installed: Vec<InstalledReport>,
}

/// One base of a [`ClosureReport`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BaseReport {
    pub name: PkgName,
    pub version: String,
    pub packages: Vec<PkgName>,
    pub needs: Vec<PkgName>,
}

/// One [`Choice`] of a [`ClosureReport`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChoiceReport {
    pub dependency: String,
    pub chosen: PkgName,
    pub candidates: Vec<PkgName>,
}

/// One [`Installed`] of a [`ClosureReport`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InstalledReport {
    pub dependency: String,
    pub package: PkgName,
    pub version: String,
    pub source: String,
    pub repo: RepoName,
}

/// Why a closure could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError<E> {
    /// The lookup failed.
    #[error("AUR lookup failed: {0}")]
    Lookup(#[source] E),
    /// A root is no AUR package name.
    #[error("{name}: no AUR package has this name (a package base is found by one of its package names)")]
    NotInAur { name: PkgName },
    /// Nothing satisfies a dependency. `chain` is the path of package names from a root to the package
    /// that needs it.
    #[error("{}", unsatisfiable_message(chain, dependency))]
    Unsatisfiable { chain: Vec<String>, dependency: Dependency },
    /// AUR bases need each other: `bases` is the cycle, its first base repeated at the end.
    #[error("dependency cycle among AUR package bases: {} (makepkg cannot build them)", join(bases))]
    Cycle { bases: Vec<PkgName> },
    /// More than [`MAX_CLOSURE_PACKAGES`] AUR packages.
    #[error("the dependency closure needs more than {limit} AUR packages")]
    TooLarge { limit: usize },
}

fn join(names: &[PkgName]) -> String {
    names.iter().map(PkgName::as_str).collect::<Vec<_>>().join(" → ")
}

fn unsatisfiable_message(chain: &[String], dependency: &Dependency) -> String {
    let mut path: Vec<String> = chain.to_vec();
    path.push(dependency.to_string());
    let why = if dependency.constraint.is_some() {
        "no version in the AUR or any sync db satisfies it"
    } else {
        "not in the AUR or any sync db"
    };
    format!("{}: {why}", path.join(" → "))
}

/// What a resolution still waits for.
enum Want {
    /// A dependency of `needer` (a package name in the closure).
    Dep { dep: Dependency, needer: PkgName, chain: Vec<String> },
    /// A package of a base already in the closure, named by [`AurLookup::base_packages`].
    Sibling { name: PkgName, base: PkgName, chain: Vec<String> },
}

/// The outcome of one attempt at a dependency.
enum Step {
    Installable(Provider),
    Aur(PkgName),
    NeedInfo(Vec<PkgName>),
    NeedSearch(String),
    Unsatisfiable,
}

struct Resolver<'a, L: AurLookup> {
    available: &'a Available,
    aur: &'a mut L,
    /// Every name asked with `info`: its record, or `None` when the AUR has no such package.
    info: BTreeMap<PkgName, Option<AurPackage>>,
    /// Every term searched: the names found.
    searched: BTreeMap<String, Vec<PkgName>>,
    /// The packages in the closure (name -> base).
    included: BTreeMap<PkgName, PkgName>,
    bases: BTreeMap<PkgName, AurBase>,
    needs: BTreeMap<PkgName, BTreeSet<PkgName>>,
    choices: Vec<Choice>,
    installed: Vec<Installed>,
    pending: VecDeque<Want>,
}

/// Resolves the AUR package bases that building `roots` (AUR package names; a base is named by its
/// package of the same name) needs. See the module documentation for the rules.
pub fn resolve<L: AurLookup>(
    roots: &[PkgName],
    available: &Available,
    aur: &mut L,
) -> Result<Closure, ResolveError<L::Error>> {
    let mut r = Resolver {
        available,
        aur,
        info: BTreeMap::new(),
        searched: BTreeMap::new(),
        included: BTreeMap::new(),
        bases: BTreeMap::new(),
        needs: BTreeMap::new(),
        choices: Vec::new(),
        installed: Vec::new(),
        pending: VecDeque::new(),
    };
    let mut unique = Vec::new();
    for root in roots {
        if !unique.contains(root) {
            unique.push(root.clone());
        }
    }
    r.fetch(unique.clone())?;
    let mut root_bases = Vec::new();
    for root in &unique {
        let Some(Some(pkg)) = r.info.get(root).cloned() else {
            return Err(ResolveError::NotInAur { name: root.clone() });
        };
        if !root_bases.contains(&pkg.package_base) {
            root_bases.push(pkg.package_base.clone());
        }
        r.include(pkg, vec![root.to_string()])?;
    }
    r.run()?;
    let closure = Closure {
        roots: root_bases,
        bases: r.bases,
        needs: r.needs,
        choices: r.choices,
        installed: r.installed,
    };
    if let Some(cycle) = find_cycle(&closure.needs) {
        return Err(ResolveError::Cycle { bases: cycle });
    }
    Ok(closure)
}

impl<L: AurLookup> Resolver<'_, L> {
    /// Asks `info` once for the names not asked yet; remembers the absent ones.
    fn fetch(&mut self, names: Vec<PkgName>) -> Result<(), ResolveError<L::Error>> {
        let names: Vec<PkgName> = names.into_iter().filter(|n| !self.info.contains_key(n)).collect();
        if names.is_empty() {
            return Ok(());
        }
        let found = self.aur.info(&names).map_err(ResolveError::Lookup)?;
        for name in names {
            self.info.insert(name, None);
        }
        for pkg in found {
            // A record for a name not asked is kept too: it is what the AUR says about that name.
            self.info.insert(pkg.name.clone(), Some(pkg));
        }
        Ok(())
    }

    /// Adds an AUR package (and, the first time, its base) to the closure and queues what it needs.
    fn include(&mut self, pkg: AurPackage, chain: Vec<String>) -> Result<(), ResolveError<L::Error>> {
        if self.included.contains_key(&pkg.name) {
            return Ok(());
        }
        if self.included.len() >= MAX_CLOSURE_PACKAGES {
            return Err(ResolveError::TooLarge { limit: MAX_CLOSURE_PACKAGES });
        }
        self.included.insert(pkg.name.clone(), pkg.package_base.clone());
        for dep in pkg.build_needs() {
            let dep = Dependency { description: None, ..dep.clone() };
            self.pending.push_back(Want::Dep { dep, needer: pkg.name.clone(), chain: chain.clone() });
        }
        let base = pkg.package_base.clone();
        if !self.bases.contains_key(&base) {
            let siblings = self.aur.base_packages(&base).map_err(ResolveError::Lookup)?;
            for name in siblings {
                if name != pkg.name {
                    let mut chain = chain.clone();
                    chain.push(name.to_string());
                    self.pending.push_back(Want::Sibling { name, base: base.clone(), chain });
                }
            }
            let entry = AurBase { name: base.clone(), version: pkg.version.clone(), packages: Vec::new() };
            self.bases.insert(base.clone(), entry);
        }
        if let Some(entry) = self.bases.get_mut(&base) {
            entry.packages.push(pkg);
        }
        Ok(())
    }

    /// Rounds of: settle everything settleable with what is known, then one batch of lookups.
    fn run(&mut self) -> Result<(), ResolveError<L::Error>> {
        loop {
            let mut waiting = Vec::new();
            let mut want_info: BTreeSet<PkgName> = BTreeSet::new();
            let mut want_search: BTreeSet<String> = BTreeSet::new();
            while let Some(want) = self.pending.pop_front() {
                match want {
                    Want::Sibling { name, base, chain } => match self.info.get(&name) {
                        None => {
                            want_info.insert(name.clone());
                            waiting.push(Want::Sibling { name, base, chain });
                        }
                        Some(Some(pkg)) if pkg.package_base == base => {
                            let pkg = pkg.clone();
                            self.include(pkg, chain)?;
                        }
                        // Unknown to the AUR, or of another base: nothing to build.
                        Some(_) => {}
                    },
                    Want::Dep { dep, needer, chain } => match self.step(&dep) {
                        Step::Installable(provider) => {
                            if !self.installed.iter().any(|i| i.dependency == dep) {
                                self.installed.push(Installed { dependency: dep, provider });
                            }
                        }
                        Step::Aur(name) => {
                            let Some(Some(pkg)) = self.info.get(&name).cloned() else { continue };
                            self.edge(&needer, &pkg.package_base);
                            let mut chain = chain;
                            chain.push(name.to_string());
                            self.include(pkg, chain)?;
                        }
                        Step::NeedInfo(names) => {
                            want_info.extend(names);
                            waiting.push(Want::Dep { dep, needer, chain });
                        }
                        Step::NeedSearch(term) => {
                            want_search.insert(term);
                            waiting.push(Want::Dep { dep, needer, chain });
                        }
                        Step::Unsatisfiable => {
                            return Err(ResolveError::Unsatisfiable { chain, dependency: dep })
                        }
                    },
                }
            }
            if waiting.is_empty() {
                return Ok(());
            }
            for term in want_search {
                let found = self.aur.search_provides(&term).map_err(ResolveError::Lookup)?;
                let mut names: Vec<PkgName> = found.into_iter().map(|p| p.name).collect();
                names.sort();
                names.dedup();
                want_info.extend(names.iter().filter(|n| !self.info.contains_key(*n)).cloned());
                self.searched.insert(term, names);
            }
            self.fetch(want_info.into_iter().collect())?;
            self.pending.extend(waiting);
        }
    }

    /// Records that the base of package `needer` needs base `needed`.
    fn edge(&mut self, needer: &PkgName, needed: &PkgName) {
        if let Some(base) = self.included.get(needer) {
            if base != needed {
                self.needs.entry(base.clone()).or_default().insert(needed.clone());
            }
        }
    }

    /// One attempt at `dep` with what is known.
    fn step(&mut self, dep: &Dependency) -> Step {
        if let Some(provider) = self.available.satisfies(dep) {
            return Step::Installable(provider.clone());
        }
        // An AUR package already in the closure: by name first, then the first (by name) providing it.
        let known = |name: &PkgName| self.info.get(name).and_then(Option::as_ref);
        if let Some(pkg) = PkgName::new(dep.name.as_str())
            .ok()
            .filter(|n| self.included.contains_key(n))
            .and_then(|n| known(&n))
        {
            if pkg.satisfies(dep) {
                return Step::Aur(pkg.name.clone());
            }
        }
        if let Some(name) = self.included.keys().find(|n| known(n).is_some_and(|p| p.satisfies(dep))) {
            return Step::Aur(name.clone());
        }
        // The AUR package of that name.
        if let Ok(name) = PkgName::new(dep.name.as_str()) {
            match self.info.get(&name) {
                None => return Step::NeedInfo(vec![name]),
                Some(Some(pkg)) if pkg.satisfies(dep) => return Step::Aur(name),
                Some(_) => {}
            }
        }
        // The AUR packages that provide it.
        if dep.name.chars().count() < MIN_SEARCH_TERM_LEN || dep.name.bytes().all(|b| b == b'.') {
            return Step::Unsatisfiable;
        }
        let Some(found) = self.searched.get(&dep.name) else { return Step::NeedSearch(dep.name.clone()) };
        let unknown: Vec<PkgName> = found.iter().filter(|n| !self.info.contains_key(*n)).cloned().collect();
        if !unknown.is_empty() {
            return Step::NeedInfo(unknown);
        }
        let mut providers: Vec<&AurPackage> =
            found.iter().filter_map(known).filter(|p| p.satisfies(dep)).collect();
        providers.sort_by(|a, b| a.name.cmp(&b.name));
        let chosen = providers.iter().find(|p| p.name.as_str() == dep.name).or_else(|| {
            providers.iter().min_by(|a, b| b.num_votes.cmp(&a.num_votes).then_with(|| a.name.cmp(&b.name)))
        });
        let Some(chosen) = chosen.map(|p| p.name.clone()) else { return Step::Unsatisfiable };
        let candidates: Vec<PkgName> = providers.iter().map(|p| p.name.clone()).collect();
        if !self.choices.iter().any(|c| c.dependency == *dep) {
            self.choices.push(Choice { dependency: dep.clone(), chosen: chosen.clone(), candidates });
        }
        Step::Aur(chosen)
    }
}

/// A cycle in `needs`, as the path `a → b → ... → a`, the first found in name order.
fn find_cycle(needs: &BTreeMap<PkgName, BTreeSet<PkgName>>) -> Option<Vec<PkgName>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut marks: BTreeMap<&PkgName, Mark> = BTreeMap::new();
    for start in needs.keys() {
        if marks.contains_key(start) {
            continue;
        }
        // Iterative depth-first search: the path and, per node on it, the iterator of what it needs.
        let mut path: Vec<&PkgName> = vec![start];
        let mut stack = vec![needs.get(start).into_iter().flatten()];
        marks.insert(start, Mark::Open);
        while let Some(children) = stack.last_mut() {
            match children.next() {
                Some(next) => match marks.get(next) {
                    Some(Mark::Open) => {
                        let from = path.iter().position(|b| *b == next).unwrap_or(0);
                        let mut cycle: Vec<PkgName> = path[from..].iter().map(|b| (*b).clone()).collect();
                        cycle.push(next.clone());
                        return Some(cycle);
                    }
                    Some(Mark::Done) => {}
                    None => {
                        marks.insert(next, Mark::Open);
                        path.push(next);
                        stack.push(needs.get(next).into_iter().flatten());
                    }
                },
                None => {
                    stack.pop();
                    if let Some(done) = path.pop() {
                        marks.insert(done, Mark::Done);
                    }
                }
            }
        }
    }
    None
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Sync(db) => write!(f, "sync db {db}"),
            Source::Target(repo) => write!(f, "repository {repo}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_db_urls_and_their_repositories() {
        let arch = Arch::new("aarch64").unwrap();
        assert_eq!(
            sync_db_url("https://mirror.example/$repo/os/$arch/extra.db", &arch),
            "https://mirror.example/$repo/os/aarch64/extra.db"
        );
        assert_eq!(sync_db_repo("http://m/core/os/x86_64/core.db").as_str(), "core");
        assert_eq!(sync_db_repo("http://m/x/extra.db.tar.gz").as_str(), "extra");
        assert_eq!(sync_db_repo("http://m/x/").as_str(), "sync");
    }
}
