// The swarmbus live dashboard: connects to the bridge that serves it and shows
// what a swarm is doing, measured in this page.
//
// Events take one of two paths, counted separately: the wasm path (the
// `swarmbus` package: Messenger → Bus with per-subscription circuit breakers →
// StateStore snapshots), or a plain-JS path (a WebSocket and msgpackr) used with
// `?path=js` or when WebAssembly cannot load.
import init, { Bus, Messenger, StateStore } from 'swarmbus';
import uPlot from 'uplot';
import { pack, unpack } from 'msgpackr';

const params = new URLSearchParams(location.search);
const WS_URL = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
const HISTORY_SECS = 60;
const SNAPSHOT_EVERY_SECS = 5;
const INSPECTOR_ROWS = 50;
const GROUPS = [
  { label: '9 phase', priorities: [9], color: '#ff5c5c' },
  { label: '8 coordination', priorities: [8], color: '#f0b429' },
  { label: '7 lifecycle', priorities: [7], color: '#b48eff' },
  { label: '6 task', priorities: [6], color: '#4fb3ff' },
  { label: '1–5 general', priorities: [1, 2, 3, 4, 5], color: '#46c46e' },
  { label: '0 bulk', priorities: [0], color: '#8a98a8' },
];

const $ = (id) => document.getElementById(id);
/** What the page measured, for the browser tests. */
window.dashboard = { stats: null };

/** Counters of the current second and the history the charts draw. */
const stats = {
  perPriority: new Array(10).fill(0),
  latencies: [],
  handled: { wasm: 0, js: 0 },
  handlerFailures: 0,
  seconds: 0,
  throughput: [[], ...GROUPS.map(() => [])],
  latency: [[], [], []],
};
window.dashboard.stats = stats;

/** The simulator's send time: a number, or a BigInt where the decoder keeps u64 exact (msgpackr). */
function sentAt(payload) {
  const t = payload?.t;
  return typeof t === 'number' ? t : typeof t === 'bigint' ? Number(t) : NaN;
}

function record(priority, payload, path) {
  stats.perPriority[priority] += 1;
  stats.handled[path] += 1;
  const t = sentAt(payload);
  if (Number.isFinite(t) && stats.latencies.length < 20_000) stats.latencies.push(Date.now() - t);
}

/** The q-quantile of sorted samples; `null` (no data, drawn as a gap) when there are none. */
function percentile(sorted, q) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] : null;
}

/**
 * The connection as the page shows it: the pill, and a banner whenever the
 * bridge is not connected, saying since when. `downSince` is when the page last
 * lost (or started without) the bridge; it stays put while reconnect attempts
 * flip between `connecting` and `reconnecting`.
 */
const connection = { state: 'connecting', downSince: Date.now(), everOpen: false };
window.dashboard.connection = connection;

function showConnection(state) {
  if (state === 'open') connection.everOpen = true;
  else if (connection.state === 'open') connection.downSince = Date.now();
  connection.state = state;
  const pill = $('conn');
  pill.textContent = state;
  pill.className = `pill ${state}`;
  renderConnection();
}

function renderConnection() {
  const down = connection.state !== 'open';
  document.body.dataset.connection = down ? 'down' : 'open';
  $('conn-banner').hidden = !down;
  if (!down) return;
  const since = new Date(connection.downSince).toLocaleTimeString('en-GB');
  const secs = Math.round((Date.now() - connection.downSince) / 1000);
  $('conn-what').textContent = connection.everOpen ? 'Disconnected from the bridge' : 'Not connected to the bridge yet';
  $('conn-state').textContent = connection.state;
  $('conn-since').textContent = `${since} (${secs} s ago)`;
}

function chart(element, series, yLabel) {
  const opts = {
    width: Math.max(element.clientWidth, 300),
    height: 220,
    scales: { x: { time: true } },
    // Whole-second ticks: one point per second, no `:06.500` labels.
    axes: [{ stroke: '#8a98a8', grid: { stroke: '#263240' }, incrs: [1, 2, 5, 10, 15, 30, 60] }, { stroke: '#8a98a8', grid: { stroke: '#263240' }, label: yLabel }],
    series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2 }))],
  };
  const plot = new uPlot(opts, [[], ...series.map(() => [])], element);
  new ResizeObserver(() => plot.setSize({ width: Math.max(element.clientWidth, 300), height: 220 })).observe(element);
  return plot;
}

