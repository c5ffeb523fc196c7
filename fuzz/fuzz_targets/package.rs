//! The archive reader never panics on any bytes and stays within small limits; whatever it accepts
//! renders a db entry pacman can read (bounded lines, no control characters, a sorted file list).
#![no_main]

use libfuzzer_sys::fuzz_target;
use libvieter::db::{DbEntry, DbFormat, MAX_LINE_LEN};
use libvieter::package::{read_package, Limits, ReadOptions};
use libvieter::pkginfo::MAX_PACKAGE_FILENAME_LEN;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_pkginfo_size: 64 << 10,
        max_entries: 10_000,
        max_file_list_bytes: 1 << 20,
        max_pax_size: 64 << 10,
        max_uncompressed_size: 64 << 20,
        ..Limits::default()
    };
    let options = ReadOptions { md5: true, limits };
    if let Ok(pkg) = read_package(data, &options) {
        assert_eq!(pkg.csize, data.len() as u64);
        assert!(pkg.filename().len() <= MAX_PACKAGE_FILENAME_LEN);
        assert!(pkg.files.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
        assert!(pkg.files.iter().map(|f| f.len() as u64 + 1).sum::<u64>() <= 1 << 20);
        let entry =
            DbEntry::new(&pkg, &pkg.filename(), DbFormat::WithMd5, None).expect("a read package renders");
        assert!(entry.desc.starts_with("%FILENAME%\n"));
        for text in [Some(&entry.desc), entry.files.as_ref()].into_iter().flatten() {
            for line in text.lines() {
                assert!(line.len() <= MAX_LINE_LEN);
                assert!(!line.chars().any(char::is_control), "{line:?}");
            }
        }
    }
});
