//! OpenPGP signatures (feature `openpgp`): the implementations of the signing ports that hold keys.
//!
//! OpenPGP is rpgp (crate `pgp`, pure Rust). [`OpenPgpSigner`] is a [`Signer`]: its signatures are v4
//! detached binary signatures (type 0x00) over SHA-256 with the issuer's fingerprint and the creation
//! time hashed and its key id unhashed, as `gpg --detach-sign` makes them, which pacman's gpgme
//! verifies. A generated key is Ed25519 in the v4 "EdDSA legacy" encoding (algorithm 22): the GnuPG
//! 2.2 behind pacman 6.0 does not know RFC 9580's Ed25519 (algorithm 27). [`TrustedKeys`] is the
//! [`Verifier`] of packagers' signatures on upload; [`parse_signature`] and [`parse_public_keys`]
//! read what the network sends and never panic on any input (fuzzed: `fuzz/fuzz_targets/openpgp.rs`).
//!
//! No I/O here: keys come as text. The file side (a generated key kept on disk, a directory of
//! trusted keys, the ring of current and retired signing keys) is `crate::fs`'s (feature `fs`).
//!
//! The secret key is never logged: [`OpenPgpSigner`]'s `Debug` shows the fingerprint only, and errors
//! name the setting, never its value.

use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use pgp::composed::{
    ArmorOptions, Deserializable, DetachedSignature, KeyType, SecretKeyParamsBuilder, SignedPublicKey,
    SignedSecretKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{Signature, SignatureConfig, SignatureHasher, SignatureType, Subpacket, SubpacketData};
use pgp::ser::Serialize;
use pgp::types::{KeyDetails, Password, SigningKey, Timestamp};
use sha2::digest::DynDigest;

use super::sign::Sha256Hash;
use super::{DataHash, SignError, Signer, Signing, Verified, Verifier, VerifyError};

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

    /// This signer, replacing what `retired` (the earlier keys of the same repository) signed
    /// ([`Signer::supersedes`]).
    pub fn retiring(mut self, retired: TrustedKeys) -> Self {
        self.retired = retired;
        self
    }

    /// The secret key, armored (what a key file keeps). Never logged.
    pub fn secret_key_armored(&self) -> Result<String, KeyError> {
        self.key.to_armored_string(ArmorOptions::default()).map_err(|e| KeyError::Generate(e.to_string()))
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

impl Signer for OpenPgpSigner {
    fn start(&self, created: SystemTime) -> Result<Box<dyn Signing + '_>, SignError> {
        let key = self.signing_key();
        let hasher = signature_config(key, created)?.into_hasher().map_err(sign_err)?;
        Ok(Box::new(PgpSigning { hasher, key }))
    }

    fn data_hash(&self) -> Option<Box<dyn DataHash>> {
        Some(Sha256Hash::boxed())
    }

    /// What [`Signer::start`] makes of the same bytes: the data's hash goes on with the signature's
    /// hashed part and trailer (RFC 4880 5.2.4), and the key signs the digest.
    fn sign_hash(&self, hash: Box<dyn DataHash>, created: SystemTime) -> Result<Vec<u8>, SignError> {
        let hash = Sha256Hash::from_data_hash(hash).ok_or_else(|| sign_err("not a SHA-256 hash"))?;
        let key = self.signing_key();
        let config = signature_config(key, created)?;
        let mut hasher: Box<dyn DynDigest + Send> = Box::new(hash);
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
pub fn hex_fingerprint(key: &impl KeyDetails) -> String {
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
    /// Keys from armored text (one or more blocks).
    pub fn from_armored(armored: &str) -> Result<TrustedKeys, TrustedKeysError> {
        let keys = parse_public_keys(armored.as_bytes())
            .map_err(|reason| TrustedKeysError::Parse { path: "(text)".into(), reason })?;
        Ok(TrustedKeys { keys })
    }

    /// The keys given, their bindings checked when they were parsed ([`parse_public_keys`]).
    pub fn new(keys: Vec<SignedPublicKey>) -> TrustedKeys {
        TrustedKeys { keys }
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
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
        let sig = crate::repo::sign::sign_reader(&signer, &mut &data[..], SystemTime::now()).unwrap();
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
        let streamed = crate::repo::sign::sign_reader(&signer, &mut &data[..], created).unwrap();
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
    fn bad_keys_are_refused_without_showing_them() {
        let e = OpenPgpSigner::from_armored("not a key at all").unwrap_err();
        assert!(matches!(e, KeyError::Parse(_)), "{e}");
        assert!(!e.to_string().contains("not a key at all"), "{e}");
        let public = OpenPgpSigner::generate("P <p@example.org>").unwrap().public_key_armored().to_owned();
        assert!(OpenPgpSigner::from_armored(&public).is_err(), "a public key cannot sign");
    }
}
