//! The decisions the JS-side `Bus` and `Router` (crates/wasm/js/bus.js) ask
//! core for: which subscriptions a topic reaches ([`RouterCore`]) and whether
//! a subscription's breaker admits a call ([`BreakerSet`]).
//!
//! The JS side runs the per-event loop (queue, handler calls) and asks here
//! once per new topic and once per breaker event that is not on the fast path.
//! Both classes are internal to the package (the names start with `Core` /
//! are not re-exported by the package's `index.js` types).

use std::collections::HashMap;

use swarmbus_core::breaker::{BreakerConfig, Permit, StateKind, Transition};
use swarmbus_core::{CircuitBreaker, Priority, Router, SubscriptionId};
use wasm_bindgen::prelude::*;

use crate::bus::breaker_info;
use crate::convert::from_js;
use crate::error::{Error, Result};

/// core's router without its route cache: the JS side keeps the cache (a `Map`
/// cleared on every subscribe and unsubscribe, the generation counter's job).
#[wasm_bindgen]
pub struct RouterCore {
    router: Router,
    /// The ids of the last [`route_into`](RouterCore::route_into), read by JS from wasm memory.
    ids: Vec<u32>,
}

#[wasm_bindgen]
impl RouterCore {
    /// An empty router.
    #[wasm_bindgen(constructor)]
    pub fn new() -> RouterCore {
        RouterCore { router: Router::with_cache_capacity(0), ids: Vec::with_capacity(64) }
    }

    /// Adds `pattern`; returns its subscription id (ascending: the delivery order).
    pub fn subscribe(&mut self, pattern: &str) -> Result<u32> {
        let id = self.router.subscribe(pattern).map_err(Error::pattern)?;
        Ok(id.get() as u32)
    }

    /// Removes a subscription; `false` if it did not exist.
    pub fn unsubscribe(&mut self, id: u32) -> bool {
        self.router.unsubscribe(SubscriptionId::from_raw(id.into()))
    }

    /// Validates `topic` (`INVALID_TOPIC`) and returns the ids it reaches, in delivery order.
    pub fn route(&mut self, topic: &str) -> Result<Vec<u32>> {
        let route = self.router.route(topic).map_err(Error::topic)?;
        Ok(route.iter().map(|id| id.get() as u32).collect())
    }

    /// Validates `topic` (`INVALID_TOPIC`) and writes the ids it reaches, in
    /// delivery order, into wasm memory; returns `offset * 2^21 + count`
    /// where `offset` is the 4-byte word index of the first id (one call
    /// answers both; exact in an f64: offset < 2^30, count < 2^21). No
    /// allocation per call: the hot path of a route-cache miss.
    #[wasm_bindgen(js_name = routeInto)]
    pub fn route_into(&mut self, topic: &str) -> Result<f64> {
        swarmbus_core::topic::validate_topic(topic).map_err(Error::topic)?;
        let ids = &mut self.ids;
        ids.clear();
        self.router.for_each_match(topic, |id| ids.push(id.get() as u32));
        let count = self.ids.len().min((1 << 21) - 1);
        let words = self.ids.as_ptr() as usize / 4;
        Ok(words as f64 * (1u64 << 21) as f64 + count as f64)
    }

    /// The module's `WebAssembly.Memory`, to read what [`route_into`](Self::route_into) wrote.
    pub fn memory() -> JsValue {
        wasm_bindgen::memory()
    }

    /// Bumped by every subscribe and unsubscribe.
    #[wasm_bindgen(getter)]
    pub fn generation(&self) -> f64 {
        self.router.generation() as f64
    }
}

impl Default for RouterCore {
    fn default() -> Self {
        Self::new()
    }
}

/// Bit of a [`BreakerSet`] answer: the call changed the breaker's state (read it with `takeTransitions`).
const TRANSITIONED: i32 = 1;
/// Bit of a [`BreakerSet`] answer: the breaker is on the fast path (see [`BreakerSet::is_fast`]).
const FAST: i32 = 2;
/// `acquire`'s answer when the breaker refuses the call.
const REFUSED: i32 = -1;
/// Outstanding permits (async handlers not yet settled) kept at most; beyond, results are ignored.
const MAX_PERMITS: usize = 1 << 16;

/// One core breaker per subscription, for the JS `Bus`.
///
/// **Fast path**: a breaker that is Closed with no failure since its last
/// success, and has no failure-rate window, is left unchanged by a successful
/// call. The JS side skips `acquire` and `settle` for it and only calls
/// `failFast` when such a call fails. Every answer carries the `FAST` bit so
/// the JS side learns when a breaker leaves or re-enters the fast path.
#[wasm_bindgen]
pub struct BreakerSet {
    config: BreakerConfig,
    breakers: HashMap<u32, CircuitBreaker>,
    /// Permits of admitted calls not settled yet; the index is the handle.
    permits: Vec<Option<(u32, Permit)>>,
    free: Vec<u32>,
    transitions: Vec<(u32, Transition)>,
}

fn kind_name(kind: StateKind) -> &'static str {
    match kind {
        StateKind::HalfOpen => "halfOpen",
        StateKind::ForcedOpen => "forcedOpen",
        other => other.as_str(),
    }
}

