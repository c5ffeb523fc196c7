//! Signing in to the web interface: the key is checked once, then the server keeps the session (the
//! key's digest, never the key) and the browser only an opaque id in an `HttpOnly; SameSite=Strict`
//! cookie. Every state-changing form carries the session's CSRF token; the role is looked up again at
//! each request, so a key removed from the configuration signs its sessions out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use libvieter::access::{digest, KeyDigest, Keys, Role};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The cookie's name.
pub const COOKIE: &str = "vieter_session";

/// A session unused this long is forgotten.
pub const IDLE: Duration = Duration::from_secs(12 * 3600);

/// Most sessions kept; past it the least recently used is forgotten.
pub const MAX_SESSIONS: usize = 10_000;

struct Session {
    key: KeyDigest,
    csrf: String,
    last_used: Instant,
}

/// A signed-in reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub role: Role,
    /// The token forms must carry.
    pub csrf: String,
}

/// The sessions, by the SHA-256 of their id (the id itself is only in the browser).
#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<[u8; 32], Session>>,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn id_digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.by_id.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Signs in with `key`: the new session's id (for the cookie), or `None` when the key is not one.
    pub fn sign_in(&self, keys: &Keys, key: &str) -> Option<String> {
        let key = digest(key.trim());
        keys.role(&key)?;
        let id = random_hex();
        let now = Instant::now();
        let mut sessions = self.lock();
        sessions.retain(|_, s| now.duration_since(s.last_used) < IDLE);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions.iter().min_by_key(|(_, s)| s.last_used).map(|(k, _)| *k) {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(id_digest(&id), Session { key, csrf: random_hex(), last_used: now });
        Some(id)
    }

    /// The reader behind a session id, if it is a live session of a key still accepted.
    pub fn get(&self, keys: &Keys, id: &str) -> Option<SignedIn> {
        let mut sessions = self.lock();
        let digest = id_digest(id);
        let session = sessions.get_mut(&digest)?;
        let now = Instant::now();
        match keys.role(&session.key) {
            Some(role) if now.duration_since(session.last_used) < IDLE => {
                session.last_used = now;
                Some(SignedIn { role, csrf: session.csrf.clone() })
            }
            _ => {
                sessions.remove(&digest);
                None
            }
        }
    }

    /// Forgets a session.
    pub fn sign_out(&self, id: &str) {
        self.lock().remove(&id_digest(id));
    }
}

/// Whether a form's token is the session's (compared in constant time).
pub fn csrf_ok(expected: &str, presented: &str) -> bool {
    use subtle::ConstantTimeEq;
    expected.len() == presented.len() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// The session id in a `Cookie` header.
pub fn cookie_value(header: &str) -> Option<&str> {
    header.split(';').map(str::trim).find_map(|pair| pair.strip_prefix(COOKIE)?.strip_prefix('='))
}

/// The `Set-Cookie` value of a new session.
pub fn set_cookie(id: &str) -> String {
    format!("{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}", IDLE.as_secs())
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_made_only_by_a_key_and_ends_with_its_key() {
        let sessions = Sessions::default();
        let keys = Keys::new("admin", Some("agent"));
        assert!(sessions.sign_in(&keys, "nope").is_none());
        let id = sessions.sign_in(&keys, "admin").unwrap();
        let signed = sessions.get(&keys, &id).unwrap();
        assert_eq!(signed.role, Role::Admin);
        assert!(csrf_ok(&signed.csrf, &signed.csrf) && !csrf_ok(&signed.csrf, "x"));
        assert_ne!(id, signed.csrf, "the token is not the session id");
        assert_eq!(sessions.get(&keys, &id).unwrap().csrf, signed.csrf, "stable within a session");
        // The admin key changes: the session is gone.
        assert!(sessions.get(&Keys::new("other", None), &id).is_none());
        assert!(sessions.get(&keys, &id).is_none(), "and forgotten");
        let agent = sessions.sign_in(&keys, "agent\n").unwrap();
        assert_eq!(sessions.get(&keys, &agent).unwrap().role, Role::Agent);
        sessions.sign_out(&agent);
        assert!(sessions.get(&keys, &agent).is_none());
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        assert_eq!(cookie_value("a=1; vieter_session=abc; b=2"), Some("abc"));
        assert_eq!(cookie_value("vieter_sessionx=abc"), None);
        assert!(set_cookie("abc").contains("HttpOnly; SameSite=Strict"));
    }
}
