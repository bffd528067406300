// The wasm Messenger against a real swarmbus-bridge process (embedded broker).
// Node 20 has no global WebSocket: the `ws` package's is passed in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { pack, unpack } from 'msgpackr';
import { WebSocket, WebSocketServer } from 'ws';
import { Bus, CoreBus, Messenger } from 'swarmbus/node';
import { signToken, startBridge, until } from '../../../tests/support/bridge.mjs';

const code = (c) => (error) => error instanceof Error && error.code === c;

/** A bus recording what its handler for `pattern` receives, except probes. */
function recordingBus(pattern) {
  const bus = new Bus();
  const events = [];
  let probes = 0;
  bus.subscribe(pattern, (event) => (event.topic.endsWith('.probe') ? probes++ : events.push(event)));
  return { bus, events, probes: () => probes };
}

/** Publishes `topic` probes from `bus` until `receiver` hears one: the route is up. */
async function routeUp(bus, topic, receiver) {
  await until(() => {
    bus.publish(topic, 0);
    bus.drain();
    return receiver.probes() > 0;
  }, 10_000, `a probe on ${topic}`);
}

/** A bus recording `prefix.>` from the bridge and a bus forwarding `prefix.>` to it, both connected, the route up. */
async function connectedPair(url, prefix) {
  const receiver = recordingBus(`${prefix}.>`);
  const mr = new Messenger(receiver.bus, { WebSocket, subscribe: [`${prefix}.>`] });
  const sender = new Bus();
  const ms = new Messenger(sender, { WebSocket, forward: [`${prefix}.>`] });
  await Promise.all([mr.connect(url), ms.connect(url)]);
  await routeUp(sender, `${prefix}.probe`, receiver);
  return { receiver, mr, sender, ms };
}

test('events forwarded by one messenger reach the other bus, decoded, with their priority and id', async (t) => {
  const bridge = await startBridge();
  t.after(() => bridge.stop());
  const a = recordingBus('b.>');
  const b = recordingBus('a.>');
  const ma = new Messenger(a.bus, { WebSocket, forward: ['a.>'], subscribe: ['b.>'] });
  const mb = new Messenger(b.bus, { WebSocket, forward: ['b.>'], subscribe: ['a.>'] });
  await Promise.all([ma.connect(bridge.wsUrl), mb.connect(bridge.wsUrl)]);
  assert.equal(ma.state, 'open');

  await routeUp(a.bus, 'a.probe', b);

  const payload = { agent: 'a1', load: 0.75, tags: ['x', 'ü'], nested: { ok: true }, big: 2n ** 60n };
  const id = a.bus.publish('a.agents.a1', payload, { priority: 8 });
  a.bus.publish('a.other', 'second', 3);
  a.bus.publish('local.only', 'never forwarded');
  b.bus.publish('b.reply', [1, 2, 3]);
  await until(() => b.events.length === 2 && a.events.length === 1, 5_000,
    () => `delivery: ${JSON.stringify({ a: a.events.length, b: b.events.length, sa: ma.stats(), sb: mb.stats() })}`);

  assert.deepEqual(b.events[0].payload, payload);
  assert.equal(b.events[0].topic, 'a.agents.a1');
  assert.equal(b.events[0].priority, 8);
  assert.equal(b.events[0].id, id);
  assert.equal(b.events[1].payload, 'second');
  assert.deepEqual(a.events[0].payload, [1, 2, 3]);
  assert.ok(b.events.every((e) => e.topic.startsWith('a.')), 'local.only must stay local');
  assert.ok(ma.stats().sent >= 3);
  assert.ok(mb.stats().received >= 2);
  ma.free();
  mb.free();
});

test('a burst published in one task is sent most urgent first, FIFO within a priority', async (t) => {
  const bridge = await startBridge();
  t.after(() => bridge.stop());
  const { receiver, mr, sender, ms } = await connectedPair(bridge.wsUrl, 'burst');
  const priorities = [1, 9, 4, 4, 0, 8, 9, 1, 5];
  priorities.forEach((priority, i) => sender.publish(`burst.e${i}`, i, priority));
  await until(() => receiver.events.length === priorities.length, 5_000, 'the burst');
  const expected = priorities.map((priority, i) => ({ priority, i }))
    .sort((a, b) => b.priority - a.priority || a.i - b.i).map(({ i }) => i);
  assert.deepEqual(receiver.events.map((e) => e.payload), expected);
  ms.free();
  mr.free();
});

