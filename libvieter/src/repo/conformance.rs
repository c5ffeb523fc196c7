//! The promises of a [`RepoStore`] and a [`BlobStore`] under a [`Repository`], checked once for every
//! implementation, crash ordering included.
//!
//! An implementation's tests call [`check`] with a function that makes an empty pair; it panics (as a
//! test assertion does) naming the broken promise. libvieter runs it on the in-memory and the
//! directory implementations, `vieter-server` on redb with the directory blobs.
//!
//! ```
//! use libvieter::repo::memory::{MemoryBlobs, MemoryStore};
//! libvieter::repo::conformance::check(|| (MemoryStore::new(), MemoryBlobs::new()));
//! ```
//!
//! Crash ordering: a blob store wrapper fails its *k*-th operation, for every *k* of a publish over an
//! existing version, of an `any` publish and of removals. At the moment of the failure (a crash would
//! stop right there) every database archive may only name package files that are kept; after
//! [`Repository::recover`] the archives are exactly what the store says and no package file is left that
//! nothing references.
//!
//! Signing: with a [`TestSigner`], every package file a served archive names has its signature and
//! every archive the signature of its bytes, at every failure (of a blob operation or of the signer)
//! and after recovery; recovery signs what an unsigned run left and replaces stale signatures; an
//! unsigned repository has no signature at all, and a signed one serves the same archive bytes.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use chrono::{DateTime, TimeZone, Utc};

use super::blob::{ArchiveDir, ArchiveWriter, BlobStore};
use super::service::{Removal, Repository};
use super::sign::{TestSigner, TestVerifier, UploadPolicy, UploadSignature, Uploader};
use super::store::RepoStore;
use crate::db::{ArchiveKind, Database, DbFormat};
use crate::name::{Arch, PkgName, RepoName};

fn at() -> DateTime<Utc> {
    Utc.timestamp_opt(1_735_689_600, 0).single().expect("a valid instant")
}

fn arch(a: &str) -> Arch {
    Arch::new(a).expect("a valid arch")
}

fn repo_name(r: &str) -> RepoName {
    RepoName::new(r).expect("a valid repository name")
}

fn pkg_name(n: &str) -> PkgName {
    PkgName::new(n).expect("a valid package name")
}

/// A package file (zstd tar) with a `.PKGINFO` and the given files.
pub fn package_bytes(name: &str, version: &str, arch: &str, files: &[&str]) -> Vec<u8> {
    let info = format!(
        "pkgname = {name}\npkgbase = {name}\npkgver = {version}\npkgdesc = {name} for the conformance suite\n\
         url = https://example.org\nbuilddate = 1700000000\npackager = Conformance <c@example.org>\n\
         size = 1024\narch = {arch}\nlicense = MIT\ndepend = glibc\n"
    );
    let mut tar = tar::Builder::new(Vec::new());
    let mut append = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        tar.append_data(&mut h, path, data).expect("appending to a tar in memory");
    };
    append(".PKGINFO", info.as_bytes());
    for f in files {
        append(f, f.as_bytes());
    }
    let tar = tar.into_inner().expect("a tar in memory");
    zstd::encode_all(&tar[..], 1).expect("zstd in memory")
}

/// Checks every promise on pairs made by `make` (each check gets a fresh, empty pair).
pub fn check<S: RepoStore, B: BlobStore>(mut make: impl FnMut() -> (S, B)) {
    publish_replace_remove(make());
    concurrent_publishes(make());
    same_file_twice_writes_nothing(make());
    any_packages(make());
    created_arch_repos(make());
    invalid_uploads_change_nothing(make());
    recovery_cleans_up(make());
    listings(make());
    package_histories(make());
    deferred_archives(make());
    for scenario in Scenario::ALL {
        crash_at_every_step(&mut make, scenario, false);
    }
    signed_publish_replace_remove(make(), make());
    resumed_archive_hashes(make(), make());
    stale_archive_hashes(make());
    packager_signatures(make(), make());
    signing_turned_on_and_off(make());
    stale_signatures_are_replaced(make());
    key_rotation(&mut make);
    for scenario in Scenario::ALL {
        crash_at_every_step(&mut make, scenario, true);
        signer_fails_at_every_signature(&mut make, scenario);
    }
}

fn signed<S: RepoStore, B: BlobStore>(pair: (S, B)) -> Repository<S, B> {
    repository(pair).with_signer(TestSigner::new())
}

fn bytes_of(mut r: impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).expect("reading a blob");
    out
}

/// What must hold at any instant of a signed repository: every archive has the signature of its
/// bytes, every package file an archive names the signature of its bytes.
fn signatures_hold<S: RepoStore, B: BlobStore>(repo: &Repository<S, B>, when: &str) {
    let blobs = repo.blobs();
    for dir in blobs.archive_dirs().expect("listing archives") {
        let (Ok(r), Ok(a)) = (RepoName::new(dir.repo.as_str()), Arch::new(dir.arch.as_str())) else {
            continue;
        };
        for kind in [ArchiveKind::Db, ArchiveKind::Files] {
            let Some(archive) = blobs.open_archive(&r, &a, kind).expect("opening an archive") else {
                continue;
            };
            let bytes = bytes_of(archive);
            assert_eq!(
                blobs.archive_signature(&r, &a, kind).expect("an archive's signature"),
                Some(TestSigner::signature_of(&bytes)),
                "{when}: the {kind:?} archive of {r}/{a} is served without the signature of its bytes"
            );
            for (name, filename, sha) in read_archive(&bytes[..]) {
                let Some(file) = blobs.open_package(&sha).expect("opening a package") else { continue };
                assert_eq!(
                    blobs.package_signature(&sha).expect("a package's signature"),
                    Some(TestSigner::signature_of(&bytes_of(file))),
                    "{when}: {r}/{a} serves {name} as {filename} without its signature"
                );
            }
        }
    }
}

/// No signature anywhere (a repository without a signer).
fn unsigned_everywhere<S: RepoStore, B: BlobStore>(repo: &Repository<S, B>, when: &str) {
    let blobs = repo.blobs();
    for sha in blobs.package_hashes().expect("packages") {
        assert_eq!(blobs.package_signature(&sha).expect("a signature"), None, "{when}: {sha} is signed");
    }
    for dir in blobs.archive_dirs().expect("listing archives") {
        let (Ok(r), Ok(a)) = (RepoName::new(dir.repo.as_str()), Arch::new(dir.arch.as_str())) else {
            continue;
        };
        for kind in [ArchiveKind::Db, ArchiveKind::Files] {
            let signature = blobs.archive_signature(&r, &a, kind).expect("a signature");
            assert_eq!(signature, None, "{when}: the {kind:?} archive of {r}/{a} is signed");
        }
    }
}

fn archive_bytes<S: RepoStore, B: BlobStore>(
    repo: &Repository<S, B>,
    r: &str,
    a: &str,
    kind: ArchiveKind,
) -> Vec<u8> {
    let archive = repo.blobs().open_archive(&repo_name(r), &arch(a), kind).expect("opening an archive");
    bytes_of(archive.expect("the archive exists"))
}

