// Issue 23: the workers' output, as a log shipper reads it. zd's stdout and stderr are real pipes
// here (the test reads them); every line must arrive whole, in order per worker, byte for byte, and
// nothing may be lost when a worker dies, when the reader stops reading, or when zd stops.
// `zd logs` reads the primary's ring and follows it across a reload and an upgrade.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { afterEach, test } from 'node:test';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { sleep, waitUntil } from '../helpers/wait.ts';
import { cleanup, fastFlags, isAlive, runApp, testRuntimeDir, trackPid, zdBin, zdCliAsync, type Zd } from '../helpers/zd.ts';

afterEach(cleanup);

const APP = fixturePath('log-writer.cjs');

interface AppLine {
  w: number;
  g: number;
  s: 'out' | 'err';
  i: number;
  pid: number;
  pad: string;
}

/** Every line of `text` as the app wrote it; a line that does not parse fails the test, quoted. */
function appLines(lines: string[], what: string): AppLine[] {
  const out: AppLine[] = [];
  for (const line of lines) {
    if (line === '') continue;
    let value: AppLine & { name?: string };
    try {
      value = JSON.parse(line) as AppLine & { name?: string };
    } catch {
      assert.fail(`${what}: a line that does not parse (${line.length} bytes): ${line.slice(0, 120)}…${line.slice(-60)}`);
    }
    if (value.name === 'zd') continue; // zd's own log line
    out.push(value);
  }
  return out;
}

/** Each pid's line numbers, in the order they arrived. */
function byPid(lines: AppLine[]): Map<number, number[]> {
  const map = new Map<number, number[]>();
  for (const line of lines) map.set(line.pid, [...(map.get(line.pid) ?? []), line.i]);
  return map;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, k) => from + k);

function rssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : NaN;
}

async function start(name: string, workers: number, env: Record<string, string>, extra: string[] = []): Promise<Zd> {
  const zd = runApp(APP, ['-w', String(workers), ...fastFlags, '--name', name, ...extra], { env: { PORT: String(await freePort()), ...env } });
  await zd.waitForLog('ZD_READY', undefined, 20_000);
  return zd;
}

test('64 KB JSON lines from 4 workers on stdout and stderr, through pipes: every line whole, each worker in order, stdout and stderr apart', { timeout: 90_000 }, async () => {
  const lines = 60;
  const zd = await start('big', 4, { LOG_SIZE: String(64 * 1024), LOG_LINES: String(lines) });
  const expected = 4 * lines;
  await waitUntil(
    () => zd.stdout.split('\n').length > expected && zd.lines.filter((l) => l.startsWith('{"w":')).length >= expected,
    30_000,
    () => `${expected} lines on each stream (stdout has ${zd.stdout.split('\n').length - 1})`,
  );
  zd.signal('SIGTERM');
  assert.deepEqual(await zd.waitForExit(20_000), { code: 0, signal: null }, zd.transcript(10));

  for (const [what, text, stream] of [['stdout', zd.stdout, 'out'], ['stderr', zd.stderr, 'err']] as const) {
    const got = appLines(text.split('\n'), what);
    assert.equal(got.length, expected, `${what}: ${got.length} app lines`);
    assert.ok(got.every((l) => l.s === stream && Buffer.byteLength(JSON.stringify(l)) + 1 === 64 * 1024), `${what} holds its own lines, unchanged`);
    const pids = byPid(got);
    assert.equal(pids.size, 4);
    for (const [pid, numbers] of pids) assert.deepEqual(numbers, range(0, lines - 1), `${what}: worker ${pid} in order, none missing`);
  }
});

test('a last line without its newline is written when its worker ends: at a stop, and when it is SIGKILLed with its pipe full', { timeout: 90_000 }, async () => {
  const stopped = await start('partial', 2, { LOG_LINES: '5', LOG_PARTIAL: 'no-newline' });
  await waitUntil(() => stopped.stdout.split('\n').length > 10, 10_000, 'the lines');
  await sleep(200);
  stopped.signal('SIGTERM');
  assert.deepEqual(await stopped.waitForExit(20_000), { code: 0, signal: null });
  for (const text of [stopped.stdout, stopped.stderr]) {
    const ids = stopped.logs('ZD_WORKER_FORKED').map((l) => l.workerId);
    for (const id of ids) assert.ok(text.split('\n').includes(`no-newline-${id}`), `no-newline-${id} is a line of its own\n${text.slice(-400)}`);
  }

  // Workers that write 2 MB to each stream, the last line without a newline, and SIGKILL
  // themselves: each slot is a crash loop at once, and zd exits 1, with every line written.
  const port = String(await freePort());
  const killed = runApp(APP, ['-w', '2', ...fastFlags, '--name', 'killed', '--max-restarts', '0'], {
    env: { PORT: port, LOG_LINES: '2000', LOG_SIZE: '1000', LOG_PARTIAL: 'last-words', LOG_DIE: 'kill' },
  });
  const exit = await killed.waitForExit(30_000);
  assert.equal(exit.code, 1, killed.transcript(20));
  const forked = killed.logs('ZD_WORKER_FORKED');
  assert.ok(forked.length >= 2);
  for (const [what, text] of [['stdout', killed.stdout], ['stderr', killed.stderr]] as const) {
    const pids = byPid(appLines(text.split('\n').filter((l) => !l.startsWith('last-words-')), what));
    for (const { pid, workerId } of forked) {
      assert.deepEqual(pids.get(pid as number), range(0, 1999), `${what}: every line of worker ${workerId} (pid ${pid}), which was SIGKILLed`);
      assert.ok(text.split('\n').includes(`last-words-${workerId}`), `${what}: its last, unfinished line`);
    }
  }
});

