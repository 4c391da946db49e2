// Issue #15: a reload applies what changed. The config file and the env file are read again at
// every reload; a changed worker count is part of the rollout; a bad change is refused whole;
// `zd scale` resizes the running generation.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, test } from 'node:test';
import { getJson } from '../helpers/http.ts';
import { hammer, summary } from '../helpers/load.ts';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { sleep, waitUntil } from '../helpers/wait.ts';
import { cleanup, killAll, startZd, zdCli, zdCliAsync, type Zd } from '../helpers/zd.ts';

afterEach(cleanup);
after(killAll);
const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** An app directory with zd.config.json and an env file, and zd started in it. */
async function project(config: Record<string, unknown>, envFile: string | null, name: string) {
  const dir = mkdtempSync(join(tmpdir(), 'zd-config-'));
  dirs.push(dir);
  copyFileSync(fixturePath('serve.cjs'), join(dir, 'app.cjs'));
  const port = await freePort();
  const write = (values: Record<string, unknown>) => writeFileSync(join(dir, 'zd.config.json'), JSON.stringify({ app: 'app.cjs', name, ...values }, null, 2));
  const writeEnv = (text: string) => writeFileSync(join(dir, '.env'), text);
  write(config);
  if (envFile !== null) writeEnv(envFile);
  const zd = startZd(['run', '--ready-timeout', '3s', '--drain-timeout', '2s', '--kill-timeout', '1s', '--min-ready', '200ms'], {
    cwd: dir,
    env: { PORT: String(port), PWD: dir },
  });
  await zd.waitForLog('ZD_READY', undefined, 15_000);
  return { dir, port, zd, write, writeEnv };
}

type Reply = { pid: number; generation: string; version: string };


async function status(name: string) {
  const out = zdCli('status', name, '--json');
  assert.equal(out.code, 0, out.stderr);
  return JSON.parse(out.stdout) as { desired: number; ready: number; generation: number; workers: Array<{ generation: number; ready: boolean; pid: number }> };
}

async function reload(zd: Zd, code = 'ZD_RELOAD_DONE') {
  const mark = zd.mark();
  zd.signal('SIGHUP');
  return zd.waitForLog(code, undefined, 20_000, mark);
}

test('workers 2 → 3 in the config file, SIGHUP: three ready workers of the new generation', async () => {
  const { zd, write } = await project({ workers: 2 }, null, 'cfg-grow');
  write({ workers: 3 });
  const started = zd.mark();
  await reload(zd);
  const line = zd.logs('ZD_RELOAD_STARTED').at(-1)!;
  assert.deepEqual(line.changed, ['workers 2→3']);
  const view = await status('cfg-grow');
  assert.equal(view.desired, 3);
  const ready = view.workers.filter((w) => w.ready);
  assert.equal(ready.length, 3, JSON.stringify(view.workers));
  assert.ok(ready.every((w) => w.generation === 2));
  // The added slot is filled before anything drains; then exactly the two old workers drain.
  await zd.waitForLogs('ZD_WORKER_EXITED', 2, undefined, 10_000, started);
  const since = zd.logs().slice(started);
  const drains = since.filter((l) => l.code === 'ZD_WORKER_DRAINING');
  assert.deepEqual(drains.map((l) => `${l.generation}/${l.slot}`).sort(), ['1/0', '1/1'], zd.transcript());
  const added = since.findIndex((l) => l.code === 'ZD_WORKER_READY' && l.slot === 2);
  assert.ok(added >= 0 && added < since.indexOf(drains[0]!), `slot 2 ready before the first drain\n${zd.transcript()}`);

  // And back down to 1: the surplus drains last.
  write({ workers: 1 });
  await reload(zd);
  await waitUntil(async () => (await status('cfg-grow')).workers.length === 1, 10_000, 'one worker left');
  const after1 = await status('cfg-grow');
  assert.equal(after1.desired, 1);
  assert.equal(after1.workers[0]!.generation, 3);
  zd.signal('SIGTERM');
  assert.equal((await zd.waitForExit(15_000)).code, 0);
});

test('an env file change reaches the new generation only; a respawn keeps its generation’s values', async () => {
  const { port, zd, writeEnv } = await project({ workers: 2, envFile: '.env' }, 'APP_VERSION=alpha\n', 'cfg-env');
  assert.equal((await getJson<Reply>(port)).json.version, 'alpha');
  writeEnv('# the new one\nexport APP_VERSION="beta"\n');
  await reload(zd);
  for (let i = 0; i < 6; i++) assert.equal((await getJson<Reply>(port)).json.version, 'beta');
  // Changed again, but no reload: a crash respawn still gets generation 2's values.
  writeEnv('APP_VERSION=gamma\n');
  const victim = (await getJson<Reply>(port)).json.pid;
  const mark = zd.mark();
  process.kill(victim, 'SIGKILL');
  await zd.waitForLog('ZD_WORKER_READY', undefined, 10_000, mark);
  for (let i = 0; i < 6; i++) assert.equal((await getJson<Reply>(port)).json.version, 'beta');
  zd.signal('SIGTERM');
  assert.equal((await zd.waitForExit(15_000)).code, 0);
});

