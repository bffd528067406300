// Every component at once: a redis-server, two bridges on it (with auth), a
// headless Chromium page whose wasm Messenger is on bridge A, this Node process
// with `swarmbus/node` on bridge B, and the workerd example forwarding to
// bridge A. Each party publishes on its own topics and subscribes by wildcard
// to the others'. Then Redis restarts and everyone must recover. Run by `just test-cross`.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { Bus, Messenger } from 'swarmbus/node';
import { freePort, launchChromium, signToken, startBridge, until } from './support/bridge.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SECRET = 'cross-component-secret-32-bytes!';
const PAGE_DIR = `${ROOT}target/cross-test/www/`;

function token(sub, publish, subscribe) {
  return signToken(SECRET, { sub, exp: Math.floor(Date.now() / 1000) + 600, publish, subscribe });
}

/** Resolves when something accepts TCP connections on `port`. */
async function listening(port) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true); });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function redisServer(port) {
  return spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' });
}

// The browser party: the package served by bridge A next to a page that drives it.
const PAGE = `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><script type="module">
import init, { Bus, Messenger } from './index.js';
await init();
const bus = new Bus();
const received = [];
const errors = [];
for (const pattern of ['node.>', 'agents.>']) bus.subscribe(pattern, (event) => received.push([event.topic, event.priority, event.payload]));
window.party = {
  received, errors,
  async connect(url, token) {
    window.messenger = new Messenger(bus, { forward: ['browser.>'], subscribe: ['node.>', 'agents.>'],
      backoffMs: 50, maxBackoffMs: 500, onError: (e) => errors.push(e.code) });
    await window.messenger.connect(url, { token });
  },
  publish(events) { for (const [topic, priority] of events) bus.publish(topic, { from: 'browser', topic }, priority); },
  state: () => window.messenger.state,
};
window.ready = true;
</script>`;

let redis;
let redisPort;
let bridgeA;
let bridgeB;
let browser;
let page;
let worker;
let nodeBus;
let nodeMessenger;
const nodeReceived = [];
const nodeErrors = [];
const pageErrors = [];

before(async () => {
  redisPort = await freePort();
  redis = redisServer(redisPort);
  await listening(redisPort);
  mkdirSync(PAGE_DIR, { recursive: true });
  cpSync(`${ROOT}crates/wasm/pkg`, PAGE_DIR, { recursive: true });
  writeFileSync(`${PAGE_DIR}party.html`, PAGE);
  cpSync(`${ROOT}examples/browser/index.html`, `${PAGE_DIR}example.html`);
  const common = ['--redis', `redis://127.0.0.1:${redisPort}`, '--auth-secret', SECRET];
  bridgeA = await startBridge([...common, '--static', PAGE_DIR]);
  bridgeB = await startBridge(common);

  // The workerd example, forwarding to bridge A with a token that may publish on agents.>.
  const port = await freePort();
  worker = spawn(`${ROOT}node_modules/.bin/workerd`, ['serve', 'examples/workerd/config.capnp', '--socket-addr', `http=127.0.0.1:${port}`], {
    cwd: ROOT, stdio: 'ignore',
    env: { ...process.env, SWARMBUS_BRIDGE_URL: bridgeA.url, SWARMBUS_TOKEN: token('workerd', ['agents.>'], []) },
  });
  worker.url = `http://127.0.0.1:${port}`;
  await listening(port);

  browser = await launchChromium();
  page = await browser.newPage();
  page.on('pageerror', (error) => pageErrors.push(String(error)));
  page.on('console', (message) => message.type() === 'error' && pageErrors.push(message.text()));
  await page.goto(`${bridgeA.url}/party.html`);
  await page.waitForFunction(() => window.ready === true);
  await page.evaluate(([url, t]) => window.party.connect(url, t),
    [bridgeA.wsUrl, token('browser', ['browser.>'], ['node.>', 'agents.>'])]);

  nodeBus = new Bus();
  for (const pattern of ['browser.>', 'agents.>']) {
    nodeBus.subscribe(pattern, (event) => nodeReceived.push([event.topic, event.priority, event.payload]));
  }
  // `browser.>` is forwarded too, but this token may not publish there: the bridge refuses it.
  nodeMessenger = new Messenger(nodeBus, {
    WebSocket, forward: ['node.>', 'browser.>'], subscribe: ['browser.>', 'agents.>'],
    backoffMs: 50, maxBackoffMs: 500, onError: (e) => nodeErrors.push(e.code),
  });
  await nodeMessenger.connect(bridgeB.wsUrl, { token: token('node', ['node.>'], ['browser.>', 'agents.>']) });
});

after(async () => {
  nodeMessenger?.free();
  await browser?.close();
  worker?.kill('SIGTERM');
  await bridgeA?.stop();
  await bridgeB?.stop();
  redis?.kill('SIGKILL');
});

const browserReceived = () => page.evaluate(() => window.party.received);

const LEVELS = [['low', 1], ['crit', 9], ['mid', 5], ['high', 8]];
const URGENT_FIRST = ['crit', 'high', 'mid', 'low'];

