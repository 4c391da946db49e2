// The keeper, as a pure reducer: reduceKeeper(state, event) → { state, effects }.
//
// It decides which primaries run, drives the upgrade machine (machines/upgrade.machine.ts) with
// xstate's pure `transition()`, and turns the machine's named actions and its deadline into
// effects. Like the primary's reducer it imports no `node:*` module, reads no clock and draws no
// random number: the crash window is counted with timers (a crash.expired a minute after each
// crash), so the same events always give the same effects and a journal replays exactly.
//
// The rules the shell relies on are written down, and checked after every step by the property
// suite, in invariants.ts (docs/invariants.md, "Keeper / upgrade").
import { initialTransition, matchesState, transition } from 'xstate';
import { howItExited, upgradeMachine, type UpgradeEvent } from '../../machines/upgrade.machine.ts';
import { backoffMs } from '../reducer-kit/backoff.ts';
import { Draft as CopyOnWrite } from '../reducer-kit/draft.ts';
import { machineActions, type ActionHandlers } from '../reducer-kit/machine-actions.ts';
import { alivePrimaries, isAlive, type KeeperState, type PrimaryEntry, type PrimaryStatus } from './state.ts';
import type { KeeperEffect, KeeperEvent, PrimaryId, UpgradeRequest } from './types.ts';

export type { KeeperState } from './state.ts';

/** The keeper's fixed policy, in one place. */
export const KEEPER_DEFAULTS = {
  /** A crashed primary's first restart waits this long; each further crash in the window doubles it. */
  restartInitialMs: 100,
  restartMaxMs: 10_000,
  /** Crashes are counted over this window… */
  crashWindowMs: 60_000,
  /** …and one more than this many within it is a crash loop: the keeper exits 1. */
  crashLoopLimit: 5,
} as const;

export interface KeeperStep {
  state: KeeperState;
  effects: KeeperEffect[];
}

export function restartDelayMs(recentCrashes: number): number {
  return backoffMs(KEEPER_DEFAULTS.restartInitialMs, KEEPER_DEFAULTS.restartMaxMs, recentCrashes);
}

export function initKeeper(): KeeperState {
  const [snapshot] = initialTransition(upgradeMachine);
  return {
    started: false,
    current: null,
    next: null,
    nextId: 1,
    primaries: {},
    stopping: false,
    socketsReleased: false,
    stopReason: null,
    exitCode: null,
    exited: false,
    restartPending: false,
    recentCrashes: 0,
    deadline: null,
    upgrade: { value: snapshot.value, context: snapshot.context },
    lastUpgrade: null,
    counters: { upgradesRequested: 0, upgradesDone: 0, upgradesAborted: 0, upgradesRefused: 0, crashes: 0, restarts: 0 },
  };
}

export function reduceKeeper(state: KeeperState, event: KeeperEvent): KeeperStep {
  // Gone: the process is exiting, and whatever else arrives is news for nobody.
  if (state.exited) return { state, effects: [] };
  const d = new Draft(state);
  handle(d, event);
  finish(d);
  return { state: d.s, effects: d.effects };
}

/** One reduction's working copy (src/reducer-kit/draft.ts): the primaries and counters are copied once written. */
class Draft extends CopyOnWrite<KeeperState, KeeperEffect> {
  entry(id: PrimaryId | null): PrimaryEntry | undefined {
    return id === null ? undefined : this.s.primaries[id];
  }

  /** The primaries by id, writable. */
  primaries(): KeeperState['primaries'] {
    return this.own(this.s, 'primaries');
  }

  counters(): KeeperState['counters'] {
    return this.own(this.s, 'counters');
  }

  setStatus(id: PrimaryId, status: PrimaryStatus): void {
    this.primaries()[id] = { ...this.s.primaries[id]!, status };
  }

  log(level: 'debug' | 'info' | 'warn' | 'error', code: string, message: string, fields?: Record<string, unknown>): void {
    this.effects.push(fields ? { type: 'log', level, code, message, fields } : { type: 'log', level, code, message });
  }

