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
//! Publishes from every client go through one bounded queue to a publisher
//! task that sends whatever has accumulated as one pipeline (at most
//! [`MAX_BATCH`] commands) while the previous pipeline is in flight: one
//! round trip per batch instead of per message, and the order of publishes
//! from each client is kept. The reply (an `ack`, an `error` frame, or an HTTP
//! answer) is sent when Redis has answered.
//!
//! Redis pub/sub is at-most-once: an envelope published while a bridge's
//! subscriber connection is down is not delivered to that bridge's clients.
//! A publish that Redis refuses is answered with `UNAVAILABLE` and counted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::broker::Broker;
use crate::error::BridgeError;
use crate::metrics::Metrics;
use crate::outbox::ReplyTo;
use crate::protocol::ServerFrame;

/// Most publishes sent to Redis in one pipeline.
pub const MAX_BATCH: usize = 512;
/// Publishes waiting for the publisher task; a full queue slows the clients' readers down.
/// The queue is also bounded in bytes (`--relay-queue-bytes`, default 64 MiB).
const QUEUE: usize = 16 * 1024;

/// Prefix of every Redis channel swarmbus uses.
pub const CHANNEL_PREFIX: &str = "swarmbus:";

/// The Redis channel of a topic.
pub fn channel(topic: &str) -> String {
    format!("{CHANNEL_PREFIX}{topic}")
}

/// Who hears how a publish went.
pub enum Reply {
    /// A WebSocket client: `ack` on success when it asked for one, an `error` frame on failure.
    Frame {
        /// The client's send queue (the reply is owed until this is dropped).
        outbox: ReplyTo,
        /// The publish's `ack`, if any.
        ack: Option<u64>,
    },
    /// A caller awaiting the result (the HTTP publish).
    Waiter(oneshot::Sender<Result<(), BridgeError>>),
    /// Nobody waits (the demo simulator); failures are only counted.
    Discard,
}

impl Reply {
    fn send(self, result: Result<(), BridgeError>, metrics: &Metrics) {
        match self {
            Reply::Frame { outbox, ack } => match result {
                Ok(()) => {
                    if let Some(ack) = ack {
                        outbox.send_control(&ServerFrame::Ack { ack });
                    }
                }
                Err(e) => {
                    metrics.error(e.code());
                    outbox.send_control(&ServerFrame::error(e.code(), &e, ack));
                }
            },
            Reply::Waiter(waiter) => {
                let _ = waiter.send(result);
            }
            Reply::Discard => {
                if let Err(e) = result {
                    metrics.error(e.code());
                }
            }
        }
    }
}

struct Job {
    channel: String,
    envelope: Vec<u8>,
    reply: Reply,
    /// The job's share of the byte budget, given back when the job is done.
    _bytes: Budgeted,
}

/// Bytes of the relay queue's budget held by one job (`swarmbus_relay_queue_bytes`).
struct Budgeted {
    _permit: OwnedSemaphorePermit,
    bytes: usize,
    metrics: Arc<Metrics>,
}

impl Drop for Budgeted {
    fn drop(&mut self) {
        self.metrics.relay_queue_bytes.dec_by(self.bytes as i64);
    }
}

/// Publishes to Redis and feeds what Redis delivers into the local broker.
pub struct RedisRelay {
    client: redis::Client,
    jobs: mpsc::Sender<Job>,
    /// Permits are bytes of queued publishes.
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    subscribed: AtomicBool,
    metrics: Arc<Metrics>,
}

/// "cannot reach Redis" is logged at `warn` at most once per 30 s (every attempt at `debug`).
static UNREACHABLE_LOG: crate::logging::Throttle = crate::logging::Throttle::new(Duration::from_secs(30));

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

