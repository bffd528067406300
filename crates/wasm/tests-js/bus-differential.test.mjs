// The JS `Bus` (queue and handler loop in JS, routing and breakers asked of
// core) against core's own bus (`CoreBus`, the reference): the same random
// subscribe / unsubscribe / publish / publishBatch / drain sequences, with
// failing handlers, `once`, a small capacity (evictions, QUEUE_FULL) and
// publishes from inside handlers, must give the same deliveries in the same
// order, the same errors and the same counters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus, CoreBus } from 'swarmbus/node';

/** mulberry32: a small seeded generator, so a failing seed can be replayed. */
function generator(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PATTERNS = ['a.b', 'a.*', 'a.>', '>', '*.b', 'c.*.d', 'c.>', 'a.b.c', '*.*', 'bad..pattern'];
const TOPICS = ['a.b', 'a.c', 'a.b.c', 'c.x.d', 'c.y', 'b', 'x.b', 'bad..topic'];

function outcome(fn) {
  try {
    return ['ok', fn()];
  } catch (error) {
    return ['error', error.code];
  }
}

function run(seed, steps) {
  const random = generator(seed);
  const pick = (list) => list[Math.floor(random() * list.length)];
  const options = { capacity: 12, breaker: { failureThreshold: 2, openMs: 1e9, halfOpenProbes: 1 } };
  const sides = [
    { bus: new Bus({ ...options, autoDrain: false, onError: () => {} }), log: [], subs: [] },
    { bus: new CoreBus({ ...options, onError: () => {} }), log: [], subs: [] },
  ];
  const results = [[], []];
  for (let step = 0; step < steps; step++) {
    const r = random();
    const op = r < 0.15 ? 'subscribe' : r < 0.22 ? 'unsubscribe' : r < 0.7 ? 'publish' : r < 0.8 ? 'batch' : 'drain';
    const args = {
      pattern: pick(PATTERNS),
      once: random() < 0.2,
      topic: pick(TOPICS),
      priority: Math.floor(random() * 10),
      victim: Math.floor(random() * 8),
      max: random() < 0.5 ? undefined : Math.floor(random() * 5),
      size: 1 + Math.floor(random() * 4),
    };
    sides.forEach((side, s) => {
      const { bus, log, subs } = side;
      let result;
      switch (op) {
        case 'subscribe': {
          const index = subs.length;
          result = outcome(() => {
            const sub = bus.subscribe(args.pattern, (e) => {
              log.push([index, e.topic, e.priority, e.payload]);
              if (index % 3 === 0 && e.payload % 4 === 0) throw new Error('fails');
              if (index % 5 === 1 && e.payload % 5 === 0) bus.publish('a.b', e.payload + 1000, 9);
            }, { once: args.once });
            subs.push(typeof sub === 'object' ? sub.id : sub);
            return index;
          });
          break;
        }
        case 'unsubscribe':
          result = subs.length === 0 ? ['ok', false] : outcome(() => bus.unsubscribe(subs[args.victim % subs.length]));
          break;
        case 'publish':
          result = outcome(() => { bus.publish(args.topic, step, args.priority); return true; });
          break;
        case 'batch':
          result = outcome(() => bus.publishBatch(args.topic, Array.from({ length: args.size }, (_, i) => step * 10 + i), args.priority));
          break;
        default:
          result = outcome(() => bus.drain(args.max));
      }
      results[s].push([step, op, ...result, op === 'subscribe' ? args.pattern + (args.once ? ' once' : '') : op === 'publish' ? args.topic + ' p' + args.priority : '']);
    });
  }
  const finalCalls = sides.map(({ bus }) => bus.drain());
  const counters = sides.map(({ bus }) => {
    const m = bus.metrics();
    return [m.published, m.delivered, m.dropped, m.rejected, m.evicted, m.handlerErrors, m.skippedOpen, m.unrouted, m.breakerTransitions, m.byPriority.dispatched, m.byPriority.dropped];
  });
  for (const { bus } of sides) bus.free();
  return { results, logs: sides.map((s) => s.log), finalCalls, counters };
}

test('JS Bus and core bus deliver identically over 200 random sequences', () => {
  for (let seed = 1; seed <= 200; seed++) {
    const { results, logs, finalCalls, counters } = run(seed, 150);
    assert.deepEqual(results[0], results[1], `seed ${seed}: results of each call`);
    assert.deepEqual(logs[0], logs[1], `seed ${seed}: deliveries in order`);
    assert.equal(finalCalls[0], finalCalls[1], `seed ${seed}: final drain`);
    assert.deepEqual(counters[0], counters[1], `seed ${seed}: counters`);
  }
});
