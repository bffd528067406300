// The JS `Bus` as JS users expect it (issue 12): automatic delivery, async
// handlers, Subscription objects, breaker events, strict priorities.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus, CoreBus, Router, Subscription, memoryStats } from 'swarmbus/node';

const code = (c) => (error) => error instanceof Error && error.code === c;
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test('bus: published events are delivered at the end of the task, most urgent first', async () => {
  const bus = new Bus();
  const seen = [];
  bus.subscribe('a.>', (e) => seen.push(e.payload));
  bus.publish('a.x', 'low', 1);
  bus.publish('a.y', 'urgent', 9);
  bus.publish('a.z', 'normal');
  assert.deepEqual(seen, [], 'nothing runs inside publish');
  await Promise.resolve();
  assert.deepEqual(seen, ['urgent', 'normal', 'low']);
  assert.equal(bus.queued, 0);
  bus.free();
});

test('bus: autoDrain false keeps events for drain()', async () => {
  const bus = new Bus({ autoDrain: false });
  const seen = [];
  bus.subscribe('t', (e) => seen.push(e.payload));
  bus.publish('t', 1);
  await tick();
  assert.deepEqual(seen, []);
  assert.equal(bus.queued, 1);
  assert.equal(bus.drain(), 1);
  assert.deepEqual(seen, [1]);
  bus.free();
});

test('bus: a handler that republishes forever does not starve the event loop', async () => {
  const bus = new Bus();
  let calls = 0;
  bus.subscribe('loop', () => { calls++; bus.publish('loop', null); });
  bus.publish('loop', null);
  await sleep(20); // a timer fires: the loop yields to the event loop
  assert.ok(calls > 64, `the loop ran (${calls} calls)`);
  bus.free();
  // Regression: the count of chained drains was never reset, so after 64 drains
  // in all (not in a row) every later delivery waited for a timer.
  const fresh = new Bus();
  let seen = 0;
  fresh.subscribe('t', () => { seen++; });
  for (let i = 1; i <= 100; i++) {
    fresh.publish('t', i);
    await Promise.resolve();
    await Promise.resolve();
    assert.equal(seen, i, `publish ${i} delivered within the task`);
  }
  fresh.free();
});

test('bus: priorities are integers 0–9 on every entry point', () => {
  const bus = new Bus({ autoDrain: false });
  for (const bad of ['9', 10, -1, 1.5, NaN, 265, true, 10n]) {
    // Regression: publish(t, p, "9") silently used priority 5.
    assert.throws(() => bus.publish('t', 1, bad), code('INVALID_PRIORITY'), `publish ${String(bad)}`);
    assert.throws(() => bus.publish('t', 1, { priority: bad }), code('INVALID_PRIORITY'), `publish {priority: ${String(bad)}}`);
    // Regression: publishBatch took its priority modulo 256 (265 became 9).
    assert.throws(() => bus.publishBatch('t', [1], bad), code('INVALID_PRIORITY'), `publishBatch ${String(bad)}`);
  }
  assert.equal(bus.queued, 0);
  bus.publish('t', 1, 0);
  bus.publish('t', 1, { priority: 9 });
  bus.publishBatch('t', [1, 2]);
  assert.deepEqual(bus.metrics().byPriority.published, [1, 0, 0, 0, 0, 2, 0, 0, 0, 1]);
  assert.throws(() => bus.publish('t', 1, { ttlMs: -5 }), code('INVALID_ARGUMENT'));
  assert.throws(() => bus.publishBatch('t', 'not an array'), code('INVALID_ARGUMENT'));
  assert.throws(() => bus.publish(42, 1), code('INVALID_TOPIC'));
  bus.free();
});

