#!/usr/bin/env node
// Bundles zd's primary and CLI into dist/: dist/zd.mjs plus chunks it imports only when a command
// needs them (the control client, inspect, the health and metrics servers). What the published
// package runs, with no compiler. `npm pack` runs this first (prepack).
//
// xstate and pino are bundled, xstate from its ES module build: loaded from node_modules, each
// makes Node resolve, read and (imported from an ES module) lex a tree of CommonJS files at start-up,
// which is enough hot work for V8's optimising compiler to start (path's normalizeString, with
// pino), and its code then stays in the idle primary's RSS: bundling pino took the installed
// primary from 54.4 to 50.0 MB (bench/RESULTS.md). Every other dependency stays external, loaded
// from node_modules when (and only if) a run uses it (pino-pretty on a terminal, prom-client…).
// pino's transports (worker threads loading files by path) do not survive bundling; zd uses none.
//
// Built into a fresh directory and swapped in by rename: bin/zd.js may be starting zd from dist/
// at this very moment (a test, another terminal), and must never read a half-written bundle; and
// chunks of an older build, named by content hash, must not linger to be packed.
import { build } from 'esbuild';
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const BUNDLED = ['xstate', 'pino'];
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const external = Object.keys(pkg.dependencies ?? {}).filter((name) => !BUNDLED.includes(name));

/** A package that is neither a runtime dependency nor bundled on purpose fails the build. */
const onlyDeclared = {
  name: 'only-declared-packages',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, ({ path, importer }) => {
      if (path.startsWith('node:')) return undefined;
      const name = path.startsWith('@') ? path.split('/').slice(0, 2).join('/') : path.split('/')[0];
      if (BUNDLED.includes(name) || external.includes(name) || !importer.startsWith(root) || importer.includes('/node_modules/')) return undefined;
      return { errors: [{ text: `${path} is imported by ${importer} but is not in package.json's dependencies: the published zd could not load it` }] };
    });
  },
};

const next = mkdtempSync(join(root, '.dist-'));
chmodSync(next, 0o755); // mkdtemp makes it 0700; a package is read by other users (a service's)

try {
  const result = await build({
    // The CLI and primary; and the keeper (`zd run`'s own process), which must load the least.
    entryPoints: { zd: join(root, 'src', 'cli', 'main.ts'), keeper: join(root, 'src', 'keeper', 'main.ts') },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20.6',
    external: [...external, ...external.map((name) => `${name}/*`)],
    plugins: [onlyDeclared],
    splitting: true,
    outdir: next,
    entryNames: '[name]',
    outExtension: { '.js': '.mjs' },
    logLevel: 'warning',
    // A bundled CommonJS package calls require() (pino: node:os, node:fs, …), which an ES module
    // lacks: every output file gets one, made the way src/ makes its own.
    banner: { js: "import { createRequire as __zdCreateRequire } from 'node:module'; const require = __zdCreateRequire(import.meta.url);" },
    metafile: true,
  });
  // The licence of every package whose code is in the bundle (pino brings a few) travels with it.
  const bundledPackages = new Set();
  for (const input of Object.keys(result.metafile.inputs)) {
    const match = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (match) bundledPackages.add(match[1]);
  }
  for (const name of bundledPackages) {
    const dir = join(root, 'node_modules', name);
    const licence = readdirSync(dir).find((file) => /^licen[cs]e(\.md|\.txt)?$/i.test(file));
    if (!licence) throw new Error(`${name} is bundled but has no LICENSE file to ship with it`);
    copyFileSync(join(dir, licence), join(next, `${name.replace('@', '').replace('/', '-')}.LICENSE`));
  }
  const old = `${next}-old`;
  try {
    renameSync(dist, old);
  } catch (error) {
    if (error.code !== 'ENOENT') throw error;
  }
  renameSync(next, dist);
  rmSync(old, { recursive: true, force: true });
} catch (error) {
  rmSync(next, { recursive: true, force: true });
  throw error;
}
