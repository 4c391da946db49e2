// docs/compat.md's "Works with" table names the framework versions the compatibility suite ran
// against: it must name the ones installed now, or it claims what no test showed.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../helpers/zd.ts';

/** The `name` version pairs a page names, as `` `express` 5.3.0 ``. */
function namedVersions(text: string): Array<readonly [string, string]> {
  return [...text.matchAll(/`(@?[a-z0-9][\w.-]*(?:\/[\w.-]+)?)` (\d+\.\d+\.\d+)/g)].map((m) => [m[1]!, m[2]!] as const);
}

test('docs/compat.md\'s "Works with" table names the versions installed in node_modules', () => {
  const page = readFileSync(join(repoRoot, 'docs', 'compat.md'), 'utf8');
  const table = page.split('\n').filter((line) => line.startsWith('|'));
  assert.ok(table.length >= 9, 'docs/compat.md has its table');
  const named = namedVersions(table.join('\n'));
  assert.ok(named.length >= 7, `the table names its packages with versions: ${JSON.stringify(named)}`);
  for (const [name, version] of named) {
    const installed = (JSON.parse(readFileSync(join(repoRoot, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
    assert.equal(version, installed, `docs/compat.md says ${name} ${version}, node_modules has ${installed}`);
  }
});
