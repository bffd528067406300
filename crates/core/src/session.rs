//! The client side of the bridge protocol ([`crate::protocol`]) as a sans-IO
//! state machine, in the style of quinn-proto and rustls: the [`Session`] takes
//! inputs and the current time and returns frames to send, the next time it
//! wants to be woken up, and effects for the application. It never reads a
//! clock, opens a socket or spawns a task; the shells that do (the native
//! `swarmbus_bridge::client`, the wasm `Messenger`) stay thin, and every rule
//! below is tested here once, with plain numbers for time.
//!
//! ## States
//!
//! ```text
//!             connect()                 connected(t)             welcome
//!   Idle ───────────────▶ Opening(t) ─────────────▶ Hello(t) ────────────▶ Open(t)
//!                            │  ▲                      │                    │
//!   closed(t) / no welcome   │  │ backoff elapsed      │                    │ closed(t), ping
//!   within connect_timeout   ▼  │ (tick)               ▼                    ▼ unanswered
//!                          Waiting ◀───────────────────┴────────────────────┘
//!                            │
//!                            │ reconnect off, or never welcomed by give_up_after
//!                            ▼
//!   close() from anywhere ─▶ Closed ──── connect() ───▶ Opening …
//!   fatal hello refusal ───▶ Closed
//! ```
//!
//! `t` is a [`TransportId`]: every [`Action::Open`] names a new one, and inputs
//! that name any other transport (a late close or frame from a socket that was
//! already given up) are ignored. The application sees the coarser
//! [`SessionState`] (`idle`, `connecting`, `open`, `reconnecting`, `closed`, the
//! Messenger's names): `Opening`, `Hello` and `Waiting` read as `connecting`
//! until the first welcome after [`Session::connect`], `reconnecting` after.
//!
//! ## Inputs
//!
//! * From the transport: [`Session::connected`], [`Session::receive`] (bytes)
//!   or [`Session::handle`] (a decoded frame), [`Session::closed`] (close code).
//! * From the clock: [`Session::tick`], at or after [`Session::poll_timeout`].
//! * From the application: [`Session::connect`], [`Session::subscribe`],
//!   [`Session::unsubscribe`], [`Session::publish`], [`Session::report`],
//!   [`Session::set_token`], [`Session::refresh_token`], [`Session::close`].
//!
//! Every input takes `now` in milliseconds on any clock that does not go back.
//!
//! ## Outputs
//!
//! After each input the shell drains [`Session::poll_action`] (what to do with
//! the transport: [`Action::Open`], [`Action::Send`] an encoded frame,
//! [`Action::Close`]), then [`Session::poll_effect`] (what the application
//! hears: [`Effect`]), then sleeps until [`Session::poll_timeout`]. After an
//! [`Action::Close`] the session already treats that transport as gone; the
//! shell does not report its close.
//!
//! ## Writing a shell
//!
//! One place owns the session. After every input it drains the actions (open a
//! transport tagged with the [`TransportId`]; write a frame if that transport
//! is still the one it holds; close and forget it), then the effects (deliver,
//! resolve, report, outside any borrow of the session), then re-arms its one
//! timer at [`Session::poll_timeout`]. Callbacks of a socket report with its
//! `TransportId`, so an old socket's late events need no detaching: the
//! session ignores them.
//!
//! ```
//! use swarmbus_core::protocol::{ClientFrame, ServerFrame};
//! use swarmbus_core::session::{Action, Effect, SessionState};
//! use swarmbus_core::{Session, SessionConfig};
//!
//! let mut session = Session::new(SessionConfig { token: Some("jwt".into()), ..SessionConfig::default() });
//! session.subscribe("swarm.>", false, 0).unwrap(); // kept until connected
//! session.connect(0).unwrap();
//! let Some(Action::Open { transport }) = session.poll_action() else { panic!("open first") };
//! // The shell opened its socket:
//! session.connected(transport, 3);
//! let Some(Action::Send { frame, .. }) = session.poll_action() else { panic!("then hello") };
//! assert!(matches!(ClientFrame::decode(&frame), Ok(ClientFrame::Hello { token: Some(_), .. })));
//! // The bridge answered:
//! session.handle(transport, ServerFrame::Welcome { v: 1, session: 1 }, 5);
//! let Some(Action::Send { frame, .. }) = session.poll_action() else { panic!("then the resubscribe") };
//! assert!(matches!(ClientFrame::decode(&frame), Ok(ClientFrame::Subscribe { .. })));
//! assert!(session.poll_effect().is_some_and(|e| e == Effect::State(SessionState::Connecting)));
//! assert!(session.poll_effect().is_some_and(|e| e == Effect::State(SessionState::Open)));
//! // Nothing due before the first keepalive ping.
//! assert_eq!(session.poll_timeout(), Some(5 + 15_000));
//! ```
//!
//! ## What the session owns, and its guarantees
//!
//! * **Hello.** On `connected` it sends `hello` with the token
//!   ([`Session::set_token`] changes it for the next hello). A welcome must
//!   arrive within `connect_timeout_ms` of the open, else the transport is
//!   closed (code [`CLOSE_NO_WELCOME`]) and retried. [`Session::refresh_token`]
//!   replaces the token on the open connection (a `refresh` frame, before the
//!   bridge closes with 4001 at the old token's `exp`) and for every later
//!   hello. A hello refused with
//!   `AUTH_REQUIRED`, `TOKEN_EXPIRED`, `INVALID_TOKEN` or `UNSUPPORTED_VERSION`
//!   is final ([`Stop::Refused`]): no retry can fix it without a new token.
//! * **Subscriptions** are a set, kept across reconnects and across
//!   `close`/`connect`, resubscribed after every welcome **in the order they
//!   were first made**, each with an `ack`. The bridge's answer becomes
//!   [`Effect::Subscribed`] or [`Effect::SubscriptionRefused`]; a refused
//!   pattern (`FORBIDDEN`, `TOO_MANY_SUBSCRIPTIONS`, ...) leaves the set, so it
//!   is not refused again on every reconnect. At most `max_subscriptions`.
//! * **Requests** (a publish or subscribe asked with `ack`) get a [`RequestId`]
//!   and exactly one outcome: [`Effect::Acked`] or [`Effect::Failed`] with a
//!   [`Failure`]. Each has a deadline `request_timeout_ms` after the call
//!   ([`Failure::Timeout`]; a late ack is then ignored). A publish on the wire
//!   when the connection drops fails with [`Failure::Disconnected`]: the
//!   session does not know whether the bridge took it, and says so rather than
//!   guess. A subscribe request survives a reconnect (it is answered by the
//!   resubscribe's ack). A timed-out publish that was still queued is never
//!   sent. At most `max_requests` at a time.
//! * **Backoff.** One [`Backoff`]: the ceiling doubles from `min_backoff_ms` to
//!   `max_backoff_ms` per failed attempt and each delay is drawn uniformly from
//!   `[ceiling/2, ceiling]` by a xorshift64* generator seeded by the shell
//!   (`seed`), so runs are reproducible. A welcome resets it.
//! * **Keepalive.** While open, a `ping` every `ping_interval_ms` (0: off). A
//!   ping still unanswered when the next one is due means a dead connection:
//!   closed with [`CLOSE_NO_PONG`] and reconnected. Detection therefore takes
//!   between one and two intervals.
//! * **Offline queue.** Publishes made while not open wait in a priority queue
//!   bounded by `offline_max_items` **and** `offline_max_bytes`, sent after the
//!   resubscribes of the next welcome, most urgent first, FIFO within a
//!   priority. When full, the oldest items of the lowest priority below both
//!   the newcomer's and 8 are evicted to make room (counted in
//!   [`SessionStats::dropped`], and a request among them fails with
//!   [`Failure::Dropped`]); when that cannot make room the newcomer is refused
//!   with [`SessionError::QueueFull`] (also counted). So a priority ≥ 8 publish
//!   is never evicted: it is queued, or its caller is told at once.
//!
//! Not guaranteed: delivery. Publishes without `ack` that were written to a
//! transport that then died may be lost, and events published while the
//! session was not open are not replayed (the bridge is at-most-once today).
//!
//! ## Room for recovery (issue 14 item 2: not implemented yet)
//!
//! A subscription will carry a position `{offset: u64, epoch: String}`: kept in
//! the private `Subscription` next to `acked`, updated from each delivered event's offset,
//! sent in the resubscribe frame, and checked against the `recovered` flag of
//! the answer (an [`Effect`] `Resynced { pattern }` when it is false, and a
//! live offset gap triggering a resubscribe). Nothing of that exists yet: no
//! frame carries positions, and this session does not pretend to recover.

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::error::TopicError;
use crate::priority::Priority;
use crate::protocol::{ClientFrame, ServerFrame, PROTOCOL_VERSION};
use crate::topic::validate_pattern;