test('bus: an async handler that rejects is a failure of its subscription, never an unhandled rejection', async () => {
  const unhandled = [];
  const onUnhandled = (reason) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    const errors = [];
    const bus = new Bus({ breaker: { failureThreshold: 2, openMs: 60_000 }, onError: (e, id, event) => errors.push([e.message, id, event.payload]) });
    const sub = bus.subscribe('jobs', async (e) => { await tick(); throw new Error(`async ${e.payload}`); });
    const opened = [];
    bus.on('open', (info) => opened.push(info));
    bus.publish('jobs', 1);
    bus.publish('jobs', 2);
    await sleep(20);
    assert.deepEqual(errors, [['async 1', sub.id, 1], ['async 2', sub.id, 2]]);
    assert.equal(bus.metrics().handlerErrors, 2);
    assert.equal(bus.breakerState(sub).state, 'open');
    assert.equal(opened.length, 1);
    assert.equal(opened[0].subscription, sub.id);
    assert.equal(opened[0].from, 'closed');
    bus.publish('jobs', 3);
    await sleep(10);
    assert.equal(bus.metrics().skippedOpen, 1, 'the open breaker skips the next event');
    bus.free();
  } finally {
    await sleep(10);
    process.off('unhandledRejection', onUnhandled);
  }
  assert.deepEqual(unhandled, []);
});

test('bus: without onError a failure is reported once per subscription to console.error, and counted', async () => {
  const logged = [];
  const original = console.error;
  console.error = (...args) => logged.push(args);
  try {
    const bus = new Bus({ breaker: false });
    bus.subscribe('x', () => { const e = new Error('sync'); e.code = 'MY_CODE'; throw e; });
    bus.subscribe('x', async () => { throw new Error('async'); });
    for (let i = 0; i < 3; i++) bus.publish('x', i);
    await sleep(10);
    assert.equal(bus.metrics().handlerErrors, 6);
    assert.equal(logged.length, 2, 'once per subscription');
    assert.match(logged[0][0], /\[MY_CODE\]/);
    assert.match(logged[1][0], /\[HANDLER_ERROR\]/);
    bus.free();
  } finally {
    console.error = original;
  }
});

test('bus: breaker transitions are events: open, halfOpen, close', async () => {
  const bus = new Bus({ breaker: { failureThreshold: 1, openMs: 20, halfOpenProbes: 1 }, onError: () => {} });
  const events = [];
  for (const name of ['open', 'halfOpen', 'close']) bus.on(name, (info) => events.push([name, info.from, info.to]));
  let fail = true;
  bus.subscribe('t', () => { if (fail) throw new Error('x'); });
  bus.publish('t', 1);
  await tick();
  fail = false;
  await sleep(30);
  bus.publish('t', 2);
  await tick();
  assert.deepEqual(events, [['open', 'closed', 'open'], ['halfOpen', 'open', 'halfOpen'], ['close', 'halfOpen', 'closed']]);
  assert.equal(bus.metrics().breakerTransitions, 3);
  assert.throws(() => bus.on('nope', () => {}), code('INVALID_ARGUMENT'));
  bus.free();
});

test('bus: subscribe returns a Subscription: id, pattern, unsubscribe, dispose', async () => {
  const bus = new Bus();
  const seen = [];
  const sub = bus.subscribe('a.*', (e) => seen.push(e.payload));
  assert.ok(sub instanceof Subscription);
  assert.equal(sub.pattern, 'a.*');
  assert.equal(typeof sub.id, 'number');
  bus.publish('a.b', 1);
  await tick();
  assert.equal(sub.unsubscribe(), true);
  assert.equal(sub.unsubscribe(), false);
  bus.publish('a.b', 2);
  await tick();
  assert.deepEqual(seen, [1]);
  {
    const scoped = bus.subscribe('s', () => {});
    assert.equal(bus.subscriptionCount, 1);
    scoped[Symbol.dispose]();
  }
  assert.equal(bus.subscriptionCount, 0);
  assert.equal(bus.unsubscribe(sub.id), false, 'ids still work');
  bus.free();
});

test('bus: for await over a subscription, bounded buffer with counted overflow', async () => {
  const bus = new Bus();
  const sub = bus.subscribe('feed.>', { bufferSize: 3 });
  for (let i = 0; i < 5; i++) bus.publish('feed.x', i);
  await tick();
  assert.equal(sub.overflowed, 2, 'the two oldest were dropped and counted');
  assert.equal(bus.metrics().iteratorOverflow, 2);
  const got = [];
  setTimeout(() => bus.publish('feed.y', 'late'), 5);
  for await (const event of sub) {
    got.push(event.payload);
    if (got.length === 4) break; // break unsubscribes
  }
  assert.deepEqual(got, [2, 3, 4, 'late']);
  assert.equal(bus.subscriptionCount, 0);
  bus.free();
});

