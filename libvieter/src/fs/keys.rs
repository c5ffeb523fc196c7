//! OpenPGP keys on disk (features `fs` and `openpgp`): a signing key generated once and kept, the
//! packagers' public keys read from a directory, and the ring of a repository's signing keys.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use pgp::composed::SignedPublicKey;

use crate::api::{ResignState, SigningKey as SigningKeyInfo};
use crate::repo::openpgp::{
    hex_fingerprint, parse_public_keys, KeyError, OpenPgpSigner, TrustedKeys, TrustedKeysError,
};
use crate::repo::{check_key_removal, KeyRemovalError};

impl OpenPgpSigner {
    /// The key kept at `path`, or a new one (Ed25519) written there first, mode 0600
    /// ([`super::write_secret`]).
    pub fn load_or_generate(path: &Path) -> Result<OpenPgpSigner, KeyError> {
        let file_err = |source| KeyError::File { path: path.display().to_string(), source };
        match std::fs::read_to_string(path) {
            Ok(armored) => return OpenPgpSigner::from_armored(&armored),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(file_err(e)),
        }
        let signer = OpenPgpSigner::generate("Vieter repository signing key")?;
        super::write_secret(path, signer.secret_key_armored()?.as_bytes()).map_err(file_err)?;
        tracing::warn!(
            fingerprint = signer.fingerprint(),
            "generated an Ed25519 signing key into {} (mode 0600)",
            path.display()
        );
        Ok(signer)
    }
}

impl TrustedKeys {
    /// Every `*.asc` file of `dir` (armored public keys, several per file allowed). At least one key.
    pub fn load_dir(dir: &Path) -> Result<TrustedKeys, TrustedKeysError> {
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
            return Err(TrustedKeysError::Empty { path: dir.display().to_string() });
        }
        Ok(TrustedKeys::new(keys))
    }
}

/// A repository's signing keys, current and retired: the public key of every key that signed and
/// was not removed, one `{FINGERPRINT}.asc` in one directory. The current key is added when the ring
/// is opened; the others are retired: listed (pacman keeps trusting what they signed) until an admin
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
    /// Opens the ring in `dir` (made when missing) and adds `signer`'s public key to it when it is
    /// new (a key rotation: every other key there is retired from now on).
    pub fn open(dir: &Path, signer: &OpenPgpSigner) -> Result<KeyRing, KeyError> {
        let file_err = |path: &Path, source| KeyError::File { path: path.display().to_string(), source };
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
        let own = dir.join(format!("{}.asc", signer.fingerprint()));
        if !own.exists() {
            super::write_atomically(&own, |out| {
                io::Write::write_all(out, signer.public_key_armored().as_bytes())
            })
            .map_err(|e| file_err(&own, e))?;
        }
        let mut retired = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| file_err(dir, e))? {
            let path = entry.map_err(|e| file_err(dir, e))?.path();
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
        Ok(KeyRing { dir: dir.to_owned(), current, retired: RwLock::new(retired) })
    }

    /// The retired keys, for [`OpenPgpSigner::retiring`]: what they signed is signed again.
    pub fn retired_keys(&self) -> TrustedKeys {
        let retired = self.retired.read().unwrap_or_else(|p| p.into_inner());
        TrustedKeys::new(retired.iter().map(|(_, k, _)| k.clone()).collect())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::sign::sign_reader;
    use crate::repo::Signer;

    #[test]
    fn a_generated_key_is_kept_with_mode_0600_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing_key.asc");
        let first = OpenPgpSigner::load_or_generate(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let again = OpenPgpSigner::load_or_generate(&path).unwrap();
        assert_eq!(first.fingerprint(), again.fingerprint(), "the kept key is used again");
        let armored = std::fs::read_to_string(&path).unwrap();
        let same = OpenPgpSigner::from_armored(&armored).unwrap();
        assert_eq!(same.fingerprint(), first.fingerprint(), "the file holds the armored key");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["signing_key.asc"], "no temporary file is left");
    }

    #[test]
    fn a_rotation_retires_the_old_key_until_it_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let ring_dir = dir.path().join("ring");
        let old = OpenPgpSigner::generate("Old <o@example.org>").unwrap();
        let ring = KeyRing::open(&ring_dir, &old).unwrap();
        assert_eq!(ring.list().len(), 1);
        assert!(ring.retired_keys().is_empty());
        let old_sig = sign_reader(&old, &mut &b"data"[..], std::time::SystemTime::now()).unwrap();

        let new = OpenPgpSigner::generate("New <n@example.org>").unwrap();
        let ring = KeyRing::open(&ring_dir, &new).unwrap();
        let listed: Vec<_> = ring.list().into_iter().map(|k| (k.fingerprint, k.current)).collect();
        assert_eq!(listed, [(new.fingerprint().to_owned(), true), (old.fingerprint().to_owned(), false)]);
        let new = new.retiring(ring.retired_keys());
        assert!(new.supersedes(&old_sig), "what the retired key signed is signed again");
        let new_sig = sign_reader(&new, &mut &b"data"[..], std::time::SystemTime::now()).unwrap();
        assert!(!new.supersedes(&new_sig), "its own signatures are kept");

        let e = ring.remove(new.fingerprint(), ResignState::Done).unwrap_err();
        assert!(matches!(e, RemoveKeyError::Refused(_)), "the current key stays: {e}");
        let e = ring.remove(old.fingerprint(), ResignState::Running).unwrap_err();
        assert!(matches!(e, RemoveKeyError::Refused(_)), "not while the re-sign runs: {e}");
        ring.remove(&old.fingerprint().to_ascii_lowercase(), ResignState::Done).unwrap();
        assert_eq!(ring.list().len(), 1);
        assert!(!ring_dir.join(format!("{}.asc", old.fingerprint())).exists(), "its file is gone");
        let reopened = KeyRing::open(&ring_dir, &new).unwrap();
        assert_eq!(reopened.list().len(), 1, "and it stays gone");
    }

    #[test]
    fn a_directory_of_trusted_keys_needs_one_key_and_names_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = TrustedKeys::load_dir(dir.path()).unwrap_err();
        assert!(matches!(e, TrustedKeysError::Empty { .. }), "{e}");
        let a = OpenPgpSigner::generate("A <a@example.org>").unwrap();
        std::fs::write(dir.path().join("a.asc"), a.public_key_armored()).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not read").unwrap();
        let keys = TrustedKeys::load_dir(dir.path()).unwrap();
        assert_eq!(keys.fingerprints(), [a.fingerprint()]);
        std::fs::write(dir.path().join("b.asc"), "garbage").unwrap();
        let e = TrustedKeys::load_dir(dir.path()).unwrap_err();
        assert!(e.to_string().contains("b.asc"), "{e}");
    }
}