test('a messenger does not deliver its own events twice when it also subscribes to them', async (t) => {
  const bridge = await startBridge();
  t.after(() => bridge.stop());
  const { bus, events } = recordingBus('loop.>');
  const m = new Messenger(bus, { WebSocket, forward: ['loop.>'], subscribe: ['loop.>'] });
  await m.connect(bridge.wsUrl);
  await until(() => {
    bus.publish('loop.x', 1);
    bus.drain();
    return m.stats().echoes > 0;
  }, 5_000, 'an echo');
  const before = events.length;
  bus.publish('loop.y', 2);
  bus.drain();
  await until(() => m.stats().echoes >= before + 1, 5_000, 'the second echo');
  assert.equal(events.length, before + 1, 'each local publish is delivered locally exactly once');
  assert.equal(m.stats().received, 0);
  m.free();
});

test('publishes made while offline wait in a bounded queue and flush on connect', async (t) => {
  const bridge = await startBridge();
  t.after(() => bridge.stop());
  const receiver = recordingBus('q.>');
  const mr = new Messenger(receiver.bus, { WebSocket, subscribe: ['q.>'] });
  await mr.connect(bridge.wsUrl);

  const sender = new Bus();
  const ms = new Messenger(sender, { WebSocket, forward: ['q.>'], offlineCapacity: 3 });
  sender.publish('q.low', 'low-1', 1);
  sender.publish('q.low', 'low-2', 1);
  sender.publish('q.mid', 'mid', 5);
  sender.publish('q.crit', 'crit', 9); // evicts the oldest priority 1 event
  assert.equal(ms.stats().queued, 3);
  assert.equal(ms.stats().dropped, 1);
  assert.equal(ms.stats().droppedByPriority[1], 1);

  // Subscribed before the sender connects: the flush must reach the receiver.
  await until(() => mr.stats().errors === 0 && mr.state === 'open');
  await new Promise((resolve) => setTimeout(resolve, 100));
  await ms.connect(bridge.wsUrl);
  await until(() => receiver.events.length === 3, 5_000, 'the flushed events');
  assert.deepEqual(receiver.events.map((e) => e.payload), ['crit', 'mid', 'low-2']);
  assert.equal(ms.stats().queued, 0);
  ms.free();
  mr.free();
});

test('a full offline queue of priority >= 8 refuses another critical publish loudly', () => {
  const bus = new Bus();
  const m = new Messenger(bus, { WebSocket, forward: ['>'], offlineCapacity: 2 });
  bus.publish('c.one', 1, 9);
  bus.publish('c.two', 2, 8);
  assert.throws(() => bus.publish('c.three', 3, 9), code('QUEUE_FULL'));
  assert.equal(bus.queued, 2, 'the refused event is not published locally either');
  // A low priority event is dropped and counted, never thrown.
  bus.publish('c.low', 0, 0);
  assert.equal(m.stats().droppedByPriority[0], 1);
  m.free();
});

test('the messenger reconnects with backoff after the bridge restarts, and resubscribes', async (t) => {
  let bridge = await startBridge();
  const port = bridge.port;
  t.after(() => bridge.stop());
  const receiver = recordingBus('r.>');
  const states = [];
  const mr = new Messenger(receiver.bus, {
    WebSocket, subscribe: ['r.>'], backoffMs: 50, maxBackoffMs: 200, onState: (s) => states.push(s),
  });
  const sender = new Bus();
  const ms = new Messenger(sender, { WebSocket, forward: ['r.>'], backoffMs: 50, maxBackoffMs: 200 });
  await Promise.all([mr.connect(bridge.wsUrl), ms.connect(bridge.wsUrl)]);

  await bridge.stop();
  await until(() => mr.state === 'reconnecting' && ms.state === 'reconnecting', 5_000, 'reconnecting');
  sender.publish('r.while-down', 'queued', 9);
  assert.equal(ms.stats().queued, 1);

  bridge = await startBridge([], { listen: `127.0.0.1:${port}` });
  await until(() => mr.state === 'open' && ms.state === 'open', 10_000, 'both open again');
  // Flushed on reconnect. Whether it arrives depends on which messenger the new
  // bridge welcomed first (pub/sub is at-most-once), so only the flush is asserted.
  assert.equal(ms.stats().queued, 0);
  assert.ok(ms.stats().sent >= 1);
  await routeUp(sender, 'r.probe', receiver);
  sender.publish('r.after', 'after');
  await until(() => receiver.events.some((e) => e.payload === 'after'), 5_000, 'an event after the restart');
  assert.ok(mr.stats().reconnects >= 1);
  assert.deepEqual(states.slice(0, 2), ['connecting', 'open']);
  assert.ok(states.includes('reconnecting'));
  assert.equal(states.at(-1), 'open');
  mr.free();
  ms.free();
});

