#![doc = include_str!("../README.md")]
#![cfg_attr(not(feature = "std"), no_std)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

extern crate alloc;

pub mod breaker;
pub mod bus;
pub mod clock;
pub mod envelope;
pub mod error;
pub mod json_msgpack;
pub mod metrics;
pub mod msgpack;
pub mod msgpack_json;
pub mod patch;
pub mod priority;
pub mod protocol;
pub mod queue;
pub mod router;
pub mod session;
pub mod store;
#[cfg(test)]
mod test_values;
pub mod topic;

pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker, Permit, StateKind, Transition};
pub use bus::{BusConfig, Event, EventBus, EventId, HandlerError, PublishOptions, SubscribeOptions};
#[cfg(feature = "std")]
pub use clock::SystemClock;
pub use clock::{Clock, ManualClock};
pub use envelope::{Envelope, EnvelopeInput, EnvelopeRef, Header};
pub use error::{BusError, CircuitOpen, CodecError, PriorityError, QueueFull, StoreError, TopicError};
pub use metrics::BusMetrics;
pub use patch::{Patch, PatchOp};
pub use priority::Priority;
pub use queue::PriorityQueue;
pub use router::{Route, Router, SubscriptionId};
pub use session::{Session, SessionConfig};
pub use store::{Snapshot, SnapshotId, StateStore};

/// The repository README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct RootReadme;
