//! The JS `Messenger`: connects a `Bus` to a swarmbus bridge over a WebSocket.
//!
//! Local publishes on the `forward` patterns are sent to the bridge; events the
//! bridge delivers for the `subscribe` patterns are queued into the local bus
//! (and dispatched, unless `autoDrain` is off).
//!
//! The protocol (hello, resubscribing in order after a reconnect, backoff with
//! jitter, keepalive pings, the offline queue bounded in items and bytes,
//! request deadlines) is [`swarmbus_core::session::Session`]; this module is
//! its browser/Node shell, like `swarmbus_bridge::client` is its tokio shell.
//! It owns one session, the sockets by [`TransportId`] and one timer. After
//! every input ([`drive`]) it takes one action or effect at a time while the
//! state is borrowed and carries it out after the borrow is released: no
//! `RefCell` borrow is held across a call into JS, so a handler or callback
//! may call back into the messenger or the bus.
//!
//! What stays here: the forward router, the memory of our own envelope ids
//! (an event of ours coming back is dropped as an echo), the per-task batch of
//! forwarded publishes (sent most urgent first at the next microtask), the
//! promises of `connect`, `subscribe`, `refreshToken` and `flush`, and the
//! JS callbacks. `flush` is the shell's own: a `ping` with a nonce from a range
//! the session never uses, sent after what it waits for; its `pong` is
//! answered here and not handed to the session.

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::rc::{Rc, Weak};

use gloo_timers::callback::Timeout;
use js_sys::{Function, Promise, Uint8Array};
use serde::Deserialize;
use swarmbus_core::bus::PublishOptions;
use swarmbus_core::protocol::{ClientFrame, ServerFrame};
use swarmbus_core::session::{
    Action, Effect, Failure, RequestId, SessionError, SessionState, Stop, TransportId,
};
use swarmbus_core::{envelope, Envelope, Priority, Router, Session, SessionConfig, SubscriptionId};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

use crate::bus::{Bus, BusShared, Outbound};
use crate::convert::options_or_default;
use crate::error::{Error, Result};

/// Envelope ids remembered to recognise our own events coming back.
const ECHO_MEMORY: usize = 4096;

/// `flush` pings use nonces from here up; the session's keepalive counts from 0.
const FLUSH_NONCE_BASE: u64 = 1 << 62;

/// The longest delay `setTimeout` takes.
const MAX_TIMER_MS: u64 = i32::MAX as u64;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct MessengerOptions {
    forward: Vec<String>,
    subscribe: Vec<String>,
    offline_capacity: Option<usize>,
    offline_bytes: Option<usize>,
    backoff_ms: Option<u32>,
    max_backoff_ms: Option<u32>,
    connect_timeout_ms: Option<f64>,
    ping_interval_ms: Option<u32>,
    request_timeout_ms: Option<u32>,
    auto_drain: Option<bool>,
    #[serde(rename = "WebSocket", with = "serde_wasm_bindgen::preserve")]
    web_socket: JsValue,
    #[serde(with = "serde_wasm_bindgen::preserve")]
    on_error: JsValue,
    #[serde(with = "serde_wasm_bindgen::preserve")]
    on_state: JsValue,
}