test('connect rejects with the bridge code for missing or bad tokens, and with UNAVAILABLE when nobody listens', async (t) => {
  const secret = 'a-test-secret-of-32-bytes-length';
  const bridge = await startBridge(['--auth-secret', secret]);
  t.after(() => bridge.stop());
  const bus = new Bus();
  const m = new Messenger(bus, { WebSocket, backoffMs: 20 });
  await assert.rejects(m.connect(bridge.wsUrl), code('AUTH_REQUIRED'));
  assert.equal(m.state, 'closed');
  await assert.rejects(m.connect(bridge.wsUrl, { token: signToken('another-secret-32-bytes-long!!!!', {}) }),
    code('INVALID_TOKEN'));
  const exp = Math.floor(Date.now() / 1000) + 60;
  const token = signToken(secret, { sub: 't', exp, publish: ['ok.>'], subscribe: ['ok.>'] });
  const errors = [];
  m.onError((e) => errors.push(e.code));
  const session = await m.connect(bridge.wsUrl, { token });
  assert.equal(typeof session.session, 'number', 'connect resolves with the session');
  assert.equal(typeof session.version, 'number');
  await m.subscribe('ok.>');
  // The bridge's refusal rejects the awaited subscribe and still reaches onError.
  await assert.rejects(m.subscribe('secret.>'), code('FORBIDDEN'));
  await until(() => errors.includes('FORBIDDEN'), 5_000, 'FORBIDDEN');
  m.subscribe('secret.again.>'); // not awaited: a refusal is no unhandled rejection
  await until(() => errors.filter((c) => c === 'FORBIDDEN').length === 2, 5_000, 'the second FORBIDDEN');
  const pending = m.subscribe('ok.later.>');
  m.close();
  await assert.rejects(m.flush(), code('CLOSED'));
  await pending.then(() => {}, (e) => assert.equal(e.code, 'CLOSED'));
  assert.equal(m.state, 'closed');
  m.free();

  const closed = await startBridge();
  const url = closed.wsUrl;
  await closed.stop();
  const lonely = new Messenger(new Bus(), { WebSocket, backoffMs: 20, connectTimeoutMs: 300 });
  await assert.rejects(lonely.connect(url), code('UNAVAILABLE'));
  lonely.free();
});

test('a freed Bus stops hearing remote events even while its Messenger lives', async (t) => {
  const bridge = await startBridge();
  t.after(() => bridge.stop());
  const { receiver, mr, sender, ms } = await connectedPair(bridge.wsUrl, 'f');
  receiver.bus.free();
  sender.publish('f.after', 1);
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(receiver.events.length, 0, 'no handler runs for a freed bus');
  assert.equal(mr.stats().errors, 0);
  ms.free();
  mr.free();
});

