//! Who may do what: the admin key may do everything; an agent key may publish packages and run jobs.
//!
//! Only SHA-256 digests of the keys are kept, and a presented key is compared by its digest in constant
//! time: every comparison is over 32 bytes whatever the keys' lengths, and every configured key is
//! compared whichever matches, so timing tells nothing about a key. The agent keys may be several, one
//! per line (a key never contains a line break: HTTP header values cannot), so that each agent has its
//! own; the agent ids a key has used are bound to it ([`crate::builds::BuildService`]).
//!
//! ```
//! use libvieter::access::{digest, Keys, Role};
//! let keys = Keys::new("admin-secret", Some("agent-one\nagent-two"));
//! assert_eq!(keys.role(&digest("agent-two")), Some(Role::Agent));
//! assert_eq!(keys.role(&digest("admin-secret")), Some(Role::Admin));
//! assert_eq!(keys.role(&digest("agent-one\nagent-two")), None, "the list is not a key");
//! assert!(Role::Admin > Role::Agent, "the admin may do what an agent may");
//! ```

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

pub use crate::scheduler::KeyDigest;

/// What a key may do; a higher role may do everything a lower one may.
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

/// The configured keys, as digests. `Debug` shows how many agent keys there are, never a key.
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

impl Keys {
    /// The admin key and the agent keys (`agent`: none, one, or one per line; lines are trimmed,
    /// blank ones ignored).
    pub fn new(admin: &str, agent: Option<&str>) -> Self {
        let agents =
            agent.unwrap_or("").lines().map(str::trim).filter(|k| !k.is_empty()).map(digest).collect();
        Keys { admin: digest(admin), agents }
    }

    /// How many agent keys are configured.
    pub fn agent_keys(&self) -> usize {
        self.agents.len()
    }

    /// Whether `key` is the admin key or an agent key.
    pub fn accepts(&self, key: &KeyDigest) -> bool {
        self.role(key).is_some()
    }

    /// The role of a key's digest, if it is one of the keys. Every configured key is compared (in
    /// constant time), whichever matches.
    pub fn role(&self, key: &KeyDigest) -> Option<Role> {
        let admin = key.ct_eq(&self.admin);
        let agent = self.agents.iter().fold(Choice::from(0), |found, k| found | key.ct_eq(k));
        if bool::from(admin) {
            Some(Role::Admin)
        } else if bool::from(agent) {
            Some(Role::Agent)
        } else {
            None
        }
    }
}

/// What a reader of the web interface is looking at: what a [`ReadPolicy`] decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// Repositories and their packages (what pacman can download anyway).
    Repos,
    /// Targets, jobs, build logs and agents.
    Builds,
}

/// Who may read what without signing in (the server's `ui_public` and `ui_public_builds`), and what a
/// signed-in role may do. The admin reads and changes everything; an agent key reads what the admin
/// reads but changes nothing (it may only publish and run jobs, through the API).
///
/// ```
/// use libvieter::access::{Area, ReadPolicy, Role};
/// let policy = ReadPolicy::default();
/// assert!(policy.may_read(Area::Repos, None), "repositories are public by default");
/// assert!(!policy.may_read(Area::Builds, None), "builds need a key by default");
/// assert!(policy.may_read(Area::Builds, Some(Role::Agent)));
/// assert!(!ReadPolicy::may_change(Some(Role::Agent)) && ReadPolicy::may_change(Some(Role::Admin)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPolicy {
    /// Repositories and packages may be read without a key.
    pub repos_public: bool,
    /// Targets, jobs, logs and agents may be read without a key.
    pub builds_public: bool,
}

impl Default for ReadPolicy {
    fn default() -> Self {
        ReadPolicy { repos_public: true, builds_public: false }
    }
}

impl ReadPolicy {
    /// Whether a reader signed in with `role` (or not signed in) may read `area`.
    pub fn may_read(&self, area: Area, role: Option<Role>) -> bool {
        role.is_some()
            || match area {
                Area::Repos => self.repos_public,
                Area::Builds => self.builds_public,
            }
    }

    /// Whether `role` may change targets and jobs (add, edit, remove, build, cancel, retry).
    pub fn may_change(role: Option<Role>) -> bool {
        role == Some(Role::Admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles() {
        let keys = Keys::new("admin", Some("agent"));
        assert_eq!(keys.role(&digest("admin")), Some(Role::Admin));
        assert_eq!(keys.role(&digest("agent")), Some(Role::Agent));
        for wrong in ["admi", "admin ", ""] {
            assert_eq!(keys.role(&digest(wrong)), None, "{wrong:?}");
        }
        let no_agent = Keys::new("admin", Some(""));
        assert_eq!(no_agent.role(&digest("")), None, "an empty agent key is no key");
        assert_eq!(no_agent.agent_keys(), 0);
        assert!(!format!("{keys:?}").contains("admin"), "Debug never shows a key");
    }

    #[test]
    fn several_agent_keys_one_per_line() {
        let keys = Keys::new("admin", Some("one\r\n\n  two  \nthree"));
        assert_eq!(keys.agent_keys(), 3);
        for k in ["one", "two", "three"] {
            assert_eq!(keys.role(&digest(k)), Some(Role::Agent), "{k}");
        }
        assert!(keys.accepts(&digest("admin")) && !keys.accepts(&digest("four")));
    }

    #[test]
    fn digests_are_sha256() {
        assert_eq!(
            hex::encode(digest("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
