// Health: heartbeats (a ready worker whose event loop is blocked stops answering pings) and memory
// (a ready worker over the limit). Either way the worker is replaced by the ready-before-drain
// path, never killed in place. The frequent events land here, so each costs O(1): one worker's
// entry and its own timers, nothing else.
import { ids, type Draft } from './draft.ts';
import type { WorkerId } from './events.ts';
import { NONE, type Intent } from './intents.ts';
import { isReady, replacementUnderway } from './queries.ts';
import type { WorkerEntry } from './state.ts';
import { pingTimerId, pongTimerId } from './timers.ts';

/** Reaction to a ready worker: its heartbeat starts. */
export function onReady(d: Draft, entry: WorkerEntry): readonly Intent[] {
  if (d.config.heartbeatTimeoutMs <= 0) return NONE;
  d.startTimer(pingTimerId(entry.id), { kind: 'ping', workerId: entry.id }, d.config.heartbeatIntervalMs);
  return NONE;
}

/** Reaction to a worker that stopped serving: its heartbeat stops. */
export function onUnready(d: Draft, entry: WorkerEntry): readonly Intent[] {
  d.cancelTimer(pingTimerId(entry.id));
  d.cancelTimer(pongTimerId(entry.id));
  return NONE;
}

export function ping(d: Draft, workerId: WorkerId): void {
  const found = d.worker(workerId);
  if (!found || !isReady(found)) return;
  if (!found.machine.context.connected) return; // its channel closed: the exit will follow
  const entry = d.mutWorker(workerId);
  const seq = ++entry.pingSeq;
  d.effects.push({ type: 'send', workerId, message: { type: 'zd:ping', seq } });
  d.startTimer(pongTimerId(workerId), { kind: 'pong', workerId, seq }, d.config.heartbeatTimeoutMs);
}

export function pong(d: Draft, workerId: WorkerId, seq: number): void {
  const entry = d.worker(workerId);
  const pending = d.timer(pongTimerId(workerId));
  if (!entry || !isReady(entry) || pending?.kind !== 'pong' || pending.seq !== seq) return; // late or stray
  d.cancelTimer(pongTimerId(workerId));
  d.startTimer(pingTimerId(workerId), { kind: 'ping', workerId }, d.config.heartbeatIntervalMs);
}

export function pongOverdue(d: Draft, workerId: WorkerId, seq: number): readonly Intent[] {
  const entry = d.worker(workerId);
  if (!entry || !isReady(entry)) return NONE;
  const { heartbeatTimeoutMs } = d.config;
  // Keep watching: the replacement may have to wait for a rollout, and the worker may recover.
  d.startTimer(pingTimerId(workerId), { kind: 'ping', workerId }, d.config.heartbeatIntervalMs);
  if (d.slot(entry.slot)?.worker !== workerId || replacementUnderway(d.s, entry.slot)) return NONE;
  d.log(
    'warn',
    'ZD_WORKER_UNRESPONSIVE',
    `worker ${workerId} did not answer ping ${seq} within ${heartbeatTimeoutMs}ms: its event loop is blocked; replacing it`,
    { ...ids(entry), pid: entry.machine.context.pid, heartbeatTimeoutMs },
  );
  return [{ type: 'replace', slot: entry.slot }];
}

export function memorySample(d: Draft, workerId: WorkerId, rssBytes: number): readonly Intent[] {
  const limit = d.config.maxMemoryBytes;
  if (limit <= 0 || rssBytes <= limit) return NONE;
  const entry = d.worker(workerId);
  if (!entry || !isReady(entry)) return NONE;
  if (d.slot(entry.slot)?.worker !== workerId) return NONE; // already superseded
  if (replacementUnderway(d.s, entry.slot)) return NONE;
  d.log('warn', 'ZD_WORKER_OVER_MEMORY', `worker ${workerId} uses ${Math.round(rssBytes / 1048576)} MB, over the ${Math.round(limit / 1048576)} MB limit: replacing it`, {
    ...ids(entry),
    pid: entry.machine.context.pid,
    rssBytes,
    maxMemoryBytes: limit,
  });
  return [{ type: 'replace', slot: entry.slot }];
}
