/* tslint:disable */
/* eslint-disable */

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



/**
 * One core breaker per subscription, for the JS `Bus`.
 *
 * **Fast path**: a breaker that is Closed with no failure since its last
 * success, and has no failure-rate window, is left unchanged by a successful
 * call. The JS side skips `acquire` and `settle` for it and only calls
 * `failFast` when such a call fails. Every answer carries the `FAST` bit so
 * the JS side learns when a breaker leaves or re-enters the fast path.
 */
export class BreakerSet {
    free(): void;
    [Symbol.dispose](): void;
    /**
     * Asks `id`'s breaker to admit a call of `priority` at `now`: `-1` when
     * refused, else `handle << 2 | FAST | TRANSITIONED` where `handle` goes
     * back to [`settle`](Self::settle).
     */
    acquire(id: number, now: number, priority: number): number;
    /**
     * Gives subscription `id` a closed breaker.
     */
    add(id: number): void;
    /**
     * A call made on the fast path failed: admit and fail it in one step
     * (the breaker was Closed, so the permit is the one the call had).
     */
    failFast(id: number, now: number, priority: number): number;
    /**
     * True when a success would leave `id`'s breaker unchanged (see the type's docs).
     */
    isFast(id: number): boolean;
    /**
     * Breakers with `options` (`BreakerOptions`; `undefined` for the defaults).
     */
    constructor(options: any);
    /**
     * Forgets subscription `id`'s breaker.
     */
    remove(id: number): void;
    /**
     * Records the outcome of the call admitted with `handle`; returns `FAST | TRANSITIONED` bits.
     */
    settle(handle: number, ok: boolean, now: number): number;
    /**
     * `id`'s breaker as `Bus.breakerState` shows it, or `null`.
     */
    state(id: number): BreakerStateInfo | null;
    /**
     * The transitions since the last call, as `[id, from, to, atMs, ...]` flattened
     * (`from`/`to`: `closed`, `open`, `halfOpen`, `forcedOpen`, `disabled`).
     */
    takeTransitions(): Array<any>;
    /**
     * Permits handed out and not settled yet (async handlers still running).
     */
    readonly outstanding: number;
}

/**
 * A priority event bus: subscribe by pattern, publish, then `drain` to dispatch.
 *
 * Publishing from inside a handler is allowed: the event is queued after the
 * current `drain` finishes its loop (still bounded by `capacity`).
 */
export class Bus {
    free(): void;
    [Symbol.dispose](): void;
    /**
     * The breaker of a subscription: `{state, consecutiveFailures, ...}`, or `null`.
     */
    breakerState(id: number): BreakerStateInfo | null;
    /**
     * Dispatches up to `max` queued events (all when omitted), most urgent
     * first; returns the number of handler calls. Handler errors do not throw.
     */
    drain(max?: number | null): number;
    /**
     * Counters: totals, per-priority arrays (index = priority) and the queue depth.
     */
    metrics(): BusMetrics;
    /**
     * `new Bus({capacity?, breaker?, routeCache?, onError?})`. `breaker` takes
     * `{failureThreshold, openMs, halfOpenProbes, bypassPriority, failureRate, backoff}`
     * or `false` for no breakers; `onError(error, subscriptionId, event)` hears handler errors.
     */
    constructor(options: BusOptions | undefined);
    /**
     * Sets (or clears, with `null`) the callback that hears handler errors.
     */
    onError(callback?: Function | null): void;
    /**
     * Queues one event per element of `payloads`, all on `topic` with one
     * `priority`; returns how many were queued. Stops at the first error and
     * throws it (earlier events stay queued).
     */
    publishBatch(topic: string, payloads: unknown[], priority: number | undefined): number;
    /**
     * Queues an encoded envelope, routed on its header only: the handler's
     * `payload` is the envelope's bytes, undecoded. Returns the envelope id.
     */
    publishEnvelope(bytes: Uint8Array): number;
    /**
     * Queues an event; returns its id. `options` is `{priority = 5, ttlMs}`
     * or just the priority as a number.
     */
    publish(topic: string, payload: any, options: { priority?: number, ttlMs?: number } | number | undefined): number;
    /**
     * Calls `handler({id, topic, priority, timestamp, payload})` for events on
     * topics matching `pattern`; returns the subscription id. `{once: true}`
     * removes it after the first call.
     */
    subscribe(pattern: string, handler: (event: BusEvent) => void, options: { once?: boolean } | undefined): number;
    /**
     * Removes a subscription; `false` if it did not exist.
     */
    unsubscribe(id: number): boolean;
    /**
     * Events waiting for `drain`.
     */
    readonly queued: number;
    /**
     * Number of live subscriptions.
     */
    readonly subscriptionCount: number;
}

