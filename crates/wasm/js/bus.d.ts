// Types of bus.js (the JS-side `Bus`, `Subscription`, `Router`) and of the
// `Messenger` that connects a bus to a bridge. Written by hand; index.d.ts
// re-exports them.

/// <reference lib="esnext.disposable" />

import type { BreakerOptions, BreakerStateInfo, SwarmbusError } from './index.js';

// ---------------------------------------------------------------------------
// Events and handlers

/** What a `Bus` handler receives; `T` is the payload type the subscriber expects. Treat it as read-only: all handlers of one event share it. */
export interface BusEvent<T = unknown> {
  /** The event id (unique per module instance; an envelope's id for `publishEnvelope` and remote events). */
  id: number;
  /** The topic it was published on. */
  topic: string;
  /** 0 (bulk) to 9 (phase transitions). */
  priority: number;
  /** When it was published (ms since the epoch; read once per task). */
  timestamp: number;
  /** The published value, as given to `publish` (or decoded from the bridge). */
  payload: T;
}

/**
 * A subscription handler. It may be async: a promise that rejects is a
 * failure of its subscription (breaker, `handlerErrors`, `onError`), exactly
 * like a throw, and never an unhandled rejection.
 */
export type Handler<T = unknown> = (event: BusEvent<T>) => void | Promise<void>;

/** Hears a handler's failure: what was thrown (or the rejection reason), the subscription id and the event. */
export type BusErrorCallback = (error: unknown, subscriptionId: number, event: BusEvent) => void;

/** Options of `new Bus()`. */
export interface BusOptions {
  /** Events the queue holds (default 65 536); when full, the oldest event of the lowest priority below the new one is evicted, else `QUEUE_FULL`. */
  capacity?: number;
  /** Per-subscription breakers' settings, or `false` / `null` for no breakers. */
  breaker?: BreakerOptions | false | null;
  /** Topics whose routes are cached (default 4 096; the oldest entry goes first). */
  routeCache?: number;
  /** Hears every handler failure. Without it, each subscription's first failure goes to `console.error` (later ones are counted). */
  onError?: BusErrorCallback | null;
  /** Deliver in a microtask after the current synchronous code (default `true`); `false`: only `drain()` delivers. */
  autoDrain?: boolean;
  /**
   * How long an async handler's promise may stay pending (default 30 000 ms;
   * `0`: no limit). Past it the call counts as a failure with code `TIMEOUT`
   * (reported like a rejection, its breaker permit released); how the promise
   * settles later is ignored.
   */
  handlerTimeoutMs?: number;
}

/** Options of `Bus.subscribe`. */
export interface SubscribeOptions {
  /** Remove the subscription after its first call. */
  once?: boolean;
  /** Events an iterated subscription (no handler) buffers (default 1 024); the oldest is dropped and counted beyond it. */
  bufferSize?: number;
}

/** Options of `Bus.publish` (or just the priority as a number). */
export interface PublishOptions {
  /** An integer 0–9 (default 5); anything else is `INVALID_PRIORITY`. */
  priority?: number;
  /** Dropped (counted as `expired`) when still queued after this many ms. */
  ttlMs?: number;
}

/** Counters per priority: arrays indexed by priority 0..9. */
export interface PriorityCounters {
  published: number[];
  dispatched: number[];
  /** Accepted events lost: evicted plus expired (as the total `dropped`). */
  dropped: number[];
  rejected: number[];
  skippedOpen: number[];
  queued: number[];
}

/** `Bus.metrics()`: totals and per-priority arrays (index = priority 0..9). */
export interface BusMetrics {
  published: number;
  delivered: number;
  /** Accepted events lost: `evicted + expired` (core's definition); `skippedOpen` and `rejected` are counted apart. */
  dropped: number;
  rejected: number;
  evicted: number;
  expired: number;
  skippedOpen: number;
  handlerErrors: number;
  unrouted: number;
  breakerTransitions: number;
  queued: number;
  /** Events dropped from full iteration buffers (`Subscription.overflowed`, summed). Absent on `CoreBus`. */
  iteratorOverflow?: number;
  byPriority: PriorityCounters;
}

