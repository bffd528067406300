//! `just load`: N agents (native tasks, one bridge connection each through the
//! native client; every 64th publish waits for its ack) publishing the coordinator's priority mix to each other and
//! consuming what they are sent, for a fixed duration.
//!
//! Agent `a` of swarm `s = a % 4` subscribes to its inbox `swarm.{s}.agent.{a}.>`
//! and to `swarm.{s}.phase`; it sends to random peers of its swarm, and 1 % of
//! its sends are phase broadcasts (priority 9, to the whole swarm). Each agent
//! runs what it receives through its own core `CircuitBreaker`: 2 % of events
//! fail, and agents whose id ends in 0 fail everything between seconds 2 and 4,
//! so breakers open and close. Reports events/s, end-to-end latency, drops by
//! priority (from the bridge's `/metrics`), breaker transitions, and the
//! bridge's resident memory before and after.
//!
//! `cargo run --release -p swarmbus-bridge --example agents -- --url ws://127.0.0.1:8080/ws --bridge-pid PID`

#[path = "support/mod.rs"]
mod support;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use support::{now_micros, rss_kib};
use swarmbus_bridge::client::{Client, ClientOptions};
use swarmbus_core::{BreakerConfig, CircuitBreaker, Envelope, Priority};

#[derive(Parser)]
struct Args {
    /// Bridge WebSocket URLs; agents are spread over them.
    #[arg(long, num_args = 1.., default_value = "ws://127.0.0.1:8080/ws")]
    url: Vec<String>,
    #[arg(long, default_value_t = 100)]
    agents: u32,
    /// Sends per second per agent.
    #[arg(long, default_value_t = 500)]
    rate: u32,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The bridge's process id, to report its resident memory.
    #[arg(long)]
    bridge_pid: Option<u32>,
    /// Label printed in the result line.
    #[arg(long, default_value = "native agents")]
    label: String,
}

const SWARMS: u32 = 4;
/// Priorities of the mix, one entry per 1 % (phase broadcasts are the extra 1 %).
const MIX: [(u8, usize); 9] = [(8, 4), (7, 3), (6, 10), (5, 12), (4, 12), (3, 12), (2, 12), (1, 12), (0, 23)];

/// `swarmbus_dropped_total` by priority, summed over reasons.
async fn bridge_drops(ws_url: &str) -> [u64; 10] {
    let mut drops = [0u64; 10];
    let http = ws_url.replacen("ws://", "", 1);
    let host = http.split('/').next().unwrap_or_default().to_owned();
    let Ok(mut stream) = tokio::net::TcpStream::connect(&host).await else { return drops };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return drops;
    }
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text).await;
    for line in text.lines().filter(|l| l.starts_with("swarmbus_dropped_total{")) {
        let priority =
            line.split("priority=\"").nth(1).and_then(|r| r.split('"').next()?.parse::<usize>().ok());
        let value = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let (Some(p), Some(v)) = (priority, value) {
            drops[p.min(9)] += v as u64;
        }
    }
    drops
}

#[derive(Default)]
struct Totals {
    published: AtomicU64,
    delivered: AtomicU64,
    failed_publishes: AtomicU64,
    transitions: AtomicU64,
    latencies: Mutex<Vec<u32>>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mix: Vec<Priority> =
        MIX.iter().flat_map(|&(p, n)| std::iter::repeat_n(Priority::new(p).expect("0..=9"), n)).collect();
    let totals = Arc::new(Totals::default());
    let running = Arc::new(AtomicBool::new(true));
    let rss_before = args.bridge_pid.map(rss_kib);
    let drops_before = bridge_drops(&args.url[0]).await;

