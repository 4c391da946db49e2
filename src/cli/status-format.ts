// `zd status` as a person reads it. Pure formatting of what the control socket answered.
import type { StatusView, WorkerStatus } from '../core/status.ts';

export interface ProcUsage {
  rssBytes: number | null;
  cpuPercent: number | null;
}

export type DecoratedStatus = Omit<StatusView, 'workers'> & {
  /** The running primary's zd version. */
  version: string;
  name: string;
  app: string;
  primary: { pid: number; uptimeMs: number } & ProcUsage;
  /** The keeper (the pid the world knows), when zd runs under one; its sockets by key. */
  keeper?: { pid: number; sockets?: string[]; state?: { current?: number | null; next?: number | null } };
  workers: Array<WorkerStatus & ProcUsage & { readyForMs: number | null }>;
};

export function formatStatus(s: DecoratedStatus): string {
  const lines = [
    `zd '${s.name}' — ${s.app} (zd ${s.version})`,
    `primary pid ${s.primary.pid}, up ${duration(s.primary.uptimeMs)}, ${bytes(s.primary.rssBytes)}; ${s.phase}, generation ${s.generation}, ${s.ready}/${s.desired} ready`,
    ...(s.keeper
      ? [
          `keeper pid ${s.keeper.pid}, holding ${s.keeper.sockets?.length ?? 0} listening socket(s)` +
            (s.keeper.state?.next ? `; upgrading: primary #${s.keeper.state.next} is starting` : ''),
        ]
      : []),
    '',
  ];
  const header = ['ID', 'PID', 'GEN', 'SLOT', 'STATE', 'READY FOR', 'RESTARTS', 'RSS', 'CPU'];
  const rows = s.workers.map((w) => [
    String(w.id),
    String(w.pid ?? '-'),
    String(w.generation),
    String(w.slot),
    w.state,
    w.readyForMs === null ? '-' : duration(w.readyForMs),
    String(w.restarts),
    bytes(w.rssBytes),
    w.cpuPercent === null ? '-' : `${w.cpuPercent}%`,
  ]);
  lines.push(...table([header, ...rows]));
  lines.push('');
  if (s.rollout) {
    lines.push(
      `rollout: ${s.rollout.state} to generation ${s.rollout.generation}, ${s.rollout.replaced}/${s.rollout.total} replaced` +
        (s.rollout.bootingSlots.length ? `, booting slot ${s.rollout.bootingSlots.join(', ')}` : ''),
    );
  } else {
    lines.push('rollout: idle');
  }
  if (s.rollout?.canary) {
    lines.push(`canary: slot ${s.rollout.canary.slot ?? '-'} ${s.rollout.canary.state} (window ${duration(s.rollout.canary.windowMs)}), beside every old worker`);
  }
  if (s.canaryVerdict) lines.push(`last canary: generation ${s.canaryVerdict.generation} ${s.canaryVerdict.outcome}: ${s.canaryVerdict.reason}`);
  if (s.reloadQueued) lines.push('a reload is queued after the current rollout');
  if (s.lastRollout) {
    lines.push(`last rollout: generation ${s.lastRollout.generation} ${s.lastRollout.outcome}${s.lastRollout.reason ? ` (${s.lastRollout.reason})` : ''}`);
  }
  for (const r of s.releases ?? []) {
    const role = r.generation === s.serving ? ' (serving)' : '';
    lines.push(`generation ${r.generation}${role}: ${r.app}${r.args.length ? ` ${r.args.join(' ')}` : ''} in ${r.cwd}`);
  }
  if (s.parkedSlots.length) lines.push(`crash loop: slot ${s.parkedSlots.join(', ')} parked until the next reload`);
  return `${lines.join('\n')}\n`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
}

export function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function bytes(n: number | null): string {
  if (n === null) return '-';
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}
