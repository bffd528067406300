//! The embedded broker: routes published envelopes to subscribed clients,
//! using the core router and each client's bounded [`Outbox`].
//!
//! ## Delivery
//!
//! An event reaches a connection **once**, however many of its subscriptions
//! match the topic (`a.>`, `a.*`, `a.b` and `>` on one connection: one
//! frame). [`Broker::deliver`] returns the number of connections it was queued
//! to, which is what the HTTP publish answers as `delivered`. The event frame
//! is encoded once per event and shared by every connection it goes to.
//!
//! ## What a slow client gets
//!
//! Each client has two send lanes (see [`crate::outbox`]): control frames
//! (`welcome`, `ack`, `error`, `pong`) in their own lane, and events in a
//! queue of at most `--send-queue` frames (default 16 384) and
//! `--send-queue-bytes` bytes (default 4 MiB, counting what the writer has
//! taken but not yet written), most urgent first, FIFO within a priority.
//!
//! * When an event does not fit, the oldest queued events of the lowest
//!   priorities below it are evicted until it fits (each counted as
//!   `swarmbus_dropped_total{reason="evicted"}`); nothing is evicted unless
//!   that makes room. If it still does not fit, the event is dropped, counted
//!   the same way, when it is below priority 8.
//! * When a priority 8 or 9 event would be lost (not queued, or evicted), the
//!   client is cut off instead: every event still queued for it is counted as
//!   `dropped{reason="slow_client"}`, its queued control frames are sent, and
//!   the connection closes with [`CLOSE_SLOW_CONSUMER`] (4008). A critical
//!   event is never lost silently: the client sees the close and must
//!   resynchronise.
//! * Control frames never evict events and are never evicted; if even the
//!   control lane is full ([`crate::outbox::CONTROL_FRAMES`] frames or
//!   [`crate::outbox::CONTROL_BYTES`] bytes) the client is cut off the same
//!   way, so an `ack` or `error` is never lost while the connection is open.
//! * A client whose socket takes no batch of frames (at most 64 KiB, or one
//!   larger frame) within `--write-timeout` (default 10 s) is disconnected
//!   without a close frame (none could reach it; a browser reports 1006).
//!
//! Every cut is counted in `swarmbus_slow_consumer_disconnects_total{reason}`
//! (`queue_full`, `control_full`, `write_timeout`), and
//! `swarmbus_send_queue_bytes` is what all clients' queues hold now. So one
//! never-reading client holds at most `--send-queue-bytes` plus one frame in
//! its queue, for at most `--write-timeout` after its socket stops draining.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use swarmbus_core::envelope::{self, Limits};
use swarmbus_core::{CodecError, Priority, Router, SubscriptionId};

use crate::error::BridgeError;
use crate::metrics::{Metrics, PriorityLabel};
use crate::outbox::{EventLimits, SlowReason};
pub use crate::outbox::{Outbox, CLOSE_NORMAL, CLOSE_SLOW_CONSUMER};

/// Identifies a connected client.
pub type ClientId = u64;