test('without a WebSocket option the Messenger uses the global one (Node 20 --experimental-websocket)', async (t) => {
  const bridge = await startBridge();
  t.after(() => bridge.stop());
  const receiver = recordingBus('g.>');
  const mr = new Messenger(receiver.bus, { WebSocket, subscribe: ['g.>'] });
  await mr.connect(bridge.wsUrl);
  await new Promise((resolve) => setTimeout(resolve, 100));
  const script = `
    import { Bus, Messenger } from 'swarmbus/node';
    const bus = new Bus();
    const m = new Messenger(bus, { forward: ['g.>'] });
    await m.connect(${JSON.stringify(bridge.wsUrl)});
    bus.publish('g.global', 'hi', 7);
    await new Promise((resolve) => setTimeout(resolve, 100));
    m.free();`;
  const child = spawn(process.execPath, ['--experimental-websocket', '--no-warnings', '--input-type=module', '-e', script], {
    cwd: fileURLToPath(new URL('../../../', import.meta.url)), stdio: ['ignore', 'inherit', 'inherit'],
  });
  assert.equal(await new Promise((resolve) => child.on('exit', resolve)), 0);
  await until(() => receiver.events.length === 1, 5_000, 'the event from the global WebSocket');
  assert.deepEqual([receiver.events[0].topic, receiver.events[0].payload, receiver.events[0].priority], ['g.global', 'hi', 7]);
  mr.free();
});

// Regression: close() alone (without free()) kept Node running ~8 s: the stopped ping Interval stayed armed.
test('a script that closes its messenger lets Node exit: close() leaves no timer or socket behind', async (t) => {
  const bridge = await startBridge();
  t.after(() => bridge.stop());
  const script = `
    import { WebSocket } from 'ws';
    import { Bus, Messenger } from 'swarmbus/node';
    const bus = new Bus();
    const m = new Messenger(bus, { WebSocket, forward: ['x.>'] });
    await m.connect(${JSON.stringify(bridge.wsUrl)});
    await m.subscribe('x.>');
    bus.publish('x.one', { n: 1 }, 5);
    await m.flush();
    m.close();
    console.log(m.state);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: fileURLToPath(new URL('../../../', import.meta.url)), stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  let closedAt;
  child.stdout.on('data', (chunk) => {
    output += chunk;
    closedAt ??= Date.now();
  });
  const killer = setTimeout(() => child.kill(), 20_000);
  const exitCode = await new Promise((resolve) => child.on('exit', resolve));
  clearTimeout(killer);
  assert.equal(output.trim(), 'closed');
  assert.equal(exitCode, 0, 'killed: the process was still running 20 s later');
  // A hang check, not a speed check: before the fix Node stayed up ~8 s after close().
  assert.ok(Date.now() - closedAt < 3_000, `Node kept running ${Date.now() - closedAt} ms after close()`);
});

test('pings keep a live connection; a bridge that stops answering is dropped and reconnected', async (t) => {
  const bridge = await startBridge();
  t.after(() => bridge.stop());
  const live = new Messenger(new Bus(), { WebSocket, pingIntervalMs: 30 });
  await live.connect(bridge.wsUrl);
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(live.state, 'open');
  assert.equal(live.stats().reconnects, 0, 'the real bridge answers every ping');
  live.free();

  // A fake bridge that welcomes but never answers pings (a half-dead peer).
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => server.once('listening', resolve));
  t.after(() => server.close());
  let connections = 0;
  server.on('connection', (socket) => {
    connections += 1;
    socket.on('message', (data) => {
      if (unpack(data).t === 'hello') socket.send(pack({ t: 'welcome', v: 1, session: connections }));
    });
  });
  const states = [];
  const m = new Messenger(new Bus(), { WebSocket, pingIntervalMs: 40, backoffMs: 10, maxBackoffMs: 20, onState: (s) => states.push(s) });
  await m.connect(`ws://127.0.0.1:${server.address().port}/ws`);
  await until(() => connections >= 2 && m.state === 'open', 5_000, 'a reconnect after missing pongs');
  assert.ok(m.stats().reconnects >= 1);
  assert.ok(states.includes('reconnecting'), states.join());
  m.free();
});

test('bad arguments throw typed errors; a freed messenger throws FREED', async () => {
  const bus = new Bus();
  assert.throws(() => new Messenger(bus, { WebSocket, forward: ['a..b'] }), code('INVALID_PATTERN'));
  const m = new Messenger(bus, { WebSocket });
  assert.throws(() => new Messenger(bus, { WebSocket }), code('INVALID_STATE'));
  assert.throws(() => m.subscribe('x.>.y'), code('INVALID_PATTERN'));
  if (globalThis.WebSocket === undefined) {
    assert.throws(() => new Messenger(new Bus()), code('INVALID_ARGUMENT'));
  }
  await assert.rejects(m.connect('not a url'), code('INVALID_ARGUMENT'));
  m.free();
  assert.throws(() => m.stats(), code('FREED'));
  // The bus outlives its messenger and accepts a new one.
  new Messenger(bus, { WebSocket }).free();
});