impl MessengerOptions {
    /// The session's settings; `seed` seeds the backoff jitter.
    fn session_config(&self, seed: u64) -> SessionConfig {
        let defaults = SessionConfig::default();
        let give_up = match self.connect_timeout_ms {
            Some(ms) if ms.is_finite() && ms >= 0.0 => ms as u64,
            _ => 10_000,
        };
        SessionConfig {
            token: None,
            reconnect: true,
            min_backoff_ms: self.backoff_ms.map_or(defaults.min_backoff_ms, u64::from),
            max_backoff_ms: self.max_backoff_ms.map_or(defaults.max_backoff_ms, u64::from),
            // One attempt never outlasts the whole connect timeout.
            connect_timeout_ms: give_up.clamp(1, defaults.connect_timeout_ms),
            give_up_after_ms: Some(give_up),
            ping_interval_ms: self.ping_interval_ms.map_or(defaults.ping_interval_ms, u64::from),
            request_timeout_ms: self.request_timeout_ms.map_or(defaults.request_timeout_ms, u64::from),
            offline_max_items: self.offline_capacity.unwrap_or(defaults.offline_max_items).max(1),
            offline_max_bytes: self.offline_bytes.unwrap_or(defaults.offline_max_bytes).max(1),
            seed,
            ..defaults
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ConnectOptions {
    token: Option<String>,
}

/// A live socket and the callbacks it holds.
struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
    _on_error: Closure<dyn FnMut(JsValue)>,
}

impl Socket {
    fn detach(&self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        // Keep a listener: Node's `ws` throws an 'error' event nobody hears.
    }
}

/// The messenger's own counters (the protocol's are the session's).
#[derive(Default, Clone, Copy)]
struct Stats {
    received: u64,
    echoes: u64,
    errors: u64,
}

/// A promise's resolve and reject functions.
type Waiter = (Function, Function);

struct State {
    bus: Rc<BusShared>,
    session: Session,
    url: String,
    /// The socket of each transport the session asked for and has not given up.
    sockets: VecMap<TransportId, Socket>,
    /// The transport of the last `Action::Open`: the only one the session talks to.
    current: Option<TransportId>,
    /// Sockets whose callbacks may still be running; dropped later.
    retired: VecDeque<Socket>,
    timer: Option<Timeout>,
    /// The timer whose callback is running (dropping it there would free the running closure).
    fired_timer: Option<Timeout>,
    /// When `timer` fires, on the session's clock.
    armed_at: Option<u64>,
    /// The session's clock: `Date.now()`, never going back.
    clock: u64,
    forward: Router,
    /// The forwarded patterns (few) and their ids in `forward`.
    forward_ids: Vec<(String, SubscriptionId)>,
    /// Forwarded envelopes of this task, sent most urgent first at the next microtask.
    batch: [Vec<Vec<u8>>; Priority::LEVELS],
    batch_len: usize,
    batch_bytes: usize,
    batch_scheduled: bool,
    /// This state, for the microtask.
    me: Weak<RefCell<State>>,
    sent_ids: VecDeque<u64>,
    sent_set: HashSet<u64>,
    /// `connect` promises, resolved at the welcome.
    waiters: Vec<Waiter>,
    /// `{session, version}` of the last welcome.
    welcome: Option<(u64, u32)>,
    /// `subscribe` and `refreshToken` promises by the session's request.
    requests: VecMap<RequestId, Waiter>,
    /// `flush` promises: each resolves at the pong of the ping sent after what it waits for.
    flush_waiters: Vec<(u64, Function, Function)>,
    next_flush: u64,
    /// Frames of the shell (flush pings), written after the session's.
    extra: VecDeque<(TransportId, Vec<u8>)>,
    /// A `drive` is running: inputs made meanwhile are carried out by it.
    driving: bool,
    /// `close()` was called (until the next `connect`): local publishes are not forwarded.
    stopped: bool,
    stats: Stats,
    auto_drain: bool,
    web_socket: JsValue,
    on_error: Option<Function>,
    on_state: Option<Function>,
}

/// A few values by key in a `Vec` (each `BTreeMap` type costs kilobytes of wasm).
struct VecMap<K, V>(Vec<(K, V)>);

impl<K: PartialEq + Copy, V> VecMap<K, V> {
    fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => Some(std::mem::replace(&mut slot.1, value)),
            None => {
                self.0.push((key, value));
                None
            }
        }
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn remove(&mut self, key: &K) -> Option<V> {
        let index = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.swap_remove(index).1)
    }
}

/// One JS call decided while the state was borrowed, made after it is released.
enum Step {
    Open {
        transport: TransportId,
        ctor: JsValue,
        url: String,
    },
    Send {
        ws: WebSocket,
        frame: Vec<u8>,
    },
    Close {
        socket: Socket,
        code: u16,
        reason: &'static str,
    },
    /// `onState`, then the connect promises (resolved on open, rejected on stop).
    State {
        name: &'static str,
        on_state: Option<Function>,
        settle: Vec<(Function, JsValue)>,
    },
    Event {
        bytes: Vec<u8>,
    },
    /// Promises to settle and errors for `onError`.
    Calls {
        settle: Vec<(Function, JsValue)>,
        errors: Vec<JsValue>,
        on_error: Option<Function>,
    },
    Nothing,
}

/// Connects a `Bus` to a swarmbus bridge.
///
/// ```js
/// const messenger = new Messenger(bus, { forward: ['agents.>'], subscribe: ['swarm.>'] });
/// await messenger.connect('ws://127.0.0.1:8080/ws', { token });
/// bus.publish('agents.a1.status', { ok: true }); // also sent to the bridge
/// ```
#[wasm_bindgen]
pub struct Messenger {
    state: Rc<RefCell<State>>,
}

#[wasm_bindgen]
impl Messenger {
    /// `new Messenger(bus, {forward?, subscribe?, offlineCapacity = 1024, offlineBytes = 4 MiB,
    /// backoffMs = 100, maxBackoffMs = 10000, connectTimeoutMs = 10000, pingIntervalMs = 15000,
    /// requestTimeoutMs = 5000, autoDrain = true, WebSocket?, onError?, onState?})`.
    /// A ping unanswered for `pingIntervalMs` counts as a dead connection and
    /// reconnects (0 turns pings off).
    /// `forward`: patterns of local publishes sent to the bridge; `subscribe`: patterns
    /// of remote events delivered into `bus`. `WebSocket` is the constructor to use
    /// (default `globalThis.WebSocket`; pass the `ws` package's on Node 20).
    #[wasm_bindgen(constructor)]
    pub fn new(
        bus: &Bus,
        #[wasm_bindgen(unchecked_param_type = "MessengerOptions | undefined")] options: JsValue,
    ) -> Result<Messenger> {
        let mut options: MessengerOptions = options_or_default(options)?;
        if options.web_socket.is_undefined() || options.web_socket.is_null() {
            options.web_socket =
                js_sys::Reflect::get(&js_sys::global(), &"WebSocket".into()).unwrap_or(JsValue::UNDEFINED);
        }
        if !options.web_socket.is_function() {
            return Err(Error::invalid(
                "no WebSocket here: pass {WebSocket} (on Node 20: the `ws` package's WebSocket)",
            ));
        }
        let seed = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
        let mut session = Session::new(options.session_config(seed));
        for pattern in &options.subscribe {
            session.subscribe(pattern, false, 0).map_err(session_error)?;
        }
        let state = State {
            bus: bus.shared(),
            session,
            url: String::new(),
            sockets: VecMap(Vec::new()),
            current: None,
            retired: VecDeque::new(),
            timer: None,
            fired_timer: None,
            armed_at: None,
            clock: 0,
            forward: Router::new(),
            forward_ids: Vec::new(),
            batch: Default::default(),
            batch_len: 0,
            batch_bytes: 0,
            batch_scheduled: false,
            me: Weak::new(),
            sent_ids: VecDeque::new(),
            sent_set: HashSet::new(),
            waiters: Vec::new(),
            welcome: None,
            requests: VecMap(Vec::new()),
            flush_waiters: Vec::new(),
            next_flush: FLUSH_NONCE_BASE,
            extra: VecDeque::new(),
            driving: false,
            stopped: false,
            stats: Stats::default(),
            auto_drain: options.auto_drain.unwrap_or(true),
            web_socket: options.web_socket,
            on_error: options.on_error.dyn_into().ok(),
            on_state: options.on_state.dyn_into().ok(),
        };
        let state = Rc::new(RefCell::new(state));
        {
            let mut s = state.borrow_mut();
            s.me = Rc::downgrade(&state);
            for pattern in &options.forward {
                s.add_forward(pattern)?;
            }
        }
        bus.shared().attach(Rc::new(Forwarder(Rc::downgrade(&state))))?;
        Ok(Messenger { state })
    }

