// Shared by the compatibility suite (issue #10): real framework apps under zd, each run through
// one scenario — start, load, two SIGHUP reloads that each deploy a new "version", SIGTERM — and
// judged the same way: no failed request, the old code gone within a few seconds of each
// ZD_RELOAD_DONE, exit 0, nothing left running. Not a test file: test/run.js runs only *.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { freePort } from '../helpers/ports.ts';
import { sleep } from '../helpers/wait.ts';
import { assertAllDead, cleanup, runApp, timeOf, trackPid, type Zd, type ZdLog } from '../helpers/zd.ts';

export const compatDir = fileURLToPath(new URL('../fixtures/compat/', import.meta.url));
export const compatApp = (name: string): string => join(compatDir, name);

/** What every compat fixture answers: who served, and which deployed version its code is. */
export interface Identity {
  pid: number;
  generation: string | null;
  version: string | null;
  framework?: string;
}

export interface Answer extends Identity {
  /** When the request (or message) was sent, epoch ms: zd's log uses the same clock. */
  sentAt: number;
  /** Which kind of client got it: `keep-alive`, `fresh`, `h2-session`, `ws`, `socket.io`, … */
  via: string;
}

export interface Failure {
  at: number;
  via: string;
  error: string;
}

export function describe(error: unknown): string {
  const e = error as { code?: unknown; message?: unknown };
  return `${typeof e?.code === 'string' ? e.code : 'ERROR'}: ${typeof e?.message === 'string' ? e.message : String(error)}`;
}

/** Every answer with its send time, every failure, and notes on events that are not failures. */
export class Tally {
  readonly answers: Answer[] = [];
  readonly failures: Failure[] = [];
  readonly notes: { at: number; via: string; what: string }[] = [];

  answer(via: string, sentAt: number, body: string | Identity): void {
    let identity: Identity;
    try {
      identity = typeof body === 'string' ? (JSON.parse(body) as Identity) : body;
    } catch {
      this.fail(via, new Error(`not JSON: ${String(body).slice(0, 120)}`));
      return;
    }
    if (typeof identity?.pid !== 'number') {
      this.fail(via, new Error(`no pid in the answer: ${JSON.stringify(identity).slice(0, 120)}`));
      return;
    }
    trackPid(identity.pid);
    this.answers.push({ ...identity, sentAt, via });
  }

  fail(via: string, error: unknown): void {
    this.failures.push({ at: Date.now(), via, error: describe(error) });
  }

  note(via: string, what: string): void {
    this.notes.push({ at: Date.now(), via, what });
  }

  summary(): string {
    const byError = new Map<string, number>();
    for (const f of this.failures) byError.set(`${f.via} ${f.error}`, (byError.get(`${f.via} ${f.error}`) ?? 0) + 1);
    const kinds = [...byError].map(([what, n]) => `${n}× ${what}`).join('\n  ');
    return `${this.answers.length} answered, ${this.failures.length} failed${kinds ? `:\n  ${kinds}` : ''}`;
  }
}

export interface Load {
  stop(): Promise<void>;
}

/** Loads still running: a failed test never reached its stop(). */
const running = new Set<Load>();

export function track(load: Load): Load {
  running.add(load);
  return {
    async stop() {
      running.delete(load);
      await load.stop();
    },
  };
}

/** `afterEach(compatCleanup)`: stops every load, then kills every zd tree and pid ever seen. */
export async function compatCleanup(): Promise<void> {
  const loads = [...running];
  running.clear();
  await Promise.allSettled(loads.map((load) => load.stop()));
  cleanup();
}

/**
 * HTTP/1.1 load on 127.0.0.1, bounded: keep-alive clients on an undici pool (one request at a time
 * per connection, as browsers do) and clients opening a new connection per request. A non-2xx
 * answer is a failure.
 */
