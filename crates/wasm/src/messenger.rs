//! The JS `Messenger`: connects a `Bus` to a swarmbus bridge over a WebSocket.
//!
//! Local publishes on the `forward` patterns are sent to the bridge; events the
//! bridge delivers for the `subscribe` patterns are queued into the local bus
//! (and dispatched, unless `autoDrain` is off). While the socket is down,
//! forwarded publishes wait in a bounded priority queue; the socket reconnects
//! with exponential backoff and jitter, then resubscribes and flushes.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::rc::{Rc, Weak};

use gloo_timers::callback::{Interval, Timeout};
use js_sys::{Function, Promise, Uint8Array};
use serde::Deserialize;
use swarmbus_core::bus::PublishOptions;
use swarmbus_core::protocol::{ClientFrame, ServerFrame, PROTOCOL_VERSION};
use swarmbus_core::queue::Pushed;
use swarmbus_core::{envelope, Envelope, Priority, PriorityQueue, Router, SubscriptionId};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

use crate::bus::{Bus, BusShared, Outbound};
use crate::convert::options_or_default;
use crate::error::{Error, Result};

/// Envelope ids remembered to recognise our own events coming back.
const ECHO_MEMORY: usize = 4096;

/// Hello refusals that no reconnect can fix.
const FATAL_CODES: [&str; 4] = ["AUTH_REQUIRED", "TOKEN_EXPIRED", "INVALID_TOKEN", "UNSUPPORTED_VERSION"];

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct MessengerOptions {
    forward: Vec<String>,
    subscribe: Vec<String>,
    offline_capacity: Option<usize>,
    backoff_ms: Option<u32>,
    max_backoff_ms: Option<u32>,
    connect_timeout_ms: Option<f64>,
    ping_interval_ms: Option<u32>,
    auto_drain: Option<bool>,
    #[serde(rename = "WebSocket", with = "serde_wasm_bindgen::preserve")]
    web_socket: JsValue,
    #[serde(with = "serde_wasm_bindgen::preserve")]
    on_error: JsValue,
    #[serde(with = "serde_wasm_bindgen::preserve")]
    on_state: JsValue,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ConnectOptions {
    token: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    Idle,
    Connecting,
    Open,
    Reconnecting,
    Closed,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Connecting => "connecting",
            Status::Open => "open",
            Status::Reconnecting => "reconnecting",
            Status::Closed => "closed",
        }
    }
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

#[derive(Default, Clone, Copy)]
struct Stats {
    sent: u64,
    received: u64,
    echoes: u64,
    dropped: [u64; Priority::LEVELS],
    reconnects: u64,
    errors: u64,
}

struct State {
    bus: Rc<BusShared>,
    url: String,
    token: Option<String>,
    status: Status,
    /// Gives up when the first connection is not up by then (ms since the epoch).
    first_deadline: Option<f64>,
    socket: Option<Socket>,
    /// Sockets and timers whose callbacks may still be running; dropped later.
    retired: Vec<Socket>,
    timer: Option<Timeout>,
    fired_timer: Option<Timeout>,
    /// Pings the bridge while connected; a ping unanswered by the next tick means a dead connection.
    pinger: Option<Interval>,
    /// A stopped pinger whose callback may be running; dropped at the next stop.
    stopped_pinger: Option<Interval>,
    ping_interval_ms: u32,
    /// The nonce of the ping not answered yet.
    awaiting_pong: Option<u64>,
    attempt: u32,
    remote: BTreeMap<String, ()>,
    forward: Router,
    forward_ids: BTreeMap<String, SubscriptionId>,
    /// Forwarded envelopes not sent yet (this microtask's, or everything while disconnected).
    queue: PriorityQueue<Vec<u8>>,
    flush_scheduled: bool,
    /// This state, for the flush microtask.
    me: Weak<RefCell<State>>,
    sent_ids: VecDeque<u64>,
    sent_set: HashSet<u64>,
    waiters: Vec<(Function, Function)>,
    /// `subscribe` promises waiting for the bridge's answer: (pattern, resolve, reject).
    sub_waiters: Vec<(String, Function, Function)>,
    /// (ack, pattern) of each subscribe frame sent on this connection and not answered yet.
    sub_acks: Vec<(u64, String)>,
    /// Patterns the bridge acknowledged on this connection.
    acked: Vec<String>,
    /// `flush` promises: each resolves at the pong of the ping sent after what it waits for.
    flush_waiters: Vec<(u64, Function, Function)>,
    /// `{session, version}` of the current connection.
    session: JsValue,
    stats: Stats,
    next_ack: u64,
    backoff_ms: u32,
    max_backoff_ms: u32,
    connect_timeout_ms: f64,
    auto_drain: bool,
    web_socket: JsValue,
    on_error: Option<Function>,
    on_state: Option<Function>,
}