/**
 * A circuit breaker around any function. Its state serializes with
 * `toJSON()` and comes back with `CircuitBreaker.fromJSON()`, so a serverless
 * worker can keep it between requests.
 */
export class CircuitBreaker {
    free(): void;
    [Symbol.dispose](): void;
    /**
     * Lets every call through and records nothing until `reset()`.
     */
    disable(): void;
    /**
     * Opens the circuit until `reset()`.
     */
    forceOpen(): void;
    /**
     * Restores a breaker saved with `toJSON()` (the object, or its JSON string).
     */
    static fromJSON(saved: any): CircuitBreaker;
    /**
     * The state with its details: `{state, consecutiveFailures, sinceMs?, waitMs?, ...}`.
     */
    info(): BreakerStateInfo;
    /**
     * `new CircuitBreaker({failureThreshold = 5, openMs = 30000, halfOpenProbes = 3,
     * bypassPriority = 8, failureRate?, backoff?})`.
     */
    constructor(options: BreakerOptions | undefined);
    /**
     * Closes the circuit and forgets failures.
     */
    reset(): void;
    /**
     * Calls `fn()` if the breaker admits it and records the outcome. Returns a
     * promise of `fn`'s result (awaited when `fn` returns a promise); rejects
     * with code `CIRCUIT_OPEN` without calling `fn` when the circuit is open.
     */
    run(f: () => unknown, options: { priority?: number } | undefined): Promise<any>;
    /**
     * The whole breaker (settings and state) as a plain JSON-safe object.
     */
    toJSON(): any;
    /**
     * The state name: `closed`, `open`, `half-open`, `forced-open` or `disabled`.
     */
    readonly state: string;
}

/**
 * Connects a `Bus` to a swarmbus bridge.
 *
 * ```js
 * const messenger = new Messenger(bus, { forward: ['agents.>'], subscribe: ['swarm.>'] });
 * await messenger.connect('ws://127.0.0.1:8080/ws', { token });
 * bus.publish('agents.a1.status', { ok: true }); // also sent to the bridge
 * ```
 */
