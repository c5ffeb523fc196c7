//! The server's signer: the only implementation of libvieter's [`Signer`] port that holds a key.
//!
//! OpenPGP is rpgp (crate `pgp`, pure Rust). Signatures are v4 detached binary signatures (type 0x00)
//! over SHA-256 with the issuer's fingerprint and the creation time hashed and its key id unhashed,
//! as `gpg --detach-sign` makes them, which pacman's gpgme verifies. A generated key is Ed25519 in
//! the v4 "EdDSA legacy" encoding (algorithm 22): the GnuPG 2.2 behind pacman 6.0 does not know
//! RFC 9580's Ed25519 (algorithm 27).
//!
//! The secret key is never logged: [`OpenPgpSigner`]'s `Debug` shows the fingerprint only, and errors
//! name the setting, never its value.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use libvieter::api::{ResignState, SigningKey as SigningKeyInfo};
use libvieter::repo::{
    check_key_removal, DataHash, KeyRemovalError, SignError, Signer, Signing, Verified, Verifier, VerifyError,
};
use pgp::composed::{
    ArmorOptions, Deserializable, DetachedSignature, KeyType, SecretKeyParamsBuilder, SignedPublicKey,
    SignedSecretKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{Signature, SignatureConfig, SignatureHasher, SignatureType, Subpacket, SubpacketData};
use pgp::ser::Serialize;
use pgp::types::{KeyDetails, Password, SigningKey, Timestamp};
use sha2::digest::DynDigest;

/// The value of `signing_key` that generates a key on first start.
pub const GENERATE: &str = "generate";

/// The file a generated key is kept in, in the data directory.
pub const GENERATED_KEY_FILE: &str = "signing_key.asc";

/// Why there is no signer.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing_key is not an armored OpenPGP secret key: {0}")]
    Parse(String),
    #[error("signing_key cannot sign without a passphrase (a protected key is not supported): {0}")]
    CannotSign(String),
    #[error("generating a signing key: {0}")]
    Generate(String),
    #[error("signing key file {path}: {source}")]
    File { path: String, source: io::Error },
}

/// Signs with one OpenPGP secret key.
pub struct OpenPgpSigner {
    key: SignedSecretKey,
    /// The server's earlier keys: what they signed is signed again ([`Signer::supersedes`]).
    retired: TrustedKeys,
    /// The secret subkey that signs (one whose binding allows signing), else the primary key.
    subkey: Option<usize>,
    public_armored: String,
    fingerprint: String,
}

impl std::fmt::Debug for OpenPgpSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenPgpSigner").field("fingerprint", &self.fingerprint).finish_non_exhaustive()
    }
}

impl OpenPgpSigner {
    /// The signer of `signing_key`'s value: an armored secret key, or [`GENERATE`] (the key kept in
    /// `data_dir`, generated when there is none).
    pub fn from_config(value: &str, data_dir: &Path) -> Result<OpenPgpSigner, KeyError> {
        if value.trim() == GENERATE {
            OpenPgpSigner::load_or_generate(&data_dir.join(GENERATED_KEY_FILE))
        } else {
            OpenPgpSigner::from_armored(value)
        }
    }

    /// A signer of an armored secret key (checked: it must sign without a passphrase).
    pub fn from_armored(armored: &str) -> Result<OpenPgpSigner, KeyError> {
        let (key, _) =
            SignedSecretKey::from_string(armored.trim()).map_err(|e| KeyError::Parse(e.to_string()))?;
        key.verify_bindings().map_err(|e| KeyError::Parse(e.to_string()))?;
        OpenPgpSigner::new(key)
    }

    /// A new Ed25519 key (v4, EdDSA legacy encoding) for `user_id`.
    pub fn generate(user_id: &str) -> Result<OpenPgpSigner, KeyError> {
        let generate = |e: &dyn std::fmt::Display| KeyError::Generate(e.to_string());
        let params = SecretKeyParamsBuilder::default()
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(true)
            .primary_user_id(user_id.to_owned())
            .preferred_hash_algorithms([HashAlgorithm::Sha256, HashAlgorithm::Sha512].into_iter().collect())
            .build()
            .map_err(|e| generate(&e))?;
        let key = params.generate(rand::thread_rng()).map_err(|e| generate(&e))?;
        OpenPgpSigner::new(key)
    }