/// JS calls decided while the state was borrowed, made after it is released
/// (a callback may call back into the messenger or the bus).
#[derive(Default)]
struct Effects {
    errors: Vec<JsValue>,
    state: Option<&'static str>,
    resolve: Vec<(Function, JsValue)>,
    reject: Vec<(Function, JsValue)>,
    drain: bool,
}

impl Effects {
    fn run(self, shared: &Rc<RefCell<State>>) {
        let (on_error, on_state, bus) = {
            let s = shared.borrow();
            (s.on_error.clone(), s.on_state.clone(), s.bus.clone())
        };
        if let (Some(state), Some(f)) = (self.state, &on_state) {
            let _ = f.call1(&JsValue::UNDEFINED, &state.into());
        }
        for (f, value) in self.resolve {
            let _ = f.call1(&JsValue::UNDEFINED, &value);
        }
        for (f, error) in self.reject {
            let _ = f.call1(&JsValue::UNDEFINED, &error);
        }
        if let Some(f) = &on_error {
            for error in self.errors {
                let _ = f.call1(&JsValue::UNDEFINED, &error);
            }
        }
        if self.drain {
            bus.drain_if_idle();
        }
    }
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
    /// `new Messenger(bus, {forward?, subscribe?, offlineCapacity = 1024, backoffMs = 100,
    /// maxBackoffMs = 10000, connectTimeoutMs = 10000, pingIntervalMs = 15000, autoDrain = true, WebSocket?,
    /// onError?, onState?})`. A ping unanswered for `pingIntervalMs` counts as a dead
    /// connection and reconnects (0 turns pings off).
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
        let capacity = options.offline_capacity.unwrap_or(1024).max(1);
        let state = State {
            bus: bus.shared(),
            url: String::new(),
            token: None,
            status: Status::Idle,
            first_deadline: None,
            socket: None,
            retired: Vec::new(),
            timer: None,
            fired_timer: None,
            pinger: None,
            stopped_pinger: None,
            ping_interval_ms: options.ping_interval_ms.unwrap_or(15_000),
            awaiting_pong: None,
            attempt: 0,
            remote: BTreeMap::new(),
            forward: Router::new(),
            forward_ids: BTreeMap::new(),
            queue: PriorityQueue::new(capacity),
            flush_scheduled: false,
            me: Weak::new(),
            sent_ids: VecDeque::new(),
            sent_set: HashSet::new(),
            waiters: Vec::new(),
            sub_waiters: Vec::new(),
            sub_acks: Vec::new(),
            acked: Vec::new(),
            flush_waiters: Vec::new(),
            session: JsValue::UNDEFINED,
            stats: Stats::default(),
            next_ack: 1,
            backoff_ms: options.backoff_ms.unwrap_or(100).max(1),
            max_backoff_ms: options.max_backoff_ms.unwrap_or(10_000).max(1),
            connect_timeout_ms: options.connect_timeout_ms.unwrap_or(10_000.0),
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
            for pattern in &options.subscribe {
                swarmbus_core::topic::validate_pattern(pattern).map_err(Error::pattern)?;
                s.remote.insert(pattern.clone(), ());
            }
        }
        bus.shared().attach(Rc::new(Forwarder(Rc::downgrade(&state))))?;
        Ok(Messenger { state })
    }

    /// Opens the connection to `url` (e.g. `ws://127.0.0.1:8080/ws`) with an
    /// optional `{token}`. Resolves with the session (`{session, version}`)
    /// once the bridge welcomes us; retries with
    /// backoff until `connectTimeoutMs`, then rejects with `UNAVAILABLE`. A
    /// refused token rejects at once (`AUTH_REQUIRED`, `TOKEN_EXPIRED`, `INVALID_TOKEN`).
    pub fn connect(
        &self,
        url: &str,
        #[wasm_bindgen(unchecked_param_type = "{ token?: string } | undefined")] options: JsValue,
    ) -> Result<Promise> {
        let options: ConnectOptions = options_or_default(options)?;
        {
            let mut s = self.state.borrow_mut();
            if !matches!(s.status, Status::Idle | Status::Closed) {
                return Err(Error::new("INVALID_STATE", format_args!("already {}", s.status.name())));
            }
            s.url = url.to_owned();
            s.token = options.token;
            s.attempt = 0;
            s.first_deadline = Some(js_sys::Date::now() + s.connect_timeout_ms);
        }
        let mut waiter = None;
        let promise = Promise::new(&mut |resolve, reject| waiter = Some((resolve, reject)));
        self.state.borrow_mut().waiters.extend(waiter);
        open_socket(&self.state);
        Ok(promise)
    }

    /// Receives remote events on topics matching `pattern` (kept across
    /// reconnects). The promise resolves when the bridge has acknowledged the
    /// subscription (at the next welcome when not connected) and rejects with
    /// the bridge's code (`FORBIDDEN`, `INVALID_PATTERN`, ...), which also
    /// reaches `onError`; a refused pattern is not sent again. `CLOSED` when
    /// the messenger closes first. (Unawaited, a refusal is not an unhandled
    /// rejection: the package marks the promise handled.)
    pub fn subscribe(&self, pattern: &str) -> Result<Promise> {
        swarmbus_core::topic::validate_pattern(pattern).map_err(Error::pattern)?;
        if self.state.borrow().status == Status::Closed {
            return Ok(closed_promise());
        }
        let (promise, resolve, reject) = new_promise();
        let mut s = self.state.borrow_mut();
        let new = s.remote.insert(pattern.to_owned(), ()).is_none();
        if !new && s.acked.iter().any(|p| p == pattern) {
            drop(s);
            let _ = resolve.call0(&JsValue::UNDEFINED);
            return Ok(promise);
        }
        s.sub_waiters.push((pattern.to_owned(), resolve, reject));
        let in_flight = s.sub_acks.iter().any(|(_, p)| p == pattern);
        if s.status == Status::Open && !in_flight {
            let ack = s.take_ack();
            s.sub_acks.push((ack, pattern.to_owned()));
            s.send(&ClientFrame::Subscribe { pattern: pattern.to_owned(), ack: Some(ack) });
        }
        Ok(promise)
    }

    /// Resolves when everything forwarded so far has reached the bridge (the
    /// bridge answered a ping sent after it; frames are handled in order).
    /// While disconnected it waits for the next connection; rejects with
    /// `CLOSED` when the messenger closes first.
    pub fn flush(&self) -> Promise {
        if self.state.borrow().status == Status::Closed {
            return closed_promise();
        }
        let (promise, resolve, reject) = new_promise();
        let mut s = self.state.borrow_mut();
        let nonce = s.take_ack();
        s.flush_waiters.push((nonce, resolve, reject));
        if s.status == Status::Open {
            s.flush();
            s.send(&ClientFrame::Ping { nonce });
        }
        promise
    }

    /// Stops receiving remote events for `pattern`; `false` if not subscribed.
    pub fn unsubscribe(&self, pattern: &str) -> bool {
        let mut s = self.state.borrow_mut();
        let had = s.remote.remove(pattern).is_some();
        if had && s.status == Status::Open {
            s.send(&ClientFrame::Unsubscribe { pattern: pattern.to_owned() });
        }
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
        match s.forward_ids.remove(pattern) {
            Some(id) => s.forward.unsubscribe(id),
            None => false,
        }
    }

    /// Reports counters this client measured to the bridge, cumulative for the
    /// connection: events handled on the wasm path and on a plain-JS path. The
    /// bridge exports them as `swarmbus_client_events_total{kind, path}`.
    /// `kind` is 1–32 of `a-z 0-9 _ -`. Returns `false` when not connected.
    pub fn report(&self, kind: &str, wasm: f64, js: f64) -> bool {
        let mut s = self.state.borrow_mut();
        if s.status != Status::Open {
            return false;
        }
        let count = |n: f64| if n.is_finite() && n > 0.0 { n as u64 } else { 0 };
        s.send(&ClientFrame::Report { kind: kind.to_owned(), wasm: count(wasm), js: count(js) });
        true
    }

    /// Closes the connection for good (no reconnect); queued offline events stay queued.
    pub fn close(&self) {
        let effects = self.state.borrow_mut().shut("closed by the application");
        effects.run(&self.state);
    }

    /// `'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'`.
    #[wasm_bindgen(
        getter,
        unchecked_return_type = "'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'"
    )]
    pub fn state(&self) -> String {
        self.state.borrow().status.name().to_owned()
    }

    /// Counters: `{sent, received, echoes, queued, dropped, droppedByPriority, reconnects, errors}`.
    #[wasm_bindgen(unchecked_return_type = "MessengerStats")]
    pub fn stats(&self) -> JsValue {
        let s = self.state.borrow();
        let out = js_sys::Object::new();
        let set = |k: &str, v: f64| crate::codec::set(&out, k, &v.into());
        set("sent", s.stats.sent as f64);
        set("received", s.stats.received as f64);
        set("echoes", s.stats.echoes as f64);
        set("queued", s.queue.len() as f64);
        set("dropped", s.stats.dropped.iter().sum::<u64>() as f64);
        set("reconnects", s.stats.reconnects as f64);
        set("errors", s.stats.errors as f64);
        let by_priority: js_sys::Array = s.stats.dropped.iter().map(|&n| JsValue::from(n as f64)).collect();
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
        let effects = {
            let mut s = self.state.borrow_mut();
            s.bus.detach();
            s.shut("freed")
        };
        effects.run(&self.state);
    }
}