/** Publishes probes both ways until browser and node hear each other through Redis. */
async function routesUp(tag) {
  await until(async () => {
    nodeBus.publish(`node.${tag}.probe`, {}, 0);
    await page.evaluate((t) => window.party.publish([[`browser.${t}.probe`, 0]]), tag);
    const browserHeard = (await browserReceived()).some(([t]) => t === `node.${tag}.probe`);
    return browserHeard && nodeReceived.some(([t]) => t === `browser.${tag}.probe`);
  }, 15_000, 'routes between browser and node');
}

/** Every party publishes a burst of four priorities on its own topics. */
async function round(tag) {
  await page.evaluate((events) => window.party.publish(events), LEVELS.map(([l, p]) => [`browser.${tag}.${l}`, p]));
  for (const [level, priority] of LEVELS) nodeBus.publish(`node.${tag}.${level}`, { from: 'node' }, priority);
  nodeBus.publish(`browser.${tag}.forged`, { from: 'node' }, 9); // refused: outside node's grants
  const response = await fetch(`${worker.url}/events`, {
    method: 'POST',
    body: JSON.stringify(LEVELS.map(([level, priority]) => ({ topic: `agents.${tag}.status`, payload: { level }, priority }))),
  });
  assert.equal(response.status, 202, await response.text());
}

/** What a party received in round `tag`, as level names in arrival order. */
function levels(received, tag) {
  // Probes, and the forged publish that node's own bus heard locally, are not counted.
  return received.filter(([t]) => t.split('.')[1] === tag && !t.endsWith('.probe') && !t.endsWith('.forged'))
    .map(([t, , payload]) => (t.startsWith('agents.') ? `edge:${payload.level}` : `${t.split('.')[0]}:${t.split('.')[2]}`));
}

async function checkRound(tag) {
  await routesUp(tag);
  await round(tag);
  await until(() => levels(nodeReceived, tag).length >= 8, 10_000, `node hears round ${tag}`);
  await page.waitForFunction((t) => window.party.received.filter(([topic]) => topic.split('.')[1] === t && !topic.endsWith('.probe')).length >= 8,
    tag, { timeout: 10_000 });
  await new Promise((resolve) => setTimeout(resolve, 300)); // anything extra would arrive by now
  const atNode = levels(nodeReceived, tag);
  const atBrowser = levels(await browserReceived(), tag);
  const from = (list, who) => list.filter((x) => x.startsWith(`${who}:`)).map((x) => x.split(':')[1]);
  assert.deepEqual(from(atNode, 'browser'), URGENT_FIRST, `node: the browser's burst, most urgent first (${atNode})`);
  assert.deepEqual(from(atNode, 'edge'), URGENT_FIRST, `node: the worker's burst (${atNode})`);
  assert.deepEqual(from(atBrowser, 'node'), URGENT_FIRST, `browser: node's burst (${atBrowser})`);
  assert.deepEqual(from(atBrowser, 'edge'), URGENT_FIRST, `browser: the worker's burst (${atBrowser})`);
  assert.equal(atNode.length, 8, `node got exactly 8, no forged event, not its own: ${atNode}`);
  assert.equal(atBrowser.length, 8, `browser got exactly 8, not its own: ${atBrowser}`);
}

test('each party receives exactly what it subscribed to, in priority order within a burst, and nothing outside its grants', async () => {
  await checkRound('r1');
  assert.ok(nodeErrors.includes('FORBIDDEN'), `the forged publish was refused: ${nodeErrors}`);
  assert.deepEqual(await page.evaluate(() => window.party.errors), []);
});

test('after Redis restarts, every party recovers', async () => {
  redis.kill('SIGKILL');
  const health = async (bridge) => (await fetch(`${bridge.url}/healthz`)).status;
  await until(async () => (await health(bridgeA)) === 503 && (await health(bridgeB)) === 503, 10_000, 'bridges notice');
  redis = redisServer(redisPort);
  await listening(redisPort);
  await until(async () => (await health(bridgeA)) === 200 && (await health(bridgeB)) === 200, 15_000, 'bridges resubscribe');
  assert.equal(await page.evaluate(() => window.party.state()), 'open');
  assert.equal(nodeMessenger.state, 'open');
  await checkRound('r2');
  assert.deepEqual(pageErrors, []);
});

test('the browser example (examples/browser/index.html, the README snippet) connects and receives', async () => {
  const example = await browser.newPage();
  example.on('pageerror', (error) => pageErrors.push(String(error)));
  const pageToken = token('example', ['browser.>'], ['swarm.>']);
  await example.goto(`${bridgeA.url}/example.html?token=${pageToken}`);
  await example.waitForFunction(() => document.getElementById('status').textContent === 'open', null, { timeout: 10_000 });
  // Its hello reaches node (subscribed to browser.> on bridge B, through Redis).
  await until(() => nodeReceived.some(([topic]) => topic === 'browser.hello'), 10_000, 'the example\'s hello at node');
  // An HTTP publish on bridge B reaches the page.
  const response = await fetch(`${bridgeB.url}/v1/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token('http', ['swarm.>'], [])}` },
    body: JSON.stringify({ topic: 'swarm.alpha.phase', payload: { phase: 'review' }, priority: 9 }),
  });
  assert.equal(response.status, 200, await response.text());
  await example.waitForFunction(() => document.querySelector('#events li')?.textContent.includes('swarm.alpha.phase'), null, { timeout: 10_000 });
  await example.close();
  assert.deepEqual(pageErrors, []);
});