    /// The key kept at `path`, or a new one written there first (mode 0600).
    pub fn load_or_generate(path: &Path) -> Result<OpenPgpSigner, KeyError> {
        let file_err = |source| KeyError::File { path: path.display().to_string(), source };
        match std::fs::read_to_string(path) {
            Ok(armored) => return OpenPgpSigner::from_armored(&armored),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(file_err(e)),
        }
        let signer = OpenPgpSigner::generate("Vieter repository signing key")?;
        let armored = signer
            .key
            .to_armored_string(ArmorOptions::default())
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = path.with_extension("asc.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(file_err)?;
        file.write_all(armored.as_bytes()).and_then(|()| file.sync_all()).map_err(file_err)?;
        std::fs::rename(&tmp, path).map_err(file_err)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(file_err)?;
        }
        tracing::warn!(
            fingerprint = signer.fingerprint(),
            "signing_key = \"generate\": generated an Ed25519 signing key into {} (mode 0600)",
            path.display()
        );
        Ok(signer)
    }

    fn new(key: SignedSecretKey) -> Result<OpenPgpSigner, KeyError> {
        let subkey =
            key.secret_subkeys.iter().position(|sub| sub.signatures.iter().any(|s| s.key_flags().sign()));
        let public_armored = key
            .to_public_key()
            .to_armored_string(ArmorOptions::default())
            .map_err(|e| KeyError::Parse(e.to_string()))?;
        let fingerprint = hex::encode_upper(key.fingerprint().as_bytes());
        let retired = TrustedKeys { keys: Vec::new() };
        let signer = OpenPgpSigner { key, retired, subkey, public_armored, fingerprint };
        // A key that cannot sign (protected by a passphrase, or of no signing algorithm) is refused
        // at start, not at the first publish.
        let mut probe = signer.start(UNIX_EPOCH).map_err(|e| KeyError::CannotSign(e.to_string()))?;
        probe.write_all(b"vieter").map_err(|e| KeyError::CannotSign(e.to_string()))?;
        probe.finish().map_err(|e| KeyError::CannotSign(e.to_string()))?;
        Ok(signer)
    }

    /// This signer, replacing what the keys of `ring` other than its own signed.
    pub fn retiring(mut self, ring: &KeyRing) -> Self {
        self.retired = TrustedKeys { keys: ring.retired_keys() };
        self
    }

    /// The public key, armored (what `pacman-key --add` takes).
    pub fn public_key_armored(&self) -> &str {
        &self.public_armored
    }

    /// The primary key's fingerprint, upper-case hex (what `pacman-key --lsign-key` takes).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn signing_key(&self) -> &(dyn SigningKey + Sync) {
        match self.subkey.and_then(|i| self.key.secret_subkeys.get(i)) {
            Some(sub) => &sub.key,
            None => &self.key.primary_key,
        }
    }
}

fn sign_err(e: impl std::fmt::Display) -> SignError {
    SignError::new(e.to_string())
}

struct PgpSigning<'a> {
    hasher: SignatureHasher,
    key: &'a (dyn SigningKey + Sync),
}

impl Write for PgpSigning<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.hasher.write(data)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Signing for PgpSigning<'_> {
    fn finish(self: Box<Self>) -> Result<Vec<u8>, SignError> {
        let signature = self.hasher.sign(self.key, &Password::empty()).map_err(sign_err)?;
        DetachedSignature::new(signature).to_bytes().map_err(sign_err)
    }
}