export class Messenger {
    free(): void;
    [Symbol.dispose](): void;
    /**
     * Closes the connection for good (no reconnect); queued offline events stay
     * queued. Local publishes are no longer forwarded (until the next `connect`);
     * the bus still delivers them locally.
     */
    close(): void;
    /**
     * Opens the connection to `url` (e.g. `ws://127.0.0.1:8080/ws`) with an
     * optional `{token}` (without one, the last token given to `connect` or
     * `refreshToken` is sent). Resolves with the session (`{session, version}`)
     * once the bridge welcomes us; retries with
     * backoff until `connectTimeoutMs`, then rejects with `UNAVAILABLE`. A
     * refused token rejects at once (`AUTH_REQUIRED`, `TOKEN_EXPIRED`, `INVALID_TOKEN`).
     */
    connect(url: string, options: { token?: string } | undefined): Promise<any>;
    /**
     * Resolves when everything forwarded so far has reached the bridge (the
     * bridge answered a ping sent after it; frames are handled in order).
     * While disconnected it waits for the next connection; rejects with
     * `CLOSED` when the messenger closes first.
     */
    flush(): Promise<any>;
    /**
     * Also sends local publishes on topics matching `pattern` to the bridge.
     */
    forward(pattern: string): void;
    /**
     * `new Messenger(bus, {forward?, subscribe?, offlineCapacity = 1024, offlineBytes = 4 MiB,
     * backoffMs = 100, maxBackoffMs = 10000, connectTimeoutMs = 10000, pingIntervalMs = 15000,
     * requestTimeoutMs = 5000, autoDrain = true, WebSocket?, onError?, onState?})`.
     * A ping unanswered for `pingIntervalMs` counts as a dead connection and
     * reconnects (0 turns pings off).
     * `forward`: patterns of local publishes sent to the bridge; `subscribe`: patterns
     * of remote events delivered into `bus`. `WebSocket` is the constructor to use
     * (default `globalThis.WebSocket`; pass the `ws` package's on Node 20).
     */
    constructor(bus: Bus, options: MessengerOptions | undefined);
    /**
     * Sets (or clears) the callback hearing errors: refused frames, undecodable events.
     */
    onError(callback?: Function | null): void;
    /**
     * Sets (or clears) the callback hearing state changes (`'open'`, `'reconnecting'`, ...).
     */
    onState(callback?: Function | null): void;
    /**
     * Replaces the token: for every later hello and, when connected, on the
     * current connection too (before the bridge closes it at the old token's
     * expiry). Resolves when the bridge accepted it (at once when not
     * connected), rejects with the bridge's code (`INVALID_TOKEN`, ...),
     * `TIMEOUT`, `DISCONNECTED` or `CLOSED`.
     */
    refreshToken(token: string): Promise<any>;
    /**
     * Reports counters this client measured to the bridge, cumulative for the
     * connection: events handled on the wasm path and on a plain-JS path. The
     * bridge exports them as `swarmbus_client_events_total{kind, path}`.
     * `kind` is 1–32 of `a-z 0-9 _ -`. Returns `false` when not connected.
     */
    report(kind: string, wasm: number, js: number): boolean;
    /**
     * Counters: `{sent, received, echoes, queued, dropped, droppedByPriority, reconnects, errors}`.
     */
    stats(): MessengerStats;
    /**
     * Stops forwarding `pattern`; `false` if it was not forwarded.
     */
    stopForwarding(pattern: string): boolean;
    /**
     * Receives remote events on topics matching `pattern` (kept across
     * reconnects). The promise resolves when the bridge has acknowledged the
     * subscription (at the next welcome when not connected) and rejects with
     * the bridge's code (`FORBIDDEN`, `INVALID_PATTERN`, ...), which also
     * reaches `onError`; a refused pattern is not sent again. `TIMEOUT` when
     * no answer came within `requestTimeoutMs`, `CLOSED` when the messenger
     * closes first. (Unawaited, a refusal is not an unhandled rejection: the
     * package marks the promise handled.)
     */
    subscribe(pattern: string): Promise<any>;
    /**
     * Stops receiving remote events for `pattern`; `false` if not subscribed.
     */
    unsubscribe(pattern: string): boolean;
    /**
     * `'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'`.
     */
    readonly state: 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';
}

/**
 * core's router without its route cache: the JS side keeps the cache (a `Map`
 * cleared on every subscribe and unsubscribe, the generation counter's job).
 */
export class RouterCore {
    free(): void;
    [Symbol.dispose](): void;
    /**
     * The module's `WebAssembly.Memory`, to read what [`route_into`](Self::route_into) wrote.
     */
    static memory(): any;
    /**
     * An empty router.
     */
    constructor();
    /**
     * Validates `topic` (`INVALID_TOPIC`) and writes the ids it reaches, in
     * delivery order, into wasm memory; returns `offset * 2^21 + count`
     * where `offset` is the 4-byte word index of the first id (one call
     * answers both; exact in an f64: offset < 2^30, count < 2^21). No
     * allocation per call: the hot path of a route-cache miss.
     */
    routeInto(topic: string): number;
    /**
     * Validates `topic` (`INVALID_TOPIC`) and returns the ids it reaches, in delivery order.
     */
    route(topic: string): Uint32Array;
    /**
     * Adds `pattern`; returns its subscription id (ascending: the delivery order).
     */
    subscribe(pattern: string): number;
    /**
     * Removes a subscription; `false` if it did not exist.
     */
    unsubscribe(id: number): boolean;
    /**
     * Bumped by every subscribe and unsubscribe.
     */
    readonly generation: number;
}

