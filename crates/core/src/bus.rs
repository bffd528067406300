//! The event bus: subscribe by pattern, publish with a priority, drain in order.
//!
//! Publishing only queues; [`EventBus::drain`] dispatches. For each dequeued
//! event, most urgent first and FIFO within a priority:
//!
//! 1. an event whose TTL has run out is dropped (counted, reported to the drop hook);
//! 2. the router gives the matching subscriptions in subscription order;
//! 3. each subscription's breaker (if any) admits or skips the call: skipped
//!    calls are counted and reported, events at or above the bypass priority
//!    (default 8) are never skipped;
//! 4. the handler runs; an `Err` counts against that subscription's breaker and
//!    goes to the error hook, and dispatch continues with the next handler;
//! 5. a `once` subscription is removed after its first call.
//!
//! The queue is bounded; see [`queue`](crate::queue) for the overflow policy.
//! Every lost event is counted in [`BusMetrics`] and handed to the drop hook.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use core::fmt;

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use crate::breaker::{BreakerConfig, CircuitBreaker, Transition};
use crate::clock::Clock;
use crate::error::{BusError, QueueFull};
use crate::metrics::BusMetrics;
use crate::priority::Priority;
use crate::queue::{PriorityQueue, Pushed};
use crate::router::{Route, Router, SubscriptionId, DEFAULT_ROUTE_CACHE};

/// Identifies one published event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub u64);

/// An event as handlers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<P> {
    /// Unique within the bus that assigned it.
    pub id: EventId,
    /// The concrete topic it was published on.
    pub topic: Arc<str>,
    /// Its priority.
    pub priority: Priority,
    /// Clock reading at publish, in milliseconds.
    pub timestamp_ms: u64,
    /// Dropped if not dispatched within this many milliseconds of `timestamp_ms`.
    pub ttl_ms: Option<u64>,
    /// The application data.
    pub payload: P,
}

/// The error a handler returns; its message reaches the error hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError(pub String);

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::error::Error for HandlerError {}

impl From<&str> for HandlerError {
    fn from(message: &str) -> Self {
        Self(message.into())
    }
}

impl From<String> for HandlerError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

/// A subscription's callback.
pub type Handler<P> = Box<dyn FnMut(&Event<P>) -> Result<(), HandlerError>>;

/// Why an accepted event was not delivered (to a subscription or at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Evicted from the full queue by a more urgent event.
    Evicted,
    /// Its TTL ran out before dispatch.
    Expired,
    /// This subscription's breaker was open and the event was below the bypass level.
    CircuitOpen(SubscriptionId),
}

/// Bus settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BusConfig {
    /// Most events waiting for dispatch (default 65 536).
    pub capacity: usize,
    /// Breaker given to each subscription (`None`: subscriptions have no breaker).
    pub breaker: Option<BreakerConfig>,
    /// Topics remembered by the route cache (default 1 024; 0 turns it off).
    pub route_cache: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self { capacity: 65_536, breaker: Some(BreakerConfig::default()), route_cache: DEFAULT_ROUTE_CACHE }
    }
}

/// Options of one subscription.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Remove the subscription after its first handler call.
    pub once: bool,
    /// A breaker for this subscription instead of the bus default.
    pub breaker: Option<BreakerConfig>,
}

/// Options of one publish.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishOptions {
    /// Priority (default 5).
    pub priority: Priority,
    /// Time to live in milliseconds.
    pub ttl_ms: Option<u64>,
}

impl From<Priority> for PublishOptions {
    fn from(priority: Priority) -> Self {
        Self { priority, ttl_ms: None }
    }
}

/// What one [`EventBus::drain`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Events taken off the queue.
    pub events: usize,
    /// Handler calls made.
    pub calls: usize,
}

/// A queued event with the route it had when published; the route is reused
/// at dispatch if no subscription changed in between (same router generation).
struct Queued<P> {
    event: Event<P>,
    route: Route,
    generation: u64,
}