fn signed_publish_replace_remove<S: RepoStore, B: BlobStore>(pair: (S, B), plain: (S, B)) {
    let repo = signed(pair);
    let plain = repository(plain);
    assert!(repo.is_signed() && !plain.is_signed());
    let v1 = package_bytes("hello", "1.0-1", "x86_64", &["usr/bin/hello"]);
    let v2 = package_bytes("hello", "1.1-1", "x86_64", &["usr/bin/hello2"]);
    let docs = package_bytes("docs", "1-1", "any", &["usr/share/doc/docs"]);
    let arm = package_bytes("arm", "1-1", "aarch64", &["usr/bin/arm"]);
    for bytes in [&arm, &v1, &docs, &v2] {
        publish(&repo, "extra", bytes).expect("publishing, signed");
        publish(&plain, "extra", bytes).expect("publishing, unsigned");
        signatures_hold(&repo, "after a signed publish");
        unsigned_everywhere(&plain, "after an unsigned publish");
    }
    for (a, kind) in
        [("x86_64", ArchiveKind::Db), ("x86_64", ArchiveKind::Files), ("aarch64", ArchiveKind::Db)]
    {
        assert_eq!(
            archive_bytes(&repo, "extra", a, kind),
            archive_bytes(&plain, "extra", a, kind),
            "signing changes no byte of the {kind:?} archive of {a}"
        );
    }
    let blobs = repo.blobs();
    assert_eq!(
        blobs.package_signature(&sha256(&docs)).expect("a signature"),
        Some(TestSigner::signature_of(&docs)),
        "an any package's one file has one signature"
    );
    assert_eq!(
        blobs.package_signature(&sha256(&v1)).expect("a signature"),
        None,
        "the replaced file's went with it"
    );
    // The same file again signs and writes nothing.
    let (store, blobs) = repo.into_parts();
    let signer = std::sync::Arc::new(TestSigner::new());
    let counting = Faulty::new(blobs, usize::MAX);
    let repo =
        Repository::new(store, counting, arch("x86_64"), DbFormat::Current, at).with_signer(signer.clone());
    publish(&repo, "extra", &v2).expect("publishing the same file again");
    assert_eq!((repo.blobs().writes(), signer.started()), (0, 0), "the same file again is not signed again");
    let other = package_bytes("other", "1-1", "x86_64", &[]);
    publish(&repo, "extra", &other).expect("publishing another");
    assert_eq!(signer.started(), 3, "one package file and two archives are signed");
    repo.remove(&repo_name("extra"), Removal::Package(&arch("x86_64"), &pkg_name("hello")))
        .expect("removing");
    signatures_hold(&repo, "after a removal");
    assert_eq!(
        repo.blobs().package_signature(&sha256(&v2)).expect("a signature"),
        None,
        "a deleted file's signature is gone"
    );
    repo.remove(&repo_name("extra"), Removal::ArchRepo(&arch("x86_64"))).expect("removing an arch-repo");
    assert_eq!(
        repo.blobs()
            .archive_signature(&repo_name("extra"), &arch("x86_64"), ArchiveKind::Db)
            .expect("a signature"),
        None,
        "a removed arch-repo's signatures are gone"
    );
    let report = repo.recover().expect("recovering");
    assert_eq!(report.archives_rewritten, 0, "{report:?}");
    consistent(&repo, "after signed changes");
    signatures_hold(&repo, "after signed changes and recovery");
}

/// Archives signed from kept hashes of their start (a checkpoint after every member) carry the
/// signature of their whole bytes after every kind of change, wherever it falls: an entry added at the
/// end, at the start, in the middle, replaced, removed, an `any` package in every arch-repo, an
/// arch-repo removed and made again. A signer without hash copies signs the same archives the same.
fn resumed_archive_hashes<S: RepoStore, B: BlobStore>(pair: (S, B), streaming: (S, B)) {
    let repo = repository(pair).with_signer(TestSigner::new()).with_hash_checkpoints_every(1);
    let plain = repository(streaming).with_signer(TestSigner::streaming_only());
    type Step<S, B> = Box<dyn Fn(&Repository<S, B>)>;
    let steps: Vec<(&str, Step<S, B>)> = vec![
        (
            "m, then n and o at the end",
            Box::new(|r| {
                for name in ["m", "n", "o"] {
                    publish(r, "core", &package_bytes(name, "1-1", "x86_64", &["usr/bin/x"]))
                        .expect("publishing");
                }
            }),
        ),
        (
            "a at the start",
            Box::new(|r| {
                publish(r, "core", &package_bytes("a", "1-1", "x86_64", &[])).expect("publishing a");
            }),
        ),
        (
            "h in the middle",
            Box::new(|r| {
                publish(r, "core", &package_bytes("h", "1-1", "x86_64", &["etc/h"])).expect("publishing h");
            }),
        ),
        (
            "n replaced by a longer entry",
            Box::new(|r| {
                let files = ["usr/bin/x", "usr/share/n/1", "usr/share/n/2"];
                publish(r, "core", &package_bytes("n", "2-1", "x86_64", &files)).expect("replacing n");
            }),
        ),
        (
            "h removed",
            Box::new(|r| {
                let removal = Removal::Package(&arch("x86_64"), &pkg_name("h"));
                assert!(r.remove(&repo_name("core"), removal).expect("removing h"));
            }),
        ),
        (
            "an any package in two arch-repos",
            Box::new(|r| {
                publish(r, "core", &package_bytes("b-arm", "1-1", "aarch64", &[])).expect("publishing b-arm");
                publish(r, "core", &package_bytes("docs", "1-1", "any", &[])).expect("publishing docs");
            }),
        ),
        (
            "an arch-repo removed and made again",
            Box::new(|r| {
                assert!(r.remove(&repo_name("core"), Removal::ArchRepo(&arch("aarch64"))).expect("removing"));
                publish(r, "core", &package_bytes("b-arm", "2-1", "aarch64", &[])).expect("publishing b-arm");
            }),
        ),
        (
            "the same file again, then z",
            Box::new(|r| {
                publish(r, "core", &package_bytes("a", "1-1", "x86_64", &[])).expect("publishing a again");
                publish(r, "core", &package_bytes("z", "1-1", "x86_64", &[])).expect("publishing z");
            }),
        ),
    ];
    let signatures = |r: &Repository<S, B>| -> Vec<Option<Vec<u8>>> {
        let mut all = Vec::new();
        for a in ["x86_64", "aarch64"] {
            for kind in [ArchiveKind::Db, ArchiveKind::Files] {
                all.push(
                    r.blobs().archive_signature(&repo_name("core"), &arch(a), kind).expect("a signature"),
                );
            }
        }
        all
    };
    for (what, step) in &steps {
        step(&repo);
        step(&plain);
        let when = format!("resumed hashes, after {what}");
        signatures_hold(&repo, &when);
        consistent(&repo, &when);
        assert_eq!(signatures(&repo), signatures(&plain), "{when}: a streaming signer signs the same");
    }
    assert_eq!(names(repo.blobs(), "core", "x86_64"), ["a", "docs", "m", "n", "o", "z"], "the entries");
}

/// A checkpoint that no longer matches its archive (an entry before it changed behind the
/// repository's back, here straight through the store) is found out as the next write goes through
/// the members; the archive is written again, hashed whole, and its signature holds.
fn stale_archive_hashes<S: RepoStore, B: BlobStore>(pair: (S, B)) {
    use super::store::RepoTxn;
    let repo = repository(pair).with_signer(TestSigner::new()).with_hash_checkpoints_every(1);
    for name in ["b", "d", "f"] {
        publish(&repo, "core", &package_bytes(name, "1-1", "x86_64", &[])).expect("publishing");
    }
    let mut txn = repo.store().begin().expect("a transaction");
    txn.remove_entry(&repo_name("core"), &arch("x86_64"), &pkg_name("b")).expect("removing b's entry");
    txn.commit().expect("committing");
    repo.store_changed();
    publish(&repo, "core", &package_bytes("g", "1-1", "x86_64", &[])).expect("publishing g");
    assert_eq!(names(repo.blobs(), "core", "x86_64"), ["d", "f", "g"]);
    signatures_hold(&repo, "stale hashes: an entry removed behind the repository's back");
}

fn publish_signed<S: RepoStore, B: BlobStore>(
    repo: &Repository<S, B>,
    bytes: &[u8],
    uploader: Uploader,
    signature: Option<Vec<u8>>,
) -> Result<crate::api::PublishResult, super::RepoError> {
    let mut upload = repo.blobs().create_upload().expect("an upload");
    upload.write_all(bytes).expect("writing an upload");
    repo.publish_with(&repo_name("extra"), upload, &UploadSignature { uploader, signature })
}

/// The `%PGPSIG%` of the entry of `name` in the db archive of `extra/x86_64`, decoded.
fn pgpsig<B: BlobStore>(blobs: &B, name: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let archive = blobs.open_archive(&repo_name("extra"), &arch("x86_64"), ArchiveKind::Db).expect("opening");
    let db = Database::read(io::BufReader::new(archive.expect("the db exists"))).expect("a db");
    let entry = db.get(&pkg_name(name)).expect("the entry");
    let mut lines = entry.entry.desc.lines();
    let sig = lines.by_ref().find(|l| *l == "%PGPSIG%").and_then(|_| lines.next())?;
    Some(base64::engine::general_purpose::STANDARD.decode(sig).expect("base64"))
}

