// The public TypeScript contract of the `swarmbus` npm package, written by hand.
//
// The wasm-bindgen glue (`swarmbus.d.ts`) describes what crosses the wasm
// boundary; this file describes what a user calls: optional parameters are
// optional, payloads are generic (`unknown` by default, never `any`), callbacks
// name their arguments, states and error codes are string-literal unions.
// crates/wasm/tests-ts/ compiles a usage file and every README snippet against
// it with `tsc --strict`, and checks that it declares exactly the runtime
// exports of `swarmbus/node`.

/// <reference lib="esnext.disposable" />

// ---------------------------------------------------------------------------
// Errors

/** Every code a swarmbus `Error` carries: the package's own and the bridge's. */
export type ErrorCode =
  // topics, priorities, arguments
  | 'INVALID_TOPIC' | 'INVALID_PATTERN' | 'INVALID_PRIORITY' | 'INVALID_ARGUMENT'
  // bus, codec, breaker, store
  | 'QUEUE_FULL' | 'PAYLOAD_TOO_LARGE' | 'DECODE_ERROR' | 'ENCODE_ERROR' | 'CIRCUIT_OPEN'
  | 'VERSION_CONFLICT' | 'UNKNOWN_SNAPSHOT' | 'REENTRANT' | 'FREED'
  // the Messenger
  | 'INVALID_STATE' | 'UNAVAILABLE' | 'CLOSED'
  // the bridge (docs/protocol.md)
  | 'AUTH_REQUIRED' | 'TOKEN_EXPIRED' | 'INVALID_TOKEN' | 'FORBIDDEN' | 'RATE_LIMITED'
  | 'TOO_MANY_SUBSCRIPTIONS' | 'UNSUPPORTED_VERSION' | 'HELLO_REQUIRED' | 'GONE';

/** An error thrown (or a promise rejected) by swarmbus: `code` is stable, `message` explains. */
export interface SwarmbusError extends Error {
  /** Stable machine-readable code, e.g. `INVALID_TOPIC`. */
  code: ErrorCode;
}

// ---------------------------------------------------------------------------
// Loading the module (browsers, Deno, workerd; `swarmbus/node` is loaded already)

declare global {
  // Declared by the DOM and WebWorker libraries; Node's types lack them. Empty
  // interfaces merge with the full declarations where those are present.
  namespace WebAssembly {
    interface Module {}
    interface Memory {}
  }
}

/** What `init` loads the module from: a URL or path, a fetch `Response`, its bytes, or a compiled module. */
export type InitInput = string | URL | Response | ArrayBuffer | ArrayBufferView | WebAssembly.Module;

/** What `initSync` takes: the module's bytes or a compiled `WebAssembly.Module`. */
export type SyncInitInput = ArrayBuffer | ArrayBufferView | WebAssembly.Module;

/** The instantiated module: its linear memory (other exports are internal). */
export interface InitOutput {
  /** The module's linear memory. */
  readonly memory: WebAssembly.Memory;
}

/**
 * Loads the module once: `await init()` fetches `swarmbus_bg.wasm` next to the
 * glue, `await init({ module_or_path })` loads from a URL, bytes or a compiled module.
 */
export default function init(
  moduleOrPath?: { module_or_path: InitInput | Promise<InitInput> } | InitInput | Promise<InitInput>,
): Promise<InitOutput>;

/** Instantiates the module synchronously from `{ module }` (bytes or a compiled `WebAssembly.Module`). */
export function initSync(module: { module: SyncInitInput } | SyncInitInput): InitOutput;

/** Installs the panic hook (called by `init`), so a bug shows a readable message instead of `unreachable`. */
export function start(): void;

/** The package version. */
export function version(): string;

// ---------------------------------------------------------------------------
// Circuit breaker

/** A breaker's state: `closed` lets calls through, `open` refuses them, `half-open` lets probes through. */
export type BreakerState = 'closed' | 'open' | 'half-open' | 'forced-open' | 'disabled';

