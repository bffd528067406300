//! Checks shared by the embedded-mode and Redis-mode integration tests.
// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use swarmbus_bridge::config::Config;
use swarmbus_bridge::protocol::{ClientFrame, ServerFrame};
use swarmbus_bridge::server::{serve, Bridge};
use swarmbus_core::{envelope, Envelope, Priority};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A test's WebSocket connection.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Starts a bridge with `config` on a free loopback port; it runs until the test ends.
pub async fn start_bridge(config: Config) -> (SocketAddr, Arc<Bridge>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bridge = Bridge::new(config).unwrap();
    tokio::spawn(serve(listener, bridge.clone(), std::future::pending()));
    (addr, bridge)
}

const FILLERS: u64 = 64;
const FILLER_BYTES: usize = 256 * 1024;
const BURST: u64 = 100;

async fn publish(ws: &mut Ws, id: u64, priority: Priority, payload: Vec<u8>, ack: Option<u64>) {
    let envelope = Envelope::new(id, "order.burst", priority, 0, payload).encode().unwrap();
    ws.send(Message::Binary(ClientFrame::Publish { envelope, ack }.encode().into())).await.unwrap();
}

async fn wait_for_ack(ws: &mut Ws, ack: u64) {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("an ack");
        if let Some(Ok(Message::Binary(bytes))) = message {
            match ServerFrame::decode(&bytes).unwrap() {
                ServerFrame::Ack { ack: got } if got == ack => return,
                ServerFrame::Error { code, message, .. } => panic!("publish refused: {code} {message}"),
                _ => {}
            }
        }
    }
}

/// `subscriber` (subscribed to `order.>`) stops reading while 16 MiB of
/// priority 0 events fill its socket, then a burst of mixed priorities is
/// published: the burst must reach it most urgent first, FIFO within a priority.
pub async fn burst_reaches_a_busy_subscriber_in_priority_order(publisher: &mut Ws, mut subscriber: Ws) {
    for id in 0..FILLERS {
        publish(publisher, id, Priority::BULK, vec![0; FILLER_BYTES], None).await;
    }
    publish(publisher, FILLERS, Priority::BULK, vec![0; FILLER_BYTES], Some(FILLERS)).await;
    wait_for_ack(publisher, FILLERS).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // the bridge's writer is now blocked
    let first = FILLERS + 1;
    for i in 0..BURST {
        let priority = Priority::new((i * 7 % 9 + 1) as u8).unwrap(); // 1..=9, interleaved
        let ack = (i == BURST - 1).then_some(first + i);
        publish(publisher, first + i, priority, vec![1], ack).await;
    }
    wait_for_ack(publisher, first + BURST - 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // Redis mode: let the burst come back

    let mut burst = Vec::new();
    let mut fillers_after_burst_began = 0;
    while burst.len() < BURST as usize {
        let message = tokio::time::timeout(Duration::from_secs(10), subscriber.next()).await.expect("events");
        let Some(Ok(Message::Binary(bytes))) = message else { continue };
        let ServerFrame::Event { envelope: bytes } = ServerFrame::decode(&bytes).unwrap() else { continue };
        let event = envelope::decode(&bytes).unwrap();
        if event.id >= first {
            burst.push((event.priority.get(), event.id));
        } else if !burst.is_empty() {
            fillers_after_burst_began += 1;
        }
    }
    let mut expected = burst.clone();
    expected.sort_by_key(|&(priority, id)| (std::cmp::Reverse(priority), id));
    assert_eq!(burst, expected, "the burst must arrive most urgent first, FIFO within a priority");
    // The check means something only if the burst overtook queued fillers.
    assert!(
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(Ok(message)) = subscriber.next().await {
                if let Message::Binary(bytes) = message {
                    if matches!(ServerFrame::decode(&bytes), Ok(ServerFrame::Event { .. })) {
                        fillers_after_burst_began += 1;
                    }
                }
                if fillers_after_burst_began > 0 {
                    return;
                }
            }
        })
        .await
        .is_ok(),
        "some fillers should still have been queued behind the burst"
    );
}