fn packager_signatures<S: RepoStore, B: BlobStore>(pair: (S, B), unsigned_pair: (S, B)) {
    let policy = |require_signed| UploadPolicy {
        verifier: Some(Box::new(TestVerifier::trusting(&["alice"]))),
        require_signed,
    };
    let (store, blobs) = pair;
    let repo = Repository::new(store, blobs, arch("x86_64"), DbFormat::WithMd5, at)
        .with_signer(TestSigner::new())
        .with_upload_policy(policy(true));
    let a = package_bytes("a", "1-1", "x86_64", &["usr/bin/a"]);
    let refused = [
        (Uploader::User, None, "unsigned, from a user"),
        (Uploader::User, Some(TestVerifier::signature_of("mallory", &a)), "by an unknown key"),
        (Uploader::Agent, Some(TestVerifier::signature_of("alice", b"other")), "of another file"),
        (Uploader::User, Some(b"garbage".to_vec()), "not a signature"),
    ];
    for (uploader, signature, what) in refused {
        let e = publish_signed(&repo, &a, uploader, signature).expect_err(what);
        assert!(e.is_invalid_input() && matches!(e, super::RepoError::Signature(_)), "{what}: {e}");
        assert!(repo.store().arch_repos().expect("arch-repos").is_empty(), "{what}: nothing recorded");
        assert!(repo.blobs().package_hashes().expect("hashes").is_empty(), "{what}: nothing kept");
    }
    publish_signed(&repo, &a, Uploader::User, Some(TestVerifier::signature_of("alice", &a)))
        .expect("a trusted packager's upload");
    let server_sig = TestSigner::signature_of(&a);
    assert_eq!(repo.blobs().package_signature(&sha256(&a)).expect("sig"), Some(server_sig.clone()));
    assert_eq!(pgpsig(repo.blobs(), "a"), Some(server_sig), "%PGPSIG% is the served signature");
    let b = package_bytes("b", "1-1", "x86_64", &[]);
    publish_signed(&repo, &b, Uploader::Agent, None).expect("an agent's upload needs no packager");
    assert_eq!(pgpsig(repo.blobs(), "b"), Some(TestSigner::signature_of(&b)));
    signatures_hold(&repo, "after packagers' uploads");

    // Without a signer of its own, the repository serves the packager's signature.
    let (store, blobs) = unsigned_pair;
    let repo = Repository::new(store, blobs, arch("x86_64"), DbFormat::WithMd5, at)
        .with_upload_policy(policy(false));
    let alice = TestVerifier::signature_of("alice", &a);
    publish_signed(&repo, &a, Uploader::User, Some(alice.clone())).expect("signed");
    publish_signed(&repo, &b, Uploader::User, None).expect("unsigned, not required");
    assert_eq!(repo.blobs().package_signature(&sha256(&a)).expect("sig"), Some(alice.clone()));
    assert_eq!(pgpsig(repo.blobs(), "a"), Some(alice));
    assert_eq!(repo.blobs().package_signature(&sha256(&b)).expect("sig"), None);
    assert_eq!(pgpsig(repo.blobs(), "b"), None, "no signature, no %PGPSIG%");
    assert_eq!(
        repo.blobs().archive_signature(&repo_name("extra"), &arch("x86_64"), ArchiveKind::Db).expect("sig"),
        None,
        "the db stays unsigned"
    );
}

fn signing_turned_on_and_off<S: RepoStore, B: BlobStore>(pair: (S, B)) {
    let repo = repository(pair);
    publish(&repo, "extra", &package_bytes("a", "1-1", "x86_64", &[])).expect("publishing a");
    publish(&repo, "extra", &package_bytes("b", "1-1", "any", &[])).expect("publishing b");
    let db = archive_bytes(&repo, "extra", "x86_64", ArchiveKind::Db);
    let report = repo.recover().expect("recovering unsigned");
    assert_eq!(report.signatures_written, 0, "an unsigned repository writes no signature: {report:?}");
    unsigned_everywhere(&repo, "unsigned");
    let (store, blobs) = repo.into_parts();
    let repo =
        Repository::new(store, blobs, arch("x86_64"), DbFormat::Current, at).with_signer(TestSigner::new());
    let report = repo.recover().expect("recovering with a signer");
    assert_eq!(
        (report.archives_unchanged, report.archives_rewritten, report.signatures_written),
        (1, 0, 4),
        "two archives and two package files signed, no archive rewritten: {report:?}"
    );
    assert_eq!(archive_bytes(&repo, "extra", "x86_64", ArchiveKind::Db), db, "the db itself is kept");
    signatures_hold(&repo, "after signing was turned on");
    let (store, blobs) = repo.into_parts();
    let repo = Repository::new(store, blobs, arch("x86_64"), DbFormat::Current, at);
    let report = repo.recover().expect("recovering without a signer");
    assert_eq!(report.signatures_written, 2, "the archives' signatures are removed: {report:?}");
    let (r, a) = (repo_name("extra"), arch("x86_64"));
    for kind in [ArchiveKind::Db, ArchiveKind::Files] {
        assert_eq!(repo.blobs().archive_signature(&r, &a, kind).expect("a signature"), None);
    }
    publish(&repo, "extra", &package_bytes("c", "1-1", "x86_64", &[])).expect("publishing c unsigned");
    assert_eq!(repo.blobs().archive_signature(&r, &a, ArchiveKind::Db).expect("a signature"), None);
    consistent(&repo, "after signing was turned off");
}

fn stale_signatures_are_replaced<S: RepoStore, B: BlobStore>(pair: (S, B)) {
    let repo = signed(pair);
    publish(&repo, "extra", &package_bytes("a", "1-1", "x86_64", &[])).expect("publishing a");
    let (r, a) = (repo_name("extra"), arch("x86_64"));
    // What an interruption between an archive's rename and its signature's leaves: the previous
    // archive's signature.
    let old = repo.blobs().archive_signature(&r, &a, ArchiveKind::Db).expect("a signature");
    publish(&repo, "extra", &package_bytes("b", "1-1", "x86_64", &[])).expect("publishing b");
    repo.blobs().write_archive_signature(&r, &a, ArchiveKind::Db, old.as_deref()).expect("a stale signature");
    repo.blobs()
        .write_archive_signature(&r, &a, ArchiveKind::Files, Some(b"garbage"))
        .expect("a bad signature");
    let report = repo.recover().expect("recovering");
    assert_eq!((report.archives_rewritten, report.signatures_written), (0, 2), "{report:?}");
    signatures_hold(&repo, "after recovery from stale signatures");
}

fn signer_fails_at_every_signature<S: RepoStore, B: BlobStore>(
    make: &mut impl FnMut() -> (S, B),
    scenario: Scenario,
) {
    for k in 0.. {
        assert!(k < 64, "{scenario:?}: still signing after 64 signatures");
        let repo = signed(make());
        scenario.prepare(&repo);
        let (store, blobs) = repo.into_parts();
        let signer = std::sync::Arc::new(TestSigner::failing_at(k));
        let repo =
            Repository::new(store, blobs, arch("x86_64"), DbFormat::Current, at).with_signer(signer.clone());
        let result = scenario.run(&repo);
        let when = format!("{scenario:?} with signature {k} failing");
        served_files_exist(&repo, &when);
        signatures_hold(&repo, &when);
        let failed = signer.started() > k;
        match (&result, failed) {
            (Err(e), true) => {
                assert!(
                    matches!(e, super::RepoError::Sign(_)),
                    "{when}: a signing failure is reported as one: {e}"
                );
                assert!(!e.is_invalid_input(), "{when}: not the client's mistake");
            }
            (Err(e), false) => panic!("{when}: failed without a fault: {e}"),
            (Ok(()), _) => {}
        }
        let (store, blobs) = repo.into_parts();
        let repo = signed((store, blobs));
        repo.recover().unwrap_or_else(|e| panic!("{when}: recovery failed: {e}"));
        consistent(&repo, &format!("{when}, after recovery"));
        signatures_hold(&repo, &format!("{when}, after recovery"));
        if !failed {
            break;
        }
    }
}

fn repository<S: RepoStore, B: BlobStore>((store, blobs): (S, B)) -> Repository<S, B> {
    Repository::new(store, blobs, arch("x86_64"), DbFormat::Current, at)
}

/// With deferred archives, a publish leaves the archives behind the store until they are read
/// ([`Repository::current_archives`]) or settled; then they are what the store says. A replaced
/// package's file is deleted only once no archive names it, and an arch-repo removed while its
/// archives were behind is not written back.
fn deferred_archives<S: RepoStore, B: BlobStore>(pair: (S, B)) {
    let repo = repository(pair).with_deferred_archives();
    let (r, x86) = (repo_name("extra"), arch("x86_64"));
    publish(&repo, "extra", &package_bytes("a", "1-1", "x86_64", &[])).expect("publishing a");
    assert!(repo.archives_stale(&r, &x86) && repo.unsettled(), "deferred");
    repo.current_archives(&r, &x86).expect("writing the archives");
    assert!(!repo.archives_stale(&r, &x86), "current once read");
    assert_eq!(names(repo.blobs(), "extra", "x86_64"), ["a"]);
    for name in ["c", "b"] {
        publish(&repo, "extra", &package_bytes(name, "1-1", "x86_64", &[])).expect("publishing");
    }
    assert_eq!(names(repo.blobs(), "extra", "x86_64"), ["a"], "behind until read or settled");
    repo.settle().expect("settling");
    assert!(!repo.unsettled(), "nothing left to write");
    assert_eq!(names(repo.blobs(), "extra", "x86_64"), ["a", "b", "c"]);
    consistent(&repo, "deferred, settled");
    publish(&repo, "extra", &package_bytes("a", "2-1", "x86_64", &[])).expect("replacing a");
    assert!(!repo.archives_stale(&r, &x86), "written before the replaced file was deleted");
    consistent(&repo, "deferred, a package replaced");
    publish(&repo, "extra", &package_bytes("d", "1-1", "x86_64", &[])).expect("publishing d");
    assert!(repo.remove(&r, Removal::ArchRepo(&x86)).expect("removing the arch-repo"));
    repo.settle().expect("settling");
    consistent(&repo, "deferred, the arch-repo removed while behind");
    assert!(repo.blobs().archive_dirs().expect("archive dirs").is_empty(), "not written back");
}

