//! `read-package [--md5] FILE`: reads a package with libvieter and prints size, digests and MiB/s.
//! Used by scripts/bench-read.sh under /usr/bin/time for peak memory.

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let md5 = args.iter().any(|a| a == "--md5");
    let Some(path) = args.iter().find(|a| !a.starts_with("--")) else {
        eprintln!("usage: read-package [--md5] FILE");
        std::process::exit(2);
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    let options = libvieter::package::ReadOptions { md5, ..Default::default() };
    let started = Instant::now();
    match libvieter::package::read_package(std::io::BufReader::with_capacity(1 << 20, file), &options) {
        Ok(p) => {
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{} bytes, {} files, sha256 {}, md5 {}, {:.3} s, {:.0} MiB/s",
                p.csize,
                p.files.len(),
                p.sha256,
                p.md5.as_deref().unwrap_or("-"),
                secs,
                p.csize as f64 / secs / (1 << 20) as f64
            );
        }
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    }
}
