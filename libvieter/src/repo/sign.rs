//! The signing port of a repository: detached signatures of package files and database archives.
//!
//! The repository knows no OpenPGP: a [`Signer`] is given the bytes (streamed, so a large package or
//! files archive is never held in memory) and hands back one detached binary signature, the
//! `FILE.sig` pacman downloads next to `FILE`. The implementation with a key is `super::openpgp`'s
//! (feature `openpgp`); a repository without a signer is unsigned.

use std::io::{self, Read, Write};
use std::time::SystemTime;

/// Why a signature could not be made.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SignError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl SignError {
    /// A signing failure with its cause.
    pub fn new(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        SignError(cause.into())
    }
}

/// Makes detached signatures.
pub trait Signer: Send + Sync {
    /// Starts a signature made at `created` (libvieter never reads the clock: the repository passes
    /// its own time). Everything written to the returned [`Signing`] is what is signed.
    fn start(&self, created: SystemTime) -> Result<Box<dyn Signing + '_>, SignError>;

    /// Whether a package file's signature must be made again by this signer: it was made by a key
    /// this signer replaces (a retired key of the same server, after a rotation). A signature by this
    /// signer's own key, or by a packager, is kept. [`super::Repository::resign`] asks it.
    fn supersedes(&self, signature: &[u8]) -> bool {
        let _ = signature;
        false
    }

    /// A new hash of data to sign later with [`Signer::sign_hash`], owned and copyable: with it a
    /// repository keeps the hash of an archive's start and, when only later entries changed, goes on
    /// from there instead of hashing the whole archive again. `None` (the default): archives are
    /// signed through [`Signer::start`].
    fn data_hash(&self) -> Option<Box<dyn DataHash>> {
        None
    }

    /// The detached signature, made at `created`, of the data hashed into `hash` (one this signer's
    /// [`Signer::data_hash`] made, maybe through [`DataHash::fork`]).
    fn sign_hash(&self, hash: Box<dyn DataHash>, created: SystemTime) -> Result<Vec<u8>, SignError> {
        let _ = (hash, created);
        Err(SignError::new("this signer does not sign hashes"))
    }
}

/// The running hash of data to be signed ([`Signer::data_hash`]): write the data, copy it with
/// [`DataHash::fork`] to go on from this point later.
pub trait DataHash: Write + Send + Sync {
    /// A copy of this hash as it is now.
    fn fork(&self) -> Box<dyn DataHash>;
    /// Itself, for the signer that made it to take back its own type.
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any>;
}

/// A signature being made: write the signed bytes, then [`Signing::finish`].
pub trait Signing: Write + Send {
    /// The detached binary signature of everything written.
    fn finish(self: Box<Self>) -> Result<Vec<u8>, SignError>;
}

/// The detached signature of everything `data` yields.
pub fn sign_reader(
    signer: &dyn Signer,
    data: &mut dyn Read,
    created: SystemTime,
) -> Result<Vec<u8>, SignError> {
    let mut signing = signer.start(created)?;
    io::copy(data, &mut signing).map_err(SignError::new)?;
    signing.finish()
}

/// The largest uploaded signature accepted, in bytes as sent (armored or binary): an armored
/// signature of [`crate::db::MAX_SIGNATURE_LEN`] binary bytes fits.
pub const MAX_UPLOADED_SIGNATURE_LEN: usize = 32 * 1024;

/// A packager's signature that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signature in binary form (what is served as `FILE.sig`; an armored upload is converted).
    pub signature: Vec<u8>,
    /// The fingerprint (upper-case hex) of the trusted key that made it.
    pub key: String,
}

/// Why a packager's signature is refused (what the verifier found).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Not an OpenPGP detached signature (binary or armored).
    #[error("the signature is not an OpenPGP detached signature: {0}")]
    Malformed(String),
    /// Made by a key that is not among the trusted keys (`issuer`: the key id or fingerprint it names).
    #[error("the signature was made by key {issuer}, which is not a trusted key")]
    UnknownKey { issuer: String },
    /// Made by a trusted key, but not over these bytes: the signature of another file, or damaged.
    #[error("the signature by key {key} does not match the uploaded package (it belongs to another file or is damaged)")]
    Mismatch { key: String },
    /// The upload could not be read.
    #[error("reading the upload: {0}")]
    Io(#[from] io::Error),
}

/// Verifies packagers' detached signatures against the trusted keys (the port's OpenPGP side is the
/// embedder's; the rules of when a signature is needed and what becomes of it are [`check_upload`]'s).
pub trait Verifier: Send + Sync {
    /// Checks `signature` (as uploaded: binary or armored) against the bytes `data` yields (streamed).
    fn verify(&self, signature: &[u8], data: &mut dyn Read) -> Result<Verified, VerifyError>;
}

