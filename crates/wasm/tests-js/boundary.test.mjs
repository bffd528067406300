// The unbreakable boundary (issue 11, item 4): no JS exception ever unwinds
// through Rust. Before the guard, a throwing getter, Proxy or toJSON reached
// from Rust left objects borrowed for good, threw errors without `.code`, and
// after 1,600–7,300 throws broke the whole module ("memory access out of
// bounds"); a 10,000-deep value overflowed the wasm stack. Here every entry
// point takes SWARMBUS_BOUNDARY_THROWS (default 100,000) throws, then every
// object must still work and the allocator must be back at its baseline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  encode, decode, encodeEnvelope, decodeEnvelope, peekHeader, StateStore, CircuitBreaker, memoryStats,
} from 'swarmbus/node';

const THROWS = Number(process.env.SWARMBUS_BOUNDARY_THROWS ?? 100_000);

const boom = () => { throw new Error('boom'); };
/** A Proxy whose every trap throws. */
const trap = (target = {}) => new Proxy(target, {
  get: boom, has: boom, ownKeys: boom, getOwnPropertyDescriptor: boom, getPrototypeOf: boom,
});
/** Values whose reading throws: a getter, a Proxy, toJSON, deep inside, beside bytes (the exact path). */
const HOSTILE_VALUES = [
  { get x() { boom(); } },
  trap(),
  trap([1, 2]),
  { toJSON: boom },
  { a: [1, { get b() { boom(); } }] },
  { bytes: new Uint8Array(2), get x() { boom(); } },
  [new Map([[1, 2]]), trap()],
  new Map([['k', { get v() { boom(); } }]]),
  { n: 10n, deep: { get x() { boom(); } } },
];
/** Byte inputs whose reading throws. */
const HOSTILE_BYTES = [
  trap(new Uint8Array(4)),
  trap([1, 2]),
  [1, 2, { valueOf: boom }],
  new Proxy([0x91, 0xc0], { get: (t, k) => (k === 'length' ? 2 : boom()) }),
];
/** Options objects whose reading throws. */
const HOSTILE_OPTIONS = [
  { get failureThreshold() { boom(); } },
  { get priority() { boom(); } },
  trap(),
  { failureRate: trap() },
];

/**
 * THE shared helper: calls `entry(input)` `rounds` times, cycling through
 * `inputs`; every call must throw (or reject with) an Error whose `.code` is
 * `code`. Returns how many threw. Bus and Messenger cases use it too (below).
 */
export async function throwsThrough(name, entry, inputs, code = 'INVALID_ARGUMENT', rounds = THROWS) {
  let threw = 0;
  for (let i = 0; i < rounds; i++) {
    const input = inputs[i % inputs.length];
    let error;
    try {
      const result = entry(input);
      if (result instanceof Promise) await result;
    } catch (e) {
      error = e;
    }
    if (!(error instanceof Error) || error.code !== code) {
      assert.fail(`${name} with input #${i % inputs.length}: expected ${code}, got ${error?.code ?? error} (${error?.message})`);
    }
    threw++;
  }
  return threw;
}

/** Lets pending promise jobs and wasm-bindgen-futures tasks finish (their Rust state is freed then). */
const settle = () => new Promise((resolve) => setImmediate(resolve));

/** Every object still does its job. */
function assertUsable(store, breaker) {
  const v = store.set('k', { list: [1, 2, 3], n: 2 ** 60 });
  assert.deepEqual(store.get('k'), { list: [1, 2, 3], n: 2 ** 60 });
  const a = store.snapshot();
  store.merge('k', { n: 1 });
  const b = store.snapshot();
  assert.equal(store.diff(a, b).ops.length, 1);
  const copy = StateStore.fromBytes(store.toBytes());
  assert.deepEqual(copy.get('k'), { list: [1, 2, 3], n: 1 });
  copy.free(); // not left to the garbage collector: the baseline is exact
  assert.equal(store.version, v + 1);
  assert.deepEqual(decode(encode({ a: [1, 'x', null], b: new Uint8Array([7]) })), { a: [1, 'x', null], b: new Uint8Array([7]) });
  const env = encodeEnvelope({ topic: 'a.b', payload: { ok: true }, priority: 7 });
  assert.equal(decodeEnvelope(env).priority, 7);
  assert.equal(peekHeader(env).topic, 'a.b');
  assert.equal(breaker.state, 'closed');
  return breaker.run(() => 42).then((r) => assert.equal(r, 42));
}

