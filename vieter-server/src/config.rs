//! Settings: a TOML file (`--config`), overridden by `VIETER_<KEY>` variables; `VIETER_<KEY>_FILE` reads a
//! value from a file (for secrets). With nothing configured the server starts with these defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use libvieter::builds::BuildSettings;
use libvieter::db::DbFormat;
use libvieter::name::Arch;
use serde::Deserialize;

/// The server's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub address: SocketAddr,
    /// Where the database, package files and repository archives live.
    pub data_dir: PathBuf,
    /// The admin key (`X-Api-Key`). Generated into `{data_dir}/api_key` when not set.
    pub api_key: Option<String>,
    /// Keys agents use, one per line (one per agent, so that one agent cannot act as another): they may
    /// publish, poll and report jobs, nothing else. An agent id is bound to the key it first polled with.
    pub agent_key: Option<String>,
    /// The architecture `any` packages always go to.
    pub default_arch: Arch,
    /// `error`, `warn`, `info`, `debug`, `trace` or a tracing filter.
    pub log_level: String,
    /// Largest accepted upload in bytes.
    pub max_upload_size: u64,
    /// `current` (pacman >= 6.1) or `with_md5` (adds `%MD5SUM%` for pacman <= 6.0).
    pub db_format: DbFormat,
    /// Require an API key for `/api/v1/metrics` (Vieter served it to anyone).
    pub metrics_auth: bool,
    /// Time zone schedules are read in (e.g. `Europe/Brussels`).
    pub timezone: chrono_tz::Tz,
    /// Schedule of targets that have none (Vieter's default: every day at 03:00).
    pub global_schedule: libvieter::schedule::Schedule,
    /// Image builds start from when the target names none.
    pub base_image: String,
    /// Build timeout in seconds when the target sets none.
    pub default_build_timeout: u64,
    /// Seconds a job stays leased without a heartbeat before it is lost.
    pub lease_secs: u64,
    /// Attempts in all for lost jobs and infrastructure failures (1 = never retry).
    pub retry_max_attempts: u32,
    /// Seconds before the first retry (doubling for each further one).
    pub retry_backoff_secs: u64,
    /// Build logs older than this many days are deleted (0 keeps them).
    pub max_log_age: u64,
    /// Seconds a client has to send a complete request head (also the idle time allowed between two
    /// requests on a kept-alive connection).
    pub header_read_timeout: u64,
    /// Seconds a request body may stall (no byte received) before the request is dropped.
    pub body_idle_timeout: u64,
    /// Most connections served at once; further ones wait in the listen backlog. 0: derived from the
    /// process's open-file limit (three quarters of it, the rest left for files and the database).
    pub max_connections: u64,
    /// Largest build log of one job in bytes; past it the log ends with a marker line and the build goes on.
    pub max_log_size: u64,
    /// Most jobs one agent may hold at once (an agent's `capacity` above it is capped).
    pub max_agent_capacity: u32,
    /// Seconds after which an agent that has not been heard from, and holds no job, is forgotten (0: never).
    pub agent_expiry_secs: u64,
    /// Most agent ids one key may have at once (a poll with a new id past it is refused, 403).
    pub max_agents_per_key: u64,
    /// The AUR's RPC v5 endpoint, asked for the dependency closure of `aur` targets and for change
    /// detection (the agent's `aur_base` stays the git base).
    pub aur_rpc_url: String,
    /// pacman sync databases whose packages count as installable when resolving AUR dependencies, one
    /// URL each with `$arch` substituted, e.g. `https://geo.mirror.pkgbuild.com/core/os/$arch/core.db`.
    /// In a variable: separated by spaces.
    pub sync_dbs: Vec<String>,
    /// Seconds between downloads of the sync databases (0: read once, at first use).
    pub sync_db_refresh_secs: u64,
    /// The OpenPGP key that signs every package file and database: an armored secret key without a
    /// passphrase (`VIETER_SIGNING_KEY_FILE=/path/key.asc` reads it from a file), or `generate` (an
    /// Ed25519 key generated on first start into `{data_dir}/signing_key.asc`, mode 0600). Not set:
    /// repositories are unsigned.
    pub signing_key: Option<String>,
    /// The web interface (`/ui/`) shows repositories and packages without a key.
    pub ui_public: bool,
    /// The web interface shows targets, jobs, build logs and agents without a key (changing anything
    /// always needs the admin key).
    pub ui_public_builds: bool,
    /// A directory of packagers' armored public keys (`*.asc`, read at start): a package uploaded with
    /// a detached signature (multipart field `sig`) must verify against one of them. Not set: uploads
    /// with a signature are refused.
    pub trusted_keys: Option<PathBuf>,
    /// Refuse uploads with the admin key that come without a packager's signature (agents' uploads
    /// are signed by the server). Needs `trusted_keys`.
    pub require_signed_uploads: bool,
}

