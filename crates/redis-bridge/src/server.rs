//! HTTP and WebSocket endpoints: `GET /ws`, `POST /v1/publish`, `GET /livez`,
//! `GET /readyz` (and its alias `GET /healthz`), `GET /metrics`.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::{expiry_deadline, Unauthenticated, UnauthenticatedSlots, CLOSE_AUTH_REFUSED};
use crate::auth::{Auth, Grants};
use crate::broker::{Broker, BrokerLimits, ClientId, Outbox};
use crate::config::Config;
use crate::error::BridgeError;
use crate::http_api::HttpError;
use crate::metrics::{CodeLabel, Metrics};
use crate::protocol::{ClientFrame, ServerFrame, PROTOCOL_VERSION};
use crate::rate::TokenBucket;
use crate::relay::{RedisRelay, Reply};
use crate::report::{KindSlots, Reporter};
use crate::writer::{write_frames, WriterEnd};

/// Close code sent to a client that keeps sending invalid frames (RFC 6455 policy violation).
pub const CLOSE_POLICY: u16 = 1008;

/// Shared state of one bridge.
pub struct Bridge {
    /// The local broker: this bridge's clients and their subscriptions.
    pub broker: Arc<Broker>,
    /// The Redis relay, in Redis mode.
    pub relay: Option<Arc<RedisRelay>>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    auth: Option<Auth>,
    config: Config,
    /// Label slots of `swarmbus_client_events_total{kind}`.
    kinds: KindSlots,
    /// The WebSocket connections, waited for on shutdown.
    connections: TaskTracker,
    /// Cancelled when the shutdown grace is over: what is still open is dropped.
    abort: CancellationToken,
    /// WebSockets that have not sent an accepted `hello` yet (`--max-unauthenticated`).
    unauthenticated: UnauthenticatedSlots,
    /// One `--publish-rate` bucket shared by all HTTP publishes.
    http_bucket: std::sync::Mutex<TokenBucket>,
}

pub use crate::report::MAX_CLIENT_KINDS;

impl Bridge {
    /// A bridge with `config`. In Redis mode this spawns the subscriber task,
    /// so it must be called inside a Tokio runtime.
    pub fn new(config: Config) -> Result<Arc<Self>, String> {
        let metrics = Arc::new(Metrics::new(config.redis.is_some()));
        let limits = BrokerLimits {
            send_queue: config.send_queue,
            send_queue_bytes: config.send_queue_bytes,
            max_subscriptions: config.max_subscriptions,
            max_envelope: config.max_frame,
        };
        let broker = Arc::new(Broker::new(limits, metrics.clone()));
        let relay = match &config.redis {
            Some(url) => {
                let relay = RedisRelay::with_timeout(
                    url,
                    metrics.clone(),
                    config.relay_queue_bytes,
                    config.redis_timeout,
                )?;
                tokio::spawn(relay.clone().run_subscriber(broker.clone()));
                Some(relay)
            }
            None => None,
        };
        let auth = config.auth_secret.as_deref().map(Auth::new);
        let unauthenticated = UnauthenticatedSlots::new(config.max_unauthenticated);
        let http_bucket = std::sync::Mutex::new(TokenBucket::new(config.publish_rate, config.publish_burst));
        Ok(Arc::new(Self {
            broker,
            relay,
            metrics,
            auth,
            config,
            kinds: KindSlots::default(),
            connections: TaskTracker::new(),
            abort: CancellationToken::new(),
            unauthenticated,
            http_bucket,
        }))
    }

    /// The settings the bridge was started with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The grants of a token: everything on an open bridge, else what the token says.
    pub fn authenticate(&self, token: Option<&str>) -> Result<Grants, BridgeError> {
        match &self.auth {
            None => Ok(Grants::open()),
            Some(auth) => auth.verify(token),
        }
    }

