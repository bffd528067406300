//! Prometheus metrics (`GET /metrics`), with the `swarmbus_` prefix.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// A priority label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PriorityLabel {
    /// 0–9.
    pub priority: u8,
}

/// A drop, by priority and reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabel {
    /// 0–9.
    pub priority: u8,
    /// `evicted` (a more urgent event took its place) or `slow_client` (the client was disconnected).
    pub reason: &'static str,
}

/// An error code label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// The error code sent to the client.
    pub code: &'static str,
}

/// Why a slow consumer was disconnected.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SlowLabel {
    /// `queue_full`, `control_full` or `write_timeout` (see `crate::outbox::SlowReason`).
    pub reason: &'static str,
}

/// Labels of `swarmbus_client_events_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientEventLabel {
    /// The reporting client's kind.
    pub kind: String,
    /// `wasm` or `js`.
    pub path: &'static str,
}

/// Every metric the bridge exports.
pub struct Metrics {
    registry: Registry,
    /// WebSocket connections accepted.
    pub connections: Counter,
    /// WebSocket connections open now.
    pub open_connections: Gauge,
    /// Envelopes accepted from publishers (WebSocket and HTTP).
    pub published: Family<PriorityLabel, Counter>,
    /// Event frames queued to subscribers.
    pub delivered: Family<PriorityLabel, Counter>,
    /// Event frames lost, by priority and reason.
    pub dropped: Family<DropLabel, Counter>,
    /// Error frames and HTTP errors sent, by code.
    pub errors: Family<CodeLabel, Counter>,
    /// Connections closed for repeated protocol violations.
    pub abusive_disconnects: Counter,
    /// `hello` tokens refused, by code (the connection closes with 4003, not as abuse).
    pub auth_refusals: Family<CodeLabel, Counter>,
    /// Time to route one publish and queue it to every subscriber.
    pub publish_seconds: Histogram,
    /// 1 while the Redis subscriber connection is up (exported in Redis mode only).
    pub redis_up: Gauge,
    /// Attempts to (re)connect the Redis subscriber (exported in Redis mode only).
    pub redis_reconnects: Counter,
    /// Publishes Redis refused or could not take, answered with `UNAVAILABLE`
    /// (exported in Redis mode only).
    pub redis_publish_failures: Counter,
    /// Events clients report having handled, by client kind and code path.
    pub client_events: Family<ClientEventLabel, Counter>,
    /// Bytes queued for (or being written to) WebSocket clients, all clients together.
    pub send_queue_bytes: Gauge,
    /// Clients disconnected as slow consumers, by reason.
    pub slow_consumer_disconnects: Family<SlowLabel, Counter>,
    /// Bytes of publishes waiting for the Redis publisher (Redis mode).
    pub relay_queue_bytes: Gauge,
    /// Publishes sent to Redis that got no answer within `--redis-timeout`,
    /// answered `TIMEOUT`: they may or may not be delivered (Redis mode).
    pub redis_publish_unknown: Counter,
    /// Publishes Redis took but delivered to no subscriber although this
    /// bridge counted itself subscribed (its subscription was lost at Redis),
    /// answered `UNAVAILABLE` instead of acknowledged (Redis mode).
    pub redis_publish_unrouted: Counter,
}

/// The metrics of an embedded-broker bridge: no `swarmbus_redis_*`.
impl Default for Metrics {
    fn default() -> Self {
        Self::new(false)
    }
}

/// Labels of `swarmbus_build_info`.
type BuildLabels = [(&'static str, &'static str); 1];

