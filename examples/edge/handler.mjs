// The HTTP worker shared by the Deno and Cloudflare workerd examples.
//
// POST /events with one agent event or an array of them, each
// `{topic, payload, priority?, ttlMs?, sender?}`. The events are validated and
// routed by a swarmbus `Bus` (wildcard subscriptions, priorities: the most
// urgent are forwarded first); those a route accepts are forwarded to the
// bridge's `POST /v1/publish` through a `CircuitBreaker` whose state is saved
// after each request and restored at the next (`toJSON` / `fromJSON`; a real
// deployment keeps it in KV or a Durable Object).
//
// Answers: 202 `{accepted, forwarded, unrouted, ids}`; 400 `{code, message}` for
// bad input (DECODE_ERROR, INVALID_TOPIC, INVALID_PRIORITY, INVALID_ARGUMENT);
// 502 `{code: "BRIDGE_ERROR"}` when the bridge refuses; 503 `{code: "CIRCUIT_OPEN"}`
// while the breaker is open.

/** Topics this worker forwards; anything else is counted as unrouted. */
export const ROUTES = ['agents.*.status', 'agents.*.task.>', 'swarm.*.phase'];
const MAX_EVENTS = 1000;

/**
 * A `fetch(request)` handler.
 * @param {object} swarmbus the initialised `swarmbus` module
 * @param {{bridgeUrl: string, token?: string, store?: {load(): string | null, save(json: string): void}}} options
 */
export function createHandler(swarmbus, { bridgeUrl, token, store = memoryStore() }) {
  const { Bus, CircuitBreaker, encodeEnvelope } = swarmbus;

  async function forward(event) {
    const envelope = encodeEnvelope({
      topic: event.topic, payload: event.payload, priority: event.priority, ttlMs: event.ttlMs, sender: event.sender,
    });
    const headers = { 'content-type': 'application/msgpack' };
    if (token) headers.authorization = `Bearer ${token}`;
    const response = await fetch(`${bridgeUrl}/v1/publish`, { method: 'POST', headers, body: envelope });
    if (!response.ok) {
      const error = new Error(`bridge answered ${response.status}: ${await response.text()}`);
      error.code = 'BRIDGE_ERROR';
      throw error;
    }
  }

  return async function handle(request) {
    const url = new URL(request.url);
    if (url.pathname === '/breaker' && request.method === 'GET') return json(200, JSON.parse(store.load() ?? 'null'));
    if (url.pathname !== '/events' || request.method !== 'POST') {
      return json(404, { code: 'NOT_FOUND', message: 'POST /events' });
    }
    let body;
    try {
      body = await request.json();
    } catch (error) {
      return json(400, { code: 'DECODE_ERROR', message: `body is not JSON: ${error.message}` });
    }
    const events = Array.isArray(body) ? body : [body];
    if (events.length > MAX_EVENTS || events.some((e) => typeof e !== 'object' || e === null)) {
      return json(400, { code: 'INVALID_ARGUMENT', message: `send 1 to ${MAX_EVENTS} event objects` });
    }

    const bus = new Bus({ breaker: false, capacity: MAX_EVENTS });
    const saved = store.load();
    const breaker = saved ? CircuitBreaker.fromJSON(saved) : new CircuitBreaker({ failureThreshold: 3, openMs: 10_000 });
    try {
      const accepted = [];
      for (const route of ROUTES) bus.subscribe(route, (event) => accepted.push(event));
      const ids = [];
      for (const event of events) {
        ids.push(bus.publish(event.topic, event.payload ?? null, { priority: event.priority ?? 5, ttlMs: event.ttlMs }));
      }
      bus.drain();
      const byId = new Map(events.map((event, i) => [ids[i], event]));
      let forwarded = 0;
      for (const routed of accepted) {
        await breaker.run(() => forward(byId.get(routed.id)), { priority: routed.priority });
        forwarded += 1;
      }
      return json(202, { accepted: accepted.length, forwarded, unrouted: bus.metrics().unrouted, ids });
    } catch (error) {
      const status = error.code === 'CIRCUIT_OPEN' ? 503 : error.code === 'BRIDGE_ERROR' || error.code === undefined ? 502 : 400;
      return json(status, { code: error.code ?? 'BRIDGE_ERROR', message: error.message });
    } finally {
      store.save(JSON.stringify(breaker.toJSON()));
      breaker.free();
      bus.free();
    }
  };
}

/** Breaker state kept in this isolate's memory between requests. */
export function memoryStore() {
  let saved = null;
  return { load: () => saved, save: (json) => { saved = json; } };
}

function json(status, body) {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}
