//! `GET /api/v1/keys`: the public keys that sign this server's packages and databases, current first
//! (empty when the repositories are unsigned). Public: it is what users add to their keyring.

use libvieter::api::SigningKey;

use crate::error::ok;
use crate::App;

/// The keys, as `{"message": "", "data": [{"fingerprint", "public_key"}]}`.
pub fn list(app: &App) -> warp::reply::Response {
    let keys: Vec<SigningKey> = app
        .signer
        .iter()
        .map(|s| SigningKey {
            fingerprint: s.fingerprint().to_owned(),
            public_key: s.public_key_armored().to_owned(),
        })
        .collect();
    ok(&keys)
}
