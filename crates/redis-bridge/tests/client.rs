//! The native client against a real bridge on loopback: operations, refusals,
//! reconnecting with resubscription after the bridge restarts, the offline
//! queue; and against a fake bridge: keepalive and a refused hello.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use swarmbus_bridge::client::{Client, ClientError, ClientOptions};
use swarmbus_bridge::config::Config;
use swarmbus_bridge::protocol::{ClientFrame, ServerFrame};
use swarmbus_bridge::server::{serve, Bridge};
use swarmbus_core::session::SessionState;
use swarmbus_core::{Envelope, Priority};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

async fn start_on(
    addr: &str,
) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, Bridge::new(Config::default()).unwrap(), async move {
        let _ = stopped.await;
    }));
    (addr, stop, server)
}

fn envelope(id: u64, topic: &str) -> Envelope {
    Envelope::new(id, topic, Priority::TASK, 0, vec![1, 2, 3])
}

#[tokio::test]
async fn subscribe_publish_receive_and_refusals() {
    let (addr, _stop, _server) = start_on("127.0.0.1:0").await;
    let url = format!("ws://{addr}/ws");
    let (subscriber, mut events) = Client::connect(&url, ClientOptions::default()).await.unwrap();
    let (publisher, _) = Client::connect(&url, ClientOptions::default()).await.unwrap();
    assert_eq!(subscriber.state(), SessionState::Open);
    subscriber.subscribe("swarm.*.task").await.unwrap();

    publisher.publish(&envelope(1, "swarm.alpha.task")).await.unwrap();
    publisher.publish(&envelope(2, "swarm.alpha.other")).await.unwrap();
    publisher.publish(&envelope(3, "swarm.beta.task")).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap();
    assert_eq!((first, second.id), (envelope(1, "swarm.alpha.task"), 3));

    // Unacknowledged sends keep their order, and an acknowledged publish after them
    // proves they were all taken.
    for id in 10..20 {
        publisher.send(&envelope(id, "swarm.gamma.task")).await.unwrap();
    }
    publisher.publish(&envelope(20, "swarm.gamma.task")).await.unwrap();
    for id in 10..=20 {
        let got = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap();
        assert_eq!(got.id, id);
    }

    let refused = publisher.publish_bytes(vec![0x93, 1, 2, 3]).await.unwrap_err();
    assert!(
        matches!(refused, ClientError::Refused { ref code, .. } if code == "DECODE_ERROR"),
        "{refused:?}"
    );
    let refused = subscriber.subscribe("a.>.b").await.unwrap_err();
    assert!(
        matches!(refused, ClientError::Refused { ref code, .. } if code == "INVALID_PATTERN"),
        "{refused:?}"
    );
    assert!(matches!(
        Client::connect("ws://127.0.0.1:1/ws", ClientOptions::default()).await,
        Err(ClientError::Connect(_))
    ));
}

/// A client subscribed to `pattern` on a bridge that then stops; returns once
/// the client noticed (it is reconnecting). The bridge's address stays free for a restart.
async fn subscribed_then_bridge_stopped(
    pattern: &str,
    options: ClientOptions,
) -> (SocketAddr, String, Client, mpsc::Receiver<Envelope>) {
    let (addr, stop, server) = start_on("127.0.0.1:0").await;
    let url = format!("ws://{addr}/ws");
    let (client, events) = Client::connect(&url, options).await.unwrap();
    client.subscribe(pattern).await.unwrap();
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    let mut state = client.watch_state();
    tokio::time::timeout(Duration::from_secs(5), state.wait_for(|s| *s == SessionState::Reconnecting))
        .await
        .expect("the client notices the bridge is gone")
        .unwrap();
    (addr, url, client, events)
}

#[tokio::test]
async fn reconnects_and_resubscribes_after_the_bridge_restarts() {
    let (addr, url, _subscriber, mut events) =
        subscribed_then_bridge_stopped("jobs.>", ClientOptions::default()).await;
    let (_, _stop_again, _server_again) = start_on(&addr.to_string()).await;

    // The subscriber reconnects on its own; publish until its resubscription is in place.
    let (publisher, _) = Client::connect(&url, ClientOptions::default()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut id = 0;
    let received = loop {
        id += 1;
        publisher.publish(&envelope(id, "jobs.run")).await.unwrap();
        if let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(100), events.recv()).await {
            break event;
        }
        assert!(tokio::time::Instant::now() < deadline, "the subscriber never came back");
    };
    assert_eq!(received.topic, "jobs.run");
}

#[tokio::test]
async fn publishes_made_while_the_bridge_is_down_wait_and_go_out_after_the_resubscribe() {
    let (addr, _url, client, mut events) =
        subscribed_then_bridge_stopped("jobs.>", ClientOptions::default()).await;

    // Queued offline while the bridge is down; answered once it is back.
    let queued = tokio::spawn({
        let client = client.clone();
        async move { client.publish(&envelope(7, "jobs.offline")).await }
    });
    let (_, _stop_again, _server_again) = start_on(&addr.to_string()).await;
    tokio::time::timeout(Duration::from_secs(5), queued).await.unwrap().unwrap().unwrap();
    // The resubscribe went before the flush, so the client hears its own publish.
    let event = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap();
    assert_eq!((event.id, event.topic.as_str()), (7, "jobs.offline"));
}

