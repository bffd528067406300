//! Load generator for `just bench-bridge`: P publishers and S subscribers on
//! one or more bridges, or on nats-server over WebSocket (`--nats`, the peer);
//! reports delivered messages per second, end-to-end latency (publisher send →
//! subscriber receive) percentiles and lost deliveries, and with `--perf-pid`
//! the server's send-type syscalls per delivery (counted by `perf stat`).
//!
//! `cargo run --release -p swarmbus-bridge --example load -- --url ws://127.0.0.1:8080/ws --publishers 4 --subscribers 4 --seconds 5`
//!
//! Topics: by default publisher `i` publishes to `load.p{i}.tick` and every
//! subscriber takes `load.>`. With `--topics N` publishers cycle over
//! `load.t0` … `load.t{N-1}` and subscriber `i` subscribes to the
//! `--topics-per-subscriber K` topics `(i·K + j) mod N`, so each topic has the
//! same number of subscribers when S·K is a multiple of N.
//!
//! Both servers are driven the same way: one WebSocket frame per publish; at
//! full speed every `--window`-th publish waits for the server's answer (the
//! bridge's ack, NATS's `PONG` to a `PING` sent in the same frame), so at most
//! that many publishes are in flight per publisher. The 8 first payload bytes
//! carry the send time. Published/s is over the publishing window; delivered/s
//! over the first publish to the last delivery (a backlog drains after the
//! publishers stop); lost = Σ over topics of published × subscribers − delivered.

#[path = "support/nats.rs"]
mod nats;
#[path = "support/mod.rs"]
mod support;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use support::{now_micros, rss_kib};
use swarmbus_bridge::protocol::{ClientFrame, ServerFrame};
use swarmbus_core::{envelope, Envelope, Priority};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async_with_config, MaybeTlsStream, WebSocketStream};

#[derive(Parser)]
struct Args {
    /// Server WebSocket URLs; publishers and subscribers are spread over them.
    #[arg(long, num_args = 1.., default_value = "ws://127.0.0.1:8080/ws")]
    url: Vec<String>,
    /// URLs for the publishers only (default: `--url`).
    #[arg(long, num_args = 1..)]
    publish_url: Vec<String>,
    /// URLs for the subscribers only (default: `--url`).
    #[arg(long, num_args = 1..)]
    subscribe_url: Vec<String>,
    /// The URLs are nats-server WebSocket listeners, not swarmbus bridges.
    #[arg(long)]
    nats: bool,
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    #[arg(long, default_value_t = 4)]
    subscribers: usize,
    /// Topics the publishers cycle over (0: one per publisher, subscribers take `load.>`).
    #[arg(long, default_value_t = 0)]
    topics: usize,
    /// Topics each subscriber subscribes to, with `--topics`.
    #[arg(long, default_value_t = 1)]
    topics_per_subscriber: usize,
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Messages per second per publisher (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// At full speed, publishes in flight per publisher (every n-th waits for the server).
    #[arg(long, default_value_t = 256)]
    window: u64,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 200)]
    payload: usize,
    /// Label printed in the result line.
    #[arg(long, default_value = "run")]
    label: String,
    /// Count this process's send-type syscalls (`sendto`, `sendmsg`, `write`, `writev`)
    /// with `perf stat` while messages flow, and print them per delivery, then its CPU
    /// time per delivery and the load generator's own CPU time, as three last columns.
    #[arg(long)]
    perf_pid: Option<u32>,
    /// Instead of a load run: hold this many idle subscribed connections and
    /// report the bridge's resident memory per connection (needs `--bridge-pid`).
    #[arg(long)]
    idle: Option<usize>,
    /// Process id of the bridge, for `--idle`.
    #[arg(long)]
    bridge_pid: Option<u32>,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any single wait for the server may take.
const WAIT: Duration = Duration::from_secs(10);

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

/// Connects to a bridge and says hello.
async fn connect(url: &str) -> Ws {
    let (mut ws, _) = connect_async_with_config(url, None, true).await.expect("bridge reachable");
    ws.send(Message::Binary(ClientFrame::Hello { v: 1, token: None }.encode().into())).await.unwrap();
    let _welcome = ws.next().await;
    ws
}