/// The configuration of a signature by `key` made at `created`: binary, SHA-256, the issuer's
/// fingerprint and the creation time hashed, its key id not.
fn signature_config(
    key: &(dyn SigningKey + Sync),
    created: SystemTime,
) -> Result<SignatureConfig, SignError> {
    let secs = created.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut config = SignatureConfig::v4(SignatureType::Binary, key.algorithm(), HashAlgorithm::Sha256);
    config.hashed_subpackets = vec![
        Subpacket::regular(SubpacketData::IssuerFingerprint(key.fingerprint())).map_err(sign_err)?,
        Subpacket::regular(SubpacketData::SignatureCreationTime(Timestamp::from_secs(
            u32::try_from(secs).unwrap_or(u32::MAX),
        )))
        .map_err(sign_err)?,
    ];
    config.unhashed_subpackets =
        vec![Subpacket::regular(SubpacketData::IssuerKeyId(key.legacy_key_id())).map_err(sign_err)?];
    Ok(config)
}

/// The hash of the data an [`OpenPgpSigner`] signs ([`Signer::data_hash`]): SHA-256, its signatures'
/// hash, copyable.
#[derive(Clone)]
struct PgpDataHash(sha2::Sha256);

impl Write for PgpDataHash {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        sha2::Digest::update(&mut self.0, data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl DataHash for PgpDataHash {
    fn fork(&self) -> Box<dyn DataHash> {
        Box::new(self.clone())
    }
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

impl Signer for OpenPgpSigner {
    fn start(&self, created: SystemTime) -> Result<Box<dyn Signing + '_>, SignError> {
        let key = self.signing_key();
        let hasher = signature_config(key, created)?.into_hasher().map_err(sign_err)?;
        Ok(Box::new(PgpSigning { hasher, key }))
    }

    fn data_hash(&self) -> Option<Box<dyn DataHash>> {
        Some(Box::new(PgpDataHash(sha2::Sha256::default())))
    }

    /// What [`Signer::start`] makes of the same bytes: the data's hash goes on with the signature's
    /// hashed part and trailer (RFC 4880 5.2.4), and the key signs the digest.
    fn sign_hash(&self, hash: Box<dyn DataHash>, created: SystemTime) -> Result<Vec<u8>, SignError> {
        let hash =
            hash.into_any().downcast::<PgpDataHash>().map_err(|_| sign_err("not this signer's hash"))?;
        let key = self.signing_key();
        let config = signature_config(key, created)?;
        let mut hasher: Box<dyn DynDigest + Send> = Box::new(hash.0);
        let len = config.hash_signature_data(&mut hasher).map_err(sign_err)?;
        hasher.update(&config.trailer(len).map_err(sign_err)?);
        let digest = hasher.finalize();
        let (Some(&first), Some(&second)) = (digest.first(), digest.get(1)) else {
            return Err(sign_err("an empty digest"));
        };
        let raw = key.sign(&Password::empty(), HashAlgorithm::Sha256, &digest).map_err(sign_err)?;
        let signature = Signature::from_config(config, [first, second], raw).map_err(sign_err)?;
        DetachedSignature::new(signature).to_bytes().map_err(sign_err)
    }

    /// A signature whose issuer is one of the server's retired keys.
    fn supersedes(&self, signature: &[u8]) -> bool {
        parse_signature(signature).is_ok_and(|parsed| self.retired.issuer(&parsed.signature).is_some())
    }
}

/// The directory of the public keys that signed here, in the data directory.
pub const KEY_RING_DIR: &str = "signing_keys";

/// The server's signing keys, current and retired: the public key of every key that signed here and
/// was not removed, one `{FINGERPRINT}.asc` in `{data_dir}/signing_keys/`. The current key is added
/// at start; the others are retired: listed (pacman keeps trusting what they signed) until an admin
/// removes them once the re-sign is done (libvieter's [`check_key_removal`]).
pub struct KeyRing {
    dir: PathBuf,
    current: SigningKeyInfo,
    /// With the file each was read from.
    retired: RwLock<Vec<(SigningKeyInfo, SignedPublicKey, PathBuf)>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("dir", &self.dir).field("current", &self.current.fingerprint).finish()
    }
}

/// Why a key cannot be removed from the ring: libvieter's rule refused it, or the file could not go.
#[derive(Debug, thiserror::Error)]
pub enum RemoveKeyError {
    #[error(transparent)]
    Refused(#[from] KeyRemovalError),
    #[error("removing the key file: {0}")]
    Io(#[from] io::Error),
}

impl KeyRing {
    /// Opens `{data_dir}/signing_keys` and adds `signer`'s public key to it when it is new (a key
    /// rotation: every other key there is retired from now on).
    pub fn open(data_dir: &Path, signer: &OpenPgpSigner) -> Result<KeyRing, KeyError> {
        let dir = data_dir.join(KEY_RING_DIR);
        let file_err = |path: &Path, source| KeyError::File { path: path.display().to_string(), source };
        std::fs::create_dir_all(&dir).map_err(|e| file_err(&dir, e))?;
        let own = dir.join(format!("{}.asc", signer.fingerprint()));
        if !own.exists() {
            let tmp = dir.join(format!(".{}.asc.tmp", signer.fingerprint()));
            std::fs::write(&tmp, signer.public_key_armored())
                .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
                .and_then(|()| std::fs::rename(&tmp, &own))
                .and_then(|()| std::fs::File::open(&dir)?.sync_all())
                .map_err(|e| file_err(&own, e))?;
        }
        let mut retired = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| file_err(&dir, e))? {
            let path = entry.map_err(|e| file_err(&dir, e))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            let Some(fingerprint) = name.strip_suffix(".asc").filter(|f| !f.starts_with('.')) else {
                continue;
            };
            if fingerprint == signer.fingerprint() {
                continue;
            }
            let armored = std::fs::read_to_string(&path).map_err(|e| file_err(&path, e))?;
            let keys = parse_public_keys(armored.as_bytes())
                .map_err(|e| KeyError::Parse(format!("{}: {e}", path.display())))?;
            for key in keys {
                let info = SigningKeyInfo {
                    fingerprint: hex_fingerprint(&key),
                    public_key: armored.clone(),
                    current: false,
                };
                retired.push((info, key, path.clone()));
            }
        }
        retired.sort_by(|a, b| a.0.fingerprint.cmp(&b.0.fingerprint));
        let current = SigningKeyInfo {
            fingerprint: signer.fingerprint().to_owned(),
            public_key: signer.public_key_armored().to_owned(),
            current: true,
        };
        Ok(KeyRing { dir, current, retired: RwLock::new(retired) })
    }

    fn retired_keys(&self) -> Vec<SignedPublicKey> {
        self.retired.read().unwrap_or_else(|p| p.into_inner()).iter().map(|(_, k, _)| k.clone()).collect()
    }

    /// The current key first, then the retired ones (by fingerprint).
    pub fn list(&self) -> Vec<SigningKeyInfo> {
        let retired = self.retired.read().unwrap_or_else(|p| p.into_inner());
        std::iter::once(self.current.clone()).chain(retired.iter().map(|(info, ..)| info.clone())).collect()
    }

    /// Removes a retired key once `resign` (the re-sign's state) is done: it is no longer listed,
    /// and no longer replaced by a re-sign.
    pub fn remove(&self, fingerprint: &str, resign: ResignState) -> Result<(), RemoveKeyError> {
        let mut retired = self.retired.write().unwrap_or_else(|p| p.into_inner());
        let listed: Vec<String> = retired.iter().map(|(info, ..)| info.fingerprint.clone()).collect();
        let fingerprint = check_key_removal(fingerprint, &self.current.fingerprint, &listed, resign)?;
        let Some(path) =
            retired.iter().find(|(info, ..)| info.fingerprint == fingerprint).map(|(.., p)| p.clone())
        else {
            return Err(KeyRemovalError::Unknown(fingerprint).into());
        };
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        std::fs::File::open(&self.dir)?.sync_all()?;
        // Every key of that file goes with it.
        retired.retain(|(.., p)| *p != path);
        tracing::info!(fingerprint, "retired signing key removed");
        Ok(())
    }
}

/// The packager keys `trusted_keys` names: the [`Verifier`] of packagers' signatures on upload.
pub struct TrustedKeys {
    keys: Vec<SignedPublicKey>,
}

impl std::fmt::Debug for TrustedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.fingerprints()).finish()
    }
}