/// The `event` frame for an envelope, encoded once per event and shared by
/// every connection it goes to: the same bytes as
/// `ServerFrame::Event { envelope }.encode()`, written with one allocation
/// and one copy of the envelope. MessagePack cannot carry 4 GiB or more.
pub fn event_frame(envelope: &[u8]) -> Result<Bytes, BridgeError> {
    // {"t": "event", "envelope": bin}: a fixmap of 2, fixstr keys and value, a bin header.
    const HEAD: &[u8] = b"\x82\xa1t\xa5event\xa8envelope";
    let mut out = Vec::with_capacity(HEAD.len() + 5 + envelope.len());
    out.extend_from_slice(HEAD);
    match u32::try_from(envelope.len()) {
        Ok(len @ 0..=0xff) => out.extend_from_slice(&[0xc4, len as u8]),
        Ok(len @ 0..=0xffff) => {
            out.push(0xc5);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        Ok(len) => {
            out.push(0xc6);
            out.extend_from_slice(&len.to_be_bytes());
        }
        Err(_) => {
            let (len, max) = (envelope.len(), u32::MAX as usize);
            return Err(BridgeError::Codec(CodecError::TooLarge { field: "envelope", len, max }));
        }
    }
    out.extend_from_slice(envelope);
    Ok(Bytes::from(out))
}

struct Client {
    outbox: Arc<Outbox>,
    subscriptions: HashMap<String, SubscriptionId>,
    /// The last delivery (a [`Tables::deliveries`] stamp) queued to this
    /// client: an event reaches a connection once whatever its overlapping
    /// subscriptions.
    last_delivery: u64,
}

#[derive(Default)]
struct Tables {
    router: Router,
    owners: HashMap<SubscriptionId, ClientId>,
    clients: HashMap<ClientId, Client>,
    /// Deliveries so far; stamps the clients an event was queued to.
    deliveries: u64,
    /// Set by [`Broker::close_all`]: clients connecting afterwards are closed at once with it.
    closing: Option<u16>,
}

/// Broker limits.
#[derive(Debug, Clone, Copy)]
pub struct BrokerLimits {
    /// Event frames queued per client before the overflow policy applies.
    pub send_queue: usize,
    /// Bytes of event frames queued (or being written) per client before the overflow policy applies.
    pub send_queue_bytes: usize,
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

    /// Registers a client; returns its id and outbox. After [`close_all`](Self::close_all)
    /// the outbox is closed at once (with the shutdown's close code).
    pub fn connect(&self) -> (ClientId, Arc<Outbox>) {
        let id = self.next_client.fetch_add(1, Ordering::Relaxed);
        let limits = EventLimits { frames: self.limits.send_queue, bytes: self.limits.send_queue_bytes };
        let outbox = Arc::new(Outbox::new(limits, self.metrics.clone()));
        let mut tables = self.tables();
        match tables.closing {
            Some(code) => {
                outbox.set_close_code(code);
                outbox.close();
            }
            None => {
                let client =
                    Client { outbox: outbox.clone(), subscriptions: HashMap::new(), last_delivery: 0 };
                tables.clients.insert(id, client);
            }
        }
        (id, outbox)
    }

    /// Removes a client and its subscriptions; its outbox closes after flushing.
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

    /// Ends every subscription of `client` whose pattern `keep` refuses (a
    /// refreshed token that grants less); returns those patterns.
    pub fn retain_subscriptions(&self, client: ClientId, mut keep: impl FnMut(&str) -> bool) -> Vec<String> {
        let mut tables = self.tables();
        let tables = &mut *tables;
        let Some(entry) = tables.clients.get_mut(&client) else { return Vec::new() };
        let ended: Vec<String> = entry.subscriptions.keys().filter(|p| !keep(p)).cloned().collect();
        for pattern in &ended {
            if let Some(id) = entry.subscriptions.remove(pattern) {
                tables.router.unsubscribe(id);
                tables.owners.remove(&id);
            }
        }
        ended
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
    /// number of connections it was queued to (once per connection, whatever
    /// the overlap of its subscriptions).
    pub fn deliver(&self, envelope_bytes: &[u8]) -> Result<usize, BridgeError> {
        let started = Instant::now();
        let limits = Limits { max_payload: self.limits.max_envelope };
        let env = envelope::decode_ref(envelope_bytes, &limits).map_err(BridgeError::Codec)?;
        let priority = env.priority;
        let frame = event_frame(envelope_bytes)?;
        let mut slow = Vec::new();
        let mut queued = 0;
        {
            let mut tables = self.tables();
            let tables = &mut *tables;
            let route = tables.router.route(env.topic).map_err(BridgeError::InvalidTopic)?;
            tables.deliveries += 1;
            let stamp = tables.deliveries;
            for sub in route.iter() {
                let Some(&client_id) = tables.owners.get(sub) else { continue };
                let Some(entry) = tables.clients.get_mut(&client_id) else { continue };
                if entry.last_delivery == stamp {
                    continue; // another of its subscriptions matched: one frame per connection
                }
                entry.last_delivery = stamp;
                let pushed = entry.outbox.push_event(priority, frame.clone());
                if pushed.closed {
                    // Cut off or leaving, not yet removed: lost to a slow or gone client.
                    entry.outbox.count_drop(priority.index(), "slow_client");
                    continue;
                }
                let critical = pushed.lost_critical(priority);
                let reason = if critical { "slow_client" } else { "evicted" };
                for (level, &n) in pushed.evicted.iter().enumerate() {
                    for _ in 0..n {
                        entry.outbox.count_drop(level, reason);
                    }
                }
                if !pushed.queued {
                    entry.outbox.count_drop(priority.index(), reason);
                }
                if critical {
                    // Never lose a critical event quietly: cut the client off instead.
                    entry.outbox.cut(SlowReason::QueueFull);
                    slow.push(client_id);
                } else if pushed.queued {
                    queued += 1;
                }
            }
        }
        for client in slow {
            tracing::warn!(client, "disconnecting a client too slow for priority {priority} events");
            self.disconnect(client);
        }
        self.metrics
            .delivered
            .get_or_create(&PriorityLabel { priority: priority.get() })
            .inc_by(queued as u64);
        self.metrics.publish_seconds.observe(started.elapsed().as_secs_f64());
        Ok(queued)
    }

    /// Closes every client with `code` after flushing what is queued for it
    /// (shutdown sends 1001, "going away"); clients connecting afterwards
    /// are closed at once.
    pub fn close_all(&self, code: u16) {
        let mut tables = self.tables();
        tables.closing = Some(code);
        for client in tables.clients.values() {
            client.outbox.set_close_code(code);
        }
        let clients: Vec<ClientId> = tables.clients.keys().copied().collect();
        drop(tables);
        for client in clients {
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
    use crate::protocol::ServerFrame;

    fn broker(send_queue: usize) -> Broker {
        let limits = BrokerLimits {
            send_queue,
            send_queue_bytes: 1 << 20,
            max_subscriptions: 4,
            max_envelope: 1 << 20,
        };
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
        assert_eq!(outbox.close_code(), CLOSE_SLOW_CONSUMER);
        assert_eq!(broker.client_count(), 0);
        let text = broker.metrics.render();
        // The evicted 8, and both 9s still queued when it was cut off.
        assert!(text.contains(r#"swarmbus_dropped_total{priority="8",reason="slow_client"} 1"#), "{text}");
        assert!(text.contains(r#"swarmbus_dropped_total{priority="9",reason="slow_client"} 2"#), "{text}");
        assert!(
            text.contains(r#"swarmbus_slow_consumer_disconnects_total{reason="queue_full"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn event_frames_are_the_protocol_encoding() {
        for len in [0, 1, 255, 256, 65_535, 65_536, 300_000] {
            let envelope: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let expected = ServerFrame::Event { envelope: envelope.clone() }.encode();
            assert_eq!(event_frame(&envelope).unwrap()[..], expected[..], "{len} bytes");
        }
    }

    #[tokio::test]
    async fn overlapping_subscriptions_get_one_frame_per_event() {
        // Regression: `a.>`, `a.*`, `a.b` and `>` on one connection got 4 frames for one publish.
        let broker = broker(8);
        let (client, outbox) = broker.connect();
        for pattern in ["a.>", "a.*", "a.b", ">"] {
            broker.subscribe(client, pattern).unwrap();
        }
        let (other, _) = broker.connect();
        broker.subscribe(other, "a.b").unwrap();
        assert_eq!(broker.publish(&env("a.b", 3)).unwrap(), 2, "counts connections");
        assert_eq!(broker.publish(&env("a.c", 3)).unwrap(), 1);
        let mut batch = Vec::new();
        outbox.next_batch(&mut batch).await.unwrap();
        assert_eq!(batch.len(), 2, "one frame per event");
    }

    #[tokio::test]
    async fn clients_connecting_during_shutdown_are_closed_at_once() {
        let broker = broker(8);
        let (_, early) = broker.connect();
        broker.close_all(1001);
        assert!(early.is_closed());
        let (_, late) = broker.connect();
        assert!(late.is_closed() && late.close_code() == 1001);
        assert_eq!(broker.client_count(), 0);
    }

    #[tokio::test]
    async fn outbox_delivers_most_urgent_first() {
        let broker = broker(8);
        let (client, outbox) = broker.connect();
        broker.subscribe(client, "t.>").unwrap();
        for p in [2, 9, 5] {
            broker.publish(&env("t.x", p)).unwrap();
        }
        let mut batch = Vec::new();
        outbox.next_batch(&mut batch).await.unwrap();
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
        for pattern in ["b", "c", "d"] {
            broker.subscribe(client, pattern).unwrap();
        }
        assert_eq!(broker.subscribe(client, "e").unwrap_err().code(), "TOO_MANY_SUBSCRIPTIONS");
        assert!(broker.unsubscribe(client, "a"));
        assert!(!broker.unsubscribe(client, "a"));
        assert_eq!(broker.publish(&[0xc1]).unwrap_err().code(), "DECODE_ERROR");
    }
}
