//! Redis mode against a real `redis-server` that the test starts on a free
//! loopback port (`just setup` installs it): two bridges form one bus, and
//! both recover when Redis restarts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use swarmbus_bridge::config::Config;
use swarmbus_bridge::protocol::{ClientFrame, ServerFrame};
use swarmbus_bridge::server::{serve, Bridge};
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
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bridge = Bridge::new(Config { redis: Some(redis.to_owned()), ..Config::default() }).unwrap();
    tokio::spawn(serve(listener, bridge.clone(), std::future::pending()));
    (addr, bridge)
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