    /// Validates an envelope, checks the publisher's grants, and sends it on:
    /// to local subscribers (embedded mode; returns how many) or to Redis
    /// (returns `None` once Redis took it).
    pub async fn publish(&self, envelope: &[u8], grants: &Grants) -> Result<Option<usize>, BridgeError> {
        let topic = self.admit(envelope, grants)?;
        match &self.relay {
            None => self.broker.deliver(envelope).map(Some),
            Some(relay) => {
                let (waiter, outcome) = tokio::sync::oneshot::channel();
                relay.publish(&topic, envelope.to_vec(), Reply::Waiter(waiter)).await?;
                let outcome = outcome.await;
                outcome.unwrap_or_else(|_| {
                    Err(BridgeError::Unavailable("the Redis publisher stopped".into()))
                })?;
                Ok(None)
            }
        }
    }

    /// A WebSocket client's publish: the `ack` (or a later `error` frame from
    /// Redis mode) goes to `outbox`. An error returned here is the client's
    /// fault (bad envelope, no grant); Redis trouble arrives as a frame.
    pub async fn publish_from(
        &self,
        envelope: Vec<u8>,
        grants: &Grants,
        outbox: &Arc<Outbox>,
        ack: Option<u64>,
    ) -> Result<(), BridgeError> {
        let topic = self.admit(&envelope, grants)?;
        match &self.relay {
            None => {
                self.broker.deliver(&envelope)?;
                if let Some(ack) = ack {
                    outbox.send_control(&ServerFrame::Ack { ack });
                }
                Ok(())
            }
            Some(relay) => {
                let reply = Reply::Frame { outbox: outbox.owe(), ack };
                if let Err(e) = relay.publish(&topic, envelope, reply).await {
                    self.metrics.error(e.code());
                    outbox.send_control(&ServerFrame::error(e.code(), &e, ack));
                }
                Ok(())
            }
        }
    }

    /// A publish from inside the process (the demo simulator): trusted, never
    /// waits; in Redis mode a full publish queue drops it (counted as
    /// `swarmbus_errors_total{code="UNAVAILABLE"}`).
    pub fn publish_detached(&self, envelope: Vec<u8>) {
        let Ok(topic) = self.admit(&envelope, &Grants::open()) else { return };
        let sent = match &self.relay {
            None => self.broker.deliver(&envelope).is_ok(),
            Some(relay) => relay.try_publish(&topic, envelope),
        };
        if !sent {
            self.metrics.error("UNAVAILABLE");
        }
    }

    /// Takes one publish from the HTTP bucket: `RATE_LIMITED` when all HTTP
    /// publishes together went beyond `--publish-rate` (bursts up to `--publish-burst`).
    pub fn take_http_publish(&self) -> Result<(), BridgeError> {
        let mut bucket = self.http_bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if bucket.take() {
            Ok(())
        } else {
            Err(BridgeError::RateLimited(self.config.publish_rate))
        }
    }

    /// Validates a publish and checks grants; counts it; returns its topic.
    fn admit(&self, envelope: &[u8], grants: &Grants) -> Result<String, BridgeError> {
        let (topic, priority) = self.broker.validate(envelope)?;
        if !grants.may_publish(&topic) {
            return Err(BridgeError::Forbidden(format!("publishing on {topic}")));
        }
        self.broker.count_published(priority);
        Ok(topic)
    }

    /// True when the bridge can deliver: always in embedded mode; in Redis
    /// mode while the subscription is up and Redis answers its health `PING`
    /// within `--redis-timeout` ([`RedisRelay::ready`]).
    pub fn is_ready(&self) -> bool {
        self.relay.as_ref().is_none_or(|r| r.ready())
    }
}

/// The routes.
pub fn app(bridge: Arc<Bridge>) -> Router {
    let max_frame = bridge.config.max_frame;
    let static_dir = bridge.config.static_dir.clone();
    let router = Router::new()
        .route("/ws", get(ws_upgrade))
        .route("/v1/publish", post(crate::http_api::publish))
        .route_layer(axum::middleware::map_response(crate::http_api::json_errors))
        .merge(crate::probes::routes())
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(max_frame))
        .with_state(bridge);
    match static_dir {
        Some(dir) => router.fallback_service(crate::static_files::service(dir)),
        None => router,
    }
}

