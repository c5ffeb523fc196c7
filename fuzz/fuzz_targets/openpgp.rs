//! The OpenPGP input of uploads (a packager's detached signature, binary or armored, and the armored
//! public keys of `trusted_keys`) never panics the server: parsing either, and verifying any input as
//! a signature of the bytes `payload` against a trusted key (`openpgp_trusted.asc`, a gpg-made Ed25519
//! key; seeds: its signatures of `payload` and of other bytes, another key's, the armored keys),
//! returns a value or an error. A signature that parses serialises to canonical bytes that parse to the
//! same signature; what a verified one keeps is binary and parses again.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use libvieter::repo::Verifier;
use libvieter::repo::openpgp::{parse_public_keys, parse_signature, TrustedKeys};

fn trusted() -> &'static TrustedKeys {
    static KEYS: OnceLock<TrustedKeys> = OnceLock::new();
    KEYS.get_or_init(|| TrustedKeys::from_armored(include_str!("openpgp_trusted.asc")).expect("the key"))
}

fuzz_target!(|data: &[u8]| {
    let _ = parse_public_keys(data);
    if let Ok(signature) = parse_signature(data) {
        use pgp::ser::Serialize;
        let bytes = signature.to_bytes().expect("a parsed signature serialises");
        let again = parse_signature(&bytes).expect("its bytes parse");
        // rpgp keeps a parsed packet's length as sent (an MPI with leading zeros is normalised), so
        // the first serialisation may differ from the input: it is canonical from then on.
        assert_eq!(again.to_bytes().expect("serialises"), bytes);
        assert_eq!(again.signature.config(), signature.signature.config());
    }
    if let Ok(verified) = trusted().verify(data, &mut &b"payload"[..]) {
        assert_eq!(verified.signature.first().map(|b| b & 0x80), Some(0x80), "a binary packet");
        assert!(parse_signature(&verified.signature).is_ok(), "what is kept parses again");
    }
});
