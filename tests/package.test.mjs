// The npm package as published (`npm pack` of crates/wasm/pkg, built by `just build-wasm`),
// checked the way publint would: every `exports` / `types` target is in the tarball,
// every relative import of a packed file resolves to a packed file, the licence
// files and metadata are there, and the unpacked tarball imports and runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PKG = `${ROOT}crates/wasm/pkg/`;
const WORK = `${ROOT}target/package-test/`;
const manifest = JSON.parse(readFileSync(`${PKG}package.json`, 'utf8'));

/** `npm pack --dry-run --json`: the paths the tarball would hold. */
function packedFiles() {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: PKG, encoding: 'utf8' });
  return new Set(JSON.parse(out)[0].files.map((f) => f.path));
}

/** Every string target of an `exports` value (conditions and subpaths flattened). */
function targets(value) {
  if (typeof value === 'string') return [value];
  return Object.values(value ?? {}).flatMap(targets);
}

test('every exports, types and main target is in the tarball', () => {
  const files = packedFiles();
  const wanted = [manifest.main, manifest.types, ...targets(manifest.exports)];
  assert.ok(wanted.length >= 8, wanted.join());
  for (const target of wanted) {
    const path = normalize(target);
    assert.ok(files.has(path), `${target} is referenced by package.json but not packed (files: ${[...files].join(', ')})`);
    assert.ok(existsSync(`${PKG}${path}`), `${target} does not exist`);
  }
});

test('every relative import of a packed .js or .d.ts file resolves to a packed file', () => {
  const files = packedFiles();
  let checked = 0;
  for (const file of files) {
    if (!/\.(m?js|d\.ts)$/.test(file)) continue;
    const text = readFileSync(`${PKG}${file}`, 'utf8');
    const specifiers = [
      ...text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g),
      ...text.matchAll(/new URL\(\s*['"]([^'"]+)['"]\s*,\s*import\.meta\.url/g),
    ].map((m) => m[1]);
    for (const specifier of specifiers) {
      const path = normalize(join(dirname(file), specifier));
      // A .d.ts importing './x.js' means './x.d.ts' for the compiler and './x.js' at run time.
      const candidates = file.endsWith('.d.ts') ? [path.replace(/\.js$/, '.d.ts')] : [path];
      assert.ok(candidates.some((c) => files.has(c)), `${file} imports ${specifier}, which is not packed`);
      checked += 1;
    }
  }
  assert.ok(checked >= 4, `checked ${checked} imports`);
});

test('licence files, README and metadata', () => {
  const files = packedFiles();
  for (const file of ['LICENSE-MIT', 'LICENSE-APACHE', 'README.md', 'package.json']) assert.ok(files.has(file), file);
  assert.equal(manifest.license, 'MIT OR Apache-2.0');
  assert.match(manifest.repository?.url ?? '', /^git\+https:\/\/github\.com\/.+\.git$/);
  // `ws` is what Node 20 users pass as `WebSocket`; browsers, Deno and Node 22 need nothing.
  assert.ok(manifest.peerDependencies?.ws, 'ws is a peer dependency');
  assert.equal(manifest.peerDependenciesMeta?.ws?.optional, true, 'and an optional one');
  assert.equal(manifest.dependencies, undefined, 'no runtime dependencies');
});

test('the packed tarball, unpacked into node_modules, imports and runs', () => {
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(`${WORK}node_modules/swarmbus`, { recursive: true });
  const out = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', WORK], { cwd: PKG, encoding: 'utf8' });
  const tarball = `${WORK}${JSON.parse(out)[0].filename}`;
  execFileSync('tar', ['-xzf', tarball, '-C', `${WORK}node_modules/swarmbus`, '--strip-components=1']);
  writeFileSync(`${WORK}check.mjs`, `
    import { Bus, decodeEnvelope, encodeEnvelope, version } from 'swarmbus/node';
    import init from 'swarmbus';
    const bus = new Bus();
    const seen = [];
    bus.subscribe('a.*', (event) => seen.push(event.payload));
    bus.publish('a.b', { x: 1 });
    bus.drain();
    const envelope = decodeEnvelope(encodeEnvelope({ topic: 'a.b', payload: { y: 2 } }));
    console.log(JSON.stringify({ seen, payload: envelope.payload, version: version(), init: typeof init }));
  `);
  // Handlers may run at the end of the task (auto-drain): read the result after it.
  const result = JSON.parse(execFileSync(process.execPath, [`${WORK}check.mjs`], { cwd: WORK, encoding: 'utf8' }).trim());
  assert.deepEqual(result, { seen: [{ x: 1 }], payload: { y: 2 }, version: manifest.version, init: 'function' });
});