function pushPoint(columns, values) {
  columns.forEach((column, i) => {
    column.push(values[i]);
    if (column.length > HISTORY_SECS) column.shift();
  });
}

async function demoInfo() {
  try {
    const response = await fetch('/v1/demo');
    if (response.ok) return await response.json();
  } catch {
    // Not a demo bridge: no simulator controls.
  }
  return null;
}

/** The wasm path: everything goes through the swarmbus package. */
async function startWasm(swarms) {
  await init({ module_or_path: 'swarmbus_bg.wasm' });
  // The workers' failures are the point of the demo: their breakers count them,
  // the page counts them here (without onError the bus reports each
  // subscription's first failure to console.error).
  const bus = new Bus({
    capacity: 65_536,
    breaker: { failureThreshold: 5, openMs: 2_000, halfOpenProbes: 1 },
    onError: () => { stats.handlerFailures += 1; },
  });
  const messenger = new Messenger(bus, {
    maxBackoffMs: 2_000,
    onState: (state) => showConnection(state),
    onError: (error) => console.warn('bridge refused a frame:', error.code, error.message),
  });
  // Declared once: remote events on `swarm.>` (the bridge acknowledges the
  // pattern after the welcome) and local ones reach this handler.
  const counted = messenger.subscribe('swarm.>', (event) => record(event.priority, event.payload, 'wasm'));

  const stores = new Map();
  const workers = new Map();
  for (const swarm of swarms) {
    const store = new StateStore(64);
    stores.set(swarm, store);
    // A worker per swarm that fails on events marked `fail`: its breaker opens
    // during the simulator's failure bursts and closes after.
    workers.set(swarm, bus.subscribe(`swarm.${swarm}.>`, (event) => {
      const p = event.payload;
      if (p.fail) throw new Error(`simulated failure in ${swarm}`);
      if (p.kind === 'phase') {
        store.set('phase', p.phase);
        store.snapshot(`phase ${p.phase}`);
      } else if (p.kind === 'task') {
        store.set(`tasks.${p.task % 16}`, { agent: p.agent, seq: p.seq });
      } else if (p.kind === 'lifecycle' || p.kind === 'coordination') {
        store.set(`agents.${p.agent}`, { kind: p.kind, load: p.load, seq: p.seq });
      }
    }));
  }

  // Breaker transitions arrive as events; the table shows the latest per worker.
  const lastTransition = new Map();
  for (const name of ['open', 'halfOpen', 'close']) {
    bus.on(name, (t) => lastTransition.set(t.subscription, t));
  }

  await messenger.connect(WS_URL);
  await counted;
  showConnection(messenger.state);
  return { bus, messenger, stores, workers, lastTransition };
}

/**
 * The plain-JS path: a WebSocket and msgpackr, no breakers or state. A closed
 * socket is reopened with backoff (250 ms doubling to 2 s), like the Messenger.
 */
function startJs() {
  let socket = null;
  let backoff = 250;
  const open = () => {
    socket = new WebSocket(WS_URL);
    socket.binaryType = 'arraybuffer';
    socket.onopen = () => socket.send(pack({ t: 'hello', v: 1 }));
    socket.onclose = () => {
      showConnection('reconnecting');
      setTimeout(open, backoff);
      backoff = Math.min(backoff * 2, 2_000);
    };
    socket.onmessage = ({ data }) => {
      const frame = unpack(new Uint8Array(data));
      if (frame.t === 'welcome') {
        backoff = 250;
        showConnection('open');
        socket.send(pack({ t: 'subscribe', pattern: 'swarm.>' }));
      } else if (frame.t === 'event') {
        // The envelope: [version, id, topic, priority, timestamp, ttl, sender, swarm, correlation, payload].
        const envelope = unpack(frame.envelope);
        record(envelope[3], unpack(envelope[9]), 'js');
      }
    };
  };
  open();
  // Counters are cumulative for the page; the bridge keeps the latest per connection.
  const report = () => socket.readyState === WebSocket.OPEN
    && socket.send(pack({ t: 'report', kind: 'dashboard', wasm: stats.handled.wasm, js: stats.handled.js }));
  return { report };
}

