//! The time the build service works with: a [`Clock`] passed in, never the system's clock read here.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

/// Where the build service gets "now" from. The embedder passes the system clock (any
/// `Fn() -> DateTime<Utc>`, such as `chrono::Utc::now`); tests pass a [`ManualClock`].
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

impl<F: Fn() -> DateTime<Utc> + Send + Sync> Clock for F {
    fn now(&self) -> DateTime<Utc> {
        self()
    }
}

/// A clock that only moves when told to. Clones share the same time.
///
/// ```
/// use chrono::{Duration, TimeZone, Utc};
/// use libvieter::builds::{Clock, ManualClock};
/// let t0 = Utc.with_ymd_and_hms(2025, 3, 30, 0, 59, 0).unwrap();
/// let clock = ManualClock::new(t0);
/// let handle = clock.clone();
/// handle.advance(Duration::minutes(1));
/// assert_eq!(clock.now(), t0 + Duration::minutes(1));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// A clock standing at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        ManualClock(Arc::new(Mutex::new(at)))
    }

    /// Sets the time (it may go backwards: clocks do).
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }

    /// Moves the time by `by`.
    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t = t.checked_add_signed(by).unwrap_or(DateTime::<Utc>::MAX_UTC);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