test('a pattern declared once: messenger.subscribe(pattern, handler) hears remote and local events; flush() waits for the bridge', async (t) => {
  const bridge = await startBridge();
  t.after(() => bridge.stop());
  const bus = new Bus();
  const m = new Messenger(bus, { WebSocket, forward: ['team.>'] });
  const heard = [];
  const acked = m.subscribe('team.>', (event) => heard.push([event.topic, event.payload]));
  await m.connect(bridge.wsUrl);
  const subscription = await acked; // resolves once the bridge acknowledged the pattern
  assert.equal(subscription.pattern, 'team.>');
  const other = new Bus();
  const mo = new Messenger(other, { WebSocket, forward: ['team.>'] });
  await mo.connect(bridge.wsUrl);
  other.publish('team.remote', 'from the other bus');
  await mo.flush(); // everything forwarded so far reached the bridge
  assert.equal(mo.stats().sent, 1);
  assert.equal(mo.stats().queued, 0);
  bus.publish('team.local', 'from here');
  await until(() => heard.length === 2, 5_000, 'one remote and one local event');
  assert.deepEqual(heard.sort(), [['team.local', 'from here'], ['team.remote', 'from the other bus']]);
  assert.equal(m.stats().echoes, 1, 'our own forwarded event came back once and was dropped as an echo');
  // Forward patterns can change: a local publish no pattern matches is not sent.
  const sent = m.stats().sent;
  assert.equal(m.stopForwarding('team.>'), true);
  bus.publish('team.quiet', 'stays local');
  await m.flush();
  assert.equal(m.stats().sent, sent, 'not forwarded any more');
  m.forward('team.>');
  bus.publish('team.loud', 'forwarded again');
  await m.flush();
  assert.equal(m.stats().sent, sent + 1);
  await until(() => heard.length === 4, 5_000, 'both local events heard locally');
  m.free();
  mo.free();
});

test('refreshToken replaces the token on the open connection: accepted, or rejected with the bridge code', async (t) => {
  const secret = 'a-test-secret-of-32-bytes-length';
  const bridge = await startBridge(['--auth-secret', secret]);
  t.after(() => bridge.stop());
  const now = Math.floor(Date.now() / 1000);
  const grant = { sub: 'r', publish: ['ok.>'], subscribe: ['ok.>'] };
  // Not connected yet: kept for the next hello, resolved at once.
  const m = new Messenger(new Bus(), { WebSocket });
  await m.refreshToken(signToken(secret, { ...grant, exp: now + 60 }));
  await m.connect(bridge.wsUrl); // no token given: the refreshed one is sent
  await m.subscribe('ok.>');
  await m.refreshToken(signToken(secret, { ...grant, exp: now + 120 }));
  await assert.rejects(m.refreshToken(signToken('another-secret-32-bytes-long!!!!', { ...grant, exp: now + 120 })),
    code('INVALID_TOKEN'));
  assert.equal(m.state, 'open', 'a refused refresh keeps the connection');
  m.close();
  await m.refreshToken(signToken(secret, { ...grant, exp: now + 60 })); // closed: kept for the next connect
  m.free();
});

test('offlineBytes bounds the offline queue in bytes as well as in items', () => {
  const bus = new Bus();
  const m = new Messenger(bus, { WebSocket, forward: ['>'], offlineCapacity: 100, offlineBytes: 300 });
  const big = 'x'.repeat(150); // one envelope fits in 300 bytes, two do not
  bus.publish('b.one', big, 1);
  assert.equal(m.stats().queued, 1);
  bus.publish('b.two', big, 1); // nothing below priority 1 to evict: dropped and counted
  assert.deepEqual([m.stats().queued, m.stats().droppedByPriority[1]], [1, 1]);
  bus.publish('b.mid', big, 5); // evicts the priority 1 event
  assert.deepEqual([m.stats().queued, m.stats().droppedByPriority[1]], [1, 2]);
  bus.publish('b.crit', big, 9); // evicts the priority 5 event
  assert.deepEqual([m.stats().queued, m.stats().droppedByPriority[5]], [1, 1]);
  assert.throws(() => bus.publish('b.crit2', big, 9), code('QUEUE_FULL'));
  assert.throws(() => bus.publish('b.huge', 'x'.repeat(400), 8), code('QUEUE_FULL'));
  assert.equal(m.stats().dropped, 5);
  m.free();
});