impl Metrics {
    /// Every metric, with the `swarmbus_redis_*` ones only when `redis` (Redis
    /// mode): an embedded bridge exports no Redis state, not even a `0`.
    /// `swarmbus_build_info{version}` is always 1.
    pub fn new(redis: bool) -> Self {
        let mut registry = Registry::with_prefix("swarmbus");
        let metrics = Self {
            connections: Counter::default(),
            open_connections: Gauge::default(),
            published: Family::default(),
            delivered: Family::default(),
            dropped: Family::default(),
            errors: Family::default(),
            abusive_disconnects: Counter::default(),
            auth_refusals: Family::default(),
            publish_seconds: Histogram::new(exponential_buckets(1e-6, 4.0, 10)),
            redis_up: Gauge::default(),
            redis_reconnects: Counter::default(),
            redis_publish_failures: Counter::default(),
            client_events: Family::default(),
            send_queue_bytes: Gauge::default(),
            slow_consumer_disconnects: Family::default(),
            relay_queue_bytes: Gauge::default(),
            redis_publish_unknown: Counter::default(),
            redis_publish_unrouted: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("connections", "WebSocket connections accepted", metrics.connections.clone());
        registry.register(
            "open_connections",
            "WebSocket connections open now",
            metrics.open_connections.clone(),
        );
        registry.register("published", "Envelopes accepted from publishers", metrics.published.clone());
        registry.register("delivered", "Event frames queued to subscribers", metrics.delivered.clone());
        registry.register("dropped", "Event frames lost, by priority and reason", metrics.dropped.clone());
        registry.register("errors", "Errors reported to clients, by code", metrics.errors.clone());
        registry.register(
            "abusive_disconnects",
            "Connections closed for repeated protocol violations",
            metrics.abusive_disconnects.clone(),
        );
        registry.register(
            "auth_refusals",
            "hello tokens refused, by code (closed with 4003)",
            metrics.auth_refusals.clone(),
        );
        registry.register(
            "publish_seconds",
            "Time to route one publish and queue it to every subscriber",
            metrics.publish_seconds.clone(),
        );
        if redis {
            registry.register(
                "redis_up",
                "1 while the Redis subscriber connection is up",
                metrics.redis_up.clone(),
            );
            registry.register(
                "redis_reconnects",
                "Attempts to (re)connect the Redis subscriber",
                metrics.redis_reconnects.clone(),
            );
            registry.register(
                "redis_publish_failures",
                "Publishes Redis refused or could not take",
                metrics.redis_publish_failures.clone(),
            );
        }
        // OpenMetrics adds `_info`: the series is `swarmbus_build_info{version="…"} 1`.
        let build: Info<BuildLabels> = Info::new([("version", env!("CARGO_PKG_VERSION"))]);
        registry.register("build", "The bridge's version", build);
        registry.register(
            "client_events",
            "Events clients report having handled, by client kind and path (wasm or js)",
            metrics.client_events.clone(),
        );
        registry.register(
            "send_queue_bytes",
            "Bytes queued for or being written to WebSocket clients",
            metrics.send_queue_bytes.clone(),
        );
        registry.register(
            "slow_consumer_disconnects",
            "Clients disconnected as slow consumers, by reason",
            metrics.slow_consumer_disconnects.clone(),
        );
        if redis {
            registry.register(
                "relay_queue_bytes",
                "Bytes of publishes waiting for the Redis publisher",
                metrics.relay_queue_bytes.clone(),
            );
            registry.register(
                "redis_publish_unknown",
                "Publishes sent to Redis with no answer in time (TIMEOUT, outcome unknown)",
                metrics.redis_publish_unknown.clone(),
            );
            registry.register(
                "redis_publish_unrouted",
                "Publishes Redis delivered to no subscriber while this bridge counted itself subscribed",
                metrics.redis_publish_unrouted.clone(),
            );
        }
        Self { registry, ..metrics }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Counts an error reported to a client.
    pub fn error(&self, code: &'static str) {
        self.errors.get_or_create(&CodeLabel { code }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_metrics_only_in_redis_mode_and_build_info_always() {
        // Regression: `swarmbus_redis_up 0` was exported by an embedded bridge.
        let embedded = Metrics::default().render();
        assert!(!embedded.contains("swarmbus_redis"), "{embedded}");
        let redis = Metrics::new(true).render();
        for name in [
            "swarmbus_redis_up ",
            "swarmbus_redis_reconnects_total ",
            "swarmbus_redis_publish_failures_total ",
        ] {
            assert!(redis.contains(name), "{name} missing:\n{redis}");
        }
        let build = format!("swarmbus_build_info{{version=\"{}\"}} 1\n", env!("CARGO_PKG_VERSION"));
        assert!(embedded.contains(&build) && redis.contains(&build), "{embedded}");
    }
}
