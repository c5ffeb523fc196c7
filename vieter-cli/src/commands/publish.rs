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
    /// How many packages are uploaded at once (the server commits those that arrive together in one
    /// transaction and one database rewrite).
    #[arg(long, short = 'j', default_value_t = 4)]
    jobs: usize,
}

pub async fn run(ctx: &Context, args: PublishArgs) -> Result<(), String> {
    use futures_util::StreamExt;
    let client = ctx.client()?;
    let jobs = args.jobs.max(1);
    let show_progress = std::io::stderr().is_terminal() && !ctx.out.quiet && !ctx.out.json;
    let total: u64 = args.packages.iter().map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum();
    let bar = if show_progress { ProgressBar::new(total) } else { ProgressBar::hidden() };
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    let count = args.packages.len();
    let finished = std::sync::atomic::AtomicUsize::new(0);
    let message = |done: usize| format!("{done}/{count} packages");
    bar.set_message(message(0));
    // Up to `jobs` uploads at once; the server commits those that wait together. Results keep the order
    // of the command line.
    let (repo, sign) = (args.repo.as_str(), args.sig);
    let outcomes: Vec<Result<PublishResult, String>> = futures_util::stream::iter(&args.packages)
        .map(|path| {
            let (client, bar, finished, message) = (&client, bar.clone(), &finished, &message);
            async move {
                let sent_before = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
                let progress = {
                    let (bar, sent_before) = (bar.clone(), sent_before.clone());
                    move |sent: u64| {
                        let before = sent_before.swap(sent, std::sync::atomic::Ordering::Relaxed);
                        bar.inc(sent.saturating_sub(before));
                    }
                };
                let published = if sign {
                    let sig_path = format!("{}.sig", path.display());
                    match std::fs::read(&sig_path) {
                        Ok(signature) => client
                            .publish_signed(repo, path, signature, progress)
                            .await
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(format!("reading its signature {sig_path}: {e}")),
                    }
                } else {
                    client.publish(repo, path, progress).await.map_err(|e| e.to_string())
                };
                let done = finished.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                bar.set_message(message(done));
                published.map_err(|e| format!("{}: {e}", path.display()))
            }
        })
        .buffered(jobs)
        .collect()
        .await;
    bar.finish_and_clear();
    let mut landed: Vec<PublishResult> = Vec::new();
    let mut failures = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(result) => landed.push(result),
            Err(e) => failures.push(e),
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