    let mut clients = Vec::new();
    for a in 0..args.agents {
        let url = &args.url[a as usize % args.url.len()];
        let (client, events) =
            Client::connect(url, ClientOptions::default()).await.expect("bridge reachable");
        let swarm = a % SWARMS;
        client.subscribe(&format!("swarm.{swarm}.agent.{a}.>")).await.expect("subscribe inbox");
        client.subscribe(&format!("swarm.{swarm}.phase")).await.expect("subscribe phase");
        clients.push((client, events));
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (a, (client, mut events)) in clients.into_iter().enumerate() {
        let a = a as u32;
        let (totals, running, mix) = (totals.clone(), running.clone(), mix.clone());
        let (rate, agents) = (args.rate.max(1), args.agents);
        // Receiver: latency, breaker.
        let receiver_totals = totals.clone();
        tasks.push(tokio::spawn(async move {
            let mut breaker = CircuitBreaker::new(BreakerConfig {
                failure_threshold: 5,
                open_ms: 500,
                half_open_probes: 1,
                ..Default::default()
            });
            let mut latencies = Vec::new();
            let flaky = a % 10 == 0;
            while let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(2), events.recv()).await {
                let sent = u64::from_le_bytes(event.payload[..8].try_into().unwrap_or_default());
                latencies.push(now_micros().saturating_sub(sent).min(u32::MAX as u64) as u32);
                receiver_totals.delivered.fetch_add(1, Ordering::Relaxed);
                let now_ms = started.elapsed().as_millis() as u64;
                let fails = event.payload[8] == 1 || (flaky && (2_000..4_000).contains(&now_ms));
                if let Ok(permit) = breaker.try_acquire(now_ms, event.priority) {
                    let _ = if fails {
                        breaker.on_failure(permit, now_ms)
                    } else {
                        breaker.on_success(permit, now_ms)
                    };
                }
            }
            receiver_totals.transitions.fetch_add(breaker.transition_count(), Ordering::Relaxed);
            receiver_totals.latencies.lock().expect("not poisoned").extend(latencies);
        }));
        // Sender: paced, acknowledged publishes.
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(u64::from(a));
            let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
            let mut next = Instant::now() + interval.mul_f64(rng.f64());
            let swarm = a % SWARMS;
            let mut n = 0u64;
            while running.load(Ordering::Relaxed) {
                n += 1;
                let mut payload = vec![0u8; 64];
                payload[..8].copy_from_slice(&now_micros().to_le_bytes());
                payload[8] = u8::from(rng.f64() < 0.02);
                let (topic, priority) = if rng.u32(..100) == 0 {
                    (format!("swarm.{swarm}.phase"), Priority::MAX)
                } else {
                    let peer = (rng.u32(..agents.div_ceil(SWARMS)) * SWARMS + swarm) % agents.max(1);
                    (format!("swarm.{swarm}.agent.{peer}.msg"), mix[rng.usize(..mix.len())])
                };
                let envelope = Envelope::new(u64::from(a) << 32 | n, topic, priority, 0, payload);
                // Every 64th publish waits for its ack: at most 64 in flight per agent.
                let sent =
                    if n % 64 == 0 { client.publish(&envelope).await } else { client.send(&envelope).await };
                match sent {
                    Ok(()) => totals.published.fetch_add(1, Ordering::Relaxed),
                    Err(_) => totals.failed_publishes.fetch_add(1, Ordering::Relaxed),
                };
                next += interval;
                tokio::time::sleep_until(next.into()).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    running.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    for task in tasks {
        let _ = task.await;
    }
    let drops_after = bridge_drops(&args.url[0]).await;
    let mut latencies = std::mem::take(&mut *totals.latencies.lock().expect("not poisoned"));
    latencies.sort_unstable();
    let pct = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let drops: Vec<String> = (0..10)
        .rev()
        .map(|p| drops_after[p].saturating_sub(drops_before[p]))
        .enumerate()
        .filter(|(_, n)| *n > 0)
        .map(|(i, n)| format!("p{}: {n}", 9 - i))
        .collect();
    let memory = match (args.bridge_pid, rss_before) {
        (Some(pid), Some(before)) => {
            format!("{:.1} → {:.1} MiB", before as f64 / 1024.0, rss_kib(pid) as f64 / 1024.0)
        }
        _ => "–".to_owned(),
    };
    println!(
        "| {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {memory} |",
        args.label,
        args.agents,
        totals.published.load(Ordering::Relaxed) as f64 / elapsed,
        totals.delivered.load(Ordering::Relaxed) as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        if drops.is_empty() { "0".to_owned() } else { drops.join(", ") },
        totals.failed_publishes.load(Ordering::Relaxed),
        totals.transitions.load(Ordering::Relaxed),
    );
}
