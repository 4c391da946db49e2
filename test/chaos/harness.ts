// Shared by the chaos suite (issue #7): load with absolute timestamps and the connection of each
// failed request, which worker held which connection when it died (the only thing that excuses a
// failed request), a seeded random source, a raw control-socket client, a client acting as another
// user, and a watcher of every process zd starts. Not a test file: test/run.js runs only *.test.ts.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { heldByDead, type Death } from '../helpers/held.ts';
import { describeFailures, poller, type ConnectionId, type PollReport } from '../helpers/http.ts';
import { hammer, summary, type LoadOptions, type LoadReport } from '../helpers/load.ts';
import { descendants, timeOf, trackPid, type Zd } from '../helpers/zd.ts';
export { watchDescendants } from '../helpers/zd.ts';
export { heldPorts, killHolding, portsSaid, type Death } from '../helpers/held.ts';

// -- load ----------------------------------------------------------------------------------------

export interface TimedFailure {
  /** When the request failed, epoch ms on this machine's clock (zd's log uses the same clock). */
  at: number;
  /**
   * When it was sent, where that is known: a request that timed out was sent hammer's 5 s timeout
   * earlier. Otherwise the failure time stands in for it (it was sent at or before then).
   */
  sent: number;
  what: string;
  /** The connection it was on (the client's port, which the server sees), or null if it never connected. */
  connection: ConnectionId | null;
}

/** hammer's client timeouts (fresh: `timeout`, keep-alive: headersTimeout). */
export const LOAD_TIMEOUT_MS = 5000;

/** `hammer`, with every failure's time made absolute so it can be compared with zd's log. */
export function load(port: number, options: LoadOptions) {
  const started = Date.now();
  const run = hammer(port, options);
  return {
    async stop(): Promise<{ report: LoadReport; failures: TimedFailure[]; text: string }> {
      const report = await run.stop();
      const failures = report.failures.map((f) => {
        const at = started + f.at;
        return { at, sent: /timeout/i.test(f.error) ? at - LOAD_TIMEOUT_MS : at, what: `${f.kind} ${f.error}`, connection: f.connection };
      });
      return { report, failures, text: summary(report) };
    },
  };
}

/** `poller` (one request at a time, a new connection each), with absolute failure times as in `load`. */
export function timedPoller(port: number, options: { intervalMs: number; maxMs: number; timeoutMs?: number }) {
  const timeoutMs = options.timeoutMs ?? 3000;
  const started = Date.now();
  const run = poller(port, { ...options, timeoutMs, maxRequests: 20_000 });
  return {
    report: run.report,
    async stop(): Promise<{ report: PollReport; failures: TimedFailure[]; text: string }> {
      const report = await run.stop();
      const failures = report.failures.map((f) => {
        const at = started + f.at;
        return { at, sent: f.code === 'ETIMEOUT' ? at - timeoutMs : at, what: `${f.code} ${f.message}`, connection: f.connection };
      });
      return { report, failures, text: `${report.successes.length} ok, ${report.failures.length} failed: ${describeFailures(report.failures)}` };
    },
  };
}

/** A stretch of time with no worker ready at all (zd's log says so): any request may fail in it. */
export interface Outage {
  from: number;
  to: number;
}

/**
 * A failure is explained only when its connection was one a dead worker held (same client port,
 * connected by the time the worker's holdings were read) and it failed once that worker could no
 * longer answer; or when it was in flight during an outage (sent before it ended, plus `graceMs`:
 * a loaded 2-core machine reports a reset late). A request that never connected is a refusal,
 * which no death explains.
 */
export function unexplained(failures: TimedFailure[], deaths: Death[], outages: Outage[] = [], graceMs = 250): TimedFailure[] {
  return failures.filter((f) => {
    return !heldByDead(f.connection, f.at, deaths) && !outages.some((o) => f.sent <= o.to + graceMs && f.at >= o.from);
  });
}

export function describeTimed(failures: TimedFailure[], deaths: Death[], outages: Outage[] = []): string {
  const t0 = Math.min(...deaths.map((d) => d.from), ...outages.map((o) => o.from), ...failures.map((f) => f.at));
  return [
    `deaths: ${deaths.map((d) => `pid ${d.pid} +${d.from - t0}ms holding ${[...d.ports].join(' ') || 'nothing'}`).join(', ') || 'none'}`,
    ...(outages.length > 0 ? [`outages: ${outages.map((o) => `+${o.from - t0}..+${o.to - t0}ms`).join(', ')}`] : []),
    `failures: ${failures
      .slice(0, 12)
      .map((f) => `+${f.at - t0}ms ${f.what} (${f.connection ? `port ${f.connection.port}, connected +${f.connection.at - t0}ms` : 'never connected'})`)
      .join('; ')}`,
  ].join('\n');
}

