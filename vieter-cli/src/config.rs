//! The CLI's settings: `~/.config/vieter/config.toml`, overridden by `VIETER_*` variables and flags.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// What the config file may hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub address: Option<String>,
    pub api_key: Option<String>,
}

/// The default server address.
pub const DEFAULT_ADDRESS: &str = "http://127.0.0.1:8000";

/// `$XDG_CONFIG_HOME/vieter/config.toml`, else `~/.config/vieter/config.toml`.
pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("vieter").join("config.toml"))
}

/// Reads the config file; a missing file is an empty config.
pub fn load(path: &Path) -> Result<FileConfig, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

const TEMPLATE: &str = r#"# Configuration of the `vieter` command.
# Flags (--server, --api-key) and the variables VIETER_ADDRESS and VIETER_API_KEY override these values.

# Address of the Vieter server.
address = {address}

# API key sent as X-Api-Key (the server's api_key, or an agent key for publishing only).
{api_key_line}
"#;

/// Writes a commented config file with mode 0600.
pub fn init(path: &Path, address: &str, api_key: Option<&str>, force: bool) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() && !force {
        return Err(format!("{} exists already (use --force to overwrite it)", path.display()));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let api_key_line = match api_key {
        Some(key) => format!("api_key = {}", toml_string(key)),
        None => "# api_key = \"...\"".to_owned(),
    };
    let text = TEMPLATE.replace("{address}", &toml_string(address)).replace("{api_key_line}", &api_key_line);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}
