//! `vieter repos list|packages|info|create|remove`

use std::io::{BufRead, IsTerminal, Write};

use clap::Subcommand;
use libvieter::api::ListQuery;

use crate::output::{size, table};
use crate::Context;

#[derive(Debug, Subcommand)]
pub enum ReposCommand {
    /// List repositories with their architectures, package counts and sizes.
    List,
    /// List the packages of a repository.
    Packages {
        repo: String,
        /// Architecture (default: every architecture of the repository).
        #[arg(long)]
        arch: Option<String>,
        /// Only packages whose name or description contains this text.
        #[arg(long)]
        query: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        offset: Option<usize>,
    },
    /// Show everything about one package: metadata, dependencies, files.
    Info { repo: String, arch: String, name: String },
    /// Create an empty architecture of a repository (pacman can sync it at once; later `any`
    /// packages of the repository go to it too). One that exists is left alone.
    Create { repo: String, arch: String },
    /// Remove a repository, one architecture of it, or one package.
    Remove {
        repo: String,
        arch: Option<String>,
        name: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
}

pub async fn run(ctx: &Context, cmd: ReposCommand) -> Result<(), String> {
    let client = ctx.client()?;
    let err = |e: vieter_client::ClientError| e.to_string();
    match cmd {
        ReposCommand::List => {
            let repos = client.repos().await.map_err(err)?;
            ctx.out.print(&repos, || {
                let mut t = table(["REPO", "ARCH", "PACKAGES", "SIZE", "LAST CHANGE"]);
                for r in &repos {
                    for a in &r.archs {
                        let when = a.last_change.map(|t| t.format("%Y-%m-%d %H:%M").to_string());
                        t.add_row(vec![
                            r.name.clone(),
                            a.arch.to_string(),
                            a.packages.to_string(),
                            size(a.size),
                            when.unwrap_or_default(),
                        ]);
                    }
                }
                t
            })
        }
        ReposCommand::Packages { repo, arch, query, limit, offset } => {
            let archs: Vec<String> = match arch {
                Some(a) => vec![a],
                None => {
                    let repos = client.repos().await.map_err(err)?;
                    let found = repos.into_iter().find(|r| r.name == repo);
                    let found = found.ok_or_else(|| format!("repository {repo:?} not found"))?;
                    found.archs.into_iter().map(|a| a.arch.to_string()).collect()
                }
            };
            let q = ListQuery { query, limit, offset, ..ListQuery::default() };
            let mut all = Vec::new();
            for a in &archs {
                for p in client.packages(&repo, a, &q).await.map_err(err)? {
                    all.push((a.clone(), p));
                }
            }
            let data: Vec<_> = all.iter().map(|(_, p)| p).collect();
            ctx.out.print(&data, || {
                let mut t = table(["ARCH", "NAME", "VERSION", "SIZE", "DESCRIPTION"]);
                for (a, p) in &all {
                    t.add_row(vec![
                        a.clone(),
                        p.name.to_string(),
                        p.version.to_string(),
                        size(p.csize),
                        p.desc.clone().unwrap_or_default(),
                    ]);
                }
                t
            })
        }
        ReposCommand::Info { repo, arch, name } => {
            let p = client.package(&repo, &arch, &name).await.map_err(err)?;
            ctx.out.print(&p, || {
                let mut t = table(["FIELD", "VALUE"]);
                let i = &p.info;
                let join = |v: &[String]| v.join("\n");
                let rows: Vec<(&str, String)> = vec![
                    ("Name", p.summary.name.to_string()),
                    ("Version", p.summary.version.to_string()),
                    ("Base", i.base.as_ref().map(|b| b.to_string()).unwrap_or_default()),
                    ("Description", i.desc.clone().unwrap_or_default()),
                    ("Architecture", i.arch.to_string()),
                    ("URL", i.url.clone().unwrap_or_default()),
                    ("Licenses", join(&i.licenses)),
                    ("Groups", join(&i.groups)),
                    ("Provides", join(&i.provides)),
                    ("Depends On", join(&i.depends)),
                    ("Optional Deps", join(&i.optdepends)),
                    ("Conflicts With", join(&i.conflicts)),
                    ("Replaces", join(&i.replaces)),
                    ("File", p.summary.filename.clone()),
                    ("Download Size", size(p.summary.csize)),
                    ("Installed Size", size(p.summary.isize)),
                    ("Packager", i.packager.clone().unwrap_or_default()),
                    ("SHA-256", p.summary.sha256.clone()),
                    ("Published", p.summary.published_at.to_rfc3339()),
                    ("Files", p.files_total.to_string()),
                ];
                for (k, v) in rows {
                    t.add_row(vec![k.to_owned(), v]);
                }
                t
            })
        }
        ReposCommand::Create { repo, arch } => {
            let created = client.create_arch_repo(&repo, &arch).await.map_err(err)?;
            let data = serde_json::json!({ "repo": repo, "arch": arch, "created": created });
            ctx.out.print(&data, || {
                let mut t = table(["REPO", "ARCH", "RESULT"]);
                let result = if created { "created" } else { "exists already, left alone" };
                t.add_row(vec![repo.clone(), arch.clone(), result.to_owned()]);
                t
            })
        }
        ReposCommand::Remove { repo, arch, name, yes } => {
            let what = match (&arch, &name) {
                (Some(a), Some(n)) => format!("package {n} from {repo}/{a}"),
                (Some(a), None) => format!("architecture {a} of repository {repo} with all its packages"),
                _ => format!("repository {repo} with all its packages"),
            };
            if !yes && !confirm(&format!("Remove {what}?"))? {
                return Err("cancelled: nothing was removed".to_owned());
            }
            client.remove(&repo, arch.as_deref(), name.as_deref()).await.map_err(err)?;
            ctx.out.say(format!("removed {what}"));
            Ok(())
        }
    }
}

/// Asks on the terminal; without a terminal there is nobody to ask, so `--yes` is required.
fn confirm(question: &str) -> Result<bool, String> {
    if !std::io::stdin().is_terminal() {
        return Err(format!("{question} Refusing without a terminal to confirm on: pass --yes"));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(|e| e.to_string())?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}
