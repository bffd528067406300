//! The embedded broker: routes published envelopes to subscribed clients,
//! using the core router and each client's bounded priority queue.
//!
//! ## What a slow client gets
//!
//! Each client has a send queue of `send_queue` frames ordered by priority
//! (most urgent first, FIFO within a priority). When it is full, an incoming
//! event evicts the oldest queued event of a lower priority (counted as
//! `dropped{reason="evicted"}`). If nothing lower is queued, the event is
//! dropped when below priority 8. When a priority 8 or 9 event would be lost
//! (not queued, or evicted), the client is disconnected instead and everything
//! still queued for it is counted as `dropped{reason="slow_client"}`: a
//! critical event is never lost silently, the client sees the connection close
//! and must resynchronise.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use swarmbus_core::envelope::{self, Limits};
use swarmbus_core::queue::Pushed;
use swarmbus_core::{Priority, PriorityQueue, Router, SubscriptionId};
use tokio::sync::Notify;

use crate::error::BridgeError;
use crate::metrics::{DropLabel, Metrics, PriorityLabel};
use crate::protocol::ServerFrame;

/// WebSocket close code for a normal close.
pub const CLOSE_NORMAL: u16 = 1000;

/// Identifies a connected client.
pub type ClientId = u64;

/// A client's outbound side: a bounded priority queue of encoded frames.
pub struct Outbox {
    queue: Mutex<PriorityQueue<Bytes>>,
    notify: Notify,
    closed: AtomicBool,
    close_code: AtomicU16,
}