struct Subscription<P> {
    handler: Handler<P>,
    once: bool,
    breaker: Option<CircuitBreaker>,
}

type DropHook<P> = Box<dyn FnMut(&Event<P>, DropReason)>;
type ErrorHook<P> = Box<dyn FnMut(SubscriptionId, &Event<P>, &HandlerError)>;
type TransitionHook = Box<dyn FnMut(SubscriptionId, Transition)>;

/// A priority event bus with pattern subscriptions and per-subscription breakers.
///
/// # Examples
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use swarmbus_core::{EventBus, BusConfig, ManualClock, Priority};
/// let seen = Rc::new(RefCell::new(Vec::new()));
/// let mut bus = EventBus::new(BusConfig::default(), ManualClock::new(0));
/// let log = seen.clone();
/// bus.subscribe("swarm.*.phase", move |e| { log.borrow_mut().push(e.payload); Ok(()) })?;
/// bus.publish("swarm.alpha.phase", 1, Priority::NORMAL)?;
/// bus.publish("swarm.alpha.phase", 2, Priority::PHASE_TRANSITION)?;
/// bus.drain(usize::MAX);
/// assert_eq!(*seen.borrow(), [2, 1]); // most urgent first
/// # Ok::<(), swarmbus_core::BusError>(())
/// ```
pub struct EventBus<P, C> {
    config: BusConfig,
    clock: C,
    router: Router,
    queue: PriorityQueue<Queued<P>>,
    subscriptions: HashMap<SubscriptionId, Subscription<P>>,
    next_event: u64,
    metrics: BusMetrics,
    on_drop: Option<DropHook<P>>,
    on_error: Option<ErrorHook<P>>,
    on_transition: Option<TransitionHook>,
}

impl<P, C: Clock> EventBus<P, C> {
    /// An empty bus reading time from `clock`.
    pub fn new(config: BusConfig, clock: C) -> Self {
        Self {
            config,
            clock,
            router: Router::with_cache_capacity(config.route_cache),
            queue: PriorityQueue::new(config.capacity),
            subscriptions: HashMap::new(),
            next_event: 1,
            metrics: BusMetrics::default(),
            on_drop: None,
            on_error: None,
            on_transition: None,
        }
    }

    /// Subscribes `handler` to `pattern` with default options.
    pub fn subscribe(
        &mut self,
        pattern: &str,
        handler: impl FnMut(&Event<P>) -> Result<(), HandlerError> + 'static,
    ) -> Result<SubscriptionId, BusError> {
        self.subscribe_with(pattern, SubscribeOptions::default(), handler)
    }

    /// Subscribes `handler` to `pattern` with `options`.
    pub fn subscribe_with(
        &mut self,
        pattern: &str,
        options: SubscribeOptions,
        handler: impl FnMut(&Event<P>) -> Result<(), HandlerError> + 'static,
    ) -> Result<SubscriptionId, BusError> {
        let id = self.router.subscribe(pattern).map_err(BusError::InvalidPattern)?;
        let breaker = options.breaker.or(self.config.breaker).map(CircuitBreaker::new);
        self.subscriptions
            .insert(id, Subscription { handler: Box::new(handler), once: options.once, breaker });
        Ok(id)
    }

    /// Removes a subscription; false if it does not exist.
    pub fn unsubscribe(&mut self, id: SubscriptionId) -> bool {
        self.subscriptions.remove(&id);
        self.router.unsubscribe(id)
    }

    /// Queues an event on `topic`; `options` is a [`Priority`] or [`PublishOptions`].
    pub fn publish(
        &mut self,
        topic: &str,
        payload: P,
        options: impl Into<PublishOptions>,
    ) -> Result<EventId, BusError> {
        self.publish_with_id(EventId(self.next_event), topic, payload, options)
    }

