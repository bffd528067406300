//! Time, passed in. The core never reads a system clock on its own.

use alloc::rc::Rc;
use core::cell::Cell;

/// A source of the current time in milliseconds.
///
/// Any `Fn() -> u64` is a clock, so `|| js_sys::Date::now() as u64` or a test
/// counter work directly.
pub trait Clock {
    /// The current time in milliseconds. Should not go backwards.
    fn now_ms(&self) -> u64;
}

impl<F: Fn() -> u64> Clock for F {
    fn now_ms(&self) -> u64 {
        self()
    }
}

/// A clock that only moves when told to; clones share the same time.
///
/// # Examples
/// ```
/// use swarmbus_core::{Clock, ManualClock};
/// let clock = ManualClock::new(100);
/// let handle = clock.clone();
/// handle.advance(50);
/// assert_eq!(clock.now_ms(), 150);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Rc<Cell<u64>>);

impl ManualClock {
    /// A clock reading `start_ms`.
    pub fn new(start_ms: u64) -> Self {
        Self(Rc::new(Cell::new(start_ms)))
    }

    /// Moves the time forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.0.set(self.0.get().saturating_add(ms));
    }

    /// Sets the time to `ms`.
    pub fn set(&self, ms: u64) {
        self.0.set(ms);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.get()
    }
}

/// Wall-clock milliseconds since the Unix epoch (needs the `std` feature).
#[cfg(feature = "std")]
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[cfg(feature = "std")]
impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }
}