/** Every entry point this file covers, `rounds` throws each; returns the count. */
async function throwEverywhere(store, breaker, rounds) {
  const cases = [
    ['encode', (v) => encode(v), HOSTILE_VALUES],
    ['encodeEnvelope payload', (v) => encodeEnvelope({ topic: 'a.b', payload: v }), HOSTILE_VALUES],
    ['encodeEnvelope input', (v) => encodeEnvelope(v), [
      ...HOSTILE_VALUES.slice(0, 3), { topic: 'a.b', get payload() { boom(); } },
      { topic: trap(), payload: 1 }, { topic: 'a.b', payload: 1, sender: trap() }, { topic: 'a.b', payload: 1, id: trap([]) },
    ]],
    ['decode', (b) => decode(b), HOSTILE_BYTES],
    ['decodeEnvelope', (b) => decodeEnvelope(b), HOSTILE_BYTES],
    ['peekHeader', (b) => peekHeader(b), HOSTILE_BYTES],
    ['StateStore.set', (v) => store.set('k', v), HOSTILE_VALUES],
    ['StateStore.merge', (v) => store.merge('k', v), HOSTILE_VALUES],
    ['StateStore.compareAndSet', (v) => store.compareAndSet('k', store.keyVersion('k'), v), HOSTILE_VALUES],
    ['StateStore.apply', (v) => store.apply(v), [...HOSTILE_VALUES, { fromVersion: 0, toVersion: 1, ops: [{ op: 'set', key: 'k', value: trap() }] }]],
    ['StateStore.fromBytes', (b) => StateStore.fromBytes(b), HOSTILE_BYTES],
    ['StateStore keys', (k) => store.get(k) ?? store.set(k, 1), [['k'], { length: 2, charCodeAt: boom }, 7]],
    ['StateStore.snapshot label', (label) => store.snapshot(label), [['x'], { length: 2, charCodeAt: boom }]],
    ['new CircuitBreaker', (o) => new CircuitBreaker(o), HOSTILE_OPTIONS],
    ['CircuitBreaker.fromJSON', (o) => CircuitBreaker.fromJSON(o), HOSTILE_OPTIONS],
    ['CircuitBreaker.run options', (o) => breaker.run(() => 1, o), [{ get priority() { boom(); } }, trap()]],
  ];
  let total = 0;
  for (const [name, entry, inputs] of cases) total += await throwsThrough(name, entry, inputs, 'INVALID_ARGUMENT', rounds);
  assert.equal(total, cases.length * rounds);

  // What the wrapped function throws is its own error, handed back untouched.
  const own = new Error('own');
  for (let i = 0; i < rounds / 10; i++) await assert.rejects(breaker.run(() => { throw own; }), (e) => e === own);
  // A returned promise whose own `then` throws rejects; that `then` never runs from Rust.
  const badThen = Promise.resolve(1);
  badThen.then = boom;
  await assert.rejects(breaker.run(() => badThen), /boom/);

  // --- Bus / Messenger cases (H4): add them here with throwsThrough(name, entry, inputs, code, rounds).

  return total;
}

test(`${THROWS} throws through every entry point leave every object usable and memory at baseline`, async () => {
  const store = new StateStore(2); // two snapshots kept: assertUsable leaves the same state each time
  const breaker = new CircuitBreaker({ failureThreshold: 1e9 });
  // Warm-up: every path once, so caches and the allocator reach their steady state.
  await assertUsable(store, breaker);
  await throwEverywhere(store, breaker, Math.min(THROWS, 1000));
  await assertUsable(store, breaker);
  await settle();
  memoryStats(); // its first call caches its field names (serde-wasm-bindgen interns them): 208 B
  const before = memoryStats();

  await throwEverywhere(store, breaker, THROWS);

  await assertUsable(store, breaker);
  await settle();
  const after = memoryStats();
  assert.equal(after.liveAllocations, before.liveAllocations, 'live allocations back at baseline');
  assert.equal(after.liveBytes, before.liveBytes, 'live bytes back at baseline');
  store.free();
  breaker.free();
});

test('a getter or toJSON may call back into the same StateStore', () => {
  const store = new StateStore();
  store.set('other', 1);
  const value = { get x() { return store.get('other') + store.set('inner', 2); } };
  assert.equal(store.set('k', value), 3);
  assert.deepEqual(store.get('k'), { x: 3 });
  assert.equal(store.get('inner'), 2);
  store.free();
});

/** `[[[…0…]]]`, `depth` arrays deep, built without recursion. */
function deepArray(depth, leaf = 0) {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

test('values nested deeper than MAX_DEPTH are INVALID_ARGUMENT on every path, never a trap', () => {
  const store = new StateStore();
  assert.equal(store.set('ok', deepArray(128)), 1, 'MAX_DEPTH levels are fine');
  const parsed = JSON.parse('['.repeat(10_000) + ']'.repeat(10_000));
  for (const deep of [deepArray(129), parsed, deepArray(10_000), deepArray(100_000), deepArray(100_000, new Uint8Array(1))]) {
    const invalid = { code: 'INVALID_ARGUMENT' };
    assert.throws(() => encode(deep), invalid);
    assert.throws(() => store.set('k', deep), invalid);
    assert.throws(() => store.merge('k', { deep }), invalid);
    assert.throws(() => encodeEnvelope({ topic: 'a.b', payload: deep }), invalid);
    assert.throws(() => new CircuitBreaker({ failureRate: deep }), invalid);
    assert.throws(() => CircuitBreaker.fromJSON({ deep }), invalid);
  }
  const deepBytes = new Uint8Array(100_001).fill(0x91);
  deepBytes[100_000] = 0xc0;
  assert.throws(() => decode(deepBytes), { code: 'DECODE_ERROR' });
  assert.equal(store.version, 1);
  assert.equal(store.get('k'), undefined);
  assert.deepEqual(decode(encode(deepArray(128))), deepArray(128));
  store.free();
});

test('a priority that is not an integer 0–9 is INVALID_PRIORITY on every entry point', async () => {
  const breaker = new CircuitBreaker();
  for (const priority of [265, 10, -1, 3.5, '9', NaN, Infinity, {}, true]) {
    const code = { code: 'INVALID_PRIORITY' };
    assert.throws(() => encodeEnvelope({ topic: 'a.b', payload: 1, priority }), code, String(priority));
    await assert.rejects(breaker.run(() => 1, { priority }), code);
    assert.throws(() => new CircuitBreaker({ bypassPriority: priority }), code);
  }
  for (const priority of [0, 9]) {
    assert.equal(decodeEnvelope(encodeEnvelope({ topic: 'a.b', payload: 1, priority })).priority, priority);
    assert.equal(await breaker.run(() => priority, { priority }), priority);
  }
  assert.equal(decodeEnvelope(encodeEnvelope({ topic: 'a.b', payload: 1, priority: null })).priority, 5);
  assert.ok(new CircuitBreaker({ bypassPriority: null }));
  breaker.free();
});
