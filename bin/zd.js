#!/usr/bin/env node
// zd is written in TypeScript. The published package ships the bundles (dist/zd.cjs for the CLI
// and the primary, dist/keeper.cjs for the keeper) and no source: it runs those, with no compiler.
// In a git checkout, `npm run build` makes the same bundles; without one, or with one older than
// the source, tsx (a devDependency) compiles the source in memory, so `npm ci` needs no build step
// and a stale build never runs. Workers load neither: they run the app on plain node.
//
// This file is CommonJS (bin/package.json), and so are the bundles: an idle primary that loads no
// file through Node's ES module loader is some 4 MB smaller (scripts/build.mjs says why).
'use strict';
const { existsSync, readdirSync, statSync } = require('node:fs');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');

const root = join(__dirname, '..');
// `zd run` is the keeper (src/keeper/), which starts the primary as `zd run` again, marked by
// ZD_KEEPER_PID; ZD_NO_KEEPER=1 runs the primary alone (no zd upgrade then).
const keeper = process.argv[2] === 'run' && !process.env.ZD_KEEPER_PID && process.env.ZD_NO_KEEPER !== '1';
const built = join(root, 'dist', keeper ? 'keeper.cjs' : 'zd.cjs');
const source = join(root, 'src', keeper ? 'keeper' : 'cli', 'main.ts');

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

if (!existsSync(source) || freshBuild()) {
  // An installed package: the build is all there is.
  require(built);
} else {
  // tsx's ES module API (its CommonJS build of the same API resolves its own files wrongly).
  import('tsx/esm/api').then(
    ({ register }) => {
      register();
      // A failure to load is an unhandled rejection: Node prints it and exits 1.
      return import(pathToFileURL(source).href);
    },
    () => {
      process.stderr.write('zd: this checkout has no fresh build and no tsx to run its source: run `npm ci`, or `npm run build` [ZD_E_NO_BUILD]\n');
      process.exit(1);
    },
  );
}
