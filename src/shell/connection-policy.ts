// Which worker takes a connection: pure, so that the choice is tested without a socket. The shell
// (sockets.ts) asks with the workers that listen on the address and have room for one more.
import type { WorkerId } from '../core/events.ts';

/** FNV-1a: a stable, cheap hash of the client address. */
export function hashAddress(address: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < address.length; i++) {
    hash ^= address.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/**
 * --sticky: the client's slot, else the next slot with a worker that can take it. `slots` is each
 * slot's current worker, in slot order, so a client keeps its slot across reloads. A worker that
 * is no slot's (an old generation's, while its replacement is not listening yet) serves when no
 * slot's can, chosen by the same hash.
 */
export function pickSticky(address: string, slots: readonly WorkerId[], candidates: readonly WorkerId[]): WorkerId | null {
  if (candidates.length === 0) return null;
  const hash = hashAddress(address);
  const n = slots.length;
  for (let k = 0; k < n; k++) {
    const id = slots[(hash + k) % n]!;
    if (candidates.includes(id)) return id;
  }
  return candidates[hash % candidates.length]!;
}

/** Round robin: the first candidate after the one that took the last connection. */
export function pickRoundRobin(last: WorkerId | null, candidates: readonly WorkerId[]): WorkerId | null {
  if (candidates.length === 0) return null;
  if (last === null) return candidates[0]!;
  for (const id of candidates) if (id > last) return id;
  return candidates[0]!;
}

/**
 * --sched reuseport: which workers accept on each slot's socket (the kernel spreads new
 * connections over the slots' sockets; a worker accepts straight from the ones it is given).
 * A slot's socket is its own routable workers' (a replacement and the worker it replaces share
 * it, so a rollout never closes it); a socket whose slot has no routable worker (a crash in
 * backoff, a slot scaled away, a cold or warming replacement alone) goes to one other routable
 * worker, spread by slot, so that what the kernel queues there is taken. With no routable worker
 * at all, nobody accepts: the kernel's backlog holds the connections until one is.
 */
export function assignSlotSockets(
  sockets: readonly number[],
  candidates: readonly WorkerId[],
  slotOf: (id: WorkerId) => number | null,
): Map<number, WorkerId[]> {
  const out = new Map<number, WorkerId[]>();
  for (const slot of sockets) {
    const own = candidates.filter((id) => slotOf(id) === slot);
    out.set(slot, own.length > 0 ? own : candidates.length > 0 ? [candidates[slot % candidates.length]!] : []);
  }
  return out;
}
