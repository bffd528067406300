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
//! Redis; publishing uses a separate connection, made again after any error
//! and after every re-subscription (so that it never talks to a Redis the
//! subscriber is not subscribed to). The subscriber reconnects with
//! exponential backoff and re-issues its subscription after Redis restarts.
//!
//! Publishes from every client go through one bounded queue to a publisher
//! task that sends whatever has accumulated as one pipeline (at most
//! [`MAX_BATCH`] commands and [`MAX_BATCH_BYTES`] bytes) while the previous pipeline is in flight: one
//! round trip per batch instead of per message, and the order of publishes
//! from each client is kept. The reply (an `ack`, an `error` frame, or an HTTP
//! answer) is sent when Redis has answered.
//!
//! Redis pub/sub is at-most-once: an envelope published while a bridge's
//! subscriber connection is down is not delivered to that bridge's clients.
//!
//! ## What the answer to a publish means
//!
//! * `ack` (HTTP 200): Redis took the publish and delivered it to at least one
//!   subscriber, while this bridge's own subscription was up and answering.
//! * `UNAVAILABLE` (HTTP 503): **not delivered**; a retry cannot duplicate it.
//!   Either it was not sent (this bridge is not [ready](RedisRelay::ready):
//!   its subscription is down or Redis does not answer its health `PING`;
//!   Redis refused the connection; the relay queue stayed full for
//!   `--redis-timeout`), counted in
//!   `swarmbus_redis_publish_failures_total`; or Redis answered that it
//!   reached no subscriber at all although this bridge counted itself
//!   subscribed (Redis lost the subscription, e.g. it restarted), counted in
//!   `swarmbus_redis_publish_unrouted_total`.
//! * `TIMEOUT` (HTTP 504): **outcome unknown**. It was sent, and Redis did not
//!   answer within `--redis-timeout` (a stalled Redis) or the connection broke
//!   before the answer; it may still be delivered. Counted in
//!   `swarmbus_redis_publish_unknown_total`.
//!
//! Not detected: a publish that reached this bridge's subscription but not
//! another bridge's (PUBLISH only tells how many subscribers got it, and this
//! bridge does not know how many bridges there should be).
//!
//! ## Readiness
//!
//! The subscriber connection sends `PING` every `--redis-timeout`; the relay
//! is [ready](RedisRelay::ready) while its subscription is up and the last
//! `PING` was answered within `--redis-timeout`. A stalled Redis (e.g.
//! `SIGSTOP`) makes it unready within twice `--redis-timeout`, and ready again
//! at the first answer. After [`STALLED_PINGS`] unanswered pings in a row the
//! subscriber drops the connection and reconnects.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::broker::Broker;
use crate::error::BridgeError;
use crate::metrics::Metrics;
use crate::outbox::ReplyTo;
use crate::protocol::ServerFrame;

/// How long to wait for Redis when no `--redis-timeout` is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Unanswered health pings in a row after which the subscriber reconnects.
pub const STALLED_PINGS: u32 = 5;

/// Most publishes sent to Redis in one pipeline.
pub const MAX_BATCH: usize = 512;
/// Most bytes (channels and envelopes) sent to Redis in one pipeline, so that
/// one `--redis-timeout` covers a bounded amount of work: large publishes on a
/// busy but healthy link are not all answered `TIMEOUT` together. A single
/// larger publish still goes, alone.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;
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

impl Job {
    /// What the job adds to a pipeline, in bytes.
    fn bytes(&self) -> usize {
        self.channel.len() + self.envelope.len()
    }
}

/// Fills `batch` (empty) with `first` and then what `more` gives at once,
/// while it stays within [`MAX_BATCH`] items and [`MAX_BATCH_BYTES`] bytes
/// (`first` always goes, whatever its size); returns the item that did not
/// fit, for the next batch.
fn fill_batch<T>(
    first: T,
    mut more: impl FnMut() -> Option<T>,
    bytes: impl Fn(&T) -> usize,
    batch: &mut Vec<T>,
) -> Option<T> {
    let mut total = bytes(&first);
    batch.push(first);
    while batch.len() < MAX_BATCH {
        let next = more()?;
        total += bytes(&next);
        if total > MAX_BATCH_BYTES {
            return Some(next);
        }
        batch.push(next);
    }
    None
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
    /// False while the subscriber connection's health `PING` goes unanswered.
    answering: AtomicBool,
    /// Counts successful subscriptions; the publisher's connection is from one of them.
    epoch: AtomicU64,
    /// `--redis-timeout`: for every answer from Redis, and the `PING` period.
    timeout: Duration,
    metrics: Arc<Metrics>,
}

