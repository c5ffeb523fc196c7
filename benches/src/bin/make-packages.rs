//! `make-packages DIR COUNT [FILES [PREFIX]]`: writes COUNT small synthetic .pkg.tar.zst files (and
//! `big.pkg.tar.zst` of 200 MiB with `--big`), for the benchmark scripts.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--big") {
        let Some(path) = args.get(1) else {
            eprintln!("usage: make-packages --big FILE [MiB]");
            std::process::exit(2);
        };
        let mib: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
        let out = std::fs::File::create(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        vieter_benches::write_big_package(std::io::BufWriter::new(out), mib << 20).expect("write");
        return;
    }
    let (Some(dir), Some(count)) = (args.first(), args.get(1).and_then(|c| c.parse::<usize>().ok())) else {
        eprintln!("usage: make-packages DIR COUNT [FILES_PER_PACKAGE [NAME_PREFIX]]");
        std::process::exit(2);
    };
    let files: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let prefix = args.get(3).map(String::as_str).unwrap_or("bench");
    std::fs::create_dir_all(dir).expect("create dir");
    for i in 0..count {
        let name = format!("{prefix}{i:05}");
        let bytes = vieter_benches::small_package(&name, "1.0-1", files);
        std::fs::write(format!("{dir}/{name}-1.0-1-x86_64.pkg.tar.zst"), bytes).expect("write");
    }
}
