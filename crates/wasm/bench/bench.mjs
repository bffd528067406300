// `just bench-js`: the wasm package against JS peers, in one Node process.
// Each case runs ROUNDS times; the table shows medians and the ratio to the peer.
import { performance } from 'node:perf_hooks';
import { EventEmitter as NodeEmitter } from 'node:events';
import EventEmitter from 'eventemitter3';
import { EventEmitter as Tseep } from 'tseep';
import mitt from 'mitt';
import { decode as msgpackDecode, encode as msgpackEncode } from '@msgpack/msgpack';
import { pack, unpack } from 'msgpackr';
import CircuitBreakerPeer from 'opossum';
import qlobber from 'qlobber';
import * as swarmbus from 'swarmbus/node';

const { Bus, CircuitBreaker, encode, decode, encodeEnvelope, peekHeader } = swarmbus;
const { Qlobber } = qlobber;
const { Router } = swarmbus;

const ROUNDS = Number(process.env.ROUNDS ?? 5);
// `ONLY=bus` runs the bus and routing rows only.
const ONLY = process.env.ONLY ?? '';
const rows = [];

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Runs `fn` (which does `n` operations) ROUNDS times after a warm-up; returns median ops/s. */
function rate(n, fn) {
  // Warm-up: at least 3 calls and 150 ms, so V8 has optimized the loop being measured.
  const warm = performance.now();
  for (let calls = 0; calls < 3 || performance.now() - warm < 150; calls++) fn();
  const rates = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    fn();
    rates.push(n / ((performance.now() - t0) / 1e3));
  }
  return median(rates);
}

async function rateAsync(n, fn) {
  await fn();
  const rates = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    await fn();
    rates.push(n / ((performance.now() - t0) / 1e3));
  }
  return median(rates);
}

function row(name, ours, peerName, peer, target, ratio = ours / peer) {
  rows.push({ name, ours, peerName, peer, ratio, target });
}

/**
 * Ours against one peer, rounds alternating (ours, peer, ours, peer, ...), so
 * that load from other processes on the shared machine hits both alike; the
 * ratio is the median of the per-round ratios.
 */
function pair(n, ours, peer) {
  for (const fn of [ours, peer]) {
    const warm = performance.now();
    for (let calls = 0; calls < 3 || performance.now() - warm < 150; calls++) fn();
  }
  const a = [];
  const b = [];
  const ratios = [];
  for (let r = 0; r < ROUNDS; r++) {
    let t0 = performance.now();
    ours();
    const x = n / ((performance.now() - t0) / 1e3);
    t0 = performance.now();
    peer();
    const y = n / ((performance.now() - t0) / 1e3);
    a.push(x);
    b.push(y);
    ratios.push(x / y);
  }
  return { ours: median(a), peer: median(b), ratio: median(ratios) };
}

function rowPair(name, n, ours, peerName, peer, target) {
  const r = pair(n, ours, peer);
  row(name, r.ours, peerName, r.peer, target, r.ratio);
}

