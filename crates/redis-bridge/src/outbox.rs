//! A client's send queue: two lanes, bounded in frames and in bytes.
//!
//! * The **control lane** holds `welcome`, `ack`, `error` and `pong` frames,
//!   FIFO. It never evicts an event and no event ever evicts it. It holds at
//!   most [`CONTROL_FRAMES`] frames and [`CONTROL_BYTES`] bytes (one frame is
//!   always accepted when it is empty). A control frame that does not fit is
//!   never dropped quietly: the client is cut off as a slow consumer (close
//!   code [`CLOSE_SLOW_CONSUMER`], `swarmbus_slow_consumer_disconnects_total{reason="control_full"}`).
//! * The **event lane** holds event frames by priority (most urgent first, FIFO
//!   within a priority), at most `frames` of them and at most `bytes` bytes
//!   together with what the writer has taken and not yet written. One event
//!   is always accepted when the lane and the writer are empty, so an event
//!   larger than the byte bound still gets through to a reading client. The
//!   overflow policy is the one described in [`crate::broker`].
//!
//! The writer takes frames in batches ([`Outbox::next_batch`]): control frames
//! first, then events most urgent first, up to [`BATCH_BYTES`] (at least one
//! frame); their bytes stay counted until it reports them written
//! ([`Outbox::written`]). `swarmbus_send_queue_bytes` is the sum over all
//! clients of what is queued and being written.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use swarmbus_core::Priority;
use tokio::sync::Notify;

use crate::metrics::{DropLabel, Metrics, SlowLabel};
use crate::protocol::ServerFrame;

/// WebSocket close code for a normal close.
pub const CLOSE_NORMAL: u16 = 1000;
/// Close code for a client cut off as a slow consumer (a private-use code,
/// RFC 6455 §7.4.2): its queue could not take a control frame or a priority
/// 8–9 event. A client whose socket stopped draining for `--write-timeout`
/// never receives a close frame at all (nothing reaches it): it sees the
/// connection drop (1006 in a browser).
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;

/// Most control frames queued for one client.
pub const CONTROL_FRAMES: usize = 4096;
/// Most bytes of control frames queued for one client.
pub const CONTROL_BYTES: usize = 1024 * 1024;
/// Frames an empty queue keeps room for after a burst.
const IDLE_ROOM: usize = 16;
/// The writer takes frames until a batch holds at least this many bytes.
pub const BATCH_BYTES: usize = 64 * 1024;

/// Bounds of one client's event lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLimits {
    /// Most event frames queued.
    pub frames: usize,
    /// Most bytes of event frames queued or being written.
    pub bytes: usize,
}

/// Why a client was cut off (the `reason` of `swarmbus_slow_consumer_disconnects_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowReason {
    /// A priority 8–9 event could not be queued, or would have been evicted.
    QueueFull,
    /// The control lane could not take an `ack`, `error` or `pong`.
    ControlFull,
    /// A batch could not be written within `--write-timeout`.
    WriteTimeout,
}

impl SlowReason {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::ControlFull => "control_full",
            Self::WriteTimeout => "write_timeout",
        }
    }
}

/// What happened to an event offered to [`Outbox::push_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventPush {
    /// The event was queued.
    pub queued: bool,
    /// The event was not queued because the client is closing (already cut off or leaving).
    pub closed: bool,
    /// Queued events evicted to make room, per priority.
    pub evicted: [u32; Priority::LEVELS],
}

impl EventPush {
    /// True when the push lost a priority 8 or 9 event (the offered one or an evicted one).
    pub fn lost_critical(&self, priority: Priority) -> bool {
        (!self.queued && !self.closed && priority.is_critical())
            || self.evicted.iter().enumerate().any(|(p, &n)| n > 0 && p >= Priority::CRITICAL.index())
    }
}

#[derive(Default)]
struct Lanes {
    control: VecDeque<Bytes>,
    control_bytes: usize,
    events: [VecDeque<Bytes>; Priority::LEVELS],
    level_bytes: [usize; Priority::LEVELS],
    event_frames: usize,
    event_bytes: usize,
    /// Bytes the writer has taken and not yet reported written.
    in_flight: usize,
}

