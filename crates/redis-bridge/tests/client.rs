//! The native client against a real bridge on loopback: operations, refusals,
//! and reconnecting with resubscription after the bridge restarts.

use std::net::SocketAddr;
use std::time::Duration;

use swarmbus_bridge::client::{Client, ClientError, ClientOptions};
use swarmbus_bridge::config::Config;
use swarmbus_bridge::server::{serve, Bridge};
use swarmbus_core::{Envelope, Priority};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

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

#[tokio::test]
async fn reconnects_and_resubscribes_after_the_bridge_restarts() {
    let (addr, stop, server) = start_on("127.0.0.1:0").await;
    let url = format!("ws://{addr}/ws");
    let (subscriber, mut events) = Client::connect(&url, ClientOptions::default()).await.unwrap();
    subscriber.subscribe("jobs.>").await.unwrap();

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
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
