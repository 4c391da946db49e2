// Issue #11: zd as users get it. `npm pack` builds first and ships only what runs; the tarball,
// installed into a fresh app the way a user installs it (its dependencies from the registry or
// npm's cache, no tsx, no compiler), answers `zd --version` and runs an app: it serves on every
// worker, the app's `require('zd-runner/worker')` resolves to the installed API, and SIGTERM exits
// 0 leaving no process behind.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { distinctPids } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { assertAllDead, cleanup, fastFlags, repoRoot, runApp, testRuntimeDir } from '../helpers/zd.ts';

afterEach(cleanup);

const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { name: string; version: string };

interface PackResult {
  filename: string;
  files: Array<{ path: string }>;
}

function npm(args: string[], cwd: string, timeoutMs: number): string {
  const result = spawnSync('npm', args, {
    cwd,
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, NODE_TEST_CONTEXT: undefined, npm_config_update_notifier: 'false', npm_config_loglevel: 'error' },
  });
  assert.equal(result.status, 0, `npm ${args.join(' ')} exited ${result.status ?? result.signal}:\n${result.stderr}${result.stdout}`);
  return result.stdout;
}

/** npm pack's --json report; the lifecycle scripts' output (prepack's) may come before it. */
function packReport(stdout: string): PackResult {
  return (JSON.parse(stdout.slice(stdout.indexOf('[\n'))) as PackResult[])[0]!;
}

