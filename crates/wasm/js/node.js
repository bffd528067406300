// `swarmbus/node`: the same API as `swarmbus`, already initialised from the
// .wasm file next to this module.
import { readFileSync } from 'node:fs';
import { initSync } from './index.js';

initSync({ module: readFileSync(new URL('./swarmbus_bg.wasm', import.meta.url)) });

export * from './index.js';
