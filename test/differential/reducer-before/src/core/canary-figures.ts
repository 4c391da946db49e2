// What a worker measures of its own HTTP traffic while a canary verdict is needed, as the core
// receives it. Shared by the worker's measuring (bounds sent to it), the shell's collector and the
// core's verdict, so that they cannot disagree on a bucket.

/** Latency buckets' upper bounds, in ms; one more bucket counts what is slower than the last. */
export const LATENCY_BUCKETS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

export interface Figures {
  /** Requests whose response finished. */
  requests: number;
  status: { '1xx': number; '2xx': number; '3xx': number; '4xx': number; '5xx': number };
  /** Requests whose response never finished: the connection closed or errored first. */
  errors: number;
  /** Finished responses by latency: `LATENCY_BUCKETS_MS.length + 1` counts. */
  buckets: number[];
}

export function emptyFigures(): Figures {
  return { requests: 0, status: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 }, errors: 0, buckets: LATENCY_BUCKETS_MS.map(() => 0).concat(0) };
}

export function addFigures(a: Figures, b: Figures): Figures {
  return {
    requests: a.requests + b.requests,
    status: {
      '1xx': a.status['1xx'] + b.status['1xx'],
      '2xx': a.status['2xx'] + b.status['2xx'],
      '3xx': a.status['3xx'] + b.status['3xx'],
      '4xx': a.status['4xx'] + b.status['4xx'],
      '5xx': a.status['5xx'] + b.status['5xx'],
    },
    errors: a.errors + b.errors,
    buckets: a.buckets.map((n, i) => n + (b.buckets[i] ?? 0)),
  };
}

/** A runtime guard at the edge: figures from a worker are the app's process's bytes. */
export function isFigures(value: unknown): value is Figures {
  const f = value as Figures | null;
  return (
    typeof f === 'object' &&
    f !== null &&
    Number.isFinite(f.requests) &&
    Number.isFinite(f.errors) &&
    typeof f.status === 'object' &&
    f.status !== null &&
    ['1xx', '2xx', '3xx', '4xx', '5xx'].every((k) => Number.isFinite((f.status as Record<string, number>)[k])) &&
    Array.isArray(f.buckets) &&
    f.buckets.length === LATENCY_BUCKETS_MS.length + 1 &&
    f.buckets.every((n) => Number.isFinite(n))
  );
}