/// Close code the session uses when a ping went unanswered for a whole interval.
/// (The session's own codes stay clear of the bridge's: 4001 token expired,
/// 4002 no hello in time, 4008 slow consumer; see `docs/protocol.md`.)
pub const CLOSE_NO_PONG: u16 = 4000;
/// Close code the session uses when no welcome arrived within `connect_timeout_ms`.
pub const CLOSE_NO_WELCOME: u16 = 4010;
/// Close code of [`Session::close`] (a normal closure).
pub const CLOSE_NORMAL: u16 = 1000;

/// Hello refusals that no reconnect can fix.
const FATAL_CODES: [&str; 4] = ["AUTH_REQUIRED", "TOKEN_EXPIRED", "INVALID_TOKEN", "UNSUPPORTED_VERSION"];

/// Settings of a [`Session`]; zero durations and sizes are raised to 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Token sent in `hello`.
    pub token: Option<String>,
    /// Reconnect after a transport is lost (default true).
    pub reconnect: bool,
    /// Ceiling of the first reconnect delay (default 100 ms).
    pub min_backoff_ms: u64,
    /// Largest ceiling of a reconnect delay (default 10 s).
    pub max_backoff_ms: u64,
    /// Time from [`Action::Open`] to the welcome before the attempt is given up (default 10 s).
    pub connect_timeout_ms: u64,
    /// After [`Session::connect`], stop with [`Stop::Unavailable`] when a transport
    /// is lost this long after it without any welcome yet (`Some(0)`: the first
    /// failure is final; `None`, the default: keep trying).
    pub give_up_after_ms: Option<u64>,
    /// Interval of keepalive pings while open; 0 turns them off (default 15 s).
    pub ping_interval_ms: u64,
    /// Deadline of a request after the call (default 5 s).
    pub request_timeout_ms: u64,
    /// Requests waiting for an outcome at once (default 4 096).
    pub max_requests: usize,
    /// Subscriptions kept (default 1 024).
    pub max_subscriptions: usize,
    /// Publishes held while not open (default 1 024).
    pub offline_max_items: usize,
    /// Envelope bytes held while not open (default 4 MiB).
    pub offline_max_bytes: usize,
    /// Seed of the backoff jitter (the shell passes something random).
    pub seed: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            token: None,
            reconnect: true,
            min_backoff_ms: 100,
            max_backoff_ms: 10_000,
            connect_timeout_ms: 10_000,
            give_up_after_ms: None,
            ping_interval_ms: 15_000,
            request_timeout_ms: 5_000,
            max_requests: 4_096,
            max_subscriptions: 1_024,
            offline_max_items: 1_024,
            offline_max_bytes: 4 << 20,
            seed: 0x5eed,
        }
    }
}

/// Names one transport (socket) the session asked the shell to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransportId(pub u64);

