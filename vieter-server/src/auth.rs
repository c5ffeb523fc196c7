//! API keys over HTTP: the `X-Api-Key` header, the caller it makes, and the filter routes require.
//! Which key has which role is libvieter's ([`libvieter::access`]).

use std::sync::Arc;

pub use libvieter::access::{digest, Keys, Role};
use libvieter::scheduler::KeyDigest;
use warp::Filter;

use crate::error::ApiError;

/// The header carrying the key (Vieter's).
pub const HEADER: &str = "x-api-key";

/// A request that presented an accepted key: its role and the key's digest (what agent ids are bound
/// to).
#[derive(Clone)]
pub struct Caller {
    pub role: Role,
    pub key: KeyDigest,
    keys: Arc<Keys>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller").field("role", &self.role).finish_non_exhaustive()
    }
}

impl Caller {
    /// Whether `key` is one of the keys the server accepts now (a binding to any other key is stale).
    pub fn accepts(&self, key: &KeyDigest) -> bool {
        self.keys.accepts(key)
    }
}

/// The role of a presented key: 401 when there is none or it is not one of the keys.
pub fn role(keys: &Keys, presented: Option<&str>) -> Result<Role, ApiError> {
    let key = presented.ok_or_else(|| ApiError::unauthorized("missing X-Api-Key header"))?;
    keys.role(&digest(key)).ok_or_else(|| ApiError::unauthorized("invalid API key"))
}

/// The caller behind a presented key.
pub fn caller(keys: &Arc<Keys>, presented: Option<&str>) -> Result<Caller, ApiError> {
    let key = digest(presented.ok_or_else(|| ApiError::unauthorized("missing X-Api-Key header"))?);
    let role = keys.role(&key).ok_or_else(|| ApiError::unauthorized("invalid API key"))?;
    Ok(Caller { role, key, keys: keys.clone() })
}

/// A filter that passes requests whose key has at least `needed`, and extracts who they are.
pub fn require(
    keys: Arc<Keys>,
    needed: Role,
) -> impl Filter<Extract = (Caller,), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>(HEADER).and_then(move |key: Option<String>| {
        let keys = keys.clone();
        async move {
            let caller = caller(&keys, key.as_deref()).map_err(warp::reject::custom)?;
            if caller.role < needed {
                return Err(warp::reject::custom(ApiError::forbidden("this key may not do that")));
            }
            Ok(caller)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_presented_key_makes_a_caller_or_a_401() {
        let keys = Arc::new(Keys::new(
            "admin",
            Some(
                "one
two",
            ),
        ));
        assert_eq!(role(&keys, Some("admin")), Ok(Role::Admin));
        assert_eq!(role(&keys, None).unwrap_err().status, warp::http::StatusCode::UNAUTHORIZED);
        assert_eq!(role(&keys, Some("nope")).unwrap_err().status, warp::http::StatusCode::UNAUTHORIZED);
        let caller = caller(&keys, Some("two")).unwrap();
        assert_eq!((caller.role, caller.key), (Role::Agent, digest("two")));
        assert!(caller.accepts(&digest("admin")) && caller.accepts(&digest("one")));
        assert!(!caller.accepts(&digest("three")));
    }
}
