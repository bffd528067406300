//! The bridge over real sockets on loopback port 0: WebSocket clients, HTTP, metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use swarmbus_bridge::config::Config;
use swarmbus_bridge::protocol::{ClientFrame, ServerFrame};
use swarmbus_bridge::server::{serve, Bridge};
use swarmbus_core::{envelope, Envelope, Priority};

mod support;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Running {
    addr: SocketAddr,
    bridge: Arc<Bridge>,
    stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(config: Config) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bridge = Bridge::new(config).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, bridge.clone(), async move {
        let _ = stopped.await;
    }));
    Running { addr, bridge, stop }
}

async fn send(ws: &mut Ws, frame: &ClientFrame) {
    ws.send(Message::Binary(frame.encode().into())).await.unwrap();
}

/// The next protocol frame, or `None` when the connection ends.
async fn recv(ws: &mut Ws) -> Option<ServerFrame> {
    loop {
        let message =
            tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a frame within 5 s");
        match message {
            Some(Ok(Message::Binary(bytes))) => {
                return Some(ServerFrame::decode(&bytes).expect("valid server frame"))
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            _ => return None,
        }
    }
}

/// Every frame until the connection ends, and the close code if a close frame came.
async fn until_closed(ws: &mut Ws) -> (Vec<ServerFrame>, Option<u16>) {
    let mut frames = Vec::new();
    let mut close = None;
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        match message {
            Ok(Message::Binary(bytes)) => {
                frames.push(ServerFrame::decode(&bytes).expect("valid server frame"))
            }
            Ok(Message::Close(frame)) => close = frame.map(|f| u16::from(f.code)),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    (frames, close)
}

async fn client(addr: SocketAddr) -> Ws {
    let (mut ws, _) = connect_async(format!("ws://{addr}/ws")).await.unwrap();
    send(&mut ws, &ClientFrame::Hello { v: 1, token: None }).await;
    assert!(matches!(recv(&mut ws).await, Some(ServerFrame::Welcome { v: 1, .. })));
    ws
}

/// Round trip that proves every earlier frame of this client was processed.
async fn sync(ws: &mut Ws, nonce: u64) {
    send(ws, &ClientFrame::Ping { nonce }).await;
    assert_eq!(recv(ws).await, Some(ServerFrame::Pong { nonce }));
}

fn envelope(id: u64, topic: &str, priority: Priority) -> Vec<u8> {
    Envelope::new(id, topic, priority, 1, format!("payload {id}").into_bytes()).encode().unwrap()
}

async fn http(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn post_json(body: &str) -> String {
    format!(
        "POST /v1/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn wildcard_subscribers_get_exactly_their_events() {
    let bridge = start(Config::default()).await;
    let mut sub = client(bridge.addr).await;
    let mut publisher = client(bridge.addr).await;
    send(&mut sub, &ClientFrame::Subscribe { pattern: "swarm.*.task".into(), ack: None }).await;
    sync(&mut sub, 1).await;

    let wanted = envelope(10, "swarm.alpha.task", Priority::TASK);
    send(&mut publisher, &ClientFrame::Publish { envelope: wanted.clone(), ack: Some(1) }).await;
    send(
        &mut publisher,
        &ClientFrame::Publish { envelope: envelope(11, "swarm.alpha.other", Priority::TASK), ack: Some(2) },
    )
    .await;
    assert_eq!(recv(&mut publisher).await, Some(ServerFrame::Ack { ack: 1 }));
    assert_eq!(recv(&mut publisher).await, Some(ServerFrame::Ack { ack: 2 }));

    let Some(ServerFrame::Event { envelope: got }) = recv(&mut sub).await else {
        panic!("expected an event")
    };
    assert_eq!(envelope::decode(&got).unwrap(), envelope::decode(&wanted).unwrap());
    sync(&mut sub, 2).await; // nothing else arrived before the pong

    send(&mut sub, &ClientFrame::Unsubscribe { pattern: "swarm.*.task".into() }).await;
    sync(&mut sub, 3).await;
    send(
        &mut publisher,
        &ClientFrame::Publish { envelope: envelope(12, "swarm.beta.task", Priority::TASK), ack: Some(3) },
    )
    .await;
    assert_eq!(recv(&mut publisher).await, Some(ServerFrame::Ack { ack: 3 }));
    sync(&mut sub, 4).await;
}

#[tokio::test]
async fn bad_frames_get_error_frames_and_the_connection_survives() {
    let bridge = start(Config::default()).await;
    let (mut early, _) = connect_async(format!("ws://{}/ws", bridge.addr)).await.unwrap();
    send(&mut early, &ClientFrame::Subscribe { pattern: "a".into(), ack: None }).await;
    assert!(
        matches!(recv(&mut early).await, Some(ServerFrame::Error { code, .. }) if code == "HELLO_REQUIRED")
    );

    let mut ws = client(bridge.addr).await;
    let mut bystander = client(bridge.addr).await;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![0xc1, 0xff, 0x00], "DECODE_ERROR"),
        (ClientFrame::Subscribe { pattern: "a.>.b".into(), ack: None }.encode(), "INVALID_PATTERN"),
        (ClientFrame::Publish { envelope: vec![1, 2, 3], ack: Some(9) }.encode(), "DECODE_ERROR"),
        (
            ClientFrame::Publish { envelope: envelope(1, "t", Priority::BULK)[..10].to_vec(), ack: None }
                .encode(),
            "DECODE_ERROR",
        ),
    ];
    for (bytes, code) in cases {
        ws.send(Message::Binary(bytes.into())).await.unwrap();
        match recv(&mut ws).await {
            Some(ServerFrame::Error { code: got, .. }) => assert_eq!(got, code),
            other => panic!("expected {code}, got {other:?}"),
        }
    }
    sync(&mut ws, 5).await;
    sync(&mut bystander, 6).await;
}

#[tokio::test]
async fn repeated_abuse_closes_only_the_abuser() {
    let config = Config { max_strikes: 3, ..Config::default() };
    let bridge = start(config).await;
    let mut abuser = client(bridge.addr).await;
    let mut bystander = client(bridge.addr).await;
    for _ in 0..3 {
        abuser.send(Message::Binary(vec![0xff; 8].into())).await.unwrap();
    }
    let mut errors = 0;
    let mut close_code = None;
    while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(5), abuser.next()).await {
        match message {
            Message::Binary(bytes) => {
                assert!(matches!(ServerFrame::decode(&bytes).unwrap(), ServerFrame::Error { .. }));
                errors += 1;
            }
            Message::Close(frame) => close_code = frame.map(|f| u16::from(f.code)),
            _ => {}
        }
    }
    assert_eq!(errors, 3, "every refused frame is answered before the close");
    assert_eq!(close_code, Some(1008));
    sync(&mut bystander, 7).await;
    assert!(bridge.bridge.metrics.render().contains("swarmbus_abusive_disconnects_total 1"));
}

#[tokio::test]
async fn oversized_frames_close_the_connection_not_the_bridge() {
    let config = Config { max_frame: 1024, ..Config::default() };
    let bridge = start(config).await;
    let mut big = client(bridge.addr).await;
    let _ = big.send(Message::Binary(vec![0u8; 4096].into())).await;
    // Regression: the bridge closed with 1000 and no error frame.
    let (frames, close) = until_closed(&mut big).await;
    assert!(
        matches!(frames.as_slice(), [ServerFrame::Error { code, .. }] if code == "PAYLOAD_TOO_LARGE"),
        "{frames:?}"
    );
    assert_eq!(close, Some(1009));
    let mut other = client(bridge.addr).await;
    sync(&mut other, 8).await;
}

#[tokio::test]
async fn http_publish_reaches_websocket_subscribers_and_metrics_count_it() {
    let bridge = start(Config::default()).await;
    let mut sub = client(bridge.addr).await;
    send(&mut sub, &ClientFrame::Subscribe { pattern: "edge.>".into(), ack: None }).await;
    sync(&mut sub, 1).await;

    let (status, body) = http(
        bridge.addr,
        &post_json(r#"{"topic":"edge.worker.event","priority":8,"payload":{"n":1},"sender":"w1"}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""delivered":1"#), "{body}");
    let Some(ServerFrame::Event { envelope: got }) = recv(&mut sub).await else {
        panic!("expected an event")
    };
    let env = envelope::decode(&got).unwrap();
    assert_eq!(
        (env.topic.as_str(), env.priority, env.sender.as_deref()),
        ("edge.worker.event", Priority::CRITICAL, Some("w1"))
    );
    assert_eq!(
        rmp_serde::from_slice::<serde_json::Value>(&env.payload).unwrap(),
        serde_json::json!({"n": 1})
    );

    let (status, body) = http(bridge.addr, &post_json(r#"{"topic":"edge.*","payload":1}"#)).await;
    assert_eq!((status, body.contains("INVALID_TOPIC")), (400, true), "{body}");
    let (status, body) =
        http(bridge.addr, &post_json(r#"{"topic":"edge.x","payload":1,"priority":12}"#)).await;
    assert_eq!((status, body.contains("INVALID_PRIORITY")), (400, true), "{body}");
    let (status, body) = http(bridge.addr, &post_json("not json")).await;
    assert_eq!((status, body.contains("DECODE_ERROR")), (400, true), "{body}");

    let (status, body) =
        http(bridge.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, text) =
        http(bridge.addr, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, 200);
    assert!(text.contains(r#"swarmbus_published_total{priority="8"} 1"#), "{text}");
    assert!(text.contains(r#"swarmbus_delivered_total{priority="8"} 1"#), "{text}");
    assert!(text.contains(r#"swarmbus_errors_total{code="INVALID_TOPIC"} 1"#), "{text}");
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "not a sample line: {line}");
    }
}

#[tokio::test]
async fn shutdown_flushes_and_closes_with_going_away() {
    let running = start(Config::default()).await;
    let mut sub = client(running.addr).await;
    send(&mut sub, &ClientFrame::Subscribe { pattern: "x".into(), ack: None }).await;
    sync(&mut sub, 1).await;
    running.bridge.broker.publish(&envelope(1, "x", Priority::BULK)).unwrap();
    running.stop.send(()).unwrap();
    let mut got_event = false;
    let mut close_code = None;
    while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(5), sub.next()).await {
        match message {
            Message::Binary(bytes) => {
                got_event |= matches!(ServerFrame::decode(&bytes), Ok(ServerFrame::Event { .. }))
            }
            Message::Close(frame) => close_code = frame.map(|f| u16::from(f.code)),
            _ => {}
        }
    }
    assert!(got_event, "the queued event is flushed before the close");
    assert_eq!(close_code, Some(1001));
}

mod auth {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use swarmbus_bridge::auth::Claims;

    const SECRET: &str = "test-secret-0123456789";

    fn token(secret: &str, exp_offset: i64, publish: &[&str], subscribe: &[&str]) -> String {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let claims = Claims {
            sub: "agent-1".into(),
            exp: (now + exp_offset) as u64,
            publish: publish.iter().map(|s| s.to_string()).collect(),
            subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
        };
        encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    /// Says hello with `token`; returns the first answer and the close code, if the bridge closed.
    async fn hello(addr: SocketAddr, token: Option<String>) -> (ServerFrame, Option<u16>, Ws) {
        let (mut ws, _) = connect_async(format!("ws://{addr}/ws")).await.unwrap();
        send(&mut ws, &ClientFrame::Hello { v: 1, token }).await;
        let first = recv(&mut ws).await.expect("an answer to hello");
        let mut close = None;
        if matches!(first, ServerFrame::Error { .. }) {
            while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                if let Message::Close(frame) = message {
                    close = frame.map(|f| u16::from(f.code));
                }
            }
        }
        (first, close, ws)
    }

    fn code_of(frame: &ServerFrame) -> &str {
        match frame {
            ServerFrame::Error { code, .. } => code,
            _ => "",
        }
    }

    #[tokio::test]
    async fn tokens_and_grants_are_enforced() {
        let bridge = start(Config { auth_secret: Some(SECRET.into()), ..Config::default() }).await;
        for (token, code) in [
            (None, "AUTH_REQUIRED"),
            (Some(token(SECRET, -60, &[">"], &[">"])), "TOKEN_EXPIRED"),
            (Some(token("some-other-secret-000", 60, &[">"], &[">"])), "INVALID_TOKEN"),
            (Some("garbage".to_string()), "INVALID_TOKEN"),
        ] {
            let (answer, close, _) = hello(bridge.addr, token).await;
            assert_eq!((code_of(&answer), close), (code, Some(4003)));
        }
        // Regression: a refused hello token closed with 1008 and counted as an abusive disconnect.
        let metrics = bridge.bridge.metrics.render();
        assert!(metrics.contains("swarmbus_abusive_disconnects_total 0"), "{metrics}");
        for line in [
            r#"swarmbus_auth_refusals_total{code="AUTH_REQUIRED"} 1"#,
            r#"swarmbus_auth_refusals_total{code="TOKEN_EXPIRED"} 1"#,
            r#"swarmbus_auth_refusals_total{code="INVALID_TOKEN"} 2"#,
            r#"swarmbus_errors_total{code="INVALID_TOKEN"} 2"#,
        ] {
            assert!(metrics.contains(line), "{line} in {metrics}");
        }

        let good = token(SECRET, 60, &["swarm.alpha.>"], &["swarm.*.phase"]);
        let (answer, _, mut ws) = hello(bridge.addr, Some(good.clone())).await;
        assert!(matches!(answer, ServerFrame::Welcome { .. }));
        send(&mut ws, &ClientFrame::Subscribe { pattern: "swarm.>".into(), ack: Some(1) }).await;
        assert_eq!(code_of(&recv(&mut ws).await.unwrap()), "FORBIDDEN");
        send(&mut ws, &ClientFrame::Subscribe { pattern: "swarm.beta.phase".into(), ack: Some(2) }).await;
        assert_eq!(recv(&mut ws).await, Some(ServerFrame::Ack { ack: 2 }));
        send(
            &mut ws,
            &ClientFrame::Publish { envelope: envelope(1, "swarm.beta.task", Priority::TASK), ack: Some(3) },
        )
        .await;
        assert!(
            matches!(recv(&mut ws).await, Some(ServerFrame::Error { code, ack: Some(3), .. }) if code == "FORBIDDEN")
        );
        send(
            &mut ws,
            &ClientFrame::Publish { envelope: envelope(2, "swarm.alpha.task", Priority::TASK), ack: Some(4) },
        )
        .await;
        assert_eq!(recv(&mut ws).await, Some(ServerFrame::Ack { ack: 4 }));

        let body = r#"{"topic":"swarm.alpha.x","payload":1}"#;
        let (status, text) = http(bridge.addr, &post_json(body)).await;
        assert_eq!((status, text.contains("AUTH_REQUIRED")), (401, true), "{text}");
        let authorized = post_json(body).replacen(
            "Host: x\r\n",
            &format!("Host: x\r\nAuthorization: Bearer {good}\r\n"),
            1,
        );
        let (status, text) = http(bridge.addr, &authorized).await;
        assert_eq!(status, 200, "{text}");
        let forbidden = post_json(r#"{"topic":"swarm.beta.x","payload":1}"#).replacen(
            "Host: x\r\n",
            &format!("Host: x\r\nAuthorization: Bearer {good}\r\n"),
            1,
        );
        let (status, text) = http(bridge.addr, &forbidden).await;
        assert_eq!((status, text.contains("FORBIDDEN")), (403, true), "{text}");
    }
}

#[tokio::test]
async fn serves_static_files_when_asked() {
    let dir = std::env::temp_dir().join(format!("swarmbus-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>swarm</h1>").unwrap();
    let running = start(Config { static_dir: Some(dir.clone()), ..Config::default() }).await;
    let (status, body) = http(running.addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!((status, body.as_str()), (200, "<h1>swarm</h1>"));
    let (status, _) =
        http(running.addr, "GET /missing.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, 404);
    let (status, _) =
        http(running.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, 200, "API routes win over static files");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn publishes_beyond_the_rate_are_refused_then_allowed_again() {
    let running = start(Config { publish_rate: 20, publish_burst: 5, ..Config::default() }).await;
    let mut ws = client(running.addr).await;
    let mut limited = 0;
    for ack in 0..10 {
        send(&mut ws, &ClientFrame::Publish { envelope: envelope(ack, "t", Priority::BULK), ack: Some(ack) })
            .await;
        match recv(&mut ws).await {
            Some(ServerFrame::Ack { .. }) => {}
            Some(ServerFrame::Error { code, ack: Some(_), .. }) if code == "RATE_LIMITED" => limited += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(limited >= 4, "a burst of 5 at 20/s lets about 5 of 10 through, {limited} refused");
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(&mut ws, &ClientFrame::Publish { envelope: envelope(99, "t", Priority::BULK), ack: Some(99) }).await;
    assert_eq!(recv(&mut ws).await, Some(ServerFrame::Ack { ack: 99 }));
    assert!(running
        .bridge
        .metrics
        .render()
        .contains(&format!("swarmbus_errors_total{{code=\"RATE_LIMITED\"}} {limited}")));
}

#[tokio::test]
async fn a_burst_reaches_a_busy_subscriber_in_priority_order() {
    let running = start(Config::default()).await;
    let mut subscriber = client(running.addr).await;
    send(&mut subscriber, &ClientFrame::Subscribe { pattern: "order.>".into(), ack: None }).await;
    sync(&mut subscriber, 1).await;
    let mut publisher = client(running.addr).await;
    support::burst_reaches_a_busy_subscriber_in_priority_order(&mut publisher, subscriber).await;
}

#[tokio::test]
async fn client_reports_become_per_kind_counters() {
    let bridge = start(Config::default()).await;
    let mut ws = client(bridge.addr).await;
    for (wasm, js) in [(10, 0), (25, 4)] {
        send(&mut ws, &ClientFrame::Report { kind: "dashboard".into(), wasm, js }).await;
    }
    send(&mut ws, &ClientFrame::Report { kind: "Bad Kind!".into(), wasm: 1, js: 1 }).await;
    assert!(matches!(recv(&mut ws).await, Some(ServerFrame::Error { code, .. }) if code == "DECODE_ERROR"));
    sync(&mut ws, 1).await;
    let (_, text) = http(bridge.addr, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    // Cumulative reports: the counter holds the latest totals, not their sum.
    assert!(text.contains(r#"swarmbus_client_events_total{kind="dashboard",path="wasm"} 25"#), "{text}");
    assert!(text.contains(r#"swarmbus_client_events_total{kind="dashboard",path="js"} 4"#), "{text}");
    assert!(!text.contains("Bad Kind"), "{text}");
}

/// The value of one sample (`name{labels}` exactly as exported), 0 when absent.
fn metric(bridge: &Bridge, sample: &str) -> f64 {
    let text = bridge.metrics.render();
    text.lines().find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok()).unwrap_or(0.0)
}

/// Publishes `envelope` asking for `ack`, and waits for it.
async fn publish_acked(ws: &mut Ws, envelope: Vec<u8>, ack: u64) {
    send(ws, &ClientFrame::Publish { envelope, ack: Some(ack) }).await;
    assert_eq!(recv(ws).await, Some(ServerFrame::Ack { ack }));
}

fn priority(level: u8) -> Priority {
    Priority::new(level).unwrap()
}

/// Publishes priority 0 events of 256 KiB on `topic` until the bridge loses
/// one to a subscriber that does not read: that subscriber's socket and
/// queue are then full. Returns how many were published.
async fn fill(publisher: &mut Ws, running: &Running, topic: &str) -> u64 {
    let lost = || {
        metric(&running.bridge, r#"swarmbus_dropped_total{priority="0",reason="evicted"}"#)
            + metric(&running.bridge, r#"swarmbus_dropped_total{priority="0",reason="slow_client"}"#)
    };
    let before = lost();
    for id in 0..400 {
        let envelope = Envelope::new(id, topic, Priority::BULK, 0, vec![0; 256 * 1024]).encode().unwrap();
        publish_acked(publisher, envelope, id).await;
        if lost() > before {
            return id + 1;
        }
    }
    panic!("100 MiB published and the subscriber's queue never filled");
}

/// A bridge with `--send-queue send_queue`, a subscriber to `slow.>` whose
/// socket and queue are full of priority 0 events, and a publisher.
async fn stuck_behind_fillers(send_queue: usize) -> (Running, Ws, Ws) {
    let running = start(Config { send_queue, ..Config::default() }).await;
    let sub = subscriber(running.addr, "slow.>").await;
    let mut publisher = client(running.addr).await;
    fill(&mut publisher, &running, "slow.fill").await;
    (running, sub, publisher)
}

async fn subscriber(addr: SocketAddr, pattern: &str) -> Ws {
    let mut ws = client(addr).await;
    send(&mut ws, &ClientFrame::Subscribe { pattern: pattern.into(), ack: Some(0) }).await;
    assert_eq!(recv(&mut ws).await, Some(ServerFrame::Ack { ack: 0 }));
    ws
}

#[tokio::test]
async fn overlapping_subscriptions_deliver_one_frame_per_event() {
    // Regression: `a.>`, `a.*`, `a.b` and `>` on one connection got 4 frames for one
    // publish, and the HTTP publish answered `delivered: 4`.
    let running = start(Config::default()).await;
    let mut sub = client(running.addr).await;
    for (ack, pattern) in ["a.>", "a.*", "a.b", ">"].into_iter().enumerate() {
        send(&mut sub, &ClientFrame::Subscribe { pattern: pattern.into(), ack: Some(ack as u64) }).await;
        assert_eq!(recv(&mut sub).await, Some(ServerFrame::Ack { ack: ack as u64 }));
    }
    let (status, body) = http(running.addr, &post_json(r#"{"topic":"a.b","payload":1}"#)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""delivered":1"#), "connections, not subscriptions: {body}");
    let (_, body) = http(running.addr, &post_json(r#"{"topic":"z","payload":2}"#)).await;
    assert!(body.contains(r#""delivered":1"#), "{body}");
    // Same priority, FIFO: a duplicate of the first event would come before the second.
    let topics: Vec<String> = [recv(&mut sub).await, recv(&mut sub).await]
        .into_iter()
        .map(|frame| match frame {
            Some(ServerFrame::Event { envelope: bytes }) => envelope::decode(&bytes).unwrap().topic,
            other => panic!("expected an event, got {other:?}"),
        })
        .collect();
    assert_eq!(topics, ["a.b", "z"]);
    assert!(metric(&running.bridge, r#"swarmbus_delivered_total{priority="5"}"#) == 2.0);
}

#[tokio::test]
async fn control_frames_never_evict_events_and_are_never_lost() {
    // Regression: with --send-queue 4, pings evicted priority 8 events (uncounted), and
    // with the queue full of priority 9 events, acks and pongs vanished silently.
    let (running, mut sub, mut publisher) = stuck_behind_fillers(4).await;
    for (id, level) in [(1000, 8), (1001, 8), (1002, 9), (1003, 9)] {
        publish_acked(&mut publisher, envelope(id, "slow.event", priority(level)), id).await;
    }
    // Its queue now holds 9, 9, 8, 8 (the fillers were evicted): ask for two pongs and an ack.
    send(&mut sub, &ClientFrame::Ping { nonce: 7 }).await;
    send(&mut sub, &ClientFrame::Ping { nonce: 8 }).await;
    let elsewhere = envelope(2000, "elsewhere", Priority::BULK);
    send(&mut sub, &ClientFrame::Publish { envelope: elsewhere, ack: Some(77) }).await;
    let (mut events, mut control) = (Vec::new(), Vec::new());
    while events.len() < 4 || control.len() < 3 {
        match recv(&mut sub).await {
            Some(ServerFrame::Event { envelope: bytes }) => {
                let id = envelope::decode(&bytes).unwrap().id;
                if id >= 1000 {
                    events.push(id);
                }
            }
            Some(frame) => control.push(frame),
            None => panic!("the subscriber was disconnected"),
        }
    }
    assert_eq!(events, [1002, 1003, 1000, 1001], "every critical event, most urgent first");
    assert_eq!(
        control,
        [ServerFrame::Pong { nonce: 7 }, ServerFrame::Pong { nonce: 8 }, ServerFrame::Ack { ack: 77 }]
    );
    let text = running.bridge.metrics.render();
    assert!(!text.contains(r#"swarmbus_dropped_total{priority="8""#), "{text}");
    assert!(!text.contains(r#"swarmbus_dropped_total{priority="9""#), "{text}");
    assert!(!text.contains("swarmbus_slow_consumer_disconnects_total{"), "{text}");
}

#[tokio::test]
async fn a_client_too_slow_for_critical_events_is_cut_off_with_4008() {
    let (running, mut sub, mut publisher) = stuck_behind_fillers(4).await;
    for id in 1000..1005 {
        publish_acked(&mut publisher, envelope(id, "slow.event", Priority::MAX), id).await;
    }
    // The fifth could not be queued: the client is cut off rather than losing it quietly.
    let (_, close) = until_closed(&mut sub).await;
    assert_eq!(close, Some(4008));
    let text = running.bridge.metrics.render();
    assert!(text.contains(r#"swarmbus_slow_consumer_disconnects_total{reason="queue_full"} 1"#), "{text}");
    assert!(text.contains(r#"swarmbus_dropped_total{priority="9",reason="slow_client"} 5"#), "{text}");
    sync(&mut publisher, 1).await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_after_the_write_timeout() {
    // Regression: a subscriber that never read was never disconnected (its events are below 8).
    // Long enough that the reading subscriber never comes near it on a loaded machine.
    let config = Config { write_timeout: Duration::from_secs(2), ..Config::default() };
    let running = start(config).await;
    let _stuck = subscriber(running.addr, "slow.>").await;
    let mut reader = subscriber(running.addr, "slow.>").await;
    let reading = tokio::spawn(async move {
        let mut events = 0;
        loop {
            match recv(&mut reader).await {
                Some(ServerFrame::Event { envelope: bytes })
                    if envelope::decode(&bytes).unwrap().topic == "slow.end" =>
                {
                    return events;
                }
                Some(ServerFrame::Event { .. }) => events += 1,
                Some(_) => {}
                None => panic!("the reading subscriber was disconnected"),
            }
        }
    });
    let mut publisher = client(running.addr).await;
    let published = fill(&mut publisher, &running, "slow.fill").await;
    let sample = r#"swarmbus_slow_consumer_disconnects_total{reason="write_timeout"}"#;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while metric(&running.bridge, sample) < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "not disconnected within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publish_acked(&mut publisher, envelope(u64::MAX, "slow.end", Priority::NORMAL), 1).await;
    assert_eq!(reading.await.unwrap(), published, "the reading subscriber got every event");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while metric(&running.bridge, "swarmbus_open_connections") != 2.0 {
        assert!(tokio::time::Instant::now() < deadline, "the stuck connection is still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        metric(&running.bridge, "swarmbus_slow_consumer_disconnects_total{reason=\"write_timeout\"}"),
        1.0
    );
}

#[tokio::test]
async fn never_reading_subscribers_hold_a_bounded_number_of_bytes() {
    // Regression: queues were bounded in frames only; 2,200 publishes of 1 MiB to a
    // subscriber that never read added 2.15 GiB to the bridge.
    let config = Config { write_timeout: Duration::from_secs(120), ..Config::default() };
    let queue_bytes = config.send_queue_bytes as f64;
    let running = start(config).await;
    let _stuck = [subscriber(running.addr, "big").await, subscriber(running.addr, "big").await];
    let mut reader = subscriber(running.addr, "big").await;
    let mut publisher = client(running.addr).await;
    let mut peak: f64 = 0.0;
    for id in 0..48 {
        let envelope = Envelope::new(id, "big", Priority::BULK, 0, vec![7; 1000 * 1000]).encode().unwrap();
        publish_acked(&mut publisher, envelope, id).await;
        match recv(&mut reader).await {
            Some(ServerFrame::Event { envelope: bytes }) => {
                assert_eq!(envelope::decode(&bytes).unwrap().id, id)
            }
            other => panic!("the reading subscriber got {other:?}"),
        }
        peak = peak.max(metric(&running.bridge, "swarmbus_send_queue_bytes"));
    }
    // Each stuck subscriber: at most its byte bound plus one frame.
    let bound = 2.0 * (queue_bytes + 1_100_000.0) + 1_100_000.0;
    assert!(peak <= bound, "{peak} bytes queued, bound {bound}");
    assert!(metric(&running.bridge, r#"swarmbus_dropped_total{priority="0",reason="evicted"}"#) > 0.0);
}

#[tokio::test]
async fn the_relay_queue_is_bounded_in_bytes() {
    // Regression: the Redis relay queue held 16,384 jobs of any size (2.66 GiB in a 5 s stall).
    use swarmbus_bridge::metrics::Metrics;
    use swarmbus_bridge::relay::RedisRelay;
    // A "Redis" that accepts connections and never answers: publishes stay queued.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", silent.local_addr().unwrap());
    let metrics = Arc::new(Metrics::new(true));
    let relay = RedisRelay::new(&url, metrics.clone(), 1000).unwrap();
    assert!(relay.try_publish("t", vec![0; 600]));
    assert!(!relay.try_publish("t", vec![0; 600]), "600 + 600 bytes exceed the 1000-byte budget");
    assert!(metrics.render().contains("swarmbus_relay_queue_bytes 600"));
    // The stalled publish fails (Redis's response timeout) and gives its bytes back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !relay.try_publish("t", vec![0; 600]) {
        assert!(tokio::time::Instant::now() < deadline, "the budget never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