fn publish<S: RepoStore, B: BlobStore>(
    repo: &Repository<S, B>,
    r: &str,
    bytes: &[u8],
) -> Result<crate::api::PublishResult, super::RepoError> {
    let mut upload = repo.blobs().create_upload().expect("an upload");
    upload.write_all(bytes).expect("writing an upload");
    repo.publish(&repo_name(r), upload)
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The archive of an arch-repo, read back, as `name → (filename, sha256)`.
fn served<B: BlobStore>(
    blobs: &B,
    repo: &str,
    a: &str,
    kind: ArchiveKind,
) -> Option<Vec<(String, String, String)>> {
    let archive = blobs.open_archive(&repo_name(repo), &arch(a), kind).expect("opening an archive")?;
    Some(read_archive(archive))
}

fn read_archive(archive: impl Read) -> Vec<(String, String, String)> {
    let db = Database::read(io::BufReader::new(archive)).expect("a served archive pacman can read");
    db.iter()
        .map(|e| {
            let mut lines = e.entry.desc.lines();
            let sha = lines.by_ref().find(|l| *l == "%SHA256SUM%").and_then(|_| lines.next());
            (e.entry.name.to_string(), e.entry.filename.clone(), sha.unwrap_or_default().to_owned())
        })
        .collect()
}

fn names<B: BlobStore>(blobs: &B, repo: &str, a: &str) -> Vec<String> {
    served(blobs, repo, a, ArchiveKind::Db).unwrap_or_default().into_iter().map(|(n, ..)| n).collect()
}

/// What must hold at any instant: every archive (of any arch-repo, live or stale) names only package
/// files that are kept, each by the hash its entry gives.
fn served_files_exist<S: RepoStore, B: BlobStore>(repo: &Repository<S, B>, when: &str) {
    let held: BTreeSet<String> =
        repo.blobs().package_hashes().expect("listing packages").into_iter().collect();
    for dir in repo.blobs().archive_dirs().expect("listing archives") {
        let (Ok(r), Ok(a)) = (RepoName::new(dir.repo.as_str()), Arch::new(dir.arch.as_str())) else {
            continue;
        };
        for kind in [ArchiveKind::Db, ArchiveKind::Files] {
            let Some(archive) = repo.blobs().open_archive(&r, &a, kind).expect("opening an archive") else {
                continue;
            };
            for (name, filename, sha) in read_archive(archive) {
                assert!(
                    held.contains(&sha),
                    "{when}: {r}/{a} serves {name} as {filename}, whose package file ({sha}) is gone"
                );
            }
        }
    }
}

/// What must hold after recovery: each live arch-repo's archives are what the store says, no other
/// arch-repo has archives, every referenced file is kept and no other.
fn consistent<S: RepoStore, B: BlobStore>(repo: &Repository<S, B>, when: &str) {
    served_files_exist(repo, when);
    let store = repo.store();
    let live: BTreeSet<(RepoName, Arch)> =
        store.arch_repos().expect("listing arch-repos").into_iter().map(|(r, a, _)| (r, a)).collect();
    for (r, a) in &live {
        let expected: Vec<String> =
            store.summaries(r, a).expect("summaries").into_iter().map(|s| s.name.to_string()).collect();
        for kind in [ArchiveKind::Db, ArchiveKind::Files] {
            let got = served(repo.blobs(), r.as_str(), a.as_str(), kind);
            let got: Option<Vec<String>> = got.map(|v| v.into_iter().map(|(n, ..)| n).collect());
            assert_eq!(
                got.as_ref(),
                Some(&expected),
                "{when}: the {kind:?} archive of {r}/{a} is not what the store says"
            );
            // Byte for byte the store's members (written from the members the repository keeps).
            let mut fresh = Vec::new();
            store
                .each_member(r, a, kind, &mut |_, member| {
                    fresh.extend_from_slice(member);
                    Ok(())
                })
                .expect("reading members");
            crate::db::write_archive(&mut fresh, kind, std::iter::empty()).expect("the archive's end");
            let mut written = Vec::new();
            let mut archive = repo.blobs().open_archive(r, a, kind).expect("opening").expect("an archive");
            archive.read_to_end(&mut written).expect("reading the archive");
            assert!(written == fresh, "{when}: the {kind:?} archive of {r}/{a} is not the store's members");
        }
    }
    let dirs: BTreeSet<ArchiveDir> =
        repo.blobs().archive_dirs().expect("listing archives").into_iter().collect();
    let live_dirs: BTreeSet<ArchiveDir> =
        live.iter().map(|(r, a)| ArchiveDir { repo: r.to_string(), arch: a.to_string() }).collect();
    assert_eq!(dirs, live_dirs, "{when}: archives of arch-repos that do not exist (or missing ones)");
    let held: BTreeSet<String> =
        repo.blobs().package_hashes().expect("listing packages").into_iter().collect();
    let referenced = store.pool_hashes().expect("pool hashes");
    assert_eq!(held, referenced, "{when}: package files kept vs referenced");
    let signed: BTreeSet<String> =
        repo.blobs().signature_hashes().expect("listing signatures").into_iter().collect();
    assert!(
        signed.is_subset(&held),
        "{when}: signatures without their package file: {:?}",
        signed.difference(&held)
    );
}

fn publish_replace_remove<S: RepoStore, B: BlobStore>(pair: (S, B)) {
    let repo = repository(pair);
    let v1 = package_bytes("hello", "1.0-1", "x86_64", &["usr/", "usr/bin/", "usr/bin/hello"]);
    let result = publish(&repo, "extra", &v1).expect("publishing hello 1.0");
    assert_eq!(result.archs, [arch("x86_64")]);
    assert_eq!(result.name.as_str(), "hello");
    let files = served(repo.blobs(), "extra", "x86_64", ArchiveKind::Files).expect("a files archive");
    assert_eq!(files, [("hello".into(), "hello-1.0-1-x86_64.pkg.tar.zst".into(), sha256(&v1))]);
    let (r, a, n) = (repo_name("extra"), arch("x86_64"), pkg_name("hello"));
    assert_eq!(
        repo.store().file_hash(&r, &a, "hello-1.0-1-x86_64.pkg.tar.zst").expect("file hash"),
        Some(sha256(&v1))
    );
    let (summary, _) = repo.store().package(&r, &a, &n).expect("reading").expect("hello is recorded");
    assert_eq!(summary.version.to_string(), "1.0-1");
    assert_eq!(summary.published_at, at());
    let (page, total) =
        repo.store().file_page(&r, &a, &n, 1, 10, 1 << 20).expect("a page").expect("hello's files");
    assert_eq!((page, total), (vec!["usr/bin/".to_owned(), "usr/bin/hello".to_owned()], 3));
    let (page, _) = repo.store().file_page(&r, &a, &n, 0, 10, 1).expect("a page").expect("hello's files");
    assert_eq!(page, ["usr/"], "a page past its byte budget still holds one name");
    consistent(&repo, "after the first publish");

    let v2 = package_bytes("hello", "1.1-1", "x86_64", &["usr/", "usr/bin/", "usr/bin/hello2"]);
    publish(&repo, "extra", &v2).expect("publishing hello 1.1");
    let db = served(repo.blobs(), "extra", "x86_64", ArchiveKind::Db).expect("a db");
    assert_eq!(
        db,
        [("hello".into(), "hello-1.1-1-x86_64.pkg.tar.zst".into(), sha256(&v2))],
        "the new version replaces the old"
    );
    assert_eq!(repo.store().file_hash(&r, &a, "hello-1.0-1-x86_64.pkg.tar.zst").expect("file hash"), None);
    consistent(&repo, "after replacing a version (the old file is deleted)");

    let other = package_bytes("other", "2-1", "x86_64", &["usr/share/other"]);
    publish(&repo, "extra", &other).expect("publishing other");
    assert_eq!(names(repo.blobs(), "extra", "x86_64"), ["hello", "other"]);

    assert!(repo.remove(&r, Removal::Package(&a, &n)).expect("removing hello"), "hello was there");
    assert!(!repo.remove(&r, Removal::Package(&a, &n)).expect("removing hello again"), "hello is gone");
    assert_eq!(names(repo.blobs(), "extra", "x86_64"), ["other"]);
    let other_name = pkg_name("other");
    assert!(repo.remove(&r, Removal::Package(&a, &other_name)).expect("removing other"));
    assert_eq!(
        served(repo.blobs(), "extra", "x86_64", ArchiveKind::Db),
        Some(vec![]),
        "an arch-repo emptied by name keeps an empty database"
    );
    assert!(repo.store().has_arch_repo(&r, &a).expect("has"), "and stays");
    consistent(&repo, "after removing by name");
    assert!(repo.remove(&r, Removal::ArchRepo(&a)).expect("removing the arch-repo"));
    assert_eq!(served(repo.blobs(), "extra", "x86_64", ArchiveKind::Db), None, "its database is gone");
    assert!(!repo.remove(&r, Removal::ArchRepo(&a)).expect("removing it again"));
    assert!(!repo.remove(&repo_name("nothing"), Removal::Repo).expect("removing an unknown repository"));
    consistent(&repo, "after removing the arch-repo");
}

/// Publishes from many threads at once (group commit): each is answered with where it went, every
/// package is there afterwards, the last version of a name each thread replaces wins, the archives are
/// the store's and the replaced files are gone, without a recovery.
/// With archive writes slowed down, publishes that wait share them.
fn concurrent_publishes<S: RepoStore, B: BlobStore>((store, blobs): (S, B)) {
    let mut slow = Faulty::new(blobs, usize::MAX);
    slow.slower = std::time::Duration::from_millis(10);
    let repo = repository((store, slow));
    const THREADS: usize = 6;
    const EACH: usize = 5;
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let repo = &repo;
            scope.spawn(move || {
                for i in 0..EACH {
                    let own = package_bytes(&format!("p{t}-{i}"), "1-1", "x86_64", &["usr/", "usr/own"]);
                    let result = publish(repo, "extra", &own).expect("publishing a package of its own");
                    assert_eq!(result.archs, [arch("x86_64")]);
                    // One name per thread, replaced by each new version.
                    let mine = package_bytes(&format!("mine{t}"), &format!("{i}-1"), "x86_64", &["usr/mine"]);
                    publish(repo, "extra", &mine).expect("publishing a new version");
                    let any = package_bytes(&format!("any{t}"), &format!("{i}-1"), "any", &["usr/any"]);
                    let result = publish(repo, "extra", &any).expect("publishing an any package");
                    assert_eq!(result.archs, [arch("x86_64")], "any goes to the one arch there is");
                }
            });
        }
    });
    let (r, a) = (repo_name("extra"), arch("x86_64"));
    let summaries = repo.store().summaries(&r, &a).expect("summaries");
    assert_eq!(summaries.len(), THREADS * EACH + 2 * THREADS, "every package is recorded once");
    for t in 0..THREADS {
        for prefix in ["mine", "any"] {
            let name = format!("{prefix}{t}");
            let last = summaries.iter().find(|s| s.name.as_str() == name).expect("the replaced name");
            assert_eq!(last.version.to_string(), format!("{}-1", EACH - 1), "{name}: the last version wins");
        }
    }
    consistent(&repo, "after concurrent publishes");
    let publishes = THREADS * EACH * 3;
    let writes = repo.blobs().writes();
    assert!(
        writes < 2 * publishes,
        "{publishes} concurrent publishes wrote {writes} archives (2 per publish alone): none was shared"
    );
}