/// Why the trusted keys cannot be loaded (the server does not start).
#[derive(Debug, thiserror::Error)]
pub enum TrustedKeysError {
    #[error("trusted_keys {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("trusted_keys {path}: not an armored OpenPGP public key: {reason}")]
    Parse { path: String, reason: String },
    #[error("trusted_keys {path} holds no public key (only files ending in .asc are read)")]
    Empty { path: String },
}

/// The upper-case hex fingerprint of a key.
fn hex_fingerprint(key: &impl KeyDetails) -> String {
    hex::encode_upper(key.fingerprint().as_bytes())
}

/// Parses armored public keys (one or more blocks). Never panics on any input (fuzzed: `fuzz/
/// fuzz_targets/openpgp.rs`); every key's self-signatures and subkey bindings must verify.
pub fn parse_public_keys(armored: &[u8]) -> Result<Vec<SignedPublicKey>, String> {
    let (keys, _) = SignedPublicKey::from_armor_many_buf(armored).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for key in keys {
        let key = key.map_err(|e| e.to_string())?;
        key.verify_bindings().map_err(|e| format!("key {}: {e}", hex_fingerprint(&key)))?;
        out.push(key);
    }
    Ok(out)
}

/// Parses an uploaded detached signature: one binary (or armored) OpenPGP signature packet of type
/// binary, what `gpg --detach-sign` (with or without `--armor`) makes. Never panics on any input
/// (fuzzed).
pub fn parse_signature(bytes: &[u8]) -> Result<DetachedSignature, VerifyError> {
    let malformed = |e: &dyn std::fmt::Display| VerifyError::Malformed(e.to_string());
    let armored = bytes.trim_ascii_start().starts_with(b"-----BEGIN PGP SIGNATURE-----");
    let mut signatures: Vec<DetachedSignature> = if armored {
        let (sigs, _) = DetachedSignature::from_armor_many_buf(bytes).map_err(|e| malformed(&e))?;
        sigs.collect::<pgp::errors::Result<_>>().map_err(|e| malformed(&e))?
    } else {
        let sigs = DetachedSignature::from_bytes_many(bytes).map_err(|e| malformed(&e))?;
        sigs.collect::<pgp::errors::Result<_>>().map_err(|e| malformed(&e))?
    };
    let signature = match (signatures.pop(), signatures.is_empty()) {
        (Some(s), true) => s,
        (None, _) => return Err(malformed(&"no signature packet")),
        (Some(_), false) => return Err(malformed(&"more than one signature")),
    };
    if signature.signature.typ() != Some(SignatureType::Binary) {
        return Err(malformed(&"not a binary-document signature (make it with gpg --detach-sign)"));
    }
    Ok(signature)
}