const fmt = (x) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M/s` : x >= 1e3 ? `${(x / 1e3).toFixed(1)} k/s` : `${x.toFixed(0)} /s`);

// The JavaScript baseline: the bus a JS developer would write instead of ours.
// A Map from exact topic to handlers, qlobber for wildcard patterns, ten
// priority arrays (9 first, FIFO within one), a try/catch per handler call.
class BaselineBus {
  constructor() {
    this.exact = new Map();
    this.wild = new Qlobber({ separator: '.', wildcard_one: '*', wildcard_some: '>' });
    this.wildCount = 0;
    this.levels = Array.from({ length: 10 }, () => []);
    this.errors = 0;
  }
  subscribe(pattern, handler) {
    if (/(^|\.)[*>](\.|$)/.test(pattern)) { this.wild.add(pattern, handler); this.wildCount++; return; }
    let list = this.exact.get(pattern);
    if (!list) this.exact.set(pattern, (list = []));
    list.push(handler);
  }
  publish(topic, payload, priority = 5) {
    this.levels[priority].push({ topic, priority, payload });
  }
  publishBatch(topic, payloads, priority = 5) {
    const level = this.levels[priority];
    for (let i = 0; i < payloads.length; i++) level.push({ topic, priority, payload: payloads[i] });
  }
  drain() {
    let calls = 0;
    for (let p = 9; p >= 0; p--) {
      const level = this.levels[p];
      for (let i = 0; i < level.length; i++) {
        const event = level[i];
        const exact = this.exact.get(event.topic);
        if (exact !== undefined) {
          for (let h = 0; h < exact.length; h++) {
            try { exact[h](event); } catch { this.errors++; }
            calls++;
          }
        }
        if (this.wildCount > 0) {
          for (const handler of this.wild.match(event.topic)) {
            try { handler(event); } catch { this.errors++; }
            calls++;
          }
        }
      }
      level.length = 0;
    }
    return calls;
  }
}

// 1. Deliveries (handler calls) per second, the same number of handlers on
// every side. Events on one exact topic at priorities 0–9 (i % 10).
const TOPIC = 'swarm.alpha.task';
for (const handlers of [1, 10]) {
  const N = 20_000;
  const deliveries = N * handlers;
  const payloads = Array.from({ length: N }, (_, i) => i);
  let sum = 0;
  const handler = (e) => { sum += e.payload; };
  const bus = new Bus({ capacity: 1 << 16, breaker: false });
  const withBreakers = new Bus({ capacity: 1 << 16 });
  const baseline = new BaselineBus();
  for (let h = 0; h < handlers; h++) {
    bus.subscribe(TOPIC, handler);
    withBreakers.subscribe(TOPIC, handler);
    baseline.subscribe(TOPIC, handler);
  }
  const ours = () => {
    for (let i = 0; i < N; i++) bus.publish(TOPIC, payloads[i], i % 10);
    bus.drain();
  };
  const base = () => {
    for (let i = 0; i < N; i++) baseline.publish(TOPIC, payloads[i], i % 10);
    baseline.drain();
  };
  const name = `deliveries: publish + drain one by one, ${handlers} handler${handlers > 1 ? 's' : ''}, priorities 0–9`;
  rowPair(name, deliveries, ours, 'the JavaScript baseline', base, '≥ 1×');
  rowPair(`${name}, breaker per subscription`, deliveries, () => {
    for (let i = 0; i < N; i++) withBreakers.publish(TOPIC, payloads[i], i % 10);
    withBreakers.drain();
  }, 'the JavaScript baseline', base, '≥ 1×');
  for (const [peerName, emitter] of [['eventemitter3', new EventEmitter()], ['tseep', new Tseep()], ['node:events', new NodeEmitter()], ['mitt', mitt()]]) {
    for (let h = 0; h < handlers; h++) emitter.on(TOPIC, (v) => { sum += v; });
    rowPair(name, deliveries, ours, `${peerName} (no priorities)`, () => { for (let i = 0; i < N; i++) emitter.emit(TOPIC, i); }, peerName === 'eventemitter3' ? 'stretch ≥ 0.5×' : '');
  }
  bus.free();
  withBreakers.free();
}

// 2. publishBatch + drain: 10 batches of 1 000 at priorities 0–9, 1 and 10 handlers.
for (const handlers of [1, 10]) {
  const N = 10_000;
  const payloads = Array.from({ length: N }, (_, i) => i);
  const batches = Array.from({ length: 10 }, (_, p) => payloads.slice(p * 1000, (p + 1) * 1000));
  let sum = 0;
  const handler = (e) => { sum += e.payload; };
  const bus = new Bus({ capacity: 1 << 16, breaker: false });
  const baseline = new BaselineBus();
  for (let h = 0; h < handlers; h++) {
    bus.subscribe(TOPIC, handler);
    baseline.subscribe(TOPIC, handler);
  }
  rowPair(`deliveries: publishBatch + drain, ${handlers} handler${handlers > 1 ? 's' : ''}, priorities 0–9`, N * handlers, () => {
    for (let p = 0; p < 10; p++) bus.publishBatch(TOPIC, batches[p], p);
    bus.drain();
  }, 'the JavaScript baseline', () => {
    for (let p = 0; p < 10; p++) baseline.publishBatch(TOPIC, batches[p], p);
    baseline.drain();
  }, '≥ 1×');
  bus.free();
}

// 3. Wildcard routing: N patterns; for each topic find the matching handlers
// and call them. Repeated topics: 2 000 distinct topics, each matching one
// pattern, routed 10 times per round (caches warm). Every topic new: 2 000
// topics never seen before per round (made inside the timed loop on both
// sides: the same string work). Peers: qlobber behind a Map cache of its
// results, qlobber uncached, a RegExp loop.
const qlobberOptions = { separator: '.', wildcard_one: '*', wildcard_some: '>' };
const REPEAT = 10;
for (const n of [10, 100, 1000]) {
  const patterns = Array.from({ length: n }, (_, i) => (i % 2 ? `swarm.s${i}.>` : `swarm.s${i}.*.task`));
  const topics = Array.from({ length: 2000 }, (_, k) => `swarm.s${(k * 7919) % n}.agent${k % 100}.task`);
  let hits = 0;
  const handler = () => { hits++; };
  const q = new Qlobber(qlobberOptions);
  for (const p of patterns) q.add(p, handler);
  const cache = new Map();
  const qlobberCached = () => {
    for (let r = 0; r < REPEAT; r++) {
      for (const t of topics) {
        let hs = cache.get(t);
        if (hs === undefined) cache.set(t, (hs = q.match(t)));
        for (let i = 0; i < hs.length; i++) hs[i]();
      }
    }
  };
  const compiled = patterns.map((p) => ({
    re: new RegExp('^' + p.split('.').map((t) => (t === '*' ? '[^.]+' : t === '>' ? '.+' : t.replace(/[-/\\^$+?()|[\]{}]/g, '\\$&'))).join('\\.') + '$'),
    fn: handler,
  }));
  const router = new Router();
  for (const p of patterns) router.add(p, handler);
  const ours = () => {
    for (let r = 0; r < REPEAT; r++) {
      for (const t of topics) { const hs = router.match(t); for (let i = 0; i < hs.length; i++) hs[i](); }
    }
  };
  const name = `wildcard routing, ${n} patterns`;
  rowPair(`${name}, repeated topics (Router.match + call)`, REPEAT * topics.length, ours, 'qlobber + Map cache', qlobberCached, '≥ 1×');
  const regexp = rate(topics.length, () => {
    for (const t of topics) for (const { re, fn } of compiled) if (re.test(t)) fn();
  });
  const oursRepeated = rate(REPEAT * topics.length, ours);
  row(`${name}, repeated topics (Router.match + call)`, oursRepeated, 'RegExp loop', regexp, n === 100 ? '≥ 30×' : n === 1000 ? '≥ 300×' : '');
  let round = 0;
  rowPair(`${name}, every topic new (Router.match + call)`, topics.length, () => {
    round++;
    for (let k = 0; k < 2000; k++) { const hs = router.match(`swarm.s${(k * 7919) % n}.r${round}x${k}.task`); for (let i = 0; i < hs.length; i++) hs[i](); }
  }, 'qlobber uncached', () => {
    round++;
    for (let k = 0; k < 2000; k++) { const hs = q.match(`swarm.s${(k * 7919) % n}.r${round}x${k}.task`); for (let i = 0; i < hs.length; i++) hs[i](); }
  }, n >= 100 ? '≥ 2×' : '');
  router.free();
  // The whole bus: publish + drain per topic, wildcard subscriptions, against the JavaScript baseline.
  const bus = new Bus({ capacity: 1 << 16, breaker: false });
  const baseline = new BaselineBus();
  for (const p of patterns) {
    bus.subscribe(p, handler);
    baseline.subscribe(p, handler);
  }
  rowPair(`wildcard bus, ${n} patterns, publish + drain, repeated topics`, topics.length, () => {
    for (const t of topics) bus.publish(t, null);
    bus.drain();
  }, 'the JavaScript baseline (qlobber uncached)', () => {
    for (const t of topics) baseline.publish(t, null);
    baseline.drain();
  }, '');
  bus.free();
}

if (ONLY !== 'bus') {
// 4. Header-only routing of binary envelopes vs JSON.parse to read the topic,
// at several message sizes: peekHeader reads a fixed-size prefix, JSON.parse the whole text.
for (const [label, size] of [['200 B', 200], ['1 KB', 1024], ['8 KB', 8192], ['64 KB', 65536]]) {
  const body = { agent: 'agent-7', data: 'x'.repeat(Math.max(0, size - 80)) };
  const envelopes = Array.from({ length: 16 }, (_, i) => encodeEnvelope({ topic: `swarm.s${i}.task`, priority: 6, payload: body }));
  const jsons = Array.from({ length: 16 }, (_, i) => JSON.stringify({ topic: `swarm.s${i}.task`, priority: 6, payload: body }));
  const N = Math.max(200, Math.round(5_000_000 / size));
  let seen = 0;
  const ours = rate(N, () => { for (let i = 0; i < N; i++) seen += peekHeader(envelopes[i & 15]).priority; });
  const peer = rate(N, () => { for (let i = 0; i < N; i++) seen += JSON.parse(jsons[i & 15]).priority; });
  row(`route a ${label} message by header (peekHeader)`, ours, 'JSON.parse', peer, '≥ 40×');
}

// 5. Full decode vs JSON.parse and msgpackr.
for (const [label, size] of [['200 B', 200], ['1 KB', 1024], ['8 KB', 8192], ['200 KB', 200 * 1024]]) {
  const record = (i) => ({ id: i, name: `agent-${i}`, load: i * 0.5, ok: i % 2 === 0, tags: ['a', 'b'] });
  const value = { items: [] };
  while (JSON.stringify(value).length < size) value.items.push(record(value.items.length));
  const json = JSON.stringify(value);
  const ours_bytes = encode(value);
  const peer_bytes = pack(value);
  const n = Math.max(20, Math.round(2_000_000 / size));
  const ours = rate(n, () => { for (let i = 0; i < n; i++) decode(ours_bytes); });
  const jsonPeer = rate(n, () => { for (let i = 0; i < n; i++) JSON.parse(json); });
  const msgpackrPeer = rate(n, () => { for (let i = 0; i < n; i++) unpack(peer_bytes); });
  const standardBytes = msgpackEncode(value);
  const msgpackPeer = rate(n, () => { for (let i = 0; i < n; i++) msgpackDecode(standardBytes); });
  row(`decode ${label}`, ours, 'JSON.parse', jsonPeer, '≥ 1×');
  row(`decode ${label}`, ours, 'msgpackr unpack', msgpackrPeer, '');
  row(`decode ${label}`, ours, '@msgpack/msgpack decode', msgpackPeer, '');
  // The other direction (no target): what every forwarded or enveloped object payload costs.
  const oursEncode = rate(n, () => { for (let i = 0; i < n; i++) encode(value); });
  row(`encode ${label}`, oursEncode, 'JSON.stringify', rate(n, () => { for (let i = 0; i < n; i++) JSON.stringify(value); }), '');
  row(`encode ${label}`, oursEncode, 'msgpackr pack', rate(n, () => { for (let i = 0; i < n; i++) pack(value); }), '');
  row(`encode ${label}`, oursEncode, '@msgpack/msgpack encode', rate(n, () => { for (let i = 0; i < n; i++) msgpackEncode(value); }), '');
}

// 6. CircuitBreaker.run overhead vs opossum.
{
  const N = 20_000;
  const ours = new CircuitBreaker();
  const peer = new CircuitBreakerPeer(async () => 1, { timeout: false });
  const oursRate = await rateAsync(N, async () => { for (let i = 0; i < N; i++) await ours.run(() => 1); });
  const peerRate = await rateAsync(N, async () => { for (let i = 0; i < N; i++) await peer.fire(); });
  row('CircuitBreaker.run (awaited)', oursRate, 'opossum fire', peerRate, '');
  peer.shutdown();
}
}

console.log(`\nswarmbus wasm vs JS peers, Node ${process.version}, medians of ${ROUNDS} rounds (deliveries = handler calls)\n`);
console.log('| case | swarmbus | peer | peer rate | ratio | target |');
console.log('|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.name} | ${fmt(r.ours)} | ${r.peerName} | ${fmt(r.peer)} | ${r.ratio.toFixed(2)}× | ${r.target} |`);
}
