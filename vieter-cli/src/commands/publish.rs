//! `vieter publish <repo> <pkg>...`

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use libvieter::api::PublishResult;

use crate::output::table;
use crate::Context;

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Repository to publish into.
    repo: String,
    /// Package files (.pkg.tar.zst, .xz, .gz, .bz2 or .tar).
    #[arg(required = true)]
    packages: Vec<PathBuf>,
    /// Send each package's detached signature `FILE.sig` (as `makepkg --sign` or `gpg --detach-sign`
    /// leave it next to the file) with the upload; the server verifies it against its trusted_keys.
    #[arg(long)]
    sig: bool,
}

pub async fn run(ctx: &Context, args: PublishArgs) -> Result<(), String> {
    let client = ctx.client()?;
    let show_progress = std::io::stderr().is_terminal() && !ctx.out.quiet && !ctx.out.json;
    let mut landed: Vec<PublishResult> = Vec::new();
    let mut failures = Vec::new();
    for path in &args.packages {
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let bar = if show_progress { ProgressBar::new(len) } else { ProgressBar::hidden() };
        if let Ok(style) =
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        let progress = bar.clone();
        let published = if args.sig {
            let sig_path = format!("{}.sig", path.display());
            match std::fs::read(&sig_path) {
                Ok(signature) => {
                    client
                        .publish_signed(&args.repo, path, signature, move |sent| progress.set_position(sent))
                        .await
                }
                Err(e) => {
                    bar.abandon();
                    failures.push(format!("{}: reading its signature {sig_path}: {e}", path.display()));
                    continue;
                }
            }
        } else {
            client.publish(&args.repo, path, move |sent| progress.set_position(sent)).await
        };
        match published {
            Ok(result) => {
                bar.finish_and_clear();
                landed.push(result);
            }
            Err(e) => {
                bar.abandon();
                failures.push(format!("{}: {e}", path.display()));
            }
        }
    }
    ctx.out.print(&landed, || {
        let mut t = table(["NAME", "VERSION", "ARCHS"]);
        for r in &landed {
            let archs = r.archs.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ");
            t.add_row(vec![r.name.to_string(), r.version.to_string(), format!("{}/{archs}", args.repo)]);
        }
        t
    })?;
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} packages failed:\n  {}",
            failures.len(),
            args.packages.len(),
            failures.join("\n  ")
        ))
    }
}
