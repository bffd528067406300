//! The circuit breaker state machine.
//!
//! ```text
//!            N consecutive failures,              wait elapsed
//!            or failure rate ≥ threshold          (lazily, on the next call)
//!   Closed ───────────────────────────▶ Open ────────────────────▶ HalfOpen
//!     ▲                                   ▲                          │  │
//!     │                                   └── any probe fails ───────┘  │
//!     └──────────────────── K probes succeed ───────────────────────────┘
//!
//!   ForcedOpen: refuses everything below the bypass level until reset.
//!   Disabled:   lets everything through and records nothing.
//! ```
//!
//! Time is passed in as milliseconds on any monotonic or wall clock the caller
//! chooses, so every transition is deterministic and testable with plain
//! numbers. The whole breaker is `serde`-serializable: a serverless worker can
//! save it at the end of a request and restore it at the start of the next.
//!
//! Calls at or above the bypass priority (default 8) always pass. While the
//! breaker is Closed they count like any call; otherwise their outcomes are
//! ignored, so a critical event can neither close nor re-open the circuit.
//!
//! A result is recorded against the [`Permit`] its call was admitted with; a
//! result that arrives after the breaker has changed state (an async call that
//! outlived its circuit) is ignored.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::error::CircuitOpen;
use crate::priority::Priority;

/// Trip on a failure rate over a sliding window of the last calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureRate {
    /// Trip when at least this percentage of the window failed (1–100).
    pub threshold_percent: u8,
    /// Number of most recent calls considered (1–128).
    pub window: u8,
    /// Do not judge the rate before this many calls are in the window.
    pub min_calls: u8,
}

/// Exponential growth of the open wait each time a half-open probe fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// Factor applied to the wait per consecutive re-open (default 2).
    pub multiplier: u32,
    /// Upper bound of the wait before jitter (default 5 minutes).
    pub max_open_ms: u64,
    /// Uniform jitter of ± this percentage of the wait (0–100, default 10).
    pub jitter_percent: u8,
    /// Seed of the jitter generator, so runs are reproducible (only its low 53 bits are used).
    pub seed: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { multiplier: 2, max_open_ms: 300_000, jitter_percent: 10, seed: 0x5eed }
    }
}

/// Breaker settings. `Default` gives 5 failures, 30 s open, 3 probes, bypass at 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit (0 turns this trigger off).
    pub failure_threshold: u32,
    /// Optional failure-rate trigger over a sliding count window.
    pub failure_rate: Option<FailureRate>,
    /// How long the circuit stays open before letting probes through.
    pub open_ms: u64,
    /// Optional exponential backoff of `open_ms` after failed probes.
    pub backoff: Option<Backoff>,
    /// Probe calls let through while half-open; this many successes close it.
    pub half_open_probes: u32,
    /// Calls at or above this priority are never refused (`None`: no bypass).
    pub bypass_priority: Option<Priority>,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            failure_rate: None,
            open_ms: 30_000,
            backoff: None,
            half_open_probes: 3,
            bypass_priority: Some(Priority::CRITICAL),
        }
    }
}

/// Where the breaker is, with the data that state needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case", rename_all_fields = "camelCase")]
pub enum BreakerState {
    /// Calls pass; failures are counted.
    Closed {
        /// Failures since the last success.
        consecutive_failures: u32,
    },
    /// Calls are refused until `since_ms + wait_ms`.
    Open {
        /// When the circuit opened.
        since_ms: u64,
        /// How long it stays open.
        wait_ms: u64,
    },
    /// Up to `half_open_probes` calls are let through to test the callee.
    HalfOpen {
        /// Probes admitted so far.
        admitted: u32,
        /// Probes that succeeded so far.
        succeeded: u32,
    },
    /// Opened by hand; refuses calls until [`CircuitBreaker::reset`].
    ForcedOpen,
    /// Turned off by hand: every call passes and nothing is recorded.
    Disabled,
}

impl BreakerState {
    /// The state's name without its data.
    pub fn kind(&self) -> StateKind {
        match self {
            Self::Closed { .. } => StateKind::Closed,
            Self::Open { .. } => StateKind::Open,
            Self::HalfOpen { .. } => StateKind::HalfOpen,
            Self::ForcedOpen => StateKind::ForcedOpen,
            Self::Disabled => StateKind::Disabled,
        }
    }
}

