// The canary's verdict: is the new generation clearly worse than the old one over the same
// window? Pure: figures in, a verdict out, with the reason in words and the figures behind it.
import type { CoreConfig } from './config.ts';
import { addFigures, emptyFigures, LATENCY_BUCKETS_MS, type Figures } from './canary-figures.ts';

export interface GenerationFigures {
  requests: number;
  errors: number;
  /** 5xx responses plus requests that never got a response, over all of them. */
  errorRate: number;
  /** Upper bound of the bucket holding the 99th percentile, in ms; null with no request. */
  p99Ms: number | null;
}

export interface Verdict {
  outcome: 'pass' | 'fail' | 'inconclusive';
  reason: string;
  canary: GenerationFigures;
  baseline: GenerationFigures;
}

/**
 * A p99 difference smaller than this is never "slower": the buckets are coarse (…, 5, 10, 20 ms)
 * and a fast app's p99 moves by a bucket on noise alone.
 */
export const LATENCY_SLACK_MS = 25;
/** Fewer failing requests than this on the canary is never "worse": one error is noise. */
export const MIN_FAILURES = 3;

export function summarize(figures: Figures): GenerationFigures {
  const failed = figures.status['5xx'] + figures.errors;
  const total = figures.requests + figures.errors;
  return { requests: figures.requests, errors: failed, errorRate: total === 0 ? 0 : failed / total, p99Ms: percentileMs(figures, 0.99) };
}

export function percentileMs(figures: Figures, q: number): number | null {
  const total = figures.buckets.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  let seen = 0;
  for (let i = 0; i < figures.buckets.length; i++) {
    seen += figures.buckets[i]!;
    // Past the last bound: twice it, as a lower bound of "slower than everything measured".
    if (seen >= q * total) return LATENCY_BUCKETS_MS[i] ?? LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.length - 1]! * 2;
  }
  return null;
}

export function sum(all: Figures[]): Figures {
  return all.reduce(addFigures, emptyFigures());
}

const pct = (r: number) => `${(r * 100).toFixed(1)}%`;
const describe = (g: GenerationFigures) => `${pct(g.errorRate)} failed (${g.errors}), p99 ≤ ${g.p99Ms ?? '-'}ms over ${g.requests} responses`;

export function verdict(config: CoreConfig, canaryFigures: Figures, baselineFigures: Figures): Verdict {
  const canary = summarize(canaryFigures);
  const baseline = summarize(baselineFigures);
  const figures = `new ${describe(canary)}; old ${describe(baseline)}`;
  const seen = canaryFigures.requests + canaryFigures.errors;
  if (seen < config.canaryMinRequests) {
    return { outcome: 'inconclusive', reason: `only ${seen} request(s) reached the canary (fewer than ${config.canaryMinRequests}): ${figures}`, canary, baseline };
  }
  const worse = canary.errorRate - baseline.errorRate;
  if (canary.errors >= MIN_FAILURES && worse * 100 > config.canaryMaxErrorPoints) {
    return {
      outcome: 'fail',
      reason: `the new generation fails ${pct(canary.errorRate)} of requests, ${(worse * 100).toFixed(1)} points more than the old one's ${pct(baseline.errorRate)} (at most ${config.canaryMaxErrorPoints} allowed): ${figures}`,
      canary,
      baseline,
    };
  }
  if (canary.p99Ms !== null && baseline.p99Ms !== null && canary.p99Ms > baseline.p99Ms * config.canaryMaxLatencyFactor && canary.p99Ms - baseline.p99Ms >= LATENCY_SLACK_MS) {
    return {
      outcome: 'fail',
      reason: `the new generation's p99 latency ≤ ${canary.p99Ms}ms is more than ${config.canaryMaxLatencyFactor}× the old one's ≤ ${baseline.p99Ms}ms: ${figures}`,
      canary,
      baseline,
    };
  }
  return { outcome: 'pass', reason: figures, canary, baseline };
}
