//! `swarmbus-bridge`: relays swarmbus envelopes between WebSocket clients
//! through an embedded in-process broker, with an HTTP publish API and
//! Prometheus metrics. Routing, priorities and the envelope codec come from
//! `swarmbus-core`.
//!
//! Status: embedded broker, Redis mode and a native [`client`]; authentication
//! is not built yet, so the bridge binds to loopback only.

pub mod broker;
pub mod client;
pub mod config;
pub mod error;
pub mod metrics;
pub mod protocol;
pub mod relay;
pub mod server;
