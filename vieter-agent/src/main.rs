//! `vieter-agent [--config FILE]`: see the `vieter_agent` library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use vieter_agent::config::AgentConfig;

/// Vieter's build agent: polls the server for jobs and builds them in Podman containers.
///
/// Every setting can also be given as an environment variable VIETER_<KEY> (e.g. VIETER_ADDRESS,
/// VIETER_API_KEY, VIETER_PODMAN_SOCKET); VIETER_<KEY>_FILE reads the value from a file. The first
/// SIGTERM/SIGINT stops taking jobs and lets running builds finish; a second one hands them back.
#[derive(Debug, Parser)]
#[command(name = "vieter-agent", version)]
struct Args {
    /// TOML configuration file (keys: address, api_key, id, arch, capacity, podman_socket, network,
    /// repo_server, image_rebuild_interval, memory_limit, cpus, pids_limit, data_dir, poll_wait,
    /// log_level, aur_base, shutdown_grace, upload_attempts).
    #[arg(long, short, env = "VIETER_CONFIG")]
    config: Option<PathBuf>,
}

/// Counts SIGTERM and SIGINT: 1 after the first, 2 after the second.
async fn count_signals(tx: watch::Sender<u32>) {
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        tracing::error!("cannot listen for signals");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tx.send_modify(|n| *n += 1);
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match AgentConfig::load(args.config.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vieter-agent: configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vieter-agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let (tx, rx) = watch::channel(0u32);
        tokio::spawn(count_signals(tx));
        let mut first = rx.clone();
        let mut second = rx;
        let shutdown = async move {
            let _ = first.wait_for(|n| *n >= 1).await;
        };
        let force = async move {
            let _ = second.wait_for(|n| *n >= 2).await;
        };
        vieter_agent::agent::run(config, shutdown, force).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vieter-agent: {e}");
            ExitCode::FAILURE
        }
    }
}