/// Sends `data` as one binary frame and reads until NATS answers `PONG` (answering its `PING`s).
async fn nats_round_trip(ws: &mut Ws, reader: &mut nats::Reader, data: Vec<u8>) {
    ws.send(Message::Binary(data.into())).await.expect("nats-server reachable");
    let mut pong = false;
    while !pong {
        let message = tokio::time::timeout(WAIT, ws.next()).await;
        let Ok(Some(Ok(message))) = message else { panic!("nats-server did not answer PING") };
        let mut ping = false;
        reader.feed(&message.into_data(), |op| match op {
            nats::Op::Pong => pong = true,
            nats::Op::Ping => ping = true,
            nats::Op::Err(line) => panic!("nats-server: {}", String::from_utf8_lossy(line)),
            _ => {}
        });
        if ping {
            ws.send(Message::Binary(nats::PONG.into())).await.expect("nats-server reachable");
        }
    }
}

/// Opens a connection to either server, ready to publish or subscribe.
async fn open(nats: bool, url: &str) -> Ws {
    if !nats {
        return connect(url).await;
    }
    let (mut ws, _) = connect_async_with_config(url, None, true).await.expect("nats-server reachable");
    nats_round_trip(&mut ws, &mut nats::Reader::default(), nats::CONNECT.to_vec()).await;
    ws
}

/// Subscribes to `subjects` and waits until the server has them.
async fn subscribe(nats: bool, ws: &mut Ws, subjects: &[String]) {
    if nats {
        let mut frame = Vec::new();
        for (sid, subject) in subjects.iter().enumerate() {
            nats::subscribe(&mut frame, subject, sid + 1);
        }
        frame.extend_from_slice(nats::PING);
        return nats_round_trip(ws, &mut nats::Reader::default(), frame).await;
    }
    for (n, pattern) in subjects.iter().enumerate() {
        let frame = ClientFrame::Subscribe { pattern: pattern.clone(), ack: Some(n as u64 + 1) };
        ws.send(Message::Binary(frame.encode().into())).await.unwrap();
        let _ack = tokio::time::timeout(WAIT, ws.next()).await;
    }
}

/// Latency in µs of a payload that starts with its send time.
fn latency(payload: &[u8]) -> u32 {
    let sent = u64::from_le_bytes(payload.get(..8).and_then(|b| b.try_into().ok()).unwrap_or_default());
    now_micros().saturating_sub(sent).min(u32::MAX as u64) as u32
}