impl Default for Config {
    /// The defaults; the build system's are libvieter's ([`BuildSettings::new`]), stated once.
    fn default() -> Self {
        let default_arch = Arch::new("x86_64").unwrap_or_else(|_| unreachable!("x86_64 is a valid arch"));
        let global_schedule: libvieter::schedule::Schedule =
            "0 3".parse().unwrap_or_else(|_| unreachable!("a valid schedule"));
        let builds = BuildSettings::new(default_arch.clone(), global_schedule.clone());
        let secs = |d: Option<chrono::Duration>| d.map_or(0, |d| u64::try_from(d.num_seconds()).unwrap_or(0));
        Config {
            address: SocketAddr::from(([127, 0, 0, 1], 8000)),
            data_dir: PathBuf::from("./data"),
            api_key: None,
            agent_key: None,
            default_arch,
            log_level: "info".to_owned(),
            max_upload_size: 4 << 30,
            db_format: DbFormat::Current,
            metrics_auth: false,
            timezone: builds.tz,
            global_schedule,
            base_image: builds.base_image,
            default_build_timeout: builds.default_timeout_secs,
            lease_secs: secs(Some(builds.lease)),
            retry_max_attempts: builds.retry.max_attempts,
            retry_backoff_secs: builds.retry.backoff_base_secs,
            max_log_age: secs(builds.log_retention) / 86_400,
            header_read_timeout: 10,
            body_idle_timeout: 30,
            max_connections: 0,
            max_log_size: builds.max_log_size,
            max_agent_capacity: builds.max_agent_capacity,
            agent_expiry_secs: secs(builds.agent_expiry),
            max_agents_per_key: u64::try_from(builds.max_agents_per_key).unwrap_or(u64::MAX),
            aur_rpc_url: libvieter::aur::DEFAULT_RPC_URL.to_owned(),
            sync_dbs: Vec::new(),
            sync_db_refresh_secs: 6 * 3600,
            signing_key: None,
            ui_public: true,
            ui_public_builds: false,
            trusted_keys: None,
            require_signed_uploads: false,
        }
    }
}

pub use libvieter::config::ConfigError;
use libvieter::config::KeyKind::{self, Bool, Integer, List, String as Text};

/// Every key and the type of its value.
const KEYS: &[(&str, KeyKind)] = &[
    ("address", Text),
    ("data_dir", Text),
    ("api_key", Text),
    ("agent_key", Text),
    ("default_arch", Text),
    ("log_level", Text),
    ("max_upload_size", Integer),
    ("db_format", Text),
    ("metrics_auth", Bool),
    ("timezone", Text),
    ("global_schedule", Text),
    ("base_image", Text),
    ("default_build_timeout", Integer),
    ("lease_secs", Integer),
    ("retry_max_attempts", Integer),
    ("retry_backoff_secs", Integer),
    ("max_log_age", Integer),
    ("header_read_timeout", Integer),
    ("body_idle_timeout", Integer),
    ("max_connections", Integer),
    ("max_log_size", Integer),
    ("max_agent_capacity", Integer),
    ("agent_expiry_secs", Integer),
    ("max_agents_per_key", Integer),
    ("aur_rpc_url", Text),
    ("sync_dbs", List),
    ("sync_db_refresh_secs", Integer),
    ("signing_key", Text),
    ("ui_public", Bool),
    ("ui_public_builds", Bool),
    ("trusted_keys", Text),
    ("require_signed_uploads", Bool),
];