/** `to` and the time of a breaker transition event, or a dash. */
function since(transition) {
  return transition ? `${transition.to} at ${new Date(transition.at).toLocaleTimeString('en-GB')}` : '–';
}

function renderBreakers(wasm) {
  const body = $('breakers').tBodies[0];
  if (!wasm) {
    body.innerHTML = '<tr><td colspan="6">no breakers on the plain-JS path</td></tr>';
    return;
  }
  const rows = [];
  for (const [swarm, id] of wasm.workers) {
    const info = wasm.bus.breakerState(id);
    rows.push(`<tr data-swarm="${swarm}"><td>swarm.${swarm}.&gt;</td>`
      + `<td class="state state-${info?.state}">${info?.state ?? 'none'}</td>`
      + `<td>${info?.consecutiveFailures ?? 0}</td><td>${info?.windowFailures ?? 0} / ${info?.windowCalls ?? 0}</td>`
      + `<td>${info?.transitions ?? 0}</td><td>${since(wasm.lastTransition.get(Number(id)))}</td></tr>`);
  }
  body.innerHTML = rows.join('');
}

function renderQueues(wasm) {
  const body = $('queues').tBodies[0];
  if (!wasm) {
    body.innerHTML = '<tr><td colspan="5">no local queue on the plain-JS path</td></tr>';
    return;
  }
  const m = wasm.bus.metrics().byPriority;
  const offline = wasm.messenger.stats().droppedByPriority;
  const rows = [];
  for (let p = 9; p >= 0; p--) {
    rows.push(`<tr><td>${p}</td><td>${m.queued[p]}</td><td>${m.dropped[p]}</td><td>${offline[p]}</td><td>${m.skippedOpen[p]}</td></tr>`);
  }
  body.innerHTML = rows.join('');
}

function renderShare() {
  const { wasm, js } = stats.handled;
  const total = wasm + js;
  $('wasm-share').textContent = total ? `${((wasm / total) * 100).toFixed(1)} %` : '–';
  $('wasm-count').textContent = wasm.toLocaleString('en');
  $('js-count').textContent = js.toLocaleString('en');
}

/** The alert threshold: what the user typed, else half the simulator's configured rate. */
const threshold = { userSet: false, value: 0 };

function followRate(rate) {
  if (threshold.userSet || !Number.isFinite(rate)) return;
  threshold.value = Math.round(rate / 2);
  $('threshold').value = String(threshold.value);
}

function renderAlert(rate) {
  const alert = $('alert');
  // The first second is partial: judge full seconds only. While the bridge is
  // down the connection banner says why throughput is 0; this one stays quiet.
  alert.hidden = !(stats.seconds > 1 && connection.state === 'open' && rate < threshold.value);
  $('alert-rate').textContent = rate.toLocaleString('en');
  $('alert-threshold').textContent = threshold.value.toLocaleString('en');
}

/** The topic inspector: a subscription on the watched pattern, pausable. */
function inspector(wasm) {
  let subscription = null;
  let paused = false;
  const list = $('inspector');
  const watch = () => {
    $('pattern-error').textContent = '';
    if (!wasm) {
      $('pattern-error').textContent = 'the inspector needs the wasm path';
      return;
    }
    if (subscription !== null) wasm.bus.unsubscribe(subscription);
    subscription = null;
    list.replaceChildren();
    try {
      subscription = wasm.bus.subscribe($('pattern').value.trim(), (event) => {
        if (paused) return;
        const item = document.createElement('li');
        item.textContent = `${event.topic} p${event.priority} ${JSON.stringify(event.payload)}`;
        list.prepend(item);
        while (list.children.length > INSPECTOR_ROWS) list.lastChild.remove();
      });
    } catch (error) {
      $('pattern-error').textContent = `${error.code}: ${error.message}`;
    }
  };
  $('watch').onclick = watch;
  $('pattern').onkeydown = (e) => e.key === 'Enter' && watch();
  $('pause').onclick = () => {
    paused = !paused;
    $('pause').textContent = paused ? 'resume' : 'pause';
  };
  watch();
}