/** A breaker state as transition events name it. */
export type TransitionState = 'closed' | 'open' | 'halfOpen' | 'forcedOpen' | 'disabled';

/** What `Bus.on('open' | 'halfOpen' | 'close', listener)` listeners receive. */
export interface BreakerTransition {
  /** The subscription whose breaker changed. */
  subscription: number;
  from: TransitionState;
  to: TransitionState;
  /** When (ms since the epoch). */
  at: number;
}

/** The breaker transition events of a `Bus`. */
export type BreakerEvent = 'open' | 'halfOpen' | 'close';

// ---------------------------------------------------------------------------
// Bus

/**
 * One subscription. Iterate it (`for await (const e of sub)`) when it was made
 * without a handler; breaking out of the loop unsubscribes.
 */
export class Subscription<T = unknown> implements AsyncIterable<BusEvent<T>> {
  private constructor();
  /** The subscription id (ascending in subscription order, which is the delivery order). */
  readonly id: number;
  /** The pattern it was made with. */
  readonly pattern: string;
  /** Events dropped from the iteration buffer because it was full. */
  readonly overflowed: number;
  /** Removes the subscription; `false` if it was already gone. */
  unsubscribe(): boolean;
  /** The id. */
  valueOf(): number;
  /** The id. */
  toJSON(): number;
  [Symbol.dispose](): void;
  /** The events of a subscription made without a handler; throws `INVALID_STATE` when it has one. */
  [Symbol.asyncIterator](): AsyncIterableIterator<BusEvent<T>>;
}

/**
 * A priority event bus: subscribe by pattern (`*` one token, `>` the rest),
 * publish, and handlers run in a microtask after the current synchronous code, most urgent first,
 * FIFO within a priority, each subscription behind its own circuit breaker.
 * Routing and breaker decisions are core's (wasm); the per-event loop runs in JS.
 */
export class Bus {
  /** `new Bus({ capacity?, breaker?, routeCache?, onError?, autoDrain?, handlerTimeoutMs? })`; `INVALID_ARGUMENT` for an option of the wrong type or range. */
  constructor(options?: BusOptions);
  /** Calls `handler` for events on topics matching `pattern` (`INVALID_PATTERN` if bad). */
  subscribe<T = unknown>(pattern: string, handler: Handler<T>, options?: SubscribeOptions): Subscription<T>;
  /** A subscription to iterate with `for await`. */
  subscribe<T = unknown>(pattern: string, options?: SubscribeOptions): Subscription<T>;
  /** Removes a subscription (or the one with this id); `false` if it did not exist. */
  unsubscribe(subscription: Subscription<unknown> | number): boolean;
  /** Queues an event; returns its id. `options` is `{ priority = 5, ttlMs }` or just the priority. */
  publish<T = unknown>(topic: string, payload: T, options?: PublishOptions | number): number;
  /** Queues one event per element of `payloads`, all on `topic` with one priority; returns how many were queued. */
  publishBatch<T = unknown>(topic: string, payloads: readonly T[], priority?: number): number;
  /** Queues an encoded envelope, routed on its header only: the handler's `payload` is the envelope's bytes. Returns its id. */
  publishEnvelope(bytes: Uint8Array): number | bigint;
  /** Delivers up to `max` queued events now (all when omitted); returns the number of handler calls. */
  drain(max?: number): number;
  /** Listens to breaker transitions. */
  on(event: BreakerEvent, listener: (transition: BreakerTransition) => void): this;
  /** Stops a listener added with `on`. */
  off(event: BreakerEvent, listener: (transition: BreakerTransition) => void): this;
  /** Sets (or clears, with `null`) the callback that hears handler failures. */
  onError(callback?: BusErrorCallback | null): void;
  /** The breaker of a subscription, or `null`. */
  breakerState(subscription: Subscription<unknown> | number): BreakerStateInfo | null;
  /** Counters: totals, per-priority arrays and the queue depth. */
  metrics(): BusMetrics;
  /** Events waiting for delivery. */
  readonly queued: number;
  /** Number of live subscriptions. */
  readonly subscriptionCount: number;
  /** Releases the wasm parts now; later calls throw `FREED`. Twice is harmless. Called by a handler, the drain stops after that handler. */
  free(): void;
  [Symbol.dispose](): void;
}