fn listings<S: RepoStore, B: BlobStore>(pair: (S, B)) {
    use crate::api::{FilesQuery, ListQuery};
    let repo = repository(pair);
    let files: Vec<String> = (0..1500).map(|i| format!("usr/share/big/{i:04}")).collect();
    let file_refs: Vec<&str> = files.iter().map(String::as_str).collect();
    publish(&repo, "extra", &package_bytes("big", "1-1", "x86_64", &file_refs)).expect("publishing big");
    for name in ["alpha", "beta", "gamma"] {
        publish(&repo, "extra", &package_bytes(name, "1-1", "x86_64", &[])).expect("publishing");
    }
    publish(&repo, "core", &package_bytes("base", "1-1", "aarch64", &[])).expect("publishing base");
    let repos = repo.repos().expect("repos");
    let shape: Vec<(String, Vec<(String, u64)>)> = repos
        .iter()
        .map(|r| (r.name.clone(), r.archs.iter().map(|a| (a.arch.to_string(), a.packages)).collect()))
        .collect();
    assert_eq!(
        shape,
        [("core".into(), vec![("aarch64".into(), 1)]), ("extra".into(), vec![("x86_64".into(), 4)])]
    );
    assert!(repos[1].archs[0].size > 0, "sizes are summed");

    let (r, a) = (repo_name("extra"), arch("x86_64"));
    let list = |q: ListQuery| -> Vec<String> {
        let page = repo.packages(&r, &a, &q).expect("packages").expect("extra/x86_64 exists");
        page.into_iter().map(|s| s.name.to_string()).collect()
    };
    assert_eq!(list(ListQuery::default()), ["alpha", "beta", "big", "gamma"], "name order");
    assert_eq!(list(ListQuery { offset: Some(1), limit: Some(2), ..ListQuery::default() }), ["beta", "big"]);
    // The description of every package names it "for the conformance suite".
    assert_eq!(list(ListQuery { query: Some("GAM".into()), ..ListQuery::default() }), ["gamma"]);
    assert_eq!(list(ListQuery { query: Some("Conformance".into()), ..ListQuery::default() }).len(), 4);
    assert!(repo.packages(&r, &arch("aarch64"), &ListQuery::default()).expect("packages").is_none());
    // Sorting: ties keep name order; `desc` reverses; the page says how many matched in all.
    use crate::api::PackageSort;
    let sorted = |sort, desc| ListQuery { sort: Some(sort), desc: Some(desc), ..ListQuery::default() };
    assert_eq!(list(sorted(PackageSort::Size, true))[0], "big", "the largest file first");
    assert_eq!(
        list(sorted(PackageSort::Version, false)),
        ["alpha", "beta", "big", "gamma"],
        "equal versions"
    );
    assert_eq!(list(sorted(PackageSort::Name, true)), ["gamma", "big", "beta", "alpha"]);
    let page = repo
        .package_page(
            &r,
            &a,
            &ListQuery { query: Some("conformance".into()), limit: Some(1), ..ListQuery::default() },
        )
        .expect("a page")
        .expect("extra/x86_64 exists");
    assert_eq!((page.total, page.offset, page.packages.len()), (4, 0, 1), "all four match");

    let detail =
        |q: FilesQuery| repo.package(&r, &a, &pkg_name("big"), &q).expect("package").expect("big exists");
    let first = detail(FilesQuery::default());
    assert_eq!((first.files.len(), first.files_total), (1000, 1500), "a page of 1,000 names by default");
    assert_eq!(first.files[0], files[0]);
    let rest = detail(FilesQuery { files_offset: Some(1000), files_limit: Some(20_000) });
    assert_eq!(rest.files, files[1000..], "the limit is capped, the rest comes whole");
    assert_eq!(first.summary.name.as_str(), "big");
    assert!(repo.package(&r, &a, &pkg_name("nothing"), &FilesQuery::default()).expect("package").is_none());

    // Listings read again after every kind of change see it (what they keep is never stale).
    let counts = || -> Vec<(String, String, u64)> {
        let repos = repo.repos().expect("repos");
        repos
            .iter()
            .flat_map(|r| r.archs.iter().map(|a| (r.name.clone(), a.arch.to_string(), a.packages)))
            .collect()
    };
    let before = counts();
    assert_eq!(list(ListQuery::default()), list(ListQuery::default()), "a second read is the same");
    publish(&repo, "extra", &package_bytes("delta", "1-1", "x86_64", &[])).expect("publishing delta");
    assert_eq!(list(ListQuery::default()), ["alpha", "beta", "big", "delta", "gamma"], "a publish is listed");
    publish(&repo, "extra", &package_bytes("delta", "2-1", "x86_64", &[])).expect("replacing delta");
    let delta = repo.packages(&r, &a, &ListQuery { query: Some("delta".into()), ..ListQuery::default() });
    assert_eq!(
        delta.expect("packages").expect("extra/x86_64")[0].version.to_string(),
        "2-1",
        "a replacement"
    );
    assert!(repo.remove(&r, Removal::Package(&a, &pkg_name("alpha"))).expect("removing alpha"));
    assert_eq!(list(ListQuery::default()), ["beta", "big", "delta", "gamma"], "a removal is listed");
    assert!(repo.create_arch_repo(&r, &arch("aarch64")).expect("creating extra/aarch64"));
    assert_eq!(counts().len(), before.len() + 1, "a new arch-repo is listed");
    assert!(repo.remove(&repo_name("core"), Removal::Repo).expect("removing core"));
    assert!(counts().iter().all(|(name, ..)| name != "core"), "a removed repository is gone: {:?}", counts());
    assert!(repo
        .packages(&repo_name("core"), &arch("aarch64"), &ListQuery::default())
        .expect("read")
        .is_none());
}