    /// [`publish`](Self::publish) with an id chosen by the caller, e.g. one
    /// handed out before the publish was deferred. Later ids continue after it.
    pub fn publish_with_id(
        &mut self,
        id: EventId,
        topic: &str,
        payload: P,
        options: impl Into<PublishOptions>,
    ) -> Result<EventId, BusError> {
        let resolved = self.router.resolve(topic).map_err(BusError::InvalidTopic)?;
        let options = options.into();
        let event = Event {
            id,
            topic: resolved.topic,
            priority: options.priority,
            timestamp_ms: self.clock.now_ms(),
            ttl_ms: options.ttl_ms,
            payload,
        };
        self.enqueue(Queued { event, route: resolved.route, generation: resolved.generation })
    }

    /// Queues one event per `(id, payload)` on one topic with one set of
    /// options, resolving the topic once. Returns how many were queued; on an
    /// error the events before it stay queued.
    ///
    /// # Examples
    /// ```
    /// use swarmbus_core::{BusConfig, EventBus, EventId, Priority};
    /// let mut bus = EventBus::new(BusConfig::default(), || 0u64);
    /// let queued = bus.publish_batch("swarm.a.tick", (1..=3).map(|i| (EventId(i), i)), Priority::BULK)?;
    /// assert_eq!((queued, bus.queue_len()), (3, 3));
    /// # Ok::<(), swarmbus_core::BusError>(())
    /// ```
    pub fn publish_batch(
        &mut self,
        topic: &str,
        events: impl IntoIterator<Item = (EventId, P)>,
        options: impl Into<PublishOptions>,
    ) -> Result<usize, BusError> {
        let resolved = self.router.resolve(topic).map_err(BusError::InvalidTopic)?;
        let options = options.into();
        let timestamp_ms = self.clock.now_ms();
        let mut queued = 0;
        for (id, payload) in events {
            let event = Event {
                id,
                topic: resolved.topic.clone(),
                priority: options.priority,
                timestamp_ms,
                ttl_ms: options.ttl_ms,
                payload,
            };
            self.enqueue(Queued { event, route: resolved.route.clone(), generation: resolved.generation })?;
            queued += 1;
        }
        Ok(queued)
    }

    /// Queues an event built elsewhere (e.g. decoded from an envelope) with its
    /// own id and timestamp. The topic is validated again.
    pub fn publish_event(&mut self, event: Event<P>) -> Result<EventId, BusError> {
        let resolved = self.router.resolve(&event.topic).map_err(BusError::InvalidTopic)?;
        self.enqueue(Queued { event, route: resolved.route, generation: resolved.generation })
    }

    fn enqueue(&mut self, queued: Queued<P>) -> Result<EventId, BusError> {
        let id = queued.event.id;
        let priority = queued.event.priority;
        match self.queue.push(priority, queued) {
            Ok(pushed) => {
                self.next_event = self.next_event.max(id.0.saturating_add(1));
                self.metrics.published[priority.index()] += 1;
                if let Pushed::Evicted(victim, level) = pushed {
                    self.metrics.evicted[level.index()] += 1;
                    if let Some(hook) = self.on_drop.as_mut() {
                        hook(&victim.event, DropReason::Evicted);
                    }
                }
                Ok(id)
            }
            Err(QueueFull { priority, .. }) => {
                self.metrics.rejected[priority.index()] += 1;
                Err(BusError::QueueFull { priority })
            }
        }
    }