/** Wildcard routing alone: `match(topic)` returns the values whose patterns match, in the order they were added. */
export class Router<V = unknown> {
  /** `cacheSize`: topics whose answers are cached (default 4 096, at least 16; not a non-negative finite number: `INVALID_ARGUMENT`). */
  constructor(options?: { cacheSize?: number });
  /** Adds `pattern` (`INVALID_PATTERN` if bad); returns its id. */
  add(pattern: string, value: V): number;
  /** Removes what `add` returned `id` for; `false` if unknown. */
  remove(id: number): boolean;
  /** The values whose patterns match `topic` (`INVALID_TOPIC` if bad). Do not modify the array. */
  match(topic: string): readonly V[];
  /** Number of patterns. */
  readonly size: number;
  /** Releases the wasm router. */
  free(): void;
}

/**
 * core's own bus, entirely in wasm (queue, routing, breakers): the reference
 * the JS `Bus` is tested against. Handlers run at `drain()`; `subscribe` returns a numeric id.
 */
export class CoreBus {
  constructor(options?: Omit<BusOptions, 'autoDrain'>);
  subscribe<T = unknown>(pattern: string, handler: (event: BusEvent<T>) => void, options?: { once?: boolean }): number;
  unsubscribe(id: number): boolean;
  publish<T = unknown>(topic: string, payload: T, options?: PublishOptions | number): number;
  publishBatch<T = unknown>(topic: string, payloads: readonly T[], priority?: number): number;
  publishEnvelope(bytes: Uint8Array): number;
  drain(max?: number): number;
  onError(callback?: BusErrorCallback | null): void;
  breakerState(id: number): BreakerStateInfo | null;
  metrics(): BusMetrics;
  readonly queued: number;
  readonly subscriptionCount: number;
  free(): void;
  [Symbol.dispose](): void;
}

/** Internal: core's router as `Bus` and `Router` ask it (once per new topic). */
export class RouterCore {
  constructor();
  subscribe(pattern: string): number;
  unsubscribe(id: number): boolean;
  route(topic: string): Uint32Array;
  /** Writes the ids into wasm memory; returns `wordOffset * 2 ** 21 + count`. */
  routeInto(topic: string): number;
  /** The module's memory (what `routeInto` wrote is read from it). */
  static memory(): WebAssembly.Memory;
  readonly generation: number;
  free(): void;
  [Symbol.dispose](): void;
}

/** Internal: core's breakers of one `Bus`, one per subscription. */
export class BreakerSet {
  constructor(options?: BreakerOptions);
  add(id: number): void;
  remove(id: number): void;
  isFast(id: number): boolean;
  acquire(id: number, now: number, priority: number): number;
  settle(handle: number, ok: boolean, now: number): number;
  failFast(id: number, now: number, priority: number): number;
  takeTransitions(): Array<number | string>;
  state(id: number): BreakerStateInfo | null;
  readonly outstanding: number;
  free(): void;
  [Symbol.dispose](): void;
}

