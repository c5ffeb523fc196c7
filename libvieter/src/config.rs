//! Layered settings shared by the server and the agent: a TOML file, overridden by `VIETER_<KEY>`
//! variables; `VIETER_<KEY>_FILE` reads a value from a file (for secrets).

use std::path::Path;

use serde::de::DeserializeOwned;

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

/// The type of a key's value, which says how an environment variable's text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    String,
    Integer,
    Float,
    Bool,
    /// A list of strings: in a variable, separated by whitespace (`VIETER_SYNC_DBS="url1 url2"`).
    List,
}

/// Loads `file` (if given) into `T`, after applying `VIETER_<KEY>` / `VIETER_<KEY>_FILE` from `env` for
/// each of `keys`. `T` supplies defaults (`#[serde(default)]`) and refuses unknown keys.
pub fn load_layered<T: DeserializeOwned>(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    keys: &[(&str, KeyKind)],
) -> Result<T, ConfigError> {
    let mut table = match file {
        Some(path) => {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
            text.parse::<toml::Table>()
                .map_err(|e| ConfigError::Parse { path: shown, message: e.to_string() })?
        }
        None => toml::Table::new(),
    };
    let env: Vec<(String, String)> = env.into_iter().collect();
    for &(key, kind) in keys {
        let var = format!("VIETER_{}", key.to_uppercase());
        let file_var = format!("{var}_FILE");
        let value = if let Some((_, v)) = env.iter().find(|(k, _)| *k == var) {
            v.clone()
        } else if let Some((_, path)) = env.iter().find(|(k, _)| *k == file_var) {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Env { var: file_var.clone(), message: format!("{path}: {e}") })?;
            text.trim_end_matches(['\n', '\r']).to_owned()
        } else {
            continue;
        };
        let bad =
            |what: &str| ConfigError::Env { var: var.clone(), message: format!("{value:?} is not {what}") };
        let parsed = match kind {
            KeyKind::String => toml::Value::String(value.clone()),
            KeyKind::Integer => {
                toml::Value::Integer(value.trim().parse().map_err(|_| bad("a whole number"))?)
            }
            KeyKind::Float => toml::Value::Float(value.trim().parse().map_err(|_| bad("a number"))?),
            KeyKind::Bool => toml::Value::Boolean(value.trim().parse().map_err(|_| bad("true or false"))?),
            KeyKind::List => toml::Value::Array(
                value.split_whitespace().map(|item| toml::Value::String(item.to_owned())).collect(),
            ),
        };
        table.insert(key.to_owned(), parsed);
    }
    let source = file.map(|p| p.display().to_string()).unwrap_or_else(|| "environment".to_owned());
    T::deserialize(toml::Value::Table(table))
        .map_err(|e| ConfigError::Parse { path: source, message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Settings {
        name: String,
        count: u32,
        ratio: f64,
        on: bool,
        urls: Vec<String>,
    }

    impl Default for Settings {
        fn default() -> Self {
            Settings { name: "d".into(), count: 1, ratio: 0.5, on: false, urls: Vec::new() }
        }
    }

    const KEYS: &[(&str, KeyKind)] = &[
        ("name", KeyKind::String),
        ("count", KeyKind::Integer),
        ("ratio", KeyKind::Float),
        ("on", KeyKind::Bool),
        ("urls", KeyKind::List),
    ];

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn file_then_env_then_secret_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "name = \"file\"\ncount = 3\n").unwrap();
        let secret = dir.path().join("s");
        std::fs::write(&secret, "from-secret\n").unwrap();
        let s: Settings = load_layered(
            Some(&file),
            env(&[
                ("VIETER_NAME_FILE", secret.to_str().unwrap()),
                ("VIETER_RATIO", "1.5"),
                ("VIETER_ON", "true"),
            ]),
            KEYS,
        )
        .unwrap();
        assert_eq!((s.name.as_str(), s.count, s.ratio, s.on), ("from-secret", 3, 1.5, true));
        let l: Settings =
            load_layered(Some(&file), env(&[("VIETER_URLS", " http://a/$arch\n http://b ")]), KEYS).unwrap();
        assert_eq!(l.urls, ["http://a/$arch", "http://b"]);
        std::fs::write(&file, "urls = [\"http://c\"]\n").unwrap();
        let f: Settings = load_layered(Some(&file), env(&[]), KEYS).unwrap();
        assert_eq!(f.urls, ["http://c"]);
        let d: Settings = load_layered(None, env(&[]), KEYS).unwrap();
        assert_eq!((d.name.as_str(), d.count), ("d", 1));
    }

    #[test]
    fn problems_are_named() {
        let e = load_layered::<Settings>(None, env(&[("VIETER_COUNT", "many")]), KEYS).unwrap_err();
        assert_eq!(e.to_string(), "environment variable VIETER_COUNT: \"many\" is not a whole number");
        let e = load_layered::<Settings>(None, env(&[("VIETER_ON", "yes")]), KEYS).unwrap_err();
        assert!(e.to_string().contains("true or false"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "nmae = \"typo\"\n").unwrap();
        let e = load_layered::<Settings>(Some(&file), env(&[]), KEYS).unwrap_err();
        assert!(e.to_string().contains("nmae"), "{e}");
        let e = load_layered::<Settings>(Some(&dir.path().join("missing.toml")), env(&[]), KEYS).unwrap_err();
        assert!(e.to_string().starts_with("cannot read"), "{e}");
    }
}
