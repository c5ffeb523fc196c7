//! `makepkg --printsrcinfo` parsing never panics; a parsed one yields packages whose versions re-parse.
//! The VCS sources it lists, the revision step's output and `git ls-remote` output are read without
//! panicking too (change detection of `git` targets reads all three).
#![no_main]

use libfuzzer_sys::fuzz_target;
use libvieter::name::Arch;
use libvieter::srcinfo::Srcinfo;
use libvieter::vcs;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The same bytes as ls-remote output and as the revision step's output.
    let _ = vcs::ls_remote_commit(text, "HEAD");
    if let Ok(info) = Srcinfo::parse(text) {
        for source in &info.sources {
            if let Some(s) = vcs::VcsSource::parse(source) {
                assert!(!s.url.is_empty());
                let _ = s.remote_ref();
            }
        }
        let revision = vcs::parse_revision(text, &info.sources);
        assert!(revision.sources.len() <= info.sources.len());
        assert!(revision.commit.as_deref().is_none_or(vcs::is_commit));
        let _ = vcs::revision_script(Some("/build/src"), "/build/sources", &info.sources);
        for arch in ["x86_64", "aarch64"] {
            let Ok(arch) = Arch::new(arch) else { return };
            for package in info.packages_for(&arch) {
                assert!(libvieter::version::Version::parse(&package.version.to_string()).is_ok());
                assert!(libvieter::name::PkgName::new(package.name.as_str()).is_ok());
            }
        }
    }
});
