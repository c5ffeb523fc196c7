//! What a repository shows: its repositories with their sizes, a page of an arch-repo's packages, one
//! package with a page of its file list. Paging defaults and limits are [`crate::api`]'s; the search is
//! a case-insensitive substring of the name or the description.

use std::collections::BTreeMap;

use crate::api::{
    ArchRepoInfo, FilesQuery, ListQuery, PackageDetail, PackagePage, PackageSort, PackageSummary, RepoInfo,
    MAX_FILE_PAGE_BYTES,
};
use crate::depend::Dependency;
use crate::name::{Arch, PkgName, RepoName};
use crate::resolve::{Provider, Source};

use super::service::store_err;
use super::{BlobStore, RepoError, RepoStore, Repository};

impl<S: RepoStore, B: BlobStore> Repository<S, B> {
    /// Every repository with its architectures: package count, total size, last change. In name order.
    pub fn repos(&self) -> Result<Vec<RepoInfo>, RepoError> {
        let mut by_repo: BTreeMap<String, Vec<ArchRepoInfo>> = BTreeMap::new();
        for (repo, arch, record) in self.store().arch_repos().map_err(store_err)? {
            let summaries = self.store().summaries(&repo, &arch).map_err(store_err)?;
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
        let mut all: Vec<PackageSummary> =
            self.store().summaries(repo, arch).map_err(store_err)?.into_iter().filter(matches).collect();
        let sort = query.sort.unwrap_or_default();
        if sort != PackageSort::Name {
            all.sort_by(|a, b| sort.compare(a, b));
        }
        if query.desc == Some(true) {
            all.reverse();
        }
        let total = all.len();
        let packages = all.into_iter().skip(page.offset).take(page.limit).collect();
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