/// Names one request (a publish or subscribe with `ack`, a token refresh); also its `ack` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// What the shell does with its transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a new transport to the bridge and report [`Session::connected`] or
    /// [`Session::closed`] for it.
    Open {
        /// The new transport.
        transport: TransportId,
    },
    /// Write one binary frame (an encoded [`ClientFrame`]).
    Send {
        /// The transport to write to.
        transport: TransportId,
        /// The frame's bytes.
        frame: Vec<u8>,
    },
    /// Close the transport; the session already considers it gone.
    Close {
        /// The transport to close.
        transport: TransportId,
        /// WebSocket close code.
        code: u16,
        /// Close reason.
        reason: &'static str,
    },
}

/// What the application hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The state the application sees changed.
    State(SessionState),
    /// An event for one of the subscriptions: the envelope's bytes.
    Event(Vec<u8>),
    /// The bridge accepted the request.
    Acked(RequestId),
    /// The request failed; this is its only outcome.
    Failed(RequestId, Failure),
    /// The bridge confirmed the subscription on the current connection.
    Subscribed(String),
    /// The bridge refused the subscription; it left the set.
    SubscriptionRefused {
        /// The refused pattern.
        pattern: String,
        /// The bridge's error code.
        code: String,
        /// The bridge's message.
        message: String,
    },
    /// An error frame not tied to a request, or an undecodable frame (`BAD_FRAME`).
    Error {
        /// Stable code.
        code: String,
        /// Explanation.
        message: String,
    },
    /// The transport was lost (or closed by the session with [`CLOSE_NO_PONG`] or
    /// [`CLOSE_NO_WELCOME`]).
    Disconnected {
        /// Its close code.
        code: u16,
    },
    /// The next attempt opens after this delay.
    ReconnectIn {
        /// Delay in milliseconds.
        delay_ms: u64,
        /// Failed attempts in a row so far (1 for the first retry).
        attempt: u32,
    },
    /// The session stopped ([`SessionState::Closed`]) and will not reconnect on its own.
    Stopped(Stop),
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The bridge refused it.
    Refused {
        /// The bridge's error code.
        code: String,
        /// The bridge's message.
        message: String,
    },
    /// No answer before its deadline.
    Timeout,
    /// The connection dropped after the publish was written: it may or may not have been taken.
    Disconnected,
    /// Evicted from the full offline queue by a more urgent publish; never sent.
    Dropped,
    /// The subscription was withdrawn before it was sent.
    Cancelled,
    /// The session stopped.
    Closed,
}

impl Failure {
    /// A stable code: the bridge's, or `TIMEOUT`, `DISCONNECTED`, `DROPPED`, `CANCELLED`, `CLOSED`.
    pub fn code(&self) -> &str {
        match self {
            Self::Refused { code, .. } => code,
            Self::Timeout => "TIMEOUT",
            Self::Disconnected => "DISCONNECTED",
            Self::Dropped => "DROPPED",
            Self::Cancelled => "CANCELLED",
            Self::Closed => "CLOSED",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused { code, message } => write!(f, "{code}: {message}"),
            Self::Timeout => f.write_str("no answer in time"),
            Self::Disconnected => f.write_str("the connection dropped before the answer"),
            Self::Dropped => f.write_str("dropped from the full offline queue"),
            Self::Cancelled => f.write_str("unsubscribed before it was sent"),
            Self::Closed => f.write_str("the session was closed"),
        }
    }
}

/// Why the session stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// [`Session::close`] was called.
    Application,
    /// The bridge refused the hello for good (`AUTH_REQUIRED`, `TOKEN_EXPIRED`, ...).
    Refused {
        /// The bridge's error code.
        code: String,
        /// The bridge's message.
        message: String,
    },
    /// No welcome within `give_up_after_ms` of [`Session::connect`].
    Unavailable {
        /// Close code of the last attempt.
        close_code: u16,
    },
    /// The transport was lost and `reconnect` is off.
    Lost {
        /// Its close code.
        close_code: u16,
    },
}

/// The state the application sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// [`Session::connect`] was never called.
    Idle,
    /// Trying to get the first welcome since [`Session::connect`].
    Connecting,
    /// Welcomed; frames flow.
    Open,
    /// Was open; trying to get welcomed again.
    Reconnecting,
    /// Stopped; [`Session::connect`] starts again.
    Closed,
}

impl SessionState {
    /// `idle`, `connecting`, `open`, `reconnecting` or `closed`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Connecting => "connecting",
            Self::Open => "open",
            Self::Reconnecting => "reconnecting",
            Self::Closed => "closed",
        }
    }
}

/// A call the session refused at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// The pattern is not a valid topic pattern.
    InvalidPattern(TopicError),
    /// `max_subscriptions` patterns are subscribed already.
    TooManySubscriptions,
    /// `max_requests` requests are waiting already.
    TooManyRequests,
    /// Not open, and the offline queue cannot take this publish (counted as dropped).
    QueueFull {
        /// The refused publish's priority.
        priority: Priority,
    },
    /// [`Session::connect`] while not idle or closed.
    AlreadyStarted,
}

impl SessionError {
    /// `INVALID_PATTERN`, `TOO_MANY_SUBSCRIPTIONS`, `TOO_MANY_REQUESTS`, `QUEUE_FULL` or `INVALID_STATE`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidPattern(_) => "INVALID_PATTERN",
            Self::TooManySubscriptions => "TOO_MANY_SUBSCRIPTIONS",
            Self::TooManyRequests => "TOO_MANY_REQUESTS",
            Self::QueueFull { .. } => "QUEUE_FULL",
            Self::AlreadyStarted => "INVALID_STATE",
        }
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPattern(e) => write!(f, "invalid pattern: {e}"),
            Self::TooManySubscriptions => f.write_str("too many subscriptions"),
            Self::TooManyRequests => f.write_str("too many requests waiting for an answer"),
            Self::QueueFull { priority } => {
                write!(f, "not connected and the offline queue is full (priority {} publish)", priority.get())
            }
            Self::AlreadyStarted => f.write_str("the session is already started"),
        }
    }
}