/** When zd logged this worker's exit, or undefined while it has not. */
export function exitedAt(zd: Zd, pid: number): number | undefined {
  const exited = zd.logs('ZD_WORKER_EXITED').find((l) => l.pid === pid);
  return exited ? timeOf(exited) : undefined;
}

// -- zd's view of its workers ---------------------------------------------------------------------

/**
 * The stretches during which zd's log shows no worker ready (after the first was): an outage the
 * app made (every slot crashed or waiting out its backoff), when requests cannot but fail.
 */
export function noneReadyWindows(zd: Zd, until = Date.now()): Outage[] {
  const ready = new Set<number>();
  const windows: Outage[] = [];
  let open: number | null = null;
  let seenReady = false;
  for (const log of zd.logs()) {
    const pid = log.pid as number;
    if (log.code === 'ZD_WORKER_READY') ready.add(pid);
    else if (log.code === 'ZD_WORKER_DRAINING' || log.code === 'ZD_WORKER_EXITED') ready.delete(pid);
    else continue;
    if (ready.size > 0) seenReady = true;
    if (ready.size === 0 && seenReady && open === null) open = timeOf(log);
    if (ready.size > 0 && open !== null) {
      windows.push({ from: open, to: timeOf(log) });
      open = null;
    }
  }
  if (open !== null) windows.push({ from: open, to: until });
  return windows;
}

/** Workers serving now, from zd's own log: ready, and neither draining nor gone. */
export function readyPids(zd: Zd): number[] {
  const out = new Set([...zd.logs('ZD_WORKER_EXITED'), ...zd.logs('ZD_WORKER_DRAINING')].map((l) => l.pid as number));
  return zd.logs('ZD_WORKER_READY').map((l) => l.pid as number).filter((pid) => !out.has(pid));
}

// -- randomness that can be replayed --------------------------------------------------------------

/** mulberry32: small, seeded, good enough to pick victims. The seed is printed by the tests. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const chaosSeed = Number(process.env.ZD_CHAOS_SEED ?? Date.now() % 1_000_000);

// -- the control socket, byte by byte --------------------------------------------------------------

export interface RawReply {
  /** Reply lines, parsed. */
  replies: Array<Record<string, unknown>>;
  /** True when the server closed the connection (before `waitMs` ran out, or `replies` came). */
  closedByServer: boolean;
  error: string | null;
}

/**
 * Writes `payload` to a control socket and collects reply lines until the server closes, `waitMs`
 * pass, or (if given) `replies` lines have come.
 */
export function rawRequest(socketPath: string, payload: string | Buffer, { waitMs = 1500, replies: wanted = Infinity } = {}): Promise<RawReply> {
  return new Promise((resolve) => {
    const socket = connect(socketPath);
    let data = '';
    let closedByServer = false;
    let error: string | null = null;
    const timer = setTimeout(() => socket.destroy(), waitMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(payload));
    socket.on('data', (chunk: string) => {
      data += chunk;
      if (data.split('\n').length - 1 >= wanted) socket.destroy();
    });
    socket.on('end', () => {
      closedByServer = true;
      socket.destroy();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    socket.on('close', () => {
      clearTimeout(timer);
      const replies = data
        .split('\n')
        .filter(Boolean)
        .map((line) => {
          try {
            return JSON.parse(line) as Record<string, unknown>;
          } catch {
            return { unparsable: line };
          }
        });
      resolve({ replies, closedByServer, error });
    });
  });
}

export function errorCode(reply: Record<string, unknown> | undefined): string | undefined {
  return (reply?.error as { code?: string } | undefined)?.code;
}

// -- another user ----------------------------------------------------------------------------------

export const NOBODY = 65534;
export const isRoot = process.getuid?.() === 0;

/** Runs a node script as uid/gid 65534 and returns what it printed (bounded: 5 s). */
export function runAsNobody(script: string, args: string[] = []): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script, ...args], { uid: NOBODY, gid: NOBODY, stdio: ['ignore', 'pipe', 'pipe'] });
    trackPid(child.pid);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c));
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Node script: connect to argv[1] (a unix socket) and print `connected` or the error code. */
export const CONNECT_SCRIPT = `
const socket = require('node:net').connect(process.argv[1]);
socket.on('connect', () => { console.log('connected'); socket.destroy(); });
socket.on('error', (e) => console.log(e.code || e.message));
`;

// -- processes -------------------------------------------------------------------------------------

/** The lines zd wrote on stderr that are its own one-line errors (`zd: … [ZD_E_…]`). */
export const ERROR_LINE = /^zd: \S.* \[ZD_E_[A-Z_]+\]$/;