export function httpLoad(port: number, tally: Tally, { keepAlive = 8, fresh = 2, maxMs = 30_000, path = '/' } = {}): Load {
  const started = Date.now();
  let stopped = false;
  const on = () => !stopped && Date.now() - started < maxMs;
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: keepAlive, pipelining: 1 });
  const keepAliveLoop = async () => {
    while (on()) {
      const sentAt = Date.now();
      try {
        const res = await pool.request({ path, method: 'GET', headersTimeout: 5000, bodyTimeout: 5000 });
        const body = await res.body.text();
        if (res.statusCode !== 200) tally.fail('keep-alive', new Error(`HTTP ${res.statusCode}: ${body.slice(0, 120)}`));
        else tally.answer('keep-alive', sentAt, body);
      } catch (error) {
        tally.fail('keep-alive', error);
        await sleep(5); // a refused port answers at once: no busy loop
      }
    }
  };
  const freshLoop = async () => {
    while (on()) {
      const sentAt = Date.now();
      try {
        const [status, body] = await freshGet(port, path);
        if (status !== 200) tally.fail('fresh', new Error(`HTTP ${status}: ${body.slice(0, 120)}`));
        else tally.answer('fresh', sentAt, body);
      } catch (error) {
        tally.fail('fresh', error);
      }
      await sleep(5);
    }
  };
  const loops = Promise.all([...Array.from({ length: keepAlive }, keepAliveLoop), ...Array.from({ length: fresh }, freshLoop)]);
  return track({
    async stop() {
      stopped = true;
      await loops;
      await pool.close();
    },
  });
}

export function freshGet(port: number, path = '/'): Promise<[number, string]> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve([res.statusCode ?? 0, body]));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('no answer within 5000ms'), { code: 'ETIMEOUT' })));
    req.on('error', reject);
  });
}

/** The deployed "code version": a file every worker reads once at boot (VERSION_FILE). */
export function versionFile(): { path: string; deploy(version: string): void; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'zd-compat-'));
  const path = join(dir, 'VERSION');
  writeFileSync(path, 'v1\n');
  return {
    path,
    deploy: (version) => writeFileSync(path, `${version}\n`),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface Scenario {
  /** Fixture file under test/fixtures/compat/. */
  app: string;
  workers?: number;
  /** zd flags beyond `-w`, the deadlines and, with `sticky`, `--sticky PORT`. */
  flags?: string[];
  env?: Record<string, string>;
  /** `--sticky PORT`: the primary owns the app's port. */
  sticky?: boolean;
  /**
   * The drain deadline. Longer than the old-code window on purpose for HTTP apps: the old code must
   * be gone because draining moved the clients, not because the deadline killed the old worker.
   */
  drainMs?: number;
  /** How long after ZD_RELOAD_DONE a client of this kind may still be answered by old code. */
  windowMs?: (via: string) => number;
  /** How long to keep the load on after each ZD_RELOAD_DONE (past the longest window). */
  holdMs?: number;
  /** Starts the load once the app answers; every kind of client named in `via` should answer. */
  load(port: number, tally: Tally): Load[] | Promise<Load[]>;
  /** Old workers exit by themselves once drained (true unless something like a WebSocket holds them). */
  drainsByItself?: boolean;
  /** Asks the app who it is, until it answers (its public port may open after zd's ZD_READY). */
  probe?: (port: number) => Promise<Identity>;
  /** Hears the run's numbers (`describeOutcome`) before any judgement: pass `t.diagnostic`. */
  diagnostic?: (line: string) => void;
}

export interface Outcome {
  zd: Zd;
  tally: Tally;
  port: number;
  /** Per reload: the generation, when SIGHUP was sent, and when ZD_RELOAD_DONE was logged. */
  reloads: { generation: number; sighupAt: number; doneAt: number }[];
  loadStartedAt: number;
  loadStoppedAt: number;
  /** From zd's start to its first ZD_READY, and from SIGTERM to its exit. */
  bootMs: number;
  stopMs: number;
}

export const DEFAULT_WINDOW_MS = 2000;
const READY_TIMEOUT = '5s';
const KILL_TIMEOUT_MS = 1000;

async function probeHttp(port: number): Promise<Identity> {
  const [status, body] = await freshGet(port);
  if (status !== 200) throw new Error(`HTTP ${status}`);
  return JSON.parse(body) as Identity;
}

async function eventually<T>(ask: () => Promise<T>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await ask();
    } catch (error) {
      if (Date.now() >= deadline) throw new Error(`${what}: no answer within ${timeoutMs}ms (${describe(error)})`);
      await sleep(50);
    }
  }
}

