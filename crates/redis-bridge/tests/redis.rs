//! Redis mode against a real `redis-server` that the test starts on a free
//! loopback port (`just setup` installs it): two bridges form one bus, both
//! recover when Redis restarts, and the answer to a publish tells the truth
//! when Redis stalls or loses the bridge's subscription.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use swarmbus_bridge::config::Config;
use swarmbus_bridge::protocol::{ClientFrame, ServerFrame};
use swarmbus_bridge::server::Bridge;
use swarmbus_core::{envelope, Envelope, Priority};

#[path = "support/redis_server.rs"]
mod redis_server;
mod support;
use redis_server::{free_port, RedisServer};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn bridge(redis: &str) -> (SocketAddr, Arc<Bridge>) {
    bridge_with(Config { redis: Some(redis.to_owned()), ..Config::default() }).await
}

async fn bridge_with(config: Config) -> (SocketAddr, Arc<Bridge>) {
    support::start_bridge(config).await
}

/// The status line's code of `GET path`.
async fn get_status(addr: SocketAddr, path: &str) -> u16 {
    request_status(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")).await
}

/// The status line's code of the answer to `request` (sent with `Connection: close`).
async fn request_status(addr: SocketAddr, request: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = request.replacen("\r\n", "\r\nConnection: close\r\n", 1);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response[9..12].parse().unwrap()
}

/// The value of a metric line that starts with `name `.
fn metric(bridge: &Bridge, name: &str) -> u64 {
    let text = bridge.metrics.render();
    let line =
        text.lines().find(|line| line.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

async fn until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn send(ws: &mut Ws, frame: &ClientFrame) {
    ws.send(Message::Binary(frame.encode().into())).await.unwrap();
}

async fn recv(ws: &mut Ws) -> ServerFrame {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a frame within 10 s") {
            Some(Ok(Message::Binary(bytes))) => return ServerFrame::decode(&bytes).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("connection ended: {other:?}"),
        }
    }
}

async fn client(addr: SocketAddr, subscribe: Option<&str>) -> Ws {
    let (mut ws, _) = connect_async(format!("ws://{addr}/ws")).await.unwrap();
    send(&mut ws, &ClientFrame::Hello { v: 1, token: None }).await;
    assert!(matches!(recv(&mut ws).await, ServerFrame::Welcome { .. }));
    if let Some(pattern) = subscribe {
        send(&mut ws, &ClientFrame::Subscribe { pattern: pattern.into(), ack: None }).await;
        send(&mut ws, &ClientFrame::Ping { nonce: 0 }).await;
        assert_eq!(recv(&mut ws).await, ServerFrame::Pong { nonce: 0 });
    }
    ws
}

fn envelope(id: u64, topic: &str) -> Vec<u8> {
    Envelope::new(id, topic, Priority::TASK, 0, vec![id as u8]).encode().unwrap()
}

async fn publish(ws: &mut Ws, id: u64, topic: &str) -> ServerFrame {
    send(ws, &ClientFrame::Publish { envelope: envelope(id, topic), ack: Some(id) }).await;
    recv(ws).await
}

async fn next_event_id(ws: &mut Ws) -> u64 {
    match recv(ws).await {
        ServerFrame::Event { envelope: bytes } => envelope::decode(&bytes).unwrap().id,
        other => panic!("expected an event, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bridges_on_one_redis_form_one_bus_and_survive_a_redis_restart() {
    let port = free_port();
    let mut redis = RedisServer::start_on(port);
    let (addr_a, bridge_a) = bridge(&redis.url()).await;
    let (addr_b, bridge_b) = bridge(&redis.url()).await;
    until("both bridges subscribed", || bridge_a.is_ready() && bridge_b.is_ready()).await;

    let mut on_a = client(addr_a, Some("swarm.*.task")).await;
    let mut on_b = client(addr_b, Some("swarm.>")).await;
    let mut publisher = client(addr_b, None).await;

    assert_eq!(publish(&mut publisher, 1, "swarm.alpha.task").await, ServerFrame::Ack { ack: 1 });
    assert_eq!(publish(&mut publisher, 2, "swarm.alpha.status").await, ServerFrame::Ack { ack: 2 });
    assert_eq!(next_event_id(&mut on_a).await, 1, "delivered across bridges");
    assert_eq!(next_event_id(&mut on_b).await, 1, "and on the publisher's own bridge");
    assert_eq!(next_event_id(&mut on_b).await, 2);

    // Redis goes away: publishes are refused with UNAVAILABLE, and counted.
    redis.stop();
    until("both bridges notice", || !bridge_a.is_ready() && !bridge_b.is_ready()).await;
    let mut lost = 0;
    for id in 10..13 {
        match publish(&mut publisher, id, "swarm.alpha.task").await {
            ServerFrame::Error { code, ack, .. } => {
                assert_eq!((code.as_str(), ack), ("UNAVAILABLE", Some(id)));
                lost += 1;
            }
            other => panic!("expected UNAVAILABLE while Redis is down, got {other:?}"),
        }
    }
    assert_eq!(lost, 3);
    assert!(bridge_b.metrics.render().contains("swarmbus_redis_publish_failures_total 3"));

    // Redis comes back on the same port: both bridges resubscribe and the bus works again.
    let _redis = RedisServer::start_on(port);
    until("both bridges resubscribed", || bridge_a.is_ready() && bridge_b.is_ready()).await;
    let mut id = 20;
    loop {
        match publish(&mut publisher, id, "swarm.beta.task").await {
            ServerFrame::Ack { .. } => break,
            ServerFrame::Error { code, .. } if code == "UNAVAILABLE" && id < 60 => id += 1,
            other => panic!("publisher did not recover: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(next_event_id(&mut on_a).await, id, "the subscriber on the other bridge gets it");
    assert!(bridge_a.metrics.render().contains("swarmbus_redis_up 1"));
}

#[tokio::test]
async fn a_burst_through_redis_reaches_a_busy_subscriber_in_priority_order() {
    let redis = RedisServer::start();
    let (a, bridge_a) = bridge(&redis.url()).await;
    let (b, bridge_b) = bridge(&redis.url()).await;
    until("both bridges subscribed to Redis", || bridge_a.is_ready() && bridge_b.is_ready()).await;
    let subscriber = client(b, Some("order.>")).await;
    let mut publisher = client(a, None).await;
    support::burst_reaches_a_busy_subscriber_in_priority_order(&mut publisher, subscriber).await;
}

/// The code of an `error` frame, or `ACK`.
fn answer_code(frame: &ServerFrame) -> String {
    match frame {
        ServerFrame::Ack { .. } => "ACK".into(),
        ServerFrame::Error { code, .. } => code.clone(),
        other => panic!("expected an answer to a publish, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_makes_the_bridge_unready_and_no_refused_publish_is_delivered() {
    // Regression: during a 5 s SIGSTOP of Redis, 1,427 publishes answered
    // UNAVAILABLE were delivered afterwards (a retrying client made duplicates),
    // and /healthz stayed 200 throughout.
    let redis = RedisServer::start();
    let timeout = Duration::from_millis(500);
    let config = Config { redis: Some(redis.url()), redis_timeout: timeout, ..Config::default() };
    let (addr, bridge) = bridge_with(config).await;
    until("subscribed", || bridge.is_ready()).await;
    let mut subscriber = client(addr, Some("stall.>")).await;
    let mut publisher = client(addr, None).await;
    assert_eq!(publish(&mut publisher, 1, "stall.a").await, ServerFrame::Ack { ack: 1 });
    assert_eq!(get_status(addr, "/readyz").await, 200);

    redis.signal("STOP");
    let mut answers = Vec::new();
    // Sent into the stall: answered TIMEOUT (outcome unknown) or, once the
    // bridge has noticed, UNAVAILABLE; never acknowledged.
    let mut id = 10;
    while bridge.is_ready() {
        let answer = publish(&mut publisher, id, "stall.a").await;
        answers.push((id, answer_code(&answer)));
        id += 1;
        assert!(id < 100, "the bridge never noticed the stall");
    }
    until("unready", || !bridge.is_ready()).await;
    assert_eq!(get_status(addr, "/readyz").await, 503);
    let body = r#"{"topic":"stall.http","payload":1}"#;
    let post = format!(
        "POST /v1/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(request_status(addr, &post).await, 503, "HTTP: not sent");
    for id in 100..105 {
        let answer = publish(&mut publisher, id, "stall.a").await;
        assert_eq!(answer_code(&answer), "UNAVAILABLE", "not ready: not sent");
        answers.push((id, "UNAVAILABLE".into()));
    }
    assert!(answers.iter().all(|(_, code)| code == "TIMEOUT" || code == "UNAVAILABLE"), "{answers:?}");
    let unavailable = answers.iter().filter(|(_, code)| code == "UNAVAILABLE").count() as u64;
    let unknown = answers.len() as u64 - unavailable;
    let http = 1;
    assert_eq!(metric(&bridge, "swarmbus_redis_publish_failures_total"), unavailable + http);
    assert_eq!(metric(&bridge, "swarmbus_redis_publish_unknown_total"), unknown);
    assert_eq!(metric(&bridge, "swarmbus_redis_up"), 0);

    redis.signal("CONT");
    until("ready again", || bridge.is_ready()).await;
    let mut last = 1000;
    loop {
        let answer = publish(&mut publisher, last, "stall.a").await;
        if answer == (ServerFrame::Ack { ack: last }) {
            break;
        }
        assert!(last < 1050, "the publisher did not recover: {answer:?}");
        last += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Everything delivered up to the last acknowledged publish: no refused one among it.
    let mut delivered = Vec::new();
    loop {
        let id = next_event_id(&mut subscriber).await;
        delivered.push(id);
        if id == last {
            break;
        }
    }
    let refused: Vec<u64> =
        answers.iter().filter(|(_, code)| code == "UNAVAILABLE").map(|(id, _)| *id).collect();
    assert!(delivered.iter().all(|id| !refused.contains(id)), "delivered {delivered:?}, refused {refused:?}");
    assert_eq!(delivered[0], 1);
}

#[tokio::test]
async fn a_publish_redis_delivers_to_nobody_is_not_acknowledged_and_is_counted() {
    // Regression: after a Redis restart, publishes were acknowledged while
    // Redis no longer held this bridge's subscription (PUBLISH's receiver
    // count was ignored): 366-388 per restart reached no subscriber.
    let subscribed_one = RedisServer::start();
    let other_one = RedisServer::start();
    let at = |redis: &RedisServer| redis.url().trim_start_matches("redis://").parse::<SocketAddr>().unwrap();
    let (proxy, _) = proxy(at(&subscribed_one), at(&other_one)).await;
    let (addr, bridge) = bridge(&format!("redis://{proxy}")).await;
    until("subscribed", || bridge.is_ready()).await;
    let mut publisher = client(addr, None).await;
    match publish(&mut publisher, 1, "lost.a").await {
        ServerFrame::Error { code, ack, .. } => assert_eq!((code.as_str(), ack), ("UNAVAILABLE", Some(1))),
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }
    assert_eq!(metric(&bridge, "swarmbus_redis_publish_unrouted_total"), 1);
}

/// A proxy that forwards the bridge's first connection (its subscriber, which
/// connects first) to `first` and every later one (its publisher) to `rest`.
/// While the returned flag is set, the later connections stop passing the
/// bridge's bytes on: a stall that the subscriber does not see. With two
/// Redis servers, the subscriber and the publisher are on different ones, as
/// after a restart that the publisher noticed first.
async fn proxy(first: SocketAddr, rest: SocketAddr) -> (SocketAddr, Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stall = Arc::new(AtomicBool::new(false));
    let stalled = stall.clone();
    tokio::spawn(async move {
        let mut is_first = true;
        while let Ok((inbound, _)) = listener.accept().await {
            let outbound = TcpStream::connect(if is_first { first } else { rest }).await.unwrap();
            let (mut from_bridge, mut to_bridge) = inbound.into_split();
            let (mut from_redis, mut to_redis) = outbound.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from_redis, &mut to_bridge).await;
            });
            let stall = (!is_first).then(|| stalled.clone());
            is_first = false;
            tokio::spawn(async move {
                let mut buffer = vec![0; 64 * 1024];
                while let Ok(n @ 1..) = from_bridge.read(&mut buffer).await {
                    while stall.as_ref().is_some_and(|stall| stall.load(Ordering::Acquire)) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    if to_redis.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = to_redis.shutdown().await;
            });
        }
    });
    (addr, stall)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_sent_but_not_answered_is_timeout_not_unavailable() {
    // Regression: a publish Redis did not answer in time was UNAVAILABLE ("not
    // sent") although it had been sent, and was then delivered.
    use std::sync::atomic::Ordering;
    let redis = RedisServer::start();
    let at = redis.url().trim_start_matches("redis://").parse().unwrap();
    let (proxy, stall) = proxy(at, at).await;
    let redis_timeout = Duration::from_millis(500);
    let config = Config { redis: Some(format!("redis://{proxy}")), redis_timeout, ..Config::default() };
    let (addr, bridge) = bridge_with(config).await;
    until("subscribed", || bridge.is_ready()).await;
    let mut subscriber = client(addr, Some("unknown.>")).await;
    let mut publisher = client(addr, None).await;
    assert_eq!(publish(&mut publisher, 1, "unknown.a").await, ServerFrame::Ack { ack: 1 });

    stall.store(true, Ordering::Release);
    match publish(&mut publisher, 2, "unknown.a").await {
        ServerFrame::Error { code, ack, .. } => assert_eq!((code.as_str(), ack), ("TIMEOUT", Some(2))),
        other => panic!("expected TIMEOUT, got {other:?}"),
    }
    assert_eq!(metric(&bridge, "swarmbus_redis_publish_unknown_total"), 1);
    assert!(bridge.is_ready(), "the subscriber's connection was not stalled");

    stall.store(false, Ordering::Release);
    assert_eq!(publish(&mut publisher, 3, "unknown.a").await, ServerFrame::Ack { ack: 3 });
    let mut delivered = vec![next_event_id(&mut subscriber).await];
    while delivered.len() < 3 {
        delivered.push(next_event_id(&mut subscriber).await);
    }
    delivered.sort_unstable();
    assert_eq!(delivered, [1, 2, 3], "the TIMEOUT one was delivered after all: outcome unknown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_parked_on_a_full_relay_queue_is_still_told_its_token_expired() {
    // Regression: a client waiting for the relay's byte budget (Redis stalled) was not watched for its token's exp.
    use jsonwebtoken::{encode, EncodingKey, Header};
    const SECRET: &str = "parked-secret-0123456789";
    let redis = RedisServer::start();
    let config = Config {
        redis: Some(redis.url()),
        auth_secret: Some(SECRET.into()),
        relay_queue_bytes: 1,
        redis_timeout: Duration::from_secs(30),
        ..Config::default()
    };
    let (addr, bridge) = bridge_with(config).await;
    until("subscribed", || bridge.is_ready()).await;
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3;
    let claims = serde_json::json!({"sub": "parked", "exp": exp, "publish": [">"], "subscribe": [">"]});
    let token = encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap();
    let (mut ws, _) = connect_async(format!("ws://{addr}/ws")).await.unwrap();
    send(&mut ws, &ClientFrame::Hello { v: 1, token: Some(token) }).await;
    assert!(matches!(recv(&mut ws).await, ServerFrame::Welcome { .. }));
    assert_eq!(publish(&mut ws, 1, "parked.a").await, ServerFrame::Ack { ack: 1 });

    redis.signal("STOP");
    // 2 is in flight for --redis-timeout (30 s) and holds the 1-byte budget; 3 waits for it.
    for id in [2, 3] {
        send(&mut ws, &ClientFrame::Publish { envelope: envelope(id, "parked.a"), ack: Some(id) }).await;
    }
    let told =
        tokio::time::timeout(Duration::from_secs(8), async { [recv(&mut ws).await, recv(&mut ws).await] });
    let told = told.await;
    redis.signal("CONT");
    let codes = told.map(|frames| {
        frames.map(|frame| match frame {
            ServerFrame::Error { code, ack, .. } => (code, ack),
            other => panic!("{other:?}"),
        })
    });
    // 3 was never queued: told so (safe to retry), then the expiry.
    let expected = [("UNAVAILABLE".to_owned(), Some(3)), ("TOKEN_EXPIRED".to_owned(), None)];
    assert_eq!(codes.ok(), Some(expected), "within 8 s of a 3 s token");
    assert_eq!(metric(&bridge, "swarmbus_redis_publish_failures_total"), 1);
}
