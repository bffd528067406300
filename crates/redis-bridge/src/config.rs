//! Command-line and environment configuration.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use crate::logging::LogFormat;

/// `swarmbus-bridge`: relays swarmbus envelopes between WebSocket clients.
///
/// The binary makes every flag global: it may come before or after `demo`.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "SWARMBUS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Largest WebSocket frame or HTTP body accepted, in bytes.
    #[arg(long, env = "SWARMBUS_MAX_FRAME", default_value_t = 1024 * 1024)]
    pub max_frame: usize,
    /// Most subscriptions one connection may hold.
    #[arg(long, env = "SWARMBUS_MAX_SUBSCRIPTIONS", default_value_t = 256)]
    pub max_subscriptions: usize,
    /// Event frames queued per client before the overflow policy applies
    /// (memory is bounded by `--send-queue-bytes`; this bounds the count of
    /// small frames, each about 32 bytes of bookkeeping).
    #[arg(long, env = "SWARMBUS_SEND_QUEUE", default_value_t = 16_384)]
    pub send_queue: usize,
    /// Bytes of event frames queued (or being written) per client before the
    /// overflow policy applies (one frame always fits an empty queue).
    #[arg(long, env = "SWARMBUS_SEND_QUEUE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub send_queue_bytes: usize,
    /// A client whose socket takes no batch of frames for this long is
    /// disconnected as a slow consumer (e.g. `10s`, `500ms`).
    #[arg(long, env = "SWARMBUS_WRITE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub write_timeout: std::time::Duration,
    /// On SIGTERM/SIGINT: how long to flush queued frames to clients (then
    /// close them with 1001) before whatever is still open is aborted.
    #[arg(long, env = "SWARMBUS_SHUTDOWN_GRACE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: std::time::Duration,
    /// Bytes of publishes waiting for the Redis publisher (Redis mode); when
    /// full, publishing clients wait (their frames are not read meanwhile).
    #[arg(long, env = "SWARMBUS_RELAY_QUEUE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub relay_queue_bytes: usize,
    /// Relay through this Redis (`redis://HOST:PORT`) instead of the embedded broker;
    /// every bridge on the same Redis forms one bus.
    #[arg(long, env = "SWARMBUS_REDIS")]
    pub redis: Option<String>,
    /// Shared secret for HS256 tokens; without it the bridge is open and binds to loopback only.
    #[arg(long, env = "SWARMBUS_AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: Option<String>,
    /// Serve static files (the dashboard) from this directory at `/`.
    #[arg(long = "static", env = "SWARMBUS_STATIC")]
    pub static_dir: Option<std::path::PathBuf>,
    /// Publishes per second allowed on one connection (token bucket refill rate).
    #[arg(long, env = "SWARMBUS_PUBLISH_RATE", default_value_t = 50_000)]
    pub publish_rate: u32,
    /// Publishes one connection may burst above the rate (token bucket size).
    #[arg(long, env = "SWARMBUS_PUBLISH_BURST", default_value_t = 10_000)]
    pub publish_burst: u32,
    /// Protocol errors tolerated on one connection before it is closed.
    #[arg(long, env = "SWARMBUS_MAX_STRIKES", default_value_t = 16)]
    pub max_strikes: u32,
    /// Log line format on stderr (the level comes from `RUST_LOG`, default `info`).
    #[arg(long, env = "SWARMBUS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// How long a WebSocket may take to send an accepted `hello` after the
    /// upgrade (then closed with 4002), e.g. `10s`.
    #[arg(long, env = "SWARMBUS_HELLO_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub hello_timeout: Duration,
    /// How long an HTTP client may take to send a request's headers; also how
    /// long an idle keep-alive connection stays open.
    #[arg(long, env = "SWARMBUS_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
    /// How long an HTTP client may take to send a request's body.
    #[arg(long, env = "SWARMBUS_BODY_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub body_timeout: Duration,
    /// WebSockets open at once that have not yet sent an accepted `hello`;
    /// further upgrades are refused with 503 `TOO_MANY_UNAUTHENTICATED`.
    #[arg(long, env = "SWARMBUS_MAX_UNAUTHENTICATED", default_value_t = 1024)]
    pub max_unauthenticated: usize,
    /// How long to wait for Redis to answer a publish or a health `PING`
    /// (Redis mode); a publish not answered in time is `TIMEOUT`, outcome unknown.
    #[arg(long, env = "SWARMBUS_REDIS_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub redis_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self::parse_from(["swarmbus-bridge"])
    }
}