/**
 * A versioned document store. Values are JSON-compatible (objects, arrays,
 * strings, numbers, booleans, null) and nest at most 128 levels (core's
 * `MAX_DEPTH`).
 *
 * Every method converts its JS arguments before it borrows the store, so a
 * getter or `toJSON` that calls back into the same store works, and one that
 * throws leaves it untouched (`INVALID_ARGUMENT`).
 */
export class StateStore {
    free(): void;
    [Symbol.dispose](): void;
    /**
     * Applies a patch from `diff`; returns the new version. The whole patch
     * nests at most 128 levels (its values at most 3 fewer).
     */
    apply(patch: Patch): number;
    /**
     * Sets `key` only if its version is `expectedVersion` (0: absent);
     * throws `VERSION_CONFLICT` otherwise. Returns the new version.
     */
    compareAndSet(key: string, expected_version: number, value: any): number;
    /**
     * Removes `key`; returns whether it existed.
     */
    delete(key: string): boolean;
    /**
     * The patch from snapshot `fromId` to snapshot `toId`:
     * `{fromVersion, toVersion, ops: [{op: 'set', key, value} | {op: 'delete', key}]}`.
     */
    diff(from_id: number, to_id: number): Patch;
    /**
     * A store holding a state written by `toBytes()` (empty history).
     */
    static fromBytes(bytes: Uint8Array | number[]): StateStore;
    /**
     * The value of `key`, or `undefined`.
     */
    get(key: string): any;
    /**
     * The version that last wrote `key` (0 when absent).
     */
    keyVersion(key: string): number;
    /**
     * The keys, in order.
     */
    keys(): string[];
    /**
     * Merges `patch` into `key` (JSON merge patch, RFC 7396); returns the new version.
     */
    merge(key: string, patch: any): number;
    /**
     * An empty store at version 0 keeping the last `history` snapshots (default 10).
     */
    constructor(history?: number | null);
    /**
     * Returns to snapshot `id`; returns the new version.
     */
    restore(id: number): number;
    /**
     * Sets `key`; returns the new version.
     */
    set(key: string, value: any): number;
    /**
     * Records the current state in O(1); returns the snapshot id.
     */
    snapshot(label?: string | null): number;
    /**
     * The kept snapshots, oldest first: `[{id, label, version, keys}]`.
     */
    snapshots(): SnapshotInfo[];
    /**
     * The current state as MessagePack.
     */
    toBytes(): Uint8Array;
    /**
     * The store's version.
     */
    readonly version: number;
}

/**
 * Decodes MessagePack into plain JS values: maps become objects, bin becomes
 * `Uint8Array`, integers beyond ±2^53 become `BigInt`.
 */
export function decode(bytes: Uint8Array | number[]): any;

/**
 * Decodes an envelope; `payload` is a `Uint8Array`, optional fields are omitted when absent.
 */
export function decodeEnvelope(bytes: Uint8Array | number[]): DecodedEnvelope;

/**
 * Encodes any JSON-compatible value as MessagePack, plus `Uint8Array` /
 * `ArrayBuffer` (bin), `BigInt` (64-bit integers), `Map`, `NaN` and ±`Infinity`.
 * `undefined` becomes nil and `toJSON()` is honoured, as in `JSON.stringify`.
 * A cycle, nesting deeper than 128 levels, a function or a throwing getter is
 * `INVALID_ARGUMENT`.
 */
export function encode(value: any): Uint8Array;

/**
 * Encodes an envelope. `payload` is sent as is when it is a `Uint8Array` and
 * MessagePack-encoded otherwise; `id` defaults to a per-instance counter,
 * `priority` to 5, the timestamp is `Date.now()`.
 */
export function encodeEnvelope(input: EnvelopeInput): Uint8Array;

/**
 * `{wasmBytes, liveAllocations, liveBytes}`: the size of linear memory and
 * what the allocator holds (counted by a wrapper around the system allocator).
 */
export function memoryStats(): MemoryStats;

/**
 * Reads `{id, topic, priority}` without decoding the rest of the envelope:
 * only the envelope's first bytes cross into wasm, so the cost does not grow
 * with the payload.
 */
export function peekHeader(bytes: Uint8Array | number[]): EnvelopeHeader;

/**
 * Installs the panic hook, so a bug shows a readable message instead of `unreachable`.
 */
export function start(): void;

/**
 * The package version.
 */
export function version(): string;

