//! The client protocol session (`swarmbus_core::session`) driven with plain
//! numbers for time: hello, resubscribe order, backoff with jitter, request
//! deadlines, keepalive, the offline queue's bounds and refusals; and a
//! property test that arbitrary event sequences never panic nor break a bound.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use swarmbus_core::protocol::{ClientFrame, ServerFrame};
use swarmbus_core::session::{
    Action, Effect, Failure, RequestId, SessionError, SessionState, Stop, TransportId, CLOSE_NO_PONG,
    CLOSE_NO_WELCOME,
};
use swarmbus_core::{Priority, Session, SessionConfig};

/// A session, the fake clock, and what it produced since the last look.
struct Harness {
    session: Session,
    now: u64,
    actions: Vec<Action>,
    effects: Vec<Effect>,
}

impl Harness {
    fn new(config: SessionConfig) -> Self {
        Self { session: Session::new(config), now: 1_000, actions: Vec::new(), effects: Vec::new() }
    }

    fn pump(&mut self) {
        while let Some(action) = self.session.poll_action() {
            self.actions.push(action);
        }
        while let Some(effect) = self.session.poll_effect() {
            self.effects.push(effect);
        }
    }

    /// Frames sent since the last call, decoded; other actions stay.
    fn sent(&mut self) -> Vec<ClientFrame> {
        self.pump();
        let mut frames = Vec::new();
        self.actions.retain(|action| match action {
            Action::Send { frame, .. } => {
                frames.push(ClientFrame::decode(frame).expect("the session sends valid frames"));
                false
            }
            _ => true,
        });
        frames
    }

    fn effects(&mut self) -> Vec<Effect> {
        self.pump();
        std::mem::take(&mut self.effects)
    }

    fn actions(&mut self) -> Vec<Action> {
        self.pump();
        std::mem::take(&mut self.actions)
    }

    /// The transport of the single `Open` action pending.
    fn opened(&mut self) -> TransportId {
        let actions = self.actions();
        match actions.as_slice() {
            [Action::Open { transport }] => *transport,
            other => panic!("expected one Open, got {other:?}"),
        }
    }

    /// Connected and welcomed on the pending `Open`; returns its transport.
    fn welcome(&mut self) -> TransportId {
        let transport = self.opened();
        self.session.connected(transport, self.now);
        let hello = self.sent();
        assert!(matches!(hello.as_slice(), [ClientFrame::Hello { v: 1, .. }]), "{hello:?}");
        self.session.handle(transport, ServerFrame::Welcome { v: 1, session: 7 }, self.now);
        transport
    }

    /// Connects and sends the hello; returns the transport waiting for its welcome.
    fn hello(&mut self) -> TransportId {
        self.session.connect(self.now).unwrap();
        let transport = self.opened();
        self.session.connected(transport, self.now);
        self.sent();
        transport
    }

    fn tick(&mut self, now: u64) {
        self.now = now;
        self.session.tick(now);
    }
}

fn config() -> SessionConfig {
    SessionConfig {
        min_backoff_ms: 100,
        max_backoff_ms: 1_000,
        ping_interval_ms: 0,
        request_timeout_ms: 500,
        connect_timeout_ms: 2_000,
        ..SessionConfig::default()
    }
}

fn acks(frames: &[ClientFrame]) -> Vec<u64> {
    frames
        .iter()
        .filter_map(|frame| match frame {
            ClientFrame::Subscribe { ack, .. }
            | ClientFrame::Publish { ack, .. }
            | ClientFrame::Refresh { ack, .. } => *ack,
            _ => None,
        })
        .collect()
}

#[test]
fn hello_carries_the_token_and_the_welcome_opens() {
    let mut h = Harness::new(SessionConfig { token: Some("jwt".into()), ..config() });
    assert_eq!(h.session.state(), SessionState::Idle);
    h.session.connect(h.now).unwrap();
    assert_eq!(h.session.connect(h.now), Err(SessionError::AlreadyStarted));
    let transport = h.opened();
    assert_eq!(h.effects(), [Effect::State(SessionState::Connecting)]);
    assert_eq!(h.session.poll_timeout(), Some(h.now + 2_000), "the welcome has a deadline");
    h.session.connected(transport, h.now);
    assert_eq!(h.sent(), [ClientFrame::Hello { v: 1, token: Some("jwt".into()) }]);
    h.session.handle(transport, ServerFrame::Welcome { v: 1, session: 1 }, h.now);
    assert_eq!(h.effects(), [Effect::State(SessionState::Open)]);
    assert_eq!(h.session.poll_timeout(), None, "no ping, no request: nothing to wake up for");
}

