// The package as a user imports it: `swarmbus/node`. Run by `just test-js`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Bus, CircuitBreaker, StateStore, encode, decode, encodeEnvelope, decodeEnvelope, peekHeader,
  memoryStats, version,
} from 'swarmbus/node';

const code = (c) => (error) => error instanceof Error && error.code === c;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test('version is the crate version', () => {
  assert.match(version(), /^\d+\.\d+\.\d+$/);
});

test('encode/decode round-trip JSON values as plain objects', () => {
  const value = { a: [1, 2.5, -3, { b: null, c: 'ünïcødé 日本 🐝' }], t: true, f: false, e: {}, n: -0.000123 };
  const back = decode(encode(value));
  assert.deepEqual(back, value);
  assert.equal(Object.getPrototypeOf(back), Object.prototype);
  assert.equal(JSON.stringify(back), JSON.stringify(value));
});

test('decode keeps quotes, backslashes, control characters and floats exactly', () => {
  const value = {
    'k"\\\n': 'a"b\\c\n\r\t\u0001\u001f\u2028 end',
    floats: [0.1, 1e300, 5e-324, 123456.789, -2.5e-7],
    ints: [0, -1, 127, -33, 65536, -(2 ** 31), 2 ** 53 - 1, -(2 ** 53 - 1)],
    deep: { x: [{ y: 'z' }, []] },
  };
  const back = decode(encode(value));
  assert.deepStrictEqual(back, value);
  // A value JSON cannot carry takes the exact path for the whole value.
  const mixed = { before: ['x', 1.5], bin: new Uint8Array([7]), after: { s: 'q"' } };
  const out = decode(encode(mixed));
  assert.deepStrictEqual(out.before, mixed.before);
  assert.deepStrictEqual([...out.bin], [7]);
  assert.deepStrictEqual(out.after, mixed.after);
});

test('encode: undefined is null, non-finite numbers and Maps take the exact path, cycles are an error', () => {
  assert.deepStrictEqual(decode(encode({ a: undefined, b: [undefined, 1] })), { a: null, b: [null, 1] });
  const floats = decode(encode([NaN, Infinity, -Infinity, 0.5]));
  assert.ok(Number.isNaN(floats[0]));
  assert.deepStrictEqual(floats.slice(1), [Infinity, -Infinity, 0.5]);
  assert.deepStrictEqual(decode(encode(new Map([['k', 1]]))), { k: 1 });
  assert.equal(decode(encode({ at: new Date(0) })).at, '1970-01-01T00:00:00.000Z', 'toJSON is honoured');
  assert.deepStrictEqual(decode(encode({ big: 2 ** 60, small: -(2 ** 53) + 1 })), { big: 2 ** 60, small: -(2 ** 53) + 1 });
  const cyclic = { name: 'loop' };
  cyclic.self = cyclic;
  assert.throws(() => encode(cyclic), code('INVALID_ARGUMENT'));
  const throwing = { get boom() { throw new Error('getter'); } };
  assert.throws(() => encode(throwing), (e) => e.code === 'INVALID_ARGUMENT' && /getter/.test(e.message));
  assert.throws(() => encode({ f() {} }), code('INVALID_ARGUMENT'));
});

test('the exact paths: ext, non-UTF-8 strings, integer keys, __proto__, cycles with bytes, huge BigInt', () => {
  // {1: ext(5, [0xaa]), "s": str(0xff), "__proto__": bin([1])}
  const bytes = new Uint8Array([0x83, 0x01, 0xd4, 0x05, 0xaa, 0xa1, 0x73, 0xa1, 0xff, 0xa9, ...new TextEncoder().encode('__proto__'), 0xc4, 0x01, 0x01]);
  const out = decode(bytes);
  assert.deepStrictEqual(out[1][0], 5);
  assert.deepStrictEqual([...out[1][1]], [0xaa]);
  assert.ok(out.s instanceof Uint8Array, 'a str that is not UTF-8 comes back as bytes');
  assert.equal(Object.getPrototypeOf(out), Object.prototype, '__proto__ is an own property, not the prototype');
  assert.deepStrictEqual([...Object.getOwnPropertyDescriptor(out, '__proto__').value], [1]);
  assert.throws(() => decode(new Uint8Array([0x92, 0xc4, 0x01, 0x01])), code('DECODE_ERROR'), 'truncated after bytes');
  assert.throws(() => decode(new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff, 0xc4, 0x00])), code('DECODE_ERROR'));
  const cyclic = { bytes: new Uint8Array(1) };
  cyclic.self = cyclic;
  assert.throws(() => encode(cyclic), code('INVALID_ARGUMENT'), 'the depth limit stops a cycle on the exact path');
  assert.throws(() => encode(2n ** 70n), code('INVALID_ARGUMENT'));
  assert.throws(() => encode(new Int16Array(2)), code('INVALID_ARGUMENT'));
  assert.deepStrictEqual([...decode(encode(new Uint8Array([3, 4]).buffer))], [3, 4], 'an ArrayBuffer is bytes');
});