impl<T: Verifier + ?Sized> Verifier for std::sync::Arc<T> {
    fn verify(&self, signature: &[u8], data: &mut dyn Read) -> Result<Verified, VerifyError> {
        (**self).verify(signature, data)
    }
}

/// Who uploads a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uploader {
    /// A person or script with the admin key (`vieter publish`, curl): the packager.
    User,
    /// A build agent uploading what it built: signed by the repository's own key, never its own.
    Agent,
}

/// Who uploads, by the key's role: the admin key is a packager, an agent key an agent.
impl From<crate::access::Role> for Uploader {
    fn from(role: crate::access::Role) -> Self {
        match role {
            crate::access::Role::Admin => Uploader::User,
            crate::access::Role::Agent => Uploader::Agent,
        }
    }
}

/// What a publish was given besides the package file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSignature {
    pub uploader: Uploader,
    /// The packager's detached signature of the package file, as uploaded (binary or armored).
    pub signature: Option<Vec<u8>>,
}

impl UploadSignature {
    /// An upload without a packager's signature.
    pub fn unsigned(uploader: Uploader) -> Self {
        UploadSignature { uploader, signature: None }
    }
}

/// The packager-signature policy of a repository.
#[derive(Default)]
pub struct UploadPolicy {
    /// Verifies packagers' signatures; `None`: no key is trusted, so a signed upload is refused.
    pub verifier: Option<Box<dyn Verifier>>,
    /// Refuse [`Uploader::User`] uploads that come without a signature.
    pub require_signed: bool,
}

impl std::fmt::Debug for UploadPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadPolicy")
            .field("verifier", &self.verifier.is_some())
            .field("require_signed", &self.require_signed)
            .finish()
    }
}

/// Why an upload's signature (or its absence) is refused: always the client's mistake.
#[derive(Debug, thiserror::Error)]
pub enum UploadSignatureError {
    #[error("an unsigned upload is refused: this server requires a packager signature (multipart field `sig`) on uploads (require_signed_uploads)")]
    Unsigned,
    #[error("a signature was uploaded but this server trusts no packager keys (trusted_keys is not set)")]
    NoTrustedKeys,
    #[error("the signature is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the signature is empty")]
    Empty,
    #[error("bad packager signature: {0}")]
    Refused(#[from] VerifyError),
}

/// The rule for a package's signature on upload: a signature, when given, must verify against a
/// trusted key (whoever uploads); without one, a [`Uploader::User`] upload is refused when the policy
/// requires signatures, an agent's never is (the repository signs what agents build). Returns the
/// verified signature, which the repository serves as the file's `FILE.sig` when it has no signer of
/// its own (with one, the repository's signature is served, so users trust one key).
pub fn check_upload(
    policy: &UploadPolicy,
    upload: &UploadSignature,
    data: &mut dyn Read,
) -> Result<Option<Verified>, UploadSignatureError> {
    let Some(signature) = &upload.signature else {
        return match (upload.uploader, policy.require_signed) {
            (Uploader::User, true) => Err(UploadSignatureError::Unsigned),
            _ => Ok(None),
        };
    };
    if signature.is_empty() {
        return Err(UploadSignatureError::Empty);
    }
    if signature.len() > MAX_UPLOADED_SIGNATURE_LEN {
        return Err(UploadSignatureError::TooLarge { limit: MAX_UPLOADED_SIGNATURE_LEN });
    }
    let verifier = policy.verifier.as_ref().ok_or(UploadSignatureError::NoTrustedKeys)?;
    let verified = verifier.verify(signature, data)?;
    if verified.signature.len() > crate::db::MAX_SIGNATURE_LEN {
        return Err(UploadSignatureError::TooLarge { limit: crate::db::MAX_SIGNATURE_LEN });
    }
    Ok(Some(verified))
}

/// A writer that writes to `inner` and feeds the same bytes to a signature.
pub(super) struct SigningWriter<'a, 's> {
    pub inner: &'a mut dyn Write,
    pub signing: &'a mut (dyn Signing + 's),
}

