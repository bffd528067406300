// `just load`, second run: the same agents as crates/redis-bridge/examples/agents.rs,
// but in Node through the wasm package: each agent is a `Bus` with a
// `Messenger` (its own WebSocket) in this one Node process.
//
//   node crates/wasm/bench/agents.mjs --url ws://127.0.0.1:8080/ws --agents 100 --rate 100 --seconds 10 --bridge-pid PID
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { Bus, Messenger } from 'swarmbus/node';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string', default: 'ws://127.0.0.1:8080/ws' },
    agents: { type: 'string', default: '100' },
    rate: { type: 'string', default: '100' },
    seconds: { type: 'string', default: '10' },
    'bridge-pid': { type: 'string' },
    label: { type: 'string', default: 'Node agents (wasm Bus + Messenger)' },
  },
});
const [agents, rate, seconds] = ['agents', 'rate', 'seconds'].map((k) => Number(args[k]));
const SWARMS = 4;
const MIX = [[8, 4], [7, 3], [6, 10], [5, 12], [4, 12], [3, 12], [2, 12], [1, 12], [0, 23]].flatMap(([p, n]) => new Array(n).fill(p));
const nowMicros = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
const rssKib = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);

async function bridgeDrops() {
  const text = await (await fetch(args.url.replace('ws://', 'http://').replace(/\/ws$/, '/metrics'))).text();
  const drops = new Array(10).fill(0);
  for (const [, p, v] of text.matchAll(/^swarmbus_dropped_total\{priority="(\d)"[^}]*\} (\d+)/gm)) drops[p] += Number(v);
  return drops;
}

const pid = args['bridge-pid'] && Number(args['bridge-pid']);
const rssBefore = pid ? rssKib(pid) : 0;
const dropsBefore = await bridgeDrops();
const latencies = [];
let delivered = 0;
let published = 0;
const started = performance.now();
const parties = [];
for (let a = 0; a < agents; a++) {
  const swarm = a % SWARMS;
  const bus = new Bus({ capacity: 8192, breaker: { failureThreshold: 5, openMs: 500, halfOpenProbes: 1 } });
  const flaky = a % 10 === 0;
  const handler = (event) => {
    latencies.push(nowMicros() - event.payload.t);
    delivered += 1;
    const elapsed = performance.now() - started;
    if (event.payload.fail || (flaky && elapsed >= 2000 && elapsed < 4000)) throw new Error('simulated failure');
  };
  bus.subscribe(`swarm.${swarm}.agent.${a}.>`, handler);
  bus.subscribe(`swarm.${swarm}.phase`, handler);
  const messenger = new Messenger(bus, {
    WebSocket, forward: [`swarm.${swarm}.>`], subscribe: [`swarm.${swarm}.agent.${a}.>`, `swarm.${swarm}.phase`],
  });
  await messenger.connect(args.url);
  parties.push({ a, swarm, bus, messenger });
}
await new Promise((resolve) => setTimeout(resolve, 300)); // subscriptions reach the bridge

let running = true;
let owed = 0;
const tick = setInterval(() => {
  owed += (rate * 10) / 1000;
  const due = Math.floor(owed);
  owed -= due;
  for (let i = 0; i < due; i++) {
    for (const { swarm, bus } of parties) {
      const payload = { t: nowMicros(), fail: Math.random() < 0.02 };
      if (Math.random() < 0.01) {
        bus.publish(`swarm.${swarm}.phase`, payload, 9);
      } else {
        const peer = (Math.floor(Math.random() * Math.ceil(agents / SWARMS)) * SWARMS + swarm) % agents;
        bus.publish(`swarm.${swarm}.agent.${peer}.msg`, payload, MIX[Math.floor(Math.random() * MIX.length)]);
      }
      published += 1;
    }
  }
  for (const { bus } of parties) bus.drain();
}, 10);
await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
running = false;
clearInterval(tick);
const elapsed = (performance.now() - started) / 1000;
// Let in-flight events land.
let last = -1;
while (last !== delivered) {
  last = delivered;
  await new Promise((resolve) => setTimeout(resolve, 500));
}
const dropsAfter = await bridgeDrops();
let transitions = 0;
let offlineDrops = 0;
for (const { bus, messenger } of parties) {
  transitions += bus.metrics().breakerTransitions;
  offlineDrops += messenger.stats().dropped;
  messenger.free();
  bus.free();
}
latencies.sort((a, b) => a - b);
const pct = (q) => (latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))] ?? 0) / 1000;
const drops = dropsAfter.map((n, p) => [p, n - dropsBefore[p]]).reverse().filter(([, n]) => n > 0).map(([p, n]) => `p${p}: ${n}`);
const memory = pid ? `${(rssBefore / 1024).toFixed(1)} → ${(rssKib(pid) / 1024).toFixed(1)} MiB` : '–';
console.log(`| ${args.label} | ${agents} | ${(published / elapsed).toFixed(0)} | ${(delivered / elapsed).toFixed(0)} | `
  + `${pct(0.5).toFixed(2)} | ${pct(0.99).toFixed(2)} | ${drops.join(', ') || '0'} | ${offlineDrops} | ${transitions} | ${memory} |`);
process.exit(running ? 1 : 0);