/// Receives until the stream is quiet for 2 s; returns the latency of each delivery
/// and when the last message arrived.
async fn receive(nats: bool, mut ws: Ws, delivered: Arc<AtomicU64>) -> (Vec<u32>, Option<Instant>) {
    let mut last = None;
    let mut latencies: Vec<u32> = Vec::with_capacity(1 << 20);
    let mut reader = nats::Reader::default();
    while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
        let (Message::Binary(_) | Message::Text(_)) = message else { continue };
        let data = message.into_data();
        last = Some(Instant::now());
        if nats {
            let (mut ping, mut count) = (false, 0);
            reader.feed(&data, |op| match op {
                nats::Op::Msg { payload } => {
                    latencies.push(latency(payload));
                    count += 1;
                }
                nats::Op::Ping => ping = true,
                _ => {}
            });
            delivered.fetch_add(count, Ordering::Relaxed);
            if ping && ws.send(Message::Binary(nats::PONG.into())).await.is_err() {
                break;
            }
        } else if let Ok(ServerFrame::Event { envelope: env }) = ServerFrame::decode(&data) {
            if let Ok(env) = envelope::decode_ref(&env, &envelope::Limits::default()) {
                latencies.push(latency(env.payload));
                delivered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    (latencies, last)
}

/// What one publisher does: which topics, how fast.
struct Publisher {
    nats: bool,
    /// Topics, cycled from `first`.
    topics: Arc<Vec<String>>,
    first: usize,
    /// Messages per second (0: full speed, `window` in flight).
    rate: u64,
    window: u64,
    payload: usize,
}

impl Publisher {
    /// Publishes until `running` goes false; returns how many messages went to each topic.
    async fn run(self, mut ws: Ws, running: Arc<AtomicBool>) -> Vec<u64> {
        let mut sent = vec![0u64; self.topics.len()];
        let mut reader = nats::Reader::default();
        let interval = (self.rate > 0).then(|| Duration::from_secs_f64(1.0 / self.rate as f64));
        let mut next = Instant::now();
        let mut n = 0u64;
        while running.load(Ordering::Relaxed) {
            n += 1;
            let topic = (self.first + n as usize) % self.topics.len();
            let mut payload = vec![0u8; self.payload.max(8)];
            payload[..8].copy_from_slice(&now_micros().to_le_bytes());
            // At full speed every window-th publish waits for the server's answer (closed loop).
            let wait = interval.is_none() && n % self.window.max(1) == 0;
            let frame = if self.nats {
                let mut frame = Vec::with_capacity(payload.len() + 64);
                nats::publish(&mut frame, &self.topics[topic], &payload);
                if wait {
                    frame.extend_from_slice(nats::PING);
                }
                frame
            } else {
                let env = Envelope::new(
                    n,
                    self.topics[topic].clone(),
                    Priority::new((n % 8) as u8).unwrap(),
                    0,
                    payload,
                );
                ClientFrame::Publish { envelope: env.encode().unwrap(), ack: wait.then_some(n) }.encode()
            };
            if ws.feed(Message::Binary(frame.into())).await.is_err() {
                break;
            }
            if (interval.is_some() || wait) && ws.flush().await.is_err() {
                break;
            }
            if wait && !self.answered(&mut ws, &mut reader).await {
                break;
            }
            sent[topic] += 1;
            if let Some(interval) = interval {
                next += interval;
                tokio::time::sleep_until(next.into()).await;
            }
        }
        let _ = ws.flush().await;
        let _ = ws.close(None).await;
        sent
    }

    /// Waits for the bridge's ack or NATS's `PONG`; false if the server went away or took longer than [`WAIT`].
    async fn answered(&self, ws: &mut Ws, reader: &mut nats::Reader) -> bool {
        loop {
            let Ok(Some(Ok(message))) = tokio::time::timeout(WAIT, ws.next()).await else { return false };
            let data = message.into_data();
            if !self.nats {
                if matches!(ServerFrame::decode(&data), Ok(ServerFrame::Ack { .. })) {
                    return true;
                }
                continue;
            }
            let (mut pong, mut ping) = (false, false);
            reader.feed(&data, |op| match op {
                nats::Op::Pong => pong = true,
                nats::Op::Ping => ping = true,
                _ => {}
            });
            if ping && ws.send(Message::Binary(nats::PONG.into())).await.is_err() {
                return false;
            }
            if pong {
                return true;
            }
        }
    }
}

/// CPU time (user + system) a process has used, in seconds (Linux `/proc`; 0 when unreadable).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which ends with the last ')': utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks: u64 = fields.get(11..13).map_or(0, |f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum());
    // USER_HZ, the unit of these fields, is 100 on Linux.
    ticks as f64 / 100.0
}

/// `perf stat` counting one process's send-type syscalls.
struct SendCalls {
    perf: Child,
    out: PathBuf,
}

impl SendCalls {
    /// Starts counting; `None` when perf cannot be started.
    fn start(pid: u32) -> Option<Self> {
        let out = std::env::temp_dir().join(format!("load-perf-{}-{pid}.csv", std::process::id()));
        let events = "syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_write,syscalls:sys_enter_writev";
        let perf = Command::new("perf")
            .args(["stat", "-x,", "-e", events, "-p", &pid.to_string(), "-o"])
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some(Self { perf, out })
    }

    /// Stops perf (SIGINT makes it write its counts); the total, `None` if nothing was counted.
    fn stop(mut self) -> Option<u64> {
        let _ = Command::new("kill").args(["-INT", &self.perf.id().to_string()]).status();
        let _ = self.perf.wait();
        let csv = std::fs::read_to_string(&self.out).unwrap_or_default();
        let _ = std::fs::remove_file(&self.out);
        let counts: Vec<u64> = csv.lines().filter_map(|l| l.split(',').next()?.trim().parse().ok()).collect();
        (!counts.is_empty()).then(|| counts.iter().sum())
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Some(count) = args.idle {
        let pid = args.bridge_pid.expect("--idle needs --bridge-pid");
        return idle(&args.url[0], count, pid).await;
    }
    let publish_urls = if args.publish_url.is_empty() { &args.url } else { &args.publish_url };
    let subscribe_urls = if args.subscribe_url.is_empty() { &args.url } else { &args.subscribe_url };

    // Topics, each subscriber's subscriptions, and how many subscribers each topic reaches.
    let (topics, per_publisher, subscriptions, fan_out): (Vec<String>, bool, Vec<Vec<String>>, Vec<u64>) =
        if args.topics == 0 {
            let topics = (0..args.publishers).map(|i| format!("load.p{i}.tick")).collect();
            let subs = vec![vec!["load.>".to_owned()]; args.subscribers];
            (topics, true, subs, vec![args.subscribers as u64; args.publishers])
        } else {
            let n = args.topics;
            let topics: Vec<String> = (0..n).map(|t| format!("load.t{t}")).collect();
            let k = args.topics_per_subscriber.min(n);
            let mut fan_out = vec![0u64; n];
            let subs = (0..args.subscribers)
                .map(|i| {
                    (0..k)
                        .map(|j| {
                            let t = (i * k + j) % n;
                            fan_out[t] += 1;
                            topics[t].clone()
                        })
                        .collect()
                })
                .collect();
            (topics, false, subs, fan_out)
        };

    let delivered = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicBool::new(true));
    let mut subscribers = Vec::new();
    for (i, subjects) in subscriptions.iter().enumerate() {
        let mut ws = open(args.nats, &subscribe_urls[i % subscribe_urls.len()]).await;
        subscribe(args.nats, &mut ws, subjects).await;
        subscribers.push(tokio::spawn(receive(args.nats, ws, delivered.clone())));
    }
    let send_calls = args.perf_pid.map(|pid| (pid, SendCalls::start(pid)));
    let cpu_before = args.perf_pid.map(|pid| (cpu_seconds(&pid.to_string()), cpu_seconds("self")));
    // Let every subscription reach every server (Redis mode, the NATS route) before publishing.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let mut publishers = Vec::new();
    let topics = Arc::new(topics);
    for i in 0..args.publishers {
        let ws = open(args.nats, &publish_urls[i % publish_urls.len()]).await;
        let publisher = Publisher {
            nats: args.nats,
            topics: if per_publisher { Arc::new(vec![topics[i].clone()]) } else { topics.clone() },
            first: i,
            rate: args.rate,
            window: args.window,
            payload: args.payload,
        };
        publishers.push((i, tokio::spawn(publisher.run(ws, running.clone()))));
    }
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    running.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let (mut published, mut expected) = (0u64, 0u64);
    for (i, p) in publishers {
        for (t, sent) in p.await.unwrap_or_default().into_iter().enumerate() {
            let topic = if per_publisher { i } else { t };
            published += sent;
            expected += sent * fan_out[topic];
        }
    }
    // Deliveries per second over the time they took: from the first publish to the last
    // delivery, so a backlog drained after the publishers stopped is not counted as free.
    let (mut latencies, mut last) = (Vec::new(), None);
    for s in subscribers {
        let (received, at) = s.await.unwrap_or_default();
        latencies.extend(received);
        last = last.max(at);
    }
    let delivering = last.map_or(elapsed, |at| at.duration_since(started).as_secs_f64().max(elapsed));
    let send_calls = send_calls.map(|(pid, counter)| (pid, counter.and_then(SendCalls::stop)));
    let cpu = args.perf_pid.zip(cpu_before).map(|(pid, (server, generator))| {
        (cpu_seconds(&pid.to_string()) - server, cpu_seconds("self") - generator)
    });
    latencies.sort_unstable();
    let pct = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let delivered = delivered.load(Ordering::Relaxed);
    let mut row = format!(
        "| {} | {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {} |",
        args.label,
        args.publishers,
        args.subscribers,
        published as f64 / elapsed,
        delivered as f64 / delivering,
        pct(0.50) as f64 / 1000.0,
        pct(0.99) as f64 / 1000.0,
        expected.saturating_sub(delivered),
    );
    match send_calls {
        Some((_, Some(calls))) => row += &format!(" {:.3} |", calls as f64 / delivered.max(1) as f64),
        Some((pid, None)) => {
            eprintln!("load: perf stat could not count syscalls of pid {pid}");
            row += " n/a |";
        }
        None => {}
    }
    if let Some((server, generator)) = cpu {
        row += &format!(" {:.2} | {:.1} |", server * 1e6 / delivered.max(1) as f64, generator);
    }
    println!("{row}");
}
