//! The operator's view of the `swarmbus-bridge` binary: flags, logs, probes
//! and metrics, each checked by running the built binary on a loopback port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_swarmbus-bridge");
const SECRET: &str = "operator-test-secret-0123456789";
/// A Redis URL nothing listens on (port 1 on loopback).
const NO_REDIS: &str = "redis://127.0.0.1:1";
const WAIT: Duration = Duration::from_secs(30);
/// The log target of the Redis relay: with [`NO_REDIS`] its only warning is
/// that Redis cannot be reached.
const RELAY: &str = "swarmbus_bridge::relay";

/// A bridge process; killed (by its own handle) when dropped.
struct Bridge {
    child: Child,
    stderr: Arc<Mutex<String>>,
    addr: String,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bridge {
    /// Spawns the binary with `args` (and `--listen 127.0.0.1:PORT` on a free
    /// port), `RUST_LOG` as given (`None`: unset), and waits for `/livez`.
    fn start(args: &[&str], rust_log: Option<&str>) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let mut command = Command::new(BIN);
        command.args(args).args(["--listen", &addr]).stdin(Stdio::null()).stdout(Stdio::null());
        command.stderr(Stdio::piped()).env_remove("NO_COLOR");
        match rust_log {
            Some(filter) => command.env("RUST_LOG", filter),
            None => command.env_remove("RUST_LOG"),
        };
        let mut child = command.spawn().expect("the bridge binary starts");
        let stderr = collect(child.stderr.take().unwrap());
        let mut bridge = Self { child, stderr, addr };
        let deadline = Instant::now() + WAIT;
        while get(&bridge.addr, "/livez").map(|(status, _)| status) != Some(200) {
            if let Ok(Some(status)) = bridge.child.try_wait() {
                panic!("the bridge exited with {status}:\n{}", bridge.log());
            }
            assert!(Instant::now() < deadline, "no /livez within {WAIT:?}:\n{}", bridge.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        bridge
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`; returns the log.
    fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(Instant::now() < deadline, "{needle:?} not logged within {WAIT:?}:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn get(&self, path: &str) -> (u16, String) {
        get(&self.addr, path).unwrap_or_else(|| panic!("GET {path} failed:\n{}", self.log()))
    }
}

/// Reads `stream` into a shared string on a thread of its own.
fn collect(stream: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let mut text = sink.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    });
    text
}

/// Sends one HTTP/1.1 request; `None` if the connection fails.
fn request(addr: &str, head: &str, body: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let message =
        format!("{head}\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    stream.write_all(message.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_owned();
    Some((status, body))
}

fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    request(addr, &format!("GET {path} HTTP/1.1"), "")
}

/// Runs the binary to its end (at most [`WAIT`]): exit code, stdout, stderr.
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the bridge binary starts");
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} still running after {WAIT:?}:\n{}", stderr.lock().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The reader threads finish at end of file, right after the exit.
    std::thread::sleep(Duration::from_millis(100));
    let (out, err) = (stdout.lock().unwrap().clone(), stderr.lock().unwrap().clone());
    (status.code(), out, err)
}

#[test]
fn version_prints_the_package_version() {
    let (code, stdout, _) = run(&["--version"]);
    assert_eq!(
        (code, stdout.trim()),
        (Some(0), format!("swarmbus-bridge {}", env!("CARGO_PKG_VERSION")).as_str())
    );
}

#[test]
fn invalid_settings_fail_before_listening() {
    let cases: [(&[&str], &str); 5] = [
        // Regression: a bad Redis URL printed "listening" before the bridge failed.
        (&["--redis", "notaurl"], "invalid --redis URL"),
        (&["--static", "/nonexistent/swarmbus-static"], "not a directory"),
        (&["--max-frame", "0"], "must be positive"),
        (&["--listen", "0.0.0.0:0"], "without authentication"),
        (&["demo", "--swarms", "9"], "--swarms"),
    ];
    for (args, why) in cases {
        let listen: &[&str] = if args.contains(&"--listen") { &[] } else { &["--listen", "127.0.0.1:0"] };
        let args = [args, listen].concat();
        let (code, _, stderr) = run(&args);
        assert_eq!(code, Some(2), "{args:?}:\n{stderr}");
        assert!(stderr.contains(why), "{args:?}: {why:?} not in:\n{stderr}");
        assert!(!stderr.contains("listening"), "{args:?} listened first:\n{stderr}");
    }
}

#[test]
fn flags_before_demo_apply_to_the_demo() {
    // Regression: `--auth-secret S demo` parsed the secret into a configuration
    // nobody read, and the demo ran open.
    let (code, _, stderr) = run(&["--auth-secret", "x", "demo", "--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(2), "a too short secret before demo must be refused:\n{stderr}");
    assert!(stderr.contains("at least 16 bytes"), "{stderr}");

    let publish = r#"{"topic":"swarm.test","payload":1}"#;
    let head = "POST /v1/publish HTTP/1.1\r\nContent-Type: application/json";
    let secured = Bridge::start(&["--auth-secret", SECRET, "demo", "--rate", "10"], None);
    let (status, body) = request(&secured.addr, head, publish).unwrap();
    assert_eq!(status, 401, "the demo must require a token: {body}");
    let open = Bridge::start(&["demo", "--rate", "10"], None);
    let (status, body) = request(&open.addr, head, publish).unwrap();
    assert_eq!(status, 200, "an open demo takes the same publish: {body}");
}

#[test]
fn embedded_bridge_is_live_and_ready_and_exports_no_redis_state() {
    let bridge = Bridge::start(&[], None);
    for path in ["/livez", "/readyz", "/healthz"] {
        assert_eq!(bridge.get(path), (200, "ok\n".to_owned()), "{path}");
    }
    let (status, metrics) = bridge.get("/metrics");
    assert_eq!(status, 200);
    // Regression: `swarmbus_redis_up 0` was exported in embedded mode.
    assert!(!metrics.contains("swarmbus_redis"), "{metrics}");
    let build = format!("swarmbus_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
    assert!(metrics.contains(&build), "{metrics}");
}

#[test]
fn unreachable_redis_is_live_not_ready_and_warned_about_once() {
    let bridge = Bridge::start(&["--redis", NO_REDIS], None);
    // Regression: "cannot reach Redis" was logged at debug, so nothing was printed.
    bridge.wait_for_log(&format!("WARN {RELAY}: "));
    // Liveness does not depend on Redis (a liveness probe must not restart bridges during an outage).
    assert_eq!(bridge.get("/livez").0, 200);
    assert_eq!(bridge.get("/readyz").0, 503);
    assert_eq!(bridge.get("/healthz").0, 503, "/healthz is an alias of /readyz");
    // Let several reconnects happen (backoff from 50 ms): still one warning.
    let deadline = Instant::now() + WAIT;
    let reconnects = loop {
        let (_, metrics) = bridge.get("/metrics");
        assert!(metrics.contains("swarmbus_redis_up 0"), "{metrics}");
        let reconnects = metrics
            .lines()
            .find_map(|line| line.strip_prefix("swarmbus_redis_reconnects_total "))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        if reconnects >= 4 {
            break reconnects;
        }
        assert!(Instant::now() < deadline, "fewer than 4 reconnects within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = bridge.log();
    let warnings = log.lines().filter(|l| l.contains(&format!("WARN {RELAY}: "))).count();
    assert_eq!(warnings, 1, "{reconnects} reconnects must give one warning per 30 s:\n{log}");
}

#[test]
fn rust_log_sets_the_level_and_info_is_the_default() {
    // Regression: a fixed `info` directive was added on top of RUST_LOG.
    let warn_only = Bridge::start(&["--redis", NO_REDIS], Some("warn"));
    let log = warn_only.wait_for_log(&format!("WARN {RELAY}: "));
    assert!(!log.contains("INFO") && !log.contains("listening"), "RUST_LOG=warn printed info:\n{log}");

    let debug = Bridge::start(&["--redis", NO_REDIS], Some("debug"));
    debug.wait_for_log("DEBUG");

    let default = Bridge::start(&["--redis", NO_REDIS], None);
    let log = default.wait_for_log("listening on http://");
    assert!(log.contains(" INFO ") && !log.contains("DEBUG"), "{log}");
    // Regression: ANSI colour codes went into pipes.
    assert!(!log.contains('\u{1b}'), "colour codes in a pipe:\n{log:?}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let bridge = Bridge::start(&["--log-format", "json", "--redis", NO_REDIS], None);
    let log = bridge.wait_for_log(&format!("\"target\":\"{RELAY}\""));
    let mut levels = Vec::new();
    for line in log.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(value["fields"]["message"].is_string() && value["timestamp"].is_string(), "{line}");
        levels.push(value["level"].as_str().unwrap_or_default().to_owned());
    }
    assert!(levels.contains(&"INFO".to_owned()) && levels.contains(&"WARN".to_owned()), "{log}");
}

#[test]
fn static_files_stay_inside_the_root_and_skip_dotfiles() {
    let base = std::env::temp_dir().join(format!("swarmbus-operator-static-{}", std::process::id()));
    let root = base.join("www");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(base.join("private")).unwrap();
    std::fs::write(root.join("index.html"), "dashboard").unwrap();
    std::fs::write(root.join(".env"), "SECRET=1").unwrap();
    std::fs::write(base.join("private/key.pem"), "secret").unwrap();
    std::os::unix::fs::symlink(base.join("private/key.pem"), root.join("key.pem")).unwrap();
    std::os::unix::fs::symlink(base.join("private"), root.join("private")).unwrap();
    let bridge = Bridge::start(&["--static", root.to_str().unwrap()], None);
    assert_eq!(bridge.get("/"), (200, "dashboard".to_owned()));
    // Regression: `--static` served dotfiles and followed symlinks out of its root.
    for path in ["/.env", "/%2Eenv", "/key.pem", "/private/key.pem"] {
        assert_eq!(bridge.get(path).0, 404, "{path}");
    }
    assert_eq!(bridge.get("/readyz").0, 200);
    std::fs::remove_dir_all(base).unwrap();
}
