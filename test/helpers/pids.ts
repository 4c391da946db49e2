// Every process a test ever sees (zd, its workers, any pid an app reports) goes in one registry so
// that a failing test still leaves nothing behind: killAll() SIGKILLs them all, and it also runs
// when the test process exits.
import { readFileSync, readdirSync } from 'node:fs';
import { sleep } from './wait.ts';

const pids = new Set<number>();
const groups = new Set<number>();

export function trackPid(pid: number | undefined | null): void {
  if (typeof pid === 'number' && Number.isInteger(pid) && pid > 0 && pid !== process.pid) pids.add(pid);
}

/** A process group leader started with `detached: true`: killing the group reaches its descendants. */
export function trackGroup(pgid: number | undefined): void {
  if (typeof pgid === 'number' && pgid > 0 && pgid !== process.pid) groups.add(pgid);
}

export function trackedPids(): number[] {
  return [...pids];
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // ESRCH: already gone.
  }
}

/** SIGKILLs every process and process group ever tracked. Synchronous, so safe in an 'exit' hook. */
export function killAll(): void {
  for (const pgid of groups) kill(-pgid, 'SIGKILL');
  for (const pid of pids) kill(pid, 'SIGKILL');
  groups.clear();
  pids.clear();
}

process.on('exit', killAll);

function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state follows the parenthesised command name, which may itself contain spaces or parens.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/** Alive means signalable and not a zombie: an orphan nobody reaps is dead for our purposes. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  const state = procState(pid);
  return state !== 'Z' && state !== 'X';
}

/** Direct and indirect children of `root`, read from /proc (empty where /proc does not exist). */
export function descendants(root: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return [];
  }
  const children = new Map<number, number[]>();
  for (const name of entries) {
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      // Exited while we were reading.
    }
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/** Resolves once every pid is dead; otherwise fails after `timeoutMs` naming the survivors. */
export async function assertAllDead(list: Iterable<number>, timeoutMs = 3000): Promise<void> {
  const all = [...new Set(list)];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const alive = all.filter(isAlive);
    if (alive.length === 0) return;
    if (Date.now() >= deadline) {
      const detail = alive.map((pid) => `${pid} (${procState(pid) ?? '?'})`).join(', ');
      throw new Error(`still alive after ${timeoutMs}ms: ${detail} (of ${all.join(', ')})`);
    }
    await sleep(25);
  }
}