impl Config {
    /// Checks every setting before anything listens: refuses unsafe ones (an
    /// open bridge, with no auth secret, only listens on loopback addresses),
    /// parses the Redis URL, and requires positive limits and an existing
    /// `--static` directory.
    pub fn validate(&self) -> Result<(), String> {
        match &self.auth_secret {
            None if !self.listen.ip().is_loopback() => {
                return Err(format!(
                    "refusing to listen on {} without authentication: set --auth-secret (or SWARMBUS_AUTH_SECRET), or bind to loopback (e.g. 127.0.0.1:8080)",
                    self.listen
                ));
            }
            Some(secret) if secret.len() < 16 => return Err("--auth-secret must be at least 16 bytes".into()),
            _ => {}
        }
        if self.max_frame == 0 || self.send_queue == 0 || self.max_subscriptions == 0 {
            return Err("--max-frame, --send-queue and --max-subscriptions must be positive".into());
        }
        if self.send_queue_bytes == 0 || self.relay_queue_bytes == 0 || self.write_timeout.is_zero() {
            return Err("--send-queue-bytes, --relay-queue-bytes and --write-timeout must be positive".into());
        }
        if self.relay_queue_bytes > u32::MAX as usize {
            return Err("--relay-queue-bytes must be at most 4 GiB".into());
        }
        if self.publish_rate == 0 || self.publish_burst == 0 {
            return Err("--publish-rate and --publish-burst must be positive".into());
        }
        if self.max_strikes == 0 {
            return Err("--max-strikes must be positive".into());
        }
        let timeouts = [self.hello_timeout, self.header_timeout, self.body_timeout, self.redis_timeout];
        if timeouts.iter().any(Duration::is_zero) || self.max_unauthenticated == 0 {
            return Err(
                "--hello-timeout, --header-timeout, --body-timeout, --redis-timeout and --max-unauthenticated must be positive"
                    .into(),
            );
        }
        if let Some(url) = &self.redis {
            redis::Client::open(url.as_str()).map_err(|e| format!("invalid --redis URL {url}: {e}"))?;
        }
        if let Some(dir) = self.static_dir.as_ref().filter(|dir| !dir.is_dir()) {
            return Err(format!("--static {}: not a directory", dir.display()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_loopback_and_valid() {
        let config = Config::default();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn non_loopback_is_refused() {
        let config = Config::parse_from(["swarmbus-bridge", "--listen", "0.0.0.0:8080"]);
        assert!(config.validate().unwrap_err().contains("without authentication"));
        let secured = Config::parse_from([
            "swarmbus-bridge",
            "--listen",
            "0.0.0.0:8080",
            "--auth-secret",
            "0123456789abcdef",
        ]);
        assert_eq!(secured.validate(), Ok(()));
        let weak = Config::parse_from(["swarmbus-bridge", "--auth-secret", "short"]);
        assert!(weak.validate().is_err());
    }

    #[test]
    fn limits_urls_and_directories_are_checked() {
        let invalid = |args: &[&str]| {
            let config = Config::parse_from(["swarmbus-bridge"].iter().chain(args));
            config.validate().expect_err(&args.join(" "))
        };
        // Regression: a bad Redis URL was only refused after "listening" was printed.
        assert!(invalid(&["--redis", "notaurl"]).contains("invalid --redis URL"));
        assert!(invalid(&["--static", "/nonexistent/swarmbus"]).contains("not a directory"));
        for flag in ["--max-frame", "--send-queue", "--max-subscriptions", "--publish-rate", "--max-strikes"]
        {
            assert!(invalid(&[flag, "0"]).contains("must be positive"), "{flag}");
        }
        let redis = Config::parse_from(["swarmbus-bridge", "--redis", "redis://127.0.0.1:1"]);
        assert_eq!(redis.validate(), Ok(()));
    }
}
