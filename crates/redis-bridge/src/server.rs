//! HTTP and WebSocket endpoints: `GET /ws`, `POST /v1/publish`, `GET /healthz`, `GET /metrics`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use swarmbus_core::EnvelopeInput;
use tokio::net::TcpListener;

use crate::auth::{Auth, Grants};
use crate::broker::{Broker, BrokerLimits, ClientId, Outbox};
use crate::config::Config;
use crate::error::BridgeError;
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
        Ok(Arc::new(Self { broker, relay, metrics, auth, config, client_kinds: Default::default() }))
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
        .route("/v1/publish", post(http_publish))
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
    // Small frames must not wait for Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app(bridge).merge(extra)).with_graceful_shutdown(shutdown).await
}

async fn metrics(State(bridge): State<Arc<Bridge>>) -> Response {
    let body = bridge.metrics.render();
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
        .into_response()
}

/// An error as an HTTP response: `{code, message}`, never internals.
struct HttpError(StatusCode, BridgeError);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.1.code(), "message": self.1.to_string() });
        (self.0, Json(body)).into_response()
    }
}

/// `POST /v1/publish`: a MessagePack envelope (`content-type: application/msgpack`)
/// or JSON `{topic, payload, priority?, ttlMs?, sender?, swarm?, correlationId?}`
/// whose payload is re-encoded as MessagePack.
async fn http_publish(State(bridge): State<Arc<Bridge>>, headers: HeaderMap, body: Bytes) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let grants = match bridge.authenticate(token) {
        Ok(grants) => grants,
        Err(e) => {
            bridge.metrics.error(e.code());
            return HttpError(StatusCode::UNAUTHORIZED, e).into_response();
        }
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let result = match if is_json { json_envelope(&body) } else { Ok(body.to_vec()) } {
        Ok(bytes) => bridge.publish(&bytes, &grants).await.map(|n| (bytes, n)),
        Err(e) => Err(e),
    };
    match result {
        Ok((bytes, delivered)) => {
            let id = swarmbus_core::envelope::peek_header(&bytes).map(|h| h.id).unwrap_or_default();
            Json(serde_json::json!({ "id": id, "delivered": delivered })).into_response()
        }
        Err(e) => {
            bridge.metrics.error(e.code());
            let status = match e {
                BridgeError::Codec(swarmbus_core::CodecError::TooLarge { .. }) => {
                    StatusCode::PAYLOAD_TOO_LARGE
                }
                BridgeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                BridgeError::Forbidden(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            };
            HttpError(status, e).into_response()
        }
    }
}

fn json_envelope(body: &[u8]) -> Result<Vec<u8>, BridgeError> {
    let input: EnvelopeInput<serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| BridgeError::Malformed(e.to_string()))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let envelope = input.into_envelope(next_http_id, now, |payload| {
        rmp_serde::to_vec(&payload).map_err(|e| BridgeError::Malformed(e.to_string()))
    })?;
    envelope.encode().map_err(BridgeError::Codec)
}

fn next_http_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

async fn ws_upgrade(State(bridge): State<Arc<Bridge>>, upgrade: WebSocketUpgrade) -> Response {
    let max = bridge.config.max_frame;
    // Small initial buffers keep idle connections cheap; they grow for large frames.
    upgrade
        .read_buffer_size(WS_BUFFER)
        .write_buffer_size(WS_BUFFER)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| connection(socket, bridge))
}

/// One WebSocket connection: a writer task drains the client's outbox while
/// this task reads and answers frames.
async fn connection(socket: WebSocket, bridge: Arc<Bridge>) {
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
    };
    while let Some(Ok(message)) = stream.next().await {
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

    fn refuse(&mut self, error: BridgeError, ack: Option<u64>) {
        self.strikes += 1;
        self.bridge.metrics.error(error.code());
        self.outbox.send_control(&ServerFrame::error(error.code(), &error, ack));
    }

    fn over_limit(&self) -> bool {
        self.strikes >= self.bridge.config.max_strikes
    }
}
