//! Property tests: each structure against a plain reference model.

use std::cell::RefCell;
use std::rc::Rc;

use proptest::prelude::*;
use serde_json::{json, Value};
use swarmbus_core::breaker::{BreakerConfig, CircuitBreaker, StateKind};
use swarmbus_core::envelope::{self, Envelope, Limits};
use swarmbus_core::queue::{PriorityQueue, Pushed};
use swarmbus_core::topic::match_literal;
use swarmbus_core::{BusConfig, EventBus, ManualClock, Priority, Router, Snapshot, StateStore};

fn token() -> impl Strategy<Value = String> {
    prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(String::from)
}

fn topic() -> impl Strategy<Value = String> {
    prop::collection::vec(token(), 1..5).prop_map(|t| t.join("."))
}

fn pattern() -> impl Strategy<Value = String> {
    let tok = prop_oneof![3 => token(), 2 => Just("*".to_string())];
    (prop::collection::vec(tok, 1..5), any::<bool>()).prop_map(|(mut t, rest)| {
        if rest {
            *t.last_mut().unwrap() = ">".into();
        }
        t.join(".")
    })
}

fn priority() -> impl Strategy<Value = Priority> {
    (0u8..10).prop_map(|p| Priority::new(p).unwrap())
}

proptest! {
    // The trie + cache must agree with the token-by-token definition, including after removals.
    #[test]
    fn router_matches_naive_matcher(
        patterns in prop::collection::vec(pattern(), 1..30),
        removals in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        topics in prop::collection::vec(topic(), 1..30),
        cache in prop_oneof![Just(0usize), Just(4), Just(1024)],
    ) {
        let mut router = Router::with_cache_capacity(cache);
        let mut live: Vec<_> = patterns.iter().map(|p| (router.subscribe(p).unwrap(), p.clone())).collect();
        for (round, topics) in [&topics[..], &topics[..]].into_iter().enumerate() {
            for t in topics {
                let expected: Vec<_> = live.iter().filter(|(_, p)| match_literal(p, t)).map(|(id, _)| *id).collect();
                prop_assert_eq!(&*router.route(t).unwrap(), &expected[..], "round {} topic {}", round, t);
            }
            for r in &removals {
                if !live.is_empty() {
                    let (id, _) = live.remove(r.index(live.len()));
                    prop_assert!(router.unsubscribe(id));
                }
            }
        }
    }

    // Pop order and overflow decisions match a list-based model.
    #[test]
    fn priority_queue_matches_model(
        ops in prop::collection::vec(prop_oneof![3 => priority().prop_map(Some), 1 => Just(None)], 1..200),
        capacity in 1usize..12,
    ) {
        let mut queue = PriorityQueue::new(capacity);
        let mut model: Vec<(Priority, usize)> = Vec::new();
        let mut dropped = [0u64; 10];
        for (seq, op) in ops.into_iter().enumerate() {
            match op {
                Some(p) => {
                    let result = queue.push(p, seq);
                    if model.len() < capacity {
                        prop_assert_eq!(result, Ok(Pushed::Queued));
                        model.push((p, seq));
                    } else {
                        let victim = model.iter().enumerate().filter(|(_, (q, _))| *q < p)
                            .min_by_key(|(_, (q, s))| (*q, *s)).map(|(i, _)| i);
                        match victim {
                            Some(i) => {
                                let (vp, vs) = model.remove(i);
                                dropped[vp.index()] += 1;
                                prop_assert_eq!(result, Ok(Pushed::Evicted(vs, vp)));
                                model.push((p, seq));
                            }
                            None => prop_assert_eq!(result.unwrap_err().rejected, seq),
                        }
                    }
                }
                None => {
                    let expected = model.iter().enumerate().max_by_key(|(_, (p, s))| (*p, std::cmp::Reverse(*s))).map(|(i, _)| i);
                    let expected = expected.map(|i| model.remove(i));
                    prop_assert_eq!(queue.pop(), expected);
                }
            }
            prop_assert_eq!(queue.len(), model.len());
        }
        prop_assert_eq!(queue.dropped(), dropped);
    }

    // The breaker follows a small reference model of the documented state machine.
    #[test]
    fn breaker_matches_reference_model(
        steps in prop::collection::vec((any::<bool>(), 0u64..400, priority()), 1..300),
        threshold in 1u32..6,
        probes in 1u32..4,
    ) {
        let open_ms = 1_000;
        let mut breaker = CircuitBreaker::new(BreakerConfig { failure_threshold: threshold, open_ms, half_open_probes: probes, ..Default::default() });
        let mut model = Model::Closed(0);
        let mut now = 0u64;
        for (ok, dt, p) in steps {
            now += dt;
            if let Model::Open(since) = model {
                if now >= since + open_ms { model = Model::HalfOpen(0); }
            }
            let bypass = p >= Priority::CRITICAL;
            let admitted = breaker.try_acquire(now, p);
            let model_admits = matches!(model, Model::Closed(_) | Model::HalfOpen(_)) || bypass;
            prop_assert_eq!(admitted.is_ok(), model_admits, "model {:?} now {}", model, now);
            if let Ok(permit) = admitted {
                if ok { breaker.on_success(permit, now); } else { breaker.on_failure(permit, now); }
                model = match (model, ok) {
                    (Model::Closed(_), true) => Model::Closed(0),
                    (Model::Closed(n), false) if n + 1 >= threshold => Model::Open(now),
                    (Model::Closed(n), false) => Model::Closed(n + 1),
                    (Model::HalfOpen(_), false) if !bypass => Model::Open(now),
                    (Model::HalfOpen(n), true) if !bypass && n + 1 >= probes => Model::Closed(0),
                    (Model::HalfOpen(n), true) if !bypass => Model::HalfOpen(n + 1),
                    (m, _) => m,
                };
            }
            let kind = match model { Model::Closed(_) => StateKind::Closed, Model::Open(_) => StateKind::Open, Model::HalfOpen(_) => StateKind::HalfOpen };
            prop_assert_eq!(breaker.state().kind(), kind);
            let restored: CircuitBreaker = serde_json::from_str(&serde_json::to_string(&breaker).unwrap()).unwrap();
            prop_assert_eq!(&restored, &breaker);
        }
    }

    // diff(a, b) applied to a store holding a yields b; images round-trip.
    #[test]
    fn diff_apply_and_images_round_trip(
        first in prop::collection::vec(store_op(), 0..40),
        second in prop::collection::vec(store_op(), 0..40),
    ) {
        let mut store = StateStore::new();
        first.iter().for_each(|op| op.run(&mut store));
        let a = store.snapshot(Some("a"));
        second.iter().for_each(|op| op.run(&mut store));
        let b = store.snapshot(Some("b"));
        let patch = store.diff(a, b).unwrap();
        let target = store.get_snapshot(b).unwrap().clone();
        store.restore(a).unwrap();
        store.apply(&patch);
        prop_assert!(store.current().diff(&target).is_empty());
        prop_assert_eq!(Snapshot::from_msgpack(&target.to_msgpack()).unwrap(), target.clone());
        prop_assert_eq!(Snapshot::from_json(&target.to_json()).unwrap(), target);
    }

    #[test]
    fn envelope_round_trips(
        id in any::<u64>(), t in topic(), p in priority(), ts in any::<u64>(), ttl in any::<Option<u64>>(),
        sender in proptest::option::of("[a-z0-9-]{0,40}"), swarm in proptest::option::of("\\PC{0,20}"),
        payload in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let env = Envelope { id, topic: t, priority: p, timestamp_ms: ts, ttl_ms: ttl, sender, swarm, correlation_id: None, payload };
        let bytes = env.encode().unwrap();
        prop_assert_eq!(envelope::decode(&bytes).unwrap(), env.clone());
        let h = envelope::peek_header(&bytes).unwrap();
        prop_assert_eq!((h.id, h.topic, h.priority), (env.id, env.topic.as_str(), env.priority));
    }

    // Random and mutated bytes give errors, never panics.
    #[test]
    fn codec_survives_garbage(
        noise in prop::collection::vec(any::<u8>(), 0..256),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let _ = envelope::decode(&noise);
        let _ = envelope::peek_header(&noise);
        let _ = Snapshot::from_msgpack(&noise);
        let _ = Snapshot::from_json(&noise);
        let mut bytes = Envelope::new(1, "swarm.a.b", Priority::TASK, 5, noise.clone()).encode().unwrap();
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        if let Ok(env) = envelope::decode_ref(&bytes, &Limits::default()) {
            prop_assert!(env.priority <= Priority::MAX);
        }
    }

    // With room in the queue, one wildcard subscriber sees publishes sorted by
    // priority (descending), FIFO within a priority.
    #[test]
    fn bus_delivers_in_priority_order(events in prop::collection::vec((topic(), priority()), 0..100)) {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let log = seen.clone();
        let mut bus = EventBus::new(BusConfig::default(), ManualClock::new(0));
        bus.subscribe(">", move |e| { log.borrow_mut().push(e.id); Ok(()) }).unwrap();
        let mut expected: Vec<_> = events.iter().map(|(t, p)| (*p, bus.publish(t, (), *p).unwrap())).collect();
        expected.sort_by_key(|(p, id)| (std::cmp::Reverse(*p), *id));
        bus.drain(usize::MAX);
        prop_assert_eq!(&*seen.borrow(), &expected.into_iter().map(|(_, id)| id).collect::<Vec<_>>());
    }
}

