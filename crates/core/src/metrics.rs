//! Counters kept by the event bus.

use serde::{Deserialize, Serialize};

use crate::priority::Priority;

/// Per-priority counts, index = priority level.
pub type PerPriority = [u64; Priority::LEVELS];

/// Everything the [`EventBus`](crate::EventBus) counts. All counters only grow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BusMetrics {
    /// Events accepted into the queue, per priority.
    pub published: PerPriority,
    /// Events refused at publish because the queue was full, per priority.
    pub rejected: PerPriority,
    /// Queued events evicted by a more urgent one, per priority.
    pub evicted: PerPriority,
    /// Queued events whose TTL ran out before dispatch, per priority.
    pub expired: PerPriority,
    /// Deliveries skipped because the subscription's breaker was open, per priority.
    pub skipped_open: PerPriority,
    /// Events dispatched, per priority.
    pub dispatched: PerPriority,
    /// Handler calls made.
    pub delivered: u64,
    /// Handler calls that returned an error.
    pub handler_errors: u64,
    /// Dispatched events that matched no subscription.
    pub unrouted: u64,
    /// Breaker state changes across all subscriptions.
    pub breaker_transitions: u64,
}

impl BusMetrics {
    /// Events lost after being accepted (evicted or expired), per priority.
    pub fn dropped(&self) -> PerPriority {
        core::array::from_fn(|p| self.evicted[p] + self.expired[p])
    }

    /// Sum of a per-priority counter.
    pub fn total(counts: &PerPriority) -> u64 {
        counts.iter().sum()
    }
}
