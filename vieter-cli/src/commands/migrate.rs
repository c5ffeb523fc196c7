//! `vieter migrate --from URL --from-api-key KEY [--dry-run] [--repo NAME]... [--arch ARCH]...`: copies
//! a Vieter 0.6 server's targets and repositories to this server.
//!
//! Vieter 0.6 has no route that lists its repositories: the arch-repos copied are the targets' repos
//! times the targets' arches, plus the `--repo` and `--arch` given. An arch-repo the old server does not
//! have (its db is 404) is reported and skipped; each one it has is created here first (so one that
//! holds only `any` packages exists here too). Downloads are capped: a db at `MAX_OLD_DB_SIZE`, a
//! package at the size its db entry gives. The rules (target shapes, what counts as the same
//! target, what the db says about each file) are `libvieter::compat`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use libvieter::api::{ListQuery, TargetFilter, MAX_PAGE};
use libvieter::compat::{
    listed_packages, plan_targets, target_repos, ListedPackage, TargetPlan, MAX_OLD_DB_SIZE,
};
use libvieter::db::Database;
use vieter_client::{Client, ClientError};

use crate::Context;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Address of the Vieter 0.6 server to copy from.
    #[arg(long)]
    from: String,
    /// API key of the old server.
    #[arg(long, env = "VIETER_FROM_API_KEY", hide_env_values = true)]
    from_api_key: String,
    /// Print what would be done; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// A repository to copy besides the ones the targets publish to (Vieter 0.6 cannot list them).
    #[arg(long = "repo", value_name = "NAME")]
    repos: Vec<String>,
    /// An architecture to look for besides the targets' ones (e.g. one holding only uploaded packages).
    #[arg(long = "arch", value_name = "ARCH")]
    arches: Vec<String>,
}

/// A package to copy, found in the db of `repo/arch` on the old server.
struct ToCopy {
    repo: String,
    arch: String,
    package: ListedPackage,
}

pub async fn run(ctx: &Context, args: MigrateArgs) -> Result<(), String> {
    let here = ctx.client()?;
    let old = Client::new(&args.from, Some(args.from_api_key.clone())).map_err(|e| e.to_string())?;
    let mut failures: Vec<String> = Vec::new();
    let dry = if args.dry_run { "(dry run) " } else { "" };

    // Targets.
    let old_targets =
        old.vieter06_targets().await.map_err(|e| format!("reading the targets of {}: {e}", args.from))?;
    let here_targets = all_targets(&here).await.map_err(|e| format!("reading the targets here: {e}"))?;
    let plan = plan_targets(&old_targets, &here_targets);
    let (mut created, mut exist) = (0, 0);
    for step in &plan {
        match step {
            TargetPlan::Exists { old, existing } => {
                exist += 1;
                ctx.out.say(format!("target {old}: exists here as target {existing}, left alone"));
            }
            TargetPlan::Duplicate { old, of } => {
                ctx.out.say(format!("target {old}: the same as old target {of}, created once"));
            }
            TargetPlan::Create { old, new } => {
                let what = format!(
                    "{} {}{}{} -> {} ({})",
                    new.kind,
                    new.url,
                    new.branch.as_deref().map(|b| format!(" branch {b}")).unwrap_or_default(),
                    new.path.as_deref().map(|p| format!(" path {p}")).unwrap_or_default(),
                    new.repo,
                    new.arch.as_ref().map(|a| a.join(", ")).unwrap_or_else(|| "default arch".to_owned()),
                );
                if args.dry_run {
                    ctx.out.say(format!("{dry}target {old}: would create {what}"));
                    created += 1;
                    continue;
                }
                match here.create_target(new).await {
                    Ok(t) => {
                        created += 1;
                        ctx.out.say(format!("target {old}: created as target {}: {what}", t.id));
                    }
                    Err(e) => failures.push(format!("target {old} ({what}): {e}")),
                }
            }
        }
    }
    ctx.out.say(format!(
        "{dry}targets: {} on the old server, {created} {}, {exist} already here",
        old_targets.len(),
        if args.dry_run { "to create" } else { "created" }
    ));

    // Repositories: the arch-repos to look for.
    let (mut repos, mut arches) = target_repos(&old_targets);
    repos.extend(args.repos.iter().cloned());
    arches.extend(args.arches.iter().cloned());
    let mut copies: BTreeMap<String, Vec<ToCopy>> = BTreeMap::new();
    let mut skipped = 0usize;
    for repo in &repos {
        for arch in &arches {
            let db_path = Client::repo_file_path(repo, arch, &format!("{repo}.db"));
            let bytes = match old.get_bytes(&db_path, MAX_OLD_DB_SIZE).await {
                Ok(b) => b,
                Err(ClientError::NotFound { .. }) => {
                    ctx.out.say(format!("{repo}/{arch}: not on the old server"));
                    continue;
                }
                Err(e) => {
                    failures.push(format!("{repo}/{arch}: reading its db: {e}"));
                    continue;
                }
            };
            let listed = match Database::read(&bytes[..])
                .map_err(|e| e.to_string())
                .and_then(|db| listed_packages(&db).map_err(|e| e.to_string()))
            {
                Ok(l) => l,
                Err(e) => {
                    failures.push(format!("{repo}/{arch}: its db: {e}"));
                    continue;
                }
            };
            let present =
                published_here(&here, repo, arch).await.map_err(|e| format!("{repo}/{arch} here: {e}"))?;
            // The arch-repo itself, before any package: one holding only `any` packages exists here
            // only if created (an `any` package goes to the arch-repos the repository has).
            if args.dry_run {
                if present.is_empty() {
                    ctx.out.say(format!("{dry}{repo}/{arch}: would create the arch-repo"));
                }
            } else {
                match here.create_arch_repo(repo, arch).await {
                    Ok(true) => ctx.out.say(format!("{repo}/{arch}: created the arch-repo")),
                    Ok(false) => {}
                    Err(e) => {
                        failures.push(format!("{repo}/{arch}: creating the arch-repo: {e}"));
                        continue;
                    }
                }
            }
            let total = listed.len();
            let todo: Vec<ToCopy> = listed
                .into_iter()
                .filter(|p| !present.contains(&p.sha256))
                .map(|package| ToCopy { repo: repo.clone(), arch: arch.clone(), package })
                .collect();
            skipped += total - todo.len();
            ctx.out.say(format!(
                "{dry}{repo}/{arch}: {total} packages, {} to copy, {} already here",
                todo.len(),
                total - todo.len()
            ));
            copies.entry(repo.clone()).or_default().extend(todo);
        }
    }

    let mut copied = 0usize;
    if args.dry_run {
        for c in copies.values().flatten() {
            ctx.out.say(format!("{dry}would copy {}/{}/{}", c.repo, c.arch, c.package.filename));
        }
    } else {
        let count: usize = copies.values().map(Vec::len).sum();
        let show = std::io::stderr().is_terminal() && !ctx.out.quiet && !ctx.out.json;
        let bar = if show { ProgressBar::new(count as u64) } else { ProgressBar::hidden() };
        if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} packages") {
            bar.set_style(style.progress_chars("=> "));
        }
        let tmp = temp_dir().map_err(|e| format!("a temporary directory: {e}"))?;
        for (repo, list) in &mut copies {
            // Packages of one architecture first, so every arch-repo exists here before an `any`
            // package is published (it goes to each existing arch-repo of the repository).
            list.sort_by_key(|c| c.package.arch == "any");
            let mut done: BTreeSet<String> = BTreeSet::new();
            for c in list.iter() {
                bar.set_message(c.package.filename.clone());
                if !done.contains(&c.package.sha256) {
                    match copy_one(&old, &here, &tmp, c).await {
                        Ok(()) => {
                            copied += 1;
                            done.insert(c.package.sha256.clone());
                            bar.suspend(|| {
                                ctx.out.say(format!("copied {repo}/{}/{}", c.arch, c.package.filename))
                            });
                        }
                        Err(e) => failures.push(format!("{repo}/{}/{}: {e}", c.arch, c.package.filename)),
                    }
                }
                bar.inc(1);
            }
        }
        bar.finish_and_clear();
        let _ = std::fs::remove_dir_all(&tmp);
    }
    ctx.out.say(format!(
        "{dry}packages: {} {}, {skipped} already here",
        if args.dry_run { copies.values().map(Vec::len).sum() } else { copied },
        if args.dry_run { "to copy" } else { "copied" }
    ));
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} step(s) failed (run again to resume):\n  {}", failures.len(), failures.join("\n  ")))
    }
}

