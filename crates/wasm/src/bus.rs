//! The JS `Bus`: the core event bus with JS handlers and JS payloads.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use js_sys::{Array, Function, Object, Uint8Array};
use serde::{Deserialize, Serialize};
use swarmbus_core::breaker::{BreakerConfig, BreakerState};
use swarmbus_core::bus::{Event, EventId, HandlerError, PublishOptions, SubscribeOptions};
use swarmbus_core::metrics::PerPriority;
use swarmbus_core::{BusConfig, EventBus, Priority, SubscriptionId};
use wasm_bindgen::prelude::*;

use crate::codec::{next_envelope_id, reserve_envelope_ids, set};
use crate::convert::{from_js, options_or_default, to_js};
use crate::error::{Error, Result};

type Clock = fn() -> u64;

thread_local! {
    /// `Date.now()` read once per public call, not once per event.
    static NOW_MS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The bus clock: the time of the current public call.
fn now_ms() -> u64 {
    NOW_MS.with(|now| now.get())
}

/// Reads `Date.now()` into the bus clock; every public entry point calls it.
fn tick() {
    NOW_MS.with(|now| now.set(js_sys::Date::now() as u64));
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct BusOptions {
    capacity: Option<usize>,
    /// `false` or `null` turns breakers off; an object overrides the defaults.
    #[serde(with = "serde_wasm_bindgen::preserve")]
    breaker: JsValue,
    route_cache: Option<usize>,
    #[serde(with = "serde_wasm_bindgen::preserve")]
    on_error: JsValue,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct SubscribeInput {
    once: bool,
}

struct Pending {
    topic: String,
    payload: JsValue,
    options: PublishOptions,
    id: u64,
}

/// A queued event's payload: one JS value, or element `index` of a copy of a
/// `publishBatch` array (so queueing a batch takes no externref slot per event).
enum Payload {
    Value(JsValue),
    InBatch(Rc<Array>, u32),
}

impl Payload {
    /// The value and index the JS helpers take: index -1 means the value itself.
    fn parts(&self) -> (&JsValue, i32) {
        match self {
            Self::Value(value) => (value, -1),
            Self::InBatch(array, index) => (array, *index as i32),
        }
    }
}

/// The last value a handler threw, kept for the `onError` callback.
type Thrown = Rc<RefCell<Option<JsValue>>>;

/// A priority event bus: subscribe by pattern, publish, then `drain` to dispatch.
///
/// Publishing from inside a handler is allowed: the event is queued after the
/// current `drain` finishes its loop (still bounded by `capacity`).
#[wasm_bindgen]
pub struct Bus {
    shared: Rc<BusShared>,
}

/// Receives the bus's local publishes (the `Messenger` forwarding them to the bridge).
pub(crate) trait Outbound {
    /// Called before a local publish is queued; an error refuses the publish.
    fn local_publish(&self, topic: &str, payload: &JsValue, options: PublishOptions, id: u64) -> Result<()>;
    /// Called before a local `publishEnvelope` is queued.
    fn local_envelope(&self, bytes: &[u8]) -> Result<()>;
}

/// The state of a `Bus`, shared with a `Messenger` attached to it.
pub(crate) struct BusShared {
    inner: RefCell<EventBus<Payload, Clock>>,
    /// Publishes made by handlers while `drain` holds the bus.
    pending: RefCell<VecDeque<Pending>>,
    capacity: usize,
    thrown: Thrown,
    on_error: Rc<RefCell<Option<Function>>>,
    outbound: RefCell<Option<Rc<dyn Outbound>>>,
    /// Set when the JS `Bus` is freed: a `Messenger` still holding this state stops delivering.
    freed: std::cell::Cell<bool>,
}

/// JS strings of recently delivered topics, so each delivery does not re-encode UTF-8.
#[derive(Default)]
struct TopicCache {
    entries: Vec<(Arc<str>, JsValue)>,
}

impl TopicCache {
    const SIZE: usize = 64;

    /// The JS string of `topic`, borrowed from the cache (no externref slot per call).
    fn get(&mut self, topic: &Arc<str>) -> &JsValue {
        let index = match self.entries.iter().position(|(t, _)| Arc::ptr_eq(t, topic)) {
            Some(index) => index,
            None => {
                if self.entries.len() >= Self::SIZE {
                    self.entries.remove(0);
                }
                self.entries.push((topic.clone(), JsValue::from_str(topic)));
                self.entries.len() - 1
            }
        };
        &self.entries[index].1
    }
}

fn breaker_config(value: &JsValue) -> Result<Option<BreakerConfig>> {
    if value.is_undefined() {
        return Ok(Some(BreakerConfig::default()));
    }
    if value.is_null() || value.as_bool() == Some(false) {
        return Ok(None);
    }
    from_js(value.clone()).map(Some)
}

fn priority_of(value: Option<u8>) -> Result<Priority> {
    Ok(Priority::new(value.unwrap_or(Priority::NORMAL.get()))?)
}

/// A JS number that must be an integer in 0..=9.
fn priority_from_f64(value: f64) -> Result<Priority> {
    if value.fract() != 0.0 || !(0.0..=255.0).contains(&value) {
        return Err(Error::new(
            "INVALID_PRIORITY",
            format_args!("priority {value} is not an integer in 0..=9"),
        ));
    }
    priority_of(Some(value as u8))
}

/// A priority given as a JS value: `undefined`/`null` is 5, an integer 0..=9
/// that priority, anything else (`"9"`, 265, 1.5, `true`) `INVALID_PRIORITY`.
fn priority_from_js(value: &JsValue) -> Result<Priority> {
    if value.is_undefined() || value.is_null() {
        return Ok(Priority::NORMAL);
    }
    match value.as_f64() {
        Some(p) => priority_from_f64(p),
        None => Err(Error::new("INVALID_PRIORITY", "priority must be an integer in 0..=9")),
    }
}

/// Reads publish options without serde: this runs once per publish. A getter
/// that throws is `INVALID_ARGUMENT` (caught in JS: nothing unwinds through Rust).
fn publish_options(options: &JsValue) -> Result<PublishOptions> {
    if options.is_undefined() || options.is_null() {
        return Ok(PublishOptions::default());
    }
    if let Some(priority) = options.as_f64() {
        return Ok(PublishOptions { priority: priority_from_f64(priority)?, ttl_ms: None });
    }
    if !options.is_object() {
        // Regression: publish(t, p, "9") read "9".priority (undefined) and used 5.
        return Err(Error::new(
            "INVALID_PRIORITY",
            "options must be { priority, ttlMs } or an integer priority 0..=9",
        ));
    }
    let priority = match option_number(options, "priority") {
        ABSENT => Priority::NORMAL,
        WRONG_TYPE => return Err(Error::new("INVALID_PRIORITY", "priority must be a number")),
        THREW => return Err(thrown_error("reading publish options threw")),
        p => priority_from_f64(p)?,
    };
    let ttl_ms = match option_number(options, "ttlMs") {
        ABSENT => None,
        THREW => return Err(thrown_error("reading publish options threw")),
        t if t >= 0.0 && t.is_finite() => Some(t as u64),
        _ => return Err(Error::invalid("ttlMs must be a non-negative number")),
    };
    Ok(PublishOptions { priority, ttl_ms })
}

const ABSENT: f64 = -1.0;
const WRONG_TYPE: f64 = -2.0;
const THREW: f64 = -4.0;

/// `INVALID_ARGUMENT` with the message of what a guarded helper caught (see `take_thrown`).
fn thrown_error(context: &str) -> Error {
    Error::invalid(format_args!("{context}: {}", error_message(&take_thrown())))
}

#[wasm_bindgen]
impl Bus {
    /// `new Bus({capacity?, breaker?, routeCache?, onError?})`. `breaker` takes
    /// `{failureThreshold, openMs, halfOpenProbes, bypassPriority, failureRate, backoff}`
    /// or `false` for no breakers; `onError(error, subscriptionId, event)` hears handler errors.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "BusOptions | undefined")] options: JsValue,
    ) -> Result<Bus> {
        let options: BusOptions = options_or_default(options)?;
        let defaults = BusConfig::default();
        let config = BusConfig {
            capacity: options.capacity.unwrap_or(defaults.capacity).max(1),
            breaker: breaker_config(&options.breaker)?,
            route_cache: options.route_cache.unwrap_or(defaults.route_cache),
        };
        let mut bus = EventBus::new(config, now_ms as Clock);
        let thrown: Thrown = Rc::default();
        let on_error: Rc<RefCell<Option<Function>>> =
            Rc::new(RefCell::new(options.on_error.dyn_into::<Function>().ok()));
        let (slot, callback) = (thrown.clone(), on_error.clone());
        bus.on_error(move |sub, event, error| {
            let thrown = slot.borrow_mut().take().unwrap_or_else(|| js_sys::Error::new(&error.0).into());
            if let Some(f) = callback.borrow().as_ref() {
                // An onError that throws is ignored: it must not stop dispatch.
                let _ = f.call3(
                    &JsValue::UNDEFINED,
                    &thrown,
                    &(sub.get() as f64).into(),
                    &event_object(event, &event.topic.as_ref().into()),
                );
            }
        });
        Ok(Bus {
            shared: Rc::new(BusShared {
                inner: RefCell::new(bus),
                pending: RefCell::default(),
                capacity: config.capacity,
                thrown,
                on_error,
                outbound: RefCell::new(None),
                freed: std::cell::Cell::new(false),
            }),
        })
    }

    /// Calls `handler({id, topic, priority, timestamp, payload})` for events on
    /// topics matching `pattern`; returns the subscription id. `{once: true}`
    /// removes it after the first call.
    pub fn subscribe(
        &self,
        pattern: &str,
        #[wasm_bindgen(unchecked_param_type = "(event: BusEvent) => void")] handler: Function,
        #[wasm_bindgen(unchecked_param_type = "{ once?: boolean } | undefined")] options: JsValue,
    ) -> Result<f64> {
        let options: SubscribeInput =
            if options.is_undefined() { SubscribeInput::default() } else { from_js(options)? };
        let mut bus = self.shared.inner.try_borrow_mut().map_err(|_| busy("subscribe"))?;
        let thrown = self.shared.thrown.clone();
        let topics = RefCell::new(TopicCache::default());
        let id = bus.subscribe_with(
            pattern,
            SubscribeOptions { once: options.once, breaker: None },
            move |event| {
                // The cache stays borrowed during the call; a re-entrant delivery
                // (not possible today: drain refuses re-entry) would get a fresh string.
                let mut cache = topics.try_borrow_mut();
                let fresh;
                let topic = match cache.as_mut() {
                    Ok(cache) => cache.get(&event.topic),
                    Err(_) => {
                        fresh = JsValue::from_str(&event.topic);
                        &fresh
                    }
                };
                let (payload, index) = event.payload.parts();
                let returned = call_handler(
                    &handler,
                    event.id.0 as f64,
                    topic,
                    event.priority.get(),
                    event.timestamp_ms as f64,
                    payload,
                    index,
                );
                drop(cache);
                if returned {
                    return Ok(());
                }
                let error = take_thrown();
                let message = error_message(&error);
                *thrown.borrow_mut() = Some(error);
                Err(HandlerError(message))
            },
        )?;
        Ok(id.get() as f64)
    }

    /// Removes a subscription; `false` if it did not exist.
    pub fn unsubscribe(&self, id: f64) -> Result<bool> {
        let mut bus = self.shared.inner.try_borrow_mut().map_err(|_| busy("unsubscribe"))?;
        Ok(bus.unsubscribe(SubscriptionId::from_raw(id as u64)))
    }

    /// Queues an event; returns its id. `options` is `{priority = 5, ttlMs}`
    /// or just the priority as a number.
    pub fn publish(
        &self,
        topic: &str,
        payload: JsValue,
        #[wasm_bindgen(unchecked_param_type = "{ priority?: number, ttlMs?: number } | number | undefined")]
        options: JsValue,
    ) -> Result<f64> {
        tick();
        let options = publish_options(&options)?;
        self.publish_local(topic, payload, options)
    }

    /// Queues one event per element of `payloads`, all on `topic` with one
    /// `priority`; returns how many were queued. Stops at the first error and
    /// throws it (earlier events stay queued).
    #[wasm_bindgen(js_name = publishBatch)]
    pub fn publish_batch(
        &self,
        topic: &str,
        #[wasm_bindgen(unchecked_param_type = "unknown[]")] payloads: JsValue,
        #[wasm_bindgen(unchecked_param_type = "number | undefined")] priority: JsValue,
    ) -> Result<u32> {
        tick();
        // Regression: the priority was a u8, so 265 arrived as 9 and "9" as 9.
        let options = PublishOptions { priority: priority_from_js(&priority)?, ttl_ms: None };
        // A copy made inside a JS try: a Proxy or getter that throws cannot unwind through Rust,
        // and the caller may reuse its array before the drain.
        let copied = copy_batch(&payloads);
        if copied.is_null() {
            return Err(thrown_error("reading the publishBatch array threw"));
        }
        let Ok(payloads) = copied.dyn_into::<Array>() else {
            return Err(Error::invalid("publishBatch takes an array of payloads"));
        };
        if self.shared.outbound.borrow().is_some() {
            // Forwarded one by one, so each event keeps its place in the outbound order.
            for payload in payloads.iter() {
                self.publish_local(topic, payload, options)?;
            }
            return Ok(payloads.length());
        }
        let Ok(mut bus) = self.shared.inner.try_borrow_mut() else {
            // Inside a handler: one by one through the deferred path.
            for payload in payloads.iter() {
                self.shared.publish_with_id(topic, payload, options, next_envelope_id())?;
            }
            return Ok(payloads.length());
        };
        let count = payloads.length();
        let first = reserve_envelope_ids(count.into());
        let array = Rc::new(payloads);
        let events = (0..count).map(|i| (EventId(first + u64::from(i)), Payload::InBatch(array.clone(), i)));
        let queued = bus.publish_batch(topic, events, options)?;
        Ok(queued as u32)
    }

    /// Queues an encoded envelope, routed on its header only: the handler's
    /// `payload` is the envelope's bytes, undecoded. Returns the envelope id.
    #[wasm_bindgen(js_name = publishEnvelope)]
    pub fn publish_envelope(&self, bytes: Uint8Array) -> Result<f64> {
        tick();
        let (topic, priority, id) =
            crate::codec::with_header(bytes.as_ref(), |h| Ok((h.topic.to_owned(), h.priority, h.id)))?;
        if let Some(outbound) = self.shared.outbound() {
            outbound.local_envelope(&bytes.to_vec())?;
        }
        self.shared.publish_with_id(&topic, bytes.into(), PublishOptions::from(priority), id)
    }

    /// Dispatches up to `max` queued events (all when omitted), most urgent
    /// first; returns the number of handler calls. Handler errors do not throw.
    pub fn drain(&self, max: Option<f64>) -> Result<u32> {
        tick();
        let max = max.map_or(usize::MAX, |m| if m.is_finite() && m >= 0.0 { m as usize } else { usize::MAX });
        self.shared.drain_up_to(max).ok_or_else(|| busy("drain"))
    }

    /// Sets (or clears, with `null`) the callback that hears handler errors.
    #[wasm_bindgen(js_name = onError)]
    pub fn on_error(&self, callback: Option<Function>) {
        *self.shared.on_error.borrow_mut() = callback;
    }

    /// The breaker of a subscription: `{state, consecutiveFailures, ...}`, or `null`.
    #[wasm_bindgen(js_name = breakerState, unchecked_return_type = "BreakerStateInfo | null")]
    pub fn breaker_state(&self, id: f64) -> Result<JsValue> {
        let bus = self.shared.inner.try_borrow().map_err(|_| busy("breakerState"))?;
        match bus.breaker(SubscriptionId::from_raw(id as u64)) {
            None => Ok(JsValue::NULL),
            Some(breaker) => breaker_info(&breaker.state(), breaker.transition_count(), breaker.window()),
        }
    }

    /// Counters: totals, per-priority arrays (index = priority) and the queue depth.
    #[wasm_bindgen(unchecked_return_type = "BusMetrics")]
    pub fn metrics(&self) -> Result<JsValue> {
        let bus = self.shared.inner.try_borrow().map_err(|_| busy("metrics"))?;
        let m = bus.metrics();
        let sum = |c: &PerPriority| c.iter().sum::<u64>();
        let dropped = m.dropped();
        to_js(&MetricsView {
            published: sum(&m.published),
            delivered: m.delivered,
            dropped: sum(&dropped),
            rejected: sum(&m.rejected),
            evicted: sum(&m.evicted),
            expired: sum(&m.expired),
            skipped_open: sum(&m.skipped_open),
            handler_errors: m.handler_errors,
            unrouted: m.unrouted,
            breaker_transitions: m.breaker_transitions,
            queued: bus.queue_len() as u64,
            by_priority: ByPriority {
                published: m.published,
                dispatched: m.dispatched,
                dropped,
                rejected: m.rejected,
                skipped_open: m.skipped_open,
                queued: bus.queue_depth().map(|d| d as u64),
            },
        })
    }

    /// Number of live subscriptions.
    #[wasm_bindgen(getter, js_name = subscriptionCount)]
    pub fn subscription_count(&self) -> usize {
        self.shared.inner.try_borrow().map_or(0, |b| b.subscription_count())
    }

    /// Events waiting for `drain`.
    #[wasm_bindgen(getter)]
    pub fn queued(&self) -> usize {
        self.shared.inner.try_borrow().map_or(0, |b| b.queue_len()) + self.shared.pending.borrow().len()
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        // A Messenger may outlive the bus: it stops hearing local publishes and delivering remote ones.
        self.shared.detach();
        self.shared.freed.set(true);
    }
}

impl Bus {
    /// The state a `Messenger` shares with this bus.
    pub(crate) fn shared(&self) -> Rc<BusShared> {
        self.shared.clone()
    }

    /// Publishes an event made here: handed to the attached `Messenger` first, then queued.
    fn publish_local(&self, topic: &str, payload: JsValue, options: PublishOptions) -> Result<f64> {
        let id = next_envelope_id();
        if let Some(outbound) = self.shared.outbound() {
            swarmbus_core::topic::validate_topic(topic).map_err(Error::topic)?;
            outbound.local_publish(topic, &payload, options, id)?;
        }
        self.shared.publish_with_id(topic, payload, options, id)
    }
}

impl BusShared {
    fn outbound(&self) -> Option<Rc<dyn Outbound>> {
        self.outbound.borrow().clone()
    }

    /// Attaches the receiver of local publishes; fails if one is attached.
    pub(crate) fn attach(&self, outbound: Rc<dyn Outbound>) -> Result<()> {
        let mut slot = self.outbound.borrow_mut();
        if slot.is_some() {
            return Err(Error::new("INVALID_STATE", "this Bus already has a Messenger"));
        }
        *slot = Some(outbound);
        Ok(())
    }

    /// True once the JS `Bus` was freed.
    pub(crate) fn is_freed(&self) -> bool {
        self.freed.get()
    }

    /// Detaches the receiver of local publishes.
    pub(crate) fn detach(&self) {
        self.outbound.borrow_mut().take();
    }

    /// Queues an event that came from elsewhere (not forwarded again); during
    /// a drain it waits for the drain's end like any publish from a handler.
    pub(crate) fn publish_remote(
        &self,
        topic: &str,
        payload: JsValue,
        options: PublishOptions,
        id: u64,
    ) -> Result<f64> {
        tick();
        self.publish_with_id(topic, payload, options, id)
    }

    /// Dispatches what is queued unless a drain is already running; returns the handler calls.
    pub(crate) fn drain_if_idle(&self) -> u32 {
        if self.freed.get() {
            return 0;
        }
        tick();
        self.drain_up_to(usize::MAX).unwrap_or(0)
    }

    /// Dispatches up to `max` queued events, then queues what handlers published;
    /// returns the handler calls, or `None` when a drain is already running.
    fn drain_up_to(&self, max: usize) -> Option<u32> {
        let calls = self.inner.try_borrow_mut().ok()?.drain(max).calls;
        self.flush_pending();
        Some(calls as u32)
    }

    fn publish_with_id(
        &self,
        topic: &str,
        payload: JsValue,
        options: PublishOptions,
        id: u64,
    ) -> Result<f64> {
        let Ok(mut bus) = self.inner.try_borrow_mut() else {
            // Inside a handler: validate now, queue after the drain loop.
            swarmbus_core::topic::validate_topic(topic).map_err(Error::topic)?;
            let mut pending = self.pending.borrow_mut();
            if pending.len() >= self.capacity {
                return Err(Error::new(
                    "QUEUE_FULL",
                    "too many publishes from inside handlers during one drain",
                ));
            }
            pending.push_back(Pending { topic: topic.to_owned(), payload, options, id });
            return Ok(id as f64);
        };
        bus.publish_with_id(EventId(id), topic, Payload::Value(payload), options)?;
        Ok(id as f64)
    }

    fn flush_pending(&self) {
        loop {
            let Some(p) = self.pending.borrow_mut().pop_front() else { break };
            // Topics were validated when queued; a full queue is counted by the core as rejected.
            let _ = self.publish_with_id(&p.topic, p.payload, p.options, p.id);
        }
    }
}

fn busy(method: &str) -> Error {
    Error::new("REENTRANT", format_args!("Bus.{method} cannot be called from inside a handler during drain"))
}

/// The object a handler receives.
fn event_object(event: &Event<Payload>, topic: &JsValue) -> JsValue {
    let (payload, index) = event.payload.parts();
    make_event(event.id.0 as f64, topic, event.priority.get(), event.timestamp_ms as f64, payload, index)
}

// The handler call catches in JS and keeps what was thrown for `take_thrown`: wasm-bindgen's
// own `catch` path leaked one externref slot per caught exception in our soak test.
#[wasm_bindgen(module = "/src/helpers.js")]
extern "C" {
    /// The event object; `payload[index]` is the payload unless `index` is -1.
    fn make_event(
        id: f64,
        topic: &JsValue,
        priority: u8,
        timestamp: f64,
        payload: &JsValue,
        index: i32,
    ) -> JsValue;
    /// Calls the handler with the event object; `false` when it threw (see `take_thrown`).
    fn call_handler(
        f: &Function,
        id: f64,
        topic: &JsValue,
        priority: u8,
        timestamp: f64,
        payload: &JsValue,
        index: i32,
    ) -> bool;
    /// What the last `call_handler` that returned `false` caught.
    fn take_thrown() -> JsValue;
    /// `o[key]` as a number: -1 absent, -2 not a number, -3 negative, -4 reading threw (see `take_thrown`).
    fn option_number(o: &JsValue, key: &str) -> f64;
    /// A plain copy of an array, read inside a JS try: `undefined` when `a` is
    /// not an array, `null` when reading it threw (see `take_thrown`).
    fn copy_batch(a: &JsValue) -> JsValue;
}

/// Message of a thrown JS value (an `Error`'s message, or its string form).
pub(crate) fn error_message(error: &JsValue) -> String {
    if let Some(e) = error.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    error.as_string().unwrap_or_else(|| format!("{error:?}"))
}

pub(crate) fn breaker_info(state: &BreakerState, transitions: u64, window: (u32, u32)) -> Result<JsValue> {
    let out: Object = to_js(state)?.unchecked_into();
    let consecutive = match state {
        BreakerState::Closed { consecutive_failures } => *consecutive_failures,
        _ => 0,
    };
    set(&out, "consecutiveFailures", &consecutive.into());
    set(&out, "transitions", &(transitions as f64).into());
    set(&out, "windowFailures", &window.0.into());
    set(&out, "windowCalls", &window.1.into());
    Ok(out.into())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetricsView {
    published: u64,
    delivered: u64,
    dropped: u64,
    rejected: u64,
    evicted: u64,
    expired: u64,
    skipped_open: u64,
    handler_errors: u64,
    unrouted: u64,
    breaker_transitions: u64,
    queued: u64,
    by_priority: ByPriority,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ByPriority {
    published: PerPriority,
    dispatched: PerPriority,
    dropped: PerPriority,
    rejected: PerPriority,
    skipped_open: PerPriority,
    queued: PerPriority,
}
