//! `.PKGINFO` parsing and validation never panic; a valid one renders a db entry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use libvieter::pkginfo::PkgInfo;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = PkgInfo::parse(data) {
        if let Ok(valid) = info.validate() {
            // Validated values re-validate.
            assert!(libvieter::name::PkgName::new(valid.name.as_str()).is_ok());
            assert!(libvieter::version::Version::parse(valid.version.as_str()).is_ok());
        }
    }
});
