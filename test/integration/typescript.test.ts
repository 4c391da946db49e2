// Issue #10, item 6: TypeScript entry files (.ts, .mts, .cts) run on every supported Node, through
// Node's own type stripping where it has it and zd's loader otherwise, and serve through a reload
// without a failed request. The CI runs this file on Node 20 (zd's loader) and Node 24 (Node strips;
// zd's loader only for the files Node refuses: the enum, the parameter property).
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { getJsonEventually, type AppReply } from '../helpers/http.ts';
import { hammer, summary } from '../helpers/load.ts';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { assertAllDead, cleanup, fastFlags, runApp } from '../helpers/zd.ts';

const dirs: string[] = [];
afterEach(() => {
  cleanup();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fresh copy of a fixture package (its package.json decides what .ts means), outside the repo. */
function copyPackage(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'zd-ts-'));
  dirs.push(dir);
  cpSync(fixturePath(join('typescript', name)), dir, { recursive: true });
  return dir;
}

/** What the primary is expected to pick on the Node running this test. */
const expectedMode = (process.features as { typescript?: unknown }).typescript ? 'node' : 'zd';

interface Case {
  name: string;
  pkg: string;
  entry: string;
  /** The file holding the version string 'v1', rewritten to 'v2' for the reload. */
  versionFile: string;
  /** `typeof module` in the app: CommonJS or an ES module. */
  kind: 'object' | 'undefined';
}

const cases: Case[] = [
  { name: 'a .ts app with annotations, an interface and an enum, in a CommonJS package', pkg: 'cjs', entry: 'app.ts', versionFile: 'app.ts', kind: 'object' },
  { name: 'an .mts app importing a local .ts module (parameter property) and an .mts module', pkg: 'esm', entry: 'app.mts', versionFile: 'app.mts', kind: 'undefined' },
  { name: 'a .cts app requiring a .cts module, in a "type": "module" package', pkg: 'cts', entry: 'app.cts', versionFile: 'version.cts', kind: 'object' },
];

for (const c of cases) {
  test(`${c.name}: serves, reloads on SIGHUP with 0 failed requests, exits 0 on SIGTERM`, async (t) => {
    const dir = copyPackage(c.pkg);
    const port = await freePort();
    const zd = runApp(join(dir, c.entry), ['-w', '2', ...fastFlags], { env: { PORT: String(port) } });
    await zd.waitForLog('ZD_READY', undefined, 20_000);
    const config = await zd.waitForLog('ZD_CONFIG', undefined, 100);
    assert.equal(config.typescript, expectedMode, zd.transcript());

    const first = (await getJsonEventually(port, '/', 5000)).json as AppReply & { kind: string };
    assert.equal(first.version, 'v1');
    assert.equal(first.kind, c.kind, 'the module system the file extension and package.json call for');
    const oldPids = new Set(zd.workerPids());

    const load = hammer(port, { keepAliveConnections: 8, freshLoops: 2, maxMs: 25_000 });
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      const file = join(dir, c.versionFile);
      writeFileSync(file, readFileSync(file, 'utf8').replace("'v1'", "'v2'"));
      const mark = zd.mark();
      zd.signal('SIGHUP');
      await zd.waitForLog('ZD_RELOAD_DONE', (log) => Number(log.generation) === 2, 20_000, mark);
      await new Promise((resolve) => setTimeout(resolve, 300));
    } finally {
      await load.stop();
    }
    const report = load.report;
    t.diagnostic(`${config.typescript}: ${summary(report)}`);
    assert.equal(report.failures.length, 0, summary(report));
    assert.equal(report.non2xx, 0, summary(report));
    assert.ok(report.ok > 50, `the load ran through the reload: ${summary(report)}`);
    assert.deepEqual([...report.generations].sort(), ['1', '2'], 'both generations answered the load');

    const after = (await getJsonEventually(port, '/', 5000)).json;
    assert.equal(after.generation, '2');
    assert.equal(after.version, 'v2', 'the new generation runs the new code');
    await assertAllDead(oldPids, 5000);

    zd.signal('SIGTERM');
    const exit = await zd.waitForExit(10_000);
    assert.equal(exit.code, 0, zd.transcript());
    assert.equal(zd.logs('ZD_WORKER_CRASHED').length, 0, zd.transcript());
    // zd asks Node (stripTypeScriptTypes) whether it would refuse a file; that must not print
    // Node's experimental warning on the app's stderr.
    assert.doesNotMatch(zd.stderr, /Warning/, zd.transcript());
    await assertAllDead(zd.workerPids(), 3000);
  });
}

test('a .ts app with a syntax error: ZD_BOOT_FAILED names the file and line, exit 1, nothing left', async () => {
  const dir = copyPackage('cjs');
  writeFileSync(join(dir, 'app.ts'), "const ok: number = 1;\nconst broken: number = ;\n");
  const zd = runApp(join(dir, 'app.ts'), ['-w', '2', '--ready-timeout', '5s', '--drain-timeout', '500ms', '--kill-timeout', '500ms']);
  const exit = await zd.waitForExit(15_000);
  assert.equal(exit.code, 1, zd.transcript());
  const failed = await zd.waitForLog('ZD_BOOT_FAILED', undefined, 100);
  assert.match(String(failed.stderr), /SyntaxError/, zd.transcript());
  assert.match(String(failed.stderr), /app\.ts:2\b/, 'the failure says which file and line');
  assert.equal(zd.logs('ZD_READY').length, 0);
  await assertAllDead([zd.pid, ...zd.workerPids()], 3000);
});
