//! What a repository shows: its repositories with their sizes, a page of an arch-repo's packages, one
//! package with a page of its file list. Paging defaults and limits are [`crate::api`]'s; the search is
//! a case-insensitive substring of the name or the description.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::api::{
    ArchRepoInfo, FilesQuery, ListQuery, PackageDetail, PackagePage, PackageSort, PackageSummary, RepoInfo,
    MAX_FILE_PAGE_BYTES,
};
use crate::depend::Dependency;
use crate::name::{Arch, PkgName, RepoName};
use crate::resolve::{Provider, Source};

use super::service::store_err;
use super::{BlobStore, RepoError, RepoStore, Repository};

/// An arch-repo, as the listings know it.
type ArchKey = (RepoName, Arch);

/// Summaries as read at a generation.
type Listed = (u64, Arc<Vec<PackageSummary>>);

/// Most package summaries the listings keep in memory (a few hundred bytes each).
const MAX_LISTED: usize = 50_000;

/// The summaries of arch-repos as the listings last read them, each valid while its arch-repo's
/// generation is the one it was read at: a repository page reads a 10,000-package arch-repo from the
/// store once per change of it, not twice per view. [`Repository`] bumps an arch-repo's generation
/// after every commit that touched it ([`Repository::listings_changed`]); a read notes the generation
/// before reading the store and keeps what it read only if no commit bumped it meanwhile.
#[derive(Debug, Default)]
pub(super) struct Listings {
    generations: HashMap<ArchKey, u64>,
    lists: HashMap<ArchKey, Listed>,
    /// Summaries in `lists`.
    kept: usize,
}

impl Listings {
    fn generation(&self, key: &ArchKey) -> u64 {
        self.generations.get(key).copied().unwrap_or(0)
    }
}

fn lock(listings: &Mutex<Listings>) -> MutexGuard<'_, Listings> {
    listings.lock().unwrap_or_else(|p| p.into_inner())
}

