//! Where published envelopes go: straight to the local broker (embedded
//! mode), or through Redis pub/sub so that every bridge on that Redis
//! delivers them to its own clients.
//!
//! ## Redis mapping
//!
//! An envelope on topic `T` is published to the Redis channel `swarmbus:T`
//! with the envelope's bytes as the message. Each bridge holds one
//! `PSUBSCRIBE swarmbus:*` on a dedicated subscriber connection and routes
//! what arrives with the core router, so wildcard subscriptions never reach
//! Redis; publishing uses a separate connection (`ConnectionManager`, which
//! reconnects on its own). The subscriber reconnects with exponential backoff
//! and re-issues its subscription after Redis restarts.
//!
//! Redis pub/sub is at-most-once: an envelope published while a bridge's
//! subscriber connection is down is not delivered to that bridge's clients.
//! A publish that Redis refuses is answered with `UNAVAILABLE` and counted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::Mutex;

use crate::broker::Broker;
use crate::error::BridgeError;
use crate::metrics::Metrics;

/// Prefix of every Redis channel swarmbus uses.
pub const CHANNEL_PREFIX: &str = "swarmbus:";

/// The Redis channel of a topic.
pub fn channel(topic: &str) -> String {
    format!("{CHANNEL_PREFIX}{topic}")
}

/// Publishes to Redis and feeds what Redis delivers into the local broker.
pub struct RedisRelay {
    client: redis::Client,
    publisher: Mutex<Option<ConnectionManager>>,
    subscribed: AtomicBool,
    metrics: Arc<Metrics>,
}

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

impl RedisRelay {
    /// A relay for the Redis at `url` (`redis://host:port`); nothing connects yet.
    pub fn new(url: &str, metrics: Arc<Metrics>) -> Result<Arc<Self>, String> {
        let client = redis::Client::open(url).map_err(|e| format!("invalid --redis URL {url}: {e}"))?;
        Ok(Arc::new(Self {
            client,
            publisher: Mutex::new(None),
            subscribed: AtomicBool::new(false),
            metrics,
        }))
    }

    /// True while the subscriber connection is up.
    pub fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    /// Publishes an already validated envelope on its topic's channel.
    pub async fn publish(&self, topic: &str, envelope: &[u8]) -> Result<(), BridgeError> {
        let mut connection = self.publisher().await?;
        // The manager multiplexes: concurrent publishes from many clients share
        // the connection and are pipelined, each awaiting only its own reply.
        let result: redis::RedisResult<i64> =
            redis::cmd("PUBLISH").arg(channel(topic)).arg(envelope).query_async(&mut connection).await;
        result.map(|_| ()).map_err(|e| self.unavailable(e))
    }

    /// A handle on the publisher connection, connecting it on first use.
    async fn publisher(&self) -> Result<ConnectionManager, BridgeError> {
        let mut publisher = self.publisher.lock().await;
        if let Some(connection) = publisher.as_ref() {
            return Ok(connection.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(self.client.clone(), config)
            .await
            .map_err(|e| self.unavailable(e))?;
        *publisher = Some(connection.clone());
        Ok(connection)
    }

    fn unavailable(&self, e: redis::RedisError) -> BridgeError {
        self.metrics.redis_publish_failures.inc();
        BridgeError::Unavailable(format!("redis: {e}"))
    }

    /// Runs the subscriber until the process ends: connect, `PSUBSCRIBE
    /// swarmbus:*`, hand every message to `broker`, and on any failure
    /// reconnect with exponential backoff.
    pub async fn run_subscriber(self: Arc<Self>, broker: Arc<Broker>) {
        let mut delay = BACKOFF_MIN;
        loop {
            match self.client.get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.psubscribe(format!("{CHANNEL_PREFIX}*")).await {
                    Ok(()) => {
                        self.subscribed.store(true, Ordering::Release);
                        self.metrics.redis_up.set(1);
                        tracing::info!("subscribed to Redis");
                        delay = BACKOFF_MIN;
                        let mut messages = pubsub.into_on_message();
                        while let Some(message) = messages.next().await {
                            if let Err(e) = broker.deliver(message.get_payload_bytes()) {
                                tracing::debug!("ignoring an invalid envelope from Redis: {e}");
                                self.metrics.error("REDIS_DECODE_ERROR");
                            }
                        }
                        self.subscribed.store(false, Ordering::Release);
                        self.metrics.redis_up.set(0);
                        tracing::warn!("lost the Redis subscription; reconnecting");
                    }
                    Err(e) => tracing::warn!("PSUBSCRIBE failed: {e}"),
                },
                Err(e) => tracing::debug!("cannot reach Redis: {e}"),
            }
            self.metrics.redis_reconnects.inc();
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(BACKOFF_MAX);
        }
    }
}