    /// Opens the connection to `url` (e.g. `ws://127.0.0.1:8080/ws`) with an
    /// optional `{token}` (without one, the last token given to `connect` or
    /// `refreshToken` is sent). Resolves with the session (`{session, version}`)
    /// once the bridge welcomes us; retries with
    /// backoff until `connectTimeoutMs`, then rejects with `UNAVAILABLE`. A
    /// refused token rejects at once (`AUTH_REQUIRED`, `TOKEN_EXPIRED`, `INVALID_TOKEN`).
    pub fn connect(
        &self,
        url: &str,
        #[wasm_bindgen(unchecked_param_type = "{ token?: string } | undefined")] options: JsValue,
    ) -> Result<Promise> {
        let options: ConnectOptions = options_or_default(options)?;
        let (promise, resolve, reject) = new_promise();
        let now = now_ms();
        {
            let mut s = self.state.borrow_mut();
            let state = s.session.state();
            if !matches!(state, SessionState::Idle | SessionState::Closed) {
                return Err(Error::new("INVALID_STATE", format_args!("already {}", state.name())));
            }
            let now = s.advance(now);
            s.url = url.to_owned();
            if options.token.is_some() {
                s.session.set_token(options.token);
            }
            s.session.connect(now).map_err(session_error)?;
            s.stopped = false;
            s.waiters.push((resolve, reject));
        }
        drive(&self.state);
        Ok(promise)
    }

    /// Receives remote events on topics matching `pattern` (kept across
    /// reconnects). The promise resolves when the bridge has acknowledged the
    /// subscription (at the next welcome when not connected) and rejects with
    /// the bridge's code (`FORBIDDEN`, `INVALID_PATTERN`, ...), which also
    /// reaches `onError`; a refused pattern is not sent again. `TIMEOUT` when
    /// no answer came within `requestTimeoutMs`, `CLOSED` when the messenger
    /// closes first. (Unawaited, a refusal is not an unhandled rejection: the
    /// package marks the promise handled.)
    pub fn subscribe(&self, pattern: &str) -> Result<Promise> {
        swarmbus_core::topic::validate_pattern(pattern).map_err(Error::pattern)?;
        if self.state.borrow().session.state() == SessionState::Closed {
            return Ok(closed_promise());
        }
        let (promise, resolve, reject) = new_promise();
        let now = now_ms();
        {
            let mut s = self.state.borrow_mut();
            let now = s.advance(now);
            match s.session.subscribe(pattern, true, now).map_err(session_error)? {
                Some(id) => drop(s.requests.insert(id, (resolve, reject))),
                None => return Ok(Promise::resolve(&JsValue::UNDEFINED)),
            }
        }
        drive(&self.state);
        Ok(promise)
    }

    /// Replaces the token: for every later hello and, when connected, on the
    /// current connection too (before the bridge closes it at the old token's
    /// expiry). Resolves when the bridge accepted it (at once when not
    /// connected), rejects with the bridge's code (`INVALID_TOKEN`, ...),
    /// `TIMEOUT`, `DISCONNECTED` or `CLOSED`.
    #[wasm_bindgen(js_name = refreshToken)]
    pub fn refresh_token(&self, token: String) -> Result<Promise> {
        let (promise, resolve, reject) = new_promise();
        let now = now_ms();
        {
            let mut s = self.state.borrow_mut();
            let now = s.advance(now);
            match s.session.refresh_token(token, now).map_err(session_error)? {
                Some(id) => drop(s.requests.insert(id, (resolve, reject))),
                None => return Ok(Promise::resolve(&JsValue::UNDEFINED)),
            }
        }
        drive(&self.state);
        Ok(promise)
    }

