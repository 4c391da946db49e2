// Issue #12 (the soak): the primary keeps nothing per worker once the worker is gone, even when
// /metrics is on and nobody scrapes it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Effect } from '../../src/core/effects.ts';
import { ZdMetrics } from '../../src/ops/metrics-zd.ts';
import type { Runtime, StateListener } from '../../src/shell/runtime.ts';

test('a worker that exited leaves no fork time behind, without a scrape', () => {
  let listener: StateListener | null = null;
  const runtime = { subscribe: (l: StateListener) => ((listener = l), () => {}) } as unknown as Runtime;
  const metrics = new ZdMetrics(runtime, () => 0);
  const step = (effects: Effect[]) => listener!(null as never, null, effects, []);
  for (let workerId = 1; workerId <= 1000; workerId++) {
    step([{ type: 'fork', workerId, slot: 0, generation: workerId, release: { app: 'app.js', cwd: '.', args: [] } } as unknown as Effect]);
    step([{ type: 'log', level: 'info', code: 'ZD_WORKER_EXITED', msg: 'exited', fields: { workerId, slot: 0, generation: workerId, outcome: 'exited' } }]);
  }
  // Private, read only here: the leak it guards against is invisible from /metrics, which prunes.
  assert.equal((metrics as unknown as { forkedAt: Map<number, number> }).forkedAt.size, 0);
  metrics.close();
});
