//! A native client of the bridge: connect, subscribe, publish with
//! acknowledgement, receive events.
//!
//! The protocol itself (hello, resubscribing in order after a reconnect,
//! request deadlines, backoff with jitter, keepalive pings, the bounded
//! offline queue) is [`swarmbus_core::session`]; this module is its tokio
//! shell: one task owns the socket, feeds frames and the time into the
//! session, writes the frames it returns, and sleeps until its next timer.
//!
//! ```no_run
//! # async fn run() -> Result<(), swarmbus_bridge::client::ClientError> {
//! use swarmbus_bridge::client::{Client, ClientOptions};
//! use swarmbus_core::{Envelope, Priority};
//! let (client, mut events) = Client::connect("ws://127.0.0.1:8080/ws", ClientOptions::default()).await?;
//! client.subscribe("swarm.*.task").await?;
//! client.publish(&Envelope::new(1, "swarm.alpha.task", Priority::TASK, 0, b"job".to_vec())).await?;
//! if let Some(event) = events.recv().await {
//!     println!("{} on {}", event.id, event.topic);
//! }
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use swarmbus_core::session::{
    Action, Effect, Failure, RequestId, SessionError, SessionState, SessionStats, Stop, TransportId,
    CLOSE_NO_WELCOME,
};
use swarmbus_core::{envelope, Envelope, Priority, Session, SessionConfig};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Utf8Bytes};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async_with_config, MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
/// A connection being opened (boxed: a socket is large).
type Opening = Pin<Box<dyn Future<Output = Result<Box<Socket>, String>> + Send>>;

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Token sent in `hello`.
    pub token: Option<String>,
    /// Reconnect after the connection drops (default true).
    pub reconnect: bool,
    /// Ceiling of the first reconnect delay (default 50 ms); doubles up to
    /// `max_backoff`; each delay is drawn between half the ceiling and the ceiling.
    pub min_backoff: Duration,
    /// Largest reconnect delay ceiling (default 2 s).
    pub max_backoff: Duration,
    /// Events buffered for the application before new ones are dropped and counted (default 65 536).
    pub event_buffer: usize,
    /// How long a publish or subscribe waits for the bridge's answer (default 5 s).
    pub ack_timeout: Duration,
    /// Keepalive ping interval; a ping unanswered by the next one closes the
    /// connection and reconnects (default 15 s; zero turns pings off).
    pub ping_interval: Duration,
    /// Time to open a connection and be welcomed (default 10 s); also bounds a socket write.
    pub connect_timeout: Duration,
    /// Publishes held while disconnected (default 1 024).
    pub offline_capacity: usize,
    /// Envelope bytes held while disconnected (default 4 MiB).
    pub offline_bytes: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            token: None,
            reconnect: true,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            event_buffer: 65_536,
            ack_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(10),
            offline_capacity: 1_024,
            offline_bytes: 4 << 20,
        }
    }
}

impl ClientOptions {
    fn session_config(&self) -> SessionConfig {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        SessionConfig {
            token: self.token.clone(),
            reconnect: self.reconnect,
            min_backoff_ms: ms(self.min_backoff),
            max_backoff_ms: ms(self.max_backoff),
            connect_timeout_ms: ms(self.connect_timeout),
            // `Client::connect` fails when its first attempt does.
            give_up_after_ms: Some(0),
            ping_interval_ms: ms(self.ping_interval),
            request_timeout_ms: ms(self.ack_timeout),
            offline_max_items: self.offline_capacity,
            offline_max_bytes: self.offline_bytes,
            seed: fastrand::u64(..),
            ..SessionConfig::default()
        }
    }
}

/// What can go wrong for a client call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientError {
    /// Could not connect or greet the bridge.
    Connect(String),
    /// The connection dropped before the bridge answered: the publish may or may not have been taken.
    Disconnected,
    /// The bridge refused the request (its code), or the session did before
    /// sending it: `INVALID_PATTERN`, `QUEUE_FULL` (disconnected, and the
    /// offline queue is full), `DROPPED` (evicted from the offline queue by
    /// more urgent publishes), `TOO_MANY_REQUESTS`, `TOO_MANY_SUBSCRIPTIONS`.
    Refused {
        /// The error code.
        code: String,
        /// Its message.
        message: String,
    },
    /// No answer within `ack_timeout`.
    Timeout,
    /// The envelope could not be encoded.
    Encode(String),
    /// The client was dropped, or stopped for good.
    Closed,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(why) => write!(f, "cannot connect: {why}"),
            Self::Disconnected => f.write_str("disconnected before the answer"),
            Self::Refused { code, message } => write!(f, "{code}: {message}"),
            Self::Timeout => f.write_str("no acknowledgement in time"),
            Self::Encode(why) => write!(f, "cannot encode: {why}"),
            Self::Closed => f.write_str("client closed"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<SessionError> for ClientError {
    fn from(e: SessionError) -> Self {
        Self::Refused { code: e.code().to_owned(), message: e.to_string() }
    }
}

impl From<Failure> for ClientError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Refused { code, message } => Self::Refused { code, message },
            Failure::Timeout => Self::Timeout,
            Failure::Disconnected => Self::Disconnected,
            Failure::Closed => Self::Closed,
            other => Self::Refused { code: other.code().to_owned(), message: other.to_string() },
        }
    }
}