/// The name of a breaker state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateKind {
    /// See [`BreakerState::Closed`].
    Closed,
    /// See [`BreakerState::Open`].
    Open,
    /// See [`BreakerState::HalfOpen`].
    HalfOpen,
    /// See [`BreakerState::ForcedOpen`].
    ForcedOpen,
    /// See [`BreakerState::Disabled`].
    Disabled,
}

impl StateKind {
    /// The kebab-case name used in JSON and metrics labels (`half-open`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
            Self::ForcedOpen => "forced-open",
            Self::Disabled => "disabled",
        }
    }
}

impl fmt::Display for StateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change of state, reported by the call that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// State before.
    pub from: StateKind,
    /// State after.
    pub to: StateKind,
    /// Clock reading when it happened.
    pub at_ms: u64,
}

/// How a call was admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PermitKind {
    /// A normal call while closed; its result counts.
    Normal,
    /// A half-open probe; its result decides the next state.
    Probe,
    /// Let through by the bypass priority while not closed; its result is ignored.
    Bypass,
    /// The breaker is disabled; the result is ignored.
    Unguarded,
}

/// Proof that a call was admitted; hand it back with the call's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[must_use = "record the call's outcome with on_success or on_failure"]
pub struct Permit {
    /// How the call was admitted.
    pub kind: PermitKind,
    /// The breaker's state epoch at admission; stale results are ignored.
    epoch: u64,
    /// A time-driven transition that admitting this call caused (Open → HalfOpen).
    pub transition: Option<Transition>,
}

/// A sliding window of the last up-to-128 call outcomes, one bit each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct OutcomeWindow {
    /// Serialized as a hex string: a 128-bit number survives neither JSON in
    /// JavaScript nor every serde format.
    #[serde(with = "hex_u128")]
    failures_mask: u128,
    len: u8,
}

mod hex_u128 {
    use alloc::format;
    use alloc::string::String;

    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{value:x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let text = String::deserialize(d)?;
        u128::from_str_radix(&text, 16).map_err(D::Error::custom)
    }
}

impl OutcomeWindow {
    fn push(&mut self, failed: bool, size: u8) {
        let size = size.clamp(1, 128);
        let keep = if size == 128 { u128::MAX } else { (1u128 << size) - 1 };
        self.failures_mask = ((self.failures_mask << 1) | failed as u128) & keep;
        self.len = (self.len + 1).min(size);
    }

    fn failures(&self) -> u32 {
        self.failures_mask.count_ones()
    }
}

/// A circuit breaker. See the [module docs](self) for the state machine.
///
/// # Examples
/// ```
/// use swarmbus_core::{CircuitBreaker, BreakerConfig, Priority, StateKind};
/// let mut breaker = CircuitBreaker::new(BreakerConfig { failure_threshold: 2, open_ms: 1_000, half_open_probes: 1, ..Default::default() });
/// for now in [0, 1] {
///     let permit = breaker.try_acquire(now, Priority::NORMAL).unwrap();
///     breaker.on_failure(permit, now);
/// }
/// assert_eq!(breaker.state().kind(), StateKind::Open);
/// assert!(breaker.try_acquire(500, Priority::NORMAL).is_err());
/// assert!(breaker.try_acquire(500, Priority::CRITICAL).is_ok()); // bypass
/// let probe = breaker.try_acquire(1_001, Priority::NORMAL).unwrap(); // half-open
/// breaker.on_success(probe, 1_002);
/// assert_eq!(breaker.state().kind(), StateKind::Closed);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
    window: OutcomeWindow,
    /// Re-opens since the circuit was last closed; drives the backoff exponent.
    reopen_count: u32,
    epoch: u64,
    transitions: u64,
    rng: u64,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self::new(BreakerConfig::default())
    }
}