/** Options of `new CircuitBreaker()` and of `new Bus({ breaker })`. */
export interface BreakerOptions {
  /** Consecutive failures that open the circuit (default 5). */
  failureThreshold?: number;
  /** How long the circuit stays open before probing, ms (default 30 000). */
  openMs?: number;
  /** Successful probes in half-open that close it again (default 3). */
  halfOpenProbes?: number;
  /** Calls (events) at this priority or above pass an open circuit (default 8); `null`: none do. */
  bypassPriority?: number | null;
  /** Also open when failures exceed `thresholdPercent` of the last `window` calls (after `minCalls`). */
  failureRate?: { thresholdPercent: number; window: number; minCalls: number } | null;
  /** Each reopening waits `multiplier` times longer, up to `maxOpenMs`, with jitter. */
  backoff?: { multiplier: number; maxOpenMs: number; jitterPercent: number; seed: number } | null;
}

/** A breaker's state and counters (`CircuitBreaker.info()`, `Bus.breakerState()`). */
export interface BreakerStateInfo {
  state: BreakerState;
  consecutiveFailures: number;
  transitions: number;
  windowFailures: number;
  windowCalls: number;
  /** Open: when it opened (ms). */
  sinceMs?: number;
  /** Open: how long it stays open (ms). */
  waitMs?: number;
  /** Half-open: probes admitted and succeeded so far. */
  admitted?: number;
  succeeded?: number;
}

/** Options of `CircuitBreaker.run`. */
export interface RunOptions {
  /** The call's priority (0–9, default 5): at `bypassPriority` or above it passes an open circuit. */
  priority?: number;
}

/** A saved breaker (`toJSON()`): settings and state, JSON-safe. Pass it back to `CircuitBreaker.fromJSON`. */
export interface BreakerJSON {
  config: Record<string, unknown>;
  state: { state: BreakerState } & Record<string, unknown>;
  [field: string]: unknown;
}

/**
 * A circuit breaker around any function. Its state serializes with `toJSON()`
 * and comes back with `CircuitBreaker.fromJSON()`, so a serverless worker can
 * keep it between requests.
 */
export class CircuitBreaker {
  /** `new CircuitBreaker({ failureThreshold = 5, openMs = 30000, halfOpenProbes = 3, bypassPriority = 8, failureRate?, backoff? })`. */
  constructor(options?: BreakerOptions);
  /** Restores a breaker saved with `toJSON()` (the object, or its JSON string). */
  static fromJSON(saved: BreakerJSON | string): CircuitBreaker;
  /**
   * Calls `fn()` if the breaker admits it and records the outcome. Resolves with
   * `fn`'s result (awaited when it returns a promise); rejects with code
   * `CIRCUIT_OPEN` without calling `fn` when the circuit is open.
   */
  run<T>(fn: () => T | PromiseLike<T>, options?: RunOptions): Promise<T>;
  /** The state with its details. */
  info(): BreakerStateInfo;
  /** The state name. */
  readonly state: BreakerState;
  /** Closes the circuit and forgets failures. */
  reset(): void;
  /** Opens the circuit until `reset()`. */
  forceOpen(): void;
  /** Lets every call through and records nothing until `reset()`. */
  disable(): void;
  /** The whole breaker (settings and state) as a plain JSON-safe object. */
  toJSON(): BreakerJSON;
  /** Releases the wasm memory now (otherwise a FinalizationRegistry does); later calls throw `FREED`. */
  free(): void;
  [Symbol.dispose](): void;
}

// ---------------------------------------------------------------------------
// Bus and Messenger

/** What a `Bus` handler receives; `T` is the payload type the subscriber expects. */
export interface BusEvent<T = unknown> {
  /** The event id (unique per module instance). */
  id: number;
  /** The topic it was published on. */
  topic: string;
  /** 0 (bulk) to 9 (phase transitions). */
  priority: number;
  /** When it was published (ms since the epoch). */
  timestamp: number;
  /** The published value, as given to `publish` (or decoded from the bridge). */
  payload: T;
}

/** A subscription handler. Its failures count against the subscription's breaker. */
export type Handler<T = unknown> = (event: BusEvent<T>) => void | Promise<void>;

/** Options of `new Bus()`. */
export interface BusOptions {
  /** Events the queue holds (default 65 536); beyond it the lowest priority is evicted or `QUEUE_FULL` thrown. */
  capacity?: number;
  /** Per-subscription breakers' settings, or `false` / `null` for no breakers. */
  breaker?: BreakerOptions | false | null;
  /** Topics whose routes are cached (least recently used beyond it). */
  routeCache?: number;
  /** Hears handler failures: what was thrown, the subscription id and the event. */
  onError?: BusErrorCallback;
}

