//! `vieter repo-add [--md5] [--remove] <db> <pkg>...`: pacman's repo-add, offline, on libvieter.

use std::path::PathBuf;

use clap::Args;
use libvieter::db::DbFormat;
use libvieter::fs::{repo_add, AddOptions, Added};

use crate::Context;

#[derive(Debug, Args)]
pub struct RepoAddArgs {
    /// Write the pacman <= 6.0 format (with %MD5SUM%), as Debian's and older Arch's repo-add do.
    #[arg(long)]
    md5: bool,
    /// Delete the package file (and its .sig) of each replaced version, like repo-add -R.
    #[arg(long, short = 'R')]
    remove: bool,
    /// The database, REPO.db.tar.gz; REPO.files.tar.gz and the REPO.db/REPO.files links go next to it.
    db: PathBuf,
    /// Package files to add; a newer or older version of the same name replaces the present one.
    #[arg(required = true)]
    packages: Vec<PathBuf>,
}

pub fn run(ctx: &Context, args: RepoAddArgs) -> Result<(), String> {
    let options = AddOptions {
        format: if args.md5 { DbFormat::WithMd5 } else { DbFormat::Current },
        remove_replaced: args.remove,
        mtime: chrono::Utc::now().timestamp().max(0) as u64,
    };
    for added in repo_add(&args.db, &args.packages, &options).map_err(|e| e.to_string())? {
        ctx.out.say(match added {
            Added::Replaced { old, version, .. } => format!("replaced {old} with {version}"),
            Added::Updated { name, version } => format!("updated {name}-{version}"),
            Added::New { name, version } => format!("added {name}-{version}"),
        });
    }
    Ok(())
}
