// After warm-up, a long mix of operations (10% throwing handlers, 10% invalid
// input) must leave the allocator exactly where it was: nothing leaks on error
// paths. SWARMBUS_SOAK_OPS overrides the count (`just soak`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus, encode, decode, encodeEnvelope, decodeEnvelope, peekHeader, memoryStats } from 'swarmbus/node';

const OPS = Number(process.env.SWARMBUS_SOAK_OPS ?? 1_000_000);
const TOPICS = Array.from({ length: 40 }, (_, i) => `swarm.s${i % 8}.agent${i}.task`);

function workload(bus, count, startAt) {
  let errors = 0;
  for (let i = startAt; i < startAt + count; i++) {
    const topic = TOPICS[i % TOPICS.length];
    try {
      switch (i % 10) {
        case 0: case 1: case 2:
          bus.publish(topic, { i, tags: ['a', 'b'] }, { priority: i % 10 });
          break;
        case 3:
          bus.drain();
          break;
        case 4:
          decode(encode({ i, name: topic, nested: { list: [1, 2, 3], ok: true } }));
          break;
        case 5: {
          const bytes = encodeEnvelope({ topic, priority: 6, payload: { i }, sender: 'agent' });
          decodeEnvelope(bytes);
          bus.publishEnvelope(bytes);
          break;
        }
        case 6:
          peekHeader(encodeEnvelope({ topic, payload: new Uint8Array(64) }));
          break;
        case 7:
          bus.metrics();
          break;
        case 8:
          bus.drain(2);
          break;
        case 9: // invalid input, one kind per round
          switch ((i / 10) % 4 | 0) {
            case 0: bus.publish('bad..topic', 1); break;
            case 1: decode(new Uint8Array([0x92, 0x01])); break;
            case 2: encodeEnvelope({ topic: 'x.*', payload: 1 }); break;
            default: bus.subscribe('a.>.b', () => {});
          }
          break;
      }
    } catch (error) {
      if (!error.code) throw error;
      errors++;
    }
  }
  bus.drain();
  return errors;
}

test(`${OPS} mixed operations leak nothing`, () => {
  const bus = new Bus({ capacity: 4096, breaker: { failureThreshold: 1000000 } });
  let calls = 0;
  bus.subscribe('swarm.*.>', () => { if (++calls % 10 === 0) throw new Error('handler failure'); });
  bus.subscribe('swarm.s1.>', () => {});
  workload(bus, 50_000, 0);
  // The first memoryStats() call itself allocates once (serializer state kept for
  // later calls); with the JS Bus nothing in the workload serializes before it.
  memoryStats();
  const before = memoryStats();
  const errors = workload(bus, OPS, 50_000);
  const after = memoryStats();
  const m = bus.metrics();
  assert.ok(errors >= OPS / 10 - 1, `expected ~10% invalid input, saw ${errors}`);
  assert.ok(m.handlerErrors > OPS / 50, `expected throwing handlers, saw ${m.handlerErrors}`);
  assert.equal(after.liveAllocations, before.liveAllocations, 'live allocations back at baseline');
  assert.equal(after.liveBytes, before.liveBytes, 'live bytes back at baseline');
  assert.equal(after.wasmBytes, before.wasmBytes, 'linear memory did not grow');
  bus.free();
});