test('a subscribe the bridge never answers rejects with TIMEOUT after requestTimeoutMs', async () => {
  const m = new Messenger(new Bus(), { WebSocket, requestTimeoutMs: 50 });
  const started = Date.now();
  await assert.rejects(m.subscribe('never.>'), code('TIMEOUT'));
  assert.ok(Date.now() - started >= 45, 'not before its deadline');
  m.free();
});

test('callbacks may call back into the messenger and may throw: no borrow is held while they run', async (t) => {
  const bridge = await startBridge();
  t.after(() => bridge.stop());
  const states = [];
  const m = new Messenger(new Bus(), {
    WebSocket,
    onState: (s) => {
      states.push(s);
      if (s === 'open') {
        m.subscribe('inner.>'); // re-enters while the messenger is carrying out the welcome
        m.close();
        throw new Error('a throwing onState');
      }
    },
  });
  const connected = m.connect(bridge.wsUrl);
  await connected; // resolved after onState('open') ran and threw
  assert.equal(m.state, 'closed');
  assert.deepEqual(states, ['connecting', 'open', 'closed']);
  await assert.rejects(m.flush(), code('CLOSED'));
  m.free();
});

/** `promise`'s outcome within `ms`, or 'pending'. */
function settled(promise, ms = 5_000) {
  let timer;
  const pending = new Promise((resolve) => { timer = setTimeout(() => resolve('pending'), ms); });
  return Promise.race([promise.then(() => 'resolved', (e) => e.code), pending]).finally(() => clearTimeout(timer));
}

// Regression: a Messenger of a CoreBus ignored subscribe's handler and resolved with undefined.
test('a Messenger of a CoreBus refuses a subscribe handler with INVALID_ARGUMENT', () => {
  const core = new CoreBus();
  const m = new Messenger(core, { WebSocket, requestTimeoutMs: 50 });
  assert.throws(() => m.subscribe('a.>', () => {}), code('INVALID_ARGUMENT'));
  assert.ok(m.subscribe('a.>') instanceof Promise, 'without a handler it subscribes remotely');
  m.free();
  core.free();
});

// Regression: unsubscribing messenger.subscribe's Subscription (or a once that fired) left the bridge subscription in place.
test('the remote subscription of messenger.subscribe(pattern, handler) lives as long as a handler of it', async (t) => {
  const bridge = await startBridge();
  t.after(() => bridge.stop());
  const receiver = new Bus();
  const sentinels = [];
  receiver.subscribe('sentinel.>', (event) => sentinels.push(event.payload));
  const mr = new Messenger(receiver, { WebSocket, subscribe: ['sentinel.>'] });
  const sender = new Bus();
  const ms = new Messenger(sender, { WebSocket, forward: ['>'] });
  t.after(() => {
    mr.free();
    ms.free();
  });
  await Promise.all([mr.connect(bridge.wsUrl), ms.connect(bridge.wsUrl)]);
  await until(() => {
    sender.publish('sentinel.probe', -1);
    return sentinels.length > 0;
  }, 10_000, 'the sentinel route');
  let n = 0;
  /** How many remote events `topic` brought into the receiver (a sentinel sent after it closes the count). */
  async function remoteEvents(topic) {
    await mr.flush(); // our (un)subscribes reached the bridge
    const before = mr.stats().received;
    const mark = ++n;
    sender.publish(topic, 'x');
    sender.publish('sentinel.mark', mark);
    await until(() => sentinels.includes(mark), 5_000, `sentinel ${mark}`);
    return mr.stats().received - before - 1;
  }
  const heard = [];
  const handler = (event) => heard.push(event.topic);

  const phases = await mr.subscribe('ph.>', handler);
  assert.equal(await remoteEvents('ph.a'), 1);
  phases.unsubscribe();
  assert.equal(await remoteEvents('ph.b'), 0, 'the last handler gone, the bridge no longer sends the pattern');

  const first = await mr.subscribe('two.>', handler);
  const second = await mr.subscribe('two.>', handler);
  first.unsubscribe();
  assert.equal(await remoteEvents('two.a'), 1, 'another handler still holds the pattern');
  receiver.unsubscribe(second); // through the bus as well
  assert.equal(await remoteEvents('two.b'), 0);

  await mr.subscribe('one.>', handler, { once: true });
  assert.equal(await remoteEvents('one.a'), 1);
  assert.equal(await remoteEvents('one.b'), 0, 'a once subscription that fired lets the pattern go');

  await mr.subscribe('ex.>'); // subscribed on its own as well: kept after its handlers go
  (await mr.subscribe('ex.>', handler)).unsubscribe();
  assert.equal(await remoteEvents('ex.a'), 1);

  // The bus refuses the handler's options: nothing is subscribed at the bridge.
  assert.throws(() => mr.subscribe('bad.>', handler, { bufferSize: -1 }), code('INVALID_ARGUMENT'));
  assert.equal(await remoteEvents('bad.a'), 0);

  // messenger.unsubscribe(pattern) removes the pattern's handlers from the bus too.
  const count = receiver.subscriptionCount;
  await mr.subscribe('un.>', handler);
  await mr.subscribe('un.>', handler);
  assert.equal(mr.unsubscribe('un.>'), true);
  assert.equal(receiver.subscriptionCount, count);
  receiver.publish('un.local', 1);
  assert.equal(await remoteEvents('un.remote'), 0);
  assert.equal(mr.unsubscribe('un.>'), false);
  assert.deepEqual(heard, ['ph.a', 'two.a', 'one.a']);
});

