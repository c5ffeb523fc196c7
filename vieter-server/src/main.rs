//! `vieter-server [--config FILE]`: see the `vieter_server` library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use vieter_server::config::Config;

/// Vieter's server: pacman repositories over HTTP.
///
/// Every setting can also be given as an environment variable VIETER_<KEY> (e.g. VIETER_ADDRESS,
/// VIETER_DATA_DIR, VIETER_API_KEY); VIETER_<KEY>_FILE reads the value from a file.
#[derive(Debug, Parser)]
#[command(name = "vieter-server", version)]
struct Args {
    /// TOML configuration file (keys: address, data_dir, api_key, agent_key, default_arch, log_level,
    /// max_upload_size, db_format, metrics_auth).
    #[arg(long, short, env = "VIETER_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(args.config.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vieter-server: configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vieter-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let app = tokio::task::spawn_blocking(move || vieter_server::open(config))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        vieter_server::serve(app, vieter_server::shutdown::signal()).await.map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vieter-server: {e}");
            ExitCode::FAILURE
        }
    }
}