impl Write for SigningWriter<'_, '_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.signing.write_all(&data[..n])?;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Why a signing key cannot be removed from the keys a server lists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRemovalError {
    #[error("no signing key {0} is listed")]
    Unknown(String),
    #[error("{0} is the current signing key: configure another signing_key first")]
    Current(String),
    #[error("the re-sign of the packages is not done yet ({state}): what {key} signed is still served")]
    ResignNotDone { state: &'static str, key: String },
}

/// Whether the key `fingerprint` (hex, any case) may be removed when `current` is the key that signs
/// and `retired` the earlier keys still listed (upper-case hex): only a retired key, and only once the
/// re-sign ([`super::Repository::resign`]) is done, since until then packages it signed are served.
/// Returns the fingerprint as listed.
///
/// ```
/// use libvieter::api::ResignState;
/// use libvieter::repo::{check_key_removal, KeyRemovalError};
/// let retired = ["AA11".to_owned()];
/// assert_eq!(check_key_removal("aa11", "BB22", &retired, ResignState::Done), Ok("AA11".into()));
/// assert!(matches!(check_key_removal("BB22", "BB22", &retired, ResignState::Done), Err(KeyRemovalError::Current(_))));
/// assert!(matches!(check_key_removal("CC33", "BB22", &retired, ResignState::Done), Err(KeyRemovalError::Unknown(_))));
/// assert!(matches!(
///     check_key_removal("AA11", "BB22", &retired, ResignState::Running),
///     Err(KeyRemovalError::ResignNotDone { .. })
/// ));
/// ```
pub fn check_key_removal(
    fingerprint: &str,
    current: &str,
    retired: &[String],
    resign: crate::api::ResignState,
) -> Result<String, KeyRemovalError> {
    use crate::api::ResignState;
    let fingerprint = fingerprint.to_ascii_uppercase();
    if fingerprint == current.to_ascii_uppercase() {
        return Err(KeyRemovalError::Current(fingerprint));
    }
    if !retired.iter().any(|r| r.eq_ignore_ascii_case(&fingerprint)) {
        return Err(KeyRemovalError::Unknown(fingerprint));
    }
    let state = match resign {
        ResignState::Done => return Ok(fingerprint),
        ResignState::Idle => "idle",
        ResignState::Running => "running",
        ResignState::Failed => "failed",
    };
    Err(KeyRemovalError::ResignNotDone { state, key: fingerprint })
}

/// A [`Signer`] for tests: the "signature" of bytes is `TEST-SIG ` and their SHA-256 in hex, so a test
/// can tell which bytes a signature belongs to without OpenPGP. It fails its `fail_at`-th start (from
/// 0), when given. A keyed one ([`TestSigner::keyed`]) writes `TEST-SIG:{key} ` instead and
/// supersedes the keys it retires.
#[derive(Debug, Default)]
pub struct TestSigner {
    starts: std::sync::atomic::AtomicUsize,
    fail_at: Option<usize>,
    /// Signs through [`Signer::start`] only (no [`Signer::data_hash`]).
    streaming_only: bool,
    /// Its key's name (`None`: the unnamed key of [`TestSigner::new`]).
    key: Option<String>,
    /// The keys it replaces (`None` in it: the unnamed key).
    retires: Vec<Option<String>>,
}

impl TestSigner {
    /// A signer that never fails.
    pub fn new() -> Self {
        TestSigner::default()
    }

    /// A signer whose `n`-th signature (from 0) fails.
    pub fn failing_at(n: usize) -> Self {
        TestSigner { fail_at: Some(n), ..TestSigner::default() }
    }

    /// A signer without [`Signer::data_hash`]: archives are signed through [`Signer::start`].
    pub fn streaming_only() -> Self {
        TestSigner { streaming_only: true, ..TestSigner::default() }
    }

    /// A signer with the key `key`, replacing the keys `retires` (`None`: the unnamed key).
    pub fn keyed(key: &str, retires: &[Option<&str>]) -> Self {
        TestSigner {
            key: Some(key.to_owned()),
            retires: retires.iter().map(|k| k.map(str::to_owned)).collect(),
            ..TestSigner::default()
        }
    }

    /// The signature the signer of `key` makes of `data` (`None`: as [`TestSigner::signature_of`]).
    pub fn keyed_signature_of(key: Option<&str>, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        test_signature(key, &sha2::Sha256::digest(data))
    }

