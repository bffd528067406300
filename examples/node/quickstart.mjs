// swarmbus from Node: a Bus connected to a bridge. Run a bridge first
// (`just bridge`), then: node examples/node/quickstart.mjs
import { Bus, Messenger } from 'swarmbus/node';
import { WebSocket } from 'ws'; // Node 22+ has a global WebSocket and needs no option

const bus = new Bus();
bus.subscribe('swarm.*.phase', (event) => console.log('phase:', event.topic, event.payload));

const messenger = new Messenger(bus, { WebSocket, forward: ['swarm.>'], subscribe: ['swarm.*.phase'] });
await messenger.connect(process.env.SWARMBUS_URL ?? 'ws://127.0.0.1:8080/ws');

// Delivered to this bus's handlers and sent to every other subscriber of the bridge.
bus.publish('swarm.alpha.phase', { phase: 'execute', by: 'node' }, { priority: 9 });
bus.drain();

await new Promise((resolve) => setTimeout(resolve, 100)); // let the frame leave
console.log('sent:', messenger.stats().sent);
messenger.free();
bus.free();