test('npm pack --dry-run: the build, the bin, the worker directory and its types, README and licences; no test, bench or source', () => {
  const files = packReport(npm(['pack', '--dry-run', '--json'], repoRoot, 60_000)).files.map((f) => f.path).sort();
  for (const needed of [
    'package.json',
    'README.md',
    'LICENSE',
    'bin/zd.js',
    'bin/package.json',
    'dist/zd.cjs',
    'dist/keeper.cjs',
    'dist/xstate.LICENSE',
    'src/worker/bootstrap.cjs',
    'src/worker/api.cjs',
    'src/worker/api.d.cts',
    'src/worker/shared.cjs',
  ]) {
    assert.ok(files.includes(needed), `${needed} is packed; the tarball holds: ${files.join(', ')}`);
  }
  const stray = files.filter(
    (path) =>
      /^(test|bench|scripts|machines|examples|docs|diagrams|\.ci)\//.test(path) ||
      /(^|\/)[^/]*\.test\.[cm]?[jt]s$/.test(path) ||
      (path.startsWith('src/') && !path.startsWith('src/worker/')) ||
      (/\.[cm]?ts$/.test(path) && !/\.d\.[cm]?ts$/.test(path)),
  );
  assert.deepEqual(stray, [], 'nothing but what runs');
  // Each process is one file: a bundle that requires or imports a file of its own beside it would
  // need that file packed (and would cost the primary the module loader's path work, scripts/build.mjs).
  for (const path of files.filter((p) => p.startsWith('dist/') && /\.[cm]?js$/.test(p))) {
    const text = readFileSync(join(repoRoot, path), 'utf8');
    const local = [...text.matchAll(/(?:require\(|import\()\s*["'](\.{1,2}\/[^"']+)["']/g)].map((m) => m[1]);
    assert.deepEqual(local, [], `${path} loads files of its own`);
  }
});

test('installed from the tarball into a fresh app: zd --version, zd run serves on every worker, status and ZD_CONFIG carry the version, SIGTERM exits 0', { timeout: 110_000 }, async (t) => {
  const started = Date.now();
  const scratch = mkdtempSync(join(tmpdir(), 'zd-pack-'));
  try {
    const packed = packReport(npm(['pack', '--pack-destination', scratch, '--json'], repoRoot, 60_000));
    const tarball = join(scratch, packed.filename);
    t.diagnostic(`packed ${packed.filename} (${packed.files.length} files) in ${Date.now() - started} ms`);

    const app = join(scratch, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), `${JSON.stringify({ name: 'zd-pack-test-app', version: '1.0.0', private: true }, null, 2)}\n`);
    // Ready on its own word, through the installed worker API: proves the export resolves.
    writeFileSync(
      join(app, 'app.js'),
      `const http = require('node:http');
const { ready } = require('zd-runner/worker');
http
  .createServer((req, res) => res.end(JSON.stringify({ pid: process.pid, generation: process.env.ZD_GENERATION })))
  .listen(Number(process.env.PORT), '127.0.0.1', () => ready());
`,
    );
    const installing = Date.now();
    npm(['install', '--no-audit', '--no-fund', '--ignore-scripts', '--prefer-offline', tarball], app, 90_000);
    t.diagnostic(`installed in ${Date.now() - installing} ms`);
    const installed = join(app, 'node_modules');
    assert.equal(JSON.parse(readFileSync(join(installed, pkg.name, 'package.json'), 'utf8')).version, pkg.version);
    for (const devOnly of ['tsx', 'esbuild', 'typescript', 'xstate']) {
      assert.ok(!existsSync(join(installed, devOnly)), `${devOnly} is not installed with zd`);
    }
    assert.ok(!existsSync(join(installed, pkg.name, 'src', 'cli')), 'no TypeScript source in the package');

    // The bin npm linked, executed as a user's shell would (its #! line).
    const bin = join(installed, '.bin', 'zd');
    for (const flag of ['--version', '-v']) {
      const version = spawnSync(bin, [flag], { cwd: app, encoding: 'utf8', timeout: 20_000 });
      assert.equal(version.status, 0, version.stderr);
      assert.equal(version.stdout, `${pkg.version}\n`);
    }

    // What the keeper and the primary load, told by each process as it exits: a run loads only
    // what it uses (issue #11). Not pino's transports (worker_threads), sonic-boom's assert, or
    // perf_hooks, and no Date printer of V8's, which maps in ICU's time-zone data (src/clock.ts).
    const probes = join(scratch, 'probes');
    mkdirSync(probes);
    writeFileSync(
      join(scratch, 'probe.cjs'),
      `'use strict';
const { writeFileSync } = require('node:fs');
const printers = new Set();
for (const name of ['toISOString', 'toUTCString', 'toString', 'toJSON', 'toDateString', 'toTimeString', 'toLocaleString']) {
  const original = Date.prototype[name];
  Date.prototype[name] = function (...args) { printers.add(name); return original.apply(this, args); };
}
process.on('exit', () => writeFileSync(${JSON.stringify(probes)} + '/' + process.pid + '.json', JSON.stringify({
  modules: process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice(13)),
  printers: [...printers],
})));
`,
    );

    const port = await freePort();
    const name = `pack-${process.pid}`;
    const zd = runApp('app.js', ['-w', '2', '--ready', 'message', '--name', name, '--log-format', 'json', ...fastFlags], {
      bin,
      cwd: app,
      env: { PORT: String(port), NODE_OPTIONS: `--require ${join(scratch, 'probe.cjs')}` },
    });
    const config = await zd.waitForLog('ZD_CONFIG', undefined, 15_000);
    assert.equal(config.version, pkg.version);
    await zd.waitForLog('ZD_READY', undefined, 15_000);
    assert.equal((await distinctPids(port, 2, 5000)).size, 2, 'both workers serve');

    const status = spawnSync(process.execPath, [bin, 'status', name, '--json'], {
      cwd: app,
      encoding: 'utf8',
      timeout: 20_000,
      env: { ...process.env, ZD_RUNTIME_DIR: testRuntimeDir, NODE_TEST_CONTEXT: undefined },
    });
    assert.equal(status.status, 0, status.stderr);
    const view = JSON.parse(status.stdout) as { version: string; workers: Array<{ ready: boolean }> };
    assert.equal(view.version, pkg.version);
    assert.deepEqual(view.workers.map((w) => w.ready), [true, true]);

    const tree = zd.treePids();
    zd.signal('SIGTERM');
    assert.deepEqual(await zd.waitForExit(10_000), { code: 0, signal: null }, zd.transcript());
    await assertAllDead(tree, 3000);
    assert.deepEqual(zd.logs('ZD_WORKER_EXITED').map((log) => log.outcome), ['exited', 'exited'], zd.transcript());
    for (const [role, pid] of [['keeper', zd.pid], ['primary', config.primaryPid as number]] as const) {
      const told = JSON.parse(readFileSync(join(probes, `${pid}.json`), 'utf8')) as { modules: string[]; printers: string[] };
      const loaded = told.modules.filter((m) => ['worker_threads', 'assert', 'perf_hooks', 'internal/perf/performance'].includes(m));
      assert.deepEqual(loaded, [], `the ${role} loads modules it never uses`);
      assert.deepEqual(told.printers, [], `the ${role} prints a Date through V8`);
    }
    t.diagnostic(`took ${Date.now() - started} ms`);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});
