#!/usr/bin/env node
// Bundles zd's primary and CLI into dist/: dist/zd.mjs plus chunks it imports only when a command
// needs them (the control client, inspect, the health and metrics servers). What the published
// package runs, with no compiler. `npm pack` runs this first (prepack).
//
// xstate is bundled, from its ES module build: imported from node_modules, Node would load its
// CommonJS build and lex it for named exports, which alone got V8's optimising compiler going at
// start-up and cost the idle primary about 2 MB of RSS (bench/RESULTS.md). Every other dependency
// stays external, loaded from node_modules when (and only if) a run uses it.
//
// Built into a fresh directory and swapped in by rename: bin/zd.js may be starting zd from dist/
// at this very moment (a test, another terminal), and must never read a half-written bundle; and
// chunks of an older build, named by content hash, must not linger to be packed.
import { build } from 'esbuild';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const BUNDLED = ['xstate'];
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
  await build({
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
  });
  // The bundled libraries' licences travel with their code.
  for (const name of BUNDLED) copyFileSync(join(root, 'node_modules', name, 'LICENSE'), join(next, `${name}.LICENSE`));
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
