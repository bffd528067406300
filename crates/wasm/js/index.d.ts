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
  // the Messenger and core's client session
  | 'INVALID_STATE' | 'UNAVAILABLE' | 'CLOSED' | 'TIMEOUT' | 'DISCONNECTED' | 'DROPPED' | 'CANCELLED'
  | 'TOO_MANY_REQUESTS'
  // the bridge (docs/protocol.md): error frames and HTTP answers
  | 'AUTH_REQUIRED' | 'TOKEN_EXPIRED' | 'TOKEN_NOT_YET_VALID' | 'INVALID_TOKEN' | 'FORBIDDEN' | 'RATE_LIMITED'
  | 'TOO_MANY_SUBSCRIPTIONS' | 'TOO_MANY_UNAUTHENTICATED' | 'UNSUPPORTED_VERSION' | 'HELLO_REQUIRED'
  | 'HELLO_TIMEOUT' | 'BODY_TIMEOUT' | 'GONE';

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
// Bus, Subscription, Router and Messenger: declared in bus.d.ts

export * from './bus.js';

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
