// The peer for `just bench-bridge`: socket.io 4 servers with @socket.io/redis-adapter
// doing the same fan-out as the bridge load generator (examples/load.rs), printing
// the same table row.
//
//   node socketio.mjs --serve 19090 --redis 16379               one server
//   node socketio.mjs --url http://127.0.0.1:19090 --url http://127.0.0.1:19091 \
//        --publishers 4 --subscribers 4 --seconds 5 [--rate 2500] --label "..."
//
// Publishers emit {t, payload} (200 bytes, send time in µs inside); the server
// broadcasts it to the room every subscriber joined; at full speed every 256th
// emit waits for its acknowledgement, as the Rust load generator does.
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { Server } from 'socket.io';
import { io as connect } from 'socket.io-client';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';

const { values: args } = parseArgs({
  options: {
    serve: { type: 'string' },
    redis: { type: 'string', default: '16379' },
    url: { type: 'string', multiple: true, default: ['http://127.0.0.1:19090'] },
    publishers: { type: 'string', default: '4' },
    subscribers: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '5' },
    rate: { type: 'string', default: '0' },
    payload: { type: 'string', default: '200' },
    label: { type: 'string', default: 'socket.io' },
  },
});

const WINDOW = 256;
const nowMicros = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

if (args.serve) {
  const pub = createClient({ url: `redis://127.0.0.1:${args.redis}` });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const http = createServer();
  const io = new Server(http, { adapter: createAdapter(pub, sub), serveClient: false });
  io.on('connection', (socket) => {
    socket.on('subscribe', (room, ack) => {
      socket.join(room);
      ack?.();
    });
    socket.on('publish', (message, ack) => {
      io.to('load').emit('event', message);
      ack?.();
    });
  });
  http.listen(Number(args.serve), '127.0.0.1', () => console.log(`listening ${args.serve}`));
} else {
  await runLoad();
}

async function open(url) {
  const socket = connect(url, { transports: ['websocket'], forceNew: true });
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  return socket;
}

async function runLoad() {
  const [publishers, subscribers, seconds, rate, size] =
    ['publishers', 'subscribers', 'seconds', 'rate', 'payload'].map((k) => Number(args[k]));
  const latencies = [];
  let delivered = 0;
  const subs = [];
  for (let i = 0; i < subscribers; i++) {
    const socket = await open(args.url[i % args.url.length]);
    await socket.emitWithAck('subscribe', 'load');
    socket.on('event', (message) => {
      latencies.push(nowMicros() - Number(message.sent));
      delivered++;
    });
    subs.push(socket);
  }
  await new Promise((resolve) => setTimeout(resolve, 300));

  let published = 0;
  let running = true;
  const started = performance.now();
  const payload = Buffer.alloc(Math.max(size - 8, 0));
  const pubs = [];
  for (let i = 0; i < publishers; i++) {
    const socket = await open(args.url[i % args.url.length]);
    pubs.push(socket);
  }
  const loops = pubs.map(async (socket, i) => {
    const topic = `load.p${i}.tick`;
    let n = 0;
    if (rate > 0) {
      // Paced: send what is due every millisecond.
      const start = performance.now();
      while (running) {
        const due = Math.floor(((performance.now() - start) / 1000) * rate);
        for (; n < due; n++, published++) socket.emit('publish', { topic, sent: nowMicros(), payload });
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      return;
    }
    while (running) {
      n++;
      const message = { topic, sent: nowMicros(), payload };
      if (n % WINDOW === 0) await socket.emitWithAck('publish', message);
      else socket.emit('publish', message);
      published++;
    }
  });
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  running = false;
  const elapsed = (performance.now() - started) / 1000;
  await Promise.all(loops);
  // Let in-flight events land, as the Rust generator waits for quiet subscribers.
  let last = -1;
  while (last !== delivered) {
    last = delivered;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  for (const socket of [...pubs, ...subs]) socket.close();
  latencies.sort((a, b) => a - b);
  const pct = (q) => (latencies[Math.min(Math.floor(latencies.length * q), latencies.length - 1)] ?? 0) / 1000;
  const lost = Math.max(published * subscribers - delivered, 0);
  console.log(`| ${args.label} | ${publishers} | ${subscribers} | ${(published / elapsed).toFixed(0)} | `
    + `${(delivered / elapsed).toFixed(0)} | ${pct(0.5).toFixed(2)} | ${pct(0.99).toFixed(2)} | ${lost} |`);
  process.exit(0);
}
