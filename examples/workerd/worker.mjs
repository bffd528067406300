// swarmbus in a Cloudflare Worker: the edge worker of examples/edge/handler.mjs.
// Bundled into dist/ by build.mjs; workerd (or wrangler) provides swarmbus_bg.wasm
// as a compiled WebAssembly.Module.
import * as swarmbus from '../../crates/wasm/pkg/index.js';
import wasm from './swarmbus_bg.wasm';
import { createHandler } from '../edge/handler.mjs';

swarmbus.initSync({ module: wasm });
let handler;

export default {
  async fetch(request, env) {
    handler ??= createHandler(swarmbus, { bridgeUrl: env.BRIDGE_URL || 'http://127.0.0.1:8080', token: env.SWARMBUS_TOKEN });
    return handler(request);
  },
};
