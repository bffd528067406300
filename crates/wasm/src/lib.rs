//! The `swarmbus` npm package: wasm-bindgen bindings of `swarmbus-core`.
//!
//! Every export throws (or rejects with) a JS `Error` that has a string
//! `.code`; see [`error`]. Values cross the boundary as plain JS values; see
//! [`convert`] for the type mapping.

pub mod breaker;
pub mod bus;
pub mod codec;
pub mod convert;
pub mod error;
mod exact;
pub mod memory;
pub mod messenger;
pub mod router;
pub mod store;

#[cfg(target_arch = "wasm32")]
mod alloc_counter;

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: alloc_counter::CountingAllocator = alloc_counter::CountingAllocator;

use wasm_bindgen::prelude::*;

/// Installs the panic hook, so a bug shows a readable message instead of `unreachable`.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// The package version.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** An error thrown by swarmbus: `code` is stable, `message` explains. */
export interface SwarmbusError extends Error {
  code: 'INVALID_TOPIC' | 'INVALID_PATTERN' | 'INVALID_PRIORITY' | 'INVALID_ARGUMENT' | 'QUEUE_FULL'
    | 'PAYLOAD_TOO_LARGE' | 'DECODE_ERROR' | 'ENCODE_ERROR' | 'CIRCUIT_OPEN' | 'VERSION_CONFLICT'
    | 'UNKNOWN_SNAPSHOT' | 'REENTRANT' | 'FREED' | 'INVALID_STATE' | 'UNAVAILABLE' | 'CLOSED'
    | 'AUTH_REQUIRED' | 'TOKEN_EXPIRED' | 'INVALID_TOKEN' | 'FORBIDDEN' | 'RATE_LIMITED'
    | 'TOO_MANY_SUBSCRIPTIONS' | 'UNSUPPORTED_VERSION' | 'HELLO_REQUIRED' | 'TIMEOUT' | 'CANCELLED' | 'DISCONNECTED';
}
/** Options of `new Messenger(bus, options)`. */
export interface MessengerOptions {
  /** Patterns of local publishes also sent to the bridge. */
  forward?: string[];
  /** Patterns of remote events delivered into the bus. */
  subscribe?: string[];
  /** Forwarded events kept while disconnected (default 1024); the lowest priority is dropped first. */
  offlineCapacity?: number;
  /** Envelope bytes kept while disconnected (default 4 MiB), bounded like `offlineCapacity`. */
  offlineBytes?: number;
  /** First reconnect delay (default 100 ms), doubling up to `maxBackoffMs` (default 10 000), with jitter. */
  backoffMs?: number; maxBackoffMs?: number;
  /** How long `connect()` keeps retrying before it rejects with `UNAVAILABLE` (default 10 000 ms). */
  connectTimeoutMs?: number;
  /** Ping period while connected (default 15 000 ms); a ping unanswered by the next one means a dead connection: reconnect. 0: no pings. */
  pingIntervalMs?: number;
  /** How long `subscribe` and `refreshToken` wait for the bridge's answer before rejecting with `TIMEOUT` (default 5 000 ms). */
  requestTimeoutMs?: number;
  /** Dispatch remote events as they arrive (default true); otherwise call `bus.drain()`. */
  autoDrain?: boolean;
  /** The WebSocket constructor (default `globalThis.WebSocket`; on Node 20 pass the `ws` package's). */
  WebSocket?: unknown;
  /** Hears refused frames and undecodable events. */
  onError?: (error: SwarmbusError) => void;
  /** Hears state changes. */
  onState?: (state: 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed') => void;
}
/** Output of `Messenger.stats()`. */
export interface MessengerStats {
  sent: number; received: number; echoes: number; queued: number; dropped: number;
  droppedByPriority: number[]; reconnects: number; errors: number;
}
/** Input of `encodeEnvelope`. A non-`Uint8Array` payload is MessagePack-encoded. */
export interface EnvelopeInput {
  topic: string; payload: unknown; priority?: number; id?: number | bigint; ttlMs?: number;
  sender?: string; swarm?: string; correlationId?: string;
}
/** Output of `decodeEnvelope`. */
export interface DecodedEnvelope {
  id: number | bigint; topic: string; priority: number; timestamp: number; payload: Uint8Array;
  ttlMs?: number; sender?: string; swarm?: string; correlationId?: string;
}
/** Output of `peekHeader`. */
export interface EnvelopeHeader { id: number | bigint; topic: string; priority: number; }
/** What a `Bus` handler receives. */
export interface BusEvent { id: number; topic: string; priority: number; timestamp: number; payload: any; }
/** Options of `new CircuitBreaker()` and of `new Bus({breaker})`. */
export interface BreakerOptions {
  failureThreshold?: number; openMs?: number; halfOpenProbes?: number; bypassPriority?: number | null;
  failureRate?: { thresholdPercent: number; window: number; minCalls: number } | null;
  backoff?: { multiplier: number; maxOpenMs: number; jitterPercent: number; seed: number } | null;
}
/** Options of `new Bus()`. */
export interface BusOptions {
  capacity?: number; breaker?: BreakerOptions | false | null; routeCache?: number;
  onError?: (error: unknown, subscriptionId: number, event: BusEvent) => void;
}
/** A breaker's state and counters. */
export interface BreakerStateInfo {
  state: 'closed' | 'open' | 'half-open' | 'forced-open' | 'disabled';
  consecutiveFailures: number; transitions: number; windowFailures: number; windowCalls: number;
  sinceMs?: number; waitMs?: number; admitted?: number; succeeded?: number;
}
/** `Bus.metrics()`: totals and per-priority arrays (index = priority 0..9). */
export interface BusMetrics {
  published: number; delivered: number; dropped: number; rejected: number; evicted: number; expired: number;
  skippedOpen: number; handlerErrors: number; unrouted: number; breakerTransitions: number; queued: number;
  byPriority: { published: number[]; dispatched: number[]; dropped: number[]; rejected: number[]; skippedOpen: number[]; queued: number[] };
}
/** One entry of `StateStore.snapshots()`. */
export interface SnapshotInfo { id: number; label: string | null; version: number; keys: number; }
/** A patch from `StateStore.diff()`. */
export interface Patch {
  fromVersion: number; toVersion: number;
  ops: Array<{ op: 'set'; key: string; value: unknown } | { op: 'delete'; key: string }>;
}
/** `memoryStats()`. */
export interface MemoryStats { wasmBytes: number; liveAllocations: number; liveBytes: number; }
"#;