fn same_file_twice_writes_nothing<S: RepoStore, B: BlobStore>(pair: (S, B)) {
    let repo = repository(pair);
    let bytes = package_bytes("same", "1-1", "x86_64", &["etc/same.conf"]);
    publish(&repo, "core", &bytes).expect("publishing");
    let before = repo.store().arch_repos().expect("arch-repos");
    let (store, blobs) = repo.into_parts();
    let counting = Faulty::new(blobs, usize::MAX);
    let repo = Repository::new(store, counting, arch("x86_64"), DbFormat::Current, || {
        at() + chrono::Duration::hours(1)
    });
    let result = publish(&repo, "core", &bytes).expect("publishing the same file again");
    assert_eq!(result.archs, [arch("x86_64")], "the same file is reported where it is");
    assert_eq!(
        repo.blobs().writes(),
        0,
        "publishing the file an arch-repo already serves rewrites no archive"
    );
    assert_eq!(repo.store().arch_repos().expect("arch-repos"), before, "and records no change");
    assert!(!repo
        .remove(&repo_name("core"), Removal::Package(&arch("x86_64"), &pkg_name("absent")))
        .expect("removing"));
    assert_eq!(repo.blobs().writes(), 0, "removing what is not there writes nothing");
}

/// Each name's history in an arch-repo: the versions published (the same file again adds nothing), a
/// removal, an `any` package's in each arch-repo it went to, the newest kept; removing an arch-repo
/// forgets its histories.
fn package_histories<S: RepoStore, B: BlobStore>(pair: (S, B)) {
    use super::store::RepoTxn;
    use crate::api::PackageChange::{self, Published, Removed};
    let repo = repository(pair);
    let (core, x86, hello) = (repo_name("core"), arch("x86_64"), pkg_name("hello"));
    let changes = |a: &Arch, n: &PkgName| -> Vec<(PackageChange, String)> {
        let history = repo.history(&core, a, n).expect("a history");
        history.into_iter().map(|e| (e.change, e.version.to_string())).collect()
    };
    publish(&repo, "core", &package_bytes("hello", "1.0-1", "x86_64", &[])).expect("publishing 1.0");
    let newer = package_bytes("hello", "1.1-1", "x86_64", &[]);
    publish(&repo, "core", &newer).expect("publishing 1.1");
    publish(&repo, "core", &newer).expect("publishing 1.1 again");
    assert_eq!(changes(&x86, &hello), [(Published, "1.1-1".into()), (Published, "1.0-1".into())]);
    let detail = repo.package(&core, &x86, &hello, &Default::default()).expect("reading").expect("hello");
    assert_eq!(detail.history.len(), 2, "the package's detail has its history");
    assert_eq!(detail.history[0].filename, detail.summary.filename);
    assert_eq!(detail.history[0].at, detail.summary.published_at);
    assert!(repo.remove(&core, Removal::Package(&x86, &hello)).expect("removing"));
    assert_eq!(
        changes(&x86, &hello),
        [(Removed, "1.1-1".into()), (Published, "1.1-1".into()), (Published, "1.0-1".into())],
        "a removed name keeps its history"
    );
    publish(&repo, "core", &package_bytes("any-hist", "2-1", "aarch64", &[])).expect("an aarch64 package");
    publish(&repo, "core", &package_bytes("docs", "3-1", "any", &[])).expect("an any package");
    for a in [arch("x86_64"), arch("aarch64")] {
        assert_eq!(changes(&a, &pkg_name("docs")), [(Published, "3-1".into())], "{a}");
    }
    assert!(repo.remove(&core, Removal::ArchRepo(&x86)).expect("removing core/x86_64"));
    assert!(changes(&x86, &hello).is_empty() && changes(&x86, &pkg_name("docs")).is_empty());
    assert_eq!(changes(&arch("aarch64"), &pkg_name("docs")).len(), 1, "another arch-repo keeps its own");

    // The store keeps the newest `keep` events of a name.
    let capped = pkg_name("capped");
    let mut txn = repo.store().begin().expect("a transaction");
    for i in 0..5i64 {
        let event = crate::api::PackageEvent {
            at: at() + chrono::Duration::seconds(i),
            change: Published,
            version: format!("{i}-1").parse().expect("a version"),
            filename: format!("capped-{i}-1-x86_64.pkg.tar.zst"),
        };
        txn.push_history(&core, &x86, &capped, &event, 3).expect("pushing");
    }
    txn.commit().expect("committing");
    let versions: Vec<String> = changes(&x86, &capped).into_iter().map(|(_, v)| v).collect();
    assert_eq!(versions, ["4-1", "3-1", "2-1"], "the newest three, newest first");
}

fn any_packages<S: RepoStore, B: BlobStore>(pair: (S, B)) {
    let repo = repository(pair);
    let arm = package_bytes("arm-tool", "1-1", "aarch64", &["usr/bin/arm-tool"]);
    publish(&repo, "extra", &arm).expect("publishing an aarch64 package");
    let docs = package_bytes("docs", "1-1", "any", &["usr/share/doc/docs"]);
    let result = publish(&repo, "extra", &docs).expect("publishing an any package");
    assert_eq!(result.archs, [arch("aarch64"), arch("x86_64")], "any goes to every arch and the default one");
    assert_eq!(names(repo.blobs(), "extra", "aarch64"), ["arm-tool", "docs"]);
    assert_eq!(names(repo.blobs(), "extra", "x86_64"), ["docs"]);
    assert_eq!(served(repo.blobs(), "extra", "any", ArchiveKind::Db), None, "no `any` arch-repo is made");
    let docs_sha = sha256(&docs);
    assert_eq!(
        repo.blobs().package_hashes().expect("packages").iter().filter(|h| **h == docs_sha).count(),
        1,
        "one package file for both arches"
    );
    let (r, docs_name) = (repo_name("extra"), pkg_name("docs"));
    repo.remove(&r, Removal::Package(&arch("x86_64"), &docs_name)).expect("removing docs from x86_64");
    assert!(repo.store().is_referenced(&docs_sha).expect("refs"), "aarch64 still serves docs");
    consistent(&repo, "after removing an any package from one arch");
    repo.remove(&r, Removal::Package(&arch("aarch64"), &docs_name)).expect("removing docs from aarch64");
    assert!(!repo.store().is_referenced(&docs_sha).expect("refs"));
    consistent(&repo, "after removing it from the other");

    // A new version of an any package replaces the old one in every arch.
    publish(&repo, "extra", &docs).expect("publishing docs again");
    let docs2 = package_bytes("docs", "2-1", "any", &["usr/share/doc/docs2"]);
    publish(&repo, "extra", &docs2).expect("publishing docs 2");
    for a in ["aarch64", "x86_64"] {
        let db = served(repo.blobs(), "extra", a, ArchiveKind::Db).expect("a db");
        assert!(
            db.contains(&("docs".into(), "docs-2-1-any.pkg.tar.zst".into(), sha256(&docs2))),
            "{a}: {db:?}"
        );
    }
    consistent(&repo, "after replacing an any package");
    assert!(repo.remove(&r, Removal::Repo).expect("removing the repository"));
    assert!(repo.store().arch_repos().expect("arch-repos").is_empty());
    consistent(&repo, "after removing the repository");
}