impl State {
    fn add_forward(&mut self, pattern: &str) -> Result<()> {
        if self.forward_ids.contains_key(pattern) {
            return Ok(());
        }
        let id = self.forward.subscribe(pattern).map_err(Error::pattern)?;
        self.forward_ids.insert(pattern.to_owned(), id);
        Ok(())
    }

    /// True when local publishes on `topic` go to the bridge.
    fn forwards(&mut self, topic: &str) -> bool {
        !self.forward_ids.is_empty() && self.forward.route(topic).is_ok_and(|route| !route.is_empty())
    }

    fn take_ack(&mut self) -> u64 {
        let ack = self.next_ack;
        self.next_ack += 1;
        ack
    }

    fn send(&mut self, frame: &ClientFrame) {
        if let Some(socket) = &self.socket {
            // A socket that is closing drops sends; the close handler reconnects.
            let _ = socket.ws.send_with_u8_array(&frame.encode());
        }
    }

    fn set_status(&mut self, status: Status, effects: &mut Effects) {
        if self.status != status {
            self.status = status;
            effects.state = Some(status.name());
        }
    }

    /// Sends a forwarded envelope now, or queues it while the socket is down.
    /// Queues a forwarded envelope. While connected, what one JS task forwards
    /// is sent at the next microtask, most urgent first (a full queue is sent
    /// at once); while disconnected it waits for the next welcome.
    fn send_envelope(&mut self, bytes: Vec<u8>, id: u64, priority: Priority) -> Result<()> {
        self.remember(id);
        let full = self.queue.len() >= self.queue.capacity();
        if full && self.status == Status::Open {
            self.flush();
        } else if full
            && priority.is_critical()
            && self.queue.depth_by_priority()[..8].iter().all(|&n| n == 0)
        {
            return Err(Error::new(
                "QUEUE_FULL",
                format_args!(
                    "the messenger is offline and its queue holds {} priority ≥ 8 events; \
                     this priority {} event was not published",
                    self.queue.len(),
                    priority.get()
                ),
            ));
        }
        match self.queue.push(priority, bytes) {
            Ok(Pushed::Queued) => {}
            Ok(Pushed::Evicted(_, lost)) => self.stats.dropped[lost.index()] += 1,
            Err(_) => self.stats.dropped[priority.index()] += 1,
        }
        if self.status == Status::Open && !self.flush_scheduled {
            self.flush_scheduled = true;
            let me = self.me.clone();
            wasm_bindgen_futures::spawn_local(async move {
                if let Some(state) = me.upgrade() {
                    let mut s = state.borrow_mut();
                    s.flush_scheduled = false;
                    s.flush();
                }
            });
        }
        Ok(())
    }