#[derive(Debug, Clone, Copy)]
enum Model {
    Closed(u32),
    Open(u64),
    HalfOpen(u32),
}

#[derive(Debug, Clone)]
enum StoreOp {
    Set(String, Value),
    Merge(String, Value),
    Delete(String),
}

impl StoreOp {
    fn run(&self, store: &mut StateStore) {
        match self {
            StoreOp::Set(k, v) => drop(store.set(k.clone(), v.clone())),
            StoreOp::Merge(k, v) => drop(store.merge(k, v)),
            StoreOp::Delete(k) => drop(store.delete(k)),
        }
    }
}

fn store_op() -> impl Strategy<Value = StoreOp> {
    let key = "[a-f]{1,2}";
    let value = prop_oneof![
        any::<i64>().prop_map(Value::from),
        "[a-z]{0,8}".prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        prop::num::f64::NORMAL.prop_map(Value::from),
        Just(Value::Null),
        (any::<i32>(), "[a-z]{1,3}").prop_map(|(n, k)| json!({ k: n, "list": [n, n] })),
    ];
    prop_oneof![
        (key, value.clone()).prop_map(|(k, v)| StoreOp::Set(k, v)),
        (key, value).prop_map(|(k, v)| StoreOp::Merge(k, v)),
        key.prop_map(StoreOp::Delete),
    ]
}
