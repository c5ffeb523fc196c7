//! API keys: the admin key may do everything; an agent key may publish and run jobs.
//!
//! Only SHA-256 digests of the keys are kept, and a presented key is compared by its digest in constant
//! time: every comparison is over 32 bytes whatever the keys' lengths, so timing tells nothing about a
//! key's length or contents. `agent_key` may hold several keys, one per line (a key can never contain a
//! line break: HTTP header values cannot), so that each agent can have its own; the agent ids a key
//! has used are bound to it (see [`crate::builds`]).

use std::sync::Arc;

use libvieter::scheduler::KeyDigest;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use warp::Filter;

use crate::error::ApiError;

/// The header carrying the key (Vieter's).
pub const HEADER: &str = "x-api-key";

/// Who a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// An agent: publish, poll, heartbeat, finish, append logs.
    Agent,
    /// The administrator: everything.
    Admin,
}

/// The SHA-256 digest of a key.
pub fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.as_bytes()).into()
}

fn same(a: &KeyDigest, b: &KeyDigest) -> Choice {
    a.ct_eq(b)
}

/// The configured keys, as digests.
#[derive(Clone)]
pub struct Keys {
    admin: KeyDigest,
    agents: Vec<KeyDigest>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("agent_keys", &self.agents.len()).finish_non_exhaustive()
    }
}

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

impl Keys {
    /// The admin key and the agent keys (`agent`: none, one, or one per line; blank lines are ignored).
    pub fn new(admin: String, agent: Option<String>) -> Self {
        let agents = agent
            .as_deref()
            .unwrap_or("")
            .lines()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(digest)
            .collect();
        Keys { admin: digest(&admin), agents }
    }

    /// How many agent keys are configured.
    pub fn agent_keys(&self) -> usize {
        self.agents.len()
    }

    /// Whether `key` is the admin key or an agent key.
    pub fn accepts(&self, key: &KeyDigest) -> bool {
        self.role_of(key).is_some()
    }

    /// The role of a key's digest. Every configured key is compared (in constant time), whichever
    /// matches.
    fn role_of(&self, key: &KeyDigest) -> Option<Role> {
        let admin = same(key, &self.admin);
        let agent = self.agents.iter().fold(Choice::from(0), |found, k| found | same(key, k));
        if bool::from(admin) {
            Some(Role::Admin)
        } else if bool::from(agent) {
            Some(Role::Agent)
        } else {
            None
        }
    }

    /// The role of a presented key.
    pub fn role(&self, presented: Option<&str>) -> Result<Role, ApiError> {
        let key = presented.ok_or_else(|| ApiError::unauthorized("missing X-Api-Key header"))?;
        self.role_of(&digest(key)).ok_or_else(|| ApiError::unauthorized("invalid API key"))
    }

    /// The caller behind a presented key.
    pub fn caller(self: &Arc<Self>, presented: Option<&str>) -> Result<Caller, ApiError> {
        let key = presented.ok_or_else(|| ApiError::unauthorized("missing X-Api-Key header"))?;
        let key = digest(key);
        let role = self.role_of(&key).ok_or_else(|| ApiError::unauthorized("invalid API key"))?;
        Ok(Caller { role, key, keys: self.clone() })
    }
}

/// A filter that passes requests whose key has at least `needed`, and extracts who they are.
pub fn require(
    keys: Arc<Keys>,
    needed: Role,
) -> impl Filter<Extract = (Caller,), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>(HEADER).and_then(move |key: Option<String>| {
        let keys = keys.clone();
        async move {
            let caller = keys.caller(key.as_deref()).map_err(warp::reject::custom)?;
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
    fn roles() {
        let keys = Keys::new("admin".into(), Some("agent".into()));
        assert_eq!(keys.role(Some("admin")), Ok(Role::Admin));
        assert_eq!(keys.role(Some("agent")), Ok(Role::Agent));
        assert!(keys.role(Some("admi")).is_err());
        assert!(keys.role(Some("admin ")).is_err());
        assert!(keys.role(Some("")).is_err());
        assert!(keys.role(None).is_err());
        let no_agent = Keys::new("admin".into(), Some(String::new()));
        assert!(no_agent.role(Some("")).is_err());
        assert_eq!(no_agent.agent_keys(), 0);
        assert!(!format!("{keys:?}").contains("admin"), "Debug never shows a key");
    }

    #[test]
    fn several_agent_keys_one_per_line() {
        let keys = Arc::new(Keys::new("admin".into(), Some("one\r\n\n  two  \nthree".into())));
        assert_eq!(keys.agent_keys(), 3);
        for k in ["one", "two", "three"] {
            assert_eq!(keys.role(Some(k)), Ok(Role::Agent), "{k}");
        }
        assert!(keys.role(Some("one\r\n\n  two  \nthree")).is_err(), "the list is not a key");
        let caller = keys.caller(Some("two")).unwrap();
        assert_eq!((caller.role, caller.key), (Role::Agent, digest("two")));
        assert!(caller.accepts(&digest("admin")) && caller.accepts(&digest("three")));
        assert!(!caller.accepts(&digest("four")));
    }

    #[test]
    fn digests_are_sha256() {
        assert_eq!(
            hex::encode(digest("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