test('binary is Uint8Array, integers beyond 2^53 are BigInt', () => {
  const value = { bin: new Uint8Array([0, 1, 255]), big: 2n ** 60n, neg: -(2n ** 60n), safe: 2 ** 53 - 1 };
  const back = decode(encode(value));
  assert.ok(back.bin instanceof Uint8Array);
  assert.deepEqual([...back.bin], [0, 1, 255]);
  assert.equal(back.big, 2n ** 60n);
  assert.equal(back.neg, -(2n ** 60n));
  assert.equal(back.safe, 2 ** 53 - 1);
});

test('decode rejects garbage with DECODE_ERROR', () => {
  for (const bytes of [[0xc1], [0x92, 0x01], [0xdd, 0xff, 0xff, 0xff, 0xff], [0x01, 0x02], []]) {
    assert.throws(() => decode(new Uint8Array(bytes)), code('DECODE_ERROR'), String(bytes));
  }
  assert.throws(() => decode(new Uint8Array([0x92, 0x01])), /ends inside a value/);
  assert.throws(() => decode(new Uint8Array([0x01, 0x02])), /1 bytes after the end of the value/);
  const deep = new Uint8Array([...new Array(200).fill(0x91), 0x01]); // [[[...[1]...]]], 200 levels
  assert.throws(() => decode(deep), code('DECODE_ERROR'), 'depth limit');
  let nested = 1;
  for (let i = 0; i < 200; i++) nested = [nested];
  assert.throws(() => encode(nested), code('INVALID_ARGUMENT'), 'encode has the same depth limit');
});

test('envelopes: encode, decode, peek header', () => {
  const bytes = encodeEnvelope({ topic: 'swarm.alpha.task', priority: 6, payload: { job: 7 }, swarm: 'alpha', correlationId: 'c-1' });
  const env = decodeEnvelope(bytes);
  assert.equal(env.topic, 'swarm.alpha.task');
  assert.equal(env.priority, 6);
  assert.equal(env.swarm, 'alpha');
  assert.equal(env.correlationId, 'c-1');
  assert.equal(env.sender, undefined);
  assert.ok(Math.abs(env.timestamp - Date.now()) < 5_000);
  assert.deepEqual(env.payload, { job: 7 }, 'the payload comes back decoded: the pair is symmetric');
  assert.deepEqual(decode(decodeEnvelope(bytes, { raw: true }).payload), { job: 7 }, '{ raw: true }: its MessagePack bytes');
  assert.deepEqual(peekHeader(bytes), { id: env.id, topic: env.topic, priority: 6 });
  // A Uint8Array payload is sent as is; opaque bytes come back with { raw: true } only.
  const opaque = encodeEnvelope({ topic: 't', payload: new Uint8Array([9, 8]) });
  const raw = decodeEnvelope(opaque, { raw: true });
  assert.deepEqual([...raw.payload], [9, 8]);
  assert.throws(() => decodeEnvelope(opaque), code('DECODE_ERROR'));
  assert.equal(raw.priority, 5);
  assert.throws(() => encodeEnvelope({ topic: 'a..b', payload: 1 }), code('INVALID_TOPIC'));
  assert.throws(() => encodeEnvelope({ topic: 'a', payload: 1, priority: 11 }), code('INVALID_PRIORITY'));
  assert.throws(() => encodeEnvelope({ topic: 'a', payload: new Uint8Array(2 * 1024 * 1024) }), code('PAYLOAD_TOO_LARGE'));
  assert.throws(() => encodeEnvelope({ payload: 1 }), code('INVALID_ARGUMENT'));
  assert.throws(() => peekHeader(bytes.subarray(0, 5)), code('DECODE_ERROR'));
  assert.deepEqual(peekHeader([...bytes]), peekHeader(bytes), 'an array of numbers works too');
  assert.throws(() => peekHeader('not bytes'), code('INVALID_ARGUMENT'));
  const big = encodeEnvelope({ topic: 'a.b', priority: 9, payload: new Uint8Array(100_000) });
  assert.equal(peekHeader(big).priority, 9, 'only the prefix of a large envelope is read');
  const bus = new Bus();
  assert.throws(() => bus.publishEnvelope('not bytes'), code('INVALID_ARGUMENT'));
  bus.free();
  assert.throws(() => decodeEnvelope(bytes.subarray(0, bytes.length - 1)), code('DECODE_ERROR'));
});

