// The README's "Use from ..." snippets are the example files the other tests run:
// a block preceded by `<!-- snippet: PATH -->` must equal that file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

test('README snippets match the example files the tests run', () => {
  const readme = readFileSync(`${ROOT}README.md`, 'utf8');
  const snippets = [...readme.matchAll(/<!-- snippet: (\S+) -->\n```\w*\n([\s\S]*?)```/g)];
  assert.ok(snippets.length >= 4, `found ${snippets.length} snippets`);
  for (const [, path, block] of snippets) {
    assert.equal(block, readFileSync(`${ROOT}${path}`, 'utf8'), `README block for ${path} is out of date`);
  }
});
