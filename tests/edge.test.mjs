// The edge examples for real: examples/deno on the npm `deno` binary and
// examples/workerd on the npm `workerd` binary, each forwarding to a bridge
// process that a WebSocket subscriber (the wasm Messenger in Node) listens to.
// Run by `just test-edge`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { Bus, Messenger } from 'swarmbus/node';
import { freePort, startBridge, until } from './support/bridge.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = `${ROOT}node_modules/.bin/`;

const RUNTIMES = {
  deno: (port) => [`${BIN}deno`, ['run', '--allow-net=127.0.0.1', '--allow-read', '--allow-env', 'examples/deno/main.mjs'], { PORT: String(port) }],
  workerd: (port) => [`${BIN}workerd`, ['serve', 'examples/workerd/config.capnp', '--socket-addr', `http=127.0.0.1:${port}`], {}],
};

/** Starts an example worker; resolves once it answers HTTP. */
async function startWorker(runtime, bridgeUrl) {
  const port = await freePort();
  const [command, args, env] = RUNTIMES[runtime](port);
  const child = spawn(command, args, {
    cwd: ROOT, env: { ...process.env, ...env, SWARMBUS_BRIDGE_URL: bridgeUrl }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await fetch(`${url}/breaker`);
      break;
    } catch {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${runtime} did not start:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return { url, stop: () => child.kill('SIGTERM') };
}

const post = (url, body) => fetch(`${url}/events`, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) });

for (const runtime of Object.keys(RUNTIMES)) {
  test(`${runtime}: the worker routes, validates and forwards to the bridge; its breaker state survives between requests`, async (t) => {
    const bridge = await startBridge();
    t.after(() => bridge.stop());
    const worker = await startWorker(runtime, bridge.url);
    t.after(() => worker.stop());

    const bus = new Bus();
    const received = [];
    bus.subscribe('>', (event) => received.push(event));
    const messenger = new Messenger(bus, { WebSocket, subscribe: ['agents.>', 'swarm.>', 'other.>'] });
    t.after(() => messenger.free());
    await messenger.connect(bridge.wsUrl);
    await new Promise((resolve) => setTimeout(resolve, 100)); // subscriptions reach the bridge

    const response = await post(worker.url, [
      { topic: 'agents.a1.status', payload: { ok: true, load: 0.5 }, priority: 3, sender: 'a1' },
      { topic: 'other.noise', payload: 1 },
      { topic: 'swarm.alpha.phase', payload: 'execute', priority: 9 },
      { topic: 'agents.a2.task.assign', payload: { task: 7 }, priority: 6 },
    ]);
    assert.equal(response.status, 202);
    assert.deepEqual(
      (({ accepted, forwarded, unrouted }) => ({ accepted, forwarded, unrouted }))(await response.json()),
      { accepted: 3, forwarded: 3, unrouted: 1 },
    );
    await until(() => received.length >= 3, 5_000, 'forwarded events');
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Exactly the routed ones, most urgent first.
    assert.deepEqual(received.map((e) => [e.topic, e.priority]),
      [['swarm.alpha.phase', 9], ['agents.a2.task.assign', 6], ['agents.a1.status', 3]]);
    assert.deepEqual(received[2].payload, { ok: true, load: 0.5 });

    for (const [body, code] of [
      ['not json', 'DECODE_ERROR'],
      [{ topic: 'agents..x', payload: 1 }, 'INVALID_TOPIC'],
      [{ topic: 'agents.*.status', payload: 1 }, 'INVALID_TOPIC'],
      [{ topic: 'agents.a1.status', payload: 1, priority: 12 }, 'INVALID_PRIORITY'],
      [[1, 2], 'INVALID_ARGUMENT'],
    ]) {
      const bad = await post(worker.url, body);
      assert.equal(bad.status, 400, JSON.stringify(body));
      assert.equal((await bad.json()).code, code, JSON.stringify(body));
    }

    // Bridge gone: three failures open the breaker; the next request is refused
    // without trying, because the state saved after each request was restored.
    await bridge.stop();
    for (let i = 0; i < 3; i++) {
      const failed = await post(worker.url, { topic: 'agents.a1.status', payload: i });
      assert.equal(failed.status, 502);
      assert.equal((await failed.json()).code, 'BRIDGE_ERROR');
    }
    const refused = await post(worker.url, { topic: 'agents.a1.status', payload: 4 });
    assert.equal(refused.status, 503);
    assert.equal((await refused.json()).code, 'CIRCUIT_OPEN');
    const saved = await (await fetch(`${worker.url}/breaker`)).json();
    assert.equal(JSON.stringify(saved).includes('open'), true, JSON.stringify(saved));
  });
}

test('the Node example (examples/node/quickstart.mjs, the README snippet) publishes through a bridge', async (t) => {
  const bridge = await startBridge();
  t.after(() => bridge.stop());
  const bus = new Bus();
  const received = [];
  bus.subscribe('swarm.>', (event) => received.push(event));
  const messenger = new Messenger(bus, { WebSocket, subscribe: ['swarm.>'] });
  t.after(() => messenger.free());
  await messenger.connect(bridge.wsUrl);
  await new Promise((resolve) => setTimeout(resolve, 100));
  const child = spawn(process.execPath, ['examples/node/quickstart.mjs'], {
    cwd: ROOT, env: { ...process.env, SWARMBUS_URL: bridge.wsUrl }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  const code = await new Promise((resolve) => child.on('exit', resolve));
  assert.equal(code, 0, output);
  assert.match(output, /phase: swarm\.alpha\.phase \{ phase: 'execute', by: 'node' \}/);
  await until(() => received.length === 1, 5_000, 'the example\'s event');
  assert.deepEqual([received[0].topic, received[0].priority, received[0].payload],
    ['swarm.alpha.phase', 9, { phase: 'execute', by: 'node' }]);
});

test('the Messenger works on Deno\'s global WebSocket', async (t) => {
  const bridge = await startBridge();
  t.after(() => bridge.stop());
  const child = spawn(`${BIN}deno`, ['run', '--allow-net=127.0.0.1', '--allow-read', '--allow-env', 'tests/deno/messenger.mjs'], {
    cwd: ROOT, env: { ...process.env, SWARMBUS_URL: bridge.wsUrl }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  const code = await new Promise((resolve) => child.on('exit', resolve));
  assert.equal(code, 0, output);
  assert.deepEqual(JSON.parse(output.trim().split('\n').at(-1)), ['deno.high', 'deno.low']);
});