    /// Resolves when everything forwarded so far has reached the bridge (the
    /// bridge answered a ping sent after it; frames are handled in order).
    /// While disconnected it waits for the next connection; rejects with
    /// `CLOSED` when the messenger closes first.
    pub fn flush(&self) -> Promise {
        if self.state.borrow().session.state() == SessionState::Closed {
            return closed_promise();
        }
        let (promise, resolve, reject) = new_promise();
        let now = now_ms();
        {
            let mut s = self.state.borrow_mut();
            let now = s.advance(now);
            let errors = s.flush_batch(now);
            let nonce = s.next_flush;
            s.next_flush += 1;
            s.flush_waiters.push((nonce, resolve, reject));
            s.ping_for_flush(nonce);
            drop(s);
            report_errors(&self.state, errors);
        }
        drive(&self.state);
        promise
    }

    /// Stops receiving remote events for `pattern`; `false` if not subscribed.
    pub fn unsubscribe(&self, pattern: &str) -> bool {
        let had = self.state.borrow_mut().session.unsubscribe(pattern);
        drive(&self.state);
        had
    }

    /// Also sends local publishes on topics matching `pattern` to the bridge.
    pub fn forward(&self, pattern: &str) -> Result<()> {
        self.state.borrow_mut().add_forward(pattern)
    }

    /// Stops forwarding `pattern`; `false` if it was not forwarded.
    #[wasm_bindgen(js_name = stopForwarding)]
    pub fn stop_forwarding(&self, pattern: &str) -> bool {
        let mut s = self.state.borrow_mut();
        match s.forward_ids.iter().position(|(p, _)| p == pattern) {
            Some(at) => {
                let (_, id) = s.forward_ids.remove(at);
                s.forward.unsubscribe(id)
            }
            None => false,
        }
    }

    /// Reports counters this client measured to the bridge, cumulative for the
    /// connection: events handled on the wasm path and on a plain-JS path. The
    /// bridge exports them as `swarmbus_client_events_total{kind, path}`.
    /// `kind` is 1–32 of `a-z 0-9 _ -`. Returns `false` when not connected.
    pub fn report(&self, kind: &str, wasm: f64, js: f64) -> bool {
        let count = |n: f64| if n.is_finite() && n > 0.0 { n as u64 } else { 0 };
        let sent = self.state.borrow_mut().session.report(kind, count(wasm), count(js));
        drive(&self.state);
        sent
    }

    /// Closes the connection for good (no reconnect); queued offline events stay
    /// queued. Local publishes are no longer forwarded (until the next `connect`);
    /// the bus still delivers them locally.
    pub fn close(&self) {
        self.state.borrow_mut().stopped = true;
        close(&self.state);
    }

    /// `'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'`.
    #[wasm_bindgen(
        getter,
        unchecked_return_type = "'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'"
    )]
    pub fn state(&self) -> String {
        self.state.borrow().session.state().name().to_owned()
    }

    /// Counters: `{sent, received, echoes, queued, dropped, droppedByPriority, reconnects, errors}`.
    #[wasm_bindgen(unchecked_return_type = "MessengerStats")]
    pub fn stats(&self) -> JsValue {
        let (session, queued, own) = {
            let s = self.state.borrow();
            (s.session.stats(), s.session.queued() + s.batch_len, s.stats)
        };
        let out = js_sys::Object::new();
        let set = |k: &str, v: f64| crate::codec::set(&out, k, &v.into());
        set("sent", session.published as f64);
        set("received", own.received as f64);
        set("echoes", own.echoes as f64);
        set("queued", queued as f64);
        set("dropped", session.dropped.iter().sum::<u64>() as f64);
        set("reconnects", session.reconnects as f64);
        set("errors", own.errors as f64);
        let by_priority: js_sys::Array = session.dropped.iter().map(|&n| JsValue::from(n as f64)).collect();
        crate::codec::set(&out, "droppedByPriority", &by_priority);
        out.into()
    }

    /// Sets (or clears) the callback hearing errors: refused frames, undecodable events.
    #[wasm_bindgen(js_name = onError)]
    pub fn on_error(&self, callback: Option<Function>) {
        self.state.borrow_mut().on_error = callback;
    }

    /// Sets (or clears) the callback hearing state changes (`'open'`, `'reconnecting'`, ...).
    #[wasm_bindgen(js_name = onState)]
    pub fn on_state(&self, callback: Option<Function>) {
        self.state.borrow_mut().on_state = callback;
    }
}

impl Drop for Messenger {
    fn drop(&mut self) {
        let bus = self.state.borrow().bus.clone();
        bus.detach();
        close(&self.state);
    }
}

/// Closes the session for good and carries it out.
fn close(shared: &Rc<RefCell<State>>) {
    let now = now_ms();
    {
        let mut s = shared.borrow_mut();
        let now = s.advance(now);
        s.session.close(now);
    }
    drive(shared);
}

impl State {
    /// Moves the session's clock to `now` (never back) and returns it.
    fn advance(&mut self, now: u64) -> u64 {
        self.clock = self.clock.max(now);
        self.clock
    }

    fn add_forward(&mut self, pattern: &str) -> Result<()> {
        if self.forward_ids.iter().any(|(p, _)| p == pattern) {
            return Ok(());
        }
        let id = self.forward.subscribe(pattern).map_err(Error::pattern)?;
        self.forward_ids.push((pattern.to_owned(), id));
        Ok(())
    }