test('a reader that stops reading: zd stops the workers rather than grow, then delivers every line once it reads again', { timeout: 120_000 }, async () => {
  const lines = 10_000;
  // 40 MB to come, on stdout and stderr, from 2 s after the workers start.
  const zd = runApp(APP, ['-w', '2', ...fastFlags, '--name', 'stalled'], {
    env: { PORT: String(await freePort()), LOG_LINES: String(lines), LOG_SIZE: '1000', LOG_DELAY_MS: '2000' },
  });
  await zd.waitForLog('ZD_READY', undefined, 20_000);
  // The reader stops, before the workers start writing.
  zd.child.stdout!.pause();
  zd.child.stderr!.pause();
  const primary = zd.primaryPid()!;
  const idle = { keeper: rssMb(zd.pid), primary: rssMb(primary) };
  await sleep(4000);
  const newest = async () => {
    const { stdout, stderr } = await zdCliAsync('logs', 'stalled', '-n', '4');
    const got = appLines([...stdout.split('\n'), ...stderr.split('\n')], 'zd logs');
    assert.equal(got.length, 4, `zd logs -n 4: ${stdout}${stderr}`);
    return got.map((l) => `${l.pid} ${l.s} ${l.i}`).sort();
  };
  const before = await newest();
  await sleep(1500);
  const after = { keeper: rssMb(zd.pid), primary: rssMb(primary), newest: await newest() };
  assert.deepEqual(after.newest, before, 'the workers are held back while the reader reads nothing');
  assert.ok(
    after.newest.every((l) => Number(l.split(' ')[2]) < lines / 2),
    `far from their last line: the workers wait, zd does not buffer what they write (${after.newest.join(', ')})`,
  );
  assert.ok(after.keeper - idle.keeper < 15 && after.primary - idle.primary < 15, `no growth: ${JSON.stringify({ idle, after })}`);

  zd.child.stdout!.resume();
  zd.child.stderr!.resume();
  // Both streams: a worker writes its stdout lines, then its stderr ones (its writes to a pipe are
  // synchronous), so a complete stdout says nothing of stderr; a stop before the workers are done
  // would cut what they had not written yet at the drain deadline, which is no loss of zd's.
  await waitUntil(
    // (zd's own log lines share stderr: the workers' are counted there, not its bytes.)
    () => zd.stdout.length >= 2 * lines * 1000 && count(zd.stderr, '"s":"err"') >= 2 * lines,
    60_000,
    () => `all ${2 * lines} lines on stdout and stderr (${zd.stdout.length} and ${zd.stderr.length} bytes so far)`,
    200,
  );
  zd.signal('SIGTERM');
  assert.deepEqual(await zd.waitForExit(20_000), { code: 0, signal: null });
  for (const [what, text] of [['stdout', zd.stdout], ['stderr', zd.stderr]] as const) {
    const pids = byPid(appLines(text.split('\n'), what));
    assert.equal(pids.size, 2);
    for (const [pid, numbers] of pids) assert.deepEqual(numbers, range(0, lines - 1), `${what}, worker ${pid}: every line, in order`);
  }
});

/** How many times `needle` occurs in `text`. */
function count(text: string, needle: string): number {
  let n = 0;
  for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + needle.length)) n++;
  return n;
}

/** `zd logs …` as a child process, its output collected; killed by pid at cleanup. */
function follow(...args: string[]): { child: ChildProcess; out: () => string; err: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [zdBin, 'logs', ...args], {
    env: { ...process.env, ZD_RUNTIME_DIR: testRuntimeDir, NODE_TEST_CONTEXT: undefined },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackPid(child.pid);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out: () => out, err: () => err, exited };
}