  get upgrading(): boolean {
    return matchesState('upgrading', this.s.upgrade.value);
  }

  get candidate(): PrimaryId | null {
    return this.s.upgrade.context.candidate;
  }
}

function handle(d: Draft, event: KeeperEvent): void {
  switch (event.type) {
    case 'keeper.start':
      if (d.s.started || d.s.stopping) return;
      d.s.started = true;
      return spawnCurrent(d, null, 'ZD_PRIMARY_STARTING', 'starting primary');
    case 'primary.spawned':
      return; // the shell knows its pid; nothing here depends on it
    case 'primary.ready':
      return ready(d, event.id);
    case 'primary.exited':
      return exited(d, event.id, event.code, event.signal, event.planned);
    case 'upgrade.requested':
      return requested(d, event.request);
    case 'upgrade.timeout':
      // Only the armed deadline of the candidate in flight counts; any other is a stale timer.
      if (d.s.deadline !== null && d.s.deadline.id === event.id && d.upgrading) {
        toUpgrade(d, d.s.deadline.event as UpgradeEvent);
      }
      return;
    case 'restart.due':
      return restart(d);
    case 'crash.expired':
      d.s.recentCrashes = Math.max(0, d.s.recentCrashes - 1);
      return;
    case 'signal':
      return signal(d, event.signal);
    case 'ports.release':
      return releasePorts(d, event.id, event.requestId);
  }
}

/**
 * The instance stops serving: its primary's workers will not serve the ports again, so nothing
 * should accept on them (a connection the kernel completes into a queue nobody reads would only
 * hang, then be reset). A primary being replaced by an upgrade says the same of its own workers,
 * but its successor serves the same sockets: they stay.
 */
function releasePorts(d: Draft, id: PrimaryId, requestId: string): void {
  const entry = d.entry(id);
  const instance = d.s.current === id && !d.upgrading && entry !== undefined && entry.status !== 'retiring' && entry.status !== 'killed';
  if (instance && !d.s.socketsReleased) {
    d.s.socketsReleased = true;
    d.log('debug', 'ZD_KEEPER_PORTS_CLOSED', `primary ${id} stops serving: the keeper closes its copies of the ports`, { id });
    d.effects.push({ type: 'close-sockets' });
  }
  d.effects.push({ type: 'ports-released', id, requestId });
}

/** Once stopping, the keeper exits as soon as no primary is left: never before (it holds the sockets). */
function finish(d: Draft): void {
  if (!d.s.stopping || d.s.exited || alivePrimaries(d.s).length > 0) return;
  const code = d.s.exitCode ?? 0;
  d.s.exited = true;
  d.s.exitCode = code;
  d.s.restartPending = false;
  // Debug: the primary has said why (ZD_STOPPED, its error line); a bad command line stays one line.
  d.log('debug', 'ZD_KEEPER_EXIT', `no primary left (${d.s.stopReason ?? 'stopped'}): exiting with code ${code}`, {
    code,
  });
  d.effects.push({ type: 'exit', code });
}

function spawnCurrent(d: Draft, node: string | null, code: string, what: string): void {
  const id = d.s.nextId++;
  d.primaries()[id] = { status: 'starting', node, exit: null };
  d.s.current = id;
  d.effects.push({ type: 'spawn', id, node });
  // The first start is every run's: the primary's own ZD_CONFIG says it; a restart is news.
  d.log(id === 1 ? 'debug' : 'info', code, `${what} ${id}${node === null ? '' : ` on ${node}`}`, { id, node });
}

function ready(d: Draft, id: PrimaryId): void {
  const entry = d.entry(id);
  // Late news of a primary already told to go (killed, stopping, retiring) changes nothing.
  if (entry?.status !== 'starting') return;
  d.setStatus(id, 'ready');
  d.log('debug', 'ZD_PRIMARY_READY', `primary ${id} ready`, { id });
  if (d.upgrading && d.candidate === id) toUpgrade(d, { type: 'candidate.ready' });
}

