//! `makepkg --printsrcinfo` parsing never panics; a parsed one yields packages whose versions re-parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use libvieter::name::Arch;
use libvieter::srcinfo::Srcinfo;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(info) = Srcinfo::parse(text) {
        for arch in ["x86_64", "aarch64"] {
            let Ok(arch) = Arch::new(arch) else { return };
            for package in info.packages_for(&arch) {
                assert!(libvieter::version::Version::parse(&package.version.to_string()).is_ok());
                assert!(libvieter::name::PkgName::new(package.name.as_str()).is_ok());
            }
        }
    }
});