impl TrustedKeys {
    /// Keys from armored text (for tests and embedders).
    pub fn from_armored(armored: &str) -> Result<TrustedKeys, TrustedKeysError> {
        let keys = parse_public_keys(armored.as_bytes())
            .map_err(|reason| TrustedKeysError::Parse { path: "(text)".into(), reason })?;
        Ok(TrustedKeys { keys })
    }

    /// Every `*.asc` file of `dir` (armored public keys, several per file allowed), read at start.
    pub fn load_dir(dir: &Path) -> Result<TrustedKeys, TrustedKeysError> {
        let shown = dir.display().to_string();
        let read_err =
            |path: &Path, source| TrustedKeysError::Read { path: path.display().to_string(), source };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| read_err(dir, e))? {
            let path = entry.map_err(|e| read_err(dir, e))?.path();
            if path.extension().is_some_and(|e| e == "asc") && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        let mut keys = Vec::new();
        for path in paths {
            let text = std::fs::read(&path).map_err(|e| read_err(&path, e))?;
            let parsed = parse_public_keys(&text)
                .map_err(|reason| TrustedKeysError::Parse { path: path.display().to_string(), reason })?;
            keys.extend(parsed);
        }
        if keys.is_empty() {
            return Err(TrustedKeysError::Empty { path: shown });
        }
        Ok(TrustedKeys { keys })
    }