function exited(d: Draft, id: PrimaryId, code: number | null, signal: string | null, planned: boolean): void {
  const entry = d.entry(id);
  if (entry === undefined || !isAlive(entry)) return; // never spawned by this keeper, or already accounted for
  const was = entry.status;
  d.primaries()[id] = { ...entry, status: 'exited', exit: { code, signal, planned } };
  const how = howItExited(code, signal);
  const fields = { id, code, signal, planned };

  if (id !== d.s.current) {
    if (d.upgrading && d.candidate === id) {
      toUpgrade(d, { type: 'candidate.exited', code, signal });
    } else {
      // A retired primary done draining, a killed candidate reaped, or one stopped with the keeper.
      const clean = (planned && code === 0) || was === 'killed';
      d.log(clean ? 'info' : 'warn', 'ZD_PRIMARY_EXITED', `primary ${id} (${was}) ${how}`, fields);
    }
    delete d.primaries()[id];
    return;
  }

  // The current primary. Beside a candidate, the upgrade machine decides what its exit means.
  if (d.upgrading && d.s.upgrade.context.previous === id && d.s.next !== null && !d.s.stopping) {
    if (!planned) {
      countCrash(d, id, how, fields, `primary ${d.s.next}, the upgrade's candidate, takes over`);
      toUpgrade(d, { type: 'previous.crashed', code, signal });
      delete d.primaries()[id]; // no longer current: the candidate is
      return;
    }
    toUpgrade(d, { type: 'previous.stopped', code, signal });
  } else if (d.upgrading && d.candidate === id) {
    // The promoted candidate, alone since its predecessor crashed: the request is answered here,
    // and its exit is then a current primary's like any other.
    toUpgrade(d, { type: 'candidate.exited', code, signal });
  }

  if (d.s.stopping) {
    // The stop's outcome is the current primary's: its own code if it stopped as planned.
    d.s.exitCode = planned ? (code ?? 1) : 1;
    // A planned exit the primary has told itself (ZD_STOPPED); a crash during the stop is news.
    d.log(planned ? 'debug' : 'warn', 'ZD_PRIMARY_EXITED', `primary ${id} ${how}`, fields);
    return;
  }
  if (planned) {
    // It chose to stop (`zd stop`, or its own crash loop): the keeper stops with it.
    d.s.stopping = true;
    d.s.stopReason = `primary ${id} stopped`;
    d.s.exitCode = code ?? 1;
    d.log('debug', 'ZD_PRIMARY_STOPPED', `primary ${id} stopped (${how}): zd stops with it`, fields);
    return;
  }
  countCrash(d, id, how, fields, null);
  if (d.s.recentCrashes > KEEPER_DEFAULTS.crashLoopLimit) {
    d.s.stopping = true;
    d.s.stopReason = 'crash loop';
    d.s.exitCode = 1;
    d.log(
      'error',
      'ZD_PRIMARY_CRASH_LOOP',
      `the primary crashed ${d.s.recentCrashes} times within ${KEEPER_DEFAULTS.crashWindowMs / 1000} s: giving up (see its errors above, fix the cause, then start zd again)`,
      { crashes: d.s.recentCrashes },
    );
    return;
  }
  const ms = restartDelayMs(d.s.recentCrashes);
  d.s.restartPending = true;
  d.effects.push({ type: 'timer', ms, event: { type: 'restart.due' } });
  d.log('info', 'ZD_PRIMARY_RESTART_SCHEDULED', `restarting the primary in ${ms} ms`, { id, ms });
}

function countCrash(d: Draft, id: PrimaryId, how: string, fields: Record<string, unknown>, then: string | null): void {
  d.s.recentCrashes++;
  d.counters().crashes++;
  d.effects.push({ type: 'timer', ms: KEEPER_DEFAULTS.crashWindowMs, event: { type: 'crash.expired' } });
  d.log('error', 'ZD_PRIMARY_CRASHED', `primary ${id} crashed: it ${how}${then === null ? '' : `; ${then}`}`, {
    ...fields,
    recentCrashes: d.s.recentCrashes,
  });
}