    /// Dispatches up to `max_events` queued events; see the [module docs](self).
    /// The clock is read once per call.
    pub fn drain(&mut self, max_events: usize) -> Drained {
        let mut done = Drained::default();
        let now = self.clock.now_ms();
        while done.events < max_events {
            let Some((priority, Queued { event, route, generation })) = self.queue.pop() else { break };
            done.events += 1;
            let p = priority.index();
            if event.ttl_ms.is_some_and(|ttl| now > event.timestamp_ms.saturating_add(ttl)) {
                self.metrics.expired[p] += 1;
                if let Some(hook) = self.on_drop.as_mut() {
                    hook(&event, DropReason::Expired);
                }
                continue;
            }
            self.metrics.dispatched[p] += 1;
            let route = if generation == self.router.generation() {
                route
            } else {
                match self.router.resolve(&event.topic) {
                    Ok(resolved) => resolved.route,
                    // Unreachable (the topic was valid when queued), but never lose it uncounted.
                    Err(_) => {
                        self.metrics.unrouted += 1;
                        continue;
                    }
                }
            };
            if route.is_empty() {
                self.metrics.unrouted += 1;
                continue;
            }
            for &sub_id in route.iter() {
                let Some(sub) = self.subscriptions.get_mut(&sub_id) else { continue };
                let permit = match sub.breaker.as_mut().map(|b| b.try_acquire(now, priority)) {
                    None => None,
                    Some(Ok(permit)) => {
                        if let Some(t) = permit.transition {
                            self.metrics.breaker_transitions += 1;
                            if let Some(hook) = self.on_transition.as_mut() {
                                hook(sub_id, t);
                            }
                        }
                        Some(permit)
                    }
                    Some(Err(_)) => {
                        self.metrics.skipped_open[p] += 1;
                        if let Some(hook) = self.on_drop.as_mut() {
                            hook(&event, DropReason::CircuitOpen(sub_id));
                        }
                        continue;
                    }
                };
                let result = (sub.handler)(&event);
                done.calls += 1;
                self.metrics.delivered += 1;
                let transition = match (&result, sub.breaker.as_mut(), permit) {
                    (Ok(()), Some(b), Some(permit)) => b.on_success(permit, now),
                    (Err(_), Some(b), Some(permit)) => b.on_failure(permit, now),
                    _ => None,
                };
                if let Err(error) = &result {
                    self.metrics.handler_errors += 1;
                    if let Some(hook) = self.on_error.as_mut() {
                        hook(sub_id, &event, error);
                    }
                }
                if let Some(t) = transition {
                    self.metrics.breaker_transitions += 1;
                    if let Some(hook) = self.on_transition.as_mut() {
                        hook(sub_id, t);
                    }
                }
                if sub.once {
                    self.subscriptions.remove(&sub_id);
                    self.router.unsubscribe(sub_id);
                }
            }
        }
        done
    }

    /// Calls `hook` for every accepted event that is evicted, expires, or is
    /// skipped by an open breaker.
    pub fn on_drop(&mut self, hook: impl FnMut(&Event<P>, DropReason) + 'static) {
        self.on_drop = Some(Box::new(hook));
    }

    /// Calls `hook` for every handler that returns an error.
    pub fn on_error(&mut self, hook: impl FnMut(SubscriptionId, &Event<P>, &HandlerError) + 'static) {
        self.on_error = Some(Box::new(hook));
    }

    /// Calls `hook` for every breaker state change.
    pub fn on_transition(&mut self, hook: impl FnMut(SubscriptionId, Transition) + 'static) {
        self.on_transition = Some(Box::new(hook));
    }

    /// A subscription's breaker, if it has one.
    pub fn breaker(&self, id: SubscriptionId) -> Option<&CircuitBreaker> {
        self.subscriptions.get(&id)?.breaker.as_ref()
    }

    /// A subscription's breaker, to force it open, disable or reset it.
    pub fn breaker_mut(&mut self, id: SubscriptionId) -> Option<&mut CircuitBreaker> {
        self.subscriptions.get_mut(&id)?.breaker.as_mut()
    }

    /// The counters so far.
    pub fn metrics(&self) -> &BusMetrics {
        &self.metrics
    }

    /// Events waiting for dispatch.
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// Events waiting for dispatch, per priority.
    pub fn queue_depth(&self) -> [usize; Priority::LEVELS] {
        self.queue.depth_by_priority()
    }

