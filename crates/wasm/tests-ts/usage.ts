// A typed use of the whole public API, compiled with `tsc --strict --noEmit`
// by types.test.mjs (never run). Each `@ts-expect-error` pins a mistake the
// types must catch: if a type went `any` (or an option stopped being checked),
// the directive itself becomes the error.
import {
  Bus, CircuitBreaker, Messenger, StateStore, decode, decodeEnvelope, encode, encodeEnvelope, memoryStats,
  peekHeader, version,
} from 'swarmbus/node';
import type {
  BreakerState, BreakerTransition, BusEvent, DecodedEnvelope, ErrorCode, MessengerState, Patch, Subscription,
  SwarmbusError,
} from 'swarmbus/node';
import { WebSocket } from 'ws';

interface Task { job: number; agent: string }

// Options are optional.
const bus = new Bus();
const tuned = new Bus({ capacity: 1024, breaker: { failureThreshold: 3, openMs: 1_000 }, onError: (error, id, event) => {
  const topic: string = event.topic;
  console.error(error, id, topic);
} });
tuned.free();

// Payload generics: the handler's event is typed; async handlers are allowed.
bus.subscribe<Task>('swarm.*.task', (event) => {
  const job: number = event.payload.job;
  const agent: string = event.payload.agent;
  console.log(job, agent, event.priority);
});
bus.subscribe('swarm.>', async (event: BusEvent) => {
  // @ts-expect-error an untyped payload is `unknown`, not `any`
  console.log(event.payload.job);
});
// @ts-expect-error the payload type is checked
bus.subscribe<Task>('swarm.*.task', (event) => event.payload.missing);
bus.publish<Task>('swarm.alpha.task', { job: 1, agent: 'a1' }, { priority: 6 });
// @ts-expect-error a publish's payload is checked against its type argument
bus.publish<Task>('swarm.alpha.task', { job: 'one', agent: 'a1' });
bus.publish('swarm.alpha.task', 'anything');
bus.publish('swarm.alpha.task', null, 9);
bus.publishBatch('swarm.alpha.tick', [1, 2, 3]);
const delivered: number = bus.drain();
const drainedSome: number = bus.drain(10);
const state: BreakerState | undefined = bus.breakerState(1)?.state;
bus.onError((error, subscriptionId) => console.error(error, subscriptionId));
bus.onError(null);
const queued: number = bus.metrics().byPriority.queued[9];
bus.on('open', (t: BreakerTransition) => console.log(t.subscription, t.from, t.to, t.at));
// @ts-expect-error breaker events are 'open' | 'halfOpen' | 'close'
bus.on('opened', () => {});
// A subscription without a handler is iterated; its events are typed.
const iterated = bus.subscribe<Task>('swarm.beta.task');
for await (const event of iterated) {
  const job: number = event.payload.job;
  console.log(job, iterated.id, iterated.pattern, iterated.overflowed);
  break;
}
console.log(delivered, drainedSome, state, queued, bus.queued);

// Messenger: optional options, typed callbacks, a typed WebSocket option.
const messenger = new Messenger(bus, {
  WebSocket,
  forward: ['agents.>'],
  onState: (s) => {
    const known: MessengerState = s;
    console.log(known);
  },
  onError: (error) => {
    const code: ErrorCode = error.code;
    console.log(code);
  },
});
const { session } = await messenger.connect('ws://127.0.0.1:8080/ws');
await messenger.connect('ws://127.0.0.1:8080/ws', { token: process.env.SWARMBUS_TOKEN });
// A pattern declared once: the handler is typed, the promise gives its Subscription.
const remote: Subscription<Task> = await messenger.subscribe<Task>('swarm.*.task', (event) => {
  const agent: string = event.payload.agent;
  console.log(session, agent);
});
await messenger.subscribe('swarm.>'); // remote only: resolves with nothing
await messenger.flush();
remote.unsubscribe();
// @ts-expect-error state is a union of literals
const wrong: typeof messenger.state = 'opened';
console.log(wrong, messenger.stats().droppedByPriority[8]);
messenger.close();

// Errors carry a typed code.
try {
  bus.subscribe('a..b', () => {});
} catch (error) {
  const code: ErrorCode = (error as SwarmbusError).code;
  if (code === 'INVALID_PATTERN') console.log('bad pattern');
  // @ts-expect-error not a swarmbus code
  if (code === 'NOT_A_CODE') console.log('never');
}

// Circuit breaker: `run` keeps the result type.
const breaker = new CircuitBreaker({ failureThreshold: 2 });
const n: number = await breaker.run(() => 42);
const s: string = await breaker.run(async () => 'ok', { priority: 9 });
const restored = CircuitBreaker.fromJSON(breaker.toJSON());
const closed: BreakerState = restored.state;
// @ts-expect-error state names are literals
const bogus: BreakerState = 'shut';
console.log(n, s, closed, bogus, CircuitBreaker.fromJSON(JSON.stringify(breaker)).info().consecutiveFailures);

// State store: camelCase parameters, typed reads.
const store = new StateStore();
store.set('phase', 'plan');
store.compareAndSet('phase', store.keyVersion('phase'), 'execute');
const first = store.snapshot();
store.merge('agents', { a1: { load: 0.5 } });
const patch: Patch = store.diff(first, store.snapshot('after'));
for (const op of patch.ops) if (op.op === 'set') console.log(op.key, op.value);
const phase = store.get<string>('phase');
console.log(phase?.toUpperCase(), StateStore.fromBytes(store.toBytes()).version);

// Codec and envelopes: decodeEnvelope decodes the payload unless `{ raw: true }`.
const bytes: Uint8Array = encode({ x: 1 });
const value = decode<{ x: number }>(bytes);
const envelope = encodeEnvelope({ topic: 'swarm.alpha.task', payload: { job: 1, agent: 'a1' }, priority: 6 });
const decoded: DecodedEnvelope<Task> = decodeEnvelope<Task>(envelope);
const raw: Uint8Array = decodeEnvelope(envelope, { raw: true }).payload;
// @ts-expect-error a decoded payload is not bytes
const notBytes: Uint8Array = decodeEnvelope(envelope).payload;
console.log(value.x, decoded.payload.job, raw.length, notBytes, peekHeader(envelope).topic);
console.log(version(), memoryStats().liveBytes);

// Disposal.
{
  using scoped = new Bus();
  scoped.publish('a', 1);
}
bus.free();
