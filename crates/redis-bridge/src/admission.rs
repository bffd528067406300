//! How long a WebSocket may stay without valid credentials.
//!
//! * A connection must send an accepted `hello` within `--hello-timeout` of
//!   the upgrade; otherwise it gets `error` `HELLO_TIMEOUT` and is closed with
//!   [`CLOSE_HELLO_TIMEOUT`] (counted in `swarmbus_errors_total{code="HELLO_TIMEOUT"}`).
//! * At most `--max-unauthenticated` connections may be waiting for their
//!   `hello` at once ([`Unauthenticated`]); a further upgrade is answered 503
//!   `TOO_MANY_UNAUTHENTICATED` (counted the same way) before any WebSocket is set up.
//! * An authenticated connection ends at its token's `exp`: `error`
//!   `TOKEN_EXPIRED`, then close code [`CLOSE_TOKEN_EXPIRED`], unless a
//!   `refresh` frame brought a newer token first ([`expiry_deadline`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::error::BridgeError;

/// Close code when the connection's token expired (application range 4000–4999).
pub const CLOSE_TOKEN_EXPIRED: u16 = 4001;
/// Close code when no accepted `hello` arrived within `--hello-timeout`.
pub const CLOSE_HELLO_TIMEOUT: u16 = 4002;
/// Close code when the `hello`'s token was refused (missing, expired, not yet
/// valid, invalid): told by an `error` frame with the code, counted in
/// `swarmbus_auth_refusals_total{code}`, not a protocol violation.
pub const CLOSE_AUTH_REFUSED: u16 = 4003;

/// Counts connections that have not authenticated yet, up to a cap.
#[derive(Debug)]
pub struct UnauthenticatedSlots {
    open: Arc<AtomicUsize>,
    max: usize,
}

/// One place among the unauthenticated connections, given back when dropped.
#[derive(Debug)]
pub struct Unauthenticated(Arc<AtomicUsize>);

impl Drop for Unauthenticated {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl UnauthenticatedSlots {
    /// At most `max` connections at once.
    pub fn new(max: usize) -> Self {
        Self { open: Arc::default(), max }
    }

    /// A place, or `TOO_MANY_UNAUTHENTICATED` when all `max` are taken.
    pub fn take(&self) -> Result<Unauthenticated, BridgeError> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max).then_some(n + 1))
            .map(|_| Unauthenticated(self.open.clone()))
            .map_err(|_| BridgeError::TooManyUnauthenticated(self.max))
    }

    /// Connections holding a place now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// The instant at which a token with this `exp` (seconds since the Unix epoch)
/// expires; `None` when it is too far away to be represented.
pub fn expiry_deadline(exp: u64) -> Option<Instant> {
    let at = UNIX_EPOCH.checked_add(Duration::from_secs(exp))?;
    let remaining = at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
    Instant::now().checked_add(remaining)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_capped_and_given_back() {
        let slots = UnauthenticatedSlots::new(2);
        let a = slots.take().unwrap();
        let _b = slots.take().unwrap();
        assert_eq!(slots.take().unwrap_err(), BridgeError::TooManyUnauthenticated(2));
        drop(a);
        assert_eq!(slots.open(), 1);
        assert!(slots.take().is_ok());
    }

    #[test]
    fn expiry_deadlines() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert!(expiry_deadline(now.saturating_sub(10)).unwrap() <= Instant::now(), "already past");
        let later = expiry_deadline(now + 100).unwrap();
        assert!(later > Instant::now() + Duration::from_secs(90));
        assert_eq!(expiry_deadline(u64::MAX), None, "no overflow panic");
    }
}