    /// The router, for inspection (patterns, cache statistics).
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Number of live subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    /// The clock's current reading.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::StateKind;
    use crate::clock::ManualClock;
    use alloc::rc::Rc;
    use alloc::vec::Vec;
    use core::cell::RefCell;

    type Log = Rc<RefCell<Vec<(u64, u64)>>>;

    fn bus(config: BusConfig) -> (EventBus<u64, ManualClock>, ManualClock) {
        let clock = ManualClock::new(0);
        (EventBus::new(config, clock.clone()), clock)
    }

    fn recorder(log: &Log, sub: u64) -> impl FnMut(&Event<u64>) -> Result<(), HandlerError> {
        let log = log.clone();
        move |e| {
            log.borrow_mut().push((sub, e.payload));
            Ok(())
        }
    }

    #[test]
    fn routes_are_recomputed_when_subscriptions_change_after_publish() {
        let (mut bus, _) = bus(BusConfig::default());
        let log = Log::default();
        let early = bus.subscribe("a.*", recorder(&log, 1)).unwrap();
        bus.publish("a.b", 10, Priority::NORMAL).unwrap();
        bus.subscribe("a.b", recorder(&log, 2)).unwrap();
        bus.unsubscribe(early);
        bus.drain(usize::MAX);
        assert_eq!(*log.borrow(), [(2, 10)]);
    }

    #[test]
    fn once_subscriptions_fire_once() {
        let (mut bus, _) = bus(BusConfig::default());
        let log = Log::default();
        bus.subscribe_with("t", SubscribeOptions { once: true, ..Default::default() }, recorder(&log, 1))
            .unwrap();
        bus.subscribe("t", recorder(&log, 2)).unwrap();
        for i in 0..3 {
            bus.publish("t", i, Priority::NORMAL).unwrap();
        }
        assert_eq!(bus.drain(usize::MAX), Drained { events: 3, calls: 4 });
        assert_eq!(*log.borrow(), [(1, 0), (2, 0), (2, 1), (2, 2)]);
        assert_eq!(bus.subscription_count(), 1);
    }

    #[test]
    fn drain_respects_max_and_counts() {
        let (mut bus, _) = bus(BusConfig::default());
        let log = Log::default();
        bus.subscribe(">", recorder(&log, 1)).unwrap();
        for i in 0..5 {
            bus.publish("x.y", i, Priority::new(i as u8).unwrap()).unwrap();
        }
        bus.publish("nobody.listens", 0, Priority::BULK).unwrap();
        assert_eq!(bus.drain(2), Drained { events: 2, calls: 2 });
        assert_eq!(*log.borrow(), [(1, 4), (1, 3)]);
        assert_eq!(bus.queue_len(), 4);
        bus.drain(usize::MAX);
        let m = bus.metrics();
        assert_eq!(BusMetrics::total(&m.published), 6);
        assert_eq!(m.delivered, 6);
        assert_eq!(m.unrouted, 0, "'>' matches every topic");
    }

    #[test]
    fn overflow_is_counted_reported_and_rejected() {
        let (mut bus, _) = bus(BusConfig { capacity: 2, ..Default::default() });
        let dropped = Rc::new(RefCell::new(Vec::new()));
        let d = dropped.clone();
        bus.on_drop(move |e, why| d.borrow_mut().push((e.payload, why)));
        bus.publish("t", 1, Priority::BULK).unwrap();
        bus.publish("t", 2, Priority::CRITICAL).unwrap();
        bus.publish("t", 3, Priority::PHASE_TRANSITION).unwrap();
        assert_eq!(
            bus.publish("t", 4, Priority::CRITICAL),
            Err(BusError::QueueFull { priority: Priority::CRITICAL })
        );
        assert_eq!(*dropped.borrow(), [(1, DropReason::Evicted)]);
        bus.publish("t", 5, Priority::PHASE_TRANSITION).unwrap();
        assert_eq!(dropped.borrow()[1], (2, DropReason::Evicted), "a critical event is evicted loudly");
        let m = bus.metrics();
        assert_eq!((m.evicted[0], m.evicted[8], m.rejected[8]), (1, 1, 1));
    }

