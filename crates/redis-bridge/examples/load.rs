//! Load generator for `just bench-bridge`: P publishers and S subscribers on
//! one or more bridges; reports delivered messages per second and end-to-end
//! latency (publisher send → subscriber receive) percentiles.
//!
//! `cargo run --release -p swarmbus-bridge --example load -- --url ws://127.0.0.1:8080/ws --publishers 4 --subscribers 4 --seconds 5`

#[path = "support/mod.rs"]
mod support;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use support::{now_micros, rss_kib};
use swarmbus_bridge::protocol::{ClientFrame, ServerFrame};
use swarmbus_core::{envelope, Envelope, Priority};
use tokio_tungstenite::connect_async_with_config;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
struct Args {
    /// Bridge WebSocket URLs; publishers and subscribers are spread over them.
    #[arg(long, num_args = 1.., default_value = "ws://127.0.0.1:8080/ws")]
    url: Vec<String>,
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    #[arg(long, default_value_t = 4)]
    subscribers: usize,
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Messages per second per publisher (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 200)]
    payload: usize,
    /// Label printed in the result line.
    #[arg(long, default_value = "run")]
    label: String,
    /// Instead of a load run: hold this many idle subscribed connections and
    /// report the bridge's resident memory per connection (needs `--bridge-pid`).
    #[arg(long)]
    idle: Option<usize>,
    /// Process id of the bridge, for `--idle`.
    #[arg(long)]
    bridge_pid: Option<u32>,
}

/// Opens `count` connections that say hello and subscribe, then measures the bridge.
async fn idle(url: &str, count: usize, pid: u32) {
    let before = rss_kib(pid);
    let mut held = Vec::with_capacity(count);
    let mut pending = Vec::new();
    for i in 0..count {
        let url = url.to_owned();
        pending.push(tokio::spawn(async move {
            let mut ws = connect(&url).await;
            let pattern = format!("idle.c{i}.>");
            ws.send(Message::Binary(ClientFrame::Subscribe { pattern, ack: Some(1) }.encode().into()))
                .await
                .unwrap();
            let _ack = ws.next().await;
            ws
        }));
        if pending.len() == 200 {
            for task in pending.drain(..) {
                held.push(task.await.expect("idle connection"));
            }
        }
    }
    for task in pending {
        held.push(task.await.expect("idle connection"));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(pid);
    println!(
        "| {count} idle subscribed connections | {:.1} MiB before | {:.1} MiB after | {:.2} KiB per connection |",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        after.saturating_sub(before) as f64 / count as f64
    );
    drop(held);
}

/// Publishes in flight per publisher at full speed.
const WINDOW: u64 = 256;

async fn connect(
    url: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let (mut ws, _) = connect_async_with_config(url, None, true).await.expect("bridge reachable");
    ws.send(Message::Binary(ClientFrame::Hello { v: 1, token: None }.encode().into())).await.unwrap();
    let _welcome = ws.next().await;
    ws
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Some(count) = args.idle {
        let pid = args.bridge_pid.expect("--idle needs --bridge-pid");
        return idle(&args.url[0], count, pid).await;
    }
    let delivered = Arc::new(AtomicU64::new(0));
    let published = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicBool::new(true));
    let mut subscribers = Vec::new();
    for i in 0..args.subscribers {
        let mut ws = connect(&args.url[i % args.url.len()]).await;
        ws.send(Message::Binary(
            ClientFrame::Subscribe { pattern: "load.>".into(), ack: Some(1) }.encode().into(),
        ))
        .await
        .unwrap();
        let _ack = ws.next().await;
        let delivered = delivered.clone();
        subscribers.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::with_capacity(1 << 20);
            while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
                if let Message::Binary(bytes) = message {
                    if let Ok(ServerFrame::Event { envelope: env }) = ServerFrame::decode(&bytes) {
                        if let Ok(env) = envelope::decode_ref(&env, &envelope::Limits::default()) {
                            let sent = u64::from_le_bytes(env.payload[..8].try_into().unwrap_or_default());
                            latencies.push(now_micros().saturating_sub(sent).min(u32::MAX as u64) as u32);
                            delivered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            latencies
        }));
    }
    // Let every subscription reach every bridge (Redis mode) before publishing.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let mut publishers = Vec::new();
    for i in 0..args.publishers {
        let mut ws = connect(&args.url[i % args.url.len()]).await;
        let (published, running) = (published.clone(), running.clone());
        let (rate, size) = (args.rate, args.payload.max(8));
        publishers.push(tokio::spawn(async move {
            let mut n = 0u64;
            let interval = (rate > 0).then(|| Duration::from_secs_f64(1.0 / rate as f64));
            let mut next = Instant::now();
            while running.load(Ordering::Relaxed) {
                n += 1;
                let mut payload = vec![0u8; size];
                payload[..8].copy_from_slice(&now_micros().to_le_bytes());
                let env = Envelope::new(n, format!("load.p{i}.tick"), Priority::new((n % 8) as u8).unwrap(), 0, payload);
                // At full speed, every WINDOW-th publish asks for an ack and waits for it,
                // so at most WINDOW publishes are in flight (closed loop, no unbounded backlog).
                let ack = (interval.is_none() && n % WINDOW == 0).then_some(n);
                let frame = ClientFrame::Publish { envelope: env.encode().unwrap(), ack };
                if ws.feed(Message::Binary(frame.encode().into())).await.is_err() {
                    break;
                }
                if (interval.is_some() || ack.is_some()) && ws.flush().await.is_err() {
                    break;
                }
                if ack.is_some() {
                    while let Some(Ok(message)) = ws.next().await {
                        if matches!(message, Message::Binary(ref b) if matches!(ServerFrame::decode(b), Ok(ServerFrame::Ack { .. }))) {
                            break;
                        }
                    }
                }
                published.fetch_add(1, Ordering::Relaxed);
                if let Some(interval) = interval {
                    next += interval;
                    tokio::time::sleep_until(next.into()).await;
                }
            }
            let _ = ws.flush().await;
            let _ = ws.close(None).await;
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    running.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    for p in publishers {
        let _ = p.await;
    }
    let mut latencies = Vec::new();
    for s in subscribers {
        latencies.extend(s.await.unwrap_or_default());
    }
    latencies.sort_unstable();
    let pct = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let published = published.load(Ordering::Relaxed);
    let delivered = delivered.load(Ordering::Relaxed);
    println!(
        "| {} | {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {} |",
        args.label,
        args.publishers,
        args.subscribers,
        published as f64 / elapsed,
        delivered as f64 / elapsed,
        pct(0.50) as f64 / 1000.0,
        pct(0.99) as f64 / 1000.0,
        (published * args.subscribers as u64).saturating_sub(delivered),
    );
}
