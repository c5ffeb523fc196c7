//! Shared test helpers: the corpus location and external tools, which are required when CI=true.

#![allow(dead_code)]

use std::path::PathBuf;

fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// The corpus packages (from `VIETER_CORPUS`, built by scripts/build-corpus.sh), or `None` to skip.
pub fn corpus() -> Option<Vec<PathBuf>> {
    let dir = match std::env::var_os("VIETER_CORPUS").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None if in_ci() => {
            panic!("VIETER_CORPUS must be set when CI=true (scripts/test.sh builds the corpus)")
        }
        None => {
            eprintln!("skipping: VIETER_CORPUS is not set (run scripts/build-corpus.sh target/corpus)");
            return None;
        }
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().contains(".pkg.tar")))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the corpus in {} has only {} packages", dir.display(), files.len());
    Some(files)
}

/// Whether `tool` is on PATH; with CI=true a missing tool fails the test.
pub fn require_tool(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if !found {
        assert!(!in_ci(), "{tool} is required when CI=true (scripts/setup-test-env.sh installs it)");
        eprintln!("skipping: {tool} is not installed");
    }
    found
}
