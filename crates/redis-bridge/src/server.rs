//! HTTP and WebSocket endpoints: `GET /ws`, `POST /v1/publish`, `GET /healthz`, `GET /metrics`.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;

use crate::admission::{expiry_deadline, Unauthenticated, UnauthenticatedSlots};
use crate::auth::{Auth, Grants};
use crate::broker::{Broker, BrokerLimits, ClientId, Outbox};
use crate::config::Config;
use crate::error::BridgeError;
use crate::http_api::HttpError;
use crate::metrics::{ClientEventLabel, Metrics};
use crate::protocol::{ClientFrame, ServerFrame, PROTOCOL_VERSION};
use crate::relay::{RedisRelay, Reply};

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
    client_kinds: std::sync::Mutex<std::collections::HashSet<String>>,
    /// WebSockets that have not sent an accepted `hello` yet (`--max-unauthenticated`).
    unauthenticated: UnauthenticatedSlots,
}

/// Distinct client kinds `swarmbus_client_events_total` labels; later ones count as `other`.
pub const MAX_CLIENT_KINDS: usize = 16;

impl Bridge {
    /// A bridge with `config`. In Redis mode this spawns the subscriber task,
    /// so it must be called inside a Tokio runtime.
    pub fn new(config: Config) -> Result<Arc<Self>, String> {
        let metrics = Arc::new(Metrics::new(config.redis.is_some()));
        let limits = BrokerLimits {
            send_queue: config.send_queue,
            max_subscriptions: config.max_subscriptions,
            max_envelope: config.max_frame,
        };
        let broker = Arc::new(Broker::new(limits, metrics.clone()));
        let relay = match &config.redis {
            Some(url) => {
                let relay = RedisRelay::new(url, metrics.clone())?;
                tokio::spawn(relay.clone().run_subscriber(broker.clone()));
                Some(relay)
            }
            None => None,
        };
        let auth = config.auth_secret.as_deref().map(Auth::new);
        let unauthenticated = UnauthenticatedSlots::new(config.max_unauthenticated);
        Ok(Arc::new(Self {
            broker,
            relay,
            metrics,
            auth,
            config,
            client_kinds: Default::default(),
            unauthenticated,
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
                let reply = Reply::Frame { outbox: outbox.clone(), ack };
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

    /// Validates a publish and checks grants; counts it; returns its topic.
    fn admit(&self, envelope: &[u8], grants: &Grants) -> Result<String, BridgeError> {
        let (topic, priority) = self.broker.validate(envelope)?;
        if !grants.may_publish(&topic) {
            return Err(BridgeError::Forbidden(format!("publishing on {topic}")));
        }
        self.broker.count_published(priority);
        Ok(topic)
    }

    /// The label for a reported client kind: the kind itself for the first
    /// [`MAX_CLIENT_KINDS`] kinds seen, `other` after (bounded label cardinality).
    fn report_kind(&self, kind: String) -> String {
        let mut kinds = self.client_kinds.lock().unwrap_or_else(|p| p.into_inner());
        if kinds.contains(&kind) || kinds.len() < MAX_CLIENT_KINDS && kinds.insert(kind.clone()) {
            kind
        } else {
            "other".to_owned()
        }
    }

    /// True when the bridge can deliver: always in embedded mode, while the
    /// Redis subscription is up in Redis mode.
    pub fn is_ready(&self) -> bool {
        self.relay.as_ref().is_none_or(|r| r.is_subscribed())
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

/// Serves until `shutdown` resolves; then stops accepting, flushes every
/// client's queued frames and closes its socket with code 1001.
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
    let closing = bridge.clone();
    let shutdown = async move {
        shutdown.await;
        closing.broker.close_all(CLOSE_GOING_AWAY);
    };
    // axum's own `serve` has no header timeout: see `listen`.
    let header_timeout = bridge.config.header_timeout;
    crate::listen::serve(listener, app(bridge).merge(extra), header_timeout, shutdown).await
}

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
        .on_upgrade(move |socket| connection(socket, bridge, place))
}

/// One WebSocket connection: a writer task drains the client's outbox while
/// this task reads and answers frames.
async fn connection(socket: WebSocket, bridge: Arc<Bridge>, place: Unauthenticated) {
    bridge.metrics.connections.inc();
    bridge.metrics.open_connections.inc();
    let (client, outbox) = bridge.broker.connect();
    let (mut sink, mut stream) = socket.split();
    let writer_outbox = outbox.clone();
    let writer = tokio::spawn(async move {
        while let Some(batch) = writer_outbox.next_batch().await {
            for frame in batch {
                if sink.send(Message::Binary(frame)).await.is_err() {
                    return;
                }
            }
        }
        let close = CloseFrame { code: writer_outbox.close_code(), reason: "".into() };
        let _ = sink.send(Message::Close(Some(close))).await;
    });

    let bucket = TokenBucket::new(bridge.config.publish_rate, bridge.config.publish_burst);
    let mut session = Session {
        bridge: &bridge,
        client,
        outbox: &outbox,
        grants: None,
        strikes: 0,
        reported: None,
        fatal: false,
        bucket,
        unauthenticated: Some(place),
        deadline: tokio::time::Instant::now().checked_add(bridge.config.hello_timeout),
        close: None,
    };
    loop {
        // Before hello: the hello timeout; after: the token's expiry.
        let message = match session.deadline {
            Some(deadline) => tokio::select! {
                message = stream.next() => message,
                () = tokio::time::sleep_until(deadline) => {
                    session.deadline_passed();
                    break;
                }
            },
            None => stream.next().await,
        };
        let Some(Ok(message)) = message else { break };
        let bytes = match message {
            Message::Binary(bytes) => bytes,
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Text(_) => {
                session
                    .refuse(BridgeError::Malformed("text frames are not part of the protocol".into()), None);
                if session.over_limit() {
                    break;
                }
                continue;
            }
        };
        session.handle(&bytes).await;
        if session.over_limit() || session.fatal || outbox.is_closed() {
            break;
        }
    }
    if session.over_limit() || session.fatal {
        outbox.set_close_code(CLOSE_POLICY);
        bridge.metrics.abusive_disconnects.inc();
    } else if let Some(code) = session.close {
        outbox.set_close_code(code);
    }
    bridge.broker.disconnect(client);
    let _ = writer.await;
    bridge.metrics.open_connections.dec();
}

struct Session<'a> {
    bridge: &'a Bridge,
    client: ClientId,
    outbox: &'a Arc<Outbox>,
    /// Set by a successful hello.
    grants: Option<Grants>,
    strikes: u32,
    /// The counters of the client's last `report`.
    reported: Option<(u64, u64)>,
    /// A refused hello token ends the connection.
    fatal: bool,
    bucket: TokenBucket,
    /// Held until an accepted hello.
    unauthenticated: Option<Unauthenticated>,
    /// When the connection ends unless something happens: the hello timeout,
    /// then the token's expiry (`None`: never).
    deadline: Option<tokio::time::Instant>,
    /// The close code, when the session ended for a reason of its own.
    close: Option<u16>,
}

/// Per-connection publish rate limit.
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: std::time::Instant,
}

impl TokenBucket {
    fn new(rate: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self { rate: f64::from(rate.max(1)), burst, tokens: burst, last: std::time::Instant::now() }
    }

    /// Takes one token if there is one.
    fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
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
                            self.fatal = true;
                            self.refuse(e, None);
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
                if let Err(e) = self.bridge.publish_from(envelope, grants, self.outbox, ack).await {
                    self.refuse(e, ack);
                }
            }
            ClientFrame::Refresh { token, ack } => self.refresh(&token, ack),
            ClientFrame::Ping { nonce } => self.outbox.send_control(&ServerFrame::Pong { nonce }),
            ClientFrame::Report { kind, wasm, js } => {
                if let Err(e) = self.report(kind, wasm, js) {
                    self.refuse(e, None);
                }
            }
        }
    }

    /// Adds what the client handled since its previous report to `swarmbus_client_events_total`.
    fn report(&mut self, kind: String, wasm: u64, js: u64) -> Result<(), BridgeError> {
        let valid = (1..=32).contains(&kind.len())
            && kind.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid {
            return Err(BridgeError::Malformed(format!("report kind {kind:?}: 1-32 of a-z 0-9 _ -")));
        }
        let (last_wasm, last_js) = self.reported.unwrap_or((0, 0));
        // A counter that went down was reset by the client: count it from zero.
        let delta = |now: u64, last: u64| if now >= last { now - last } else { now };
        let kind = self.bridge.report_kind(kind);
        for (path, n) in [("wasm", delta(wasm, last_wasm)), ("js", delta(js, last_js))] {
            self.bridge
                .metrics
                .client_events
                .get_or_create(&ClientEventLabel { kind: kind.clone(), path })
                .inc_by(n);
        }
        self.reported = Some((wasm, js));
        Ok(())
    }

    /// A `refresh`: a newer token for the same subject replaces the grants and the expiry.
    fn refresh(&mut self, token: &str, ack: Option<u64>) {
        let current = self.grants.as_ref().map(|g| g.subject.as_str());
        match self.bridge.authenticate(Some(token)) {
            Ok(grants) if Some(grants.subject.as_str()) == current => {
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