type Waiter = oneshot::Sender<Result<(), ClientError>>;

enum Command {
    Subscribe(String, Waiter),
    Unsubscribe(String),
    /// `ack`: answer when the bridge did; otherwise as soon as the session took it.
    Publish {
        envelope: Vec<u8>,
        priority: Priority,
        ack: bool,
        waiter: Waiter,
    },
    Refresh(String, Waiter),
}

/// Counters of a client, cumulative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// The protocol session's: publishes written, events, offline-queue drops by priority,
    /// reconnects, dead connections, timeouts, errors.
    pub session: SessionStats,
    /// Events dropped because the application's event receiver was full (or gone).
    pub dropped_events: u64,
    /// Publishes waiting in the offline queue now.
    pub queued: usize,
}

/// A handle to a bridge connection; cheap to clone. The connection closes
/// when every handle is dropped.
#[derive(Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<SessionState>,
    stats: Arc<Mutex<ClientStats>>,
}

impl Client {
    /// Connects to `url` (e.g. `ws://127.0.0.1:8080/ws`) and greets the bridge.
    /// Returns the client and the stream of events for its subscriptions.
    /// Fails when this first attempt fails; later drops reconnect on their own.
    pub async fn connect(
        url: &str,
        options: ClientOptions,
    ) -> Result<(Client, mpsc::Receiver<Envelope>), ClientError> {
        let (commands, command_rx) = mpsc::channel(1024);
        let (events, event_rx) = mpsc::channel(options.event_buffer.max(1));
        let (ready, ready_rx) = oneshot::channel();
        let (state, state_rx) = watch::channel(SessionState::Idle);
        let stats = Arc::new(Mutex::new(ClientStats::default()));
        let shell = Shell {
            state,
            stats: stats.clone(),
            url: url.to_owned(),
            session: Session::new(options.session_config()),
            start: Instant::now(),
            write_timeout: options.connect_timeout.max(Duration::from_millis(1)),
            socket: None,
            opening: None,
            waiters: HashMap::new(),
            events,
            dropped_events: 0,
            ready: Some(ready),
            last_error: String::from("closed before the welcome"),
        };
        tokio::spawn(shell.run(command_rx));
        ready_rx.await.map_err(|_| ClientError::Closed)??;
        Ok((Client { commands, state: state_rx, stats }, event_rx))
    }

    /// The connection's state now: `Open`, `Reconnecting`, or `Closed` once it stopped for good.
    pub fn state(&self) -> SessionState {
        *self.state.borrow()
    }

    /// Counters, as of the connection task's last step.
    pub fn stats(&self) -> ClientStats {
        *self.stats.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A receiver of the connection's state changes (`watch::Receiver::wait_for` waits for one).
    pub fn watch_state(&self) -> watch::Receiver<SessionState> {
        self.state.clone()
    }

    /// Subscribes to a pattern; kept across reconnects. Waits until the bridge
    /// accepted it (after the next reconnect, when disconnected).
    pub async fn subscribe(&self, pattern: &str) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Subscribe(pattern.to_owned(), tx)).await?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    /// Unsubscribes from a pattern.
    pub async fn unsubscribe(&self, pattern: &str) -> Result<(), ClientError> {
        self.command(Command::Unsubscribe(pattern.to_owned())).await
    }

    /// Publishes an envelope and waits for the bridge's acknowledgement. While
    /// disconnected it waits in the offline queue (see [`ClientOptions`]).
    pub async fn publish(&self, envelope: &Envelope) -> Result<(), ClientError> {
        let bytes = envelope.encode().map_err(|e| ClientError::Encode(e.to_string()))?;
        self.publish_with(bytes, envelope.priority, true).await
    }

    /// Publishes an already encoded envelope and waits for the acknowledgement.
    pub async fn publish_bytes(&self, envelope: Vec<u8>) -> Result<(), ClientError> {
        // Bytes that are not an envelope go out anyway: the bridge's refusal is the answer.
        let priority = envelope::peek_header(&envelope).map_or(Priority::NORMAL, |header| header.priority);
        self.publish_with(envelope, priority, true).await
    }