/** Hears a handler's failure. */
export type BusErrorCallback = (error: unknown, subscriptionId: number, event: BusEvent) => void;

/** Options of `Bus.subscribe`. */
export interface SubscribeOptions {
  /** Remove the subscription after its first call. */
  once?: boolean;
}

/** Options of `Bus.publish` (or just the priority as a number). */
export interface PublishOptions {
  /** 0–9 (default 5). */
  priority?: number;
  /** Dropped (counted as `expired`) when still queued after this many ms. */
  ttlMs?: number;
}

/** Counters per priority: arrays indexed by priority 0..9. */
export interface PriorityCounters {
  published: number[];
  dispatched: number[];
  dropped: number[];
  rejected: number[];
  skippedOpen: number[];
  queued: number[];
}

/** `Bus.metrics()`: totals and per-priority arrays (index = priority 0..9). */
export interface BusMetrics {
  published: number;
  delivered: number;
  dropped: number;
  rejected: number;
  evicted: number;
  expired: number;
  skippedOpen: number;
  handlerErrors: number;
  unrouted: number;
  breakerTransitions: number;
  queued: number;
  byPriority: PriorityCounters;
}

/**
 * A priority event bus: subscribe by pattern (`*` one token, `>` the rest),
 * publish, then `drain` to dispatch, most urgent first.
 */
export class Bus {
  /** `new Bus({ capacity?, breaker?, routeCache?, onError? })`. */
  constructor(options?: BusOptions);
  /**
   * Calls `handler` for events on topics matching `pattern`; returns the
   * subscription id. Throws `INVALID_PATTERN` for a bad pattern.
   */
  subscribe<T = unknown>(pattern: string, handler: Handler<T>, options?: SubscribeOptions): number;
  /** Removes a subscription; `false` if it did not exist. */
  unsubscribe(id: number): boolean;
  /** Queues an event; returns its id. `options` is `{ priority = 5, ttlMs }` or just the priority. */
  publish<T = unknown>(topic: string, payload: T, options?: PublishOptions | number): number;
  /** Queues one event per element of `payloads`, all on `topic` with one priority; returns how many were queued. */
  publishBatch<T = unknown>(topic: string, payloads: readonly T[], priority?: number): number;
  /** Queues an encoded envelope, routed on its header only: the handler's `payload` is the envelope's bytes. Returns its id. */
  publishEnvelope(bytes: Uint8Array): number;
  /** Dispatches up to `max` queued events (all when omitted), most urgent first; returns the number of handler calls. */
  drain(max?: number): number;
  /** Sets (or clears, with `null`) the callback that hears handler failures. */
  onError(callback?: BusErrorCallback | null): void;
  /** The breaker of a subscription, or `null`. */
  breakerState(id: number): BreakerStateInfo | null;
  /** Counters: totals, per-priority arrays and the queue depth. */
  metrics(): BusMetrics;
  /** Events waiting for `drain`. */
  readonly queued: number;
  /** Number of live subscriptions. */
  readonly subscriptionCount: number;
  /** Releases the wasm memory now (otherwise a FinalizationRegistry does); later calls throw `FREED`. */
  free(): void;
  [Symbol.dispose](): void;
}

