//! Parsing an AUR RPC answer never panics, and what parses holds valid names, versions and
//! dependencies.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((_, packages)) = libvieter::aur::parse_response(data) {
        for p in &packages {
            assert!(!p.name.as_str().is_empty() && !p.package_base.as_str().is_empty());
            assert!(!p.version.pkgrel().is_empty());
            for dep in p.build_needs().chain(&p.provides) {
                assert!(!dep.name.is_empty());
            }
            let itself =
                libvieter::depend::Dependency::parse(p.name.as_str()).expect("a name is a dependency");
            assert!(p.satisfies(&itself));
        }
    }
});
