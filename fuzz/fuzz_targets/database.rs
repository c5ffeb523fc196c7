//! Reading a repository database archive never panics, in either reader: `Database::read` (our own
//! archives, recompressed) and `read_entries` (sync databases: plain, gzip, zstd or xz), which agree;
//! every entry read gives a dependency-resolution provider without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use libvieter::resolve::{Provider, Source};

fuzz_target!(|data: &[u8]| {
    let entries = libvieter::db::read_entries(data);
    if let Ok(db) = libvieter::db::Database::read(data) {
        for e in db.iter() {
            assert!(!e.entry.dir_name().is_empty());
        }
        let entries = entries.as_ref().expect("read_entries accepts what Database::read accepts");
        // Two directories of one package name are one db entry (the later replaces the earlier).
        assert!(entries.len() >= db.len());
    }
    if let Ok(entries) = entries {
        let repo: libvieter::name::RepoName = "fuzz".parse().expect("a valid repo name");
        for e in &entries {
            let p = Provider::from_entry(Source::Sync(repo.clone()), e);
            assert_eq!(p.name, e.name);
        }
    }
});
