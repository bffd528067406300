// Builds the dashboard into www/dist: the app bundled with esbuild (uPlot,
// msgpackr and the swarmbus web glue inlined), the wasm module, HTML and CSS.
// Needs the wasm package built first (`just build-wasm`); run by `just build-www`.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const www = `${root}www/`;
const dist = `${www}dist/`;

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
await build({
  entryPoints: [`${www}src/main.js`],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  outfile: `${dist}app.js`,
  logLevel: 'warning',
  // wasm-bindgen 0.2.130 lists one snippet module under the same key several times; harmless.
  logOverride: { 'duplicate-object-key': 'silent' },
});
copyFileSync(`${www}index.html`, `${dist}index.html`);
copyFileSync(`${www}src/style.css`, `${dist}style.css`);
copyFileSync(`${root}node_modules/uplot/dist/uPlot.min.css`, `${dist}uPlot.min.css`);
copyFileSync(`${root}crates/wasm/pkg/swarmbus_bg.wasm`, `${dist}swarmbus_bg.wasm`);
const size = (f) => statSync(`${dist}${f}`).size;
console.log(`www/dist: app.js ${size('app.js')} B, swarmbus_bg.wasm ${size('swarmbus_bg.wasm')} B`);