#[test]
fn subscriptions_are_resubscribed_in_the_order_they_were_made() {
    let mut h = Harness::new(config());
    for pattern in ["c.>", "a.*", "b"] {
        assert_eq!(h.session.subscribe(pattern, false, h.now), Ok(None));
    }
    h.session.connect(h.now).unwrap();
    let first = h.welcome();
    let frames = h.sent();
    let patterns: Vec<&str> = frames
        .iter()
        .map(|f| match f {
            ClientFrame::Subscribe { pattern, .. } => pattern.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(patterns, ["c.>", "a.*", "b"]);
    for ack in acks(&frames) {
        h.session.handle(first, ServerFrame::Ack { ack }, h.now);
    }
    let subscribed: Vec<Effect> =
        h.effects().into_iter().filter(|e| matches!(e, Effect::Subscribed(_))).collect();
    assert_eq!(subscribed.len(), 3);
    assert!(h.session.is_subscribed("a.*"));
    h.session.subscribe("a.*", false, h.now).unwrap();
    assert!(h.sent().is_empty(), "subscribed already: nothing to send");
    let again = h.session.subscribe("a.*", true, h.now).unwrap().unwrap();
    assert_eq!(h.sent(), [ClientFrame::Subscribe { pattern: "a.*".into(), ack: Some(again.0) }]);

    h.session.closed(first, 1006, h.now);
    assert!(!h.session.is_subscribed("a.*"), "confirmation is per connection");
    // Subscribing again keeps the place; a pattern withdrawn and made again goes last.
    h.session.subscribe("c.>", false, h.now).unwrap();
    assert!(h.session.unsubscribe("a.*"));
    assert!(!h.session.unsubscribe("a.*"));
    h.session.subscribe("a.*", false, h.now).unwrap();
    assert!(h.sent().is_empty(), "nothing is sent while disconnected");
    assert_eq!(h.session.subscriptions(), ["c.>", "b", "a.*"]);
    let until = h.session.poll_timeout().unwrap();
    h.actions();
    h.tick(until);
    h.welcome();
    let patterns: Vec<String> = h
        .sent()
        .into_iter()
        .map(|f| match f {
            ClientFrame::Subscribe { pattern, ack } => {
                assert!(ack.is_some(), "every resubscribe asks for an ack");
                pattern
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(patterns, ["c.>", "b", "a.*"]);
}

/// Fails `attempts` connection attempts in a row; returns the announced delays.
fn failing_delays(seed: u64, attempts: usize) -> Vec<u64> {
    let mut h = Harness::new(SessionConfig { seed, ..config() });
    h.session.connect(h.now).unwrap();
    let mut delays = Vec::new();
    for _ in 0..attempts {
        let transport = h.opened();
        h.session.closed(transport, 1006, h.now);
        let delay = h
            .effects()
            .into_iter()
            .find_map(|e| match e {
                Effect::ReconnectIn { delay_ms, .. } => Some(delay_ms),
                _ => None,
            })
            .expect("a retry is announced");
        assert_eq!(h.session.poll_timeout(), Some(h.now + delay));
        h.tick(h.now + delay - 1);
        assert!(h.actions().is_empty(), "not before the delay");
        h.tick(h.now + 1);
        delays.push(delay);
    }
    delays
}

#[test]
fn reconnect_delays_double_within_jitter_bounds_and_are_seeded() {
    for seed in 0..50 {
        let delays = failing_delays(seed, 8);
        for (attempt, delay) in delays.iter().enumerate() {
            let ceiling = (100u64 << attempt).min(1_000);
            assert!((ceiling / 2..=ceiling).contains(delay), "seed {seed} attempt {attempt}: {delay}");
        }
        assert_eq!(delays, failing_delays(seed, 8), "same seed, same delays");
    }
    let firsts: BTreeSet<u64> = (0..50).map(|seed| failing_delays(seed, 1)[0]).collect();
    assert!(firsts.len() > 10, "jittered: {firsts:?}");
}

#[test]
fn a_welcome_resets_the_backoff() {
    let mut h = Harness::new(SessionConfig { min_backoff_ms: 1_000, max_backoff_ms: 100_000, ..config() });
    h.session.connect(h.now).unwrap();
    for _ in 0..5 {
        let transport = h.opened();
        h.session.closed(transport, 1006, h.now);
        let until = h.session.poll_timeout().unwrap();
        h.tick(until);
    }
    let transport = h.welcome();
    assert_eq!(h.session.state(), SessionState::Open);
    h.effects();
    h.session.closed(transport, 1006, h.now);
    let delay = h.effects().into_iter().find_map(|e| match e {
        Effect::ReconnectIn { delay_ms, attempt } => Some((delay_ms, attempt)),
        _ => None,
    });
    let (delay, attempt) = delay.unwrap();
    assert_eq!(attempt, 1);
    assert!((500..=1_000).contains(&delay), "{delay}");
    assert_eq!(h.session.stats().reconnects, 5);
}

#[test]
fn a_request_without_an_answer_times_out_and_a_late_ack_is_ignored() {
    let mut h = Harness::new(config());
    h.session.connect(h.now).unwrap();
    let transport = h.welcome();
    h.effects();
    let id = h.session.publish(vec![1, 2, 3], Priority::NORMAL, true, h.now).unwrap().unwrap();
    assert_eq!(h.sent(), [ClientFrame::Publish { envelope: vec![1, 2, 3], ack: Some(id.0) }]);
    assert_eq!(h.session.poll_timeout(), Some(h.now + 500));
    let start = h.now;
    h.tick(start + 499);
    assert!(h.effects().is_empty());
    h.tick(start + 500);
    assert_eq!(h.effects(), [Effect::Failed(id, Failure::Timeout)]);
    assert_eq!(Failure::Timeout.code(), "TIMEOUT");
    h.session.handle(transport, ServerFrame::Ack { ack: id.0 }, h.now);
    assert!(h.effects().is_empty(), "one outcome per request");
    assert_eq!(h.session.stats().timeouts, 1);

    // A publish that times out while queued offline is never sent.
    h.session.closed(transport, 1006, h.now);
    let queued = h.session.publish(vec![9], Priority::NORMAL, true, h.now).unwrap().unwrap();
    let kept = h.session.publish(vec![8], Priority::NORMAL, false, h.now).unwrap();
    assert_eq!(kept, None);
    h.tick(h.now + 500);
    assert!(h.effects().contains(&Effect::Failed(queued, Failure::Timeout)));
    // The backoff (at most 100 ms) passed too: the reconnect is under way.
    h.welcome();
    assert_eq!(h.sent(), [ClientFrame::Publish { envelope: vec![8], ack: None }]);
}

#[test]
fn an_unanswered_ping_means_a_dead_connection() {
    let mut h = Harness::new(SessionConfig { ping_interval_ms: 1_000, ..config() });
    h.session.connect(0).unwrap();
    h.now = 0;
    let transport = h.welcome();
    h.effects();
    assert_eq!(h.session.poll_timeout(), Some(1_000));
    h.tick(1_000);
    let nonce = match h.sent().as_slice() {
        [ClientFrame::Ping { nonce }] => *nonce,
        other => panic!("{other:?}"),
    };
    h.session.handle(transport, ServerFrame::Pong { nonce: nonce + 1 }, h.now);
    h.session.handle(transport, ServerFrame::Pong { nonce }, h.now);
    h.tick(2_000);
    let nonce = match h.sent().as_slice() {
        [ClientFrame::Ping { nonce }] => *nonce,
        other => panic!("answered, so the next ping goes out: {other:?}"),
    };
    // A pong for another nonce does not count.
    h.session.handle(transport, ServerFrame::Pong { nonce: nonce + 7 }, h.now);
    h.tick(2_999);
    assert!(h.actions().is_empty());
    h.tick(3_000);
    assert_eq!(
        h.actions(),
        [Action::Close { transport, code: CLOSE_NO_PONG, reason: "no pong from the bridge" }]
    );
    let effects = h.effects();
    assert_eq!(effects[0], Effect::Disconnected { code: CLOSE_NO_PONG });
    assert!(matches!(effects[1], Effect::ReconnectIn { attempt: 1, .. }));
    assert_eq!(effects[2], Effect::State(SessionState::Reconnecting));
    assert_eq!(h.session.stats().dead_connections, 1);
    // The closed transport's late close is not a second loss.
    h.session.closed(transport, 1006, h.now);
    assert!(h.effects().is_empty());
}

#[test]
fn no_welcome_in_time_closes_and_retries() {
    let mut h = Harness::new(config());
    let transport = h.hello();
    h.tick(h.now + 2_000);
    assert_eq!(
        h.actions(),
        [Action::Close { transport, code: CLOSE_NO_WELCOME, reason: "no welcome in time" }]
    );
    assert!(h.effects().contains(&Effect::Disconnected { code: CLOSE_NO_WELCOME }));
    assert_eq!(h.session.state(), SessionState::Connecting, "never welcomed yet");
}

#[test]
fn the_offline_queue_is_bounded_in_items_and_bytes_and_counts_drops() {
    let mut h = Harness::new(SessionConfig { offline_max_items: 3, offline_max_bytes: 100, ..config() });
    let p = |n| Priority::new(n).unwrap();
    let publish =
        |h: &mut Harness, n: u8, size: usize, ack: bool| h.session.publish(vec![n; size], p(n), ack, h.now);
    publish(&mut h, 0, 10, false).unwrap();
    let evicted_request = publish(&mut h, 5, 10, true).unwrap().unwrap();
    publish(&mut h, 9, 10, false).unwrap();
    // Full in items: each newcomer evicts the oldest of the lowest priority below it and below 8.
    publish(&mut h, 6, 10, false).unwrap();
    assert_eq!(h.session.stats().dropped[0], 1);
    publish(&mut h, 9, 10, false).unwrap();
    assert_eq!(h.session.stats().dropped[5], 1);
    assert!(h.effects().contains(&Effect::Failed(evicted_request, Failure::Dropped)));
    publish(&mut h, 8, 10, false).unwrap();
    assert_eq!(h.session.stats().dropped[6], 1);
    // Now only priority ≥ 8 is queued: it is never evicted; the newcomer is refused, and counted.
    assert_eq!(publish(&mut h, 9, 10, false), Err(SessionError::QueueFull { priority: p(9) }));
    assert_eq!(publish(&mut h, 3, 10, true), Err(SessionError::QueueFull { priority: p(3) }));
    assert_eq!(h.session.pending_requests(), 0, "a refused publish leaves no request behind");
    assert_eq!(h.session.stats().dropped, [1, 0, 0, 1, 0, 1, 1, 0, 0, 1]);
    assert_eq!(h.session.queued(), 3);

    // Bounded in bytes too, and larger than the whole bound is refused at once.
    let mut h = Harness::new(SessionConfig { offline_max_items: 10, offline_max_bytes: 100, ..config() });
    publish(&mut h, 1, 40, false).unwrap();
    publish(&mut h, 2, 40, false).unwrap();
    publish(&mut h, 7, 30, false).unwrap();
    assert_eq!((h.session.queued(), h.session.queued_bytes()), (2, 70));
    assert_eq!(h.session.stats().dropped[1], 1);
    assert!(publish(&mut h, 9, 101, false).is_err());
    publish(&mut h, 4, 30, false).unwrap();
    assert_eq!(h.session.queued_bytes(), 100);

    // Flushed after the welcome, most urgent first.
    h.session.connect(h.now).unwrap();
    h.welcome();
    let order: Vec<u8> = h
        .sent()
        .into_iter()
        .map(|f| match f {
            ClientFrame::Publish { envelope, .. } => envelope[0],
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(order, [7, 4, 2]);
    assert_eq!((h.session.queued(), h.session.queued_bytes()), (0, 0));
}

#[test]
fn refusals_carry_the_bridge_code() {
    let mut h = Harness::new(config());
    assert!(matches!(h.session.subscribe("a.>.b", true, h.now), Err(ref e) if e.code() == "INVALID_PATTERN"));
    h.session.connect(h.now).unwrap();
    let transport = h.welcome();
    h.effects();
    let publish = h.session.publish(vec![1], Priority::NORMAL, true, h.now).unwrap().unwrap();
    let subscribe = h.session.subscribe("secret.>", true, h.now).unwrap().unwrap();
    assert_eq!(acks(&h.sent()), [publish.0, subscribe.0]);
    let error = |code: &str, ack| ServerFrame::error(code, "no", ack);
    h.session.handle(transport, error("DECODE_ERROR", Some(publish.0)), h.now);
    h.session.handle(transport, error("FORBIDDEN", Some(subscribe.0)), h.now);
    h.session.handle(transport, error("RATE_LIMITED", None), h.now);
    let refused = |code: &str| Failure::Refused { code: code.into(), message: "no".into() };
    assert_eq!(
        h.effects(),
        [
            Effect::Failed(publish, refused("DECODE_ERROR")),
            Effect::Failed(subscribe, refused("FORBIDDEN")),
            Effect::SubscriptionRefused {
                pattern: "secret.>".into(),
                code: "FORBIDDEN".into(),
                message: "no".into()
            },
            Effect::Error { code: "RATE_LIMITED".into(), message: "no".into() },
        ]
    );
    assert_eq!(refused("FORBIDDEN").code(), "FORBIDDEN");
    assert!(h.session.subscriptions().is_empty(), "a refused pattern is not retried on every reconnect");

    // Undecodable bytes are reported, not fatal.
    h.session.receive(transport, &[0xc1, 0xff], h.now);
    assert!(matches!(h.effects().as_slice(), [Effect::Error { code, .. }] if code == "BAD_FRAME"));
    h.session.receive(transport, &ServerFrame::Event { envelope: vec![1, 2] }.encode(), h.now);
    assert_eq!(h.effects(), [Effect::Event(vec![1, 2])]);
}

#[test]
fn a_fatal_hello_refusal_stops_and_a_transient_one_does_not() {
    let mut h = Harness::new(config());
    let transport = h.hello();
    h.session.handle(transport, ServerFrame::error("RATE_LIMITED", "later", None), h.now);
    assert_eq!(h.session.state(), SessionState::Connecting);
    h.session.handle(transport, ServerFrame::error("TOKEN_EXPIRED", "expired", None), h.now);
    assert_eq!(h.actions(), [Action::Close { transport, code: 1000, reason: "hello refused" }]);
    let effects = h.effects();
    assert!(effects.contains(&Effect::Stopped(Stop::Refused {
        code: "TOKEN_EXPIRED".into(),
        message: "expired".into()
    })));
    assert_eq!(h.session.state(), SessionState::Closed);
    assert_eq!(h.session.poll_timeout(), None, "no retry");
    // A new token and connect start again.
    h.session.set_token(Some("fresh".into()));
    h.session.connect(h.now).unwrap();
    let transport = h.opened();
    h.session.connected(transport, h.now);
    assert_eq!(h.sent(), [ClientFrame::Hello { v: 1, token: Some("fresh".into()) }]);
}

#[test]
fn a_lost_connection_fails_written_publishes_but_keeps_subscribe_requests() {
    let mut h = Harness::new(config());
    h.session.connect(h.now).unwrap();
    let transport = h.welcome();
    let publish = h.session.publish(vec![1], Priority::NORMAL, true, h.now).unwrap().unwrap();
    let subscribe = h.session.subscribe("jobs.>", true, h.now).unwrap().unwrap();
    h.sent();
    h.effects();
    h.session.closed(transport, 1006, h.now);
    let effects = h.effects();
    assert!(effects.contains(&Effect::Failed(publish, Failure::Disconnected)));
    assert!(!effects.iter().any(|e| matches!(e, Effect::Failed(id, _) if *id == subscribe)));
    h.tick(h.session.poll_timeout().unwrap());
    let old = transport;
    let transport = h.welcome();
    assert_eq!(h.sent(), [ClientFrame::Subscribe { pattern: "jobs.>".into(), ack: Some(subscribe.0) }]);
    h.effects();
    // The old socket's late frames and close are not this connection's.
    h.session.handle(old, ServerFrame::Ack { ack: subscribe.0 }, h.now);
    h.session.handle(old, ServerFrame::Event { envelope: vec![1] }, h.now);
    h.session.closed(old, 1006, h.now);
    assert!(h.effects().is_empty());
    assert_eq!(h.session.state(), SessionState::Open);
    h.session.handle(transport, ServerFrame::Ack { ack: subscribe.0 }, h.now);
    let effects = h.effects();
    assert!(effects.contains(&Effect::Subscribed("jobs.>".into())));
    assert!(effects.contains(&Effect::Acked(subscribe)));
}

#[test]
fn giving_up_and_closing() {
    // give_up_after 0: the first failure before any welcome is final.
    let mut h = Harness::new(SessionConfig { give_up_after_ms: Some(0), ..config() });
    h.session.connect(h.now).unwrap();
    let transport = h.opened();
    h.session.closed(transport, 1006, h.now);
    assert!(h.effects().contains(&Effect::Stopped(Stop::Unavailable { close_code: 1006 })));
    assert_eq!(h.session.state(), SessionState::Closed);

    // Without reconnect, a loss after the welcome stops too.
    let mut h = Harness::new(SessionConfig { reconnect: false, ..config() });
    h.session.connect(h.now).unwrap();
    let transport = h.welcome();
    h.session.closed(transport, 1001, h.now);
    assert!(h.effects().contains(&Effect::Stopped(Stop::Lost { close_code: 1001 })));

    // close(): requests fail with CLOSED, subscriptions and plain queued publishes stay.
    let mut h = Harness::new(config());
    h.session.subscribe("a", false, h.now).unwrap();
    let request = h.session.publish(vec![1], Priority::NORMAL, true, h.now).unwrap().unwrap();
    h.session.publish(vec![2], Priority::NORMAL, false, h.now).unwrap();
    h.session.connect(h.now).unwrap();
    let transport = h.opened();
    h.session.close(h.now);
    assert_eq!(h.actions(), [Action::Close { transport, code: 1000, reason: "closed by the application" }]);
    let effects = h.effects();
    assert!(effects.contains(&Effect::Failed(request, Failure::Closed)));
    assert!(effects.contains(&Effect::Stopped(Stop::Application)));
    h.session.connect(h.now).unwrap();
    h.welcome();
    let frames = h.sent();
    assert!(matches!(&frames[0], ClientFrame::Subscribe { pattern, .. } if pattern == "a"));
    assert_eq!(frames[1..], [ClientFrame::Publish { envelope: vec![2], ack: None }]);
}

#[test]
fn a_token_refresh_goes_on_the_open_connection_and_into_later_hellos() {
    let mut h = Harness::new(config());
    assert_eq!(h.session.refresh_token("one".into(), h.now), Ok(None), "not open: for the hello");
    h.session.connect(h.now).unwrap();
    let transport = h.opened();
    h.session.connected(transport, h.now);
    assert_eq!(h.sent(), [ClientFrame::Hello { v: 1, token: Some("one".into()) }]);
    h.session.handle(transport, ServerFrame::Welcome { v: 1, session: 1 }, h.now);
    let id = h.session.refresh_token("two".into(), h.now).unwrap().unwrap();
    assert_eq!(h.sent(), [ClientFrame::Refresh { token: "two".into(), ack: Some(id.0) }]);
    h.effects();
    h.session.handle(transport, ServerFrame::Ack { ack: id.0 }, h.now);
    assert_eq!(h.effects(), [Effect::Acked(id)]);
    // A refused refresh is that request's failure; the connection stays.
    let refused = h.session.refresh_token("three".into(), h.now).unwrap().unwrap();
    assert_eq!(acks(&h.sent()), [refused.0]);
    h.session.handle(transport, ServerFrame::error("INVALID_TOKEN", "bad", Some(refused.0)), h.now);
    assert!(
        matches!(h.effects().as_slice(), [Effect::Failed(id, f)] if *id == refused && f.code() == "INVALID_TOKEN")
    );
    assert_eq!(h.session.state(), SessionState::Open);
    h.session.closed(transport, 4001, h.now);
    h.tick(h.session.poll_timeout().unwrap());
    let transport = h.opened();
    h.session.connected(transport, h.now);
    assert_eq!(h.sent(), [ClientFrame::Hello { v: 1, token: Some("three".into()) }]);
}

// ---- property test ----

#[derive(Debug, Clone)]
enum Op {
    Connect,
    Close,
    Subscribe(usize, bool),
    Unsubscribe(usize),
    Publish(u8, usize, bool),
    Connected(bool),
    Closed(bool, u16),
    Welcome,
    Event,
    /// Answers one of the acks sent so far (by index), or an unknown one.
    Ack(usize),
    Refuse(usize, usize),
    Pong(bool),
    Garbage(Vec<u8>),
    Tick(u64),
    Refresh,
}

const PATTERNS: [&str; 5] = ["a", "a.*", "b.>", "c.d", "bad..pattern"];
const CODES: [&str; 4] = ["FORBIDDEN", "TOKEN_EXPIRED", "DECODE_ERROR", "AUTH_REQUIRED"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Connect),
        1 => Just(Op::Close),
        1 => (0..PATTERNS.len(), any::<bool>()).prop_map(|(i, ack)| Op::Subscribe(i, ack)),
        1 => (0..PATTERNS.len()).prop_map(Op::Unsubscribe),
        1 => (0u8..10, 1usize..120, any::<bool>()).prop_map(|(p, size, ack)| Op::Publish(p, size, ack)),
        3 => any::<bool>().prop_map(Op::Connected),
        1 => (any::<bool>(), 1000u16..1012).prop_map(|(stale, code)| Op::Closed(stale, code)),
        3 => Just(Op::Welcome),
        1 => Just(Op::Event),
        3 => (0usize..64).prop_map(Op::Ack),
        1 => (0usize..64, 0..CODES.len()).prop_map(|(i, c)| Op::Refuse(i, c)),
        1 => any::<bool>().prop_map(Op::Pong),
        1 => proptest::collection::vec(any::<u8>(), 0..12).prop_map(Op::Garbage),
        4 => (0u64..3_000).prop_map(Op::Tick),
        1 => Just(Op::Refresh),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary sequences never panic, never exceed a bound, answer every request
    /// at most once, never drop priority ≥ 8 without telling the caller, never
    /// ask to be woken up in the past, and after each welcome resubscribe in
    /// order before flushing the offline queue most urgent first.
    #[test]
    fn arbitrary_event_sequences_keep_every_bound(seed: u64, ops in proptest::collection::vec(op(), 0..120)) {
        let config = SessionConfig {
            min_backoff_ms: 10,
            max_backoff_ms: 400,
            connect_timeout_ms: 1_000,
            ping_interval_ms: 300,
            request_timeout_ms: 700,
            max_requests: 6,
            max_subscriptions: 3,
            offline_max_items: 5,
            offline_max_bytes: 200,
            seed,
            ..SessionConfig::default()
        };
        let mut session = Session::new(config.clone());
        let mut now = 0u64;
        let mut current: Option<TransportId> = None;
        let mut stale: Option<TransportId> = None;
        let mut wire_acks: Vec<u64> = Vec::new();
        let mut nonce: Option<u64> = None;
        let mut issued: BTreeSet<RequestId> = BTreeSet::new();
        let mut outcomes: BTreeMap<RequestId, usize> = BTreeMap::new();
        let mut critical_refused = 0u64;
        for op in ops {
            let welcomed_from_hello = matches!(op, Op::Welcome) && session.state() != SessionState::Open;
            let subscriptions: Vec<String> = session.subscriptions().into_iter().map(String::from).collect();
            let mut sent = Vec::new();
            match op {
                Op::Connect => { let _ = session.connect(now); }
                Op::Close => session.close(now),
                Op::Subscribe(i, ack) => {
                    if let Ok(Some(id)) = session.subscribe(PATTERNS[i], ack, now) {
                        prop_assert!(issued.insert(id), "fresh request ids");
                    }
                }
                Op::Unsubscribe(i) => { session.unsubscribe(PATTERNS[i]); }
                Op::Publish(p, size, ack) => {
                    let priority = Priority::new(p).unwrap();
                    match session.publish(vec![p; size], priority, ack, now) {
                        Ok(Some(id)) => prop_assert!(issued.insert(id), "fresh request ids"),
                        Ok(None) => {}
                        Err(SessionError::QueueFull { .. }) if priority.is_critical() => critical_refused += 1,
                        Err(_) => {}
                    }
                }
                Op::Connected(old) => {
                    if let Some(t) = if old { stale } else { current } { session.connected(t, now); }
                }
                Op::Closed(old, code) => {
                    if let Some(t) = if old { stale } else { current } { session.closed(t, code, now); }
                }
                Op::Welcome => {
                    if let Some(t) = current { session.handle(t, ServerFrame::Welcome { v: 1, session: 1 }, now); }
                }
                Op::Event => {
                    if let Some(t) = current {
                        session.receive(t, &ServerFrame::Event { envelope: vec![1] }.encode(), now);
                    }
                }
                Op::Ack(i) => {
                    let ack = wire_acks.get(i).copied().unwrap_or(i as u64 * 1_000);
                    if let Some(t) = current { session.handle(t, ServerFrame::Ack { ack }, now); }
                }
                Op::Refuse(i, c) => {
                    let ack = wire_acks.get(i).copied();
                    if let Some(t) = current { session.handle(t, ServerFrame::error(CODES[c], "no", ack), now); }
                }
                Op::Pong(right) => {
                    let n = if right { nonce.unwrap_or(0) } else { u64::MAX };
                    if let Some(t) = current { session.handle(t, ServerFrame::Pong { nonce: n }, now); }
                }
                Op::Garbage(bytes) => { if let Some(t) = current { session.receive(t, &bytes, now); } }
                Op::Refresh => {
                    if let Ok(Some(id)) = session.refresh_token("t".into(), now) {
                        prop_assert!(issued.insert(id), "fresh request ids");
                    }
                }
                Op::Tick(dt) => { now += dt; session.tick(now); }
            }
            while let Some(action) = session.poll_action() {
                match action {
                    Action::Open { transport } => {
                        prop_assert!(current.is_none_or(|c| transport > c), "new transports are new");
                        stale = current;
                        current = Some(transport);
                    }
                    Action::Send { transport, frame } => {
                        prop_assert_eq!(Some(transport), current, "frames go to the current transport");
                        sent.extend(ClientFrame::decode(&frame).ok());
                        match ClientFrame::decode(&frame) {
                            Ok(ClientFrame::Subscribe { ack: Some(ack), .. })
                            | Ok(ClientFrame::Publish { ack: Some(ack), .. })
                            | Ok(ClientFrame::Refresh { ack: Some(ack), .. }) => wire_acks.push(ack),
                            Ok(ClientFrame::Ping { nonce: n }) => nonce = Some(n),
                            Ok(_) => {}
                            Err(e) => prop_assert!(false, "undecodable frame sent: {e}"),
                        }
                    }
                    Action::Close { transport, .. } => {
                        prop_assert_eq!(Some(transport), current);
                    }
                }
            }
            if welcomed_from_hello && session.state() == SessionState::Open {
                // After a welcome: every subscription in the order made, then the
                // offline queue most urgent first (an envelope here is its priority, repeated).
                let resubscribed: Vec<&str> = sent.iter().filter_map(|f| match f {
                    ClientFrame::Subscribe { pattern, .. } => Some(pattern.as_str()),
                    _ => None,
                }).collect();
                prop_assert_eq!(&resubscribed, &subscriptions);
                let leading = sent.iter().take_while(|f| matches!(f, ClientFrame::Subscribe { .. })).count();
                prop_assert_eq!(leading, resubscribed.len(), "the resubscribes go first");
                let flushed: Vec<u8> = sent[resubscribed.len()..].iter().map(|f| match f {
                    ClientFrame::Publish { envelope, .. } => envelope[0],
                    other => panic!("only publishes after the resubscribes: {other:?}"),
                }).collect();
                prop_assert!(flushed.windows(2).all(|w| w[0] >= w[1]), "most urgent first: {:?}", flushed);
            }
            while let Some(effect) = session.poll_effect() {
                match effect {
                    Effect::Acked(id) | Effect::Failed(id, _) => {
                        prop_assert!(issued.contains(&id), "an outcome for a request that was made");
                        let n = outcomes.entry(id).or_default();
                        *n += 1;
                        prop_assert_eq!(*n, 1, "one outcome per request");
                    }
                    Effect::ReconnectIn { delay_ms, .. } => {
                        prop_assert!((5..=400).contains(&delay_ms), "delay {}", delay_ms);
                    }
                    _ => {}
                }
            }
            prop_assert!(session.queued() <= 5);
            prop_assert!(session.queued_bytes() <= 200);
            prop_assert!(session.pending_requests() <= 6);
            prop_assert!(session.subscriptions().len() <= 3);
            let stats = session.stats();
            prop_assert_eq!(stats.dropped[8] + stats.dropped[9], critical_refused, "priority ≥ 8 is never evicted");
            if let Some(at) = session.poll_timeout() {
                prop_assert!(at > now, "timer {} not after now {}", at, now);
            }
            prop_assert_eq!(
                issued.len() - outcomes.len(),
                session.pending_requests(),
                "every request is pending or answered"
            );
        }
    }
}