/// Downloads one package file, checks it against its db entry and publishes it here.
async fn copy_one(old: &Client, here: &Client, tmp: &Path, c: &ToCopy) -> Result<(), String> {
    let file = tmp.join(&c.package.filename);
    let path = Client::repo_file_path(&c.repo, &c.arch, &c.package.filename);
    let result = async {
        // No more than the db says the file has.
        old.download(&path, &file, c.package.csize, |_| {}).await.map_err(|e| format!("download: {e}"))?;
        let f = std::fs::File::open(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let digests =
            libvieter::digest::digest_stream(f, false).map_err(|e| format!("{}: {e}", file.display()))?;
        c.package.verify(digests.size, &digests.sha256).map_err(|e| e.to_string())?;
        here.publish(&c.repo, &file, |_| {}).await.map_err(|e| format!("publish: {e}"))?;
        Ok(())
    }
    .await;
    let _ = std::fs::remove_file(&file);
    result
}

/// Every target here.
async fn all_targets(client: &Client) -> Result<Vec<libvieter::target::Target>, ClientError> {
    let mut out = Vec::new();
    loop {
        let filter =
            TargetFilter { limit: Some(MAX_PAGE), offset: Some(out.len()), ..TargetFilter::default() };
        let page = client.targets(&filter).await?;
        let n = page.len();
        out.extend(page);
        if n < MAX_PAGE {
            return Ok(out);
        }
    }
}

/// The SHA-256 of every package published in `repo/arch` here (none when it does not exist).
async fn published_here(client: &Client, repo: &str, arch: &str) -> Result<BTreeSet<String>, ClientError> {
    let mut out = BTreeSet::new();
    let mut offset = 0;
    loop {
        let query =
            ListQuery { query: None, limit: Some(MAX_PAGE), offset: Some(offset), ..ListQuery::default() };
        let page = match client.packages(repo, arch, &query).await {
            Ok(p) => p,
            Err(ClientError::NotFound { .. }) => return Ok(out),
            Err(e) => return Err(e),
        };
        offset += page.len();
        let n = page.len();
        out.extend(page.into_iter().map(|p| p.sha256.to_ascii_lowercase()));
        if n < MAX_PAGE {
            return Ok(out);
        }
    }
}

/// A fresh private directory for downloads.
fn temp_dir() -> std::io::Result<PathBuf> {
    let base = std::env::temp_dir();
    for n in 0..1000u32 {
        let dir = base.join(format!("vieter-migrate-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free temporary directory name"))
}
