// The restart back-off both reducers use: a worker slot's respawns (the primary) and a crashed
// primary's restarts (the keeper).

/** Delay before the n-th consecutive restart (n ≥ 1): `initialMs`, doubling each time, capped at `maxMs`. */
export function backoffMs(initialMs: number, maxMs: number, n: number): number {
  const exponent = Math.max(0, n - 1);
  // Cap the exponent too, so a long streak never overflows to Infinity.
  return Math.min(maxMs, initialMs * 2 ** Math.min(exponent, 30));
}
