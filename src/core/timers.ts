// The primary's own timer ids (worker machines' delays are named by xstate: `w<id>:xstate.after.…`).
import type { WorkerId } from './events.ts';

export const respawnTimerId = (slot: number) => `respawn:${slot}`;
/** A slot left on an aborted reload's code is restored again (slots.ts). */
export const restoreTimerId = (slot: number) => `restore:${slot}`;
export const pingTimerId = (workerId: WorkerId) => `ping:${workerId}`;
export const pongTimerId = (workerId: WorkerId) => `pong:${workerId}`;
/** Paces superseded workers into draining, one per `retireStaggerMs`. */
export const STAGGER_TIMER = 'retire-stagger';
/** Ends the shutdown delay. */
export const STOP_DELAY_TIMER = 'stop-delay';
/** The deadline for the shell's `ports.closed`: a stop drains its workers by then anyway. */
export const PORTS_TIMER = 'ports-close';
