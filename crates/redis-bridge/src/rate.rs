//! The publish rate limit: a token bucket refilled at `--publish-rate` per
//! second, holding at most `--publish-burst`. Each WebSocket connection has
//! its own; all HTTP publishes share one (see `docs/protocol.md`).

use std::time::Instant;

/// A token bucket: one token per publish.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// Full, refilled at `rate` tokens per second up to `burst` (both at least 1).
    pub fn new(rate: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self { rate: f64::from(rate.max(1)), burst, tokens: burst, last: Instant::now() }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