    #[test]
    fn expired_events_are_dropped_at_dispatch() {
        let (mut bus, clock) = bus(BusConfig::default());
        let log = Log::default();
        bus.subscribe("t", recorder(&log, 1)).unwrap();
        bus.publish("t", 1, PublishOptions { priority: Priority::NORMAL, ttl_ms: Some(100) }).unwrap();
        bus.publish("t", 2, PublishOptions { priority: Priority::NORMAL, ttl_ms: Some(1_000) }).unwrap();
        clock.advance(500);
        bus.drain(usize::MAX);
        assert_eq!(*log.borrow(), [(1, 2)]);
        assert_eq!(bus.metrics().expired[5], 1);
    }

    #[test]
    fn failing_handler_opens_its_breaker_only_and_critical_events_bypass_it() {
        let breaker =
            BreakerConfig { failure_threshold: 2, open_ms: 1_000, half_open_probes: 1, ..Default::default() };
        let (mut bus, clock) = bus(BusConfig { breaker: Some(breaker), ..Default::default() });
        let log = Log::default();
        let errors = Rc::new(RefCell::new(0));
        let e2 = errors.clone();
        bus.on_error(move |_, _, err| {
            assert_eq!(err.0, "boom");
            *e2.borrow_mut() += 1;
        });
        let fail = Rc::new(RefCell::new(true));
        let f2 = fail.clone();
        let l2 = log.clone();
        let flaky = bus
            .subscribe("t", move |e| {
                l2.borrow_mut().push((9, e.payload));
                if *f2.borrow() {
                    Err("boom".into())
                } else {
                    Ok(())
                }
            })
            .unwrap();
        bus.subscribe("t", recorder(&log, 1)).unwrap();
        for i in 0..4 {
            bus.publish("t", i, Priority::NORMAL).unwrap();
        }
        bus.publish("t", 99, Priority::CRITICAL).unwrap();
        bus.drain(usize::MAX);
        // critical first (fails: 1), then 0 (fails: 2 → open), then 1..3 skipped for the flaky one.
        assert_eq!(log.borrow().iter().filter(|(s, _)| *s == 9).count(), 2);
        assert_eq!(log.borrow().iter().filter(|(s, _)| *s == 1).count(), 5, "the healthy subscriber got all");
        assert_eq!(*errors.borrow(), 2);
        assert_eq!(bus.breaker(flaky).unwrap().state().kind(), StateKind::Open);
        assert_eq!(bus.metrics().skipped_open[5], 3);

        bus.publish("t", 100, Priority::CRITICAL).unwrap();
        bus.drain(usize::MAX);
        assert!(log.borrow().contains(&(9, 100)), "priority 8 bypasses the open breaker");

        *fail.borrow_mut() = false;
        clock.advance(1_000);
        bus.publish("t", 5, Priority::NORMAL).unwrap();
        bus.drain(usize::MAX);
        assert_eq!(bus.breaker(flaky).unwrap().state().kind(), StateKind::Closed);
        assert_eq!(bus.metrics().breaker_transitions, 3);
    }

    #[test]
    fn invalid_input_is_a_typed_error() {
        let (mut bus, _) = bus(BusConfig::default());
        assert!(matches!(bus.subscribe("a..b", |_| Ok(())), Err(BusError::InvalidPattern(_))));
        assert!(matches!(bus.publish("a.*", 0, Priority::NORMAL), Err(BusError::InvalidTopic(_))));
        assert_eq!(bus.publish("a.*", 0, Priority::NORMAL).unwrap_err().code(), "INVALID_TOPIC");
        assert_eq!(BusMetrics::total(&bus.metrics().published), 0);
    }
}