/// Counters of a session, cumulative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionStats {
    /// Publish frames written.
    pub published: u64,
    /// Events delivered.
    pub events: u64,
    /// Publishes dropped by the offline queue (evicted or refused), by priority.
    pub dropped: [u64; Priority::LEVELS],
    /// Transports opened after a loss (not counting the first of each `connect`).
    pub reconnects: u64,
    /// Connections closed for an unanswered ping.
    pub dead_connections: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Error frames and undecodable frames received.
    pub errors: u64,
}

/// Exponential backoff with "equal jitter": the ceiling doubles from `min_ms`
/// to `max_ms` per attempt and each delay is uniform in `[ceiling/2, ceiling]`.
/// Deterministic for a seed.
///
/// # Examples
/// ```
/// use swarmbus_core::session::Backoff;
/// let mut backoff = Backoff::new(100, 1_000, 7);
/// let first = backoff.next_delay();
/// assert!((50..=100).contains(&first));
/// for _ in 0..10 {
///     assert!(backoff.next_delay() <= 1_000);
/// }
/// backoff.reset();
/// assert!(backoff.next_delay() <= 100);
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    min_ms: u64,
    max_ms: u64,
    attempt: u32,
    rng: XorShift,
}

impl Backoff {
    /// A backoff from `min_ms` (at least 1) to `max_ms` (at least `min_ms`).
    pub fn new(min_ms: u64, max_ms: u64, seed: u64) -> Self {
        let min_ms = min_ms.max(1);
        Self { min_ms, max_ms: max_ms.max(min_ms), attempt: 0, rng: XorShift::new(seed) }
    }

    /// The next delay in milliseconds (at least 1); counts one attempt.
    pub fn next_delay(&mut self) -> u64 {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        ceiling - self.rng.next() % (ceiling / 2 + 1)
    }

    /// The ceiling of the next delay.
    pub fn ceiling(&self) -> u64 {
        let factor = 1u64 << self.attempt.min(62);
        self.min_ms.saturating_mul(factor).min(self.max_ms)
    }

    /// Delays drawn since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Starts over from `min_ms` (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// xorshift64* (Vigna): small, fast and good enough for jitter.
#[derive(Debug, Clone)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // Any seed, including 0, gives a non-zero state.
        let state = seed ^ 0x9e37_79b9_7f4a_7c15;
        Self(if state == 0 { 0x9e37_79b9_7f4a_7c15 } else { state })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// One subscribed pattern.
#[derive(Debug, Clone)]
struct Subscription {
    pattern: String,
    /// Confirmed by the bridge on the current connection.
    acked: bool,
    // TODO(recovery, issue 14 item 2): `position: Option<Position { offset: u64, epoch: String }>`,
    // see the module docs.
}

#[derive(Debug, Clone)]
struct Request {
    deadline: u64,
    kind: RequestKind,
    /// Written to the current transport.
    sent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RequestKind {
    /// A publish or a token refresh: answered once, unknown if the connection drops.
    Once,
    Subscribe(String),
}

/// What an `ack` on the wire answers.
#[derive(Debug, Clone)]
enum Wire {
    /// A publish or a token refresh.
    Once(RequestId),
    Subscribe {
        pattern: String,
        requests: Vec<RequestId>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    /// Waiting for the backoff delay to pass.
    Waiting {
        until: u64,
    },
    /// [`Action::Open`] issued; waiting for `connected`.
    Opening {
        transport: TransportId,
        deadline: u64,
    },
    /// `hello` sent; waiting for `welcome`.
    Hello {
        transport: TransportId,
        deadline: u64,
    },
    Open {
        transport: TransportId,
    },
    Closed,
}

impl Phase {
    fn transport(self) -> Option<TransportId> {
        match self {
            Self::Opening { transport, .. } | Self::Hello { transport, .. } | Self::Open { transport } => {
                Some(transport)
            }
            _ => None,
        }
    }
}

/// A map in a `Vec` sorted by key. The session's maps are bounded and keyed by
/// ids that only grow (so an insert is almost always a push), and every
/// `BTreeMap` type costs kilobytes of wasm.
#[derive(Debug, Clone)]
struct SortedMap<K, V>(Vec<(K, V)>);

impl<K: Ord + Copy, V> SortedMap<K, V> {
    const fn new() -> Self {
        Self(Vec::new())
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn find(&self, key: K) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.cmp(&key))
    }

    fn get_mut(&mut self, key: K) -> Option<&mut V> {
        let at = self.find(key).ok()?;
        Some(&mut self.0[at].1)
    }

    /// Inserts or replaces.
    fn insert(&mut self, key: K, value: V) {
        match self.find(key) {
            Ok(at) => self.0[at].1 = value,
            Err(at) => self.0.insert(at, (key, value)),
        }
    }

    fn remove(&mut self, key: K) -> Option<V> {
        let at = self.find(key).ok()?;
        Some(self.0.remove(at).1)
    }

    fn clear(&mut self) {
        self.0.clear();
    }

    fn iter(&self) -> core::slice::Iter<'_, (K, V)> {
        self.0.iter()
    }

    fn iter_mut(&mut self) -> core::slice::IterMut<'_, (K, V)> {
        self.0.iter_mut()
    }
}

#[derive(Debug, Clone)]
struct Queued {
    bytes: Vec<u8>,
    request: Option<RequestId>,
}

/// Publishes held while not open, bounded in items and bytes.
#[derive(Debug, Clone)]
struct OfflineQueue {
    levels: [VecDeque<Queued>; Priority::LEVELS],
    len: usize,
    bytes: usize,
    max_items: usize,
    max_bytes: usize,
}

