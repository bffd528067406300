// Bundles worker.mjs (the swarmbus glue and the shared handler inlined) into
// dist/worker.mjs and copies the wasm module next to it, for config.capnp.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
mkdirSync(`${here}dist`, { recursive: true });
await build({
  entryPoints: [`${here}worker.mjs`],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  outfile: `${here}dist/worker.mjs`,
  external: ['./swarmbus_bg.wasm'],
  logLevel: 'warning',
  // wasm-bindgen 0.2.130 lists one snippet module under the same key several times; harmless.
  logOverride: { 'duplicate-object-key': 'silent' },
});
copyFileSync(`${here}../../crates/wasm/pkg/swarmbus_bg.wasm`, `${here}dist/swarmbus_bg.wasm`);
