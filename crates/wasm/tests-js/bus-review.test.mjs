// Regression tests for the defects a review found in the JS `Bus`, `Subscription`
// and `Router` (each test names its bug).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus, CoreBus, Router, Messenger } from 'swarmbus/node';

const code = (c) => (error) => error instanceof Error && error.code === c;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test('review: free() inside a handler stops the drain, no untyped error', async () => {
  // Bug: the drain went on with the freed router and threw "null pointer passed to rust" without .code.
  const bus = new Bus({ autoDrain: false, breaker: { failureThreshold: 1 } });
  const seen = [];
  bus.subscribe('a', () => { seen.push('a'); bus.free(); });
  bus.subscribe('a', () => seen.push('a2'));
  bus.subscribe('b', () => seen.push('b'));
  bus.publish('a', 1);
  bus.publish('b', 2);
  assert.equal(bus.drain(), 1);
  assert.deepEqual(seen, ['a']);
  assert.throws(() => bus.drain(), code('FREED'));
  // With autoDrain (the default) the same must not become an uncaught exception in a microtask.
  const auto = new Bus();
  const autoSeen = [];
  auto.subscribe('a', () => { throw Object.assign(new Error('x'), { free: auto.free() }); });
  auto.subscribe('b', () => autoSeen.push('b'));
  auto.publish('a', 1);
  auto.publish('b', 2);
  await sleep(5);
  assert.deepEqual(autoSeen, []);
  // A plain (breaker-less) subscription too.
  const plain = new Bus({ breaker: false });
  plain.subscribe('a', async () => plain.free());
  plain.subscribe('b', () => assert.fail('delivered after free'));
  plain.publish('a', 1);
  plain.publish('b', 2);
  await sleep(5);
});

test('review: non-string topics are INVALID_TOPIC on every entry point', () => {
  // Bug: publish(null, x) threw a TypeError without .code (the last-topic shortcut started at null).
  for (const bad of [null, undefined, 42, {}, ['a']]) {
    const bus = new Bus({ autoDrain: false });
    assert.throws(() => bus.publish(bad, 1), code('INVALID_TOPIC'), `publish ${String(bad)}`);
    assert.throws(() => bus.publishBatch(bad, [1]), code('INVALID_TOPIC'), `publishBatch ${String(bad)}`);
    assert.throws(() => bus.subscribe(bad, () => {}), code('INVALID_PATTERN'), `subscribe ${String(bad)}`);
    bus.free();
    const router = new Router();
    assert.throws(() => router.match(bad), code('INVALID_TOPIC'), `match ${String(bad)}`);
    assert.throws(() => router.add(bad, 1), code('INVALID_PATTERN'), `add ${String(bad)}`);
    router.free();
  }
});

test('review: a TTL counts from the publish, not from a stale cached clock', () => {
  // Bug: a busy synchronous run kept the cached clock 300 ms behind, so a 200 ms TTL had already run out.
  const bus = new Bus({ autoDrain: false });
  const seen = [];
  bus.subscribe('t', (e) => seen.push(e.payload));
  bus.publish('t', 'first');
  const start = Date.now();
  while (Date.now() - start < 300) { /* busy */ }
  const before = Date.now();
  bus.publish('t', 'second', { ttlMs: 200 });
  bus.drain();
  assert.deepEqual(seen, ['first', 'second']);
  assert.equal(bus.metrics().expired, 0);
  // Timestamps are not stale beyond a drain: one published after a drain is stamped at or after it.
  const stamps = [];
  bus.subscribe('u', (e) => stamps.push(e.timestamp));
  bus.publish('u', 1);
  const busy = Date.now();
  while (Date.now() - busy < 50) { /* busy */ }
  const drainedAt = Date.now();
  bus.drain();
  bus.publish('u', 2);
  bus.drain();
  assert.ok(stamps[1] >= drainedAt, `stamped ${stamps[1]}, drained at ${drainedAt}`);
  assert.ok(before - start >= 300);
  bus.free();
});

test('review: a forwarded publish the local queue refuses never reaches the Messenger', () => {
  // Bug: the forward happened before the local accept, so a publish that threw QUEUE_FULL was still sent to the bridge.
  const bus = new Bus({ capacity: 1, autoDrain: false });
  const forwarded = [];
  bus._link = { forwards: () => true, forward: (topic, payload) => { forwarded.push(payload); return 1000 + forwarded.length; }, forwardEnvelope() {}, pull() {}, waiting: () => 0, free() {} };
  assert.equal(bus.publish('t', 'a', 5), 1001);
  assert.throws(() => bus.publish('t', 'b', 5), code('QUEUE_FULL'));
  assert.throws(() => bus.publishBatch('t', ['c', 'd'], 1), code('QUEUE_FULL'));
  assert.deepEqual(forwarded, ['a']);
  // And the other way round: what the Messenger refuses is not queued here either.
  bus.drain();
  bus._link.forward = () => { throw Object.assign(new Error('offline queue full'), { code: 'QUEUE_FULL' }); };
  assert.throws(() => bus.publish('t', 'e', 9), code('QUEUE_FULL'));
  assert.equal(bus.queued, 0);
  bus._link = null;
  bus.free();
  assert.equal(typeof Messenger, 'function');
});

test('review: concurrent next() calls all settle; unsubscribe ends every waiter', async () => {
  // Bug: one waiting slot, so the first of two pending next() calls never settled.
  const bus = new Bus();
  const sub = bus.subscribe('t');
  const it = sub[Symbol.asyncIterator]();
  const first = it.next();
  const second = it.next();
  const third = it.next();
  bus.publish('t', 1);
  bus.publish('t', 2);
  await sleep(1);
  assert.deepEqual(await first, { value: (await first).value, done: false });
  assert.equal((await first).value.payload, 1);
  assert.equal((await second).value.payload, 2);
  sub.unsubscribe();
  assert.deepEqual(await third, { value: undefined, done: true });
  bus.free();
});