/// Initial WebSocket read and write buffer per connection (tungstenite's default is 128 KiB each).
const WS_BUFFER: usize = 4 * 1024;

/// Close code sent to every client when the bridge shuts down ("going away").
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// Serves until `shutdown` resolves; then shuts down gracefully:
///
/// 1. stops accepting connections;
/// 2. stops reading from every WebSocket client, sends it everything queued
///    for it (and the replies still owed for its Redis-mode publishes), then
///    a close frame with code 1001 ("going away"); HTTP requests in flight
///    are answered;
/// 3. after `--shutdown-grace` (default 5 s), drops whatever is still open
///    (a client that does not read, an unfinished HTTP request) and returns.
pub async fn serve(
    listener: TcpListener,
    bridge: Arc<Bridge>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, bridge, Router::new(), shutdown).await
}

/// [`serve`] with `extra` routes next to the bridge's own (the demo's).
pub async fn serve_with(
    listener: TcpListener,
    bridge: Arc<Bridge>,
    extra: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop_accepting = CancellationToken::new();
    // axum's own `serve` has no header timeout: see `listen`.
    let server = crate::listen::serve(
        listener,
        app(bridge.clone()).merge(extra),
        bridge.config.header_timeout,
        stop_accepting.clone().cancelled_owned(),
    );
    let mut server = std::pin::pin!(server);
    tokio::select! {
        result = &mut server => return result,
        () = shutdown => {}
    }
    let grace = bridge.config.shutdown_grace;
    tracing::info!(?grace, clients = bridge.broker.client_count(), "shutting down: flushing clients");
    stop_accepting.cancel();
    bridge.broker.close_all(CLOSE_GOING_AWAY);
    bridge.connections.close();
    let drained = async {
        let result = (&mut server).await;
        bridge.connections.wait().await;
        result
    };
    match tokio::time::timeout(grace, drained).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(
                open = bridge.connections.len(),
                "shutdown grace over: dropping what is still open"
            );
            bridge.abort.cancel();
            // The connections drop their sockets at once; HTTP ones end with the runtime.
            let _ = tokio::time::timeout(ABORT_WAIT, bridge.connections.wait()).await;
            Ok(())
        }
    }
}

/// How long aborted connections get to drop their sockets after the grace.
const ABORT_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

async fn metrics(State(bridge): State<Arc<Bridge>>) -> Response {
    let body = bridge.metrics.render();
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
        .into_response()
}

async fn ws_upgrade(State(bridge): State<Arc<Bridge>>, upgrade: WebSocketUpgrade) -> Response {
    let place = match bridge.unauthenticated.take() {
        Ok(place) => place,
        Err(e) => {
            bridge.metrics.error(e.code());
            return HttpError(StatusCode::SERVICE_UNAVAILABLE, e).into_response();
        }
    };
    let max = bridge.config.max_frame;
    // Small initial buffers keep idle connections cheap; they grow for large frames.
    upgrade
        .read_buffer_size(WS_BUFFER)
        .write_buffer_size(WS_BUFFER)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| {
            let connections = bridge.connections.clone();
            connections.track_future(connection(socket, bridge, place))
        })
}

/// Close code for a frame larger than `--max-frame` (RFC 6455 "message too big").
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Resolves at `deadline`, never without one.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What ends a connection apart from the client itself.
enum Interrupt {
    /// The hello timeout or the token's expiry.
    Deadline,
    /// The writer task ended.
    Writer(WriterEnd),
    /// The outbox was closed (a slow-consumer cut, shutdown) or the shutdown grace is over.
    Closed,
}

/// Resolves with the first [`Interrupt`]: `deadline`, `writer`'s end, `outbox` closed, `abort`.
async fn interruption(
    deadline: Option<tokio::time::Instant>,
    writer: &mut tokio::task::JoinHandle<WriterEnd>,
    outbox: &Outbox,
    abort: &CancellationToken,
) -> Interrupt {
    tokio::select! {
        () = until(deadline) => Interrupt::Deadline,
        end = writer => Interrupt::Writer(end.unwrap_or(WriterEnd::Broken)),
        () = outbox.closed() => Interrupt::Closed,
        () = abort.cancelled() => Interrupt::Closed,
    }
}