impl<S: RepoStore, B: BlobStore> Repository<S, B> {
    /// After a commit: what the listings kept of these arch-repos is stale.
    pub(super) fn listings_changed<'a>(&self, repo: &RepoName, archs: impl IntoIterator<Item = &'a Arch>) {
        let mut listings = lock(&self.listings);
        for arch in archs {
            let key = (repo.clone(), arch.clone());
            if let Some((_, list)) = listings.lists.remove(&key) {
                listings.kept -= list.len();
            }
            *listings.generations.entry(key).or_default() += 1;
        }
    }

    /// The summaries of an arch-repo in name order, from the listings when they hold them as the store
    /// has them now.
    fn summaries_of(&self, repo: &RepoName, arch: &Arch) -> Result<Arc<Vec<PackageSummary>>, RepoError> {
        let key = (repo.clone(), arch.clone());
        let generation = {
            let listings = lock(&self.listings);
            let generation = listings.generation(&key);
            if let Some((read_at, list)) = listings.lists.get(&key) {
                if *read_at == generation {
                    return Ok(list.clone());
                }
            }
            generation
        };
        let list = Arc::new(self.store().summaries(repo, arch).map_err(store_err)?);
        let mut listings = lock(&self.listings);
        if listings.generation(&key) == generation && list.len() <= MAX_LISTED {
            if listings.kept + list.len() > MAX_LISTED {
                listings.lists.clear();
                listings.kept = 0;
            }
            listings.kept += list.len();
            if let Some((_, old)) = listings.lists.insert(key, (generation, list.clone())) {
                listings.kept -= old.len();
            }
        }
        Ok(list)
    }

    /// Every repository with its architectures: package count, total size, last change. In name order.
    pub fn repos(&self) -> Result<Vec<RepoInfo>, RepoError> {
        let mut by_repo: BTreeMap<String, Vec<ArchRepoInfo>> = BTreeMap::new();
        for (repo, arch, record) in self.store().arch_repos().map_err(store_err)? {
            let summaries = self.summaries_of(&repo, &arch)?;
            by_repo.entry(repo.to_string()).or_default().push(ArchRepoInfo {
                arch,
                packages: summaries.len() as u64,
                size: summaries.iter().map(|s| s.csize).sum(),
                last_change: Some(record.last_change),
            });
        }
        Ok(by_repo.into_iter().map(|(name, archs)| RepoInfo { name, archs }).collect())
    }

    /// A page of the packages of an arch-repo, in name order (or `query.sort`), those matching
    /// `query.query` only (a case-insensitive substring of the name or the description). `None`: there
    /// is no such arch-repo.
    pub fn packages(
        &self,
        repo: &RepoName,
        arch: &Arch,
        query: &ListQuery,
    ) -> Result<Option<Vec<PackageSummary>>, RepoError> {
        Ok(self.package_page(repo, arch, query)?.map(|page| page.packages))
    }

    /// [`Repository::packages`] with the number of matching packages in all pages.
    pub fn package_page(
        &self,
        repo: &RepoName,
        arch: &Arch,
        query: &ListQuery,
    ) -> Result<Option<PackagePage>, RepoError> {
        if !self.store().has_arch_repo(repo, arch).map_err(store_err)? {
            return Ok(None);
        }
        let needle = query.query.as_deref().map(str::to_lowercase).filter(|n| !n.is_empty());
        let matches = |s: &PackageSummary| match &needle {
            None => true,
            Some(n) => {
                s.name.as_str().to_lowercase().contains(n)
                    || s.desc.as_deref().is_some_and(|d| d.to_lowercase().contains(n))
            }
        };
        let page = query.page();
        let summaries = self.summaries_of(repo, arch)?;
        let mut all: Vec<&PackageSummary> = summaries.iter().filter(|s| matches(s)).collect();
        let sort = query.sort.unwrap_or_default();
        if sort != PackageSort::Name {
            all.sort_by(|a, b| sort.compare(a, b));
        }
        if query.desc == Some(true) {
            all.reverse();
        }
        let total = all.len();
        let packages = all.into_iter().skip(page.offset).take(page.limit).cloned().collect();
        Ok(Some(PackagePage { total, offset: page.offset, packages }))
    }

    /// One package of an arch-repo with every `.PKGINFO` field and a page of its file list (see
    /// [`FilesQuery`]). `None`: no such package there.
    pub fn package(
        &self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
        query: &FilesQuery,
    ) -> Result<Option<PackageDetail>, RepoError> {
        let Some((summary, package)) = self.store().package(repo, arch, name).map_err(store_err)? else {
            return Ok(None);
        };
        let page = query.page();
        let files = self
            .store()
            .file_page(repo, arch, name, page.offset, page.limit, MAX_FILE_PAGE_BYTES)
            .map_err(store_err)?;
        let Some((files, files_total)) = files else { return Ok(None) };
        let history = self.store().history(repo, arch, name).map_err(store_err)?;
        Ok(Some(PackageDetail { summary, info: package.info, files, files_total, history }))
    }

    /// What happened to a package name in an arch-repo, newest first (also for a name that was
    /// removed): the versions published over time and the removals, at most [`super::HISTORY_KEPT`].
    pub fn history(
        &self,
        repo: &RepoName,
        arch: &Arch,
        name: &PkgName,
    ) -> Result<Vec<crate::api::PackageEvent>, RepoError> {
        self.store().history(repo, arch, name).map_err(store_err)
    }

    /// What an arch-repo makes installable, for dependency resolution ([`crate::resolve::Available`]):
    /// each package with its version and `provides`, from [`Source::Target`]. No arch-repo: empty.
    pub fn providers(&self, repo: &RepoName, arch: &Arch) -> Result<Vec<Provider>, RepoError> {
        let mut out = Vec::new();
        for summary in self.store().summaries(repo, arch).map_err(store_err)? {
            let Some((_, package)) = self.store().package(repo, arch, &summary.name).map_err(store_err)?
            else {
                continue;
            };
            // Provisions were checked when the package was published; one that does not parse as a
            // dependency string would match nothing in pacman either.
            let provides = package.info.provides.iter().filter_map(|p| Dependency::parse(p).ok()).collect();
            out.push(Provider {
                name: summary.name,
                version: summary.version,
                provides,
                source: Source::Target(repo.clone()),
            });
        }
        Ok(out)
    }
}