impl OfflineQueue {
    fn new(max_items: usize, max_bytes: usize) -> Self {
        Self {
            levels: Default::default(),
            len: 0,
            bytes: 0,
            max_items: max_items.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    /// Queues `item`, evicting the oldest items of the lowest priorities below
    /// both `priority` and 8 when needed; hands `item` back when that cannot
    /// make room (and then evicts nothing).
    fn push(&mut self, priority: Priority, item: Queued) -> Result<Vec<(Priority, Queued)>, Queued> {
        let size = item.bytes.len();
        if size > self.max_bytes {
            return Err(item);
        }
        let mut need_items = (self.len + 1).saturating_sub(self.max_items);
        let mut need_bytes = (self.bytes + size).saturating_sub(self.max_bytes);
        let limit = priority.index().min(Priority::CRITICAL.index());
        let mut victims = [0usize; Priority::LEVELS];
        'plan: for (level, queue) in self.levels[..limit].iter().enumerate() {
            for queued in queue {
                if need_items == 0 && need_bytes == 0 {
                    break 'plan;
                }
                victims[level] += 1;
                need_items = need_items.saturating_sub(1);
                need_bytes = need_bytes.saturating_sub(queued.bytes.len());
            }
        }
        if need_items > 0 || need_bytes > 0 {
            return Err(item);
        }
        let mut evicted = Vec::new();
        for (level, count) in victims.into_iter().enumerate() {
            for _ in 0..count {
                if let Some(victim) = self.pop_level(level) {
                    evicted.push((Priority::new(level as u8).unwrap_or(Priority::BULK), victim));
                }
            }
        }
        self.bytes += size;
        self.len += 1;
        self.levels[priority.index()].push_back(item);
        Ok(evicted)
    }

    fn pop_level(&mut self, level: usize) -> Option<Queued> {
        let item = self.levels[level].pop_front()?;
        self.len -= 1;
        self.bytes -= item.bytes.len();
        Some(item)
    }

    /// The oldest item of the highest priority.
    fn pop(&mut self) -> Option<Queued> {
        let level = (0..Priority::LEVELS).rev().find(|&level| !self.levels[level].is_empty())?;
        self.pop_level(level)
    }
}

/// The client side of one bridge connection, reconnecting; see the module docs.
#[derive(Debug, Clone)]
pub struct Session {
    config: SessionConfig,
    phase: Phase,
    /// Welcomed at least once since the last `connect`.
    ever_open: bool,
    give_up_at: Option<u64>,
    seen_state: SessionState,
    backoff: Backoff,
    next_transport: u64,
    /// Request ids and wire acks.
    next_id: u64,
    next_nonce: u64,
    awaiting_pong: Option<u64>,
    ping_at: u64,
    /// In the order of first subscription: resubscribes go in this order.
    subscriptions: Vec<Subscription>,
    /// By id.
    requests: SortedMap<RequestId, Request>,
    /// Sorted.
    deadlines: Vec<(u64, RequestId)>,
    /// By wire `ack`.
    wire: SortedMap<u64, Wire>,
    queue: OfflineQueue,
    actions: VecDeque<Action>,
    effects: VecDeque<Effect>,
    stats: SessionStats,
}

impl Session {
    /// An idle session; [`Session::connect`] starts it.
    pub fn new(mut config: SessionConfig) -> Self {
        config.connect_timeout_ms = config.connect_timeout_ms.max(1);
        config.request_timeout_ms = config.request_timeout_ms.max(1);
        config.max_requests = config.max_requests.max(1);
        config.max_subscriptions = config.max_subscriptions.max(1);
        Self {
            phase: Phase::Idle,
            ever_open: false,
            give_up_at: None,
            seen_state: SessionState::Idle,
            backoff: Backoff::new(config.min_backoff_ms, config.max_backoff_ms, config.seed),
            next_transport: 0,
            next_id: 0,
            next_nonce: 0,
            awaiting_pong: None,
            ping_at: 0,
            subscriptions: Vec::new(),
            requests: SortedMap::new(),
            deadlines: Vec::new(),
            wire: SortedMap::new(),
            queue: OfflineQueue::new(config.offline_max_items, config.offline_max_bytes),
            actions: VecDeque::new(),
            effects: VecDeque::new(),
            stats: SessionStats::default(),
            config,
        }
    }

    // ---- outputs ----

