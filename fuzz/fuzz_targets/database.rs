//! Reading a repository database archive never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(db) = libvieter::db::Database::read(data) {
        for e in db.iter() {
            assert!(!e.entry.dir_name().is_empty());
        }
    }
});
