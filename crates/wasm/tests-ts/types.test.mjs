// The package's hand-written TypeScript contract (crates/wasm/js/*.d.ts), checked
// against the built package (`just test-js` links it as node_modules/swarmbus):
//   * usage.ts, the example files and every JS code block of the root and npm
//     READMEs compile with `tsc --strict --noEmit` (the snippets as .ts copies);
//   * the declarations name exactly the runtime exports of `swarmbus/node`, and
//     each class declares exactly its runtime members (drift test);
//   * no `any` in the public declarations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PKG = `${ROOT}node_modules/swarmbus/`;
const OUT = `${ROOT}target/tests-ts/`;
const TSC = `${ROOT}node_modules/.bin/tsc`;
const COMPILER_OPTIONS = { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022' };
/** The hand-written declaration files of the package (the glue's swarmbus.d.ts is internal). */
const PUBLIC_DTS = ['index.d.ts', 'node.d.ts', 'bus.d.ts'].filter((f) => existsSync(`${PKG}${f}`));

/** Runs `tsc -p` on a config listing `files`; resolves to its output, empty when they compile. */
function tsc(name, files, options) {
  const config = `${OUT}tsconfig.${name}.json`;
  writeFileSync(config, JSON.stringify({ compilerOptions: { ...COMPILER_OPTIONS, ...options }, files }, null, 2));
  try {
    execFileSync(TSC, ['-p', config], { cwd: ROOT, encoding: 'utf8' });
    return '';
  } catch (error) {
    return `${error.stdout}${error.stderr}`;
  }
}

/** The ```js / ```ts blocks of a Markdown file, with the line each starts on. */
function codeBlocks(path) {
  const text = readFileSync(`${ROOT}${path}`, 'utf8');
  const blocks = [];
  for (const match of text.matchAll(/(<!-- snippet: \S+ -->\n)?```(js|javascript|ts|typescript|mjs)\n([\s\S]*?)```/g)) {
    const line = text.slice(0, match.index).split('\n').length + (match[1] ? 1 : 0);
    blocks.push({ line, code: match[3], snippetOf: match[1] ? /snippet: (\S+)/.exec(match[1])[1] : null });
  }
  return blocks;
}

/** Writes `code` as a .ts file under target/tests-ts/ (ESM: the repository's package.json is type module). */
function write(name, source, code) {
  const path = `${OUT}${name}`;
  writeFileSync(path, `// From ${source}\n${code}`);
  return path;
}

test('usage.ts, the examples and every README snippet compile with tsc --strict', () => {
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  const node = [`${ROOT}crates/wasm/tests-ts/usage.ts`];
  const browser = [];
  for (const file of readdirSync(`${ROOT}examples/node`).filter((f) => f.endsWith('.mjs'))) {
    node.push(write(`example-node-${file.replace(/\.mjs$/, '.ts')}`, `examples/node/${file}`,
      readFileSync(`${ROOT}examples/node/${file}`, 'utf8')));
  }
  // The browser example's module script, importing the package by name instead of './index.js'.
  const html = readFileSync(`${ROOT}examples/browser/index.html`, 'utf8');
  const script = /<script type="module">([\s\S]*?)<\/script>/.exec(html)[1];
  browser.push(write('example-browser.ts', 'examples/browser/index.html', script.replace("'./index.js'", "'swarmbus'")));
  let readmeBlocks = 0;
  for (const readme of ['README.md', 'crates/wasm/js/README.md']) {
    for (const { line, code, snippetOf } of codeBlocks(readme)) {
      // Blocks that mirror an example file are compiled as that file (above);
      // the Deno and workerd ones run in their own runtimes (tests/edge.test.mjs).
      if (snippetOf) continue;
      readmeBlocks += 1;
      const name = `${readme.replaceAll('/', '-').replace(/\.md$/, '')}-line${line}.ts`;
      // Blocks importing `swarmbus/node` are Node code; the rest run in a browser.
      (/from 'swarmbus\/node'/.test(code) ? node : browser).push(write(name, `${readme}:${line}`, code));
    }
  }
  assert.ok(readmeBlocks >= 3, `found ${readmeBlocks} README blocks`);
  assert.equal(tsc('node', node, { lib: ['es2022'], types: ['node'] }), '', 'Node snippets (lib es2022 + @types/node)');
  assert.equal(tsc('browser', browser, { lib: ['es2022', 'dom'], types: [] }), '', 'browser snippets (lib es2022 + dom, no Node types)');
});

test('the .d.ts files declare exactly the runtime exports and class members of swarmbus/node', async () => {
  const runtime = await import('swarmbus/node');
  const program = ts.createProgram([`${PKG}node.d.ts`], {
    strict: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022, types: ['node'],
  });
  const checker = program.getTypeChecker();
  const moduleSymbol = checker.getSymbolAtLocation(program.getSourceFile(`${PKG}node.d.ts`));
  const resolve = (symbol) => (symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol);
  const declared = new Map(checker.getExportsOfModule(moduleSymbol)
    .map((symbol) => [symbol.name, resolve(symbol)])
    .filter(([, symbol]) => symbol.flags & ts.SymbolFlags.Value));
  assert.deepEqual([...declared.keys()].sort(), Object.keys(runtime).sort(),
    'every runtime export of swarmbus/node is declared, and every declared value exists');

  // Members: public names only (internal ones start with `_`; symbols such as Symbol.dispose are left out).
  const visible = (name) => !name.startsWith('_') && !name.startsWith('#') && name !== 'constructor';
  for (const [name, symbol] of declared) {
    if (!(symbol.flags & ts.SymbolFlags.Class)) continue;
    const cls = runtime[name];
    const instance = checker.getPropertiesOfType(checker.getDeclaredTypeOfSymbol(symbol)).map((p) => p.name);
    const statics = checker.getPropertiesOfType(checker.getTypeOfSymbol(symbol)).map((p) => p.name);
    const protoNames = new Set();
    for (let proto = cls.prototype; proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
      for (const member of Object.getOwnPropertyNames(proto)) protoNames.add(member);
    }
    assert.deepEqual(instance.filter(visible).sort(), [...protoNames].filter(visible).sort(), `${name}: instance members`);
    assert.deepEqual(statics.filter((s) => visible(s) && s !== 'prototype').sort(),
      Object.getOwnPropertyNames(cls).filter((s) => visible(s) && !['length', 'name', 'prototype'].includes(s)).sort(),
      `${name}: static members`);
  }
});

test('no `any` in the public declarations', () => {
  assert.ok(PUBLIC_DTS.includes('index.d.ts') && PUBLIC_DTS.includes('node.d.ts'), PUBLIC_DTS.join());
  const found = [];
  for (const file of PUBLIC_DTS) {
    const text = readFileSync(`${PKG}${file}`, 'utf8');
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
    const visit = (node) => {
      if (node.kind === ts.SyntaxKind.AnyKeyword) {
        const { line } = source.getLineAndCharacterOfPosition(node.getStart());
        found.push(`${file}:${line + 1}: ${text.split('\n')[line].trim()}`);
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  assert.deepEqual(found, []);
});

test("package.json points `types` at the hand-written declarations", () => {
  const pkg = createRequire(import.meta.url)(`${PKG}package.json`);
  assert.equal(pkg.types, './index.d.ts');
  assert.equal(pkg.exports['.'].types, './index.d.ts');
  assert.equal(pkg.exports['./node'].types, './node.d.ts');
  for (const file of ['index.d.ts', 'node.d.ts']) {
    assert.doesNotMatch(readFileSync(`${PKG}${file}`, 'utf8'), /from '\.\/swarmbus\.js'/,
      `${file} must not re-export the raw wasm-bindgen glue types`);
  }
});

test('ErrorCode lists every code core, the bridge, the protocol doc and the package can give', () => {
  const program = ts.createProgram([`${PKG}index.d.ts`], { strict: true, types: [] });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(`${PKG}index.d.ts`);
  const alias = source.statements.find((s) => ts.isTypeAliasDeclaration(s) && s.name.text === 'ErrorCode');
  const declared = new Set(checker.getTypeAtLocation(alias).types.map((t) => t.value));
  const found = new Map();
  const collect = (file, pattern) => {
    for (const match of readFileSync(`${ROOT}${file}`, 'utf8').matchAll(pattern)) found.set(match[1], file);
  };
  const rustFiles = (dir) => readdirSync(`${ROOT}${dir}`).filter((f) => f.endsWith('.rs')).map((f) => `${dir}/${f}`);
  // Rust: `Variant => "CODE"` in code() methods, `CODE: &str = "CODE"` constants, `Error::new("CODE", ...)`.
  for (const file of [...rustFiles('crates/core/src'), ...rustFiles('crates/redis-bridge/src'), ...rustFiles('crates/wasm/src')]) {
    collect(file, /=> "([A-Z][A-Z_]{2,})"/g);
    collect(file, /CODE: &(?:'static )?str = "([A-Z][A-Z_]{2,})"/g);
    collect(file, /Error::new\("([A-Z][A-Z_]{2,})"/g);
  }
  // JS: `code = 'CODE'` / `code: 'CODE'` in the package's own modules.
  for (const file of ['crates/wasm/js/index.js', 'crates/wasm/js/bus.js', 'crates/wasm/src/helpers.js']) {
    collect(file, /code(?: =|:) '([A-Z][A-Z_]{2,})'/g);
  }
  // docs/protocol.md: the error frame's codes.
  const protocol = readFileSync(`${ROOT}docs/protocol.md`, 'utf8');
  const paragraph = /^Error codes:([\s\S]*?)\n\n/m.exec(protocol)?.[1] ?? '';
  for (const match of paragraph.matchAll(/`([A-Z][A-Z_]{2,})`/g)) found.set(match[1], 'docs/protocol.md');
  assert.ok(found.size >= 20, `found ${found.size} codes`);
  const missing = [...found].filter(([code]) => !declared.has(code)).map(([code, file]) => `${code} (${file})`);
  assert.deepEqual(missing, [], 'codes missing from ErrorCode in crates/wasm/js/index.d.ts');
});