test('bus: wildcards, priority order, FIFO within a priority', () => {
  const bus = new Bus();
  const seen = [];
  bus.subscribe('swarm.*.task', (e) => seen.push(['star', e.payload, e.priority, e.topic]));
  bus.subscribe('swarm.>', (e) => seen.push(['rest', e.payload]));
  bus.publish('swarm.a.task', 'low', { priority: 1 });
  bus.publish('swarm.b.task', 'first9', { priority: 9 });
  bus.publish('swarm.c.task', 'second9', { priority: 9 });
  bus.publish('other.a.task', 'nobody');
  assert.equal(bus.queued, 4);
  assert.equal(bus.drain(), 6);
  assert.deepEqual(seen, [
    ['star', 'first9', 9, 'swarm.b.task'], ['rest', 'first9'],
    ['star', 'second9', 9, 'swarm.c.task'], ['rest', 'second9'],
    ['star', 'low', 1, 'swarm.a.task'], ['rest', 'low'],
  ]);
  const m = bus.metrics();
  assert.equal(m.published, 4);
  assert.equal(m.delivered, 6);
  assert.equal(m.unrouted, 1);
  assert.equal(m.byPriority.published[9], 2);
  bus.free();
});

test('bus: handler event shape, once, unsubscribe, drain(max), publishBatch', () => {
  const bus = new Bus({ capacity: 100 });
  const events = [];
  const id = bus.subscribe('a.b', (e) => events.push(e), { once: true });
  const other = bus.subscribe('a.*', () => {});
  bus.publish('a.b', { x: 1 }, { priority: 7, ttlMs: 1000 });
  bus.publish('a.b', { x: 2 });
  assert.equal(bus.drain(1), 2);
  assert.equal(events.length, 1);
  assert.deepEqual(Object.keys(events[0]).sort(), ['id', 'payload', 'priority', 'timestamp', 'topic']);
  assert.deepEqual(events[0].payload, { x: 1 });
  assert.equal(bus.unsubscribe(id), false, 'once already removed it');
  assert.equal(bus.unsubscribe(other), true);
  assert.equal(bus.subscriptionCount, 0);
  assert.equal(bus.publishBatch('x.y', [1, 2, 3], 4), 3);
  assert.equal(bus.queued, 4);
  assert.throws(() => bus.publishBatch('x.*', [1]), code('INVALID_TOPIC'));
  bus.free();
});

test('bus: publishBatch payloads are taken at publish time, in order, with onError seeing them', () => {
  const errors = [];
  const bus = new Bus({ breaker: false, onError: (error, sub, event) => errors.push([error.message, event.payload]) });
  const seen = [];
  bus.subscribe('b.c', (e) => { seen.push([e.priority, e.payload]); if (e.payload === 'boom') throw new Error('bad'); });
  const batch = ['a', { k: 1 }, 'boom'];
  bus.publishBatch('b.c', batch, 2);
  batch[0] = 'changed';
  batch.length = 0;
  bus.publishBatch('b.c', [7, 8], 6);
  bus.publish('b.c', 'single', 4);
  assert.equal(bus.drain(), 6);
  assert.deepEqual(seen, [[6, 7], [6, 8], [4, 'single'], [2, 'a'], [2, { k: 1 }], [2, 'boom']]);
  assert.deepEqual(errors, [['bad', 'boom']]);
  bus.free();
});

