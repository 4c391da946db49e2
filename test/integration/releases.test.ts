// Issue #10: release directories. A deploy unpacks each release in releases/<n>/ and flips a
// `current` symlink; zd was started through the link. Each generation runs the release the link
// pointed at when its reload was asked for, in that directory, and keeps running it.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, copyFileSync, renameSync, symlinkSync, realpathSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, test } from 'node:test';
import { getJson } from '../helpers/http.ts';
import { hammer, summary } from '../helpers/load.ts';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { sleep, waitUntil } from '../helpers/wait.ts';
import { cleanup, killAll, runApp, zdCli, type Zd } from '../helpers/zd.ts';

afterEach(cleanup);
after(killAll);

const roots: string[] = [];
after(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

/** /tmp/…/app with releases/1..n (each the same app file) and `current` → releases/1. */
function deployTree(n: number) {
  const root = mkdtempSync(join(tmpdir(), 'zd-releases-'));
  roots.push(root);
  for (let i = 1; i <= n; i++) {
    mkdirSync(join(root, 'releases', String(i)), { recursive: true });
    copyFileSync(fixturePath('release-app.cjs'), join(root, 'releases', String(i), 'app.cjs'));
  }
  const current = join(root, 'current');
  symlinkSync(join(root, 'releases', '1'), current);
  return {
    root,
    current,
    dir: (i: number) => realpathSync(join(root, 'releases', String(i))),
    /** Flips `current` atomically, as deploy tools do (a new link renamed over the old). */
    flip(i: number) {
      const next = join(root, `current.next`);
      symlinkSync(join(root, 'releases', String(i)), next);
      renameSync(next, current);
    },
  };
}

const FLAGS = ['-w', '2', '--ready-timeout', '2s', '--drain-timeout', '2s', '--kill-timeout', '1s', '--min-ready', '200ms'];

/** zd started the way a shell in `current` starts it: cwd through the link, $PWD naming the link. */
async function startIn(tree: ReturnType<typeof deployTree>, name: string, env: Record<string, string> = {}) {
  const port = await freePort();
  const zd = runApp('app.cjs', [...FLAGS, '--name', name], { cwd: tree.current, env: { PWD: tree.current, PORT: String(port), ...env } });
  await zd.waitForLog('ZD_READY', undefined, 15_000);
  return { zd, port };
}

type Reply = { pid: number; generation: string; release: string; cwd: string; pwd: string | null };
const ask = async (port: number) => (await getJson<Reply>(port, "/")).json;

/** Every answer, from many connections, comes from this release. */
async function allFrom(port: number, release: string, cwd: string) {
  for (let i = 0; i < 8; i++) {
    const reply = await ask(port);
    assert.equal(reply.release, release, JSON.stringify(reply));
    assert.equal(reply.cwd, cwd, JSON.stringify(reply));
  }
}

async function reload(zd: Zd, outcome: 'ZD_RELOAD_DONE' | 'ZD_RELOAD_ABORTED' = 'ZD_RELOAD_DONE') {
  const mark = zd.mark();
  zd.signal('SIGHUP');
  return zd.waitForLog(outcome, undefined, 20_000, mark);
}

test('flip the link, SIGHUP: the new generation runs the new release, in its own directory, under load with nothing failed', async () => {
  const tree = deployTree(2);
  const { zd, port } = await startIn(tree, 'rel-flip');
  await allFrom(port, '1', tree.dir(1));
  const load = hammer(port, { keepAliveConnections: 8, freshLoops: 2, maxMs: 20_000 });
  await sleep(300);
  tree.flip(2);
  const mark = zd.mark();
  zd.signal('SIGHUP');
  const started = await zd.waitForLog('ZD_RELOAD_STARTED', undefined, 5000, mark);
  assert.equal(started.release, tree.dir(2), 'ZD_RELOAD_STARTED names the release');
  assert.equal(started.previousRelease, tree.dir(1));
  await zd.waitForLog('ZD_RELOAD_DONE', undefined, 20_000, mark);
  await sleep(300);
  const report = await load.stop();
  assert.equal(report.failures.length, 0, summary(report));
  assert.equal(report.non2xx, 0, summary(report));
  await allFrom(port, '2', tree.dir(2));
  assert.equal((await ask(port)).pwd, tree.dir(2), "the workers' $PWD is their release, not the link");

  const status = zdCli('status', 'rel-flip', '--json');
  assert.equal(status.code, 0, status.stderr);
  const view = JSON.parse(status.stdout) as { releases: Array<{ generation: number; cwd: string }>; serving: number };
  assert.equal(view.serving, 2);
  assert.deepEqual(
    view.releases.map((r) => [r.generation, r.cwd]),
    [[1, tree.dir(1)], [2, tree.dir(2)]],
  );
  zd.signal('SIGTERM');
  assert.equal((await zd.waitForExit(15_000)).code, 0);
});

test('a crash respawns its generation’s release, not what the link points at now; a broken release aborts and the old one serves on', async () => {
  const tree = deployTree(3);
  const { zd, port } = await startIn(tree, 'rel-pin', { CRASH_IN_RELEASE: '3' });
  tree.flip(2);
  await reload(zd);
  await allFrom(port, '2', tree.dir(2));

  // Release 3 is broken and the link now points at it, but nobody asked for it yet.
  tree.flip(3);
  const victim = (await ask(port)).pid;
  const mark = zd.mark();
  process.kill(victim, 'SIGKILL');
  await zd.waitForLog('ZD_WORKER_READY', (l) => l.generation === 2, 10_000, mark);
  await allFrom(port, '2', tree.dir(2));

  const aborted = await reload(zd, 'ZD_RELOAD_ABORTED');
  assert.match(String(aborted.stderr), /release 3 is broken/);
  await allFrom(port, '2', tree.dir(2));
  // After the aborted rollout, a crash still brings back generation 2's release.
  const again = (await ask(port)).pid;
  const mark2 = zd.mark();
  process.kill(again, 'SIGKILL');
  const respawned = await zd.waitForLog('ZD_WORKER_READY', undefined, 10_000, mark2);
  assert.equal(respawned.generation, 2);
  await allFrom(port, '2', tree.dir(2));
  zd.signal('SIGTERM');
  assert.equal((await zd.waitForExit(15_000)).code, 0);
});

test('zd rollback --wait goes back to the previous release under load with nothing failed; with nothing to go back to it is refused', async () => {
  const tree = deployTree(2);
  const { zd, port } = await startIn(tree, 'rel-back');
  const refused = zdCli('rollback', 'rel-back', '--wait');
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /^zd: .*no previous generation.*\n$/);
  assert.equal(refused.stdout, '');

  tree.flip(2);
  await reload(zd);
  const load = hammer(port, { keepAliveConnections: 8, freshLoops: 2, maxMs: 20_000 });
  await sleep(300);
  const back = zdCli('rollback', 'rel-back', '--wait');
  assert.equal(back.code, 0, back.stderr);
  assert.match(back.stdout, /generation 3/);
  await sleep(300);
  const report = await load.stop();
  assert.equal(report.failures.length, 0, summary(report));
  assert.equal(report.non2xx, 0, summary(report));
  await allFrom(port, '1', tree.dir(1));
  const started = zd.logs('ZD_RELOAD_STARTED').at(-1)!;
  assert.equal(started.rollbackOf, 1);
  assert.equal(started.release, tree.dir(1));
  // The link was not touched.
  assert.equal(realpathSync(tree.current), tree.dir(2));

  // The release to go back to is gone: refused, nothing changes.
  rmSync(tree.dir(2), { recursive: true, force: true });
  const gone = zdCli('rollback', 'rel-back');
  assert.equal(gone.code, 1, gone.stderr);
  assert.match(gone.stderr, /release .*2.* is gone/);
  assert.equal(zd.logs('ZD_RELOAD_STARTED').length, 2);
  await allFrom(port, '1', tree.dir(1));

  const unknown = zdCli('rollback', 'no-such-instance');
  assert.equal(unknown.code, 1);
  assert.equal(unknown.stderr.trim().split('\n').length, 1, unknown.stderr);
  zd.signal('SIGTERM');
  assert.equal((await zd.waitForExit(15_000)).code, 0);
});