    /// How many signatures were started (through [`Signer::start`] or made by [`Signer::sign_hash`]).
    pub fn started(&self) -> usize {
        self.starts.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The signature this signer makes of `data`.
    pub fn signature_of(data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        format!("TEST-SIG {}", hex::encode(sha2::Sha256::digest(data))).into_bytes()
    }
}

fn test_signature(key: Option<&str>, digest: &[u8]) -> Vec<u8> {
    match key {
        None => format!("TEST-SIG {}", hex::encode(digest)).into_bytes(),
        Some(key) => format!("TEST-SIG:{key} {}", hex::encode(digest)).into_bytes(),
    }
}

/// The key a test signature names (`Some(None)`: the unnamed key; `None`: not a test signature).
fn test_signature_key(signature: &[u8]) -> Option<Option<String>> {
    let text = std::str::from_utf8(signature).ok()?;
    if text.starts_with("TEST-SIG ") {
        return Some(None);
    }
    let (key, _) = text.strip_prefix("TEST-SIG:")?.split_once(' ')?;
    Some(Some(key.to_owned()))
}

struct TestSigning(sha2::Sha256, Option<String>);

impl Write for TestSigning {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        sha2::Digest::update(&mut self.0, data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Signing for TestSigning {
    fn finish(self: Box<Self>) -> Result<Vec<u8>, SignError> {
        Ok(test_signature(self.1.as_deref(), &sha2::Digest::finalize(self.0)))
    }
}

/// A [`DataHash`] that is SHA-256 of the data: the one of signers whose signatures hash with SHA-256
/// ([`TestSigner`], and `openpgp::OpenPgpSigner`). A signer takes it back with
/// [`Sha256Hash::from_data_hash`].
#[derive(Clone, Default)]
pub struct Sha256Hash(pub sha2::Sha256);

impl Sha256Hash {
    /// A new hash, boxed as [`Signer::data_hash`] returns it.
    pub fn boxed() -> Box<dyn DataHash> {
        Box::new(Sha256Hash::default())
    }

    /// The SHA-256 state of `hash` if it is one; `None` for another signer's hash.
    pub fn from_data_hash(hash: Box<dyn DataHash>) -> Option<sha2::Sha256> {
        hash.into_any().downcast::<Sha256Hash>().ok().map(|h| h.0)
    }
}

impl Write for Sha256Hash {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        sha2::Digest::update(&mut self.0, data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl DataHash for Sha256Hash {
    fn fork(&self) -> Box<dyn DataHash> {
        Box::new(self.clone())
    }
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

impl TestSigner {
    /// Counts a signature; the injected failure when it is the `fail_at`-th.
    fn count(&self) -> Result<(), SignError> {
        let n = self.starts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.fail_at == Some(n) {
            return Err(SignError::new("injected signing failure"));
        }
        Ok(())
    }
}

impl Signer for TestSigner {
    fn start(&self, _created: SystemTime) -> Result<Box<dyn Signing + '_>, SignError> {
        self.count()?;
        Ok(Box::new(TestSigning(sha2::Sha256::default(), self.key.clone())))
    }

    fn supersedes(&self, signature: &[u8]) -> bool {
        test_signature_key(signature).is_some_and(|key| self.retires.contains(&key))
    }

    fn data_hash(&self) -> Option<Box<dyn DataHash>> {
        (!self.streaming_only).then(Sha256Hash::boxed)
    }

    fn sign_hash(&self, hash: Box<dyn DataHash>, _created: SystemTime) -> Result<Vec<u8>, SignError> {
        self.count()?;
        let hash = Sha256Hash::from_data_hash(hash).ok_or_else(|| SignError::new("not a SHA-256 hash"))?;
        Ok(test_signature(self.key.as_deref(), &sha2::Digest::finalize(hash)))
    }
}

impl<T: Signer + ?Sized> Signer for std::sync::Arc<T> {
    fn start(&self, created: SystemTime) -> Result<Box<dyn Signing + '_>, SignError> {
        (**self).start(created)
    }

    fn supersedes(&self, signature: &[u8]) -> bool {
        (**self).supersedes(signature)
    }

    fn data_hash(&self) -> Option<Box<dyn DataHash>> {
        (**self).data_hash()
    }

    fn sign_hash(&self, hash: Box<dyn DataHash>, created: SystemTime) -> Result<Vec<u8>, SignError> {
        (**self).sign_hash(hash, created)
    }
}

/// A [`Verifier`] for tests: a packager's "signature" of bytes is `TEST-PKGSIG {key} ` and their
/// SHA-256 in hex ([`TestVerifier::signature_of`]); it verifies when `key` is one of the trusted
/// names and the digest is of the bytes read.
#[derive(Debug, Default)]
pub struct TestVerifier {
    pub trusted: Vec<String>,
}

impl TestVerifier {
    /// A verifier trusting the keys named.
    pub fn trusting(keys: &[&str]) -> Self {
        TestVerifier { trusted: keys.iter().map(|k| (*k).to_owned()).collect() }
    }

    /// The signature `key` makes of `data`.
    pub fn signature_of(key: &str, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        format!("TEST-PKGSIG {key} {}", hex::encode(sha2::Sha256::digest(data))).into_bytes()
    }
}

impl Verifier for TestVerifier {
    fn verify(&self, signature: &[u8], data: &mut dyn Read) -> Result<Verified, VerifyError> {
        let text = std::str::from_utf8(signature).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        let mut words = text.split(' ');
        let (Some("TEST-PKGSIG"), Some(key), Some(digest), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(VerifyError::Malformed("not a test signature".into()));
        };
        if !self.trusted.iter().any(|k| k == key) {
            return Err(VerifyError::UnknownKey { issuer: key.to_owned() });
        }
        let mut hasher = TestSigning(sha2::Sha256::default(), None);
        io::copy(data, &mut hasher)?;
        if hex::encode(sha2::Digest::finalize(hasher.0)) != digest {
            return Err(VerifyError::Mismatch { key: key.to_owned() });
        }
        Ok(Verified { signature: signature.to_vec(), key: key.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(require_signed: bool, trusted: Option<&[&str]>) -> UploadPolicy {
        UploadPolicy {
            verifier: trusted.map(|t| Box::new(TestVerifier::trusting(t)) as Box<dyn Verifier>),
            require_signed,
        }
    }

    fn check(
        policy: &UploadPolicy,
        uploader: Uploader,
        signature: Option<Vec<u8>>,
        data: &[u8],
    ) -> Result<Option<Verified>, UploadSignatureError> {
        check_upload(policy, &UploadSignature { uploader, signature }, &mut &data[..])
    }

    /// With `require_signed`, an unsigned upload with the admin key is refused, one with an agent key
    /// is not (the server signs what agents built).
    #[test]
    fn the_key_s_role_decides_who_uploads() {
        use crate::access::Role;
        let policy = policy(true, Some(&["k"]));
        let unsigned = |role: Role| check(&policy, role.into(), None, b"package");
        assert!(matches!(unsigned(Role::Admin), Err(UploadSignatureError::Unsigned)));
        assert!(matches!(unsigned(Role::Agent), Ok(None)));
    }

    #[test]
    fn unsigned_uploads_are_refused_only_from_users_and_only_when_required() {
        let data = b"package bytes";
        let required = policy(true, Some(&["alice"]));
        assert!(matches!(check(&required, Uploader::User, None, data), Err(UploadSignatureError::Unsigned)));
        assert_eq!(check(&required, Uploader::Agent, None, data).unwrap(), None, "agents: the server signs");
        assert_eq!(check(&policy(false, None), Uploader::User, None, data).unwrap(), None);
    }

    #[test]
    fn a_given_signature_must_verify_by_a_trusted_key_whoever_uploads() {
        let data = b"package bytes";
        let alice = TestVerifier::signature_of("alice", data);
        let trusting = policy(false, Some(&["alice"]));
        for uploader in [Uploader::User, Uploader::Agent] {
            let verified = check(&trusting, uploader, Some(alice.clone()), data).unwrap().unwrap();
            assert_eq!(verified, Verified { signature: alice.clone(), key: "alice".into() });
        }
        let mallory = TestVerifier::signature_of("mallory", data);
        let e = check(&trusting, Uploader::User, Some(mallory), data).unwrap_err();
        assert!(
            matches!(e, UploadSignatureError::Refused(VerifyError::UnknownKey { ref issuer }) if issuer == "mallory")
        );
        assert!(e.to_string().contains("not a trusted key"), "{e}");
        let other_file = TestVerifier::signature_of("alice", b"another package");
        let e = check(&trusting, Uploader::User, Some(other_file), data).unwrap_err();
        assert!(matches!(e, UploadSignatureError::Refused(VerifyError::Mismatch { .. })), "{e}");
        assert!(e.to_string().contains("another file"), "{e}");
        let e = check(&trusting, Uploader::User, Some(b"garbage".to_vec()), data).unwrap_err();
        assert!(matches!(e, UploadSignatureError::Refused(VerifyError::Malformed(_))), "{e}");
        let e = check(&trusting, Uploader::User, Some(Vec::new()), data).unwrap_err();
        assert!(matches!(e, UploadSignatureError::Empty), "{e}");
        let huge = vec![b'x'; MAX_UPLOADED_SIGNATURE_LEN + 1];
        let e = check(&trusting, Uploader::User, Some(huge), data).unwrap_err();
        assert!(matches!(e, UploadSignatureError::TooLarge { .. }), "{e}");
        let e = check(&policy(false, None), Uploader::User, Some(alice), data).unwrap_err();
        assert!(matches!(e, UploadSignatureError::NoTrustedKeys), "{e}");
    }
}
