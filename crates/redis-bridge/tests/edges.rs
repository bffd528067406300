//! The bridge's edges over real sockets on loopback port 0: timeouts on
//! every wait, the token checked before a body is read, token lifetime on a
//! live connection, and HTTP details (content types, JSON error bodies).
//! Timeouts are configured small; no assertion is about speed, every wait
//! has a generous bound so a broken bridge fails instead of hanging.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{encode, EncodingKey, Header};
use swarmbus_bridge::config::Config;
use swarmbus_bridge::protocol::{ClientFrame, ServerFrame};
use swarmbus_bridge::server::Bridge;
use swarmbus_core::{Envelope, Priority};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

mod support;
use support::start_bridge as start;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const SECRET: &str = "edges-secret-0123456789";
/// Bound on every wait: far above any configured timeout.
const PATIENCE: Duration = Duration::from_secs(15);

fn with_auth() -> Config {
    Config { auth_secret: Some(SECRET.into()), ..Config::default() }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn token(claims: serde_json::Value) -> String {
    encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}

/// A token for `sub` "agent" granting everything, expiring `exp_in` seconds from now.
fn token_expiring_in(exp_in: u64) -> String {
    token(serde_json::json!({"sub": "agent", "exp": now() + exp_in, "publish": [">"], "subscribe": [">"]}))
}

async fn send(ws: &mut Ws, frame: &ClientFrame) {
    ws.send(Message::Binary(frame.encode().into())).await.unwrap();
}

/// What the bridge sent until it closed: its frames and the close code.
async fn until_closed(ws: &mut Ws) -> (Vec<ServerFrame>, Option<u16>) {
    let mut frames = Vec::new();
    loop {
        match tokio::time::timeout(PATIENCE, ws.next()).await.expect("the bridge closes the connection") {
            Some(Ok(Message::Binary(bytes))) => frames.push(ServerFrame::decode(&bytes).unwrap()),
            Some(Ok(Message::Close(frame))) => return (frames, frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => {}
            _ => return (frames, None),
        }
    }
}

async fn recv(ws: &mut Ws) -> ServerFrame {
    loop {
        match tokio::time::timeout(PATIENCE, ws.next()).await.expect("a frame") {
            Some(Ok(Message::Binary(bytes))) => return ServerFrame::decode(&bytes).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
}

async fn hello(addr: SocketAddr, token: Option<String>) -> (Ws, ServerFrame) {
    let (mut ws, _) = connect_async(format!("ws://{addr}/ws")).await.unwrap();
    send(&mut ws, &ClientFrame::Hello { v: 1, token }).await;
    let answer = recv(&mut ws).await;
    (ws, answer)
}

/// The bridge sends one `error` with `code`, closes with `close`, and counts it.
async fn ends_with(ws: &mut Ws, bridge: &Bridge, code: &str, close: u16) {
    let (frames, got) = until_closed(ws).await;
    assert_eq!(frames.iter().map(code_of).collect::<Vec<_>>(), [code]);
    assert_eq!(got, Some(close));
    assert!(bridge.metrics.render().contains(&format!(r#"swarmbus_errors_total{{code="{code}"}} 1"#)));
}

fn code_of(frame: &ServerFrame) -> &str {
    match frame {
        ServerFrame::Error { code, .. } => code,
        other => panic!("expected an error frame, got {other:?}"),
    }
}

/// Writes `request` and reads until the bridge closes: (status, body).
async fn http(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_response(&mut stream).await
}

async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut response))
        .await
        .expect("the bridge answers and closes")
        .unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn json_code(body: &str) -> String {
    let value: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON body: {body:?}"));
    value["code"].as_str().expect("a code").to_owned()
}

const JSON_PUBLISH: &str = r#"{"topic":"edge.x","payload":{"n":1}}"#;

fn post(headers: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /v1/publish HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn an_unauthenticated_never_finished_chunked_post_is_answered_without_its_body() {
    // Regression: the body was read before the token was checked, so 200 such
    // requests pinned their bodies for as long as the clients kept them open.
    let (addr, bridge) = start(with_auth()).await;
    // The chunk is never finished and the body never ends.
    let request = b"POST /v1/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"topic\":\"edge.";
    let (status, body) = http(addr, request).await;
    assert_eq!((status, json_code(&body).as_str()), (401, "AUTH_REQUIRED"));
    assert!(bridge.metrics.render().contains(r#"swarmbus_errors_total{code="AUTH_REQUIRED"} 1"#));
}

#[tokio::test]
async fn a_body_that_never_ends_times_out() {
    // Regression: an authorised request whose body never ended was held forever.
    let (addr, _bridge) =
        start(Config { body_timeout: Duration::from_millis(300), ..Config::default() }).await;
    let request = b"POST /v1/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part of it";
    let (status, body) = http(addr, request).await;
    assert_eq!((status, json_code(&body).as_str()), (408, "BODY_TIMEOUT"));
}

#[tokio::test]
async fn half_sent_headers_and_idle_connections_are_closed() {
    // Regression: half-sent headers kept a connection open indefinitely.
    let (addr, _bridge) =
        start(Config { header_timeout: Duration::from_millis(300), ..Config::default() }).await;
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"POST /v1/publish HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    for stream in [&mut half, &mut silent] {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the bridge closes the connection");
    }
    // A complete request on a fresh connection still works.
    let (status, _) = http(addr, &post("Content-Type: application/json\r\n", JSON_PUBLISH)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_websocket_that_never_says_hello_is_closed() {
    // Regression: 3,000 hello-less sockets were all still open after 30 s.
    let (addr, bridge) =
        start(Config { hello_timeout: Duration::from_millis(300), ..Config::default() }).await;
    let (mut ws, _) = connect_async(format!("ws://{addr}/ws")).await.unwrap();
    ends_with(&mut ws, &bridge, "HELLO_TIMEOUT", swarmbus_bridge::admission::CLOSE_HELLO_TIMEOUT).await;
}

#[tokio::test]
async fn unauthenticated_websockets_are_capped() {
    // Regression: nothing limited connections that had not authenticated.
    let config = Config { max_unauthenticated: 2, ..with_auth() };
    let (addr, bridge) = start(config).await;
    let (mut first, _) = connect_async(format!("ws://{addr}/ws")).await.unwrap();
    let (_second, _) = connect_async(format!("ws://{addr}/ws")).await.unwrap();
    match connect_async(format!("ws://{addr}/ws")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("expected 503, got {other:?}"),
    }
    assert!(bridge.metrics.render().contains(r#"swarmbus_errors_total{code="TOO_MANY_UNAUTHENTICATED"} 1"#));
    // An accepted hello gives its place back.
    send(&mut first, &ClientFrame::Hello { v: 1, token: Some(token_expiring_in(600)) }).await;
    assert!(matches!(recv(&mut first).await, ServerFrame::Welcome { .. }));
    let (_, answer) = hello(addr, Some(token_expiring_in(600))).await;
    assert!(matches!(answer, ServerFrame::Welcome { .. }), "{answer:?}");
}

#[tokio::test]
async fn a_live_connection_is_closed_when_its_token_expires() {
    // Regression: 2 s after `exp` the connection still received, published and subscribed.
    let (addr, bridge) = start(with_auth()).await;
    let (mut ws, welcome) = hello(addr, Some(token_expiring_in(1))).await;
    assert!(matches!(welcome, ServerFrame::Welcome { .. }));
    ends_with(&mut ws, &bridge, "TOKEN_EXPIRED", swarmbus_bridge::admission::CLOSE_TOKEN_EXPIRED).await;
}

#[tokio::test]
async fn a_token_at_its_exp_second_is_refused_without_a_welcome() {
    // Regression: `exp == now` got welcome, then TOKEN_EXPIRED and 4001 at once (a reconnect storm).
    let (addr, bridge) = start(with_auth()).await;
    let (mut ws, answer) = hello(addr, Some(token_expiring_in(0))).await;
    assert_eq!(code_of(&answer), "TOKEN_EXPIRED", "{answer:?}");
    assert_eq!(until_closed(&mut ws).await.1, Some(swarmbus_bridge::admission::CLOSE_AUTH_REFUSED));
    assert!(bridge.metrics.render().contains(r#"swarmbus_auth_refusals_total{code="TOKEN_EXPIRED"} 1"#));
}

#[tokio::test]
async fn a_refresh_extends_the_connection() {
    // Regression: there was no way to renew a token without reconnecting.
    let (addr, _bridge) = start(with_auth()).await;
    let (mut ws, welcome) = hello(addr, Some(token_expiring_in(1))).await;
    assert!(matches!(welcome, ServerFrame::Welcome { .. }));
    send(&mut ws, &ClientFrame::Refresh { token: token_expiring_in(600), ack: Some(1) }).await;
    assert_eq!(recv(&mut ws).await, ServerFrame::Ack { ack: 1 });
    // Another subject's token is refused, and does not replace the grants.
    let stranger = token(serde_json::json!({"sub": "someone-else", "exp": now() + 600}));
    send(&mut ws, &ClientFrame::Refresh { token: stranger, ack: Some(2) }).await;
    assert_eq!(code_of(&recv(&mut ws).await), "FORBIDDEN");
    tokio::time::sleep(Duration::from_secs(3)).await; // past the first token's exp
    send(&mut ws, &ClientFrame::Subscribe { pattern: "edge.>".into(), ack: Some(3) }).await;
    assert_eq!(recv(&mut ws).await, ServerFrame::Ack { ack: 3 }, "still open, with the refreshed grants");
}

#[tokio::test]
async fn a_token_whose_nbf_is_in_the_future_is_refused() {
    // Regression: an `nbf` one hour ahead was accepted.
    let (addr, _bridge) = start(with_auth()).await;
    let early = token(serde_json::json!({"sub": "agent", "exp": now() + 7200, "nbf": now() + 3600}));
    let (mut ws, answer) = hello(addr, Some(early.clone())).await;
    assert_eq!(code_of(&answer), "TOKEN_NOT_YET_VALID");
    assert_eq!(until_closed(&mut ws).await.1, Some(swarmbus_bridge::admission::CLOSE_AUTH_REFUSED));
    let (status, body) = http(addr, &post(&format!("Authorization: Bearer {early}\r\n"), JSON_PUBLISH)).await;
    assert_eq!((status, json_code(&body).as_str()), (401, "TOKEN_NOT_YET_VALID"));
}

#[tokio::test]
async fn the_bearer_scheme_and_json_content_type_are_case_insensitive() {
    // Regression: `bearer` (lower case) got 401, and `Application/JSON` was not read as JSON.
    let (addr, _bridge) = start(with_auth()).await;
    let headers = format!(
        "authorization: bearer {}\r\nContent-Type: Application/JSON; charset=utf-8\r\n",
        token_expiring_in(600)
    );
    let (status, body) = http(addr, &post(&headers, JSON_PUBLISH)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["delivered"], 0);
}

#[tokio::test]
async fn http_publishes_are_rate_limited() {
    // Regression: HTTP /v1/publish bypassed --publish-rate (only WebSockets had a token bucket).
    let (addr, bridge) = start(Config { publish_rate: 1, publish_burst: 2, ..Config::default() }).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, body) = http(addr, &post("Content-Type: application/json\r\n", JSON_PUBLISH)).await;
        if status == 429 {
            assert_eq!(json_code(&body), "RATE_LIMITED");
        }
        statuses.push(status);
    }
    assert_eq!(&statuses[..2], [200, 200], "the burst goes through: {statuses:?}");
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    assert!(limited >= 1 && statuses.iter().all(|&s| s == 200 || s == 429), "{statuses:?}");
    let metrics = bridge.metrics.render();
    assert!(
        metrics.contains(&format!(r#"swarmbus_errors_total{{code="RATE_LIMITED"}} {limited}"#)),
        "{metrics}"
    );
}

#[tokio::test]
async fn http_errors_are_json() {
    // Regression: 413 bodies (and axum's other rejections) were plain text.
    let (addr, _bridge) = start(Config { max_frame: 64, ..Config::default() }).await;
    let big = format!(r#"{{"topic":"edge.x","payload":"{}"}}"#, "x".repeat(200));
    let (status, body) = http(addr, &post("Content-Type: application/json\r\n", &big)).await;
    assert_eq!((status, json_code(&body).as_str()), (413, "PAYLOAD_TOO_LARGE"));
    // The same, chunked: no declared length, the limit applies while reading.
    let chunked = format!(
        "POST /v1/publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    );
    let (status, body) = http(addr, chunked.as_bytes()).await;
    assert_eq!((status, json_code(&body).as_str()), (413, "PAYLOAD_TOO_LARGE"));
    let (status, body) =
        http(addr, b"GET /v1/publish HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!((status, json_code(&body).as_str()), (405, "METHOD_NOT_ALLOWED"));
    let (status, body) = http(addr, b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, 400);
    json_code(&body);
}

#[tokio::test]
async fn a_refresh_that_grants_less_ends_the_subscriptions_it_no_longer_covers() {
    // Regression (of the refresh frame): subscriptions outside the new token's grants were kept.
    let (addr, _bridge) = start(with_auth()).await;
    let wide = token(serde_json::json!({"sub": "agent", "exp": now() + 600, "subscribe": [">"]}));
    let (mut ws, welcome) = hello(addr, Some(wide)).await;
    assert!(matches!(welcome, ServerFrame::Welcome { .. }));
    for (ack, pattern) in [(1, "keep.>"), (2, "drop.>")] {
        send(&mut ws, &ClientFrame::Subscribe { pattern: pattern.into(), ack: Some(ack) }).await;
        assert_eq!(recv(&mut ws).await, ServerFrame::Ack { ack });
    }
    let narrow = token(serde_json::json!({"sub": "agent", "exp": now() + 600, "subscribe": ["keep.>"]}));
    send(&mut ws, &ClientFrame::Refresh { token: narrow, ack: Some(3) }).await;
    match recv(&mut ws).await {
        ServerFrame::Error { code, message, .. } => {
            assert_eq!(code, "FORBIDDEN");
            assert!(message.contains("drop.>"), "{message}");
        }
        other => panic!("expected the ended subscription, got {other:?}"),
    }
    assert_eq!(recv(&mut ws).await, ServerFrame::Ack { ack: 3 });
    let (mut publisher, _) = hello(addr, Some(token_expiring_in(600))).await;
    for (id, topic) in [(1u64, "drop.x"), (2, "keep.x")] {
        let envelope = Envelope::new(id, topic, Priority::TASK, 0, vec![]).encode().unwrap();
        send(&mut publisher, &ClientFrame::Publish { envelope, ack: Some(id) }).await;
        assert_eq!(recv(&mut publisher).await, ServerFrame::Ack { ack: id });
    }
    match recv(&mut ws).await {
        ServerFrame::Event { envelope } => {
            assert_eq!(swarmbus_core::envelope::decode(&envelope).unwrap().id, 2)
        }
        other => panic!("expected the keep.x event, got {other:?}"),
    }
}