function restart(d: Draft): void {
  if (!d.s.restartPending || d.s.stopping) return;
  d.s.restartPending = false;
  const crashed = d.s.current!;
  // A primary upgraded onto another Node binary is restarted on that binary, not silently downgraded.
  const node = d.entry(crashed)?.node ?? null;
  delete d.primaries()[crashed];
  d.counters().restarts++;
  spawnCurrent(d, node, 'ZD_PRIMARY_RESTARTING', `primary ${crashed} crashed: starting primary`);
}

/** Why an upgrade cannot start now, or null. Checked in this order: the first reason is the one told. */
function refusal(d: Draft, request: UpgradeRequest): string | null {
  if (!Number.isFinite(request.timeoutMs) || request.timeoutMs <= 0) {
    return `the upgrade's timeout must be a positive number of milliseconds, not ${request.timeoutMs}`;
  }
  if (request.node !== null && (typeof request.node !== 'string' || request.node === '')) {
    return 'the Node binary for the upgrade must be a path (or none, for the same one)';
  }
  if (d.s.stopping) return `zd is stopping (${d.s.stopReason ?? 'stop'}): no upgrade now`;
  if (d.upgrading) return `an upgrade is in progress: primary ${d.candidate} is starting`;
  const current = d.s.current;
  const entry = d.entry(current);
  if (!d.s.started || current === null || entry === undefined) return 'no primary is running yet: try again once it is ready';
  if (entry.status === 'exited') return `primary ${current} crashed and is restarting: try again once it is ready`;
  if (entry.status !== 'ready') return `primary ${current} is not ready yet: try again once it is`;
  // tableflip's rule: a third process never runs beside two, so the last one must be gone first.
  for (const id of alivePrimaries(d.s)) {
    if (id === current) continue;
    const status = d.s.primaries[id]!.status;
    return status === 'retiring'
      ? `primary ${id}, replaced by the last upgrade, is still draining: try again once it has exited`
      : `primary ${id} is still exiting (${status}): try again once it has`;
  }
  return null;
}

function requested(d: Draft, request: UpgradeRequest): void {
  d.counters().upgradesRequested++;
  const reason = refusal(d, request);
  if (reason !== null) {
    d.counters().upgradesRefused++;
    d.s.lastUpgrade = { requestId: request.requestId, ok: false, message: `upgrade refused: ${reason}` };
    d.effects.push({ type: 'reply', requestId: request.requestId, ok: false, message: `upgrade refused: ${reason}`, code: 'ZD_E_UPGRADE_REFUSED' });
    d.log('warn', 'ZD_UPGRADE_REFUSED', `upgrade refused: ${reason}`, { requestId: request.requestId });
    return;
  }
  const candidate = d.s.nextId++;
  toUpgrade(d, { type: 'upgrade.start', request, candidate, previous: d.s.current! });
}

const STOP_SIGNALS = new Set(['SIGTERM', 'SIGINT', 'SIGQUIT']);

