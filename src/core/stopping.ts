// Stopping: a graceful stop drains every worker (after the shutdown delay, if any) and exits once
// none is left; a second signal forces it. A fatal stop (nothing ever ready, every slot in a crash
// loop) takes the same path with a non-zero exit code.
import type { Draft } from './draft.ts';
import { EXIT } from './exit-codes.ts';
import { NONE, type Intent } from './intents.ts';
import { isBooting, isReady, liveWorkers, readyCount } from './queries.ts';
import { PORTS_TIMER, respawnTimerId, restoreTimerId, STAGGER_TIMER, STOP_DELAY_TIMER } from './timers.ts';

/** A stop asked for by a signal or by `zd stop` (`source`), which counts as SIGTERM. */
export function terminate(d: Draft, signal: 'SIGTERM' | 'SIGINT', source: string): readonly Intent[] {
  if (d.s.phase !== 'stopping') {
    d.log('info', 'ZD_SHUTDOWN', `${source}: draining every worker, then exiting (send it again to force)`, {
      signal,
      source,
    });
    return [{ type: 'stop', code: EXIT.ok }];
  }
  // A second signal: the user is done waiting.
  const code = signal === 'SIGINT' ? EXIT.forcedInt : EXIT.forcedTerm;
  d.log('warn', 'ZD_SHUTDOWN_FORCED', `${source} again: killing every worker now`, { signal, source });
  const intents: Intent[] = [];
  for (const entry of liveWorkers(d.s)) {
    if (isReady(entry)) intents.push({ type: 'worker.event', workerId: entry.id, event: { type: 'drain' } }); // still serving out a shutdown delay
    intents.push({ type: 'worker.event', workerId: entry.id, event: { type: 'kill' } });
  }
  d.s.exitCode = code;
  intents.push({ type: 'exit' });
  return intents;
}

/** Stops with `exitCode`: the running rollout aborts first. */
export function beginStop(d: Draft, exitCode: number): readonly Intent[] {
  d.s.phase = 'stopping';
  d.s.exitCode = exitCode;
  if (d.s.reloadQueued) {
    d.s.reloadQueued = false;
    d.counters().reloadsDropped += 1;
  }
  const then: Intent[] = [{ type: 'rollout.run' }, { type: 'stop.clear', code: exitCode }];
  return d.s.rollout !== null ? [{ type: 'rollout.event', event: { type: 'rollout.abort', reason: 'shutdown' } }, ...then] : then;
}

/** The rollout is over: no slot waits for a worker any more, and the booting ones are stopped. */
export function clear(d: Draft, exitCode: number): readonly Intent[] {
  d.s.replaceQueue = [];
  d.s.slots.forEach((_, index) => {
    const slot = d.mutSlot(index);
    slot.worker = null;
    slot.next = null;
    d.cancelTimer(respawnTimerId(index));
    d.cancelTimer(restoreTimerId(index));
  });
  const intents: Intent[] = [];
  for (const entry of liveWorkers(d.s)) if (isBooting(entry)) intents.push({ type: 'worker.retire', workerId: entry.id, reason: 'shutdown' });
  intents.push({ type: 'stop.drain', code: exitCode }, { type: 'stop.ifIdle' });
  return intents;
}

/**
 * A graceful stop may first keep serving while a load balancer notices (readiness already
 * fails); a fatal one does not wait.
 */
export function drainOrDelay(d: Draft, exitCode: number): readonly Intent[] {
  const delay = exitCode === EXIT.ok ? d.config.shutdownDelayMs : 0;
  if (delay > 0 && readyCount(d.s) > 0) {
    d.log('info', 'ZD_SHUTDOWN_DELAY', `serving ${delay}ms more while readiness fails, then draining`, { shutdownDelayMs: delay });
    d.startTimer(STOP_DELAY_TIMER, { kind: 'stop-delay' }, delay);
    return NONE;
  }
  return drainAll(d);
}

/** Exits once no worker is left. */
export function exitIfIdle(d: Draft): readonly Intent[] {
  if (liveWorkers(d.s).length === 0) exit(d);
  return NONE;
}

/** Reaction to a worker's death: the last one, while stopping, ends the stop. */
export function onDied(d: Draft): readonly Intent[] {
  if (d.s.phase === 'stopping') exitIfIdle(d);
  return NONE;
}

/**
 * How long the shell has to stop accepting on every port (the keeper's copies included) before
 * the workers drain anyway.
 */
export const PORTS_CLOSE_MS = 2_000;

/**
 * Stopping: every worker still serving drains now, staggering or not. First the ports close: every
 * zd process stops accepting while the workers still serve, so that what was accepted a moment
 * ago reaches one of them and what comes later is refused by the kernel (or, on a socket zd was
 * given, waits in its queue for the next instance), never accepted for nobody.
 */
export function drainAll(d: Draft): readonly Intent[] {
  if (d.s.ports === 'open') {
    d.s.ports = 'closing';
    d.effects.push({ type: 'ports.close' });
    d.log('debug', 'ZD_PORTS_CLOSING', 'no worker will serve the ports again: every zd process stops accepting, then the workers drain');
    d.startTimer(PORTS_TIMER, { kind: 'ports' }, PORTS_CLOSE_MS);
    return NONE;
  }
  if (d.s.ports === 'closing') return NONE; // portsClosed() drains
  d.s.draining = true;
  d.cancelTimer(STAGGER_TIMER);
  d.s.retiring = [];
  return liveWorkers(d.s).map((entry): Intent => ({ type: 'worker.retire', workerId: entry.id, reason: 'shutdown' }));
}

/** The shell's answer to `ports.close`, or its deadline (`overdue`): the workers drain now. */
export function portsClosed(d: Draft, overdue: boolean): readonly Intent[] {
  if (d.s.ports !== 'closing') return NONE; // late, or not asked
  if (overdue) d.log('warn', 'ZD_PORTS_CLOSE_OVERDUE', `the ports were not closed within ${PORTS_CLOSE_MS}ms: draining the workers anyway`, { portsCloseMs: PORTS_CLOSE_MS });
  else d.cancelTimer(PORTS_TIMER);
  d.s.ports = 'closed';
  return d.s.phase === 'stopping' ? drainAll(d) : NONE;
}

export function exit(d: Draft): readonly Intent[] {
  const code = d.s.exitCode ?? EXIT.ok;
  d.s.phase = 'exited';
  for (const timerId of Object.keys(d.s.timers)) d.cancelTimer(timerId);
  for (const worker of d.s.workers) for (const timerId of Object.keys(worker.timers)) d.cancelTimer(timerId);
  d.log(code === 0 ? 'info' : 'error', 'ZD_STOPPED', `zd exiting with code ${code}`, { exitCode: code });
  d.effects.push({ type: 'exit', code });
  return NONE;
}
