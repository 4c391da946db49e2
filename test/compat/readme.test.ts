// The README's "Works with" table names the framework versions the compatibility suite ran
// against: it must name the ones installed now, or it claims what no test showed.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../helpers/zd.ts';

test('the README\'s "Works with" table names the versions installed in node_modules', () => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Works with\n');
  assert.ok(start >= 0, 'README has a "Works with" section');
  const section = readme.slice(start + 1, readme.indexOf('\n## ', start + 1));
  const named = [...section.matchAll(/`(@?[a-z0-9][\w.-]*(?:\/[\w.-]+)?)` (\d+\.\d+\.\d+)/g)].map((m) => [m[1]!, m[2]!] as const);
  assert.ok(named.length >= 7, `the table names its packages with versions: ${JSON.stringify(named)}`);
  for (const [name, version] of named) {
    const installed = (JSON.parse(readFileSync(join(repoRoot, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
    assert.equal(version, installed, `README says ${name} ${version}, node_modules has ${installed}`);
  }
});