// Regression: subscribe then unsubscribe before connect (or before the ack) left the subscribe promise pending until close().
test('a subscribe unsubscribed before it was sent rejects with CANCELLED; one already sent settles at the ack', async (t) => {
  const bus = new Bus();
  const m = new Messenger(bus, { WebSocket });
  const remote = m.subscribe('a.b');
  const withHandler = m.subscribe('c.d', () => {});
  assert.equal(m.unsubscribe('a.b'), true);
  assert.equal(m.unsubscribe('c.d'), true);
  assert.equal(await settled(remote), 'CANCELLED');
  assert.equal(await settled(withHandler), 'CANCELLED');
  assert.equal(bus.subscriptionCount, 0);

  const bridge = await startBridge();
  t.after(() => bridge.stop());
  await m.connect(bridge.wsUrl);
  const sent = m.subscribe('e.f');
  assert.equal(m.unsubscribe('e.f'), true);
  assert.equal(await settled(sent), 'resolved', 'the bridge acknowledged it before it handled the unsubscribe');
  m.free();
});

// Regression: after close() the bus kept forwarding into the closed Messenger: QUEUE_FULL from the 1025th priority >= 8 publish, not delivered locally either.
test('close() stops forwarding: local publishes go on being delivered locally', async () => {
  const bus = new Bus();
  const heard = [];
  bus.subscribe('f.>', (event) => heard.push(event.payload));
  const m = new Messenger(bus, { WebSocket, forward: ['f.>'], offlineCapacity: 2, connectTimeoutMs: 100, backoffMs: 20 });
  m.close();
  for (let i = 0; i < 5; i++) bus.publish('f.x', i, 9);
  bus.drain();
  assert.deepEqual(heard, [0, 1, 2, 3, 4]);
  assert.equal(m.stats().queued, 0, 'nothing forwarded');
  // connect() forwards again.
  const connecting = m.connect('ws://127.0.0.1:9/ws');
  bus.publish('f.y', 5, 9);
  assert.equal(m.stats().queued, 1);
  await assert.rejects(connecting, code('UNAVAILABLE'));
  m.free();

  const core = new CoreBus();
  let coreHeard = 0;
  core.subscribe('f.>', () => coreHeard++);
  const mc = new Messenger(core, { WebSocket, forward: ['f.>'], offlineCapacity: 2 });
  mc.close();
  for (let i = 0; i < 5; i++) core.publish('f.x', i, 9);
  core.drain();
  assert.equal(coreHeard, 5);
  assert.equal(mc.stats().queued, 0);
  mc.free();
  core.free();
});
