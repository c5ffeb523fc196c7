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

/// glibc's malloc gives each thread that allocates an arena of its own (up to 8 per core) and keeps
/// what is freed in each: the blocking pool's many threads (uploads, archives, pages) left a server
/// at 140 MiB RSS after 750 publishes into a 10,000-package arch-repo, where two arenas keep it at
/// 71 MiB at the same speed (BENCHMARKS.md, "Web interface"). Set before any other thread exists;
/// `MALLOC_ARENA_MAX` in the environment still decides when it is set.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt sets one malloc parameter; no other thread exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
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