impl RedisRelay {
    /// A relay for the Redis at `url` (`redis://host:port`) whose queue holds
    /// at most `queue_bytes` of publishes (clamped to 1 B–4 GiB). Spawns the
    /// publisher task (call inside a Tokio runtime); it connects on first use.
    pub fn new(url: &str, metrics: Arc<Metrics>, queue_bytes: usize) -> Result<Arc<Self>, String> {
        let client = redis::Client::open(url).map_err(|e| format!("invalid --redis URL {url}: {e}"))?;
        let (jobs, queue) = mpsc::channel(QUEUE);
        let budget_bytes = queue_bytes.clamp(1, u32::MAX as usize);
        let budget = Arc::new(Semaphore::new(budget_bytes));
        let subscribed = AtomicBool::new(false);
        let relay = Arc::new(Self { client, jobs, budget, budget_bytes, subscribed, metrics });
        tokio::spawn(Self::run_publisher(Arc::downgrade(&relay), queue));
        Ok(relay)
    }

    /// True while the subscriber connection is up.
    pub fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    /// Queues an already validated envelope for its topic's channel; `reply`
    /// hears the outcome once Redis answers. Waits only while the queue is
    /// full (in jobs or in bytes).
    pub async fn publish(&self, topic: &str, envelope: Vec<u8>, reply: Reply) -> Result<(), BridgeError> {
        let stopped = || BridgeError::Unavailable("the Redis publisher stopped".into());
        let cost = self.cost(&envelope);
        let permit = self.budget.clone().acquire_many_owned(cost).await.map_err(|_| stopped())?;
        let job = Job { channel: channel(topic), envelope, reply, _bytes: self.budgeted(permit, cost) };
        self.jobs.send(job).await.map_err(|_| stopped())
    }

    /// Queues an envelope without waiting; `false` when the queue is full (the caller counts it).
    pub fn try_publish(&self, topic: &str, envelope: Vec<u8>) -> bool {
        let cost = self.cost(&envelope);
        let Ok(permit) = self.budget.clone().try_acquire_many_owned(cost) else { return false };
        let job = Job {
            channel: channel(topic),
            envelope,
            reply: Reply::Discard,
            _bytes: self.budgeted(permit, cost),
        };
        self.jobs.try_send(job).is_ok()
    }

    /// The budget an envelope takes: its size, at most the whole budget (so
    /// one publish larger than the budget still goes, alone).
    fn cost(&self, envelope: &[u8]) -> u32 {
        envelope.len().clamp(1, self.budget_bytes) as u32
    }

    fn budgeted(&self, permit: OwnedSemaphorePermit, cost: u32) -> Budgeted {
        self.metrics.relay_queue_bytes.inc_by(i64::from(cost));
        Budgeted { _permit: permit, bytes: cost as usize, metrics: self.metrics.clone() }
    }

    /// Sends queued publishes as pipelines until the relay is dropped.
    async fn run_publisher(relay: std::sync::Weak<Self>, mut queue: mpsc::Receiver<Job>) {
        let mut connection = None;
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let Some(relay) = relay.upgrade() else { return };
            let result = relay.send_batch(&mut connection, &batch).await;
            for job in batch.drain(..) {
                job.reply.send(result.clone(), &relay.metrics);
            }
        }
    }

    async fn send_batch(
        &self,
        connection: &mut Option<ConnectionManager>,
        batch: &[Job],
    ) -> Result<(), BridgeError> {
        let manager = match connection {
            Some(manager) => manager,
            None => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(1)))
                    .set_response_timeout(Some(Duration::from_secs(1)))
                    .set_number_of_retries(1);
                let manager = ConnectionManager::new_with_config(self.client.clone(), config)
                    .await
                    .map_err(|e| self.unavailable(e, batch.len()))?;
                connection.insert(manager)
            }
        };
        let mut pipe = redis::pipe();
        for job in batch {
            pipe.cmd("PUBLISH").arg(&job.channel).arg(&job.envelope).ignore();
        }
        pipe.query_async::<()>(manager).await.map_err(|e| self.unavailable(e, batch.len()))
    }

    fn unavailable(&self, e: redis::RedisError, publishes: usize) -> BridgeError {
        self.metrics.redis_publish_failures.inc_by(publishes as u64);
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
                Err(e) => match UNREACHABLE_LOG.allow() {
                    Some(held) => tracing::warn!(attempts_not_logged = held, "cannot reach Redis: {e}"),
                    None => tracing::debug!("cannot reach Redis: {e}"),
                },
            }
            self.metrics.redis_reconnects.inc();
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(BACKOFF_MAX);
        }
    }
}
