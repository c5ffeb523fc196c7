//! The archive reader never panics on any bytes and stays within small limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use libvieter::db::{DbEntry, DbFormat};
use libvieter::package::{read_package, Limits, ReadOptions};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_pkginfo_size: 64 << 10,
        max_entries: 10_000,
        max_pax_size: 64 << 10,
        max_uncompressed_size: 64 << 20,
        ..Limits::default()
    };
    let options = ReadOptions { md5: true, limits };
    if let Ok(pkg) = read_package(data, &options) {
        assert_eq!(pkg.csize, data.len() as u64);
        let entry = DbEntry::new(&pkg, &pkg.filename(), DbFormat::WithMd5, None).expect("a read package renders");
        assert!(entry.desc.starts_with("%FILENAME%\n"));
    }
});