/** Waits for this reload's end, whichever it is, and fails with the abort reason if it aborted. */
async function reloadEnd(zd: Zd, generation: number, since: number): Promise<ZdLog> {
  const isOurs = (log: ZdLog) => Number(log.generation) === generation;
  const end = await Promise.race([
    zd.waitForLog('ZD_RELOAD_DONE', isOurs, 30_000, since),
    zd.waitForLog('ZD_RELOAD_ABORTED', isOurs, 30_000, since),
  ]);
  assert.equal(end.code, 'ZD_RELOAD_DONE', `the rollout to generation ${generation} aborted: ${String(end.reason)}\n${zd.transcript()}`);
  return end;
}

/**
 * Start → load → two SIGHUP reloads (v2, v3 deployed before each) → stop the load → SIGTERM, then
 * every judgement: no failure, old code gone after each reload's window, the old workers drained,
 * exit 0, every process gone.
 */
export async function runScenario(scenario: Scenario): Promise<Outcome> {
  const workers = scenario.workers ?? 2;
  const drainMs = scenario.drainMs ?? 5000;
  const windowMs = scenario.windowMs ?? (() => DEFAULT_WINDOW_MS);
  const holdMs = scenario.holdMs ?? DEFAULT_WINDOW_MS + 700;
  const port = await freePort();
  const version = versionFile();
  try {
    const flags = [
      '-w', String(workers),
      '--ready-timeout', READY_TIMEOUT,
      '--drain-timeout', `${drainMs}ms`,
      '--kill-timeout', `${KILL_TIMEOUT_MS}ms`,
      ...(scenario.sticky ? ['--sticky', String(port)] : []),
      ...(scenario.flags ?? []),
    ];
    const startedAt = Date.now();
    const zd = runApp(compatApp(scenario.app), flags, {
      env: { PORT: String(port), VERSION_FILE: version.path, ...scenario.env },
    });
    const bootMs = timeOf(await zd.waitForLog('ZD_READY', undefined, 20_000)) - startedAt;
    const first = await eventually(() => (scenario.probe ?? probeHttp)(port), 10_000, `${scenario.app} on port ${port}`);
    assert.equal(first.version, 'v1', `generation 1 runs v1: ${JSON.stringify(first)}`);

    const tally = new Tally();
    const loadStartedAt = Date.now();
    const loads = await scenario.load(port, tally);
    await sleep(500);
    const reloads: Outcome['reloads'] = [];
    for (const generation of [2, 3]) {
      version.deploy(`v${generation}`);
      const mark = zd.mark();
      const sighupAt = Date.now();
      zd.signal('SIGHUP');
      const done = await reloadEnd(zd, generation, mark);
      reloads.push({ generation, sighupAt, doneAt: timeOf(done) });
      await sleep(holdMs);
    }
    await Promise.all(loads.map((load) => load.stop()));
    const loadStoppedAt = Date.now();

    // Every old worker (generations 1 and 2) has exited by now or will by its deadline: how it
    // exited says whether draining finished the job or the deadline did.
    const oldExits = await zd
      .waitForLogs('ZD_WORKER_EXITED', 2 * workers, (log) => Number(log.generation) < 3, drainMs + KILL_TIMEOUT_MS + 3000)
      .catch(() => zd.logs('ZD_WORKER_EXITED').filter((log) => Number(log.generation) < 3));

    const pids = [...zd.treePids(), ...tally.answers.map((a) => a.pid)];
    const sigtermAt = Date.now();
    zd.signal('SIGTERM');
    const exit = await zd.waitForExit(drainMs + KILL_TIMEOUT_MS + 10_000);
    const stopMs = Date.now() - sigtermAt;
    const outcome: Outcome = { zd, tally, port, reloads, loadStartedAt, loadStoppedAt, bootMs, stopMs };
    scenario.diagnostic?.(describeOutcome(outcome));

    // Judged after the shutdown, so that a failed judgement still shows how zd ended.
    assert.ok(tally.answers.length >= 200, `the load was real: ${tally.summary()}`);
    assert.deepEqual(tally.failures.slice(0, 20), [], `no request failed: ${tally.summary()}\n${zd.transcript(40)}`);
    for (const answer of tally.answers) {
      if (answer.version !== `v${answer.generation}`) {
        assert.fail(`generation ${answer.generation} answered with version ${answer.version}: ${JSON.stringify(answer)}`);
      }
    }
    assertOldCodeGone(tally, reloads, loadStoppedAt, windowMs);
    if (scenario.drainsByItself ?? true) {
      const summary = oldExits.map((log) => `${log.pid}:${String(log.outcome)}${log.signal ? `/${String(log.signal)}` : ''}`);
      assert.equal(oldExits.length, 2 * workers, `every old worker exited before SIGTERM: ${summary.join(', ')}\n${zd.transcript(40)}`);
      assert.ok(
        oldExits.every((log) => log.outcome === 'exited'),
        `old workers drained and exited by themselves, not at the drain deadline: ${summary.join(', ')}\n${zd.transcript(40)}`,
      );
    }
    assert.deepEqual(exit, { code: 0, signal: null }, `SIGTERM: zd exits 0\n${zd.transcript(40)}`);
    await assertAllDead(pids, 5000);
    return outcome;
  } finally {
    version.remove();
  }
}

