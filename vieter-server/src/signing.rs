//! The server's signing settings: `signing_key` is an armored secret key or [`GENERATE`], the
//! signing keys' ring and a generated key live in the data directory. The OpenPGP implementation is
//! libvieter's (`repo::openpgp`, `fs::KeyRing`).

use std::path::Path;

pub use libvieter::fs::{KeyRing, RemoveKeyError};
pub use libvieter::repo::openpgp::{KeyError, OpenPgpSigner, TrustedKeys, TrustedKeysError};

/// The value of `signing_key` that generates a key on first start.
pub const GENERATE: &str = "generate";

/// The file a generated key is kept in, in the data directory.
pub const GENERATED_KEY_FILE: &str = "signing_key.asc";

/// The directory of the public keys that signed here, in the data directory.
pub const KEY_RING_DIR: &str = "signing_keys";

/// The signer of `signing_key`'s value (an armored secret key, or [`GENERATE`]: the key kept in
/// `data_dir`, generated when there is none), with the keys it retires, and its ring.
pub fn open(value: &str, data_dir: &Path) -> Result<(OpenPgpSigner, KeyRing), KeyError> {
    let signer = if value.trim() == GENERATE {
        OpenPgpSigner::load_or_generate(&data_dir.join(GENERATED_KEY_FILE))?
    } else {
        OpenPgpSigner::from_armored(value)?
    };
    let ring = KeyRing::open(&data_dir.join(KEY_RING_DIR), &signer)?;
    Ok((signer.retiring(ring.retired_keys()), ring))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_keeps_one_key_in_the_data_directory_and_an_armored_value_is_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (first, ring) = open(GENERATE, dir.path()).unwrap();
        assert_eq!(ring.list()[0].fingerprint, first.fingerprint());
        let (again, _) = open("generate\n", dir.path()).unwrap();
        assert_eq!(first.fingerprint(), again.fingerprint(), "the kept key is used again");
        let armored = std::fs::read_to_string(dir.path().join(GENERATED_KEY_FILE)).unwrap();
        let other = tempfile::tempdir().unwrap();
        let (same, _) = open(&armored, other.path()).unwrap();
        assert_eq!(same.fingerprint(), first.fingerprint(), "the armored key itself works as the value");
        assert!(dir.path().join(KEY_RING_DIR).join(format!("{}.asc", first.fingerprint())).is_file());
    }
}
