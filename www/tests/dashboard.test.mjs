// The dashboard in headless Chromium against `swarmbus-bridge demo` (run by `just test-www`).
// Settings make every panel move within seconds: 4 swarms whose failure bursts
// last 2 s of every 8 s, a phase transition every 2 s.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { launchChromium, startBridge } from '../../tests/support/bridge.mjs';

const ARTIFACTS = new URL('../../target/www-test/', import.meta.url).pathname;
const RATE = 3000;
const BRIDGE_ARGS = ['--rate', String(RATE), '--swarms', '4', '--flaky-secs', '8', '--phase-secs', '2'];

let bridge;
let browser;
let page;
const consoleErrors = [];

before(async () => {
  bridge = await startBridge(BRIDGE_ARGS, { command: ['demo'] });
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on('console', (message) => message.type() === 'error' && consoleErrors.push(message.text()));
  page.on('pageerror', (error) => consoleErrors.push(String(error)));
  await page.goto(bridge.url);
  await page.waitForSelector('#conn.open', { timeout: 15_000 });
});

after(async () => {
  await browser?.close();
  await bridge?.stop();
});

const setRate = (rate) => fetch(`${bridge.url}/v1/demo/rate`, {
  method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ rate }),
});

test('the throughput chart shows non-zero values and latency is measured', async () => {
  await page.waitForFunction(() => window.dashboard.stats.throughput[1].length >= 2
    && window.dashboard.stats.throughput.slice(1).some((series) => series.some((v) => v > 0)), null, { timeout: 15_000 });
  const rate = Number(await page.getAttribute('body', 'data-rate'));
  assert.ok(rate > RATE / 3, `measured ${rate} events/s for a simulator at ${RATE}`);
  assert.match(await page.textContent('#p99'), /^\d+ ms$/);
  assert.match(await page.textContent('#wasm-share'), /^100\.0 %$/);
  assert.ok(await page.isHidden('#conn-banner'), 'connected: no disconnection banner');
});

test('the alert threshold follows the configured rate until the user sets one', async () => {
  assert.equal(await page.inputValue('#threshold'), String(RATE / 2), 'half the simulator rate');
  await page.fill('#threshold', '1234');
  await page.fill('#threshold', '');
  assert.equal(await page.inputValue('#threshold'), String(RATE / 2), 'emptied: back to following the rate');
});

test('nothing overflows its card or the page at 1400 px and 800 px', async () => {
  for (const width of [1400, 800]) {
    await page.setViewportSize({ width, height: 1000 });
    await page.waitForTimeout(1_200); // one render with every table filled
    const overflows = await page.evaluate(() => {
      const out = [];
      if (document.documentElement.scrollWidth > innerWidth) out.push(`page ${document.documentElement.scrollWidth} px`);
      for (const card of document.querySelectorAll('.card')) {
        if (card.scrollWidth > card.clientWidth) out.push(`${card.querySelector('h2').textContent}: ${card.scrollWidth} > ${card.clientWidth} px`);
      }
      return out;
    });
    assert.deepEqual(overflows, [], `at ${width} px`);
  }
  await page.setViewportSize({ width: 1400, height: 1000 });
});

test('a breaker opens during a failure burst and closes after it', async () => {
  const open = await page.waitForSelector('#breakers td.state-open', { timeout: 20_000 });
  const swarm = await open.evaluate((cell) => cell.parentElement.dataset.swarm);
  await page.waitForSelector(`#breakers tr[data-swarm="${swarm}"] td.state-closed`, { timeout: 20_000 });
  const transitions = Number(await page.textContent(`#breakers tr[data-swarm="${swarm}"] td:nth-child(5)`));
  assert.ok(transitions >= 2, `open and close are transitions (${transitions})`);
  // The last column comes from the bus's transition events, not from polling.
  assert.match(await page.textContent(`#breakers tr[data-swarm="${swarm}"] td:nth-child(6)`), /^(closed|halfOpen) at \d\d:\d\d:\d\d$/);
});

test('the inspector shows live events for a pattern, and pause stops the list', async () => {
  await page.fill('#pattern', 'swarm.*.task.assign');
  await page.click('#watch');
  await page.waitForFunction(() => document.querySelectorAll('#inspector li').length >= 3, null, { timeout: 10_000 });
  const topics = await page.$$eval('#inspector li', (items) => items.map((li) => li.textContent.split(' ')[0]));
  assert.ok(topics.every((t) => /^swarm\.[a-z]+\.task\.assign$/.test(t)), topics.join());
  await page.click('#pause');
  const first = await page.textContent('#inspector li');
  await page.waitForTimeout(1_000);
  assert.equal(await page.textContent('#inspector li'), first, 'paused: no new rows');
  await page.click('#pause');
  await page.fill('#pattern', 'swarm..bad');
  await page.click('#watch');
  assert.match(await page.textContent('#pattern-error'), /^INVALID_PATTERN/);
});

test('the state view lists snapshots and renders the diff of two', async () => {
  await page.waitForFunction(() => document.querySelectorAll('#snap-to option').length >= 2, null, { timeout: 15_000 });
  const ids = await page.$$eval('#snap-to option', (options) => options.map((o) => o.value));
  await page.selectOption('#snap-from', ids[0]);
  await page.selectOption('#snap-to', ids.at(-1));
  await page.click('#diff');
  const diff = JSON.parse(await page.textContent('#diff-output'));
  assert.ok(diff.toVersion > diff.fromVersion, JSON.stringify(diff).slice(0, 200));
  assert.ok(diff.ops.length > 0 && diff.ops.every((op) => op.op === 'set' || op.op === 'delete'));
});

