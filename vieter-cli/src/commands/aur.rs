//! `vieter aur resolve`: the dependency closure of AUR packages as the server resolves it for `aur`
//! targets (`POST /api/v1/aur/resolve`), without creating anything.

use clap::{Args, Subcommand};
use libvieter::api::ResolveRequest;
use libvieter::name::{Arch, PkgName, RepoName};
use libvieter::resolve::ClosureReport;

use crate::output::table;
use crate::Context;

#[derive(Debug, Subcommand)]
pub enum AurCommand {
    /// The AUR bases that adding these packages as `aur` targets would build, in build order, and
    /// what the sync databases and the repository already provide.
    Resolve(ResolveArgs),
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// AUR package names (a base is named by one of its packages).
    #[arg(required = true)]
    pub names: Vec<PkgName>,
    /// The repository the builds would publish to: its packages count as installable.
    #[arg(long)]
    pub repo: Option<RepoName>,
    /// The architecture whose sync databases and repository count (default: the server's).
    #[arg(long)]
    pub arch: Option<Arch>,
}

pub async fn run(ctx: &Context, command: AurCommand) -> Result<(), String> {
    let AurCommand::Resolve(args) = command;
    let request = ResolveRequest { names: args.names, repo: args.repo, arch: args.arch };
    request.check()?;
    let report = ctx.client()?.aur_resolve(&request).await.map_err(|e| format!("resolving: {e}"))?;
    ctx.out.print(&report, || closure_table(&report))?;
    for line in super::builds::report_lines(&report) {
        ctx.out.say(line);
    }
    Ok(())
}

/// The bases in build order: a layer's bases need only those of earlier layers.
fn closure_table(report: &ClosureReport) -> comfy_table::Table {
    let mut t = table(["LAYER", "BASE", "VERSION", "PACKAGES", "NEEDS"]);
    for (i, layer) in report.layers.iter().enumerate() {
        for name in layer {
            let Some(base) = report.bases.iter().find(|b| &b.name == name) else { continue };
            let list = |names: &[PkgName]| names.iter().map(PkgName::as_str).collect::<Vec<_>>().join(" ");
            t.add_row([
                (i + 1).to_string(),
                base.name.to_string(),
                base.version.clone(),
                list(&base.packages),
                list(&base.needs),
            ]);
        }
    }
    t
}
