//! Command-line and environment configuration.

use std::net::SocketAddr;

use clap::Parser;

/// `swarmbus-bridge`: relays swarmbus envelopes between WebSocket clients.
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
    /// Frames queued per client before the overflow policy applies.
    #[arg(long, env = "SWARMBUS_SEND_QUEUE", default_value_t = 4096)]
    pub send_queue: usize,
    /// Relay through this Redis (`redis://HOST:PORT`) instead of the embedded broker;
    /// every bridge on the same Redis forms one bus.
    #[arg(long, env = "SWARMBUS_REDIS")]
    pub redis: Option<String>,
    /// Protocol errors tolerated on one connection before it is closed.
    #[arg(long, env = "SWARMBUS_MAX_STRIKES", default_value_t = 16)]
    pub max_strikes: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self::parse_from(["swarmbus-bridge"])
    }
}

impl Config {
    /// Refuses settings that would be unsafe. This build has no authentication
    /// yet, so it only listens on loopback addresses.
    pub fn validate(&self) -> Result<(), String> {
        if !self.listen.ip().is_loopback() {
            return Err(format!(
                "refusing to listen on {}: this build of swarmbus-bridge has no authentication yet, so it only binds to loopback (e.g. 127.0.0.1:8080)",
                self.listen
            ));
        }
        if self.max_frame == 0 || self.send_queue == 0 || self.max_subscriptions == 0 {
            return Err("--max-frame, --send-queue and --max-subscriptions must be positive".into());
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
        assert!(config.validate().unwrap_err().contains("only binds to loopback"));
    }
}