/// The size and limit of a frame the WebSocket layer refused as too large.
fn too_large(error: axum::Error) -> Option<(usize, usize)> {
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error};
    match *error.into_inner().downcast::<Error>().ok()? {
        Error::Capacity(CapacityError::MessageTooLong { size, max_size }) => Some((size, max_size)),
        _ => None,
    }
}

/// One WebSocket connection: a writer task drains the client's outbox while
/// this task reads and answers frames. The connection ends when the client
/// closes, when the session ends it (strikes, deadlines), when the broker
/// closes the outbox (a slow-consumer cut, shutdown) or when the writer
/// fails; after sending its close frame the bridge waits (at most
/// `--write-timeout`) for the client's, so that nothing still unread by
/// the client is reset away.
async fn connection(socket: WebSocket, bridge: Arc<Bridge>, place: Unauthenticated) {
    bridge.metrics.connections.inc();
    bridge.metrics.open_connections.inc();
    let (client, outbox) = bridge.broker.connect();
    let (sink, mut stream) = socket.split();
    let write_timeout = bridge.config.write_timeout;
    let mut writer = tokio::spawn(write_frames(sink, outbox.clone(), write_timeout));
    let mut writer_end = None;
    let mut client_left = false;

    let bucket = TokenBucket::new(bridge.config.publish_rate, bridge.config.publish_burst);
    let mut session = Session {
        bridge: &bridge,
        client,
        outbox: &outbox,
        grants: None,
        strikes: 0,
        reporter: Reporter::default(),
        bucket,
        unauthenticated: Some(place),
        deadline: tokio::time::Instant::now().checked_add(bridge.config.hello_timeout),
        close: None,
        waiting: None,
    };
    while !outbox.is_closed() {
        // Before hello: the hello timeout; after: the token's expiry.
        let message = tokio::select! {
            message = stream.next() => message,
            interrupt = interruption(session.deadline, &mut writer, &outbox, &bridge.abort) => {
                writer_end = session.interrupted(interrupt);
                break;
            }
        };
        let bytes = match message {
            Some(Ok(Message::Binary(bytes))) => bytes,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Text(_))) => {
                session
                    .refuse(BridgeError::Malformed("text frames are not part of the protocol".into()), None);
                if session.over_limit() {
                    break;
                }
                continue;
            }
            Some(Err(e)) => {
                if let Some((len, max)) = too_large(e) {
                    let error =
                        BridgeError::Codec(swarmbus_core::CodecError::TooLarge { field: "frame", len, max });
                    session.refuse(error, None);
                    session.close = Some(CLOSE_TOO_BIG);
                } else {
                    client_left = true;
                }
                break;
            }
            Some(Ok(Message::Close(_))) | None => {
                client_left = true;
                break;
            }
        };
        // A frame may wait (a Redis-mode publish on a full relay queue): the
        // deadline, a cut, the writer's end and the abort still count meanwhile.
        let deadline = session.deadline;
        tokio::select! {
            () = session.handle(&bytes) => {}
            interrupt = interruption(deadline, &mut writer, &outbox, &bridge.abort) => {
                writer_end = session.interrupted(interrupt);
                break;
            }
        }
        if session.over_limit() || session.close.is_some() {
            break;
        }
    }
    if session.over_limit() {
        outbox.set_close_code(CLOSE_POLICY);
        bridge.metrics.abusive_disconnects.inc();
    } else if let Some(code) = session.close {
        outbox.set_close_code(code);
    }
    session.reporter.release(&bridge.kinds);
    drop(session);
    bridge.broker.disconnect(client);
    let end = match writer_end {
        Some(end) => end,
        None => tokio::select! {
            end = &mut writer => end.unwrap_or(WriterEnd::Broken),
            () = bridge.abort.cancelled() => {
                writer.abort();
                WriterEnd::Broken
            }
        },
    };
    if end == WriterEnd::Closed && !client_left {
        // Our close frame is out: read (and ignore) until the client's arrives.
        let closing = async {
            while let Some(Ok(message)) = stream.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        };
        tokio::select! {
            _ = tokio::time::timeout(write_timeout, closing) => {}
            () = bridge.abort.cancelled() => {}
        }
    }
    bridge.metrics.open_connections.dec();
}