test('bus: errors have codes', () => {
  const bus = new Bus({ capacity: 2 });
  assert.throws(() => bus.subscribe('a.>.b', () => {}), code('INVALID_PATTERN'));
  assert.throws(() => bus.subscribe('', () => {}), code('INVALID_PATTERN'));
  assert.throws(() => bus.publish('a.*', 1), code('INVALID_TOPIC'));
  assert.throws(() => bus.publish('a', 1, { priority: 10 }), code('INVALID_PRIORITY'));
  assert.throws(() => new Bus({ capacity: 'many' }), code('INVALID_ARGUMENT'));
  bus.publish('a', 1, { priority: 3 });
  bus.publish('a', 2, { priority: 3 });
  assert.throws(() => bus.publish('a', 3, { priority: 3 }), code('QUEUE_FULL'));
  bus.publish('a', 4, { priority: 8 }); // evicts the oldest priority-3 event
  const m = bus.metrics();
  assert.equal(m.rejected, 1);
  assert.equal(m.evicted, 1);
  assert.equal(m.byPriority.dropped[3], 1);
  bus.free();
});

test('bus: a throwing handler opens its breaker; priority >= 8 bypasses; half-open closes it', async () => {
  const errors = [];
  const bus = new Bus({ breaker: { failureThreshold: 3, openMs: 40, halfOpenProbes: 1 }, onError: (e, id) => errors.push([e.message, id]) });
  let failing = true;
  const flaky = bus.subscribe('jobs.>', (e) => { if (failing) throw new Error(`fail ${e.payload}`); });
  const healthy = [];
  bus.subscribe('jobs.>', (e) => healthy.push(e.payload));
  for (let i = 0; i < 6; i++) bus.publish('jobs.run', i);
  assert.equal(bus.drain(), 3 + 6);
  assert.equal(errors.length, 3);
  assert.deepEqual(errors[0], ['fail 0', flaky.id]);
  assert.equal(bus.breakerState(flaky).state, 'open');
  assert.deepEqual(healthy, [0, 1, 2, 3, 4, 5]);
  bus.publish('jobs.critical', 'c', { priority: 8 });
  bus.drain();
  assert.equal(errors.length, 4, 'priority 8 reached the open subscription');
  assert.equal(bus.metrics().skippedOpen, 3);
  failing = false;
  await sleep(60);
  bus.publish('jobs.run', 'probe');
  bus.drain();
  assert.equal(bus.breakerState(flaky).state, 'closed');
  assert.equal(bus.metrics().breakerTransitions, 3);
  assert.equal(bus.breakerState(12345), null);
  bus.free();
});

test('bus: publishing from inside a handler is queued after the loop; subscribe inside works, drain inside throws REENTRANT', () => {
  const bus = new Bus({ autoDrain: false });
  const seen = [];
  let reentrant;
  let inner;
  bus.subscribe('ping', (e) => {
    bus.publish('pong', e.payload + 1);
    inner = bus.subscribe('x', () => {});
    try { bus.drain(); } catch (error) { reentrant = error; }
  });
  bus.subscribe('pong', (e) => seen.push(e.payload));
  bus.publish('ping', 1);
  bus.drain();
  assert.equal(reentrant.code, 'REENTRANT');
  assert.equal(inner.pattern, 'x');
  assert.equal(bus.queued, 1);
  bus.drain();
  assert.deepEqual(seen, [2]);
  bus.free();
});

test('bus: publishEnvelope routes on the header and hands over the bytes', () => {
  const bus = new Bus();
  const got = [];
  bus.subscribe('swarm.*.phase', (e) => got.push(e));
  const bytes = encodeEnvelope({ topic: 'swarm.beta.phase', priority: 9, payload: { phase: 'act' } });
  const id = bus.publishEnvelope(bytes);
  assert.equal(id, peekHeader(bytes).id);
  bus.drain();
  assert.equal(got[0].priority, 9);
  assert.equal(got[0].topic, 'swarm.beta.phase');
  assert.deepEqual(decodeEnvelope(got[0].payload).payload, { phase: 'act' });
  assert.throws(() => bus.publishEnvelope(new Uint8Array([1, 2, 3])), code('DECODE_ERROR'));
  bus.free();
});

test('calls after free() throw FREED; free() twice is harmless', () => {
  for (const object of [new Bus(), new StateStore(), new CircuitBreaker()]) {
    object.free();
    object.free();
  }
  const bus = new Bus();
  bus.free();
  assert.throws(() => bus.publish('a', 1), code('FREED'));
  assert.throws(() => bus.queued, code('FREED'));
  const store = new StateStore();
  store.free();
  assert.throws(() => store.get('a'), code('FREED'));
});