impl Lanes {
    fn queued_bytes(&self) -> usize {
        self.control_bytes + self.event_bytes + self.in_flight
    }

    /// Gives back what a burst made the empty queues grow to, so that an
    /// idle client keeps little memory.
    fn release_idle_room(&mut self) {
        if self.control.is_empty() && self.control.capacity() > IDLE_ROOM {
            self.control.shrink_to(IDLE_ROOM);
        }
        for level in self.events.iter_mut().filter(|l| l.is_empty() && l.capacity() > IDLE_ROOM) {
            level.shrink_to(IDLE_ROOM);
        }
    }

    fn pop_event(&mut self, level: usize) -> Option<Bytes> {
        let frame = self.events[level].pop_front()?;
        self.level_bytes[level] -= frame.len();
        self.event_bytes -= frame.len();
        self.event_frames -= 1;
        Some(frame)
    }
}

/// A client's outbound side (see the module docs).
pub struct Outbox {
    lanes: Mutex<Lanes>,
    limits: EventLimits,
    notify: Notify,
    closed: AtomicBool,
    /// Wakes every [`Outbox::closed`] waiter when `closed` is set (inline:
    /// no allocation per connection).
    closing: Notify,
    /// Set by the first [`Outbox::cut`].
    was_cut: AtomicBool,
    close_code: AtomicU16,
    /// Replies promised to the client (Redis-mode publishes in flight); the
    /// writer does not finish while any is owed.
    owed: AtomicUsize,
    metrics: Arc<Metrics>,
}

/// A reply owed to a client (see [`Outbox::owe`]): derefs to its outbox, and
/// is settled when dropped, after the reply was queued (or given up).
pub struct ReplyTo(Arc<Outbox>);

impl std::ops::Deref for ReplyTo {
    type Target = Outbox;

    fn deref(&self) -> &Outbox {
        &self.0
    }
}

impl Drop for ReplyTo {
    fn drop(&mut self) {
        self.0.owed.fetch_sub(1, Ordering::AcqRel);
        self.0.notify.notify_one();
    }
}

