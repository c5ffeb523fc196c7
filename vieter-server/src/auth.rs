//! API keys: the admin key may do everything; the agent key may publish and run jobs. Keys are compared
//! in constant time.

use subtle::ConstantTimeEq;
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

/// The configured keys.
#[derive(Debug, Clone)]
pub struct Keys {
    admin: String,
    agent: Option<String>,
}

fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

impl Keys {
    pub fn new(admin: String, agent: Option<String>) -> Self {
        Keys { admin, agent: agent.filter(|k| !k.is_empty()) }
    }

    /// The role of a presented key.
    pub fn role(&self, presented: Option<&str>) -> Result<Role, ApiError> {
        let key = presented.ok_or_else(|| ApiError::unauthorized("missing X-Api-Key header"))?;
        if same(key, &self.admin) {
            return Ok(Role::Admin);
        }
        if let Some(agent) = &self.agent {
            if same(key, agent) {
                return Ok(Role::Agent);
            }
        }
        Err(ApiError::unauthorized("invalid API key"))
    }
}

/// A filter that passes requests whose key has at least `needed`.
pub fn require(
    keys: std::sync::Arc<Keys>,
    needed: Role,
) -> impl Filter<Extract = (Role,), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>(HEADER).and_then(move |key: Option<String>| {
        let keys = keys.clone();
        async move {
            let role = keys.role(key.as_deref()).map_err(warp::reject::custom)?;
            if role < needed {
                return Err(warp::reject::custom(ApiError::forbidden("this key may not do that")));
            }
            Ok(role)
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
        assert!(keys.role(None).is_err());
        let no_agent = Keys::new("admin".into(), Some(String::new()));
        assert!(no_agent.role(Some("")).is_err());
    }
}