test('CircuitBreaker.run wraps sync and async calls and saves its state', async () => {
  const breaker = new CircuitBreaker({ failureThreshold: 2, openMs: 30, halfOpenProbes: 1 });
  assert.equal(await breaker.run(() => 5), 5);
  assert.equal(await breaker.run(async () => 6), 6);
  const inner = new CircuitBreaker();
  assert.equal(await breaker.run(() => inner.run(() => 7)), 7, 'a run inside a run');
  await assert.rejects(inner.run(() => { inner.run(() => 1); throw new Error('after nested'); }), /after nested/);
  inner.free();
  await assert.rejects(breaker.run(() => { throw new Error('sync'); }), /sync/);
  await assert.rejects(breaker.run(() => Promise.reject(new Error('async'))), /async/);
  assert.equal(breaker.state, 'open');
  let called = false;
  await assert.rejects(breaker.run(() => { called = true; }), code('CIRCUIT_OPEN'));
  assert.equal(called, false);
  assert.equal(await breaker.run(() => 'urgent', { priority: 9 }), 'urgent');
  const saved = JSON.stringify(breaker.toJSON());
  const restored = CircuitBreaker.fromJSON(JSON.parse(saved));
  assert.equal(restored.state, 'open');
  await sleep(45);
  assert.equal(await restored.run(() => 'probe'), 'probe');
  assert.equal(restored.state, 'closed');
  assert.equal(CircuitBreaker.fromJSON(saved).state, 'half-open', 'string form works too; its wait elapsed');
  assert.throws(() => CircuitBreaker.fromJSON({ bogus: true }), code('DECODE_ERROR'));
  assert.throws(() => CircuitBreaker.fromJSON('{"not json'), code('DECODE_ERROR'));
  assert.throws(() => new CircuitBreaker({ failureThreshold: -1 }), code('INVALID_ARGUMENT'));
  breaker.forceOpen();
  assert.equal(breaker.state, 'forced-open');
  breaker.disable();
  assert.equal(breaker.state, 'disabled');
  breaker.reset();
  assert.equal(breaker.info().state, 'closed');
});

test('StateStore: versions, CAS, snapshots, diff/apply, bytes', () => {
  const store = new StateStore(3);
  assert.equal(store.version, 0);
  assert.equal(store.set('phase', 'plan'), 1);
  const s1 = store.snapshot('planning');
  store.merge('agents', { a1: 'idle', a2: 'busy' });
  store.merge('agents', { a2: null });
  assert.deepEqual(store.get('agents'), { a1: 'idle' });
  assert.equal(store.keyVersion('phase'), 1);
  assert.equal(store.compareAndSet('phase', 1, 'act'), 4);
  assert.throws(() => store.compareAndSet('phase', 1, 'again'), code('VERSION_CONFLICT'));
  assert.equal(store.delete('nope'), false);
  const s2 = store.snapshot();
  const patch = store.diff(s1, s2);
  assert.deepEqual(patch.ops, [{ op: 'set', key: 'agents', value: { a1: 'idle' } }, { op: 'set', key: 'phase', value: 'act' }]);
  store.restore(s1);
  assert.equal(store.get('agents'), undefined);
  store.apply(patch);
  assert.deepEqual(store.get('agents'), { a1: 'idle' });
  assert.deepEqual(store.snapshots().map((s) => s.label), ['planning', null]);
  const copy = StateStore.fromBytes(store.toBytes());
  assert.deepEqual(copy.keys(), ['agents', 'phase']);
  assert.equal(copy.version, store.version);
  assert.throws(() => StateStore.fromBytes(new Uint8Array([7])), code('DECODE_ERROR'));
  assert.throws(() => store.restore(99), code('UNKNOWN_SNAPSHOT'));
  assert.throws(() => store.set('k', undefined), code('INVALID_ARGUMENT'));
  store.free();
  copy.free();
});

test('memoryStats reports numbers', () => {
  const stats = memoryStats();
  assert.ok(stats.wasmBytes >= 65536);
  assert.ok(stats.liveAllocations >= 0 && stats.liveBytes >= 0);
});
