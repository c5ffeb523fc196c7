//! `vieter`: the command line of the Vieter package platform.

mod commands;
mod config;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

use output::Output;
use vieter_client::Client;

/// Manage a Vieter package server: publish packages, browse repositories, build targets.
#[derive(Debug, Parser)]
#[command(name = "vieter", version, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// Server address (default: from the config file, else http://127.0.0.1:8000).
    #[arg(long, global = true, env = "VIETER_ADDRESS")]
    server: Option<String>,
    /// API key sent as X-Api-Key.
    #[arg(long, global = true, env = "VIETER_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Config file (default: ~/.config/vieter/config.toml).
    #[arg(long, global = true, env = "VIETER_CONFIG")]
    config: Option<PathBuf>,
    /// Print the API's data as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Print nothing but errors.
    #[arg(long, short, global = true)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Upload package files to a repository.
    Publish(commands::publish::PublishArgs),
    /// Browse and remove repository contents.
    #[command(subcommand)]
    Repos(commands::repos::ReposCommand),
    /// Build targets: list, add, edit, remove, build.
    #[command(subcommand)]
    Targets(commands::builds::TargetsCommand),
    /// Jobs: list, info, cancel, retry.
    #[command(subcommand)]
    Jobs(commands::builds::JobsCommand),
    /// Print a job's build log.
    Logs {
        job: u64,
        /// Keep streaming until the job ends.
        #[arg(long, short)]
        follow: bool,
    },
    /// Build agents.
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// The AUR as the server sees it: dependency closures of `aur` targets.
    #[command(subcommand)]
    Aur(commands::aur::AurCommand),
    /// The keys that sign the server's packages and databases, and how to make pacman trust them.
    Keys(commands::keys::KeysArgs),
    /// Copy a Vieter 0.6 server's targets and repositories to this server.
    Migrate(commands::migrate::MigrateArgs),
    /// Add packages to a local repository database, like pacman's repo-add (no server needed).
    RepoAdd(commands::repo_add::RepoAddArgs),
    /// Print the next run times of a schedule (no server needed).
    Schedule(commands::schedule::ScheduleArgs),
    /// Write the config file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write man pages into a directory.
    Man {
        /// Directory to write vieter.1 and one page per subcommand into.
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum AgentsCommand {
    /// Every agent seen: arch, capacity, last contact, running jobs.
    List,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Write a commented config file (mode 0600) with the current --server and --api-key.
    Init {
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
}

/// What every command that talks to a server needs.
pub struct Context {
    pub out: Output,
    address: String,
    api_key: Option<String>,
}

impl Context {
    /// The API client, or an error naming the bad address.
    pub fn client(&self) -> Result<Client, String> {
        Client::new(&self.address, self.api_key.clone()).map_err(|e| e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("vieter: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let out = Output { json: cli.global.json, quiet: cli.global.quiet };
    let config_path = cli.global.config.clone().or_else(config::default_path);
    let file = match &config_path {
        Some(path) => config::load(path)?,
        None => config::FileConfig::default(),
    };
    let address = cli.global.server.or(file.address).unwrap_or_else(|| config::DEFAULT_ADDRESS.to_owned());
    let api_key = cli.global.api_key.or(file.api_key);
    let ctx = Context { out, address, api_key };
    match cli.command {
        Command::Publish(args) => block_on(commands::publish::run(&ctx, args)),
        Command::Repos(cmd) => block_on(commands::repos::run(&ctx, cmd)),
        Command::Migrate(args) => block_on(commands::migrate::run(&ctx, args)),
        Command::RepoAdd(args) => commands::repo_add::run(&ctx, args),
        Command::Targets(cmd) => block_on(commands::builds::targets(&ctx, cmd)),
        Command::Jobs(cmd) => block_on(commands::builds::jobs(&ctx, cmd)),
        Command::Logs { job, follow } => block_on(commands::builds::logs(&ctx, job, follow)),
        Command::Agents(AgentsCommand::List) => block_on(commands::builds::agents(&ctx)),
        Command::Aur(cmd) => block_on(commands::aur::run(&ctx, cmd)),
        Command::Keys(args) => block_on(commands::keys::run(&ctx, args)),
        Command::Schedule(args) => commands::schedule::run(&ctx, args),
        Command::Config(ConfigCommand::Init { force }) => {
            let path = config_path.ok_or("no config path: set --config, HOME or XDG_CONFIG_HOME")?;
            config::init(&path, &ctx.address, ctx.api_key.as_deref(), force)?;
            ctx.out.say(format!("wrote {}", path.display()));
            Ok(())
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "vieter", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { dir } => write_man_pages(&dir),
    }
}

fn block_on<F: std::future::Future<Output = Result<(), String>>>(future: F) -> Result<(), String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?
        .block_on(future)
}

fn write_man_pages(dir: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    fn write(dir: &std::path::Path, cmd: clap::Command, name: String) -> Result<(), String> {
        let path = dir.join(format!("{name}.1"));
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd.clone().name(name.clone()))
            .render(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::write(&path, buf).map_err(|e| format!("{}: {e}", path.display()))?;
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            write(dir, sub.clone(), format!("{name}-{}", sub.get_name()))?;
        }
        Ok(())
    }
    let mut cmd = Cli::command();
    cmd.build();
    write(dir, cmd, "vieter".to_owned())
}
