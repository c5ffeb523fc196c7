//! Printing: aligned tables for people, the API's JSON for scripts.

use comfy_table::{presets, ContentArrangement, Table};
use serde::Serialize;

/// How results are printed.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
    pub quiet: bool,
}

impl Output {
    /// Prints `data` as JSON when `--json` was given, else as a table built by `table`.
    pub fn print<T: Serialize>(&self, data: &T, table: impl FnOnce() -> Table) -> Result<(), String> {
        if self.json {
            let text = serde_json::to_string_pretty(data).map_err(|e| e.to_string())?;
            println!("{text}");
        } else if !self.quiet {
            println!("{}", table());
        }
        Ok(())
    }

    /// A line for people (not printed with `--json` or `--quiet`).
    pub fn say(&self, line: impl AsRef<str>) {
        if !self.json && !self.quiet {
            println!("{}", line.as_ref());
        }
    }
}

/// A borderless table with a header row.
pub fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING).set_content_arrangement(ContentArrangement::Disabled).set_header(header);
    t
}

/// Bytes as a short human size.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