#[wasm_bindgen]
impl BreakerSet {
    /// Breakers with `options` (`BreakerOptions`; `undefined` for the defaults).
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> Result<BreakerSet> {
        let config = if options.is_undefined() || options.is_null() {
            BreakerConfig::default()
        } else {
            from_js(options)?
        };
        // Reserved up front: ordinary use never grows them (the leak test compares live bytes).
        Ok(BreakerSet {
            config,
            breakers: HashMap::new(),
            permits: Vec::with_capacity(16),
            free: Vec::with_capacity(16),
            transitions: Vec::with_capacity(16),
        })
    }

    /// Gives subscription `id` a closed breaker.
    pub fn add(&mut self, id: u32) {
        self.breakers.insert(id, CircuitBreaker::new(self.config));
    }

    /// Permits handed out and not settled yet (async handlers still running).
    #[wasm_bindgen(getter)]
    pub fn outstanding(&self) -> usize {
        self.permits.len() - self.free.len()
    }

    /// Forgets subscription `id`'s breaker.
    pub fn remove(&mut self, id: u32) {
        self.breakers.remove(&id);
    }

    /// True when a success would leave `id`'s breaker unchanged (see the type's docs).
    #[wasm_bindgen(js_name = isFast)]
    pub fn is_fast(&self, id: u32) -> bool {
        self.breakers.get(&id).is_some_and(fast)
    }

    /// Asks `id`'s breaker to admit a call of `priority` at `now`: `-1` when
    /// refused, else `handle << 2 | FAST | TRANSITIONED` where `handle` goes
    /// back to [`settle`](Self::settle).
    pub fn acquire(&mut self, id: u32, now: f64, priority: u8) -> i32 {
        let Some(breaker) = self.breakers.get_mut(&id) else { return FAST };
        let priority = Priority::new(priority.min(9)).unwrap_or(Priority::NORMAL);
        let Ok(permit) = breaker.try_acquire(now as u64, priority) else { return REFUSED };
        let mut bits = 0;
        if let Some(t) = permit.transition {
            self.transitions.push((id, t));
            bits |= TRANSITIONED;
        }
        let handle = match self.free.pop() {
            Some(handle) => {
                self.permits[handle as usize] = Some((id, permit));
                handle as i32
            }
            None if self.permits.len() < MAX_PERMITS => {
                self.permits.push(Some((id, permit)));
                self.permits.len() as i32 - 1
            }
            None => MAX_PERMITS as i32, // untracked: its outcome is ignored
        };
        handle << 2 | bits
    }

    /// Records the outcome of the call admitted with `handle`; returns `FAST | TRANSITIONED` bits.
    pub fn settle(&mut self, handle: i32, ok: bool, now: f64) -> i32 {
        let Some((id, permit)) = self.permits.get_mut(handle as usize).and_then(Option::take) else {
            return 0;
        };
        self.free.push(handle as u32);
        let Some(breaker) = self.breakers.get_mut(&id) else { return 0 };
        let transition =
            if ok { breaker.on_success(permit, now as u64) } else { breaker.on_failure(permit, now as u64) };
        self.answer(id, transition)
    }

    /// A call made on the fast path failed: admit and fail it in one step
    /// (the breaker was Closed, so the permit is the one the call had).
    #[wasm_bindgen(js_name = failFast)]
    pub fn fail_fast(&mut self, id: u32, now: f64, priority: u8) -> i32 {
        let Some(breaker) = self.breakers.get_mut(&id) else { return 0 };
        let priority = Priority::new(priority.min(9)).unwrap_or(Priority::NORMAL);
        let Ok(permit) = breaker.try_acquire(now as u64, priority) else { return 0 };
        let mut transition = permit.transition;
        if let Some(t) = transition.take() {
            self.transitions.push((id, t));
        }
        let transition = breaker.on_failure(permit, now as u64);
        self.answer(id, transition)
    }

    /// The transitions since the last call, as `[id, from, to, atMs, ...]` flattened
    /// (`from`/`to`: `closed`, `open`, `halfOpen`, `forcedOpen`, `disabled`).
    #[wasm_bindgen(js_name = takeTransitions)]
    pub fn take_transitions(&mut self) -> js_sys::Array {
        let out = js_sys::Array::new();
        for (id, t) in self.transitions.drain(..) {
            out.push(&id.into());
            out.push(&kind_name(t.from).into());
            out.push(&kind_name(t.to).into());
            out.push(&(t.at_ms as f64).into());
        }
        out
    }

    /// `id`'s breaker as `Bus.breakerState` shows it, or `null`.
    #[wasm_bindgen(unchecked_return_type = "BreakerStateInfo | null")]
    pub fn state(&self, id: u32) -> Result<JsValue> {
        match self.breakers.get(&id) {
            None => Ok(JsValue::NULL),
            Some(b) => breaker_info(&b.state(), b.transition_count(), b.window()),
        }
    }
}

impl BreakerSet {
    fn answer(&mut self, id: u32, transition: Option<Transition>) -> i32 {
        let mut bits = 0;
        if let Some(t) = transition {
            self.transitions.push((id, t));
            bits |= TRANSITIONED;
        }
        if self.breakers.get(&id).is_some_and(fast) {
            bits |= FAST;
        }
        bits
    }
}

/// A breaker a success leaves unchanged: Closed, no failure since the last success, no rate window.
fn fast(breaker: &CircuitBreaker) -> bool {
    breaker.config().failure_rate.is_none()
        && matches!(breaker.state(), swarmbus_core::BreakerState::Closed { consecutive_failures: 0 })
}