    /// Publishes without asking for an acknowledgement: returns once the
    /// connection task took it (to be written at once, or queued offline while
    /// disconnected) or refused it (`QUEUE_FULL`). A refusal by the bridge is
    /// not reported, and a publish written just before the connection drops
    /// may be lost.
    pub async fn send(&self, envelope: &Envelope) -> Result<(), ClientError> {
        let bytes = envelope.encode().map_err(|e| ClientError::Encode(e.to_string()))?;
        self.publish_with(bytes, envelope.priority, false).await
    }

    /// Replaces the token: on the open connection (a `refresh` frame; waits for
    /// the bridge's answer, e.g. `INVALID_TOKEN`) and for every later `hello`.
    /// While disconnected it only changes the next `hello`'s token.
    pub async fn refresh_token(&self, token: &str) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Refresh(token.to_owned(), tx)).await?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    async fn publish_with(
        &self,
        envelope: Vec<u8>,
        priority: Priority,
        ack: bool,
    ) -> Result<(), ClientError> {
        let (waiter, rx) = oneshot::channel();
        self.command(Command::Publish { envelope, priority, ack, waiter }).await?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    async fn command(&self, command: Command) -> Result<(), ClientError> {
        self.commands.send(command).await.map_err(|_| ClientError::Closed)
    }
}

/// The connection task: the session plus the socket, the clock and the waiters.
struct Shell {
    /// Published for `Client::state`.
    state: watch::Sender<SessionState>,
    /// Published for `Client::stats` after every step.
    stats: Arc<Mutex<ClientStats>>,
    url: String,
    session: Session,
    start: Instant,
    write_timeout: Duration,
    socket: Option<(TransportId, Socket)>,
    opening: Option<(TransportId, Opening)>,
    waiters: HashMap<RequestId, Waiter>,
    events: mpsc::Sender<Envelope>,
    dropped_events: u64,
    /// Answers `Client::connect`: the first welcome, or why not.
    ready: Option<Waiter>,
    last_error: String,
}

