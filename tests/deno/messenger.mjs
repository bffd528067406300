// Run by tests/edge.test.mjs under Deno: two Messengers on Deno's global
// WebSocket exchange a burst through the bridge at SWARMBUS_URL; prints the
// received topics as JSON.
import init, { Bus, Messenger } from '../../crates/wasm/pkg/index.js';

await init();
const url = Deno.env.get('SWARMBUS_URL');
const receiver = new Bus();
const received = [];
receiver.subscribe('deno.>', (event) => received.push(event.topic));
const inbound = new Messenger(receiver, { subscribe: ['deno.>'] });
const sender = new Bus();
const outbound = new Messenger(sender, { forward: ['deno.>'] });
await Promise.all([inbound.connect(url), outbound.connect(url)]);

const deadline = Date.now() + 10_000;
while (!received.includes('deno.probe') && Date.now() < deadline) {
  sender.publish('deno.probe', 0, 0);
  await new Promise((resolve) => setTimeout(resolve, 20));
}
received.length = 0;
sender.publish('deno.low', 'l', 1);
sender.publish('deno.high', 'h', 9);
while (received.filter((t) => t !== 'deno.probe').length < 2 && Date.now() < deadline) {
  await new Promise((resolve) => setTimeout(resolve, 20));
}
console.log(JSON.stringify(received.filter((t) => t !== 'deno.probe')));
inbound.free();
outbound.free();