#[tokio::test]
async fn the_offline_queue_is_bounded_evicts_the_least_urgent_and_refuses_rather_than_drop_critical() {
    let options = ClientOptions { offline_capacity: 4, ..ClientOptions::default() };
    let (addr, _url, client, mut events) = subscribed_then_bridge_stopped("jobs.>", options).await;
    let at =
        |id, priority: u8| Envelope::new(id, "jobs.offline", Priority::new(priority).unwrap(), 0, vec![1]);
    let refused = |result: Result<(), ClientError>| matches!(result, Err(ClientError::Refused { ref code, .. }) if code == "QUEUE_FULL");
    for (id, priority) in [(7, 6), (8, 9), (9, 8), (12, 6)] {
        client.send(&at(id, priority)).await.unwrap();
    }
    // Full: a newcomer evicts the oldest of the lowest priority below its own and below 8 ...
    client.send(&at(10, 9)).await.unwrap();
    assert!(refused(client.send(&at(11, 0)).await), "nothing less urgent than 0 to evict");
    client.send(&at(13, 9)).await.unwrap();
    // ... and a queue full of priority ≥ 8 refuses the caller rather than drop one.
    assert!(refused(client.send(&at(14, 9)).await));
    let (_, _stop_again, _server_again) = start_on(&addr.to_string()).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap();
        ids.push(event.id);
    }
    assert_eq!(ids, [8, 10, 13, 9], "most urgent first, FIFO within a priority");
    // Nothing else was sent: the next event is a marker published now.
    client.publish(&at(99, 5)).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap();
    assert_eq!(next.id, 99, "the evicted 7 and 12 never went out");
    let stats = client.stats();
    assert_eq!(stats.session.dropped, [1, 0, 0, 0, 0, 0, 2, 0, 0, 1], "every drop counted by priority");
    assert_eq!((stats.queued, stats.session.reconnects > 0), (0, true));
}

/// What a fake bridge saw of one connection.
#[derive(Debug, PartialEq)]
enum Seen {
    Hello(Option<String>),
    Refresh(String),
    Closed(Option<u16>),
}

/// A fake bridge that answers each hello with `answer`, acknowledges token
/// refreshes, and ignores every other frame (pings included); reports hellos,
/// refreshes and closes.
async fn fake_bridge(answer: ServerFrame) -> (String, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let (seen, seen_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (seen, answer) = (seen.clone(), answer.clone());
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else { return };
                while let Some(Ok(message)) = ws.next().await {
                    match message {
                        Message::Binary(bytes) => {
                            let reply = match ClientFrame::decode(&bytes) {
                                Ok(ClientFrame::Hello { token, .. }) => {
                                    let _ = seen.send(Seen::Hello(token));
                                    answer.clone()
                                }
                                Ok(ClientFrame::Refresh { token, ack: Some(ack) }) => {
                                    let _ = seen.send(Seen::Refresh(token));
                                    ServerFrame::Ack { ack }
                                }
                                _ => continue,
                            };
                            let _ = ws.send(Message::Binary(reply.encode().into())).await;
                        }
                        Message::Close(frame) => {
                            let _ = seen.send(Seen::Closed(frame.map(|f| u16::from(f.code))));
                            return;
                        }
                        _ => {}
                    }
                }
                let _ = seen.send(Seen::Closed(None));
            });
        }
    });
    (url, seen_rx)
}

async fn next_seen(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(5), seen.recv())
        .await
        .expect("in time")
        .expect("fake bridge running")
}

#[tokio::test]
async fn a_bridge_that_stops_answering_pings_is_left_for_a_new_connection() {
    let (url, mut seen) = fake_bridge(ServerFrame::Welcome { v: 1, session: 1 }).await;
    let options = ClientOptions {
        token: Some("jwt".into()),
        ping_interval: Duration::from_millis(50),
        min_backoff: Duration::from_millis(10),
        ..ClientOptions::default()
    };
    let (_client, _events) = Client::connect(&url, options).await.unwrap();
    assert_eq!(next_seen(&mut seen).await, Seen::Hello(Some("jwt".into())));
    // No pong within an interval: closed with 4000, then a new hello.
    assert_eq!(next_seen(&mut seen).await, Seen::Closed(Some(4000)));
    assert_eq!(next_seen(&mut seen).await, Seen::Hello(Some("jwt".into())));
}

#[tokio::test]
async fn a_token_refresh_reaches_the_open_connection_and_waits_for_its_ack() {
    let (url, mut seen) = fake_bridge(ServerFrame::Welcome { v: 1, session: 1 }).await;
    let options = ClientOptions { token: Some("jwt".into()), ..ClientOptions::default() };
    let (client, _events) = Client::connect(&url, options).await.unwrap();
    assert_eq!(next_seen(&mut seen).await, Seen::Hello(Some("jwt".into())));
    client.refresh_token("newer").await.unwrap();
    assert_eq!(next_seen(&mut seen).await, Seen::Refresh("newer".into()));
}

#[tokio::test]
async fn a_refused_hello_fails_connect_with_the_bridge_code() {
    let (url, _seen) = fake_bridge(ServerFrame::error("INVALID_TOKEN", "bad signature", None)).await;
    let refused = Client::connect(&url, ClientOptions::default()).await.err().unwrap();
    assert_eq!(
        refused,
        ClientError::Refused { code: "INVALID_TOKEN".into(), message: "bad signature".into() }
    );
}
