// A reload's canary, judged: the figures the workers measured over its window, the new generation
// against the old, become the rollout machine's verdict (pass, fail, or a window extended for more
// evidence) and the canary's record for status, inspect and metrics.
import { matchesState } from 'xstate';
import { CANARY_EXTENSIONS, CANARY_JUDGE_MS, type RolloutContext } from '../../machines/rollout.machine.ts';
import type { Figures } from './canary-figures.ts';
import { sum, verdict } from './canary.ts';
import type { Draft } from './draft.ts';
import type { CanaryRecord } from './state.ts';

/** The canary's figures arrived: the new generation against the old, over the same window. */
export function judgeCanary(d: Draft, requestId: number, figures: Array<{ workerId: number; figures: Figures | null }>): void {
  const rollout = d.s.rollout;
  if (!rollout || rollout.context.generation !== requestId || !matchesState({ canary: 'judging' }, rollout.value)) return; // late
  const byGeneration = (mine: boolean) =>
    figures.flatMap(({ workerId, figures: f }) => {
      const worker = d.worker(workerId);
      return f && worker && (worker.generation === requestId) === mine ? [f] : [];
    });
  // Each window adds to the ones before: an extension gathers more evidence, it does not start over.
  const before = d.s.canaryEvidence?.generation === requestId ? d.s.canaryEvidence : null;
  const canary = sum([...(before ? [before.canary] : []), ...byGeneration(true)]);
  const baseline = sum([...(before ? [before.baseline] : []), ...byGeneration(false)]);
  const windows = rollout.context.canaryWindows;
  const judged = verdict(d.config, canary, baseline);
  const silent = figures.filter((f) => f.figures === null).length;
  const reason = silent > 0 ? `${judged.reason} (${silent} worker(s) did not answer)` : judged.reason;
  if (judged.outcome === 'inconclusive' && windows <= CANARY_EXTENSIONS) {
    d.s.canaryEvidence = { generation: requestId, canary, baseline };
    d.log('info', 'ZD_CANARY_EXTENDED', `canary of generation ${requestId} has too little evidence after ${windows} window(s): its window is extended by ${d.config.canaryMs}ms (${reason})`, {
      generation: requestId,
      windows,
      canaryMs: d.config.canaryMs,
    });
    d.rolloutQueue.push({ type: 'rollout.verdict', pass: false, extend: true, reason });
    return;
  }
  d.s.canaryEvidence = null;
  const proceed = judged.outcome === 'pass' || (judged.outcome === 'inconclusive' && d.config.canaryInconclusive === 'proceed');
  noteCanary(d, requestId, { ...judged, reason }, proceed ? 'proceeds' : 'aborts');
  const why = judged.outcome === 'fail' ? `canary failed: ${reason}` : `canary inconclusive after ${windows} window(s): ${reason}`;
  d.rolloutQueue.push({ type: 'rollout.verdict', pass: proceed, reason: why });
}

/** The figures did not come within their deadline after the window: inconclusive. */
export function noteSilentCanary(d: Draft, context: RolloutContext): void {
  noteCanary(d, context.generation, { outcome: 'inconclusive', reason: `no figures within ${CANARY_JUDGE_MS}ms of the window's end`, canary: null, baseline: null }, context.canaryInconclusive === 'proceed' ? 'proceeds' : 'aborts');
}

function noteCanary(d: Draft, generation: number, judged: Omit<CanaryRecord, 'generation' | 'canary' | 'baseline'> & { canary: CanaryRecord['canary'] | null; baseline: CanaryRecord['baseline'] | null }, then: 'proceeds' | 'aborts'): void {
  const none = { requests: 0, errors: 0, errorRate: 0, p99Ms: null };
  d.s.canary = { generation, outcome: judged.outcome, reason: judged.reason, canary: judged.canary ?? none, baseline: judged.baseline ?? none };
  const fields = { generation, outcome: judged.outcome, canary: d.s.canary.canary, baseline: d.s.canary.baseline };
  if (judged.outcome === 'pass') d.log('info', 'ZD_CANARY_PASSED', `canary of generation ${generation} passed: ${judged.reason}`, fields);
  else if (judged.outcome === 'fail') d.log('warn', 'ZD_CANARY_FAILED', `canary of generation ${generation} failed: ${judged.reason}`, fields);
  else d.log('warn', 'ZD_CANARY_INCONCLUSIVE', `canary of generation ${generation} inconclusive, the rollout ${then}${then === 'proceeds' ? ' (--canary-inconclusive proceed)' : ''}: ${judged.reason}`, fields);
}