impl CircuitBreaker {
    /// A closed breaker with `config`.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: BreakerState::Closed { consecutive_failures: 0 },
            window: OutcomeWindow::default(),
            reopen_count: 0,
            epoch: 0,
            transitions: 0,
            rng: config.backoff.map_or(0, |b| b.seed) & RNG_MASK,
        }
    }

    /// The settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The current state as stored. An expired Open state turns HalfOpen on the
    /// next [`try_acquire`](Self::try_acquire) or [`poll`](Self::poll).
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Number of state changes so far.
    pub fn transition_count(&self) -> u64 {
        self.transitions
    }

    /// Failures and calls in the sliding window (only kept while closed).
    pub fn window(&self) -> (u32, u32) {
        (self.window.failures(), self.window.len as u32)
    }

    /// Applies the time-driven transition (Open → HalfOpen) if it is due.
    pub fn poll(&mut self, now_ms: u64) -> Option<Transition> {
        match self.state {
            BreakerState::Open { since_ms, wait_ms } if now_ms >= since_ms.saturating_add(wait_ms) => {
                Some(self.go(BreakerState::HalfOpen { admitted: 0, succeeded: 0 }, now_ms))
            }
            _ => None,
        }
    }

    /// Asks to make a call of `priority` at `now_ms`.
    pub fn try_acquire(&mut self, now_ms: u64, priority: Priority) -> Result<Permit, CircuitOpen> {
        let transition = self.poll(now_ms);
        let bypass = self.config.bypass_priority.is_some_and(|b| priority >= b);
        let permit = |kind, epoch| Ok(Permit { kind, epoch, transition });
        match &mut self.state {
            BreakerState::Closed { .. } => permit(PermitKind::Normal, self.epoch),
            BreakerState::Disabled => permit(PermitKind::Unguarded, self.epoch),
            _ if bypass => permit(PermitKind::Bypass, self.epoch),
            BreakerState::HalfOpen { admitted, .. } if *admitted < self.config.half_open_probes.max(1) => {
                *admitted += 1;
                permit(PermitKind::Probe, self.epoch)
            }
            BreakerState::HalfOpen { .. } => Err(CircuitOpen { retry_after_ms: None }),
            BreakerState::Open { since_ms, wait_ms } => Err(CircuitOpen {
                retry_after_ms: Some(since_ms.saturating_add(*wait_ms).saturating_sub(now_ms)),
            }),
            BreakerState::ForcedOpen => Err(CircuitOpen { retry_after_ms: None }),
        }
    }

    /// Records that the call admitted by `permit` succeeded.
    pub fn on_success(&mut self, permit: Permit, now_ms: u64) -> Option<Transition> {
        if !self.is_current(permit) {
            return None;
        }
        match &mut self.state {
            BreakerState::Closed { consecutive_failures } => {
                *consecutive_failures = 0;
                self.record_in_window(false);
                None
            }
            BreakerState::HalfOpen { succeeded, .. } => {
                *succeeded += 1;
                if *succeeded >= self.config.half_open_probes.max(1) {
                    self.reopen_count = 0;
                    Some(self.go(BreakerState::Closed { consecutive_failures: 0 }, now_ms))
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// Records that the call admitted by `permit` failed.
    pub fn on_failure(&mut self, permit: Permit, now_ms: u64) -> Option<Transition> {
        if !self.is_current(permit) {
            return None;
        }
        match &mut self.state {
            BreakerState::Closed { consecutive_failures } => {
                *consecutive_failures = consecutive_failures.saturating_add(1);
                let by_count = self.config.failure_threshold > 0
                    && *consecutive_failures >= self.config.failure_threshold;
                self.record_in_window(true);
                (by_count || self.rate_exceeded()).then(|| self.open(now_ms))
            }
            BreakerState::HalfOpen { .. } => {
                self.reopen_count = self.reopen_count.saturating_add(1);
                Some(self.open(now_ms))
            }
            _ => None,
        }
    }

    /// Opens the circuit by hand until [`reset`](Self::reset).
    pub fn force_open(&mut self, now_ms: u64) -> Option<Transition> {
        (self.state != BreakerState::ForcedOpen).then(|| self.go(BreakerState::ForcedOpen, now_ms))
    }

    /// Turns the breaker off until [`reset`](Self::reset): every call passes.
    pub fn disable(&mut self, now_ms: u64) -> Option<Transition> {
        (self.state != BreakerState::Disabled).then(|| self.go(BreakerState::Disabled, now_ms))
    }

    /// Closes the circuit and forgets all failures.
    pub fn reset(&mut self, now_ms: u64) -> Option<Transition> {
        self.reopen_count = 0;
        let closed = BreakerState::Closed { consecutive_failures: 0 };
        if self.state == closed {
            self.window = OutcomeWindow::default();
            return None;
        }
        Some(self.go(closed, now_ms))
    }

    fn is_current(&self, permit: Permit) -> bool {
        permit.epoch == self.epoch && matches!(permit.kind, PermitKind::Normal | PermitKind::Probe)
    }

    fn record_in_window(&mut self, failed: bool) {
        if let Some(rate) = self.config.failure_rate {
            self.window.push(failed, rate.window);
        }
    }

    fn rate_exceeded(&self) -> bool {
        let Some(rate) = self.config.failure_rate else { return false };
        let calls = self.window.len as u32;
        calls >= rate.min_calls.max(1) as u32
            && self.window.failures() * 100 >= rate.threshold_percent as u32 * calls
    }

    fn open(&mut self, now_ms: u64) -> Transition {
        let wait_ms = self.open_wait();
        self.go(BreakerState::Open { since_ms: now_ms, wait_ms }, now_ms)
    }

    /// `open_ms`, grown by the backoff for each re-open, capped, then jittered.
    fn open_wait(&mut self) -> u64 {
        let Some(backoff) = self.config.backoff else { return self.config.open_ms };
        let mut wait = self.config.open_ms;
        for _ in 0..self.reopen_count {
            wait = wait.saturating_mul(backoff.multiplier.max(1) as u64);
            if wait >= backoff.max_open_ms {
                break;
            }
        }
        let wait = wait.min(backoff.max_open_ms.max(self.config.open_ms));
        let spread = wait / 100 * backoff.jitter_percent.min(100) as u64;
        if spread == 0 {
            return wait;
        }
        let offset = splitmix64(&mut self.rng) % (2 * spread + 1);
        (wait - spread).saturating_add(offset)
    }

    fn go(&mut self, to: BreakerState, now_ms: u64) -> Transition {
        let from = self.state.kind();
        self.state = to;
        self.epoch += 1;
        self.transitions += 1;
        self.window = OutcomeWindow::default();
        Transition { from, to: to.kind(), at_ms: now_ms }
    }
}

/// The jitter generator's state stays below 2^53 so that the serialized
/// breaker survives a round trip through a JavaScript `number`.
const RNG_MASK: u64 = (1 << 53) - 1;

/// SplitMix64 (with a 53-bit counter): a tiny, well-distributed generator, enough for jitter.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15) & RNG_MASK;
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: Priority = Priority::NORMAL;

    fn fail(b: &mut CircuitBreaker, now: u64) -> Option<Transition> {
        let p = b.try_acquire(now, N).unwrap();
        b.on_failure(p, now)
    }

    fn succeed(b: &mut CircuitBreaker, now: u64) -> Option<Transition> {
        let p = b.try_acquire(now, N).unwrap();
        b.on_success(p, now)
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let mut b = CircuitBreaker::default();
        for t in 0..4 {
            assert_eq!(fail(&mut b, t), None);
        }
        succeed(&mut b, 4);
        for t in 5..9 {
            assert_eq!(fail(&mut b, t), None);
        }
        let tr = fail(&mut b, 9).unwrap();
        assert_eq!((tr.from, tr.to, tr.at_ms), (StateKind::Closed, StateKind::Open, 9));
        assert_eq!(b.try_acquire(10, N).unwrap_err().retry_after_ms, Some(29_999));
    }

    #[test]
    fn half_open_needs_k_successes_and_reopens_on_any_failure() {
        let mut b =
            CircuitBreaker::new(BreakerConfig { failure_threshold: 1, open_ms: 100, ..Default::default() });
        fail(&mut b, 0);
        let p1 = b.try_acquire(100, N).unwrap();
        assert_eq!(p1.kind, PermitKind::Probe);
        assert_eq!(p1.transition.unwrap().to, StateKind::HalfOpen);
        let p2 = b.try_acquire(100, N).unwrap();
        let p3 = b.try_acquire(100, N).unwrap();
        assert_eq!(b.try_acquire(100, N).unwrap_err().retry_after_ms, None, "only 3 probes");
        assert_eq!(b.on_success(p1, 101), None);
        assert_eq!(b.on_success(p2, 101), None);
        assert_eq!(b.on_success(p3, 101).unwrap().to, StateKind::Closed);

        fail(&mut b, 200);
        let probe = b.try_acquire(300, N).unwrap();
        assert_eq!(b.on_failure(probe, 301).unwrap().to, StateKind::Open);
        assert!(b.try_acquire(350, N).is_err());
    }

    #[test]
    fn bypass_priority_passes_and_is_not_recorded_while_open() {
        let mut b = CircuitBreaker::new(BreakerConfig { failure_threshold: 1, ..Default::default() });
        fail(&mut b, 0);
        let p = b.try_acquire(1, Priority::CRITICAL).unwrap();
        assert_eq!(p.kind, PermitKind::Bypass);
        assert_eq!(b.on_success(p, 1), None);
        assert_eq!(b.state().kind(), StateKind::Open);
        assert!(b.try_acquire(1, Priority::new(7).unwrap()).is_err());
    }

    #[test]
    fn stale_permits_are_ignored() {
        let mut b =
            CircuitBreaker::new(BreakerConfig { failure_threshold: 1, open_ms: 10, ..Default::default() });
        let slow = b.try_acquire(0, N).unwrap();
        fail(&mut b, 1);
        // The slow call's success must not count toward the half-open round.
        b.poll(11);
        assert_eq!(b.on_success(slow, 12), None);
        assert_eq!(b.state(), BreakerState::HalfOpen { admitted: 0, succeeded: 0 });
    }

    #[test]
    fn failure_rate_window() {
        let rate = FailureRate { threshold_percent: 50, window: 4, min_calls: 4 };
        let mut b = CircuitBreaker::new(BreakerConfig {
            failure_threshold: 0,
            failure_rate: Some(rate),
            ..Default::default()
        });
        fail(&mut b, 0);
        succeed(&mut b, 1);
        assert_eq!(fail(&mut b, 2), None, "3 calls < min_calls");
        assert_eq!(b.window(), (2, 3));
        assert_eq!(succeed(&mut b, 3), None);
        // window [F S F S] → now [S F S F]: 2/4 = 50% ≥ 50%.
        assert_eq!(fail(&mut b, 4).unwrap().to, StateKind::Open);
    }

    #[test]
    fn backoff_grows_caps_and_jitters_deterministically() {
        let backoff = Backoff { multiplier: 2, max_open_ms: 1_000, jitter_percent: 10, seed: 7 };
        let config = BreakerConfig {
            failure_threshold: 1,
            open_ms: 100,
            backoff: Some(backoff),
            half_open_probes: 1,
            ..Default::default()
        };
        let run = || {
            let mut b = CircuitBreaker::new(config);
            fail(&mut b, 0);
            let mut waits = alloc::vec::Vec::new();
            let mut now = 0;
            for _ in 0..6 {
                let BreakerState::Open { since_ms, wait_ms } = b.state() else { panic!() };
                waits.push(wait_ms);
                now = since_ms + wait_ms;
                let probe = b.try_acquire(now, N).unwrap();
                b.on_failure(probe, now);
            }
            let _ = now;
            waits
        };
        let waits = run();
        assert_eq!(waits, run(), "same seed, same waits");
        let bases = [100u64, 200, 400, 800, 1_000, 1_000];
        for (w, base) in waits.iter().zip(bases) {
            assert!(*w >= base - base / 10 && *w <= base + base / 10, "{w} vs {base}");
        }
    }

    #[test]
    fn forced_open_and_disabled() {
        let mut b = CircuitBreaker::default();
        b.force_open(0);
        assert_eq!(b.try_acquire(1_000_000, N).unwrap_err().retry_after_ms, None);
        assert!(b.try_acquire(1, Priority::PHASE_TRANSITION).is_ok());
        b.disable(1);
        for t in 0..20 {
            let p = b.try_acquire(t, N).unwrap();
            assert_eq!(p.kind, PermitKind::Unguarded);
            assert_eq!(b.on_failure(p, t), None);
        }
        assert_eq!(b.reset(30).unwrap().to, StateKind::Closed);
        assert_eq!(b.transition_count(), 3);
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut b = CircuitBreaker::new(BreakerConfig {
            failure_threshold: 1,
            backoff: Some(Backoff::default()),
            ..Default::default()
        });
        fail(&mut b, 5);
        let json = serde_json::to_string(&b).unwrap();
        assert!(json.contains("\"state\":\"open\""), "{json}");
        let mut restored: CircuitBreaker = serde_json::from_str(&json).unwrap();
        assert_eq!(restored, b);
        assert!(restored.try_acquire(6, N).is_err());
        assert_eq!(restored.try_acquire(30_005 + 3_000, N).unwrap().kind, PermitKind::Probe);
    }
}