impl Outbox {
    fn new(capacity: usize) -> Self {
        Self {
            queue: Mutex::new(PriorityQueue::new(capacity)),
            notify: Notify::new(),
            closed: AtomicBool::new(false),
            close_code: AtomicU16::new(CLOSE_NORMAL),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PriorityQueue<Bytes>> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a control frame (welcome, ack, error, pong) at the top priority.
    pub fn send_control(&self, frame: &ServerFrame) {
        let _ = self.lock().push(Priority::MAX, Bytes::from(frame.encode()));
        self.notify.notify_one();
    }

    /// Waits for frames and takes them all, most urgent first; `None` once
    /// closed and flushed.
    pub async fn next_batch(&self) -> Option<Vec<Bytes>> {
        loop {
            let notified = self.notify.notified();
            {
                let mut queue = self.lock();
                if !queue.is_empty() {
                    let mut batch = Vec::with_capacity(queue.len());
                    queue.drain_all(|_, frame| batch.push(frame));
                    return Some(batch);
                }
            }
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            notified.await;
        }
    }

    /// Marks the client as gone; its writer flushes what is queued, then stops.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Sets the WebSocket close code the writer sends (default 1000).
    pub fn set_close_code(&self, code: u16) {
        self.close_code.store(code, Ordering::Relaxed);
    }

    /// The WebSocket close code to send.
    pub fn close_code(&self) -> u16 {
        self.close_code.load(Ordering::Relaxed)
    }

    /// True once closed (by the broker or the connection).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

struct Client {
    outbox: Arc<Outbox>,
    subscriptions: HashMap<String, SubscriptionId>,
}

#[derive(Default)]
struct Tables {
    router: Router,
    owners: HashMap<SubscriptionId, ClientId>,
    clients: HashMap<ClientId, Client>,
}

/// Broker limits.
#[derive(Debug, Clone, Copy)]
pub struct BrokerLimits {
    /// Frames queued per client before the overflow policy applies.
    pub send_queue: usize,
    /// Subscriptions per client.
    pub max_subscriptions: usize,
    /// Largest envelope accepted, in bytes.
    pub max_envelope: usize,
}

/// The in-process broker.
pub struct Broker {
    tables: Mutex<Tables>,
    next_client: AtomicU64,
    limits: BrokerLimits,
    metrics: Arc<Metrics>,
}

impl Broker {
    /// An empty broker.
    pub fn new(limits: BrokerLimits, metrics: Arc<Metrics>) -> Self {
        Self { tables: Mutex::default(), next_client: AtomicU64::new(1), limits, metrics }
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a client; returns its id and outbox.
    pub fn connect(&self) -> (ClientId, Arc<Outbox>) {
        let id = self.next_client.fetch_add(1, Ordering::Relaxed);
        let outbox = Arc::new(Outbox::new(self.limits.send_queue));
        self.tables().clients.insert(id, Client { outbox: outbox.clone(), subscriptions: HashMap::new() });
        (id, outbox)
    }

    /// Removes a client and its subscriptions.
    pub fn disconnect(&self, client: ClientId) {
        let mut tables = self.tables();
        if let Some(gone) = tables.clients.remove(&client) {
            gone.outbox.close();
            for id in gone.subscriptions.into_values() {
                tables.router.unsubscribe(id);
                tables.owners.remove(&id);
            }
        }
    }

    /// Subscribes a client to a pattern (subscribing twice is a no-op).
    pub fn subscribe(&self, client: ClientId, pattern: &str) -> Result<(), BridgeError> {
        let mut tables = self.tables();
        let tables = &mut *tables;
        let Some(entry) = tables.clients.get_mut(&client) else { return Err(BridgeError::Gone) };
        if entry.subscriptions.contains_key(pattern) {
            return Ok(());
        }
        if entry.subscriptions.len() >= self.limits.max_subscriptions {
            return Err(BridgeError::TooManySubscriptions(self.limits.max_subscriptions));
        }
        let id = tables.router.subscribe(pattern).map_err(BridgeError::InvalidPattern)?;
        entry.subscriptions.insert(pattern.to_owned(), id);
        tables.owners.insert(id, client);
        Ok(())
    }

    /// Removes a client's subscription; false if it had none for `pattern`.
    pub fn unsubscribe(&self, client: ClientId, pattern: &str) -> bool {
        let mut tables = self.tables();
        let Some(id) = tables.clients.get_mut(&client).and_then(|c| c.subscriptions.remove(pattern)) else {
            return false;
        };
        tables.router.unsubscribe(id);
        tables.owners.remove(&id);
        true
    }

    /// Validates an envelope from a publisher; returns its topic and priority.
    pub fn validate(&self, envelope_bytes: &[u8]) -> Result<(String, Priority), BridgeError> {
        let limits = Limits { max_payload: self.limits.max_envelope };
        let env = envelope::decode_ref(envelope_bytes, &limits).map_err(BridgeError::Codec)?;
        Ok((env.topic.to_owned(), env.priority))
    }

    /// Counts an accepted publish.
    pub fn count_published(&self, priority: Priority) {
        self.metrics.published.get_or_create(&PriorityLabel { priority: priority.get() }).inc();
    }

    /// Validate, count, [`deliver`](Self::deliver): the embedded-mode publish.
    pub fn publish(&self, envelope_bytes: &[u8]) -> Result<usize, BridgeError> {
        let (_, priority) = self.validate(envelope_bytes)?;
        self.count_published(priority);
        self.deliver(envelope_bytes)
    }

    /// Queues an envelope to every matching local subscriber (validating it
    /// again: in Redis mode it comes from another process). Returns the
    /// number of clients it was queued to.
    pub fn deliver(&self, envelope_bytes: &[u8]) -> Result<usize, BridgeError> {
        let started = Instant::now();
        let limits = Limits { max_payload: self.limits.max_envelope };
        let env = envelope::decode_ref(envelope_bytes, &limits).map_err(BridgeError::Codec)?;
        let priority = env.priority;
        let frame = Bytes::from(ServerFrame::Event { envelope: envelope_bytes.to_vec() }.encode());
        let mut slow = Vec::new();
        let mut queued = 0;
        {
            let mut tables = self.tables();
            let route = tables.router.route(env.topic).map_err(BridgeError::InvalidTopic)?;
            for sub in route.iter() {
                let Some(client) =
                    tables.owners.get(sub).and_then(|c| tables.clients.get(c).map(|e| (*c, e)))
                else {
                    continue;
                };
                let (client_id, entry) = client;
                match entry.outbox.lock().push(priority, frame.clone()) {
                    Ok(Pushed::Queued) => {}
                    Ok(Pushed::Evicted(_, lost)) if lost.is_critical() => {
                        // Never lose a critical event quietly: drop the client instead.
                        self.count_drop(lost, "slow_client");
                        slow.push(client_id);
                        continue;
                    }
                    Ok(Pushed::Evicted(_, lost)) => self.count_drop(lost, "evicted"),
                    Err(_) if priority.is_critical() => {
                        self.count_drop(priority, "slow_client");
                        slow.push(client_id);
                        continue;
                    }
                    Err(_) => {
                        self.count_drop(priority, "evicted");
                        continue;
                    }
                }
                entry.outbox.notify.notify_one();
                queued += 1;
            }
        }
        for client in slow {
            tracing::warn!(client, "disconnecting a client too slow for priority {priority} events");
            self.disconnect_slow(client);
        }
        self.metrics
            .delivered
            .get_or_create(&PriorityLabel { priority: priority.get() })
            .inc_by(queued as u64);
        self.metrics.publish_seconds.observe(started.elapsed().as_secs_f64());
        Ok(queued)
    }

    /// Disconnects a client that fell behind, counting every frame it loses.
    fn disconnect_slow(&self, client: ClientId) {
        let outbox = self.tables().clients.get(&client).map(|c| c.outbox.clone());
        if let Some(outbox) = outbox {
            outbox.lock().drain_all(|p, _| self.count_drop(p, "slow_client"));
        }
        self.disconnect(client);
    }

    fn count_drop(&self, priority: Priority, reason: &'static str) {
        self.metrics.dropped.get_or_create(&DropLabel { priority: priority.get(), reason }).inc();
    }

    /// Closes every client with `code` after flushing what is queued for it
    /// (shutdown sends 1001, "going away").
    pub fn close_all(&self, code: u16) {
        let clients: Vec<ClientId> = self.tables().clients.keys().copied().collect();
        for client in clients {
            if let Some(outbox) = self.tables().clients.get(&client).map(|c| c.outbox.clone()) {
                outbox.set_close_code(code);
            }
            self.disconnect(client);
        }
    }

    /// Connected clients.
    pub fn client_count(&self) -> usize {
        self.tables().clients.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(send_queue: usize) -> Broker {
        let limits = BrokerLimits { send_queue, max_subscriptions: 2, max_envelope: 1 << 20 };
        Broker::new(limits, Arc::new(Metrics::default()))
    }

    fn env(topic: &str, priority: u8) -> Vec<u8> {
        swarmbus_core::Envelope::new(1, topic, Priority::new(priority).unwrap(), 0, vec![]).encode().unwrap()
    }

    #[tokio::test]
    async fn slow_client_loses_low_priority_first_and_is_dropped_for_critical_overflow() {
        let broker = broker(2);
        let (client, outbox) = broker.connect();
        broker.subscribe(client, "t").unwrap();
        assert_eq!(broker.publish(&env("t", 1)).unwrap(), 1);
        assert_eq!(broker.publish(&env("t", 5)).unwrap(), 1);
        assert_eq!(broker.publish(&env("t", 8)).unwrap(), 1, "evicts the priority-1 event");
        assert_eq!(broker.publish(&env("t", 3)).unwrap(), 0, "nothing lower to evict: dropped, counted");
        let text = broker.metrics.render();
        assert!(text.contains(r#"swarmbus_dropped_total{priority="1",reason="evicted"} 1"#), "{text}");
        assert!(text.contains(r#"swarmbus_dropped_total{priority="3",reason="evicted"} 1"#), "{text}");
        assert_eq!(broker.publish(&env("t", 9)).unwrap(), 1, "evicts the priority-5 event");
        assert_eq!(broker.publish(&env("t", 9)).unwrap(), 0, "would evict the 8: the client goes instead");
        assert!(outbox.is_closed(), "a client that cannot take a critical event is disconnected");
        assert_eq!(broker.client_count(), 0);
        let text = broker.metrics.render();
        // The evicted 8, and both 9s still queued when it was cut off.
        assert!(text.contains(r#"swarmbus_dropped_total{priority="8",reason="slow_client"} 1"#), "{text}");
        assert!(text.contains(r#"swarmbus_dropped_total{priority="9",reason="slow_client"} 2"#), "{text}");
    }

    #[tokio::test]
    async fn outbox_delivers_most_urgent_first() {
        let broker = broker(8);
        let (client, outbox) = broker.connect();
        broker.subscribe(client, "t.>").unwrap();
        for p in [2, 9, 5] {
            broker.publish(&env("t.x", p)).unwrap();
        }
        let batch = outbox.next_batch().await.unwrap();
        let priorities: Vec<u8> = batch
            .iter()
            .map(|frame| match ServerFrame::decode(frame).unwrap() {
                ServerFrame::Event { envelope } => envelope::peek_header(&envelope).unwrap().priority.get(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(priorities, [9, 5, 2]);
    }

    #[test]
    fn subscription_limits_and_validation() {
        let broker = broker(8);
        let (client, _) = broker.connect();
        assert_eq!(broker.subscribe(client, "a.>.b").unwrap_err().code(), "INVALID_PATTERN");
        broker.subscribe(client, "a").unwrap();
        broker.subscribe(client, "a").unwrap();
        broker.subscribe(client, "b").unwrap();
        assert_eq!(broker.subscribe(client, "c").unwrap_err().code(), "TOO_MANY_SUBSCRIPTIONS");
        assert!(broker.unsubscribe(client, "a"));
        assert!(!broker.unsubscribe(client, "a"));
        assert_eq!(broker.publish(&[0xc1]).unwrap_err().code(), "DECODE_ERROR");
    }
}