    /// True when local publishes on `topic` go to the bridge.
    fn forwards(&mut self, topic: &str) -> bool {
        !self.stopped
            && !self.forward_ids.is_empty()
            && self.forward.route(topic).is_ok_and(|route| !route.is_empty())
    }

    /// Takes a forwarded envelope. While open it joins this task's batch
    /// (handed to the session at the next microtask, most urgent first, or at
    /// once when the batch is full: returns true then, the frames wait to be
    /// written); otherwise the session's offline queue takes it. A priority
    /// ≥ 8 publish the full offline queue refuses is an error (`QUEUE_FULL`);
    /// a lower one is dropped and counted.
    fn forward_envelope(&mut self, bytes: Vec<u8>, id: u64, priority: Priority, now: u64) -> Result<bool> {
        if self.session.state() == SessionState::Open {
            self.remember(id);
            self.batch_bytes += bytes.len();
            self.batch[priority.index()].push(bytes);
            self.batch_len += 1;
            let config = self.session.config();
            if self.batch_len >= config.offline_max_items || self.batch_bytes >= config.offline_max_bytes {
                // Published while open: nothing can be refused.
                let _ = self.flush_batch(now);
                return Ok(true);
            }
            return Ok(false);
        }
        match self.session.publish(bytes, priority, false, now) {
            Ok(_) => {
                self.remember(id);
                Ok(false)
            }
            Err(SessionError::QueueFull { .. }) if !priority.is_critical() => Ok(false),
            Err(e) => Err(Error::new(
                e.code(),
                format_args!("{e}; the messenger is offline and this event was not published"),
            )),
        }
    }

    /// Hands this task's batch to the session, most urgent first, FIFO within a
    /// priority; returns the errors of priority ≥ 8 publishes the offline
    /// queue refused (the connection dropped since they were batched).
    fn flush_batch(&mut self, now: u64) -> Vec<JsValue> {
        self.batch_len = 0;
        self.batch_bytes = 0;
        let mut errors = Vec::new();
        for level in (0..Priority::LEVELS).rev() {
            let priority = Priority::new(level as u8).unwrap_or(Priority::BULK);
            for bytes in std::mem::take(&mut self.batch[level]) {
                match self.session.publish(bytes, priority, false, now) {
                    Err(e) if priority.is_critical() => {
                        errors.push(
                            Error::new(e.code(), format_args!("{e}; a forwarded event was lost")).into(),
                        );
                    }
                    _ => {}
                }
            }
        }
        errors
    }

    /// Sends the ping a `flush` waits for, if open (else the next welcome does).
    fn ping_for_flush(&mut self, nonce: u64) {
        if let (SessionState::Open, Some(transport)) = (self.session.state(), self.current) {
            self.extra.push_back((transport, ClientFrame::Ping { nonce }.encode()));
        }
    }

    fn remember(&mut self, id: u64) {
        if self.sent_ids.len() >= ECHO_MEMORY {
            if let Some(old) = self.sent_ids.pop_front() {
                self.sent_set.remove(&old);
            }
        }
        self.sent_ids.push_back(id);
        self.sent_set.insert(id);
    }

    /// Keeps a socket given up (its callback may be running) until two more are.
    fn retire(&mut self, socket: Socket) {
        if self.retired.len() >= 2 {
            self.retired.pop_front();
        }
        self.retired.push_back(socket);
    }

    /// The next thing to do: the session's actions, then the shell's frames,
    /// then (with `effects`) the session's effects; `None` when there is nothing left.
    fn next_step(&mut self, effects: bool) -> Option<Step> {
        if let Some(action) = self.session.poll_action() {
            return Some(self.action(action));
        }
        if let Some((transport, frame)) = self.extra.pop_front() {
            return Some(match self.sockets.get(&transport) {
                Some(socket) if self.current == Some(transport) => {
                    Step::Send { ws: socket.ws.clone(), frame }
                }
                _ => Step::Nothing,
            });
        }
        let effect = if effects { self.session.poll_effect()? } else { return None };
        Some(self.effect(effect))
    }

    fn action(&mut self, action: Action) -> Step {
        match action {
            Action::Open { transport } => {
                self.current = Some(transport);
                Step::Open { transport, ctor: self.web_socket.clone(), url: self.url.clone() }
            }
            Action::Send { transport, frame } => match self.sockets.get(&transport) {
                Some(socket) if self.current == Some(transport) => {
                    Step::Send { ws: socket.ws.clone(), frame }
                }
                _ => Step::Nothing,
            },
            Action::Close { transport, code, reason } => {
                if self.current == Some(transport) {
                    self.current = None;
                }
                match self.sockets.remove(&transport) {
                    Some(socket) => Step::Close { socket, code, reason },
                    None => Step::Nothing,
                }
            }
        }
    }

