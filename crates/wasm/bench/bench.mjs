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
import { Bus, CircuitBreaker, encode, decode, encodeEnvelope, peekHeader } from 'swarmbus/node';

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const rows = [];
let warmedUp = false;

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Runs `fn` (which does `n` operations) ROUNDS times after a warm-up; returns median ops/s. */
function rate(n, fn) {
  fn();
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

function row(name, ours, peerName, peer, target) {
  rows.push({ name, ours, peerName, peer, ratio: ours / peer, target });
}

const fmt = (x) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M/s` : x >= 1e3 ? `${(x / 1e3).toFixed(1)} k/s` : `${x.toFixed(0)} /s`);

// 1. Wildcard routing: N patterns, 2 000 distinct topics matching one or two
// patterns each. The route cache is sized to the working set (routeCache: 4096).
for (const n of [10, 10, 100, 1000]) { // the first 10 is JIT warm-up, not reported
  const patterns = Array.from({ length: n }, (_, i) => (i % 2 ? `swarm.s${i}.>` : `swarm.s${i}.*.task`));
  const topics = Array.from({ length: 2000 }, (_, k) => `swarm.s${(k * 7919) % n}.agent${k % 100}.task`);
  let hits = 0;
  const bus = new Bus({ capacity: 1 << 16, breaker: false, routeCache: 4096 });
  for (const p of patterns) bus.subscribe(p, () => { hits++; });
  const ours = rate(topics.length, () => {
    for (const t of topics) bus.publish(t, null);
    bus.drain();
  });
  const compiled = patterns.map((p) => ({
    re: new RegExp('^' + p.split('.').map((t) => (t === '*' ? '[^.]+' : t === '>' ? '.+' : t.replace(/[-/\\^$+?()|[\]{}]/g, '\\$&'))).join('\\.') + '$'),
    fn: () => { hits++; },
  }));
  const peer = rate(topics.length, () => {
    for (const t of topics) for (const { re, fn } of compiled) if (re.test(t)) fn();
  });
  if (warmedUp) row(`wildcard routing, ${n} patterns (publish+drain)`, ours, 'RegExp loop', peer, n === 100 ? '≥ 30×' : n === 1000 ? '≥ 300×' : '');
  warmedUp = true;
  bus.free();
}

// 2. Bus publish+drain with priorities (batched path) vs eventemitter3 with 10 listeners and an array priority queue.
{
  const N = 10_000;
  const payloads = Array.from({ length: N }, (_, i) => i);
  const bus = new Bus({ capacity: 1 << 16, breaker: false });
  let sum = 0;
  bus.subscribe('swarm.alpha.task', (e) => { sum += e.payload; });
  const ours = rate(N, () => {
    for (let p = 0; p < 10; p++) bus.publishBatch('swarm.alpha.task', payloads.slice(p * 1000, (p + 1) * 1000), p);
    bus.drain();
  });
  const buckets = Array.from({ length: 10 }, () => []);
  const queuePeer = rate(N, () => {
    for (let i = 0; i < N; i++) buckets[(i / 1000) | 0].push(i);
    for (let p = 9; p >= 0; p--) { for (const v of buckets[p]) sum += v; buckets[p].length = 0; }
  });
  const ee = new EventEmitter();
  for (let l = 0; l < 10; l++) ee.on('swarm.alpha.task', (v) => { sum += v; });
  const eePeer = rate(N, () => { for (let i = 0; i < N; i++) ee.emit('swarm.alpha.task', i); });
  row('bus publishBatch + drain, priorities', ours, '10-bucket array queue', queuePeer, '≥ 5M/s');
  row('bus publishBatch + drain, priorities', ours, 'eventemitter3, 10 listeners', eePeer, '');
  for (const [name, emitter] of [['tseep', new Tseep()], ['node:events', new NodeEmitter()], ['mitt', mitt()]]) {
    for (let l = 0; l < 10; l++) emitter.on('swarm.alpha.task', (v) => { sum += v; });
    const peer = rate(N, () => { for (let i = 0; i < N; i++) emitter.emit('swarm.alpha.task', i); });
    row('bus publishBatch + drain, priorities', ours, `${name}, 10 listeners`, peer, '');
  }
  bus.free();
}

// 3. Header-only routing of binary envelopes vs JSON.parse to read the topic,
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

// 4. Full decode vs JSON.parse and msgpackr.
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

// 5. CircuitBreaker.run overhead vs opossum.
{
  const N = 20_000;
  const ours = new CircuitBreaker();
  const peer = new CircuitBreakerPeer(async () => 1, { timeout: false });
  const oursRate = await rateAsync(N, async () => { for (let i = 0; i < N; i++) await ours.run(() => 1); });
  const peerRate = await rateAsync(N, async () => { for (let i = 0; i < N; i++) await peer.fire(); });
  row('CircuitBreaker.run (awaited)', oursRate, 'opossum fire', peerRate, '');
  peer.shutdown();
}

console.log(`\nswarmbus wasm vs JS peers, Node ${process.version}, medians of ${ROUNDS} rounds\n`);
console.log('| case | swarmbus | peer | peer rate | ratio | target |');
console.log('|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.name} | ${fmt(r.ours)} | ${r.peerName} | ${fmt(r.peer)} | ${r.ratio.toFixed(2)}× | ${r.target} |`);
}