test('zd logs -n, and zd logs -f across a reload and an upgrade: every line of every worker, none twice, until the instance stops', { timeout: 120_000 }, async () => {
  const zd = await start('followed', 2, { LOG_LINES: 'forever', LOG_EVERY_MS: '20', LOG_SIZE: '300' });
  await sleep(500);
  const last = await zdCliAsync('logs', 'followed', '-n', '5');
  assert.equal(last.code, 0, last.stderr);
  assert.equal(appLines(last.stdout.split('\n'), 'zd logs').length + appLines(last.stderr.split('\n'), 'zd logs').length, 5);

  const f = follow('followed', '-f', '-n', '0');
  await waitUntil(() => f.out().split('\n').length > 20, 10_000, 'the follower prints');
  const firstPrimary = zd.primaryPid()!;
  const reload = await zdCliAsync('reload', 'followed', '--wait');
  assert.equal(reload.code, 0, reload.stderr);
  await sleep(500);
  const upgrade = await zdCliAsync('upgrade', 'followed', '--wait', '--timeout', '30s');
  assert.equal(upgrade.code, 0, `${upgrade.stderr}\n${zd.transcript(20)}`);
  // The upgraded primary's workers: forked after its ZD_CONFIG.
  const upgradedAt = zd.entries.findIndex((l) => l.code === 'ZD_CONFIG' && l.primaryPid !== firstPrimary);
  assert.ok(upgradedAt > 0, zd.transcript(20));
  const upgradedPids = () => zd.entries.slice(upgradedAt).filter((l) => l.code === 'ZD_WORKER_FORKED').map((l) => l.pid as number);
  await waitUntil(() => !isAlive(firstPrimary), 20_000, 'the old primary gone');
  await waitUntil(
    () => upgradedPids().length === 2 && upgradedPids().every((pid) => f.out().split('\n').filter((l) => l.includes(`"pid":${pid},`)).length >= 10),
    20_000,
    () => `10 lines from each of the upgraded primary's workers in the follower\n${f.err()}`,
  );
  zd.signal('SIGTERM');
  assert.deepEqual(await zd.waitForExit(20_000), { code: 0, signal: null });
  assert.equal(await f.exited, 1, 'zd logs -f ends with 1 when the instance stops');
  assert.match(f.err(), /'followed' stopped: its log stream closed \[ZD_E_NOT_RUNNING\]/);

  const seen = { out: appLines(f.out().split('\n'), 'follower stdout'), err: appLines(f.err().split('\n').filter((l) => !l.startsWith('zd:')), 'follower stderr') };
  assert.ok(seen.out.every((l) => l.s === 'out') && seen.err.every((l) => l.s === 'err'), 'stdout lines on stdout, stderr lines on stderr');
  assert.doesNotMatch(f.err(), /ZD_LOGS_DROPPED/, 'a reader that keeps up misses nothing');
  // Every worker, of both generations and both primaries, from its first line the follower saw to
  // its last line zd itself wrote: none missing, none twice.
  const written = byPid(appLines(zd.stdout.split('\n'), 'zd stdout'));
  const followed = byPid(seen.out);
  const generations = new Set(seen.out.map((l) => `${l.g}`));
  assert.deepEqual([...generations].sort(), ['1', '2'], 'lines of generation 1 and of the reload\'s generation 2');
  for (const pid of upgradedPids()) assert.ok(followed.has(pid), `the upgraded primary's worker ${pid} is followed`);
  assert.ok(followed.size >= 6, `2 workers of gen 1, 2 of gen 2, 2 under the new primary: ${[...followed.keys()]}`);
  for (const [pid, numbers] of followed) {
    const all = written.get(pid)!;
    assert.deepEqual(numbers, range(numbers[0]!, all[all.length - 1]!), `worker ${pid}: from its first followed line to its last, each once`);
  }
});

test('a follower that stops reading is dropped lines, counted, not buffered for: the primary stays bounded', { timeout: 120_000 }, async () => {
  // About 4 MB/s from each worker.
  const zd = await start('slowfollow', 2, { LOG_LINES: 'forever', LOG_SIZE: '1000', LOG_STREAMS: 'out', LOG_EVERY_MS: '5', LOG_BURST: '25' });
  const primary = zd.primaryPid()!;
  const socket = connect(`${testRuntimeDir}/slowfollow.sock`);
  socket.write(`${JSON.stringify({ cmd: 'logs', follow: true, lines: 0 })}\n`);
  socket.pause();
  await sleep(1000);
  const before = { rss: rssMb(primary), forwarded: zd.stdout.length };
  await sleep(3000);
  const after = { rss: rssMb(primary), forwarded: zd.stdout.length };
  const meanwhile = after.forwarded - before.forwarded;
  assert.ok(meanwhile > 5e6, `the workers wrote on meanwhile (${meanwhile} bytes): a follower does not hold them back`);
  // Loose: the primary's heap breathes with what it forwards; buffering all of it would be more.
  assert.ok(after.rss - before.rss < meanwhile / 1e6, `the primary does not grow by what its follower missed: ${before.rss} -> ${after.rss} MB`);
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (text += chunk));
  socket.resume();
  await waitUntil(() => /"type":"dropped","lines":\d+/.test(text), 10_000, 'a dropped marker');
  socket.destroy();
  const marker = /"type":"dropped","lines":(\d+)/.exec(text)!;
  const dropped = Number(marker[1]);
  assert.ok(dropped > 1000, `it says how many lines it did not get: ${dropped}`);
  // What was queued for it before the marker: FOLLOWER_BYTES and the socket's own buffers, not the MBs it missed.
  assert.ok(marker.index < 2e6, `${marker.index} bytes were kept for it`);
});
