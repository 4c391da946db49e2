// Feeds the reducer each live worker's memory, so that --max-memory can replace a worker over it.
// The core decides; this only measures.
import { procSample } from './proc.ts';
import { liveWorkers } from '../core/queries.ts';
import type { Runtime } from './runtime.ts';

export const MEMORY_SAMPLE_MS = 2000;

export function startMemorySampler(runtime: Runtime, intervalMs = MEMORY_SAMPLE_MS): () => void {
  const timer = setInterval(() => {
    for (const worker of liveWorkers(runtime.snapshot)) {
      const pid = worker.machine.context.pid;
      const sample = pid === null ? null : procSample(pid);
      if (sample) runtime.dispatch({ type: 'worker.memory', workerId: worker.id, rssBytes: sample.rssBytes });
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
