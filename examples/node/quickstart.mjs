// swarmbus from Node: a Bus connected to a bridge. Run a bridge first
// (`just bridge`), then: node examples/node/quickstart.mjs
import { Bus, Messenger } from 'swarmbus/node';
import { WebSocket } from 'ws'; // Node 22+ has a global WebSocket and needs no option

const bus = new Bus();
const messenger = new Messenger(bus, { WebSocket, forward: ['swarm.>'] });
await messenger.connect(process.env.SWARMBUS_URL ?? 'ws://127.0.0.1:8080/ws');
// One declaration for remote and local events; resolves once the bridge has acknowledged it.
const phases = await messenger.subscribe('swarm.*.phase', (event) => console.log('phase:', event.topic, event.payload));

// Delivered to this bus's handlers in a microtask after the current synchronous
// code, and sent to every other subscriber of the bridge; flush() resolves once the bridge has it.
bus.publish('swarm.alpha.phase', { phase: 'execute', by: 'node' }, { priority: 9 });
await messenger.flush();

console.log('sent:', messenger.stats().sent);
phases.unsubscribe();
messenger.free(); // closes the connection and releases the wasm memory
bus.free();
