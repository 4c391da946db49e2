// A process's memory and CPU, read from /proc (Linux). Other systems get nulls, not errors.
import { readFileSync } from 'node:fs';

export interface ProcSample {
  at: number;
  rssBytes: number;
  /** User + system CPU time, in seconds. */
  cpuSeconds: number;
}

/** Linux reports CPU times in clock ticks; USER_HZ is 100 on every mainstream kernel build. */
const TICKS_PER_SECOND = 100;

export function procSample(pid: number): ProcSample | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may itself contain spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1] ?? 0);
    return { at: Date.now(), rssBytes: rssKb * 1024, cpuSeconds: (utime + stime) / TICKS_PER_SECOND };
  } catch {
    return null;
  }
}

export function cpuPercent(a: ProcSample, b: ProcSample): number | null {
  const seconds = (b.at - a.at) / 1000;
  if (seconds <= 0) return null;
  return Math.max(0, Math.round(((b.cpuSeconds - a.cpuSeconds) / seconds) * 1000) / 10);
}
