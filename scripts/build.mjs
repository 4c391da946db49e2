#!/usr/bin/env node
// Bundles zd into dist/: dist/zd.cjs (the CLI and the primary) and dist/keeper.cjs (the keeper, `zd
// run`'s own process, which must load the least). What the published package runs, with no
// compiler. `npm pack` runs this first (prepack).
//
// The idle primary's memory (issue #11, bench/RESULTS.md) decides the shape:
// - CommonJS, one file per process, not ES modules in chunks: Node's ES module loader resolves
//   every import of every chunk with path.resolve, and inside an app's node_modules that is enough
//   hot work at start-up for V8's optimising compiler to start (on path's normalizeString); its
//   code then stays in the primary's RSS, about 4 MB. One CommonJS file is read once. What a
//   command loads only on use (the control client, inspect, the health and metrics servers) is
//   still evaluated only on use: esbuild turns each `await import()` of zd's own code into a lazy
//   initialiser in the same file.
// - Whitespace minified: comments go, and with them the few non-ASCII characters that made V8 hold
//   the whole source as a two-byte string (about 1 MB for the primary). Names are kept, so a stack
//   trace still reads.
// - xstate and pino bundled, xstate from its ES module build: loaded from node_modules, each makes
//   Node resolve and read a tree of files at start-up, the same hot path work. Every other
//   dependency stays external, loaded from node_modules when (and only if) a run uses it
//   (pino-pretty on a terminal, prom-client, the WASM Graphviz). pino's transports (worker threads
//   loading files by path) do not survive bundling; zd uses none.
//
// Built into a fresh directory and swapped in by rename: bin/zd.js may be starting zd from dist/
// at this very moment (a test, another terminal), and must never read a half-written bundle.
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

/**
 * What pino and sonic-boom load at start-up and a zd process never uses: 0.4 MB of an idle process's
 * RSS, most of it the modules' source and code cache mapped in from the node binary
 * (bench/memory.mjs's module table; bench/RESULTS.md "memory:steps"). pino's
 * transports run in worker threads that load files by path, which a bundle does not have, so
 * thread-stream could never work here; pino asks worker_threads only whether it runs in one, and a
 * zd bundle is always a process's main thread; sonic-boom calls assert() once, on its fd.
 */
const UNUSED = {
  'thread-stream': "module.exports = function ThreadStream() { throw new Error('pino transports are not bundled with zd'); };",
  worker_threads: 'module.exports = { isMainThread: true };',
  assert: "module.exports = function assert(value, message) { if (!value) throw new Error(message); };",
};
const leaveUnused = {
  name: 'leave-unused',
  setup(b) {
    const filter = new RegExp(`^(${Object.keys(UNUSED).join('|')})$`);
    b.onResolve({ filter }, ({ path, importer }) =>
      /\/node_modules\/(pino|sonic-boom)\//.test(importer) ? { path, namespace: 'zd-unused' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'zd-unused' }, ({ path }) => ({ contents: UNUSED[path], loader: 'js' }));
  },
};

const next = mkdtempSync(join(root, '.dist-'));
chmodSync(next, 0o755); // mkdtemp makes it 0700; a package is read by other users (a service's)

try {
  const result = await build({
    entryPoints: { zd: join(root, 'src', 'cli', 'main.ts'), keeper: join(root, 'src', 'keeper', 'main.ts') },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20.6',
    external: [...external, ...external.map((name) => `${name}/*`)],
    plugins: [onlyDeclared, leaveUnused],
    outdir: next,
    entryNames: '[name]',
    outExtension: { '.js': '.cjs' },
    logLevel: 'warning',
    minifyWhitespace: true,
    minifySyntax: true,
    charset: 'ascii',
    // The source's ES modules find their package with createRequire(import.meta.url); a CommonJS
    // file has no import.meta, and its own URL serves the same purpose.
    define: { 'import.meta.url': '__zdFileUrl' },
    banner: { js: "'use strict';const __zdFileUrl=require('node:url').pathToFileURL(__filename).href;" },
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
