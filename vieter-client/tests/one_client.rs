//! The CLI and the agent talk to the server through this crate's one `Client`: neither may depend on an
//! HTTP client of its own, and both build their connection with `vieter_client::Client::new`.

use std::path::Path;

fn manifest(krate: &str) -> toml::Table {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(krate).join("Cargo.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sources(krate: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(krate).join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read source");
                out.push((path.display().to_string(), text));
            }
        }
    }
    out
}

#[test]
fn the_cli_and_the_agent_share_one_api_client() {
    for krate in ["vieter-cli", "vieter-agent"] {
        let deps = manifest(krate)["dependencies"].as_table().cloned().unwrap_or_default();
        assert!(deps.contains_key("vieter-client"), "{krate} must use vieter-client");
        for http in ["reqwest", "hyper", "ureq", "surf", "isahc", "attohttpc"] {
            assert!(!deps.contains_key(http), "{krate} depends on {http}: API calls belong in vieter-client");
        }
        let files = sources(krate);
        assert!(!files.is_empty(), "{krate} has sources");
        let constructs = files.iter().filter(|(_, text)| text.contains("Client::new(")).count();
        assert!(constructs > 0, "{krate} builds a vieter_client::Client");
        for (path, text) in &files {
            for line in text.lines().filter(|l| l.contains("Client::new(") || l.contains("use ")) {
                assert!(
                    !line.contains("reqwest") && !line.contains("hyper::Client"),
                    "{path}: `{line}` talks HTTP around vieter-client"
                );
            }
            if text.contains("Client::new(") {
                assert!(
                    text.contains("vieter_client::Client") || text.contains("use vieter_client::{"),
                    "{path} builds a Client that is not vieter_client's"
                );
            }
        }
    }
}