    fn effect(&mut self, effect: Effect) -> Step {
        let on_error = self.on_error.clone();
        match effect {
            Effect::State(state) => {
                let mut settle = Vec::new();
                if state == SessionState::Open {
                    let (session, version) = self.welcome.unwrap_or_default();
                    let info = js_sys::Object::new();
                    crate::codec::set(&info, "session", &crate::convert::u64_to_js(session));
                    crate::codec::set(&info, "version", &version.into());
                    let info = JsValue::from(info);
                    settle.extend(self.waiters.drain(..).map(|(resolve, _)| (resolve, info.clone())));
                    // Pings sent on an earlier connection are lost: ask again for every waiting flush.
                    let nonces: Vec<u64> = self.flush_waiters.iter().map(|(nonce, _, _)| *nonce).collect();
                    for nonce in nonces {
                        self.ping_for_flush(nonce);
                    }
                }
                Step::State { name: state.name(), on_state: self.on_state.clone(), settle }
            }
            Effect::Event(bytes) => Step::Event { bytes },
            Effect::Acked(id) => match self.requests.remove(&id) {
                Some((resolve, _)) => {
                    Step::Calls { settle: vec![(resolve, JsValue::UNDEFINED)], errors: Vec::new(), on_error }
                }
                None => Step::Nothing,
            },
            Effect::Failed(id, failure) => match self.requests.remove(&id) {
                Some((_, reject)) => {
                    let error = match &failure {
                        Failure::Refused { code, message } => js_error(code, message),
                        other => js_error(other.code(), &other.to_string()),
                    };
                    Step::Calls { settle: vec![(reject, error)], errors: Vec::new(), on_error }
                }
                None => Step::Nothing,
            },
            Effect::SubscriptionRefused { pattern, code, message } => {
                self.stats.errors += 1;
                let error = js_error(&code, &format!("{message} (subscription {pattern})"));
                Step::Calls { settle: Vec::new(), errors: vec![error], on_error }
            }
            Effect::Error { code, message } => {
                self.stats.errors += 1;
                Step::Calls { settle: Vec::new(), errors: vec![js_error(&code, &message)], on_error }
            }
            Effect::Stopped(stop) => {
                let error = match &stop {
                    Stop::Application => js_error(
                        "CLOSED",
                        "the messenger was closed before connecting: closed by the application",
                    ),
                    Stop::Refused { code, message } => js_error(code, message),
                    Stop::Unavailable { close_code } | Stop::Lost { close_code } => js_error(
                        "UNAVAILABLE",
                        &format!("could not connect to {} (last close code {close_code})", self.url),
                    ),
                };
                let mut settle: Vec<(Function, JsValue)> =
                    self.waiters.drain(..).map(|(_, reject)| (reject, error.clone())).collect();
                let closed = Error::new("CLOSED", "the messenger was closed");
                settle.extend(
                    self.flush_waiters.drain(..).map(|(_, _, reject)| (reject, closed.clone().into())),
                );
                let mut errors = Vec::new();
                if matches!(stop, Stop::Refused { .. }) {
                    self.stats.errors += 1;
                    errors.push(error);
                }
                Step::Calls { settle, errors, on_error }
            }
            Effect::Subscribed(_) | Effect::Disconnected { .. } | Effect::ReconnectIn { .. } => Step::Nothing,
        }
    }
}

/// Carries out what the session decided after an input: one action or effect
/// at a time, decided while the state is borrowed and run after it is
/// released; then re-arms the timer. An input made while a drive runs (from a
/// callback or handler) is carried out by that drive.
fn drive(shared: &Rc<RefCell<State>>) {
    if run_steps(shared, true) {
        rearm(shared);
    }
}

/// Writes the frames the session decided (no effects: called from inside a
/// bus publish); a microtask runs a whole [`drive`] later.
fn drive_actions(shared: &Rc<RefCell<State>>) {
    if run_steps(shared, false) {
        schedule(shared);
    }
}

/// Runs steps (with the effects or not) until none is left; false when a
/// drive was running already (it runs them).
fn run_steps(shared: &Rc<RefCell<State>>, effects: bool) -> bool {
    if !start_driving(shared) {
        return false;
    }
    loop {
        let step = {
            let mut s = shared.borrow_mut();
            match s.next_step(effects) {
                Some(step) => step,
                None => {
                    s.driving = false;
                    break;
                }
            }
        };
        run(shared, step);
    }
    true
}

/// Sets the driving flag; false when a drive is already running.
fn start_driving(shared: &Rc<RefCell<State>>) -> bool {
    let Ok(mut s) = shared.try_borrow_mut() else { return false };
    if s.driving {
        return false;
    }
    s.driving = true;
    true
}

/// Runs one step, outside any borrow of the state.
fn run(shared: &Rc<RefCell<State>>, step: Step) {
    match step {
        Step::Open { transport, ctor, url } => open_socket(shared, transport, &ctor, &url),
        Step::Send { ws, frame } => {
            // A socket that is closing drops sends; its close event reaches the session.
            let _ = ws.send_with_u8_array(&frame);
        }
        Step::Close { socket, code, reason } => {
            socket.detach();
            let _ = socket.ws.close_with_code_and_reason(code, reason);
            shared.borrow_mut().retire(socket);
        }
        Step::State { name, on_state, settle } => {
            if let Some(f) = on_state {
                let _ = f.call1(&JsValue::UNDEFINED, &name.into());
            }
            settle_all(settle);
        }
        Step::Event { bytes } => deliver(shared, &bytes),
        Step::Calls { settle, errors, on_error } => {
            settle_all(settle);
            if let Some(f) = on_error {
                for error in errors {
                    let _ = f.call1(&JsValue::UNDEFINED, &error);
                }
            }
        }
        Step::Nothing => {}
    }
}

fn settle_all(settle: Vec<(Function, JsValue)>) {
    for (f, value) in settle {
        let _ = f.call1(&JsValue::UNDEFINED, &value);
    }
}