impl Outbox {
    /// An empty outbox whose event lane holds at most `limits`.
    pub fn new(limits: EventLimits, metrics: Arc<Metrics>) -> Self {
        Self {
            lanes: Mutex::default(),
            limits: EventLimits { frames: limits.frames.max(1), bytes: limits.bytes.max(1) },
            notify: Notify::new(),
            closed: AtomicBool::new(false),
            closing: Notify::new(),
            was_cut: AtomicBool::new(false),
            close_code: AtomicU16::new(CLOSE_NORMAL),
            owed: AtomicUsize::new(0),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Lanes> {
        self.lanes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn gauge_add(&self, bytes: usize) {
        self.metrics.send_queue_bytes.inc_by(bytes as i64);
    }

    fn gauge_sub(&self, bytes: usize) {
        self.metrics.send_queue_bytes.dec_by(bytes as i64);
    }

    /// Promises the client a reply: until the returned guard is dropped,
    /// the writer keeps the connection open (closing waits for it; the
    /// shutdown grace bounds the wait).
    pub fn owe(self: &Arc<Self>) -> ReplyTo {
        self.owed.fetch_add(1, Ordering::AcqRel);
        ReplyTo(self.clone())
    }

    /// Queues a control frame (welcome, ack, error, pong); also while the
    /// outbox is closing, so owed replies still go out before the close.
    /// Returns false when the control lane is full: the client is then cut off.
    pub fn send_control(&self, frame: &ServerFrame) -> bool {
        let frame = Bytes::from(frame.encode());
        let fits = {
            let mut lanes = self.lock();
            let fits = lanes.control.is_empty()
                || (lanes.control.len() < CONTROL_FRAMES
                    && lanes.control_bytes + frame.len() <= CONTROL_BYTES);
            if fits {
                lanes.control_bytes += frame.len();
                self.gauge_add(frame.len());
                lanes.control.push_back(frame);
            }
            fits
        };
        if fits {
            self.notify.notify_one();
        } else {
            self.cut(SlowReason::ControlFull);
        }
        fits
    }

    /// Offers an event frame at `priority`, applying the overflow policy. The
    /// caller counts what was lost and cuts the client off when
    /// [`EventPush::lost_critical`].
    pub fn push_event(&self, priority: Priority, frame: Bytes) -> EventPush {
        let mut outcome = EventPush::default();
        if self.is_closed() {
            outcome.closed = true;
            return outcome;
        }
        let size = frame.len();
        {
            let mut lanes = self.lock();
            let limits = self.limits;
            let used = |l: &Lanes| l.event_bytes + l.in_flight;
            let fits = |l: &Lanes| {
                (l.event_frames == 0 && l.in_flight == 0)
                    || (l.event_frames < limits.frames && used(l) + size <= limits.bytes)
            };
            if !fits(&lanes) {
                // Evict only if evicting every less urgent event would make room.
                let below = priority.index();
                let (frames_below, bytes_below) = (0..below)
                    .fold((0, 0), |(f, b), p| (f + lanes.events[p].len(), b + lanes.level_bytes[p]));
                let room_after = lanes.event_frames - frames_below < limits.frames
                    && used(&lanes) - bytes_below + size <= limits.bytes
                    || (lanes.event_frames == frames_below && lanes.in_flight == 0);
                if !room_after {
                    return outcome;
                }
                let mut freed = 0;
                while !fits(&lanes) {
                    let lowest =
                        (0..below).find(|&p| !lanes.events[p].is_empty()).expect("room_after checked");
                    let victim = lanes.pop_event(lowest).expect("level is not empty");
                    freed += victim.len();
                    outcome.evicted[lowest] += 1;
                }
                self.gauge_sub(freed);
            }
            lanes.event_frames += 1;
            lanes.event_bytes += size;
            lanes.level_bytes[priority.index()] += size;
            lanes.events[priority.index()].push_back(frame);
            self.gauge_add(size);
        }
        outcome.queued = true;
        self.notify.notify_one();
        outcome
    }

    /// Waits for frames and moves a batch into `batch` (control frames first,
    /// then events most urgent first, until [`BATCH_BYTES`]); returns its
    /// size in bytes, to be passed to [`written`](Self::written), or `None`
    /// once closed, flushed, and no reply is owed.
    pub async fn next_batch(&self, batch: &mut Vec<Bytes>) -> Option<usize> {
        loop {
            let notified = self.notify.notified();
            {
                let mut lanes = self.lock();
                let mut size = 0;
                while let Some(frame) = lanes.control.pop_front() {
                    lanes.control_bytes -= frame.len();
                    size += frame.len();
                    batch.push(frame);
                }
                while size < BATCH_BYTES {
                    let Some(level) = (0..Priority::LEVELS).rev().find(|&p| !lanes.events[p].is_empty())
                    else {
                        break;
                    };
                    let frame = lanes.pop_event(level).expect("level is not empty");
                    size += frame.len();
                    batch.push(frame);
                }
                if !batch.is_empty() {
                    lanes.in_flight += size;
                    lanes.release_idle_room();
                    return Some(size);
                }
            }
            if self.is_closed() && self.owed.load(Ordering::Acquire) == 0 {
                return None;
            }
            notified.await;
        }
    }

    /// Reports a batch of `bytes` (from [`next_batch`](Self::next_batch)) written.
    pub fn written(&self, bytes: usize) {
        let mut lanes = self.lock();
        lanes.in_flight = lanes.in_flight.saturating_sub(bytes);
        self.gauge_sub(bytes);
    }

    /// Cuts the client off as a slow consumer: every queued event is dropped
    /// and counted (`dropped{reason="slow_client"}`), the cut is counted, and
    /// the outbox closes with [`CLOSE_SLOW_CONSUMER`] after the control frames
    /// still queued. Returns false if it was cut off already.
    pub fn cut(&self, reason: SlowReason) -> bool {
        if self.was_cut.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.close_code.store(CLOSE_SLOW_CONSUMER, Ordering::Relaxed);
        self.closed.store(true, Ordering::Release);
        self.closing.notify_waiters();
        let mut freed = 0;
        {
            let mut lanes = self.lock();
            for level in 0..Priority::LEVELS {
                while let Some(frame) = lanes.pop_event(level) {
                    freed += frame.len();
                    self.count_drop(level, "slow_client");
                }
            }
        }
        self.gauge_sub(freed);
        self.metrics.slow_consumer_disconnects.get_or_create(&SlowLabel { reason: reason.label() }).inc();
        tracing::warn!(reason = reason.label(), "disconnecting a slow consumer");
        self.notify.notify_one();
        true
    }

    /// Counts one lost event of priority `level`.
    pub fn count_drop(&self, level: usize, reason: &'static str) {
        self.metrics.dropped.get_or_create(&DropLabel { priority: level as u8, reason }).inc();
    }

    /// Marks the client as gone; its writer flushes what is queued, then
    /// closes with [`close_code`](Self::close_code).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.closing.notify_waiters();
        self.notify.notify_one();
    }

    /// Resolves once the outbox is closed (by the broker, the connection or a cut).
    pub async fn closed(&self) {
        loop {
            let notified = self.closing.notified();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }

    /// Sets the close code the writer sends, if the outbox is still open or
    /// closing normally (a slow-consumer cut keeps its code).
    pub fn set_close_code(&self, code: u16) {
        let _ = self.close_code.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |current| {
            (current != CLOSE_SLOW_CONSUMER).then_some(code)
        });
    }

    /// The WebSocket close code to send.
    pub fn close_code(&self) -> u16 {
        self.close_code.load(Ordering::Relaxed)
    }

    /// True once closed (by the broker, the connection or a cut).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Bytes queued or being written for this client.
    pub fn queued_bytes(&self) -> usize {
        self.lock().queued_bytes()
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let left = self.lock().queued_bytes();
        self.gauge_sub(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(frames: usize, bytes: usize) -> (Outbox, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        (Outbox::new(EventLimits { frames, bytes }, metrics.clone()), metrics)
    }

    fn p(level: u8) -> Priority {
        Priority::new(level).unwrap()
    }

    fn frame(tag: u8, len: usize) -> Bytes {
        Bytes::from(vec![tag; len])
    }

    async fn drain(outbox: &Outbox) -> Vec<u8> {
        let mut batch = Vec::new();
        let size = outbox.next_batch(&mut batch).await.unwrap();
        outbox.written(size);
        batch.iter().map(|f| f[0]).collect()
    }

    #[tokio::test]
    async fn bytes_bound_evicts_less_urgent_events_and_refuses_the_rest() {
        // Regression: the queue was bounded in frames only, so 1 MiB frames piled up to GiBs.
        let (outbox, metrics) = outbox(100, 1000);
        assert!(outbox.push_event(p(1), frame(1, 400)).queued);
        assert!(outbox.push_event(p(2), frame(2, 400)).queued);
        let refused = outbox.push_event(p(1), frame(3, 400));
        assert_eq!(refused, EventPush::default(), "nothing less urgent to evict: refused");
        let pushed = outbox.push_event(p(5), frame(5, 700));
        assert!(pushed.queued);
        assert_eq!((pushed.evicted[1], pushed.evicted[2]), (1, 1), "two evictions make room for 700 bytes");
        assert_eq!(outbox.queued_bytes(), 700);
        assert!(metrics.render().contains("swarmbus_send_queue_bytes 700"));
        assert!(outbox.push_event(p(6), frame(6, 200)).queued);
        let too_big = outbox.push_event(p(6), frame(6, 900));
        assert!(!too_big.queued && too_big.evicted == [0; 10], "evicting the 5 would not make room");
        assert!(outbox.push_event(p(9), frame(9, 100)).queued);
        let critical = outbox.push_event(p(9), frame(9, 950));
        assert!(critical.lost_critical(p(9)), "a refused priority 9 event is a critical loss");
        assert_eq!(drain(&outbox).await, [9, 6, 5]);
        assert!(outbox.push_event(p(9), frame(9, 2000)).queued, "one frame always fits an empty lane");
        let emptied = outbox.push_event(p(9), frame(9, 10));
        assert!(!emptied.queued, "the lane holds 2000 of 1000 bytes");
        assert_eq!(drain(&outbox).await, [9]);
        assert!(metrics.render().contains("swarmbus_send_queue_bytes 0"));
    }

    #[tokio::test]
    async fn bytes_being_written_count_against_the_bound() {
        let (outbox, _) = outbox(100, 1000);
        assert!(outbox.push_event(p(1), frame(1, 600)).queued);
        let mut batch = Vec::new();
        let in_flight = outbox.next_batch(&mut batch).await.unwrap();
        assert!(!outbox.push_event(p(9), frame(9, 600)).queued, "600 bytes are still being written");
        outbox.written(in_flight);
        assert!(outbox.push_event(p(9), frame(9, 600)).queued);
    }

    #[tokio::test]
    async fn an_idle_client_keeps_little_room_after_a_burst() {
        let (outbox, _) = outbox(100_000, 1 << 30);
        for _ in 0..10_000 {
            assert!(outbox.push_event(p(3), frame(3, 10)).queued);
        }
        let mut batch = Vec::new();
        while outbox.lock().event_frames > 0 {
            let size = outbox.next_batch(&mut batch).await.unwrap();
            outbox.written(size);
            batch.clear();
        }
        assert!(outbox.lock().events[3].capacity() <= IDLE_ROOM, "10,000 slots kept for an idle client");
    }

    #[tokio::test]
    async fn control_frames_neither_evict_nor_are_evicted() {
        // Regression: pongs/acks/errors were queued at priority 9 with the events: two pings
        // evicted two priority 8 events, and a queue full of 9s swallowed acks.
        let (outbox, metrics) = outbox(2, 1 << 20);
        assert!(outbox.push_event(p(9), frame(9, 10)).queued);
        assert!(outbox.push_event(p(8), frame(8, 10)).queued);
        for nonce in 0..3 {
            assert!(outbox.send_control(&ServerFrame::Pong { nonce }));
        }
        assert!(!outbox.push_event(p(1), frame(1, 10)).queued, "the event lane is still full of its own");
        let mut batch = Vec::new();
        outbox.next_batch(&mut batch).await.unwrap();
        let kinds: Vec<&str> = batch
            .iter()
            .map(|f| match ServerFrame::decode(f) {
                Ok(ServerFrame::Pong { .. }) => "pong",
                _ => "event",
            })
            .collect();
        assert_eq!(kinds, ["pong", "pong", "pong", "event", "event"]);
        assert!(!metrics.render().contains("swarmbus_dropped_total{"), "nothing lost");
    }

    #[tokio::test]
    async fn a_full_control_lane_cuts_the_client_off_and_says_so() {
        let (outbox, metrics) = outbox(4, 1 << 20);
        assert!(outbox.push_event(p(3), frame(3, 10)).queued);
        for nonce in 0..CONTROL_FRAMES as u64 {
            assert!(outbox.send_control(&ServerFrame::Pong { nonce }));
        }
        assert!(!outbox.send_control(&ServerFrame::Ack { ack: 1 }));
        assert!(outbox.is_closed());
        assert_eq!(outbox.close_code(), CLOSE_SLOW_CONSUMER);
        let text = metrics.render();
        assert!(
            text.contains(r#"swarmbus_slow_consumer_disconnects_total{reason="control_full"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"swarmbus_dropped_total{priority="3",reason="slow_client"} 1"#), "{text}");
        // The queued control frames are still flushed before the close.
        let mut batch = Vec::new();
        assert_eq!(outbox.next_batch(&mut batch).await.map(|_| batch.len()), Some(CONTROL_FRAMES));
        assert_eq!(outbox.next_batch(&mut Vec::new()).await, None);
    }
}