test('a broken config or env file on reload is refused with every problem named, and nothing changes; zd reload --wait exits 2', async () => {
  const { dir, port, zd, write, writeEnv } = await project({ workers: 2, envFile: '.env' }, 'APP_VERSION=alpha\n', 'cfg-bad');
  const before = (await status('cfg-bad')).workers.map((w) => w.pid).sort();
  write({ workers: 'many', drainTimeout: '5 parsecs' });
  const mark = zd.mark();
  zd.signal('SIGHUP');
  const refused = await zd.waitForLog('ZD_RELOAD_REFUSED', undefined, 5000, mark);
  assert.match(String(refused.reason), /"workers"/);
  assert.match(String(refused.reason), /"drainTimeout"/);
  const cli = zdCli('reload', 'cfg-bad', '--wait');
  assert.equal(cli.code, 2, cli.stderr);
  assert.match(cli.stderr, /"workers"/);
  assert.match(cli.stderr, /"drainTimeout"/);
  assert.equal(cli.stdout, '');

  writeFileSync(join(dir, 'zd.config.json'), '{ not json');
  const cli2 = zdCli('reload', 'cfg-bad', '--wait');
  assert.equal(cli2.code, 2, cli2.stderr);
  assert.match(cli2.stderr, /not valid JSON/);

  write({ workers: 2, envFile: '.env' });
  writeEnv('APP_VERSION=ok\nthis line is wrong\n');
  const cli3 = zdCli('reload', 'cfg-bad', '--wait');
  assert.equal(cli3.code, 2, cli3.stderr);
  assert.match(cli3.stderr, /\.env:2: expected KEY=VALUE/);

  assert.equal(zd.logs('ZD_RELOAD_STARTED').length, 0, 'no rollout started');
  assert.deepEqual((await status('cfg-bad')).workers.map((w) => w.pid).sort(), before);
  assert.equal((await getJson<Reply>(port)).json.version, 'alpha');
  zd.signal('SIGTERM');
  assert.equal((await zd.waitForExit(15_000)).code, 0);
});

test('settings only a restart can change are reported and kept; the flags still win over the file', async () => {
  const { zd, write } = await project({ workers: 2 }, null, 'cfg-keep');
  write({ workers: 2, metricsPort: await freePort(), sched: 'none' });
  await reload(zd);
  const kept = zd.logs('ZD_CONFIG_NEEDS_RESTART').at(-1)!;
  assert.ok((kept.kept as string[]).some((k) => k.startsWith('metricsPort')), JSON.stringify(kept));
  assert.ok((kept.kept as string[]).some((k) => k.startsWith('sched')));
  // --min-ready 200ms is on the command line: a file saying otherwise does not change it.
  write({ workers: 2, minReady: '3s' });
  await reload(zd);
  assert.equal(zd.logs('ZD_RELOAD_STARTED').at(-1)!.changed, undefined);
  zd.signal('SIGTERM');
  assert.equal((await zd.waitForExit(15_000)).code, 0);
});

test('zd scale 4 and zd scale 1 under keep-alive load: nothing fails; bad counts and scaling during a rollout are refused', async () => {
  const { port, zd, writeEnv } = await project({ workers: 2, envFile: '.env' }, '', 'cfg-scale');
  const load = hammer(port, { keepAliveConnections: 8, freshLoops: 2, maxMs: 30_000 });
  await sleep(300);
  // The CLI runs beside the load, not in front of it: a synchronous spawn would stall the clients.
  const mark = zd.mark();
  const up = await zdCliAsync('scale', 'cfg-scale', '4');
  assert.equal(up.code, 0, up.stderr);
  await zd.waitForLogs('ZD_WORKER_READY', 2, undefined, 10_000, mark);
  const mark2 = zd.mark();
  const down = await zdCliAsync('scale', 'cfg-scale', '-3');
  assert.equal(down.code, 0, down.stderr);
  await zd.waitForLogs('ZD_WORKER_EXITED', 3, undefined, 10_000, mark2);
  await sleep(300);
  const report = await load.stop();
  assert.equal(report.failures.length, 0, summary(report));
  assert.equal(report.non2xx, 0, summary(report));
  assert.ok(report.ok > 200, summary(report));
  const view = await status('cfg-scale');
  assert.equal(view.desired, 1);
  assert.equal(view.generation, 1, 'no new generation');

  for (const bad of ['0', '-5', 'many', '+99999']) {
    const out = zdCli('scale', 'cfg-scale', bad);
    assert.notEqual(out.code, 0, `${bad}: ${out.stderr}`);
    assert.equal(out.stderr.trim().split('\n').length, 1, out.stderr);
  }
  // During a rollout (its new generation takes 1.5 s to listen): refused with a clear line.
  writeEnv('BOOT_DELAY_MS=1500\n');
  const mark3 = zd.mark();
  zd.signal('SIGHUP');
  await zd.waitForLog('ZD_RELOAD_STARTED', undefined, 5000, mark3);
  const during = zdCli('scale', 'cfg-scale', '3');
  assert.equal(during.code, 1, during.stderr);
  assert.match(during.stderr, /rollout .* is running/);
  await zd.waitForLog('ZD_RELOAD_DONE', undefined, 15_000, mark3);
  // A reload applies the config file, its worker count included (kubectl apply after kubectl scale).
  assert.equal((await status('cfg-scale')).desired, 2);
  assert.equal(zd.logs('ZD_WORKER_CRASHED').length, 0, 'draining surplus workers is no crash');
  zd.signal('SIGTERM');
  assert.equal((await zd.waitForExit(15_000)).code, 0);
});