    /// The next thing to do with the transport.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next effect for the application.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When to call [`Session::tick`] next (same clock as `now`); `None`: no timer.
    /// Always later than the `now` of the last input.
    pub fn poll_timeout(&self) -> Option<u64> {
        let phase = match self.phase {
            Phase::Waiting { until } => Some(until),
            Phase::Opening { deadline, .. } | Phase::Hello { deadline, .. } => Some(deadline),
            Phase::Open { .. } if self.config.ping_interval_ms > 0 => Some(self.ping_at),
            _ => None,
        };
        let request = self.deadlines.first().map(|&(deadline, _)| deadline);
        match (phase, request) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- inspection ----

    /// The state the application sees.
    pub fn state(&self) -> SessionState {
        match self.phase {
            Phase::Idle => SessionState::Idle,
            Phase::Open { .. } => SessionState::Open,
            Phase::Closed => SessionState::Closed,
            _ if self.ever_open => SessionState::Reconnecting,
            _ => SessionState::Connecting,
        }
    }

    /// Counters.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// Publishes in the offline queue.
    pub fn queued(&self) -> usize {
        self.queue.len
    }

    /// Envelope bytes in the offline queue.
    pub fn queued_bytes(&self) -> usize {
        self.queue.bytes
    }

    /// Requests waiting for an outcome.
    pub fn pending_requests(&self) -> usize {
        self.requests.len()
    }

    /// The subscribed patterns, in the order they are resubscribed.
    pub fn subscriptions(&self) -> Vec<&str> {
        self.subscriptions.iter().map(|sub| sub.pattern.as_str()).collect()
    }

    /// True when the bridge confirmed `pattern` on the current connection.
    pub fn is_subscribed(&self, pattern: &str) -> bool {
        self.subscription(pattern).is_some_and(|i| self.subscriptions[i].acked)
    }

    /// The settings (with zeros raised to 1).
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    // ---- application inputs ----

    /// Starts connecting (from idle or closed): emits [`Action::Open`].
    pub fn connect(&mut self, now: u64) -> Result<(), SessionError> {
        if !matches!(self.phase, Phase::Idle | Phase::Closed) {
            return Err(SessionError::AlreadyStarted);
        }
        self.ever_open = false;
        self.backoff.reset();
        self.give_up_at = self.config.give_up_after_ms.map(|ms| now.saturating_add(ms));
        self.open(now);
        self.update_state();
        Ok(())
    }

    /// Closes for good: closes the transport, fails every request with
    /// [`Failure::Closed`]; subscriptions and queued publishes without a request
    /// stay for a later [`Session::connect`].
    pub fn close(&mut self, now: u64) {
        let _ = now;
        if let Some(transport) = self.phase.transport() {
            self.actions.push_back(Action::Close {
                transport,
                code: CLOSE_NORMAL,
                reason: "closed by the application",
            });
        }
        if self.phase != Phase::Closed {
            self.stop(Stop::Application);
        }
        self.update_state();
    }

    /// The token of the next `hello`.
    pub fn set_token(&mut self, token: Option<String>) {
        self.config.token = token;
    }

    /// Replaces the token: for the next `hello`, and, when open, on the current
    /// connection too (a `refresh` frame), returning the request answered by
    /// [`Effect::Acked`] or [`Effect::Failed`]. If the connection drops before
    /// the answer the request fails with [`Failure::Disconnected`]; the next
    /// `hello` carries the new token anyway.
    pub fn refresh_token(&mut self, token: String, now: u64) -> Result<Option<RequestId>, SessionError> {
        let Phase::Open { .. } = self.phase else {
            self.config.token = Some(token);
            return Ok(None);
        };
        if self.requests.len() >= self.config.max_requests {
            return Err(SessionError::TooManyRequests);
        }
        let id = self.add_request(RequestKind::Once, now);
        if let Some(request) = self.requests.get_mut(id) {
            request.sent = true;
        }
        self.wire.insert(id.0, Wire::Once(id));
        self.send(&ClientFrame::Refresh { token: token.clone(), ack: Some(id.0) });
        self.config.token = Some(token);
        Ok(Some(id))
    }

    /// Adds `pattern` to the subscriptions (kept across reconnects) and sends
    /// it when open. With `ack`, returns the request answered by
    /// [`Effect::Acked`] or [`Effect::Failed`].
    pub fn subscribe(
        &mut self,
        pattern: &str,
        ack: bool,
        now: u64,
    ) -> Result<Option<RequestId>, SessionError> {
        validate_pattern(pattern).map_err(SessionError::InvalidPattern)?;
        let new = self.subscription(pattern).is_none();
        if new && self.subscriptions.len() >= self.config.max_subscriptions {
            return Err(SessionError::TooManySubscriptions);
        }
        if ack && self.requests.len() >= self.config.max_requests {
            return Err(SessionError::TooManyRequests);
        }
        if new {
            self.subscriptions.push(Subscription { pattern: pattern.to_string(), acked: false });
        }
        let request = ack.then(|| self.add_request(RequestKind::Subscribe(pattern.to_string()), now));
        // Again without `ack`: already on the wire, nothing to send.
        if matches!(self.phase, Phase::Open { .. }) && (new || request.is_some()) {
            self.send_subscribe(pattern.to_string(), request.into_iter().collect());
        }
        Ok(request)
    }

    /// Removes `pattern` from the subscriptions (sending `unsubscribe` when
    /// open); a subscribe request for it not sent yet fails with
    /// [`Failure::Cancelled`]. False when it was not subscribed.
    pub fn unsubscribe(&mut self, pattern: &str) -> bool {
        if !self.remove_subscription(pattern) {
            return false;
        }
        let cancelled: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, r)| !r.sent && matches!(&r.kind, RequestKind::Subscribe(p) if p == pattern))
            .map(|&(id, _)| id)
            .collect();
        for id in cancelled {
            self.fail(id, Failure::Cancelled);
        }
        if matches!(self.phase, Phase::Open { .. }) {
            self.send(&ClientFrame::Unsubscribe { pattern: pattern.to_string() });
        }
        true
    }

    /// Publishes an encoded envelope: written when open, else queued (see the
    /// module docs for the bounds). With `ack`, returns the request answered by
    /// [`Effect::Acked`] or [`Effect::Failed`].
    pub fn publish(
        &mut self,
        envelope: Vec<u8>,
        priority: Priority,
        ack: bool,
        now: u64,
    ) -> Result<Option<RequestId>, SessionError> {
        if ack && self.requests.len() >= self.config.max_requests {
            return Err(SessionError::TooManyRequests);
        }
        let request = ack.then(|| self.add_request(RequestKind::Once, now));
        if matches!(self.phase, Phase::Open { .. }) {
            self.send_publish(envelope, request);
            return Ok(request);
        }
        match self.queue.push(priority, Queued { bytes: envelope, request }) {
            Ok(evicted) => {
                for (lost, queued) in evicted {
                    self.stats.dropped[lost.index()] += 1;
                    if let Some(id) = queued.request {
                        self.fail(id, Failure::Dropped);
                    }
                }
                Ok(request)
            }
            Err(_) => {
                self.stats.dropped[priority.index()] += 1;
                if let Some(id) = request {
                    self.forget(id);
                }
                Err(SessionError::QueueFull { priority })
            }
        }
    }

    /// Sends a `report` frame when open; false otherwise.
    pub fn report(&mut self, kind: &str, wasm: u64, js: u64) -> bool {
        if !matches!(self.phase, Phase::Open { .. }) {
            return false;
        }
        self.send(&ClientFrame::Report { kind: kind.to_string(), wasm, js });
        true
    }