/// Counts `errors` and hands them to `onError`.
fn report_errors(shared: &Rc<RefCell<State>>, errors: Vec<JsValue>) {
    if errors.is_empty() {
        return;
    }
    let on_error = {
        let mut s = shared.borrow_mut();
        s.stats.errors += errors.len() as u64;
        s.on_error.clone()
    };
    run(shared, Step::Calls { settle: Vec::new(), errors, on_error });
}

/// Delivers a remote event into the bus, unless it is our own coming back.
fn deliver(shared: &Rc<RefCell<State>>, bytes: &[u8]) {
    let env = match envelope::decode_ref(bytes, &envelope::Limits::default()) {
        Ok(env) => env,
        Err(e) => return report_errors(shared, vec![Error::from(e).into()]),
    };
    let (bus, auto_drain) = {
        let mut s = shared.borrow_mut();
        if s.bus.is_freed() {
            return; // nobody can see this bus any more
        }
        if s.sent_set.contains(&env.id) {
            s.stats.echoes += 1;
            return;
        }
        (s.bus.clone(), s.auto_drain)
    };
    // MessagePack payloads arrive decoded; anything else as its bytes.
    let payload = crate::codec::decode(env.payload).unwrap_or_else(|_| Uint8Array::from(env.payload).into());
    let options = PublishOptions { priority: env.priority, ttl_ms: env.ttl_ms };
    match bus.publish_remote(env.topic, payload, options, env.id) {
        Ok(_) => {
            shared.borrow_mut().stats.received += 1;
            if auto_drain {
                bus.drain_if_idle();
            }
        }
        Err(e) => report_errors(shared, vec![e.into()]),
    }
}

/// Arms the one timer at the session's next deadline (unless it already is).
fn rearm(shared: &Rc<RefCell<State>>) {
    let now = now_ms();
    let (delay, old) = {
        let mut s = shared.borrow_mut();
        let now = s.advance(now);
        let at = s.session.poll_timeout();
        if at == s.armed_at && (at.is_none() || s.timer.is_some()) {
            return;
        }
        s.armed_at = at;
        (at.map(|at| at.saturating_sub(now).min(MAX_TIMER_MS)), s.timer.take())
    };
    drop(old);
    let Some(delay) = delay else { return };
    let weak = Rc::downgrade(shared);
    let timer = Timeout::new(delay as u32, move || {
        let Some(shared) = weak.upgrade() else { return };
        let now = now_ms();
        {
            let mut s = shared.borrow_mut();
            // This timer's callback is running: keep it alive until the next one fires.
            s.fired_timer = s.timer.take();
            s.armed_at = None;
            let now = s.advance(now);
            s.session.tick(now);
        }
        drive(&shared);
    });
    shared.borrow_mut().timer = Some(timer);
}

/// Runs a whole [`drive`] at the next microtask, after flushing the batch.
fn schedule(shared: &Rc<RefCell<State>>) {
    let me = {
        let mut s = shared.borrow_mut();
        if s.batch_scheduled {
            return;
        }
        s.batch_scheduled = true;
        s.me.clone()
    };
    wasm_bindgen_futures::spawn_local(async move {
        let Some(state) = me.upgrade() else { return };
        let now = now_ms();
        let errors = {
            let Ok(mut s) = state.try_borrow_mut() else { return };
            s.batch_scheduled = false;
            let now = s.advance(now);
            s.flush_batch(now)
        };
        report_errors(&state, errors);
        drive(&state);
    });
}

/// The bus side of the link: local publishes on forwarded patterns.
struct Forwarder(Weak<RefCell<State>>);

impl Forwarder {
    /// Hands a forwarded envelope to the messenger; `None` when it does not forward `topic`.
    fn forward(
        &self,
        topic: &str,
        envelope: impl FnOnce() -> Result<(Vec<u8>, u64, Priority)>,
    ) -> Result<()> {
        let Some(state) = self.0.upgrade() else { return Ok(()) };
        let busy = || Error::new("REENTRANT", "the Messenger is busy; publish again later");
        if !state.try_borrow_mut().map_err(|_| busy())?.forwards(topic) {
            return Ok(());
        }
        // Encoding reads the payload (getters may run): outside any borrow.
        let (bytes, id, priority) = envelope()?;
        let now = now_ms();
        let written = {
            let mut s = state.try_borrow_mut().map_err(|_| busy())?;
            let now = s.advance(now);
            s.forward_envelope(bytes, id, priority, now)?
        };
        if written {
            drive_actions(&state);
        } else {
            schedule(&state);
        }
        Ok(())
    }
}

impl Outbound for Forwarder {
    fn local_publish(&self, topic: &str, payload: &JsValue, options: PublishOptions, id: u64) -> Result<()> {
        self.forward(topic, || {
            let mut env = Envelope::new(
                id,
                topic,
                options.priority,
                js_sys::Date::now() as u64,
                crate::codec::encode(payload.clone())?,
            );
            env.ttl_ms = options.ttl_ms;
            Ok((env.encode()?, id, options.priority))
        })
    }

    fn local_envelope(&self, bytes: &[u8]) -> Result<()> {
        let header = envelope::peek_header(bytes)?;
        self.forward(header.topic, || Ok((bytes.to_vec(), header.id, header.priority)))
    }
}