impl Config {
    /// Loads the file (if given), then applies `VIETER_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        libvieter::config::load_layered(file, env, KEYS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_without_anything() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.address.to_string(), "127.0.0.1:8000");
        assert_eq!(c.default_arch.as_str(), "x86_64");
        assert!(c.api_key.is_none());
        // The build system's defaults, from libvieter's, as README states them.
        assert_eq!((c.base_image.as_str(), c.default_build_timeout), ("archlinux:base-devel", 3600));
        assert_eq!((c.lease_secs, c.retry_max_attempts, c.retry_backoff_secs), (60, 3, 30));
        assert_eq!((c.max_log_age, c.max_log_size), (30, 64 << 20));
        assert_eq!((c.max_agent_capacity, c.agent_expiry_secs, c.max_agents_per_key), (64, 604_800, 256));
        assert_eq!(c.timezone, chrono_tz::UTC);
    }

    #[test]
    fn env_overrides_file_and_file_vars_read_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vieter.toml");
        std::fs::write(&file, "address = \"127.0.0.1:1\"\nmax_upload_size = 10\napi_key = \"from-file\"\n")
            .unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let c = Config::load(
            Some(&file),
            env(&[
                ("VIETER_ADDRESS", "127.0.0.1:9000"),
                ("VIETER_API_KEY_FILE", secret.to_str().unwrap()),
                ("VIETER_MAX_UPLOAD_SIZE", "2048"),
            ]),
        )
        .unwrap();
        assert_eq!(c.address.to_string(), "127.0.0.1:9000");
        assert_eq!(c.api_key.as_deref(), Some("s3cret"));
        assert_eq!(c.max_upload_size, 2048);
        let c =
            Config::load(None, env(&[("VIETER_SYNC_DBS", "http://m/core/os/$arch/core.db http://m/e.db")]))
                .unwrap();
        assert_eq!(c.sync_dbs, ["http://m/core/os/$arch/core.db", "http://m/e.db"]);
        assert_eq!(c.aur_rpc_url, "https://aur.archlinux.org/rpc/v5");
    }

    #[test]
    fn the_signing_key_is_read_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.asc");
        std::fs::write(
            &key,
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nx\n-----END PGP PRIVATE KEY BLOCK-----\n",
        )
        .unwrap();
        let c = Config::load(None, env(&[("VIETER_SIGNING_KEY_FILE", key.to_str().unwrap())])).unwrap();
        let value = c.signing_key.unwrap();
        assert!(
            value.starts_with("-----BEGIN PGP PRIVATE KEY BLOCK-----\n") && value.ends_with("-----"),
            "{value}"
        );
        let c = Config::load(None, env(&[("VIETER_SIGNING_KEY", "generate")])).unwrap();
        assert_eq!(c.signing_key.as_deref(), Some("generate"));
        assert!(Config::load(None, env(&[])).unwrap().signing_key.is_none());
    }

    #[test]
    fn bad_values_are_named() {
        let e = Config::load(None, env(&[("VIETER_MAX_UPLOAD_SIZE", "lots")])).unwrap_err();
        assert!(e.to_string().contains("VIETER_MAX_UPLOAD_SIZE"), "{e}");
        let e = Config::load(None, env(&[("VIETER_DEFAULT_ARCH", "x86-64")])).unwrap_err();
        assert!(e.to_string().contains("x86-64"), "{e}");
        let e = Config::load(None, env(&[("VIETER_ADDRESS", "nowhere")])).unwrap_err();
        assert!(e.to_string().contains("address") || e.to_string().contains("socket"), "{e}");
    }
}
