// A long-running `zd inspect …` as a child process, with its output read line by line. Its pid goes
// into the registry in helpers/pids.ts, so a failing test still leaves nothing behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { repoRoot, testRuntimeDir, trackPid, zdBin } from '../helpers/zd.ts';
import { waitUntil } from '../helpers/wait.ts';

export interface InspectProcess {
  child: ChildProcess;
  pid: number;
  /** Complete stdout lines so far. */
  lines: string[];
  stderr: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The first stdout line matching, already written or yet to come. */
  waitForLine(pattern: RegExp, timeoutMs: number, what: string): Promise<string>;
  kill(signal?: NodeJS.Signals): void;
}

export function startInspect(args: string[]): InspectProcess {
  const env: Record<string, string | undefined> = { ...process.env, ZD_RUNTIME_DIR: testRuntimeDir };
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(process.execPath, [zdBin, 'inspect', ...args], {
    cwd: repoRoot,
    env: env as NodeJS.ProcessEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not spawn zd inspect ${args.join(' ')}`);
  trackPid(child.pid);
  const lines: string[] = [];
  let partial = '';
  const self: InspectProcess = {
    child,
    pid: child.pid,
    lines,
    stderr: '',
    // 'close', not 'exit': by then stdout and stderr are read to the end.
    exited: new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal }))),
    waitForLine: (pattern, timeoutMs, what) =>
      waitUntil(() => lines.find((line) => pattern.test(line)), timeoutMs, () => `${what}; zd inspect ${args.join(' ')} wrote:\n${lines.slice(-20).join('\n')}\nstderr: ${self.stderr}`),
    kill: (signal = 'SIGKILL') => {
      try {
        process.kill(child.pid!, signal);
      } catch {
        // already gone
      }
    },
  };
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => (self.stderr += chunk));
  return self;
}
