// `zd scale N`: the same generation, more or fewer workers; never during a rollout. Growing forks
// the added slots' workers at once; shrinking drains the surplus (pool.ts).
import type { Draft } from './draft.ts';
import { NONE, type Intent } from './intents.ts';
import { growSlots, shrinkSlots } from './pool.ts';

export function requestScale(d: Draft, workers: number): readonly Intent[] {
  const from = d.config.workers;
  const refuse = (why: string) => {
    d.log('warn', 'ZD_SCALE_REFUSED', `scale to ${workers} refused: ${why}`, { workers, reason: why });
    return NONE;
  };
  if (d.s.phase !== 'running') return refuse(d.s.phase === 'starting' ? 'no worker is ready yet' : 'zd is shutting down');
  if (d.s.rollout !== null) return refuse(`a rollout to generation ${d.s.rollout.context.generation} is running: scale when it ends (zd reload --wait)`);
  if (!Number.isInteger(workers) || workers < 1) return refuse('the worker count must be a whole number ≥ 1');
  if (workers === from) {
    d.log('info', 'ZD_SCALED', `already ${workers} worker(s)`, { from, workers });
    return NONE;
  }
  d.s.config = { ...d.config, workers };
  d.log('info', 'ZD_SCALED', `scaling from ${from} to ${workers} worker(s)`, { from, workers });
  if (workers < from) return shrinkSlots(d, workers);
  const serving = d.s.completed[d.s.completed.length - 1] ?? d.s.generation;
  const before = d.s.slots.length;
  growSlots(d, workers, serving);
  const forks: Intent[] = [];
  for (let slot = before; slot < workers; slot++) forks.push({ type: 'worker.fork', slot, generation: serving, as: 'worker' });
  return forks;
}
