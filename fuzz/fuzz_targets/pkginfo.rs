//! `.PKGINFO` parsing and validation never panic; a valid one re-validates and fits a repository.
#![no_main]

use libfuzzer_sys::fuzz_target;
use libvieter::pkginfo::{PkgInfo, MAX_LINE_LEN, MAX_PACKAGE_FILENAME_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = PkgInfo::parse(data) {
        for e in &info.entries {
            assert!(e.key.len() + 3 + e.value.len() <= MAX_LINE_LEN);
        }
        if let Ok(valid) = info.validate() {
            // Validated values re-validate.
            assert!(libvieter::name::PkgName::new(valid.name.as_str()).is_ok());
            assert!(libvieter::version::Version::parse(valid.version.as_str()).is_ok());
            assert!(valid.version.check_repository_safe().is_ok());
            let stem = format!("{}-{}-{}", valid.name, valid.version, valid.arch);
            assert!(stem.len() + ".pkg.tar.zst".len() <= MAX_PACKAGE_FILENAME_LEN);
        }
    }
});