/// "cannot reach Redis" is logged at `warn` at most once per 30 s (every attempt at `debug`).
static UNREACHABLE_LOG: crate::logging::Throttle = crate::logging::Throttle::new(Duration::from_secs(30));

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

impl RedisRelay {
    /// A relay for the Redis at `url` (`redis://host:port`) whose queue holds
    /// at most `queue_bytes` of publishes (clamped to 1 B–4 GiB), waiting
    /// [`DEFAULT_TIMEOUT`] for Redis. Spawns the publisher task (call inside a
    /// Tokio runtime); it connects on first use.
    pub fn new(url: &str, metrics: Arc<Metrics>, queue_bytes: usize) -> Result<Arc<Self>, String> {
        Self::with_timeout(url, metrics, queue_bytes, DEFAULT_TIMEOUT)
    }

    /// [`RedisRelay::new`] waiting `timeout` for every answer from Redis
    /// (`--redis-timeout`).
    pub fn with_timeout(
        url: &str,
        metrics: Arc<Metrics>,
        queue_bytes: usize,
        timeout: Duration,
    ) -> Result<Arc<Self>, String> {
        let client = redis::Client::open(url).map_err(|e| format!("invalid --redis URL {url}: {e}"))?;
        let (jobs, queue) = mpsc::channel(QUEUE);
        let budget_bytes = queue_bytes.clamp(1, u32::MAX as usize);
        let budget = Arc::new(Semaphore::new(budget_bytes));
        let relay = Arc::new(Self {
            client,
            jobs,
            budget,
            budget_bytes,
            subscribed: AtomicBool::new(false),
            answering: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            timeout,
            metrics,
        });
        tokio::spawn(Self::run_publisher(Arc::downgrade(&relay), queue));
        Ok(relay)
    }

    /// True while the subscriber connection is up.
    pub fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    /// True while publishes can be acknowledged truthfully: the subscription is
    /// up and Redis answered the last health `PING` in time. Turns false within
    /// twice `--redis-timeout` of Redis stalling. Publishes are not sent while false.
    pub fn ready(&self) -> bool {
        self.is_subscribed() && self.answering.load(Ordering::Acquire)
    }

    /// Records the subscriber's state; `swarmbus_redis_up` follows [`RedisRelay::ready`].
    fn set_state(&self, subscribed: bool, answering: bool) {
        self.subscribed.store(subscribed, Ordering::Release);
        self.answering.store(answering, Ordering::Release);
        self.metrics.redis_up.set(i64::from(self.ready()));
    }

    /// Queues an already validated envelope for its topic's channel; `reply`
    /// hears the outcome once Redis answers. Waits only while the queue is
    /// full (in jobs or in bytes), and at most `--redis-timeout`: then the
    /// publish is not sent, `UNAVAILABLE` (counted in
    /// `swarmbus_redis_publish_failures_total`), and `reply` is dropped unused.
    pub async fn publish(&self, topic: &str, envelope: Vec<u8>, reply: Reply) -> Result<(), BridgeError> {
        let stopped = || BridgeError::Unavailable("the Redis publisher stopped".into());
        let cost = self.cost(&envelope);
        let queued = async {
            let permit = self.budget.clone().acquire_many_owned(cost).await.map_err(|_| stopped())?;
            let job = Job { channel: channel(topic), envelope, reply, _bytes: self.budgeted(permit, cost) };
            self.jobs.send(job).await.map_err(|_| stopped())
        };
        match tokio::time::timeout(self.timeout, queued).await {
            Ok(queued) => queued,
            Err(_) => Err(self.not_sent("the relay queue stayed full for --redis-timeout", 1)),
        }
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
        let mut carry = None;
        loop {
            let first = match carry.take() {
                Some(job) => job,
                None => match queue.recv().await {
                    Some(job) => job,
                    None => return,
                },
            };
            carry = fill_batch(first, || queue.try_recv().ok(), Job::bytes, &mut batch);
            let Some(relay) = relay.upgrade() else { return };
            match relay.send_batch(&mut connection, &batch).await {
                Ok(receivers) => {
                    for (job, receivers) in batch.drain(..).zip(receivers) {
                        job.reply.send(relay.routed(receivers), &relay.metrics);
                    }
                }
                Err(e) => {
                    for job in batch.drain(..) {
                        job.reply.send(Err(e.clone()), &relay.metrics);
                    }
                }
            }
        }
    }

