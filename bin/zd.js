#!/usr/bin/env node
// zd is written in TypeScript. `npm run build` bundles it to dist/zd.mjs (plus chunks loaded on use) (what a published package
// ships: a lighter primary, no compiler in memory); without a build, or with one older than the
// source, tsx compiles the source in memory, so `npm ci` needs no build step and no install
// script, and a stale build is never what runs. Workers never load either: they run the app on
// plain node.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const built = join(root, 'dist', 'zd.mjs');

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs);
  }
  return newest;
}

function freshBuild() {
  try {
    return statSync(built).mtimeMs >= Math.max(newestSource(join(root, 'src')), newestSource(join(root, 'machines')));
  } catch {
    return false; // no build
  }
}

if (freshBuild()) {
  await import(built);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