fn created_arch_repos<S: RepoStore, B: BlobStore>(pair: (S, B)) {
    let repo = repository(pair);
    let (r, riscv) = (repo_name("extra"), arch("riscv64"));
    assert!(repo.create_arch_repo(&r, &riscv).expect("creating extra/riscv64"));
    assert_eq!(served(repo.blobs(), "extra", "riscv64", ArchiveKind::Db), Some(vec![]), "an empty db");
    assert_eq!(served(repo.blobs(), "extra", "riscv64", ArchiveKind::Files), Some(vec![]), "empty files");
    assert_eq!(repo.store().arches_of(&r).expect("arches"), BTreeSet::from([riscv.clone()]));
    consistent(&repo, "after creating an arch-repo");

    // It exists: nothing is written.
    let before = repo.store().arch_repos().expect("arch-repos");
    assert!(!repo.create_arch_repo(&r, &riscv).expect("creating it again"));
    assert_eq!(repo.store().arch_repos().expect("arch-repos"), before, "its time is unchanged");

    // An `any` package goes to it (and to the default arch).
    let docs = package_bytes("docs", "1-1", "any", &["usr/share/doc/docs"]);
    let result = publish(&repo, "extra", &docs).expect("publishing an any package");
    assert_eq!(result.archs, [arch("riscv64"), arch("x86_64")]);
    assert_eq!(names(repo.blobs(), "extra", "riscv64"), ["docs"]);
    // Creating an arch-repo that has packages changes nothing.
    assert!(!repo.create_arch_repo(&r, &riscv).expect("creating it once more"));
    assert_eq!(names(repo.blobs(), "extra", "riscv64"), ["docs"]);

    let err = repo.create_arch_repo(&r, &arch("any")).expect_err("`any` is no arch-repo");
    assert!(err.is_invalid_input() && matches!(err, super::RepoError::AnyArchRepo), "{err}");
    assert_eq!(served(repo.blobs(), "extra", "any", ArchiveKind::Db), None);
    consistent(&repo, "after creating arch-repos");
}

fn invalid_uploads_change_nothing<S: RepoStore, B: BlobStore>(pair: (S, B)) {
    let repo = repository(pair);
    let good = package_bytes("good", "1-1", "x86_64", &["usr/bin/good"]);
    publish(&repo, "extra", &good).expect("publishing");
    for (what, bytes) in [
        ("empty", Vec::new()),
        ("not an archive", b"hello, world".to_vec()),
        ("a tar without .PKGINFO", zstd::encode_all(&[0u8; 1024][..], 1).expect("zstd")),
        ("a broken version", package_bytes("bad", "1:-1", "x86_64", &[])),
    ] {
        let err = publish(&repo, "extra", &bytes).expect_err(what);
        assert!(err.is_invalid_input(), "{what}: {err} is the client's mistake");
    }
    assert_eq!(names(repo.blobs(), "extra", "x86_64"), ["good"]);
    consistent(&repo, "after refused uploads");
}

fn recovery_cleans_up<S: RepoStore, B: BlobStore>(pair: (S, B)) {
    let repo = repository(pair);
    let pkg = package_bytes("keep", "1-1", "x86_64", &["usr/bin/keep"]);
    publish(&repo, "extra", &pkg).expect("publishing");
    let report = repo.recover().expect("recovering a clean repository");
    assert_eq!((report.archives_unchanged, report.archives_rewritten), (1, 0), "{report:?}");
    assert_eq!((report.orphans_removed, report.stale_archives_removed), (0, 0), "{report:?}");
    // An orphan package file and a stale arch-repo's archives, as a crash may leave them.
    let mut orphan = repo.blobs().create_upload().expect("an upload");
    orphan.write_all(b"orphan").expect("writing");
    repo.blobs().keep_package(orphan, &sha256(b"orphan")).expect("keeping");
    let empty = |mut out: &mut dyn Write| {
        crate::db::write_archive(&mut out, ArchiveKind::Db, std::iter::empty()).map(|()| None)
    };
    repo.blobs()
        .write_archive(&repo_name("gone"), &arch("x86_64"), ArchiveKind::Db, SystemTime::UNIX_EPOCH, &mut {
            empty
        })
        .expect("writing a stale archive");
    let report = repo.recover().expect("recovering");
    assert_eq!((report.orphans_removed, report.stale_archives_removed), (1, 1), "{report:?}");
    consistent(&repo, "after recovery");
    // A signature kept by a publish that was interrupted before its package file was.
    let stray = sha256(b"never kept");
    repo.blobs().keep_package_signature(&stray, b"a signature").expect("keeping a signature");
    let report = repo.recover().expect("recovering");
    assert_eq!(report.orphans_removed, 1, "{report:?}");
    assert_eq!(repo.blobs().package_signature(&stray).expect("reading"), None, "the stray signature is gone");
    consistent(&repo, "after removing a stray signature");
}

/// A change whose every blob operation is made to fail in turn.
#[derive(Debug, Clone, Copy)]
enum Scenario {
    /// A new version over an old one (keep, two archives, delete the old file).
    Replace,
    /// An `any` package into a repository with two arches.
    Any,
    /// A package removed by name.
    RemovePackage,
    /// A whole repository removed.
    RemoveRepo,
    /// An empty arch-repo created.
    CreateArchRepo,
}

impl Scenario {
    const ALL: [Scenario; 5] = [
        Scenario::Replace,
        Scenario::Any,
        Scenario::RemovePackage,
        Scenario::RemoveRepo,
        Scenario::CreateArchRepo,
    ];

    fn prepare<S: RepoStore, B: BlobStore>(self, repo: &Repository<S, B>) {
        publish(repo, "extra", &package_bytes("app", "1-1", "x86_64", &["usr/bin/app"])).expect("app 1");
        publish(repo, "extra", &package_bytes("lib", "1-1", "aarch64", &["usr/lib/lib.so"])).expect("lib");
        publish(repo, "extra", &package_bytes("docs", "1-1", "any", &["usr/share/doc/d"])).expect("docs");
    }

    fn run<S: RepoStore, B: BlobStore>(self, repo: &Repository<S, B>) -> Result<(), super::RepoError> {
        let r = repo_name("extra");
        match self {
            Scenario::Replace => {
                publish(repo, "extra", &package_bytes("app", "2-1", "x86_64", &["usr/bin/app2"])).map(drop)
            }
            Scenario::Any => {
                publish(repo, "extra", &package_bytes("docs", "2-1", "any", &["usr/share/doc/d2"])).map(drop)
            }
            Scenario::RemovePackage => {
                repo.remove(&r, Removal::Package(&arch("x86_64"), &pkg_name("app"))).map(drop)
            }
            Scenario::RemoveRepo => repo.remove(&r, Removal::Repo).map(drop),
            Scenario::CreateArchRepo => repo.create_arch_repo(&r, &arch("riscv64")).map(drop),
        }
    }
}

fn reopen<S: RepoStore, B: BlobStore>(store: S, blobs: B, sign: bool) -> Repository<S, B> {
    let repo = Repository::new(store, blobs, arch("x86_64"), DbFormat::Current, at);
    if sign {
        repo.with_signer(TestSigner::new())
    } else {
        repo
    }
}

fn crash_at_every_step<S: RepoStore, B: BlobStore>(
    make: &mut impl FnMut() -> (S, B),
    scenario: Scenario,
    sign: bool,
) {
    for k in 0.. {
        assert!(k < 64, "{scenario:?}: still failing after 64 operations");
        let repo = if sign { signed(make()) } else { repository(make()) };
        scenario.prepare(&repo);
        let (store, blobs) = repo.into_parts();
        let repo = reopen(store, Faulty::new(blobs, k), sign);
        let result = scenario.run(&repo);
        let signed_or_not = if sign { "signed, " } else { "" };
        let when = format!("{scenario:?} ({signed_or_not}blob operation {k} failing)");
        served_files_exist(&repo, &when);
        if sign {
            signatures_hold(&repo, &when);
        } else {
            unsigned_everywhere(&repo, &when);
        }
        let failed = repo.blobs().failed();
        if failed {
            if let Err(e) = &result {
                assert!(!e.is_invalid_input(), "{when}: a storage failure is not the client's mistake: {e}");
            }
        } else {
            result.unwrap_or_else(|e| panic!("{when}: failed without a fault: {e}"));
        }
        // Restart: recovery over the same data, faults gone.
        let (store, faulty) = repo.into_parts();
        let repo = reopen(store, faulty.inner, sign);
        repo.recover().unwrap_or_else(|e| panic!("{when}: recovery failed: {e}"));
        consistent(&repo, &format!("{when}, after recovery"));
        if sign {
            signatures_hold(&repo, &format!("{when}, after recovery"));
        }
        if !failed {
            break;
        }
    }
}

/// A repository signed by the unnamed test key, with `a` (x86_64) and `b` (any, in x86_64 and aarch64),
/// in the format that embeds signatures, then reopened with key `k2` that retires it.
fn rotated<S: RepoStore, B: BlobStore>(pair: (S, B), fail_at: Option<usize>) -> Repository<S, Faulty<B>> {
    let (store, blobs) = pair;
    let old =
        Repository::new(store, blobs, arch("x86_64"), DbFormat::WithMd5, at).with_signer(TestSigner::new());
    old.create_arch_repo(&repo_name("extra"), &arch("aarch64")).expect("an arch-repo");
    for (name, a) in [("a", "x86_64"), ("b", "any")] {
        publish(&old, "extra", &package_bytes(name, "1-1", a, &[])).expect("publishing");
    }
    let (store, blobs) = old.into_parts();
    let faulty = Faulty::new(blobs, fail_at.unwrap_or(usize::MAX));
    Repository::new(store, faulty, arch("x86_64"), DbFormat::WithMd5, at)
        .with_signer(TestSigner::keyed("k2", &[None]))
}

