//! The agent's settings: a TOML file (`--config`), overridden by `VIETER_<KEY>` variables;
//! `VIETER_<KEY>_FILE` reads a value from a file (for the API key).

use std::path::{Path, PathBuf};

pub use libvieter::config::ConfigError;
use libvieter::config::KeyKind::{self, Float, Integer, String as Text};
/// How build containers reach the network (`bridge` or `host`).
pub use libvieter::container::Network;
use libvieter::name::Arch;
use serde::Deserialize;

/// The agent's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// The Vieter server, e.g. `http://vieter.example:8000`.
    pub address: String,
    /// The agent key (or the admin key).
    pub api_key: Option<String>,
    /// This agent's id (letters, digits, `._:@-`); by default generated once and kept in the data dir.
    pub id: Option<String>,
    /// The architecture this agent builds for.
    pub arch: Arch,
    /// Builds run at the same time.
    pub capacity: u32,
    /// Podman's REST socket (`podman system service --time=0 unix://PATH`).
    pub podman_socket: PathBuf,
    /// `bridge` or `host`.
    pub network: Network,
    /// The server's address as seen from inside a build container (pacman's `Server =`); `address` by
    /// default.
    pub repo_server: Option<String>,
    /// Seconds a prepared builder image is reused before a fresh one is made.
    pub image_rebuild_interval: u64,
    /// Memory limit of a build container in bytes (0: none).
    pub memory_limit: i64,
    /// CPUs a build container may use (0: no limit).
    pub cpus: f64,
    /// Processes a build container may run (0: no limit).
    pub pids_limit: i64,
    /// Where packages are staged before upload and the generated id is kept.
    pub data_dir: PathBuf,
    /// Seconds a poll waits on the server for a job.
    pub poll_wait: u64,
    /// `error`, `warn`, `info`, `debug`, `trace` or a tracing filter.
    pub log_level: String,
    /// Base URL of AUR git repositories.
    pub aur_base: String,
    /// Seconds running builds may take to finish after SIGTERM before they are handed back.
    pub shutdown_grace: u64,
    /// Attempts to upload each package before the job fails.
    pub upload_attempts: u32,
}

fn default_socket() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !is_root() => Path::new(&dir).join("podman/podman.sock"),
        _ => PathBuf::from("/run/podman/podman.sock"),
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}

/// The architecture of this machine, in pacman's spelling.
pub fn host_arch() -> Arch {
    let arch = match std::env::consts::ARCH {
        "x86" => "i686",
        "arm" => "armv7h",
        other => other,
    };
    Arch::new(arch).unwrap_or_else(|_| Arch::new("x86_64").unwrap_or_else(|_| unreachable!("a valid arch")))
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            address: "http://127.0.0.1:8000".to_owned(),
            api_key: None,
            id: None,
            arch: host_arch(),
            capacity: 1,
            podman_socket: default_socket(),
            network: Network::Bridge,
            repo_server: None,
            image_rebuild_interval: 7 * 24 * 3600,
            memory_limit: 0,
            cpus: 0.0,
            pids_limit: 0,
            data_dir: PathBuf::from("./agent-data"),
            poll_wait: 30,
            log_level: "info".to_owned(),
            aur_base: libvieter::target::AUR_BASE.to_owned(),
            shutdown_grace: 600,
            upload_attempts: 3,
        }
    }
}

const KEYS: &[(&str, KeyKind)] = &[
    ("address", Text),
    ("api_key", Text),
    ("id", Text),
    ("arch", Text),
    ("capacity", Integer),
    ("podman_socket", Text),
    ("network", Text),
    ("repo_server", Text),
    ("image_rebuild_interval", Integer),
    ("memory_limit", Integer),
    ("cpus", Float),
    ("pids_limit", Integer),
    ("data_dir", Text),
    ("poll_wait", Integer),
    ("log_level", Text),
    ("aur_base", Text),
    ("shutdown_grace", Integer),
    ("upload_attempts", Integer),
];

impl AgentConfig {
    /// Loads the file (if given), then applies `VIETER_*` variables from `env`, then checks the values.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<AgentConfig, ConfigError> {
        let config: AgentConfig = libvieter::config::load_layered(file, env, KEYS)?;
        let invalid = |message: String| ConfigError::Parse { path: "configuration".into(), message };
        if config.capacity == 0 {
            return Err(invalid("capacity must be at least 1".into()));
        }
        if config.upload_attempts == 0 {
            return Err(invalid("upload_attempts must be at least 1".into()));
        }
        if config.arch.is_any() {
            return Err(invalid("arch cannot be 'any': an agent builds for one machine architecture".into()));
        }
        if !(config.cpus >= 0.0 && config.cpus.is_finite()) {
            return Err(invalid(format!("cpus must be a positive number, not {}", config.cpus)));
        }
        vieter_client::Client::new(&config.address, None).map_err(|e| invalid(e.to_string()))?;
        Ok(config)
    }

    /// The server address build containers use.
    pub fn repo_server(&self) -> &str {
        self.repo_server.as_deref().unwrap_or(&self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_and_env() {
        let c = AgentConfig::load(None, env(&[])).unwrap();
        assert_eq!((c.capacity, c.network, c.repo_server()), (1, Network::Bridge, "http://127.0.0.1:8000"));
        let c = AgentConfig::load(
            None,
            env(&[("VIETER_NETWORK", "host"), ("VIETER_CPUS", "1.5"), ("VIETER_CAPACITY", "4")]),
        )
        .unwrap();
        assert_eq!((c.network, c.cpus, c.capacity), (Network::Host, 1.5, 4));
    }

    #[test]
    fn bad_values_are_named() {
        for (var, value, expected) in [
            ("VIETER_CAPACITY", "0", "capacity must be at least 1"),
            ("VIETER_NETWORK", "wifi", "wifi"),
            ("VIETER_ARCH", "any", "cannot be 'any'"),
            ("VIETER_ADDRESS", "vieter:8000", "invalid server address"),
            ("VIETER_CPUS", "-1", "cpus must be a positive number"),
        ] {
            let e = AgentConfig::load(None, env(&[(var, value)])).unwrap_err().to_string();
            assert!(e.contains(expected), "{var}={value}: {e}");
        }
    }
}