    /// The primary keys' fingerprints.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys.iter().map(hex_fingerprint).collect()
    }

    /// The trusted key (primary or signing subkey) a signature names as its issuer, with the
    /// primary key's fingerprint.
    fn issuer(&self, signature: &Signature) -> Option<(Issuer<'_>, String)> {
        let fingerprints = signature.issuer_fingerprint();
        let ids = signature.issuer_key_id();
        let named = |key: &dyn KeyDetails| {
            let (fingerprint, id) = (key.fingerprint(), key.legacy_key_id());
            fingerprints.iter().any(|f| **f == fingerprint) || ids.iter().any(|i| **i == id)
        };
        for key in &self.keys {
            if named(&key.primary_key) {
                return Some((Issuer::Primary(&key.primary_key), hex_fingerprint(key)));
            }
            for sub in &key.public_subkeys {
                let signs = sub.signatures.iter().any(|s| s.key_flags().sign());
                if signs && named(&sub.key) {
                    return Some((Issuer::Subkey(&sub.key), hex_fingerprint(key)));
                }
            }
        }
        None
    }
}

/// The key a signature is checked with.
enum Issuer<'a> {
    Primary(&'a pgp::packet::PublicKey),
    Subkey(&'a pgp::packet::PublicSubkey),
}

/// How a signature names its issuer, for the error: the fingerprint, else the key id.
fn issuer_name(signature: &Signature) -> String {
    if let Some(f) = signature.issuer_fingerprint().first() {
        return hex::encode_upper(f.as_bytes());
    }
    match signature.issuer_key_id().first() {
        Some(id) => hex::encode_upper(id.as_ref()),
        None => "(none named)".into(),
    }
}

impl Verifier for TrustedKeys {
    fn verify(&self, signature: &[u8], data: &mut dyn io::Read) -> Result<Verified, VerifyError> {
        let parsed = parse_signature(signature)?;
        let Some((key, fingerprint)) = self.issuer(&parsed.signature) else {
            return Err(VerifyError::UnknownKey { issuer: issuer_name(&parsed.signature) });
        };
        // Reading the upload can fail on our side; tell it from a signature that does not match.
        let mut reader = ReadFailure { inner: data, error: None };
        let checked = match key {
            Issuer::Primary(key) => parsed.signature.verify(key, &mut reader),
            Issuer::Subkey(key) => parsed.signature.verify(key, &mut reader),
        };
        if let Err(e) = checked {
            if let Some(io) = reader.error.take() {
                return Err(VerifyError::Io(io));
            }
            tracing::debug!("signature by {fingerprint} does not verify: {e}");
            return Err(VerifyError::Mismatch { key: fingerprint });
        }
        let binary = parsed.to_bytes().map_err(|e| VerifyError::Malformed(e.to_string()))?;
        Ok(Verified { signature: binary, key: fingerprint })
    }
}

/// A reader that keeps the error of its inner reader.
struct ReadFailure<'a> {
    inner: &'a mut dyn io::Read,
    error: Option<io::Error>,
}