test('a link pointing nowhere refuses the reload with the reason; a deleted pinned release is named when a worker cannot respawn', async () => {
  const tree = deployTree(2);
  const { zd, port } = await startIn(tree, 'rel-gone', {});
  // A link to a release that does not exist (yet).
  unlinkSync(tree.current); // the link itself, not what it points at
  symlinkSync(join(tree.root, 'releases', '9'), tree.current);
  const mark = zd.mark();
  zd.signal('SIGHUP');
  const refused = await zd.waitForLog('ZD_RELOAD_REFUSED', undefined, 5000, mark);
  assert.match(String(refused.reason), /app\.cjs/);
  assert.match(String(refused.reason), /not found|cannot be found/);
  await allFrom(port, '1', tree.dir(1));

  // Generation 1's release directory is deleted under it; a worker then dies.
  const dir1 = tree.dir(1);
  rmSync(dir1, { recursive: true, force: true });
  const victim = (await ask(port)).pid;
  const mark2 = zd.mark();
  process.kill(victim, 'SIGKILL');
  const gone = await zd.waitForLog('ZD_RELEASE_GONE', undefined, 10_000, mark2);
  assert.equal(gone.release, dir1);
  // The other worker serves on.
  assert.equal((await ask(port)).release, '1');
  await waitUntil(() => zd.logs('ZD_WORKER_CRASHED').length >= 2, 10_000, 'respawn attempts back off');
  zd.signal('SIGTERM');
  assert.equal((await zd.waitForExit(15_000)).code, 0);
});
