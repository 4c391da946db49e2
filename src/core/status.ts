// What `zd status` and `zd inspect` show of the primary: a pure, serialisable projection of its
// state. The shell adds what only it can know (times, memory, CPU).
import { isReady, stateName, workerList } from './queries.ts';
import type { Release } from './events.ts';
import type { CanaryRecord, Phase, PrimaryState, RolloutRecord } from './state.ts';

export interface WorkerStatus {
  id: number;
  pid: number | null;
  slot: number;
  generation: number;
  /** The worker machine's state, dotted: `booting.online`, `listening.stable`, `draining`… */
  state: string;
  ready: boolean;
  /** Respawns of this worker's slot so far. */
  restarts: number;
}

export interface RolloutStatus {
  generation: number;
  state: string;
  replaced: number;
  total: number;
  pendingSlots: number[];
  bootingSlots: number[];
  /** A canary on trial: its slot, and where it is (booting, serving its window, being judged). */
  canary: { slot: number | null; state: string; windowMs: number } | null;
}

export interface StatusView {
  phase: Phase;
  generation: number;
  workers: WorkerStatus[];
  desired: number;
  ready: number;
  rollout: RolloutStatus | null;
  lastRollout: RolloutRecord | null;
  lastReload: RolloutRecord | null;
  reloadQueued: boolean;
  parkedSlots: number[];
  counters: PrimaryState['counters'];
  /** The latest canary's verdict, with both generations' figures. */
  canaryVerdict: CanaryRecord | null;
  /** The generation serving every slot (the newest to complete its rollout). */
  serving: number | null;
  /** Each remembered generation's release: what it runs, and where. */
  releases: Array<{ generation: number } & Release>;
}

export function statusView(state: PrimaryState): StatusView {
  const workers = workerList(state).map((w) => ({
    id: w.id,
    pid: w.machine.context.pid,
    slot: w.slot,
    generation: w.generation,
    state: stateName(w),
    ready: isReady(w),
    restarts: state.slots[w.slot]?.restarts ?? 0,
  }));
  const rollout = state.rollout;
  return {
    phase: state.phase,
    generation: state.generation,
    workers,
    desired: state.config.workers,
    ready: workers.filter((w) => w.ready).length,
    rollout: rollout && {
      generation: rollout.context.generation,
      state: typeof rollout.value === 'string' ? rollout.value : JSON.stringify(rollout.value),
      replaced: rollout.context.replaced,
      total: rollout.context.total,
      pendingSlots: rollout.context.pending,
      bootingSlots: rollout.context.booting,
      canary:
        typeof rollout.value === 'object' && 'canary' in rollout.value
          ? { slot: rollout.context.canarySlot, state: String((rollout.value as Record<string, unknown>).canary), windowMs: rollout.context.canaryMs }
          : null,
    },
    lastRollout: state.lastRollout,
    lastReload: state.lastReload,
    reloadQueued: state.reloadQueued,
    parkedSlots: state.slots.flatMap((slot, index) => (slot.parked ? [index] : [])),
    counters: state.counters,
    canaryVerdict: state.canary,
    serving: state.completed[state.completed.length - 1] ?? null,
    releases: Object.entries(state.releases)
      .map(([generation, release]) => ({ generation: Number(generation), ...release }))
      .sort((a, b) => a.generation - b.generation),
  };
}