// Before the tests that throttle or stop the simulator, so the picture shows the steady state.
test('screenshot of the whole page saved', async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.fill('#pattern', 'swarm.*.phase');
  await page.click('#watch');
  await page.waitForTimeout(2_500);
  await page.screenshot({ path: `${ARTIFACTS}dashboard.png`, fullPage: true });
  // The README's picture (docs/dashboard.jpg) is a copy of this one.
  await page.screenshot({ path: `${ARTIFACTS}dashboard.jpg`, type: 'jpeg', quality: 70, fullPage: true });
  assert.equal(await page.$$eval('#breakers tbody tr', (rows) => rows.length), 4, 'the 4 swarms');
});

test('the alert banner appears when the simulator is throttled below the threshold, then goes', async () => {
  await page.fill('#threshold', String(RATE / 3));
  await page.waitForSelector('#alert', { state: 'hidden', timeout: 5_000 });
  await setRate(50);
  await page.waitForSelector('#alert', { state: 'visible', timeout: 10_000 });
  await setRate(RATE);
  await page.waitForSelector('#alert', { state: 'hidden', timeout: 10_000 });
});

test('the plain-JS path is measured as such', async () => {
  const jsPage = await browser.newPage();
  jsPage.on('pageerror', (error) => consoleErrors.push(String(error)));
  await jsPage.goto(`${bridge.url}/?path=js`);
  await jsPage.waitForFunction(() => window.dashboard.stats.handled.js > 0, null, { timeout: 10_000 });
  await jsPage.waitForFunction(() => document.querySelector('#wasm-share').textContent === '0.0 %', null, { timeout: 5_000 });
  assert.equal(await jsPage.evaluate(() => window.dashboard.stats.handled.wasm), 0);
  await jsPage.waitForTimeout(1_200); // one more report
  await jsPage.close();
  // Both pages reported their counters: /metrics carries the split per client kind.
  const metrics = await (await fetch(`${bridge.url}/metrics`)).text();
  const count = (path) => Number(new RegExp(`swarmbus_client_events_total\\{kind="dashboard",path="${path}"\\} (\\d+)`)
    .exec(metrics)?.[1] ?? 0);
  assert.ok(count('wasm') > 0 && count('js') > 0, metrics.split('\n').filter((l) => l.includes('client_events')).join('\n'));
});

// Regression: with the bridge stopped, the page showed "p50 0 ms · p99 0 ms" and a
// throughput alert; the plain-JS path never reconnected and its latency was always 0
// (msgpackr decodes the u64 send time as a BigInt, which the page did not count).
test('a stopped bridge is shown as disconnected on both paths, and both reconnect with latency measured', async () => {
  const jsPage = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  jsPage.on('pageerror', (error) => consoleErrors.push(String(error)));
  await jsPage.goto(`${bridge.url}/?path=js`);
  const pages = [['wasm', page], ['js', jsPage]];
  const p99 = (p) => p.evaluate(() => window.dashboard.stats.latency[2].at(-1));
  for (const [path, p] of pages) {
    await p.waitForFunction(() => document.body.dataset.connection === 'open', null, { timeout: 15_000 });
    await p.waitForFunction(() => /^\d+ ms$/.test(document.querySelector('#p99').textContent), null, { timeout: 10_000 });
    assert.ok(await p99(p) > 0, `${path}: latency measured before the stop`);
  }

  const { port } = bridge;
  await bridge.stop(); // SIGTERM to the bridge's PID
  const stoppedAt = Date.now();
  for (const [path, p] of pages) {
    await p.waitForSelector('#conn-banner', { state: 'visible', timeout: 10_000 });
    assert.match(await p.textContent('#conn-banner'), /^Disconnected from the bridge: \w+ since \d\d:\d\d:\d\d \(\d+ s ago\)/, path);
    // The next full second has no samples: no data, never 0 ms.
    await p.waitForFunction(() => document.querySelector('#p99').textContent === 'no data', null, { timeout: 5_000 });
    assert.equal(await p.textContent('#p50'), 'no data', path);
    assert.equal(await p99(p), null, `${path}: a gap in the latency chart, not 0`);
    assert.ok(await p.isHidden('#alert'), `${path}: no throughput alert while disconnected`);
  }
  assert.ok(Date.now() - stoppedAt < 15_000);

  bridge = await startBridge(BRIDGE_ARGS, { command: ['demo'], listen: `127.0.0.1:${port}` });
  for (const [path, p] of pages) {
    await p.waitForSelector('#conn-banner', { state: 'hidden', timeout: 15_000 });
    assert.equal(await p.textContent('#conn'), 'open', path);
    await p.waitForFunction(() => /^\d+ ms$/.test(document.querySelector('#p99').textContent), null, { timeout: 10_000 });
    assert.ok(await p99(p) > 0, `${path}: latency measured after reconnecting`);
  }
  await jsPage.close();
});

test('the page logged no errors', async () => {
  // Chromium logs each refused WebSocket connection while the bridge was stopped (test above).
  assert.deepEqual(consoleErrors.filter((e) => !/^WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/ws' failed/.test(e)), []);
});