function signal(d: Draft, sig: 'SIGTERM' | 'SIGINT' | 'SIGHUP' | 'SIGUSR2' | 'SIGQUIT'): void {
  if (!STOP_SIGNALS.has(sig)) {
    // A reload and an upgrade never overlap: the new primary reads the code and config on disk
    // anyway, and a rollout under the old one would race its retirement.
    if (d.upgrading) {
      d.log('warn', 'ZD_RELOAD_REFUSED', `${sig} refused: zd upgrade is in progress (primary ${d.candidate} starting); it starts from the code and config on disk, or send ${sig} again once it has ended`, {
        signal: sig,
      });
      return;
    }
    // A reload is the current primary's business (its own rollout); a candidate has nothing to reload yet.
    const current = d.s.current;
    const entry = d.entry(current);
    if (current !== null && entry !== undefined && isAlive(entry) && entry.status !== 'killed') {
      d.effects.push({ type: 'signal', id: current, signal: sig });
    } else {
      d.log('warn', 'ZD_KEEPER_NO_PRIMARY', `${sig} ignored: no primary is running (${d.s.restartPending ? 'it is restarting' : 'none yet'})`, {
        signal: sig,
      });
    }
    return;
  }
  if (!d.s.stopping) {
    d.s.stopping = true;
    d.s.stopReason = sig;
    d.s.restartPending = false;
    d.log('debug', 'ZD_KEEPER_STOPPING', `${sig}: stopping every primary`, { signal: sig });
    if (d.upgrading) toUpgrade(d, { type: 'keeper.stopping', signal: sig });
  }
  // Every live primary hears it, again on a second one (a second SIGINT forces); a killed one
  // cannot refuse SIGKILL and needs nothing more.
  for (const id of alivePrimaries(d.s)) {
    const entry = d.s.primaries[id]!;
    if (entry.status === 'killed') continue;
    if (entry.status === 'starting' || entry.status === 'ready') d.setStatus(id, 'stopping');
    d.effects.push({ type: 'signal', id, signal: sig });
  }
}

/** Feeds the upgrade machine and carries out what it asks for. */
function toUpgrade(d: Draft, event: UpgradeEvent): void {
  const [snapshot, actions] = transition(upgradeMachine, upgradeMachine.resolveState(d.s.upgrade), event);
  d.s.upgrade = { value: snapshot.value, context: snapshot.context };
  machineActions(actions, UPGRADE_ACTIONS, d);
  d.s.next = matchesState({ upgrading: 'beside' }, snapshot.value) ? snapshot.context.candidate : null;
}

function answer(d: Draft, ok: boolean, params: Record<string, unknown>): void {
  const requestId = params.requestId as string;
  const message = params.message as string;
  const id = params.id as PrimaryId;
  if (ok) d.counters().upgradesDone++;
  else d.counters().upgradesAborted++;
  d.s.lastUpgrade = { requestId, ok, message };
  d.effects.push(ok ? { type: 'reply', requestId, ok, message, id } : { type: 'reply', requestId, ok, message, id, code: 'ZD_E_UPGRADE_ABORTED' });
  d.log(ok ? 'info' : 'warn', ok ? 'ZD_UPGRADE_DONE' : 'ZD_UPGRADE_ABORTED', message, { requestId, id });
}

const UPGRADE_ACTIONS: ActionHandlers<Draft> = {
  named: {
    spawnCandidate(d, params) {
      const id = params.id as PrimaryId;
      const node = params.node as string | null;
      d.primaries()[id] = { status: 'starting', node, exit: null };
      d.effects.push({ type: 'spawn', id, node });
      d.log(
        'info',
        'ZD_UPGRADE_STARTED',
        `upgrade: starting primary ${id} beside primary ${params.previous as number}${node === null ? '' : ` on ${node}`}, to be ready within ${params.timeoutMs as number} ms`,
        { id, previous: params.previous, node, timeoutMs: params.timeoutMs },
      );
    },
    promote(d, params) {
      d.s.current = params.id as PrimaryId;
      d.effects.push({ type: 'promote', id: params.id as PrimaryId });
    },
    retire(d, params) {
      d.setStatus(params.id as PrimaryId, 'retiring');
      d.effects.push({ type: 'retire', id: params.id as PrimaryId });
    },
    kill(d, params) {
      d.setStatus(params.id as PrimaryId, 'killed');
      d.effects.push({ type: 'kill', id: params.id as PrimaryId });
    },
    succeed: (d, params) => answer(d, true, params),
    abort: (d, params) => answer(d, false, params),
  },
  // The candidate's readiness deadline.
  delayed(d, { event, delay }) {
    const id = d.s.upgrade.context.candidate!;
    d.s.deadline = { id, event };
    d.effects.push({ type: 'timer', ms: delay, event: { type: 'upgrade.timeout', id } });
  },
  cancelled(d) {
    d.s.deadline = null;
  },
};
