// The two clocks zd's long-lived processes (the primary, the keeper) read, kept off two of Node's
// costlier paths, since they idle for days and their memory is measured (issue #11,
// bench/RESULTS.md):
// - Date#toISOString, and every other Date printer, asks V8's date cache for the host's UTC
//   offset on first use, even to print UTC. On a full-ICU Node (the official builds) that opens
//   ICU's time-zone data, about 0.6 MB of the binary mapped in for good, and 0.9 MB of RSS in all.
//   The getUTC* accessors need no offset.
// - `performance` is loaded on first use, with perf_hooks and the modules it brings (0.2 MB).
//   process.hrtime is part of Node's bootstrap.

/** As Date#toISOString prints it (`2026-11-30T07:53:49.123Z`); RangeError for an invalid time. */
export function isoTime(ms: number | Date): string {
  const d = typeof ms === 'number' ? new Date(ms) : ms;
  const year = d.getUTCFullYear();
  // toISOString's six-digit years (and its RangeError): not a log line's, but exact all the same.
  if (!(year >= 0 && year <= 9999)) return d.toISOString();
  return `${pad(year, 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}T${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}.${pad(d.getUTCMilliseconds(), 3)}Z`;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/** Milliseconds on a monotonic clock with an arbitrary origin, as performance.now() differences are. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