/** The state view: snapshots of one swarm's store and the diff of two. */
function stateView(wasm, swarms) {
  const swarmSelect = $('swarm');
  swarmSelect.innerHTML = swarms.map((s) => `<option>${s}</option>`).join('');
  const fill = () => {
    const store = wasm?.stores.get(swarmSelect.value);
    const snapshots = store ? store.snapshots() : [];
    for (const [select, fallback] of [[$('snap-from'), 0], [$('snap-to'), snapshots.length - 1]]) {
      const keep = select.value;
      select.innerHTML = snapshots.map((s) => `<option value="${s.id}">#${s.id} ${s.label ?? ''} (v${s.version})</option>`).join('');
      if (snapshots.some((s) => String(s.id) === keep)) select.value = keep;
      else if (snapshots[fallback]) select.value = String(snapshots[fallback].id);
    }
  };
  swarmSelect.onchange = fill;
  $('diff').onclick = () => {
    const store = wasm?.stores.get(swarmSelect.value);
    if (!store) return;
    try {
      const patch = store.diff(Number($('snap-from').value), Number($('snap-to').value));
      $('diff-output').textContent = JSON.stringify(patch, null, 2);
    } catch (error) {
      $('diff-output').textContent = `${error.code}: ${error.message}`;
    }
  };
  return fill;
}

async function main() {
  const info = await demoInfo();
  const swarms = info?.swarms ?? ['alpha', 'beta', 'gamma', 'delta'];
  if (info) $('rate').value = info.rate;
  $('threshold').oninput = () => {
    // An emptied field hands the threshold back to the configured rate.
    threshold.userSet = $('threshold').value.trim() !== '';
    threshold.value = Number($('threshold').value) || 0;
    if (!threshold.userSet) followRate(Number($('rate').value));
  };
  followRate(info?.rate);
  $('apply-rate').onclick = async () => {
    const rate = Number($('rate').value);
    const response = await fetch('/v1/demo/rate', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ rate }) });
    if (response.ok) followRate(rate);
  };

  const throughputChart = chart($('throughput-chart'), GROUPS, 'events/s');
  const latencyChart = chart($('latency-chart'), [{ label: 'p50', color: '#46c46e' }, { label: 'p99', color: '#ff5c5c' }], 'ms');

  let wasm = null;
  if (params.get('path') !== 'js') {
    try {
      wasm = await startWasm(swarms);
    } catch (error) {
      console.warn('wasm path unavailable, using the plain-JS path:', error);
    }
  }
  const js = wasm ? null : startJs();
  // The bridge exports these per client kind (swarmbus_client_events_total).
  const report = () => (wasm
    ? wasm.messenger.report('dashboard', stats.handled.wasm, stats.handled.js)
    : js.report());
  $('path-mode').textContent = wasm ? 'wasm path active' : 'plain-JS path active';
  inspector(wasm);
  const refreshSnapshots = stateView(wasm, swarms);

  setInterval(() => {
    const now = Date.now() / 1000;
    stats.seconds += 1;
    const perGroup = GROUPS.map((g) => g.priorities.reduce((sum, p) => sum + stats.perPriority[p], 0));
    const total = perGroup.reduce((a, b) => a + b, 0);
    pushPoint(stats.throughput, [now, ...perGroup]);
    throughputChart.setData(stats.throughput);
    const sorted = stats.latencies.sort((a, b) => a - b);
    const [p50, p99] = [percentile(sorted, 0.5), percentile(sorted, 0.99)];
    pushPoint(stats.latency, [now, p50, p99]);
    latencyChart.setData(stats.latency);
    // No samples this second (bridge down, or nothing received): no data, never 0 ms.
    $('p50').textContent = p50 === null ? 'no data' : `${p50} ms`;
    $('p99').textContent = p99 === null ? 'no data' : `${p99} ms`;
    $('total-rate').textContent = `${total.toLocaleString('en')} events/s`;
    document.body.dataset.rate = String(total);
    stats.perPriority.fill(0);
    stats.latencies = [];

    report();
    renderConnection();
    renderAlert(total);
    renderShare();
    renderBreakers(wasm);
    renderQueues(wasm);
    if (wasm && stats.seconds % SNAPSHOT_EVERY_SECS === 0) {
      for (const store of wasm.stores.values()) store.snapshot(`t+${stats.seconds}s`);
    }
    refreshSnapshots();
  }, 1000);
}

main().catch((error) => {
  console.error(error);
  showConnection(`error: ${error.code ?? error.message}`);
});
