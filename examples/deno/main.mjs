// swarmbus in Deno: the edge worker of examples/edge/handler.mjs on Deno.serve.
//
//   deno run --allow-net=127.0.0.1 --allow-read --allow-env examples/deno/main.mjs
//
// Env: PORT (default 8788), SWARMBUS_BRIDGE_URL (default http://127.0.0.1:8080),
// SWARMBUS_TOKEN (when the bridge has --auth-secret).
import init, * as swarmbus from '../../crates/wasm/pkg/index.js';
import { createHandler } from '../edge/handler.mjs';

await init(); // loads swarmbus_bg.wasm next to the glue
const handler = createHandler(swarmbus, {
  bridgeUrl: Deno.env.get('SWARMBUS_BRIDGE_URL') ?? 'http://127.0.0.1:8080',
  token: Deno.env.get('SWARMBUS_TOKEN'),
});
Deno.serve({
  hostname: '127.0.0.1',
  port: Number(Deno.env.get('PORT') ?? 8788),
  onListen: ({ hostname, port }) => console.log(`listening on http://${hostname}:${port}`),
}, handler);