test('review: iterating a subscription that has a handler is INVALID_STATE', () => {
  // Bug: for await over a subscription with a handler waited forever.
  const bus = new Bus();
  const sub = bus.subscribe('t', () => {});
  assert.throws(() => sub[Symbol.asyncIterator](), code('INVALID_STATE'));
  bus.free();
});

test('review: an async handler that never settles times out and releases its breaker permit', async () => {
  // Bug: a never-settling promise held its half-open permit forever; every later event was skipped.
  const failures = [];
  const bus = new Bus({
    autoDrain: false, handlerTimeoutMs: 20,
    breaker: { failureThreshold: 1, openMs: 10, halfOpenProbes: 1 },
    onError: (e) => failures.push(e.code),
  });
  let calls = 0;
  bus.subscribe('t', () => { calls++; return new Promise(() => {}); });
  bus.publish('t', 1);
  bus.drain();
  await sleep(60); // timed out (a failure: open), then openMs passed
  assert.deepEqual(failures, ['TIMEOUT']);
  bus.publish('t', 2);
  bus.drain(); // the half-open probe
  await sleep(60);
  bus.publish('t', 3);
  bus.drain();
  assert.equal(calls, 3, 'the breaker let calls through again after each timeout');
  assert.deepEqual(failures, ['TIMEOUT', 'TIMEOUT']);
  assert.equal(bus.metrics().handlerErrors, 2);
  bus.free();
  // A handler that settles in time is not a failure; 0 means no limit.
  const ok = new Bus({ handlerTimeoutMs: 0, onError: () => assert.fail('no failure') });
  ok.subscribe('t', () => sleep(5));
  ok.publish('t', 1);
  await sleep(20);
  ok.free();
  for (const bad of [-1, NaN, Infinity, '5']) assert.throws(() => new Bus({ handlerTimeoutMs: bad }), code('INVALID_ARGUMENT'));
});

test('review: options are validated; on() refuses inherited names', () => {
  // Bug: new Router({cacheSize: NaN}) made an unbounded cache; bus.on('toString', f) was accepted.
  for (const bad of [NaN, -1, Infinity, '10']) {
    assert.throws(() => new Router({ cacheSize: bad }), code('INVALID_ARGUMENT'), `cacheSize ${String(bad)}`);
    assert.throws(() => new Bus({ routeCache: bad }), code('INVALID_ARGUMENT'), `routeCache ${String(bad)}`);
  }
  assert.throws(() => new Router(5), code('INVALID_ARGUMENT'));
  new Router({ cacheSize: 0 }).free();
  const bus = new Bus();
  for (const name of ['toString', 'constructor', '__proto__', 'hasOwnProperty', 'opened', 1]) {
    assert.throws(() => bus.on(name, () => {}), code('INVALID_ARGUMENT'), `on ${String(name)}`);
  }
  for (const name of ['open', 'halfOpen', 'close']) assert.equal(bus.on(name, () => {}), bus);
  bus.free();
});

test('review: delivery happens in a microtask after the current synchronous code', async () => {
  // Bug (docs): the READMEs said "at the end of this task"; a publish after an await is delivered with the first.
  const bus = new Bus();
  const seen = [];
  bus.subscribe('t', (e) => seen.push(e.priority));
  bus.publish('t', null, 1);
  await null;
  bus.publish('t', null, 9);
  await null;
  await null;
  assert.deepEqual(seen, [1, 9]);
  bus.free();
});

test('review: dropped is evicted + expired in the total and per priority, on Bus and CoreBus alike', () => {
  // Bug: metrics().dropped included skippedOpen but byPriority.dropped did not (core: dropped = evicted + expired).
  for (const make of [(o) => new Bus({ ...o, autoDrain: false }), (o) => new CoreBus(o)]) {
    const bus = make({ capacity: 1, breaker: { failureThreshold: 1, openMs: 1e9 }, onError: () => {} });
    bus.subscribe('t', () => { throw new Error('fails'); });
    bus.publish('t', 1, 1);
    bus.publish('t', 2, 2); // evicts the first
    bus.drain(); // fails: the breaker opens
    bus.publish('t', 3, 3);
    bus.drain(); // skipped: open
    const m = bus.metrics();
    assert.deepEqual([m.evicted, m.expired, m.skippedOpen], [1, 0, 1]);
    assert.equal(m.dropped, 1);
    assert.equal(m.byPriority.dropped.reduce((a, b) => a + b, 0), m.dropped);
    bus.free();
  }
});

test('review: a critical publish from a handler refused at the end of the drain is counted and said, as in core', (t) => {
  // Bug: it was dropped silently after publish() had returned its id (core's bus counts it as rejected the same way).
  const logged = [];
  t.mock.method(console, 'error', (...args) => logged.push(args[0]));
  for (const make of [(o) => new Bus({ ...o, autoDrain: false }), (o) => new CoreBus(o)]) {
    const bus = make({ capacity: 2 });
    const ids = [];
    bus.subscribe('a', () => { ids.push(bus.publish('b', 1, 9), bus.publish('b', 2, 9)); });
    bus.publish('a', 0, 9);
    bus.publish('a', 0, 9);
    bus.drain(1);
    assert.equal(ids.length, 2, 'both publishes returned an id');
    const m = bus.metrics();
    assert.equal(m.byPriority.rejected[9], 1, 'the refused one is counted');
    assert.equal(m.queued, 2);
    bus.free();
  }
  assert.equal(logged.filter((line) => /priority 9 event published by a handler/.test(line)).length, 1, 'the JS bus says it once');
});