impl io::Read for ReadFailure<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| self.error = Some(io::Error::new(e.kind(), e.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(public: &str, data: &[u8], signature: &[u8]) -> pgp::errors::Result<()> {
        let (public, _) = SignedPublicKey::from_string(public)?;
        let signature = DetachedSignature::from_bytes(signature)?;
        signature.verify(&public, data)
    }

    #[test]
    fn a_generated_key_signs_what_it_is_given_and_nothing_else() {
        let signer = OpenPgpSigner::generate("Test <t@example.org>").unwrap();
        let data = vec![7u8; 300_000];
        let sig = libvieter::repo::sign::sign_reader(&signer, &mut &data[..], SystemTime::now()).unwrap();
        assert_eq!(sig[0] & 0x80, 0x80, "a binary OpenPGP packet, not armor");
        verify(signer.public_key_armored(), &data, &sig).unwrap();
        assert!(verify(signer.public_key_armored(), &data[1..], &sig).is_err(), "other bytes do not verify");
        let other = OpenPgpSigner::generate("Other <o@example.org>").unwrap();
        assert!(verify(other.public_key_armored(), &data, &sig).is_err(), "another key does not verify");
        assert_eq!(signer.fingerprint().len(), 40);
        assert!(!format!("{signer:?}").contains("PRIVATE"), "Debug shows no secret");
    }

    #[test]
    fn a_signature_of_a_copied_hash_is_the_signature_of_the_bytes() {
        let signer = OpenPgpSigner::generate("Test <t@example.org>").unwrap();
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        let created = UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let streamed = libvieter::repo::sign::sign_reader(&signer, &mut &data[..], created).unwrap();
        // Half hashed, copied, the copy goes on with the rest (as an archive's kept start is).
        let mut hash = signer.data_hash().expect("a copyable hash");
        hash.write_all(&data[..300_000]).unwrap();
        let mut copy = hash.fork();
        hash.write_all(b"other bytes").unwrap();
        copy.write_all(&data[300_000..]).unwrap();
        let resumed = signer.sign_hash(copy, created).unwrap();
        assert_eq!(
            resumed, streamed,
            "Ed25519 signatures are deterministic: the same bytes, the same signature"
        );
        verify(signer.public_key_armored(), &data, &resumed).unwrap();
        let other = signer.sign_hash(hash, created).unwrap();
        assert!(
            verify(signer.public_key_armored(), &data, &other).is_err(),
            "the other branch signs other bytes"
        );
        let foreign = TestHashOfAnotherSigner::boxed();
        assert!(signer.sign_hash(foreign, created).is_err(), "another signer's hash is refused");
    }

    /// A [`DataHash`] that is not the OpenPGP signer's.
    struct TestHashOfAnotherSigner;

    impl TestHashOfAnotherSigner {
        fn boxed() -> Box<dyn DataHash> {
            Box::new(TestHashOfAnotherSigner)
        }
    }

    impl Write for TestHashOfAnotherSigner {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl DataHash for TestHashOfAnotherSigner {
        fn fork(&self) -> Box<dyn DataHash> {
            Box::new(TestHashOfAnotherSigner)
        }
        fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
            self
        }
    }

    #[test]
    fn a_generated_key_is_kept_with_mode_0600_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = OpenPgpSigner::from_config(GENERATE, dir.path()).unwrap();
        let path = dir.path().join(GENERATED_KEY_FILE);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let again = OpenPgpSigner::from_config("generate\n", dir.path()).unwrap();
        assert_eq!(first.fingerprint(), again.fingerprint(), "the kept key is used again");
        let armored = std::fs::read_to_string(&path).unwrap();
        let same = OpenPgpSigner::from_config(&armored, Path::new("/nonexistent")).unwrap();
        assert_eq!(same.fingerprint(), first.fingerprint(), "the armored key itself works as the value");
    }

    #[test]
    fn bad_keys_are_refused_without_showing_them() {
        let e = OpenPgpSigner::from_armored("not a key at all").unwrap_err();
        assert!(matches!(e, KeyError::Parse(_)), "{e}");
        assert!(!e.to_string().contains("not a key at all"), "{e}");
        let public = OpenPgpSigner::generate("P <p@example.org>").unwrap().public_key_armored().to_owned();
        assert!(OpenPgpSigner::from_armored(&public).is_err(), "a public key cannot sign");
    }
}