#[wasm_bindgen(module = "/src/helpers.js")]
extern "C" {
    /// `new ctor(url)` with `binaryType = 'arraybuffer'`, or the `Error` it threw.
    fn open_web_socket(ctor: &JsValue, url: &str) -> JsValue;
}

/// Opens the socket of `transport` and wires its callbacks; a constructor that
/// throws (a malformed URL will not get better) closes the session and
/// rejects `connect` with `INVALID_ARGUMENT`.
fn open_socket(shared: &Rc<RefCell<State>>, transport: TransportId, ctor: &JsValue, url: &str) {
    let opened = open_web_socket(ctor, url);
    match opened.dyn_into::<js_sys::Error>() {
        Ok(error) => {
            let message = format!("cannot open a WebSocket to {url}: {}", String::from(error.message()));
            let now = now_ms();
            let waiters = {
                let mut s = shared.borrow_mut();
                let now = s.advance(now);
                s.session.close(now);
                std::mem::take(&mut s.waiters)
            };
            let error: JsValue = Error::invalid(&message).into();
            settle_all(waiters.into_iter().map(|(_, reject)| (reject, error.clone())).collect());
        }
        Err(ws) => {
            let socket = wire(shared, transport, ws.unchecked_into());
            let mut s = shared.borrow_mut();
            if let Some(old) = s.sockets.insert(transport, socket) {
                s.retire(old);
            }
        }
    }
}

/// Hooks the socket's callbacks up to the session, tagged with its transport.
fn wire(shared: &Rc<RefCell<State>>, transport: TransportId, ws: WebSocket) -> Socket {
    let weak = Rc::downgrade(shared);
    let on_open = Closure::<dyn FnMut()>::new({
        let weak = weak.clone();
        move || {
            let Some(shared) = weak.upgrade() else { return };
            let now = now_ms();
            {
                let mut s = shared.borrow_mut();
                let now = s.advance(now);
                s.session.connected(transport, now);
            }
            drive(&shared);
        }
    });
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new({
        let weak = weak.clone();
        move |event: MessageEvent| {
            let Some(shared) = weak.upgrade() else { return };
            let bytes = Uint8Array::new(&event.data()).to_vec();
            receive(&shared, transport, &bytes);
        }
    });
    let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
        let Some(shared) = weak.upgrade() else { return };
        let code = event.code();
        let now = now_ms();
        let gone = {
            let mut s = shared.borrow_mut();
            let now = s.advance(now);
            s.session.closed(transport, code, now);
            s.sockets.remove(&transport)
        };
        if let Some(socket) = gone {
            socket.detach();
            shared.borrow_mut().retire(socket);
        }
        drive(&shared);
    });
    // The close event that follows an error drives reconnection; a listener must
    // exist anyway (Node's `ws` turns an unheard 'error' into an uncaught exception).
    let on_error = Closure::<dyn FnMut(JsValue)>::new(|_: JsValue| {});
    ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    Socket { ws, _on_open: on_open, _on_message: on_message, _on_close: on_close, _on_error: on_error }
}

/// A frame from `transport`: a `flush` pong is answered here, the rest goes to the session.
fn receive(shared: &Rc<RefCell<State>>, transport: TransportId, bytes: &[u8]) {
    let now = now_ms();
    let done = {
        let mut s = shared.borrow_mut();
        let now = s.advance(now);
        match ServerFrame::decode(bytes) {
            Ok(ServerFrame::Pong { nonce }) if nonce >= FLUSH_NONCE_BASE => {
                if s.current != Some(transport) {
                    return;
                }
                let (done, waiting): (Vec<_>, Vec<_>) =
                    std::mem::take(&mut s.flush_waiters).into_iter().partition(|(n, _, _)| *n <= nonce);
                s.flush_waiters = waiting;
                done
            }
            Ok(frame) => {
                if let ServerFrame::Welcome { v, session } = frame {
                    if s.current == Some(transport) {
                        s.welcome = Some((session, v));
                    }
                }
                s.session.handle(transport, frame, now);
                Vec::new()
            }
            Err(_) => {
                s.session.receive(transport, bytes, now);
                Vec::new()
            }
        }
    };
    settle_all(done.into_iter().map(|(_, resolve, _)| (resolve, JsValue::UNDEFINED)).collect());
    drive(shared);
}

/// Milliseconds since the epoch (the state's `advance` keeps it from going back).
fn now_ms() -> u64 {
    let now = js_sys::Date::now();
    if now.is_finite() && now > 0.0 {
        now as u64
    } else {
        0
    }
}

/// A refusal of the session as a typed error.
fn session_error(e: SessionError) -> Error {
    Error::new(e.code(), e)
}

/// A promise rejected with `CLOSED`.
fn closed_promise() -> Promise {
    Promise::reject(&Error::new("CLOSED", "the messenger is closed").into())
}

/// A promise with its resolve and reject functions.
fn new_promise() -> (Promise, Function, Function) {
    let mut pair = None;
    let promise = Promise::new(&mut |resolve, reject| pair = Some((resolve, reject)));
    let (resolve, reject) = pair.expect_throw("the Promise executor runs at once");
    (promise, resolve, reject)
}

fn js_error(code: &str, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    let _ = js_sys::Reflect::set(&error, &"code".into(), &code.into());
    error.into()
}
