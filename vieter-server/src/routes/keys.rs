//! `GET /api/v1/keys`: the public keys that sign this server's packages and databases, current first,
//! then the retired keys still listed (empty when the repositories are unsigned). Public: it is what
//! users add to their keyring. `GET /api/v1/keys/resign`: the re-sign after a rotation.
//! `DELETE /api/v1/keys/{fingerprint}` (admin): a retired key stops being listed.

use libvieter::repo::KeyRemovalError;
use warp::http::StatusCode;

use crate::error::{ok, ApiError};
use crate::signing::RemoveKeyError;
use crate::App;

/// The keys, as `{"message": "", "data": [{"fingerprint", "public_key", "current"}]}`.
pub fn list(app: &App) -> warp::reply::Response {
    ok(&app.keyring.as_ref().map(|ring| ring.list()).unwrap_or_default())
}

/// How far the re-sign is (`idle` on an unsigned server).
pub fn resign(app: &App) -> warp::reply::Response {
    ok(&app.repos.resign_status())
}

/// Removes a retired key.
pub fn remove(app: &App, fingerprint: &str) -> Result<warp::reply::Response, ApiError> {
    let Some(ring) = &app.keyring else {
        return Err(ApiError::not_found("the server does not sign (no signing_key is configured)"));
    };
    match ring.remove(fingerprint, app.repos.resign_status().state) {
        Ok(()) => Ok(ok(&format!("removed {}", fingerprint.to_ascii_uppercase()))),
        Err(RemoveKeyError::Refused(e @ KeyRemovalError::Unknown(_))) => {
            Err(ApiError::not_found(e.to_string()))
        }
        Err(RemoveKeyError::Refused(e)) => Err(ApiError::new(StatusCode::CONFLICT, e.to_string())),
        Err(e) => Err(ApiError::internal("removing a signing key", e)),
    }
}