/// Every package file, every `%PGPSIG%` of `extra/x86_64` and every archive signed by `k2`.
fn signed_by_k2<S: RepoStore, B: BlobStore>(repo: &Repository<S, B>, when: &str) {
    let blobs = repo.blobs();
    for (name, a) in [("a", "x86_64"), ("b", "any")] {
        let bytes = package_bytes(name, "1-1", a, &[]);
        let k2 = TestSigner::keyed_signature_of(Some("k2"), &bytes);
        assert_eq!(
            blobs.package_signature(&sha256(&bytes)).expect("sig"),
            Some(k2.clone()),
            "{when}: {name}.sig"
        );
        assert_eq!(pgpsig(blobs, name), Some(k2), "{when}: %PGPSIG% of {name}");
    }
    for a in ["x86_64", "aarch64"] {
        for kind in [ArchiveKind::Db, ArchiveKind::Files] {
            let archive = blobs.open_archive(&repo_name("extra"), &arch(a), kind).expect("opening");
            let bytes = bytes_of(archive.expect("the archive"));
            assert_eq!(
                blobs.archive_signature(&repo_name("extra"), &arch(a), kind).expect("sig"),
                Some(TestSigner::keyed_signature_of(Some("k2"), &bytes)),
                "{when}: the {kind:?} archive of extra/{a}"
            );
        }
    }
}

/// A rotation: recovery re-signs the archives, [`Repository::resign`] every package file and every
/// embedded `%PGPSIG%`, reporting its progress; a second run changes nothing; interrupted at any blob
/// operation, the next run (after recovery) converges.
fn key_rotation<S: RepoStore, B: BlobStore>(make: &mut impl FnMut() -> (S, B)) {
    use crate::api::ResignState;
    let repo = rotated(make(), None);
    repo.recover().expect("recovery");
    assert_eq!(repo.resign_status().state, ResignState::Idle, "no re-sign ran yet");
    let mut seen = Vec::new();
    let done = repo.resign(&mut |p| seen.push(p.clone())).expect("re-signing");
    let status = repo.resign_status();
    assert_eq!(status.state, ResignState::Done, "{status:?}");
    assert_eq!(status.progress, done, "the status holds the result");
    assert!(status.started_at.is_some() && status.finished_at.is_some() && status.error.is_none());
    assert_eq!((done.packages, done.checked, done.resigned), (2, 2, 2), "{done:?}");
    assert_eq!(seen.first().map(|p| (p.packages, p.checked)), Some((2, 0)), "progress starts at 0: {seen:?}");
    assert_eq!(seen.last(), Some(&done), "the last progress is the result");
    signed_by_k2(&repo, "after the re-sign");
    consistent(&repo, "after the re-sign");
    let again = repo.resign(&mut |_| {}).expect("re-signing again");
    assert_eq!((again.checked, again.resigned), (2, 0), "nothing left to re-sign: {again:?}");
    let (store, blobs) = make();
    let unsigned = Repository::new(store, blobs, arch("x86_64"), DbFormat::Current, at);
    assert_eq!(unsigned.resign(&mut |_| {}).expect("unsigned").packages, 0, "no signer, nothing done");

    for k in 0.. {
        assert!(k < 64, "rotation: still failing after 64 operations");
        let repo = rotated(make(), Some(k));
        let when = format!("rotation (blob operation {k} failing)");
        let result = repo.recover().and_then(|_| repo.resign(&mut |_| {}));
        served_files_exist(&repo, &when);
        let failed = repo.blobs().failed();
        if !failed {
            result.unwrap_or_else(|e| panic!("{when}: failed without a fault: {e}"));
        } else if let Err(e) = &result {
            let status = repo.resign_status();
            if status.state == ResignState::Failed {
                assert_eq!(
                    status.error.as_deref(),
                    Some(e.to_string().as_str()),
                    "{when}: the status says why"
                );
            }
        }
        let (store, faulty) = repo.into_parts();
        let repo = Repository::new(store, faulty.inner, arch("x86_64"), DbFormat::WithMd5, at)
            .with_signer(TestSigner::keyed("k2", &[None]));
        repo.recover().unwrap_or_else(|e| panic!("{when}: recovery failed: {e}"));
        repo.resign(&mut |_| {}).unwrap_or_else(|e| panic!("{when}: the next re-sign failed: {e}"));
        consistent(&repo, &format!("{when}, after the next run"));
        signed_by_k2(&repo, &format!("{when}, after the next run"));
        if !failed {
            break;
        }
    }
}

/// A blob store whose `fail_at`-th change fails (and every later one succeeds), counting archive
/// writes.
pub struct Faulty<B> {
    inner: B,
    ops: AtomicUsize,
    fail_at: usize,
    archive_writes: AtomicUsize,
    /// How long each archive write takes longer.
    slower: std::time::Duration,
}

impl<B> Faulty<B> {
    fn new(inner: B, fail_at: usize) -> Self {
        let slower = std::time::Duration::ZERO;
        Faulty { inner, ops: AtomicUsize::new(0), fail_at, archive_writes: AtomicUsize::new(0), slower }
    }

    fn step(&self) -> io::Result<()> {
        if self.ops.fetch_add(1, Ordering::SeqCst) == self.fail_at {
            return Err(io::Error::other("injected failure"));
        }
        Ok(())
    }

    fn failed(&self) -> bool {
        self.ops.load(Ordering::SeqCst) > self.fail_at
    }

    fn writes(&self) -> usize {
        self.archive_writes.load(Ordering::SeqCst)
    }
}

impl<B: BlobStore> BlobStore for Faulty<B> {
    type Error = B::Error;
    type Upload = B::Upload;
    type Archive = B::Archive;

    fn create_upload(&self) -> Result<B::Upload, B::Error> {
        self.inner.create_upload()
    }
    fn keep_package(&self, upload: B::Upload, sha256: &str) -> Result<(), B::Error> {
        self.step()?;
        self.inner.keep_package(upload, sha256)
    }
    fn remove_package(&self, sha256: &str) -> Result<(), B::Error> {
        self.step()?;
        self.inner.remove_package(sha256)
    }
    fn package_hashes(&self) -> Result<Vec<String>, B::Error> {
        self.inner.package_hashes()
    }
    fn signature_hashes(&self) -> Result<Vec<String>, B::Error> {
        self.inner.signature_hashes()
    }
    fn open_package(&self, sha256: &str) -> Result<Option<B::Archive>, B::Error> {
        self.inner.open_package(sha256)
    }
    fn keep_package_signature(&self, sha256: &str, signature: &[u8]) -> Result<(), B::Error> {
        self.step()?;
        self.inner.keep_package_signature(sha256, signature)
    }
    fn package_signature(&self, sha256: &str) -> Result<Option<Vec<u8>>, B::Error> {
        self.inner.package_signature(sha256)
    }
    fn write_archive_signature(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
        signature: Option<&[u8]>,
    ) -> Result<(), B::Error> {
        self.step()?;
        self.inner.write_archive_signature(repo, arch, kind, signature)
    }
    fn archive_signature(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
    ) -> Result<Option<Vec<u8>>, B::Error> {
        self.inner.archive_signature(repo, arch, kind)
    }
    fn write_archive(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
        mtime: SystemTime,
        write: &mut ArchiveWriter<'_>,
    ) -> Result<(), B::Error> {
        self.step()?;
        self.archive_writes.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.slower);
        self.inner.write_archive(repo, arch, kind, mtime, write)
    }
    fn open_archive(
        &self,
        repo: &RepoName,
        arch: &Arch,
        kind: ArchiveKind,
    ) -> Result<Option<B::Archive>, B::Error> {
        self.inner.open_archive(repo, arch, kind)
    }
    fn remove_archives(&self, repo: &RepoName, arch: &Arch) -> Result<(), B::Error> {
        self.step()?;
        self.inner.remove_archives(repo, arch)
    }
    fn archive_dirs(&self) -> Result<Vec<ArchiveDir>, B::Error> {
        self.inner.archive_dirs()
    }
    fn remove_archive_dir(&self, dir: &ArchiveDir) -> Result<(), B::Error> {
        self.step()?;
        self.inner.remove_archive_dir(dir)
    }
    fn clear_temporary(&self) -> Result<usize, B::Error> {
        self.inner.clear_temporary()
    }
    fn unsettled(&self) -> bool {
        self.inner.unsettled()
    }
    fn settle(&self) -> Result<(), B::Error> {
        self.step()?;
        self.inner.settle()
    }
}