test('bus: calls after free() throw FREED', () => {
  const bus = new Bus();
  bus.free();
  bus.free();
  assert.throws(() => bus.publish('a', 1), code('FREED'));
  assert.throws(() => bus.subscribe('a', () => {}), code('FREED'));
  assert.throws(() => bus.queued, code('FREED'));
});

test('Router: match in insertion order, cache invalidated by add and remove', () => {
  const router = new Router();
  const all = router.add('swarm.>', 'all');
  router.add('swarm.*.task', 'tasks');
  assert.deepEqual(router.match('swarm.a.task'), ['all', 'tasks']);
  router.add('swarm.a.task', 'exact');
  assert.deepEqual(router.match('swarm.a.task'), ['all', 'tasks', 'exact']);
  assert.equal(router.remove(all), true);
  assert.deepEqual(router.match('swarm.a.task'), ['tasks', 'exact']);
  assert.throws(() => router.match('a..b'), code('INVALID_TOPIC'));
  assert.throws(() => router.add('a.>.b', 1), code('INVALID_PATTERN'));
  router.free();
});

test('boundary: 100 000 throws through Bus and CoreBus entry points, then both work and memory is at baseline', () => {
  const core = new CoreBus({ breaker: false, capacity: 64 });
  const bus = new Bus({ autoDrain: false, capacity: 64 });
  const seen = [];
  core.subscribe('a.>', (e) => seen.push(['core', e.payload]));
  bus.subscribe('a.>', (e) => seen.push(['js', e.payload]));
  const getter = { get priority() { throw new Error('getter'); } };
  const proxy = new Proxy([1, 2], { get(target, key) { if (key === 'length' || key === '1') throw new Error('proxy'); return target[key]; } });
  const cases = [
    [(b) => b.publish('a.b', 1, getter), 'INVALID_ARGUMENT'],
    [(b) => b.publishBatch('a.b', proxy, 1), 'INVALID_ARGUMENT'],
    // Regression: publishBatch took its priority modulo 256, and publish(t, p, "9") used 5.
    [(b) => b.publishBatch('a.b', [1], 265), 'INVALID_PRIORITY'],
    [(b) => b.publish('a.b', 1, '9'), 'INVALID_PRIORITY'],
    [(b) => b.publishBatch('a.b', 'nope'), 'INVALID_ARGUMENT'],
  ];
  const round = (n) => {
    for (let i = 0; i < n; i++) {
      const [call, expected] = cases[i % cases.length];
      for (const target of [core, bus]) {
        try {
          call(target);
          assert.fail('no throw');
        } catch (e) {
          if (e.code !== expected) throw e;
        }
      }
    }
  };
  round(1000);
  memoryStats();
  const before = memoryStats();
  round(50_000); // 100 000 throws: 50 000 per bus
  const after = memoryStats();
  assert.equal(after.liveBytes, before.liveBytes, 'live bytes back at baseline');
  for (const target of [core, bus]) {
    target.publish('a.b', 'still works', 9);
    target.publishBatch('a.c', ['batch'], 3);
    target.drain();
  }
  assert.deepEqual(seen, [['core', 'still works'], ['core', 'batch'], ['js', 'still works'], ['js', 'batch']]);
  assert.equal(core.metrics().published, 2, 'nothing of a refused publish was queued');
  assert.equal(bus.metrics().published, 2);
  core.free();
  bus.free();
});

test('bus: a once subscription iterated with for await ends after its event; throwing options are INVALID_ARGUMENT', async () => {
  const bus = new Bus();
  const sub = bus.subscribe('one.>', { once: true });
  bus.publish('one.x', 'only');
  bus.publish('one.y', 'never');
  const got = [];
  for await (const event of sub) got.push(event.payload);
  assert.deepEqual(got, ['only']);
  const throwing = { get once() { throw new Error('getter'); } };
  assert.throws(() => bus.subscribe('a', () => {}, throwing), code('INVALID_ARGUMENT'));
  assert.throws(() => new Bus({ get capacity() { throw new Error('getter'); } }), code('INVALID_ARGUMENT'));
  bus.free();
});