struct Session<'a> {
    bridge: &'a Bridge,
    client: ClientId,
    outbox: &'a Arc<Outbox>,
    /// Set by a successful hello.
    grants: Option<Grants>,
    strikes: u32,
    /// The client's `report`s.
    reporter: Reporter,
    bucket: TokenBucket,
    /// Held until an accepted hello.
    unauthenticated: Option<Unauthenticated>,
    /// When the connection ends unless something happens: the hello timeout,
    /// then the token's expiry (`None`: never).
    deadline: Option<tokio::time::Instant>,
    /// The close code, when the session ended for a reason of its own.
    close: Option<u16>,
    /// `Some(ack)` while a publish waits for the relay queue; an interrupt
    /// then ends it before it was queued (see [`Session::interrupted`]).
    waiting: Option<Option<u64>>,
}

impl Session<'_> {
    async fn handle(&mut self, bytes: &[u8]) {
        let frame = match ClientFrame::decode(bytes) {
            Ok(frame) => frame,
            Err(e) => return self.refuse(BridgeError::Malformed(e.to_string()), None),
        };
        let Some(grants) = &self.grants else {
            match frame {
                ClientFrame::Hello { v, token } if v == PROTOCOL_VERSION => {
                    match self.bridge.authenticate(token.as_deref()) {
                        Ok(grants) => {
                            tracing::debug!(client = self.client, subject = %grants.subject, "hello");
                            self.deadline = grants.expires_at().and_then(expiry_deadline);
                            self.unauthenticated = None;
                            self.grants = Some(grants);
                            self.outbox.send_control(&ServerFrame::Welcome {
                                v: PROTOCOL_VERSION,
                                session: self.client,
                            });
                        }
                        Err(e) => {
                            // Not a protocol violation: told, counted by code, closed with 4003.
                            self.bridge.metrics.error(e.code());
                            self.bridge
                                .metrics
                                .auth_refusals
                                .get_or_create(&CodeLabel { code: e.code() })
                                .inc();
                            self.outbox.send_control(&ServerFrame::error(e.code(), &e, None));
                            self.close = Some(CLOSE_AUTH_REFUSED);
                        }
                    }
                }
                ClientFrame::Hello { v, .. } => self.refuse(BridgeError::UnsupportedVersion(v), None),
                _ => self.refuse(BridgeError::HelloRequired, None),
            }
            return;
        };
        match frame {
            ClientFrame::Hello { .. } => {}
            ClientFrame::Subscribe { pattern, ack } => {
                let result = if grants.may_subscribe(&pattern)
                    || swarmbus_core::topic::validate_pattern(&pattern).is_err()
                {
                    self.bridge.broker.subscribe(self.client, &pattern)
                } else {
                    Err(BridgeError::Forbidden(format!("subscribing to {pattern}")))
                };
                match result {
                    Ok(()) => {
                        if let Some(ack) = ack {
                            self.outbox.send_control(&ServerFrame::Ack { ack });
                        }
                    }
                    Err(e) => self.refuse(e, ack),
                }
            }
            ClientFrame::Unsubscribe { pattern } => {
                self.bridge.broker.unsubscribe(self.client, &pattern);
            }
            ClientFrame::Publish { ack, .. } if !self.bucket.take() => {
                // Not a protocol violation: answered, counted, no strike.
                let error = BridgeError::RateLimited(self.bridge.config.publish_rate);
                self.bridge.metrics.error(error.code());
                self.outbox.send_control(&ServerFrame::error(error.code(), &error, ack));
            }
            ClientFrame::Publish { envelope, ack } => {
                self.waiting = Some(ack);
                let published = self.bridge.publish_from(envelope, grants, self.outbox, ack).await;
                self.waiting = None;
                if let Err(e) = published {
                    self.refuse(e, ack);
                }
            }
            ClientFrame::Refresh { token, ack } => self.refresh(&token, ack),
            ClientFrame::Ping { nonce } => {
                self.outbox.send_control(&ServerFrame::Pong { nonce });
            }
            ClientFrame::Report { kind, wasm, js } => {
                if let Err(e) = self.report(kind, wasm, js) {
                    self.refuse(e, None);
                }
            }
        }
    }

    /// Adds what the client handled since its previous report to
    /// `swarmbus_client_events_total` (see [`crate::report`]).
    fn report(&mut self, kind: String, wasm: u64, js: u64) -> Result<(), BridgeError> {
        let (bridge, reporter) = (self.bridge, &mut self.reporter);
        if reporter.report(&bridge.kinds, &bridge.metrics, &kind, wasm, js) {
            Ok(())
        } else {
            Err(BridgeError::Malformed(format!("report kind {kind:?}: 1-32 of a-z 0-9 _ -")))
        }
    }

    /// A `refresh`: a newer token for the same subject replaces the grants and the expiry.
    fn refresh(&mut self, token: &str, ack: Option<u64>) {
        let current = self.grants.as_ref().map(|g| g.subject.as_str());
        match self.bridge.authenticate(Some(token)) {
            Ok(grants) if Some(grants.subject.as_str()) == current => {
                // Subscriptions the new token does not grant end (told, not a strike).
                let ended = self.bridge.broker.retain_subscriptions(self.client, |p| grants.may_subscribe(p));
                for pattern in ended {
                    let error =
                        BridgeError::Forbidden(format!("{pattern} with the refreshed token: unsubscribed"));
                    self.bridge.metrics.error(error.code());
                    self.outbox.send_control(&ServerFrame::error(error.code(), &error, None));
                }
                self.deadline = grants.expires_at().and_then(expiry_deadline);
                self.grants = Some(grants);
                if let Some(ack) = ack {
                    self.outbox.send_control(&ServerFrame::Ack { ack });
                }
            }
            Ok(grants) => {
                self.refuse(BridgeError::Forbidden(format!("a token for subject {}", grants.subject)), ack)
            }
            Err(e) => self.refuse(e, ack),
        }
    }

    /// Acts on an [`Interrupt`]; the writer's end, when that was it. A
    /// publish it cut short was not queued: answered `UNAVAILABLE` (not sent).
    fn interrupted(&mut self, interrupt: Interrupt) -> Option<WriterEnd> {
        if let Some(ack) = self.waiting.take() {
            let error =
                BridgeError::Unavailable("the connection ended while the relay queue was full".into());
            self.bridge.metrics.error(error.code());
            self.bridge.metrics.redis_publish_failures.inc();
            self.outbox.send_control(&ServerFrame::error(error.code(), &error, ack));
        }
        match interrupt {
            Interrupt::Deadline => self.deadline_passed(),
            Interrupt::Writer(end) => return Some(end),
            Interrupt::Closed => {}
        }
        None
    }

    /// The hello timeout or the token's expiry passed: tell the client and close.
    fn deadline_passed(&mut self) {
        let (error, code) = match self.grants {
            None => (BridgeError::HelloTimeout, crate::admission::CLOSE_HELLO_TIMEOUT),
            Some(_) => (BridgeError::TokenExpired, crate::admission::CLOSE_TOKEN_EXPIRED),
        };
        self.bridge.metrics.error(error.code());
        self.outbox.send_control(&ServerFrame::error(error.code(), &error, None));
        self.close = Some(code);
    }

    fn refuse(&mut self, error: BridgeError, ack: Option<u64>) {
        self.strikes += 1;
        self.bridge.metrics.error(error.code());
        self.outbox.send_control(&ServerFrame::error(error.code(), &error, ack));
    }

    fn over_limit(&self) -> bool {
        self.strikes >= self.bridge.config.max_strikes
    }
}
