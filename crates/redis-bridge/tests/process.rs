//! The bridge binary, for what only a process shows: its resident memory with
//! subscribers that never read, and what SIGTERM does to queued frames and to
//! connections that would keep it alive.

use std::io::Read;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use swarmbus_bridge::protocol::{ClientFrame, ServerFrame};
use swarmbus_core::{envelope, Envelope, Priority};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

#[path = "support/redis_server.rs"]
mod redis_server;
use redis_server::RedisServer;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const BIN: &str = env!("CARGO_BIN_EXE_swarmbus-bridge");

/// A bridge process on a free loopback port; killed (by its own handle) when dropped.
struct Process {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Process {
    fn start(args: &[&str]) -> Self {
        let port = StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut child = Command::new(BIN)
            .args(args)
            .args(["--listen", &addr.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the bridge binary starts");
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let process = Self { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "the bridge did not listen:\n{}", process.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        process
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// A line of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`), where there is a /proc.
    fn status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    fn terminate(&self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    }

    /// Waits for the process to exit, at most `within`.
    fn exited_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn send(ws: &mut Ws, frame: &ClientFrame) {
    ws.send(Message::Binary(frame.encode().into())).await.unwrap();
}

async fn recv(ws: &mut Ws) -> Option<ServerFrame> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a frame within 10 s") {
            Some(Ok(Message::Binary(bytes))) => return Some(ServerFrame::decode(&bytes).unwrap()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

async fn client(addr: SocketAddr) -> Ws {
    let (mut ws, _) = connect_async(format!("ws://{addr}/ws")).await.unwrap();
    send(&mut ws, &ClientFrame::Hello { v: 1, token: None }).await;
    assert!(matches!(recv(&mut ws).await, Some(ServerFrame::Welcome { .. })));
    ws
}

async fn subscriber(addr: SocketAddr, pattern: &str) -> Ws {
    let mut ws = client(addr).await;
    send(&mut ws, &ClientFrame::Subscribe { pattern: pattern.into(), ack: Some(0) }).await;
    assert_eq!(recv(&mut ws).await, Some(ServerFrame::Ack { ack: 0 }));
    ws
}

/// Publishes with an ack and waits for it.
async fn publish(ws: &mut Ws, id: u64, topic: &str, payload: usize) {
    let envelope = Envelope::new(id, topic, Priority::BULK, 0, vec![7; payload]).encode().unwrap();
    send(ws, &ClientFrame::Publish { envelope, ack: Some(id) }).await;
    assert_eq!(recv(ws).await, Some(ServerFrame::Ack { ack: id }));
}

fn event_id(frame: Option<ServerFrame>) -> u64 {
    match frame {
        Some(ServerFrame::Event { envelope: bytes }) => envelope::decode(&bytes).unwrap().id,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Peak resident memory allowed with two never-reading subscribers (see the test).
const RSS_BOUND_KIB: u64 = 64 * 1024;

#[tokio::test]
async fn never_reading_subscribers_keep_the_bridge_under_its_memory_bound() {
    // Regression: 2,200 publishes of 1 MiB to one subscriber that never read added
    // 2.15 GiB to the bridge; a second such subscriber doubled it. Here 96 MB go to each
    // of two such subscribers (with the queue bounded in frames only: 123 MiB peak
    // resident, against 27 MiB), while a third subscriber reads every event.
    let mut bridge = Process::start(&["--write-timeout", "120s"]);
    let _stuck = [subscriber(bridge.addr, "big").await, subscriber(bridge.addr, "big").await];
    let mut reader = subscriber(bridge.addr, "big").await;
    let mut publisher = client(bridge.addr).await;
    let start_kib = bridge.status_kib("VmRSS:");
    for id in 0..96 {
        publish(&mut publisher, id, "big", 1_000_000).await;
        assert_eq!(event_id(recv(&mut reader).await), id, "the reading subscriber keeps receiving");
    }
    let Some(peak_kib) = bridge.status_kib("VmHWM:") else {
        eprintln!("no /proc here: resident memory not measured");
        return;
    };
    eprintln!("bridge RSS: {start_kib:?} KiB with 4 clients, peak {peak_kib} KiB after 96 × 1 MB to 2 stuck subscribers");
    // Two queues of 4 MiB (+ one frame being written each), a few 1 MB frames in flight,
    // and the process's own baseline.
    assert!(peak_kib <= RSS_BOUND_KIB, "peak RSS {peak_kib} KiB > {RSS_BOUND_KIB} KiB:\n{}", bridge.log());
    bridge.terminate();
    assert!(bridge.exited_within(Duration::from_secs(15)).is_some());
}

#[tokio::test]
async fn sigterm_flushes_a_subscribers_backlog_then_closes_with_1001() {
    // Regression: the process exited 5–14 ms after SIGTERM; a subscriber with a
    // backlog got close code 1006 and lost its queued frames.
    let mut bridge = Process::start(&["--send-queue-bytes", "67108864", "--shutdown-grace", "20s"]);
    let mut backlogged = subscriber(bridge.addr, "backlog").await;
    let mut publisher = client(bridge.addr).await;
    const EVENTS: u64 = 48; // 12 MiB: more than the loopback socket buffers hold
    for id in 0..EVENTS {
        publish(&mut publisher, id, "backlog", 256 * 1024).await;
    }
    bridge.terminate();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut ids = Vec::new();
    let mut close = None;
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(10), backlogged.next()).await {
        match message {
            Ok(Message::Binary(bytes)) => ids.push(event_id(ServerFrame::decode(&bytes).ok())),
            Ok(Message::Close(frame)) => close = frame.map(|f| u16::from(f.code)),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert_eq!(ids, (0..EVENTS).collect::<Vec<_>>(), "the whole backlog, in order");
    assert_eq!(close, Some(1001));
    let status = bridge.exited_within(Duration::from_secs(10)).expect("the bridge exits once flushed");
    assert!(status.success(), "{status}:\n{}", bridge.log());
}

#[tokio::test]
async fn sigterm_exits_after_the_grace_whatever_is_still_open() {
    // Regression: one client holding an unfinished HTTP request kept SIGTERM from
    // ending the process (still running after 15 s).
    let mut bridge = Process::start(&["--shutdown-grace", "1s", "--write-timeout", "60s"]);
    let _stuck = subscriber(bridge.addr, "stuck").await;
    let mut publisher = client(bridge.addr).await;
    for id in 0..48 {
        publish(&mut publisher, id, "stuck", 256 * 1024).await;
    }
    let mut unfinished = TcpStream::connect(bridge.addr).await.unwrap();
    let request = "POST /v1/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{";
    unfinished.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let asked = Instant::now();
    bridge.terminate();
    let status = bridge.exited_within(Duration::from_secs(6)).unwrap_or_else(|| {
        panic!("still running 6 s after SIGTERM with a 1 s grace:\n{}", bridge.log());
    });
    eprintln!("exited {:?} after SIGTERM ({status})", asked.elapsed());
    assert!(status.success(), "{status}:\n{}", bridge.log());
}

#[tokio::test]
async fn sigterm_in_redis_mode_answers_every_publish_it_took_then_closes_with_1001() {
    // Regression: on SIGTERM in Redis mode a publisher got 1006 with 58 publishes unanswered.
    let redis = RedisServer::start();
    let mut bridge = Process::start(&["--redis", &redis.url(), "--shutdown-grace", "20s"]);
    let mut publisher = client(bridge.addr).await;
    publish(&mut publisher, 0, "redis.shutdown", 100).await; // connected to Redis
                                                             // Redis stalls: what the bridge takes now is waiting for Redis when SIGTERM comes.
    redis.signal("STOP");
    const PUBLISHES: u64 = 500;
    for id in 1..=PUBLISHES {
        let envelope =
            Envelope::new(id, "redis.shutdown", Priority::NORMAL, 0, vec![1; 100]).encode().unwrap();
        send(&mut publisher, &ClientFrame::Publish { envelope, ack: Some(id) }).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    bridge.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.signal("CONT");
    let mut answered = Vec::new();
    let mut close = None;
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(10), publisher.next()).await {
        match message {
            Ok(Message::Binary(bytes)) => match ServerFrame::decode(&bytes).unwrap() {
                ServerFrame::Ack { ack } | ServerFrame::Error { ack: Some(ack), .. } => answered.push(ack),
                other => panic!("unexpected {other:?}"),
            },
            Ok(Message::Close(frame)) => close = frame.map(|f| u16::from(f.code)),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert_eq!(close, Some(1001), "answered {} of {PUBLISHES}:\n{}", answered.len(), bridge.log());
    // The bridge stops reading at SIGTERM: what it took is a prefix, and all of it is answered.
    answered.sort_unstable();
    let taken = answered.len() as u64;
    assert!(taken > 0);
    assert_eq!(answered, (1..=taken).collect::<Vec<_>>(), "no publish it took is left unanswered");
    eprintln!("{taken} of {PUBLISHES} publishes taken and answered before the close");
    let status = bridge.exited_within(Duration::from_secs(10)).expect("the bridge exits once flushed");
    assert!(status.success(), "{status}:\n{}", bridge.log());
}