impl Shell {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let now = self.now();
        if self.session.connect(now).is_err() {
            return;
        }
        loop {
            self.pump().await;
            if self.session.state() == SessionState::Closed {
                return;
            }
            let wake = self.session.poll_timeout().map(|at| self.start + Duration::from_millis(at));
            let opening = async {
                match &mut self.opening {
                    Some((transport, future)) => (*transport, future.await),
                    None => std::future::pending().await,
                }
            };
            let message = async {
                match &mut self.socket {
                    Some((transport, socket)) => (*transport, socket.next().await),
                    None => std::future::pending().await,
                }
            };
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            enum Input {
                Command(Option<Command>),
                Opened(TransportId, Result<Box<Socket>, String>),
                Message(TransportId, Option<Result<Message, String>>),
                Wake,
            }
            let input = tokio::select! {
                command = commands.recv() => Input::Command(command),
                (transport, opened) = opening => Input::Opened(transport, opened),
                (transport, message) = message => {
                    Input::Message(transport, message.map(|m| m.map_err(|e| e.to_string())))
                }
                () = sleep => Input::Wake,
            };
            let now = self.now();
            match input {
                Input::Command(Some(command)) => self.command(command, now),
                // Every handle is gone: close for good.
                Input::Command(None) => self.session.close(now),
                Input::Opened(transport, Ok(socket)) => {
                    self.opening = None;
                    self.socket = Some((transport, *socket));
                    self.session.connected(transport, now);
                }
                Input::Opened(transport, Err(e)) => {
                    self.opening = None;
                    self.last_error = e;
                    self.session.closed(transport, 1006, now);
                }
                Input::Message(transport, Some(Ok(Message::Binary(bytes)))) => {
                    self.session.receive(transport, &bytes, now);
                }
                Input::Message(_, Some(Ok(_))) => {}
                Input::Message(transport, closed) => {
                    let code = match closed {
                        Some(Ok(Message::Close(Some(frame)))) => u16::from(frame.code),
                        Some(Err(e)) => {
                            self.last_error = e;
                            1006
                        }
                        _ => 1005,
                    };
                    self.socket = None;
                    self.session.closed(transport, code, now);
                }
                Input::Wake => self.session.tick(now),
            }
        }
    }

    fn command(&mut self, command: Command, now: u64) {
        let (result, waiter) = match command {
            Command::Subscribe(pattern, waiter) => (self.session.subscribe(&pattern, true, now), waiter),
            Command::Unsubscribe(pattern) => {
                self.session.unsubscribe(&pattern);
                return;
            }
            Command::Refresh(token, waiter) => (self.session.refresh_token(token, now), waiter),
            Command::Publish { envelope, priority, ack, waiter } => {
                (self.session.publish(envelope, priority, ack, now), waiter)
            }
        };
        match result {
            // Answered by the request's outcome (an effect).
            Ok(Some(id)) => drop(self.waiters.insert(id, waiter)),
            // Nothing to wait for: taken.
            Ok(None) => drop(waiter.send(Ok(()))),
            Err(e) => drop(waiter.send(Err(e.into()))),
        }
    }

    /// Carries out what the session decided: transport actions, then effects.
    async fn pump(&mut self) {
        let mut unflushed = false;
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::Open { transport } => {
                    let url = self.url.clone();
                    self.socket = None;
                    self.opening = Some((
                        transport,
                        Box::pin(async move {
                            connect_async_with_config(&url, None, true)
                                .await
                                .map(|(socket, _)| Box::new(socket))
                                .map_err(|e| e.to_string())
                        }),
                    ));
                }
                Action::Send { transport, frame } => {
                    let Some((current, socket)) = &mut self.socket else { continue };
                    if *current != transport {
                        continue;
                    }
                    // Frames are fed here and flushed once below: a burst costs about one write.
                    let fed =
                        tokio::time::timeout(self.write_timeout, socket.feed(Message::Binary(frame.into())));
                    match fed.await {
                        Ok(Ok(())) => unflushed = true,
                        Ok(Err(e)) => self.write_failed(transport, e.to_string()),
                        Err(_) => self.write_failed(transport, "write timed out".into()),
                    }
                }
                Action::Close { transport, code, reason } => {
                    if self.opening.as_ref().is_some_and(|(t, _)| *t == transport) {
                        self.opening = None;
                    }
                    if let Some((current, mut socket)) = self.socket.take() {
                        if current == transport {
                            let frame =
                                CloseFrame { code: code.into(), reason: Utf8Bytes::from_static(reason) };
                            let _ = tokio::time::timeout(self.write_timeout, socket.close(Some(frame))).await;
                        } else {
                            self.socket = Some((current, socket));
                        }
                    }
                }
            }
        }
        if unflushed {
            self.flush().await;
        }
        while let Some(effect) = self.session.poll_effect() {
            self.effect(effect);
        }
        let stats = ClientStats {
            session: self.session.stats(),
            dropped_events: self.dropped_events,
            queued: self.session.queued(),
        };
        *self.stats.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = stats;
    }

    async fn flush(&mut self) {
        let Some((transport, socket)) = &mut self.socket else { return };
        let transport = *transport;
        match tokio::time::timeout(self.write_timeout, socket.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.write_failed(transport, e.to_string()),
            Err(_) => self.write_failed(transport, "write timed out".into()),
        }
    }

    fn write_failed(&mut self, transport: TransportId, error: String) {
        self.last_error = error;
        self.socket = None;
        let now = self.now();
        self.session.closed(transport, 1006, now);
    }

    fn effect(&mut self, effect: Effect) {
        match effect {
            Effect::Event(bytes) => match envelope::decode(&bytes) {
                Ok(event) => {
                    if self.events.try_send(event).is_err() {
                        self.dropped_events += 1;
                        tracing::warn!(dropped = self.dropped_events, "event buffer full; dropping an event");
                    }
                }
                Err(e) => tracing::warn!("undecodable event from the bridge: {e}"),
            },
            Effect::Acked(id) => {
                if let Some(waiter) = self.waiters.remove(&id) {
                    let _ = waiter.send(Ok(()));
                }
            }
            Effect::Failed(id, failure) => {
                if let Some(waiter) = self.waiters.remove(&id) {
                    let _ = waiter.send(Err(failure.into()));
                }
            }
            Effect::State(state) => {
                self.state.send_replace(state);
                if state == SessionState::Open {
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(Ok(()));
                    }
                }
            }
            Effect::Stopped(stop) => {
                let error = match stop {
                    Stop::Refused { code, message } => ClientError::Refused { code, message },
                    Stop::Application => ClientError::Closed,
                    Stop::Unavailable { .. } | Stop::Lost { .. } => {
                        ClientError::Connect(self.last_error.clone())
                    }
                };
                match self.ready.take() {
                    Some(ready) => drop(ready.send(Err(error))),
                    None => tracing::warn!("bridge client stopped: {error}"),
                }
            }
            Effect::SubscriptionRefused { pattern, code, message } => {
                tracing::warn!("bridge refused the subscription {pattern}: {code}: {message}");
            }
            Effect::Error { code, message } => tracing::warn!("bridge error {code}: {message}"),
            Effect::Disconnected { code } => {
                if code == CLOSE_NO_WELCOME {
                    self.last_error = String::from("no welcome within the connect timeout");
                }
                tracing::info!(code, "bridge connection lost");
            }
            Effect::ReconnectIn { delay_ms, attempt } => {
                tracing::debug!(delay_ms, attempt, "reconnecting to the bridge");
            }
            Effect::Subscribed(_) => {}
        }
    }
}
