// `swarmbus/node`: the same API as `swarmbus`, already initialised from the
// .wasm file next to this module (no `init` default export).
export * from './index.js';