    /// Sends everything queued, most urgent first, if connected.
    fn flush(&mut self) {
        if self.status != Status::Open {
            return;
        }
        while let Some((_, envelope)) = self.queue.pop() {
            self.stats.sent += 1;
            self.send(&ClientFrame::Publish { envelope, ack: None });
        }
    }

    fn start_pinger(&mut self) {
        self.awaiting_pong = None;
        if self.ping_interval_ms == 0 || self.pinger.is_some() {
            return;
        }
        let me = self.me.clone();
        self.pinger = Some(Interval::new(self.ping_interval_ms, move || {
            if let Some(shared) = me.upgrade() {
                let effects = ping_tick(&shared);
                effects.run(&shared);
            }
        }));
    }

    fn stop_pinger(&mut self) {
        self.awaiting_pong = None;
        if let Some(pinger) = self.pinger.take() {
            self.stopped_pinger = Some(pinger);
        }
    }

    /// Keeps a replaced socket (its callback may be running) until two more are replaced.
    fn retire(&mut self, socket: Socket) {
        socket.detach();
        if self.retired.len() >= 2 {
            self.retired.remove(0);
        }
        self.retired.push(socket);
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

    /// Closes for good and rejects a pending `connect`.
    fn shut(&mut self, reason: &str) -> Effects {
        let mut effects = Effects::default();
        self.timer = None;
        self.stop_pinger();
        if let Some(socket) = self.socket.take() {
            socket.detach();
            let _ = socket.ws.close_with_code_and_reason(1000, reason);
            self.retire(socket);
        }
        for (_, reject) in self.waiters.drain(..) {
            let error =
                Error::new("CLOSED", format_args!("the messenger was closed before connecting: {reason}"));
            effects.reject.push((reject, error.into()));
        }
        let closed = Error::new("CLOSED", format_args!("the messenger was closed: {reason}"));
        self.reject_pending(&closed, &mut effects);
        self.set_status(Status::Closed, &mut effects);
        effects
    }

    /// Rejects every `subscribe` and `flush` still waiting for the bridge.
    fn reject_pending(&mut self, error: &Error, effects: &mut Effects) {
        effects
            .reject
            .extend(self.sub_waiters.drain(..).map(|(_, _, reject)| (reject, error.clone().into())));
        effects
            .reject
            .extend(self.flush_waiters.drain(..).map(|(_, _, reject)| (reject, error.clone().into())));
        self.sub_acks.clear();
        self.acked.clear();
    }

    fn on_welcome(&mut self, version: u32, session: u64, effects: &mut Effects) {
        self.attempt = 0;
        self.first_deadline = None;
        self.start_pinger();
        self.set_status(Status::Open, effects);
        self.sub_acks.clear();
        self.acked.clear();
        let patterns: Vec<String> = self.remote.keys().cloned().collect();
        for pattern in patterns {
            let ack = self.take_ack();
            self.sub_acks.push((ack, pattern.clone()));
            self.send(&ClientFrame::Subscribe { pattern, ack: Some(ack) });
        }
        self.flush();
        // Pings sent on an earlier connection are lost: ask again for every waiting flush.
        let nonces: Vec<u64> = self.flush_waiters.iter().map(|(nonce, _, _)| *nonce).collect();
        for nonce in nonces {
            self.send(&ClientFrame::Ping { nonce });
        }
        let info = js_sys::Object::new();
        crate::codec::set(&info, "session", &crate::convert::u64_to_js(session));
        crate::codec::set(&info, "version", &version.into());
        self.session = info.into();
        let session = self.session.clone();
        effects.resolve.extend(self.waiters.drain(..).map(|(resolve, _)| (resolve, session.clone())));
    }

    /// The bridge acknowledged the frame sent with `ack`.
    fn on_ack(&mut self, ack: u64, effects: &mut Effects) {
        let Some(pattern) = self.take_sub_ack(ack) else { return };
        for (resolve, _) in self.take_sub_waiters(&pattern) {
            effects.resolve.push((resolve, JsValue::UNDEFINED));
        }
        self.acked.push(pattern);
    }

    /// The pattern of the subscribe frame sent with `ack`, if it is still unanswered.
    fn take_sub_ack(&mut self, ack: u64) -> Option<String> {
        let index = self.sub_acks.iter().position(|(a, _)| *a == ack)?;
        Some(self.sub_acks.swap_remove(index).1)
    }

    /// The `subscribe` promises waiting for `pattern`.
    fn take_sub_waiters(&mut self, pattern: &str) -> Vec<(Function, Function)> {
        let mut taken = Vec::new();
        let mut i = 0;
        while i < self.sub_waiters.len() {
            if self.sub_waiters[i].0 == pattern {
                let (_, resolve, reject) = self.sub_waiters.remove(i);
                taken.push((resolve, reject));
            } else {
                i += 1;
            }
        }
        taken
    }

    /// The bridge refused the frame sent with `ack`: a refused subscription is dropped.
    fn on_refused(&mut self, ack: u64, error: &JsValue, effects: &mut Effects) {
        let Some(pattern) = self.take_sub_ack(ack) else { return };
        self.remote.remove(&pattern);
        for (_, reject) in self.take_sub_waiters(&pattern) {
            effects.reject.push((reject, error.clone()));
        }
    }

    /// A pong that is not the keepalive's answers every flush whose ping was sent before it.
    fn on_pong(&mut self, nonce: u64, effects: &mut Effects) {
        if self.awaiting_pong == Some(nonce) {
            self.awaiting_pong = None;
            return;
        }
        let (done, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.flush_waiters).into_iter().partition(|(n, _, _)| *n <= nonce);
        self.flush_waiters = waiting;
        effects.resolve.extend(done.into_iter().map(|(_, resolve, _)| (resolve, JsValue::UNDEFINED)));
    }

    fn on_event(&mut self, bytes: &[u8], effects: &mut Effects) {
        let env = match envelope::decode_ref(bytes, &envelope::Limits::default()) {
            Ok(env) => env,
            Err(e) => return self.report(Error::from(e), effects),
        };
        if self.bus.is_freed() {
            return; // nobody can see this bus any more
        }
        if self.sent_set.contains(&env.id) {
            self.stats.echoes += 1;
            return;
        }
        // MessagePack payloads arrive decoded; anything else as its bytes.
        let payload =
            crate::codec::decode(env.payload).unwrap_or_else(|_| Uint8Array::from(env.payload).into());
        let options = PublishOptions { priority: env.priority, ttl_ms: env.ttl_ms };
        match self.bus.publish_remote(env.topic, payload, options, env.id) {
            Ok(_) => {
                self.stats.received += 1;
                effects.drain |= self.auto_drain;
            }
            Err(e) => self.report(e, effects),
        }
    }

    fn report(&mut self, error: Error, effects: &mut Effects) {
        self.stats.errors += 1;
        effects.errors.push(error.into());
    }
}

/// The bus side of the link: local publishes on forwarded patterns.
struct Forwarder(Weak<RefCell<State>>);

impl Forwarder {
    fn with_state(&self, f: impl FnOnce(&mut State) -> Result<()>) -> Result<()> {
        let Some(state) = self.0.upgrade() else { return Ok(()) };
        let mut s = state
            .try_borrow_mut()
            .map_err(|_| Error::new("REENTRANT", "the Messenger is busy; publish again later"))?;
        f(&mut s)
    }
}

impl Outbound for Forwarder {
    fn local_publish(&self, topic: &str, payload: &JsValue, options: PublishOptions, id: u64) -> Result<()> {
        self.with_state(|s| {
            if !s.forwards(topic) {
                return Ok(());
            }
            let mut env = Envelope::new(
                id,
                topic,
                options.priority,
                js_sys::Date::now() as u64,
                crate::codec::encode(payload.clone())?,
            );
            env.ttl_ms = options.ttl_ms;
            s.send_envelope(env.encode()?, id, options.priority)
        })
    }