    // ---- transport and clock inputs ----

    /// The transport is open: sends `hello`.
    pub fn connected(&mut self, transport: TransportId, now: u64) {
        let _ = now;
        if let Phase::Opening { transport: current, deadline } = self.phase {
            if current == transport {
                self.phase = Phase::Hello { transport, deadline };
                self.send(&ClientFrame::Hello { v: PROTOCOL_VERSION, token: self.config.token.clone() });
            }
        }
    }

    /// The transport closed (or failed to open) with this close code.
    pub fn closed(&mut self, transport: TransportId, code: u16, now: u64) {
        if self.phase.transport() == Some(transport) {
            self.lost(code, now);
            self.update_state();
        }
    }

    /// A binary frame arrived on the transport.
    pub fn receive(&mut self, transport: TransportId, bytes: &[u8], now: u64) {
        if !matches!(self.phase, Phase::Hello { .. } | Phase::Open { .. })
            || self.phase.transport() != Some(transport)
        {
            return;
        }
        match ServerFrame::decode(bytes) {
            Ok(frame) => self.handle(transport, frame, now),
            Err(e) => {
                self.stats.errors += 1;
                self.effects.push_back(Effect::Error {
                    code: "BAD_FRAME".to_string(),
                    message: alloc::format!("undecodable frame from the bridge: {e}"),
                });
            }
        }
    }

    /// A decoded frame arrived on the transport.
    pub fn handle(&mut self, transport: TransportId, frame: ServerFrame, now: u64) {
        if !matches!(self.phase, Phase::Hello { .. } | Phase::Open { .. })
            || self.phase.transport() != Some(transport)
        {
            return;
        }
        match frame {
            ServerFrame::Welcome { .. } => {
                if matches!(self.phase, Phase::Hello { .. }) {
                    self.welcome(transport, now);
                }
            }
            ServerFrame::Event { envelope } => {
                self.stats.events += 1;
                self.effects.push_back(Effect::Event(envelope));
            }
            ServerFrame::Ack { ack } => self.answer(ack, None),
            ServerFrame::Error { code, message, ack } => {
                if matches!(self.phase, Phase::Hello { .. }) && FATAL_CODES.contains(&code.as_str()) {
                    self.stats.errors += 1;
                    self.actions.push_back(Action::Close {
                        transport,
                        code: CLOSE_NORMAL,
                        reason: "hello refused",
                    });
                    self.stop(Stop::Refused { code, message });
                } else if let Some(ack) = ack.filter(|&ack| self.wire.get_mut(ack).is_some()) {
                    self.answer(ack, Some((code, message)));
                } else {
                    self.stats.errors += 1;
                    self.effects.push_back(Effect::Error { code, message });
                }
            }
            ServerFrame::Pong { nonce } => {
                if self.awaiting_pong == Some(nonce) {
                    self.awaiting_pong = None;
                }
            }
        }
        self.update_state();
    }

