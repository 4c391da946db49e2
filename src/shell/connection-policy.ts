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
