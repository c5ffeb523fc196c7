//! Rules of a pacman repository that hold wherever it is stored: which names a repository may have and
//! which architectures a package goes to. The server and the directory adapter ([`crate::fs`]) both
//! follow these.

use std::collections::BTreeSet;

use crate::name::Arch;

/// Checks a repository name: `[A-Za-z0-9._-]+`, at most 128 bytes, not starting with `.` or `-`, not
/// `api` (the server's API lives under `/api`). The message says what is allowed.
///
/// ```
/// use libvieter::repo::check_repo_name;
/// assert!(check_repo_name("extra-testing").is_ok());
/// assert!(check_repo_name("api").is_err());
/// assert!(check_repo_name("../etc").is_err());
/// ```
pub fn check_repo_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && !s.starts_with(['.', '-'])
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
        && s != "api";
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{s}' is not a valid repository name: use letters, digits, '.', '_' and '-', not starting with '.' \
             or '-'; 'api' is reserved"
        ))
    }
}

/// The architectures of a repository a package of architecture `arch` goes to, when the repository has
/// `existing` architectures: its own; for `any`, every existing one and always `default_arch` (so that
/// a repository of only `any` packages is still served for the machines' architecture).
///
/// ```
/// use std::collections::BTreeSet;
/// use libvieter::{name::Arch, repo::arches_for};
/// let a = |s: &str| Arch::new(s).unwrap();
/// let existing: BTreeSet<Arch> = [a("aarch64")].into();
/// assert_eq!(arches_for(&a("any"), &existing, &a("x86_64")), [a("aarch64"), a("x86_64")].into());
/// assert_eq!(arches_for(&a("aarch64"), &existing, &a("x86_64")), [a("aarch64")].into());
/// ```
pub fn arches_for(arch: &Arch, existing: &BTreeSet<Arch>, default_arch: &Arch) -> BTreeSet<Arch> {
    if arch.is_any() {
        let mut all = existing.clone();
        // An `any` arch-repo is never made: `any` is not a machine's architecture.
        all.remove(arch);
        all.insert(default_arch.clone());
        all
    } else {
        BTreeSet::from([arch.clone()])
    }
}