    /// Time passed: fires what is due at `now` (request deadlines, backoff,
    /// welcome deadline, keepalive).
    pub fn tick(&mut self, now: u64) {
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.stats.timeouts += 1;
            self.fail(id, Failure::Timeout);
        }
        match self.phase {
            Phase::Waiting { until } if now >= until => {
                self.stats.reconnects += 1;
                self.open(now);
            }
            Phase::Opening { transport, deadline } | Phase::Hello { transport, deadline }
                if now >= deadline =>
            {
                self.actions.push_back(Action::Close {
                    transport,
                    code: CLOSE_NO_WELCOME,
                    reason: "no welcome in time",
                });
                self.lost(CLOSE_NO_WELCOME, now);
            }
            Phase::Open { transport } if self.config.ping_interval_ms > 0 && now >= self.ping_at => {
                if self.awaiting_pong.is_some() {
                    self.stats.dead_connections += 1;
                    self.actions.push_back(Action::Close {
                        transport,
                        code: CLOSE_NO_PONG,
                        reason: "no pong from the bridge",
                    });
                    self.lost(CLOSE_NO_PONG, now);
                } else {
                    let nonce = self.next_nonce;
                    self.next_nonce += 1;
                    self.awaiting_pong = Some(nonce);
                    self.ping_at = now.saturating_add(self.config.ping_interval_ms);
                    self.send(&ClientFrame::Ping { nonce });
                }
            }
            _ => {}
        }
        self.update_state();
    }

    // ---- internals ----

    /// The index of `pattern` in `subscriptions`.
    fn subscription(&self, pattern: &str) -> Option<usize> {
        self.subscriptions.iter().position(|sub| sub.pattern == pattern)
    }

    /// Removes `pattern` from `subscriptions` (keeping the order); false when absent.
    fn remove_subscription(&mut self, pattern: &str) -> bool {
        match self.subscription(pattern) {
            Some(i) => {
                self.subscriptions.remove(i);
                true
            }
            None => false,
        }
    }

    fn open(&mut self, now: u64) {
        let transport = TransportId(self.next_transport);
        self.next_transport += 1;
        let deadline = now.saturating_add(self.config.connect_timeout_ms);
        self.phase = Phase::Opening { transport, deadline };
        self.actions.push_back(Action::Open { transport });
    }

    fn welcome(&mut self, transport: TransportId, now: u64) {
        self.phase = Phase::Open { transport };
        self.ever_open = true;
        self.give_up_at = None;
        self.backoff.reset();
        self.awaiting_pong = None;
        self.ping_at = now.saturating_add(self.config.ping_interval_ms);
        // Subscribe requests not on the wire ride on their pattern's resubscribe.
        // (Few: only those made while not open; in id order, as the ack answers them.)
        let waiting: Vec<(String, RequestId)> = self
            .requests
            .iter()
            .filter_map(|(id, request)| match (&request.kind, request.sent) {
                (RequestKind::Subscribe(pattern), false) => Some((pattern.clone(), *id)),
                _ => None,
            })
            .collect();
        let patterns: Vec<String> = self.subscriptions.iter().map(|sub| sub.pattern.clone()).collect();
        for pattern in patterns {
            let requests = waiting.iter().filter(|(p, _)| *p == pattern).map(|&(_, id)| id).collect();
            self.send_subscribe(pattern, requests);
        }
        while let Some(Queued { bytes, request }) = self.queue.pop() {
            // A request that timed out while queued was answered: never send it.
            if request.is_none_or(|id| self.requests.get_mut(id).is_some()) {
                self.send_publish(bytes, request);
            }
        }
    }

    /// The current transport is gone.
    fn lost(&mut self, code: u16, now: u64) {
        self.awaiting_pong = None;
        self.wire.clear();
        for sub in &mut self.subscriptions {
            sub.acked = false;
        }
        let mut unknown = Vec::new();
        for (id, request) in self.requests.iter_mut() {
            match (&request.kind, request.sent) {
                (RequestKind::Once, true) => unknown.push(*id),
                (RequestKind::Subscribe(_), true) => request.sent = false,
                _ => {}
            }
        }
        for id in unknown {
            self.fail(id, Failure::Disconnected);
        }
        self.effects.push_back(Effect::Disconnected { code });
        if !self.config.reconnect {
            self.stop(Stop::Lost { close_code: code });
        } else if !self.ever_open && self.give_up_at.is_some_and(|at| now >= at) {
            self.stop(Stop::Unavailable { close_code: code });
        } else {
            let delay_ms = self.backoff.next_delay();
            self.phase = Phase::Waiting { until: now.saturating_add(delay_ms) };
            self.effects.push_back(Effect::ReconnectIn { delay_ms, attempt: self.backoff.attempt() });
        }
    }

    fn stop(&mut self, reason: Stop) {
        self.phase = Phase::Closed;
        self.awaiting_pong = None;
        self.wire.clear();
        let ids: Vec<RequestId> = self.requests.iter().map(|&(id, _)| id).collect();
        for id in ids {
            self.fail(id, Failure::Closed);
        }
        self.effects.push_back(Effect::Stopped(reason));
    }

    fn update_state(&mut self) {
        let state = self.state();
        if state != self.seen_state {
            self.seen_state = state;
            self.effects.push_back(Effect::State(state));
        }
    }

    fn add_request(&mut self, kind: RequestKind, now: u64) -> RequestId {
        let id = self.take_id();
        let deadline = now.saturating_add(self.config.request_timeout_ms);
        self.requests.insert(id, Request { deadline, kind, sent: false });
        // Ids only grow and `now` does not go back: almost always a push.
        let at = self.deadlines.partition_point(|&entry| entry < (deadline, id));
        self.deadlines.insert(at, (deadline, id));
        id
    }

    fn take_id(&mut self) -> RequestId {
        self.next_id += 1;
        RequestId(self.next_id)
    }

    /// Removes a request without an effect; true when it was waiting.
    fn forget(&mut self, id: RequestId) -> bool {
        match self.requests.remove(id) {
            Some(request) => {
                if let Ok(at) = self.deadlines.binary_search(&(request.deadline, id)) {
                    self.deadlines.remove(at);
                }
                true
            }
            None => false,
        }
    }

    fn fail(&mut self, id: RequestId, failure: Failure) {
        if self.forget(id) {
            self.effects.push_back(Effect::Failed(id, failure));
        }
    }

    fn succeed(&mut self, id: RequestId) {
        if self.forget(id) {
            self.effects.push_back(Effect::Acked(id));
        }
    }

    /// The bridge answered the wire `ack`: accepted, or refused with `(code, message)`.
    fn answer(&mut self, ack: u64, refusal: Option<(String, String)>) {
        let Some(wire) = self.wire.remove(ack) else { return };
        match (wire, refusal) {
            (Wire::Once(id), None) => self.succeed(id),
            (Wire::Once(id), Some((code, message))) => self.fail(id, Failure::Refused { code, message }),
            (Wire::Subscribe { pattern, requests }, None) => {
                if let Some(i) = self.subscription(&pattern) {
                    self.subscriptions[i].acked = true;
                    self.effects.push_back(Effect::Subscribed(pattern));
                }
                for id in requests {
                    self.succeed(id);
                }
            }
            (Wire::Subscribe { pattern, requests }, Some((code, message))) => {
                for id in requests {
                    self.fail(id, Failure::Refused { code: code.clone(), message: message.clone() });
                }
                if self.remove_subscription(&pattern) {
                    self.effects.push_back(Effect::SubscriptionRefused { pattern, code, message });
                }
            }
        }
    }

    fn send(&mut self, frame: &ClientFrame) {
        if let Some(transport) = self.phase.transport() {
            self.actions.push_back(Action::Send { transport, frame: frame.encode() });
        }
    }

    /// Sends `subscribe` for `pattern`, answering `requests` with its ack.
    fn send_subscribe(&mut self, pattern: String, requests: Vec<RequestId>) {
        let ack = match requests.first() {
            Some(&id) if requests.len() == 1 => id,
            _ => self.take_id(),
        };
        for id in &requests {
            if let Some(request) = self.requests.get_mut(*id) {
                request.sent = true;
            }
        }
        self.send(&ClientFrame::Subscribe { pattern: pattern.clone(), ack: Some(ack.0) });
        self.wire.insert(ack.0, Wire::Subscribe { pattern, requests });
    }

    fn send_publish(&mut self, envelope: Vec<u8>, request: Option<RequestId>) {
        if let Some(id) = request {
            if let Some(r) = self.requests.get_mut(id) {
                r.sent = true;
            }
            self.wire.insert(id.0, Wire::Once(id));
        }
        self.stats.published += 1;
        self.send(&ClientFrame::Publish { envelope, ack: request.map(|id| id.0) });
    }
}
