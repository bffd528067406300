//! `swarmbus-bridge`: relays swarmbus envelopes between WebSocket clients
//! through an embedded in-process broker, with an HTTP publish API and
//! Prometheus metrics. Routing, priorities and the envelope codec come from
//! `swarmbus-core`.
//!
//! Status: embedded broker, Redis mode, HS256 token auth with topic grants
//! ([`auth`]), and a native [`client`]. Without an auth secret the bridge
//! only binds to loopback.

pub mod admission;
pub mod auth;
pub mod broker;
pub mod client;
pub mod config;
pub mod error;
pub mod http_api;
pub mod listen;
pub mod logging;
pub mod metrics;
pub mod outbox;
pub mod probes;
pub mod rate;
pub mod relay;
pub mod report;
pub mod server;
pub mod simulator;
pub mod static_files;
mod writer;

/// The wire protocol, shared with the wasm `Messenger` (defined in `swarmbus-core`).
pub use swarmbus_core::protocol;