    fn local_envelope(&self, bytes: &[u8]) -> Result<()> {
        self.with_state(|s| {
            let header = envelope::peek_header(bytes)?;
            if !s.forwards(header.topic) {
                return Ok(());
            }
            let (id, priority) = (header.id, header.priority);
            s.send_envelope(bytes.to_vec(), id, priority)
        })
    }
}

#[wasm_bindgen(module = "/src/helpers.js")]
extern "C" {
    /// `new ctor(url)` with `binaryType = 'arraybuffer'`, or the `Error` it threw.
    fn open_web_socket(ctor: &JsValue, url: &str) -> JsValue;
}

/// Opens a socket to the current URL and wires its callbacks.
fn open_socket(shared: &Rc<RefCell<State>>) {
    let mut effects = Effects::default();
    {
        let mut s = shared.borrow_mut();
        if s.status == Status::Closed && s.waiters.is_empty() {
            return;
        }
        let next = if s.status == Status::Idle || s.status == Status::Closed {
            Status::Connecting
        } else {
            s.status
        };
        s.set_status(next, &mut effects);
        let opened = open_web_socket(&s.web_socket, &s.url);
        match opened.dyn_into::<js_sys::Error>() {
            Ok(error) => {
                // A malformed URL will not get better: fail the connect.
                let message =
                    format!("cannot open a WebSocket to {}: {}", s.url, String::from(error.message()));
                for (_, reject) in s.waiters.drain(..) {
                    effects.reject.push((reject, Error::invalid(&message).into()));
                }
                s.set_status(Status::Closed, &mut effects);
            }
            Err(ws) => {
                let ws: WebSocket = ws.unchecked_into();
                let socket = wire(shared, ws);
                if let Some(old) = s.socket.replace(socket) {
                    s.retire(old);
                }
            }
        }
    }
    effects.run(shared);
}

fn wire(shared: &Rc<RefCell<State>>, ws: WebSocket) -> Socket {
    let weak = Rc::downgrade(shared);
    let on_open = Closure::<dyn FnMut()>::new({
        let weak = weak.clone();
        move || {
            let Some(shared) = weak.upgrade() else { return };
            let mut s = shared.borrow_mut();
            let token = s.token.clone();
            s.send(&ClientFrame::Hello { v: PROTOCOL_VERSION, token });
        }
    });
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new({
        let weak = weak.clone();
        move |event: MessageEvent| {
            let Some(shared) = weak.upgrade() else { return };
            let bytes = Uint8Array::new(&event.data()).to_vec();
            let effects = handle_frame(&shared, &bytes);
            effects.run(&shared);
        }
    });
    let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
        let Some(shared) = weak.upgrade() else { return };
        let effects = handle_close(&shared, event.code());
        effects.run(&shared);
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

fn handle_frame(shared: &Rc<RefCell<State>>, bytes: &[u8]) -> Effects {
    let mut effects = Effects::default();
    let mut s = shared.borrow_mut();
    let frame = match ServerFrame::decode(bytes) {
        Ok(frame) => frame,
        Err(e) => {
            s.report(Error::decode(format_args!("bad frame from the bridge: {e}")), &mut effects);
            return effects;
        }
    };
    match frame {
        ServerFrame::Welcome { v, session } => s.on_welcome(v, session, &mut effects),
        ServerFrame::Event { envelope } => s.on_event(&envelope, &mut effects),
        ServerFrame::Error { code, message, ack } => {
            let fatal = s.status != Status::Open && FATAL_CODES.contains(&code.as_str());
            let error = js_error(&code, &message);
            if let Some(ack) = ack {
                s.on_refused(ack, &error, &mut effects);
            }
            if fatal {
                effects.reject.extend(s.waiters.drain(..).map(|(_, reject)| (reject, error.clone())));
                let shut = s.shut(&message);
                effects.state = shut.state;
            }
            s.stats.errors += 1;
            effects.errors.push(error);
        }
        ServerFrame::Pong { nonce } => s.on_pong(nonce, &mut effects),
        ServerFrame::Ack { ack } => s.on_ack(ack, &mut effects),
    }
    effects
}

/// One pinger tick: a ping still unanswered means the connection is dead
/// (closed here and reconnected); otherwise send the next ping.
fn ping_tick(shared: &Rc<RefCell<State>>) -> Effects {
    {
        let mut s = shared.borrow_mut();
        if s.status != Status::Open {
            return Effects::default();
        }
        if s.awaiting_pong.is_none() {
            let nonce = s.take_ack();
            s.awaiting_pong = Some(nonce);
            s.send(&ClientFrame::Ping { nonce });
            return Effects::default();
        }
        if let Some(socket) = &s.socket {
            let _ = socket.ws.close_with_code_and_reason(4000, "no pong from the bridge");
        }
    }
    handle_close(shared, 4000)
}

fn handle_close(shared: &Rc<RefCell<State>>, code: u16) -> Effects {
    let mut effects = Effects::default();
    let mut s = shared.borrow_mut();
    s.stop_pinger();
    if let Some(old) = s.socket.take() {
        s.retire(old);
    }
    if s.status == Status::Closed {
        return effects;
    }
    // Frames of the closed connection will not be answered; the next welcome resubscribes.
    s.sub_acks.clear();
    s.acked.clear();
    let now = js_sys::Date::now();
    if s.first_deadline.is_some_and(|deadline| now >= deadline) {
        let error = Error::new(
            "UNAVAILABLE",
            format_args!("could not connect to {} (last close code {code})", s.url),
        );
        for (_, reject) in s.waiters.drain(..) {
            effects.reject.push((reject, error.clone().into()));
        }
        s.reject_pending(&error, &mut effects);
        s.set_status(Status::Closed, &mut effects);
        return effects;
    }
    let next = if s.first_deadline.is_some() { Status::Connecting } else { Status::Reconnecting };
    s.set_status(next, &mut effects);
    let exp = s.backoff_ms.saturating_mul(1u32 << s.attempt.min(16));
    let delay = f64::from(exp.min(s.max_backoff_ms)) * (0.5 + 0.5 * js_sys::Math::random());
    s.attempt += 1;
    let weak = Rc::downgrade(shared);
    s.timer = Some(Timeout::new(delay as u32, move || {
        let Some(shared) = weak.upgrade() else { return };
        {
            let mut s = shared.borrow_mut();
            // This timer's callback is running: keep it alive until the next one fires.
            s.fired_timer = s.timer.take();
            s.stats.reconnects += 1;
        }
        open_socket(&shared);
    }));
    effects
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