// ---------------------------------------------------------------------------
// Messenger

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
  /** Envelope bytes kept while disconnected (default 4 MiB); bounded like `offlineCapacity` (a priority ≥ 8 event that does not fit throws `QUEUE_FULL`). */
  offlineBytes?: number;
  /** First reconnect delay (default 100 ms), doubling up to `maxBackoffMs`, with jitter. */
  backoffMs?: number;
  /** Longest reconnect delay (default 10 000 ms). */
  maxBackoffMs?: number;
  /** How long `connect()` keeps retrying before it rejects with `UNAVAILABLE` (default 10 000 ms). */
  connectTimeoutMs?: number;
  /** Ping period while connected (default 15 000 ms); an unanswered ping means a dead connection. 0: no pings. */
  pingIntervalMs?: number;
  /** How long `subscribe` and `refreshToken` wait for the bridge's answer before rejecting with `TIMEOUT` (default 5 000 ms). */
  requestTimeoutMs?: number;
  /** Hand remote events to the bus as they arrive (default true); otherwise they wait for `bus.drain()`. */
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

/** What `Messenger.connect` resolves with. */
export interface MessengerSession {
  /** This connection's id at the bridge (in its logs). */
  session: number | bigint;
  /** The bridge's protocol version. */
  version: number;
}

/** Connects a `Bus` (or a `CoreBus`) to a swarmbus bridge over a WebSocket. */
export class Messenger {
  /** `new Messenger(bus, { forward?, subscribe?, offlineCapacity?, backoffMs?, ..., WebSocket?, onError?, onState? })`. */
  constructor(bus: Bus | CoreBus, options?: MessengerOptions);
  /**
   * Opens the connection to `url` (e.g. `ws://127.0.0.1:8080/ws`). Resolves with
   * the session once the bridge welcomes us; rejects with `UNAVAILABLE` after
   * `connectTimeoutMs`, or at once with the bridge's code for a refused token.
   */
  connect(url: string, options?: ConnectOptions): Promise<MessengerSession>;
  /**
   * Receives remote events on topics matching `pattern` (kept across
   * reconnects). Resolves when the bridge acknowledged it (after the next
   * welcome when not connected); rejects with the bridge's code (`FORBIDDEN`,
   * `INVALID_PATTERN`, …) or `CLOSED`. Not awaiting it is safe: a refusal also
   * reaches `onError` and is never an unhandled rejection.
   */
  subscribe(pattern: string): Promise<void>;
  /**
   * A pattern declared once (a `Messenger` of a JS `Bus`): also subscribes
   * `handler` on the bus, so it hears remote and local events; resolves with
   * that `Subscription` once the bridge acknowledged the pattern. The pattern
   * stays subscribed at the bridge while a handler of it does (or while it was
   * also subscribed without one): unsubscribing the last, or a `once` that
   * fired, unsubscribes it there too. A `Messenger` of a `CoreBus` throws
   * `INVALID_ARGUMENT` (subscribe the handler on the `CoreBus` instead).
   */
  subscribe<T = unknown>(pattern: string, handler: Handler<T>, options?: SubscribeOptions): Promise<Subscription<T>>;
  /**
   * Replaces the token for every later hello and, when connected, on the
   * current connection (before the bridge closes it at the old token's
   * expiry). Resolves when the bridge accepted it (at once when not
   * connected); rejects with the bridge's code (`INVALID_TOKEN`, …),
   * `TIMEOUT`, `DISCONNECTED` or `CLOSED`.
   */
  refreshToken(token: string): Promise<void>;
  /** Resolves when everything forwarded so far has reached the bridge; rejects with `CLOSED` if the messenger closes first. */
  flush(): Promise<void>;
  /**
   * Stops receiving remote events for `pattern` and removes the bus handlers
   * `subscribe(pattern, handler)` added for it; `false` if there was neither.
   * A `subscribe` promise of it not sent yet rejects with `CANCELLED`; one
   * already sent settles with the bridge's answer.
   */
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
  /**
   * Closes the connection for good (no reconnect). Local publishes are no
   * longer forwarded (until a later `connect`); the bus still delivers them.
   */
  close(): void;
  /** Releases the wasm memory now; later calls throw `FREED`. */
  free(): void;
  [Symbol.dispose](): void;
}