/** A Messenger's connection state. */
export type MessengerState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** The `WebSocket` constructor a Messenger opens connections with (the global one, or the `ws` package's). */
export type WebSocketConstructor = new (url: string) => object;

/** Options of `new Messenger(bus, options)`. */
export interface MessengerOptions {
  /** Patterns of local publishes also sent to the bridge. */
  forward?: string[];
  /** Patterns of remote events delivered into the bus. */
  subscribe?: string[];
  /** Forwarded events kept while disconnected (default 1024); the lowest priority is dropped first. */
  offlineCapacity?: number;
  /** First reconnect delay (default 100 ms), doubling up to `maxBackoffMs`, with jitter. */
  backoffMs?: number;
  /** Longest reconnect delay (default 10 000 ms). */
  maxBackoffMs?: number;
  /** How long `connect()` keeps retrying before it rejects with `UNAVAILABLE` (default 10 000 ms). */
  connectTimeoutMs?: number;
  /** Ping period while connected (default 15 000 ms); an unanswered ping means a dead connection. 0: no pings. */
  pingIntervalMs?: number;
  /** Dispatch remote events as they arrive (default true); otherwise call `bus.drain()`. */
  autoDrain?: boolean;
  /** The WebSocket constructor (default `globalThis.WebSocket`; on Node 20 pass the `ws` package's). */
  WebSocket?: WebSocketConstructor;
  /** Hears refused frames and undecodable events. */
  onError?: (error: SwarmbusError) => void;
  /** Hears state changes. */
  onState?: (state: MessengerState) => void;
}

/** Options of `Messenger.connect`. */
export interface ConnectOptions {
  /** The bridge's HS256 token (only when the bridge runs with `--auth-secret`). */
  token?: string;
}

/** `Messenger.stats()`. */
export interface MessengerStats {
  sent: number;
  received: number;
  echoes: number;
  queued: number;
  dropped: number;
  /** Forwarded events dropped while offline, by priority 0..9. */
  droppedByPriority: number[];
  reconnects: number;
  errors: number;
}

/** Connects a `Bus` to a swarmbus bridge over a WebSocket. */
export class Messenger {
  /** `new Messenger(bus, { forward?, subscribe?, offlineCapacity?, backoffMs?, ..., WebSocket?, onError?, onState? })`. */
  constructor(bus: Bus, options?: MessengerOptions);
  /**
   * Opens the connection to `url` (e.g. `ws://127.0.0.1:8080/ws`). Resolves once
   * the bridge welcomes us; rejects with `UNAVAILABLE` after `connectTimeoutMs`,
   * or at once with the bridge's code for a refused token.
   */
  connect(url: string, options?: ConnectOptions): Promise<void>;
  /** Receives remote events on topics matching `pattern` (kept across reconnects). */
  subscribe(pattern: string): void;
  /** Stops receiving remote events for `pattern`; `false` if not subscribed. */
  unsubscribe(pattern: string): boolean;
  /** Also sends local publishes on topics matching `pattern` to the bridge. */
  forward(pattern: string): void;
  /** Stops forwarding `pattern`; `false` if it was not forwarded. */
  stopForwarding(pattern: string): boolean;
  /** Sets (or clears) the callback hearing refused frames and undecodable events. */
  onError(callback?: ((error: SwarmbusError) => void) | null): void;
  /** Sets (or clears) the callback hearing state changes. */
  onState(callback?: ((state: MessengerState) => void) | null): void;
  /** Reports counters this client measured to the bridge (`swarmbus_client_events_total{kind, path}`); `false` when not connected. */
  report(kind: string, wasm: number, js: number): boolean;
  /** Counters. */
  stats(): MessengerStats;
  /** The connection state. */
  readonly state: MessengerState;
  /** Closes the connection for good (no reconnect). */
  close(): void;
  /** Releases the wasm memory now; later calls throw `FREED`. */
  free(): void;
  [Symbol.dispose](): void;
}

// ---------------------------------------------------------------------------
// State store

/** A JSON value, as the `StateStore` keeps it. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** One entry of `StateStore.snapshots()`. */
export interface SnapshotInfo {
  id: number;
  label: string | null;
  version: number;
  keys: number;
}

/** One operation of a `Patch`. */
export type PatchOp = { op: 'set'; key: string; value: JsonValue } | { op: 'delete'; key: string };

/** A patch from `StateStore.diff()`, applied with `StateStore.apply()`. */
export interface Patch {
  fromVersion: number;
  toVersion: number;
  ops: PatchOp[];
}

/** A versioned document store of JSON values, with O(1) snapshots. */
export class StateStore {
  /** An empty store at version 0 keeping the last `history` snapshots (default 10). */
  constructor(history?: number);
  /** A store holding a state written by `toBytes()` (empty history). */
  static fromBytes(bytes: Uint8Array | number[]): StateStore;
  /** The value of `key`, or `undefined`. */
  get<T = JsonValue>(key: string): T | undefined;
  /** Sets `key` to a JSON-compatible value (else `INVALID_ARGUMENT`); returns the new version. */
  set(key: string, value: unknown): number;
  /** Sets `key` only if its version is `expectedVersion` (0: absent); throws `VERSION_CONFLICT` otherwise. */
  compareAndSet(key: string, expectedVersion: number, value: unknown): number;
  /** Merges `patch` into `key` (JSON merge patch, RFC 7396); returns the new version. */
  merge(key: string, patch: unknown): number;
  /** Removes `key`; returns whether it existed. */
  delete(key: string): boolean;
  /** The keys, in order. */
  keys(): string[];
  /** The version that last wrote `key` (0 when absent). */
  keyVersion(key: string): number;
  /** The store's version. */
  readonly version: number;
  /** Records the current state in O(1); returns the snapshot id. */
  snapshot(label?: string): number;
  /** The kept snapshots, oldest first. */
  snapshots(): SnapshotInfo[];
  /** Returns to snapshot `id`; returns the new version. Throws `UNKNOWN_SNAPSHOT`. */
  restore(id: number): number;
  /** The patch from snapshot `fromId` to snapshot `toId`. */
  diff(fromId: number, toId: number): Patch;
  /** Applies a patch from `diff`; returns the new version. */
  apply(patch: Patch): number;
  /** The current state as MessagePack. */
  toBytes(): Uint8Array;
  /** Releases the wasm memory now; later calls throw `FREED`. */
  free(): void;
  [Symbol.dispose](): void;
}

// ---------------------------------------------------------------------------
// MessagePack and envelopes

/**
 * Encodes what `JSON.stringify` takes (`undefined` becomes nil, `toJSON()` is
 * honoured) plus `Uint8Array` / `ArrayBuffer` (bin), `BigInt`, `Map`, `NaN` and
 * ±`Infinity` as MessagePack. A cycle, nesting deeper than 128 levels or a
 * function is `INVALID_ARGUMENT`.
 */
export function encode(value: unknown): Uint8Array;

/**
 * Decodes MessagePack into plain JS values: maps become objects, bin becomes
 * `Uint8Array`, integers beyond ±2^53 become `BigInt`. `T` is what the caller
 * expects; nothing checks it.
 */
export function decode<T = unknown>(bytes: Uint8Array | number[]): T;

/** Input of `encodeEnvelope`. A `Uint8Array` payload is sent as is (already MessagePack); anything else is encoded. */
export interface EnvelopeInput<T = unknown> {
  topic: string;
  payload: T;
  /** 0–9 (default 5). */
  priority?: number;
  /** Default: a per-instance counter. */
  id?: number | bigint;
  ttlMs?: number;
  sender?: string;
  swarm?: string;
  correlationId?: string;
}

/** Output of `decodeEnvelope`: optional fields are present only when the envelope has them. */
export interface DecodedEnvelope<T = unknown> {
  id: number | bigint;
  topic: string;
  priority: number;
  timestamp: number;
  /** The decoded payload; its MessagePack bytes with `{ raw: true }`. */
  payload: T;
  ttlMs?: number;
  sender?: string;
  swarm?: string;
  correlationId?: string;
}

/** Options of `decodeEnvelope`. */
export interface DecodeEnvelopeOptions {
  /** Keep the payload as its MessagePack bytes instead of decoding it. */
  raw?: boolean;
}

/** Output of `peekHeader`. */
export interface EnvelopeHeader {
  id: number | bigint;
  topic: string;
  priority: number;
}

/**
 * Encodes an envelope: `id` defaults to a per-instance counter, `priority` to 5,
 * the timestamp is `Date.now()`.
 */
export function encodeEnvelope<T = unknown>(input: EnvelopeInput<T>): Uint8Array;

/**
 * Decodes an envelope; its payload decoded (`decode`), so that
 * `decodeEnvelope(encodeEnvelope({ topic, payload })).payload` equals `payload`.
 * With `{ raw: true }` the payload stays its MessagePack bytes.
 */
export function decodeEnvelope<T = unknown>(bytes: Uint8Array | number[], options?: { raw?: false }): DecodedEnvelope<T>;
export function decodeEnvelope(bytes: Uint8Array | number[], options: { raw: true }): DecodedEnvelope<Uint8Array>;
export function decodeEnvelope(bytes: Uint8Array | number[], options?: DecodeEnvelopeOptions): DecodedEnvelope;

/** Reads `{ id, topic, priority }` without decoding the rest: the cost does not grow with the payload. */
export function peekHeader(bytes: Uint8Array | number[]): EnvelopeHeader;

/** `memoryStats()`. */
export interface MemoryStats {
  /** Size of linear memory. */
  wasmBytes: number;
  /** What the allocator holds. */
  liveAllocations: number;
  liveBytes: number;
}

/** The size of linear memory and what the allocator holds. */
export function memoryStats(): MemoryStats;
