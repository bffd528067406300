// The dashboard in headless Chromium against `swarmbus-bridge demo` (run by `just test-www`).
// Settings make every panel move within seconds: 2 swarms whose failure bursts
// last 2 s of every 8 s, a phase transition every 2 s.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { launchChromium, startBridge } from '../../tests/support/bridge.mjs';

const ARTIFACTS = new URL('../../target/www-test/', import.meta.url).pathname;
const RATE = 3000;

let bridge;
let browser;
let page;
const consoleErrors = [];

before(async () => {
  bridge = await startBridge(
    ['--rate', String(RATE), '--swarms', '2', '--flaky-secs', '8', '--phase-secs', '2'],
    { command: ['demo'] },
  );
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
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
  assert.match(await page.textContent('#p99'), /^\d+$/);
  assert.match(await page.textContent('#wasm-share'), /^100\.0 %$/);
});

test('a breaker opens during a failure burst and closes after it', async () => {
  const open = await page.waitForSelector('#breakers td.state-open', { timeout: 20_000 });
  const swarm = await open.evaluate((cell) => cell.parentElement.dataset.swarm);
  await page.waitForSelector(`#breakers tr[data-swarm="${swarm}"] td.state-closed`, { timeout: 20_000 });
  const transitions = Number(await page.textContent(`#breakers tr[data-swarm="${swarm}"] td:last-child`));
  assert.ok(transitions >= 2, `open and close are transitions (${transitions})`);
});

test('the alert banner appears when the simulator is throttled below the threshold, then goes', async () => {
  await page.fill('#threshold', String(RATE / 3));
  await page.waitForSelector('#alert', { state: 'hidden', timeout: 5_000 });
  await setRate(50);
  await page.waitForSelector('#alert', { state: 'visible', timeout: 10_000 });
  await setRate(RATE);
  await page.waitForSelector('#alert', { state: 'hidden', timeout: 10_000 });
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

test('the page logged no errors; screenshot saved', async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.fill('#pattern', 'swarm.*.phase');
  await page.click('#watch');
  await page.waitForTimeout(2_500);
  await page.screenshot({ path: `${ARTIFACTS}dashboard.png`, fullPage: true });
  // The README's picture (docs/dashboard.jpg) is a copy of this one.
  await page.screenshot({ path: `${ARTIFACTS}dashboard.jpg`, type: 'jpeg', quality: 70 });
  assert.deepEqual(consoleErrors, []);
});