    /// Sends one pipeline of `PUBLISH`es; each one's receiver count, or
    /// why none can be acknowledged (see the module docs for the codes).
    async fn send_batch(
        &self,
        connection: &mut Option<(u64, MultiplexedConnection)>,
        batch: &[Job],
    ) -> Result<Vec<u64>, BridgeError> {
        if !self.ready() {
            let why = if self.is_subscribed() {
                "Redis does not answer this bridge's health PING"
            } else {
                "this bridge's Redis subscription is down"
            };
            return Err(self.not_sent(why, batch.len()));
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        if connection.as_ref().is_some_and(|(made_in, _)| *made_in != epoch) {
            *connection = None; // the subscriber re-subscribed: maybe to another Redis
        }
        let publisher = match connection {
            Some((_, publisher)) => publisher,
            None => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout));
                let connect = self.client.get_multiplexed_async_connection_with_config(&config);
                let made = tokio::time::timeout(self.timeout, connect).await;
                match made {
                    Ok(Ok(publisher)) => &mut connection.insert((epoch, publisher)).1,
                    Ok(Err(e)) => return Err(self.not_sent(&e.to_string(), batch.len())),
                    Err(_) => return Err(self.not_sent("no connection in time", batch.len())),
                }
            }
        };
        let mut pipe = redis::pipe();
        for job in batch {
            pipe.cmd("PUBLISH").arg(&job.channel).arg(&job.envelope);
        }
        let answer = tokio::time::timeout(self.timeout, pipe.query_async::<Vec<u64>>(publisher)).await;
        if !matches!(answer, Ok(Ok(_))) {
            *connection = None; // never reuse a connection whose state is unknown
        }
        match answer {
            Ok(Ok(receivers)) if receivers.len() == batch.len() => Ok(receivers),
            Ok(Ok(receivers)) => {
                Err(self.unknown(&format!("{} answers to {}", receivers.len(), batch.len()), batch.len()))
            }
            Ok(Err(e)) if e.is_connection_refusal() => Err(self.not_sent(&e.to_string(), batch.len())),
            Ok(Err(e)) => Err(self.unknown(&e.to_string(), batch.len())),
            Err(_) => Err(self.unknown("no answer in time", batch.len())),
        }
    }

    /// The answer to a publish that Redis delivered to `receivers` subscribers.
    fn routed(&self, receivers: u64) -> Result<(), BridgeError> {
        if receivers > 0 {
            return Ok(());
        }
        // This bridge's own PSUBSCRIBE should have counted: Redis lost it.
        self.metrics.redis_publish_unrouted.inc();
        Err(BridgeError::Unavailable(
            "Redis delivered it to no subscriber (it lost this bridge's subscription)".into(),
        ))
    }

    fn not_sent(&self, why: &str, publishes: usize) -> BridgeError {
        self.metrics.redis_publish_failures.inc_by(publishes as u64);
        BridgeError::Unavailable(format!("redis: {why}"))
    }

    fn unknown(&self, why: &str, publishes: usize) -> BridgeError {
        self.metrics.redis_publish_unknown.inc_by(publishes as u64);
        BridgeError::Timeout(format!("redis: {why}"))
    }

    /// Runs the subscriber until the process ends: connect, `PSUBSCRIBE
    /// swarmbus:*`, hand every message to `broker` while pinging (see
    /// "Readiness"), and on any failure reconnect with exponential backoff.
    pub async fn run_subscriber(self: Arc<Self>, broker: Arc<Broker>) {
        let mut delay = BACKOFF_MIN;
        loop {
            match self.subscribe().await {
                Ok(pubsub) => {
                    self.epoch.fetch_add(1, Ordering::AcqRel);
                    self.set_state(true, true);
                    tracing::info!("subscribed to Redis");
                    delay = BACKOFF_MIN;
                    let (sink, mut messages) = pubsub.split();
                    let mut pinger = std::pin::pin!(self.ping_until_stalled(sink));
                    loop {
                        tokio::select! {
                            message = messages.next() => match message {
                                Some(message) => {
                                    if let Err(e) = broker.deliver(message.get_payload_bytes()) {
                                        tracing::debug!("ignoring an invalid envelope from Redis: {e}");
                                        self.metrics.error("REDIS_DECODE_ERROR");
                                    }
                                }
                                None => {
                                    tracing::warn!("lost the Redis subscription; reconnecting");
                                    break;
                                }
                            },
                            () = &mut pinger => {
                                tracing::warn!("Redis answered none of {STALLED_PINGS} pings; reconnecting");
                                break;
                            }
                        }
                    }
                    self.set_state(false, false);
                }
                Err(e) => match UNREACHABLE_LOG.allow() {
                    Some(held) => {
                        tracing::warn!(attempts_not_logged = held, "cannot subscribe to Redis: {e}")
                    }
                    None => tracing::debug!("cannot subscribe to Redis: {e}"),
                },
            }
            self.metrics.redis_reconnects.inc();
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(BACKOFF_MAX);
        }
    }

    /// A subscriber connection with its `PSUBSCRIBE` answered, within `--redis-timeout`.
    async fn subscribe(&self) -> Result<redis::aio::PubSub, String> {
        let subscribe = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.psubscribe(format!("{CHANNEL_PREFIX}*")).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(self.timeout, subscribe).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }

    /// Pings on the subscriber connection every `--redis-timeout`, keeping
    /// [`RedisRelay::ready`] up to date; returns after [`STALLED_PINGS`]
    /// unanswered pings in a row.
    async fn ping_until_stalled(&self, mut sink: redis::aio::PubSubSink) {
        let mut unanswered = 0;
        while unanswered < STALLED_PINGS {
            tokio::time::sleep(self.timeout).await;
            let answer = tokio::time::timeout(self.timeout, sink.ping::<redis::Value>()).await;
            let answered = matches!(answer, Ok(Ok(_)));
            if answered != self.answering.load(Ordering::Acquire) {
                if answered {
                    tracing::info!("Redis answers again: ready");
                } else {
                    tracing::warn!("Redis did not answer a PING within {:?}: not ready", self.timeout);
                }
            }
            self.set_state(true, answered);
            unanswered = if answered { 0 } else { unanswered + 1 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sizes of the batches `fill_batch` makes of `sizes`.
    fn batches(sizes: &[usize]) -> Vec<Vec<usize>> {
        let mut queue = sizes.iter().copied();
        let (mut out, mut carry) = (Vec::new(), None);
        while let Some(first) = carry.take().or_else(|| queue.next()) {
            let mut batch = Vec::new();
            carry = fill_batch(first, || queue.next(), |n| *n, &mut batch);
            out.push(batch);
        }
        out
    }

    #[test]
    fn a_batch_is_capped_in_bytes_and_items() {
        // Regression: one --redis-timeout covered up to 512 publishes of any size (64 MiB): all TIMEOUT together.
        const MIB: usize = MAX_BATCH_BYTES;
        assert_eq!(batches(&[MIB / 2, MIB / 2, 1, 3]), [vec![MIB / 2, MIB / 2], vec![1, 3]]);
        assert_eq!(
            batches(&[10, 2 * MIB, 10]),
            [vec![10], vec![2 * MIB], vec![10]],
            "a large one goes alone"
        );
        let small = batches(&[1; MAX_BATCH + 1]);
        assert_eq!(small.iter().map(Vec::len).collect::<Vec<_>>(), [MAX_BATCH, 1]);
        assert!(batches(&[]).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_publish_waits_for_a_full_queue_at_most_the_timeout() {
        // Regression: a publish waited for the relay's byte budget with no bound, parking its client.
        let metrics = Arc::new(Metrics::new(true));
        let timeout = Duration::from_secs(1);
        let relay = RedisRelay::with_timeout("redis://127.0.0.1:1", metrics.clone(), 8, timeout).unwrap();
        let _full = relay.budget.clone().try_acquire_many_owned(8).unwrap();
        let waited = tokio::time::timeout(timeout * 60, relay.publish("t", vec![1; 4], Reply::Discard)).await;
        assert!(matches!(waited, Ok(Err(BridgeError::Unavailable(_)))), "{waited:?}");
        assert_eq!(metrics.redis_publish_failures.get(), 1);
    }
}