/**
 * One line of numbers for the test's diagnostics: answers by kind of client, how long each reload
 * took, and the last answer old code gave after each ZD_RELOAD_DONE (by when it was sent).
 */
export function describeOutcome({ tally, reloads, loadStartedAt, loadStoppedAt, bootMs, stopMs }: Outcome): string {
  const byVia = new Map<string, number>();
  for (const a of tally.answers) byVia.set(a.via, (byVia.get(a.via) ?? 0) + 1);
  const perReload = reloads.map(({ generation, sighupAt, doneAt }, i) => {
    const until = reloads[i + 1]?.sighupAt ?? loadStoppedAt;
    const stale = tally.answers.filter((a) => Number(a.generation) < generation && a.sentAt >= doneAt && a.sentAt < until);
    const last = stale.length === 0 ? 'none' : `+${Math.max(...stale.map((a) => a.sentAt - doneAt))}ms`;
    return `reload ${generation}: done ${doneAt - sighupAt}ms after SIGHUP, last old-code answer after done ${last}`;
  });
  const kinds = [...byVia].map(([via, n]) => `${n} ${via}`).join(', ');
  return `ready ${bootMs}ms after start, SIGTERM to exit ${stopMs}ms; ${tally.answers.length} answers in ${loadStoppedAt - loadStartedAt}ms (${kinds}), ${tally.failures.length} failed, ${tally.notes.length} notes; ${perReload.join('; ')}`;
}

/**
 * After each reload's ZD_RELOAD_DONE plus the client kind's window, until the next SIGHUP, only the
 * new generation (or a newer one) answers; and each window holds answers of every kind of client,
 * so that the check is not vacuous.
 */
export function assertOldCodeGone(
  tally: Tally,
  reloads: Outcome['reloads'],
  loadStoppedAt: number,
  windowMs: (via: string) => number,
): void {
  const kinds = [...new Set(tally.answers.map((a) => a.via))];
  reloads.forEach(({ generation, doneAt }, i) => {
    const until = reloads[i + 1]?.sighupAt ?? loadStoppedAt;
    for (const via of kinds) {
      const from = doneAt + windowMs(via);
      const inWindow = tally.answers.filter((a) => a.via === via && a.sentAt >= from && a.sentAt < until);
      const stale = inWindow.filter((a) => Number(a.generation) < generation);
      const shown = stale.slice(0, 5).map((a) => `+${a.sentAt - doneAt}ms pid ${a.pid} generation ${a.generation} ${a.version}`);
      assert.deepEqual(
        shown,
        [],
        `${via}: ${stale.length} of ${inWindow.length} answers sent more than ${windowMs(via)}ms after ZD_RELOAD_DONE ${generation} came from old code`,
      );
      assert.ok(inWindow.length >= 5, `${via}: only ${inWindow.length} answers in the window after reload to generation ${generation}`);
    }
  });
}
