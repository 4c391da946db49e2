// zd's own metrics, in a prom-client Registry of their own (never the global one, which belongs
// to whoever else loads prom-client). What the state says is read at scrape time; what only
// happens between scrapes (rollouts and their durations, exits) is counted as it happens.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { WORKER_OUTCOMES } from '../../machines/worker.machine.ts';
import { procSample } from '../shell/proc.ts';
import type { Effect } from '../core/effects.ts';
import type { Phase, PrimaryState } from '../core/state.ts';
import { statusView } from '../core/status.ts';
import { VERSION } from '../version.ts';
import type { Runtime } from '../shell/runtime.ts';
import type { PollProtocol } from './metrics-poll.ts';
import type { SocketStats } from '../shell/sockets.ts';

/** What the socket layer has counted (sockets.ts), read at scrape time. */
export type ConnectionFigures = SocketStats & { waiting: number };

const WORKER_LABELS = ['worker_id', 'pid', 'slot', 'generation'] as const;
type WorkerLabel = (typeof WORKER_LABELS)[number];
const PHASES: Phase[] = ['starting', 'running', 'stopping', 'exited'];
const KINDS = ['reload', 'replace'] as const;
type Kind = (typeof KINDS)[number];
const OUTCOMES = ['done', 'aborted'] as const;
/** A rollout takes a few seconds per slot, or as long as a drain deadline. */
const ROLLOUT_BUCKETS = [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];

/**
 * A worker's event-loop delay over the interval since zd last asked, in milliseconds. The worker
 * bootstrap answers `{ type: 'zd:stats', requestId }` with
 * `{ type: 'zd:stats', requestId, lagMs: { mean, p99, max } }`.
 */
export interface WorkerLag {
  mean: number;
  p99: number;
  max: number;
}

export const workerStatsProtocol: PollProtocol<WorkerLag> = {
  request: (requestId) => ({ type: 'zd:stats', requestId }),
  parse(message) {
    const m = message as { type?: unknown; requestId?: unknown; lagMs?: Partial<Record<keyof WorkerLag, unknown>> } | null;
    if (typeof m !== 'object' || m === null || m.type !== 'zd:stats' || typeof m.requestId !== 'number') return undefined;
    if (typeof m.lagMs !== 'object' || m.lagMs === null) return undefined;
    const { mean, p99, max } = m.lagMs;
    if (![mean, p99, max].every((v) => typeof v === 'number' && Number.isFinite(v) && v >= 0)) return undefined;
    return { id: m.requestId, value: { mean: mean as number, p99: p99 as number, max: max as number } };
  },
};

/** A worker's lag as a scrape reports it: its last answer, and whether this scrape's ask is still unanswered. */
export interface LagReading {
  lag: WorkerLag;
  /** How long this scrape's ask has gone unanswered, in ms (a lower bound of its lag now), or null if answered. */
  waitingMs: number | null;
}

export class ZdMetrics {
  readonly registry = new Registry();
  private readonly forkedAt = new Map<number, number>();
  private rolloutStart: { kind: Kind; at: number } | null = null;
  private readonly unsubscribe: () => void;

  private readonly workerState: Gauge<WorkerLabel | 'state'>;
  private readonly workerUptime: Gauge<WorkerLabel>;
  private readonly workerRss: Gauge<WorkerLabel>;
  private readonly workerCpu: Counter<WorkerLabel>;
  private readonly workerLag: Record<keyof WorkerLag, Gauge<WorkerLabel>>;
  private readonly slotRestarts: Counter<'slot'>;
  private readonly desired: Gauge;
  private readonly ready: Gauge;
  private readonly generation: Gauge;
  private readonly releaseInfo: Gauge;
  private readonly canaryVerdicts: Counter;
  private readonly canaryErrorRatio: Gauge;
  private readonly canaryP99: Gauge;
  private readonly canaryWindow: Gauge;
  private readonly parked: Gauge;
  private readonly phase: Gauge<'phase'>;
  private readonly crashes: Counter;
  private readonly exits: Counter<'outcome'>;
  private readonly started: Counter<'kind'>;
  private readonly completed: Counter<'kind'>;
  private readonly aborted: Counter<'kind'>;
  private readonly duration: Histogram<'kind' | 'outcome'>;
  private readonly routable: Gauge;
  private readonly acceptErrors: Counter<'errno'>;
  private readonly resets: Counter<'reason'>;
  private readonly connRefused: Counter;
  private readonly connReturned: Counter;
  private readonly handedOver: Counter;
  private readonly waiting: Gauge;
  /** What each connection counter has been raised to so far (the socket layer's totals). */
  private readonly counted = new Map<string, number>();

  constructor(
    runtime: Runtime,
    private readonly now: () => number = Date.now,
    private readonly connections: () => ConnectionFigures | null = () => null,
  ) {
    const registers = [this.registry];
    this.routable = new Gauge({ name: 'zd_workers_routable', help: 'Workers the core lets receive new connections (its routable set)', registers });
    this.acceptErrors = new Counter({ name: 'zd_accept_errors_total', help: 'accept(2) failures on the listening sockets zd owns, by errno (EMFILE: the primary is at its descriptor limit)', labelNames: ['errno'], registers });
    this.resets = new Counter({ name: 'zd_connections_reset_total', help: 'Connections zd accepted and reset: ZD_CONN_NO_WORKER (none could take it in time), ZD_CONN_OVERFLOW (too many waiting), ZD_CONN_STOPPED', labelNames: ['reason'], registers });
    this.connRefused = new Counter({ name: 'zd_connections_refused_by_worker_total', help: 'Connections a worker could not take (NODE_HANDLE_NACK: its descriptor limit; or its channel closed): handed to another worker', registers });
    this.connReturned = new Counter({ name: 'zd_connections_returned_total', help: "Connections a worker sent back because its server had closed: handed to another worker", registers });
    this.handedOver = new Counter({ name: 'zd_connections_handed_over_total', help: 'Connections zd accepted and handed to a worker (round robin and --sticky)', registers });
    this.waiting = new Gauge({ name: 'zd_connections_waiting', help: 'Connections accepted and waiting for a routable worker with room', registers });
    const worker = (name: string, help: string) => new Gauge({ name, help, labelNames: WORKER_LABELS, registers });
    this.workerState = new Gauge({
      name: 'zd_worker_state',
      help: "1 for each live worker, labelled with its machine's state (booting.online, listening.stable, draining…)",
      labelNames: [...WORKER_LABELS, 'state'],
      registers,
    });
    this.workerUptime = worker('zd_worker_uptime_seconds', 'Seconds since zd forked the worker');
    this.workerRss = worker('zd_worker_resident_memory_bytes', "The worker's resident set size, from /proc");
    this.workerCpu = new Counter({
      name: 'zd_worker_cpu_seconds_total',
      help: 'User and system CPU time the worker has used, from /proc',
      labelNames: WORKER_LABELS,
      registers,
    });
    this.workerLag = {
      mean: worker('zd_worker_event_loop_lag_mean_seconds', "Mean event-loop delay of the worker since the previous scrape"),
      p99: worker('zd_worker_event_loop_lag_p99_seconds', '99th percentile event-loop delay of the worker since the previous scrape'),
      max: worker(
        'zd_worker_event_loop_lag_max_seconds',
        'Longest event-loop delay of the worker since the previous scrape; at least how long this scrape waited if the worker did not answer',
      ),
    };
    this.slotRestarts = new Counter({ name: 'zd_slot_restarts_total', help: 'Respawns of the worker of each slot', labelNames: ['slot'], registers });
    this.desired = new Gauge({ name: 'zd_workers_desired', help: 'Number of slots (--workers)', registers });
    this.ready = new Gauge({ name: 'zd_workers_ready', help: 'Workers ready and serving', registers });
    this.generation = new Gauge({ name: 'zd_generation', help: 'Newest generation asked for (1 at start, +1 per reload)', registers });
    // Which primary answered: the metrics port is held across `zd upgrade`, so a scrape follows the
    // instance and this says when the primary (its pid, its Node, its zd) changed.
    new Gauge({ name: 'zd_primary_info', help: '1, labelled with the primary that answered this scrape: its pid, Node version and zd version', labelNames: ['pid', 'node', 'version'], registers }).set(
      { pid: String(process.pid), node: process.version, version: VERSION },
      1,
    );
    this.releaseInfo = new Gauge({
      name: 'zd_generation_release_info',
      help: "1 for each remembered generation, labelled with the release it runs (the resolved app path and directory); serving=\"true\" for the one serving every slot",
      labelNames: ['generation', 'release', 'app', 'serving'],
      registers,
    });
    this.canaryVerdicts = new Counter({ name: 'zd_canary_verdicts_total', help: 'Canary verdicts: pass, fail (the rollout aborted), inconclusive (it proceeded)', labelNames: ['outcome'], registers });
    for (const outcome of ['pass', 'fail', 'inconclusive']) this.canaryVerdicts.inc({ outcome }, 0);
    this.canaryErrorRatio = new Gauge({ name: 'zd_canary_error_ratio', help: "The latest canary window's 5xx-plus-error rate, of the new generation (canary) and the old (baseline)", labelNames: ['role'], registers });
    this.canaryP99 = new Gauge({ name: 'zd_canary_p99_seconds', help: "The latest canary window's p99 latency (bucket upper bound), of the canary and the baseline", labelNames: ['role'], registers });
    this.canaryWindow = new Gauge({ name: 'zd_canary_in_progress', help: '1 while a canary is on trial (booting, serving its window, being judged)', registers });
    this.parked = new Gauge({ name: 'zd_slots_crash_looping', help: 'Slots left empty after a crash loop, until the next reload', registers });
    this.phase = new Gauge({ name: 'zd_phase', help: "1 for the primary's current phase", labelNames: ['phase'], registers });
    this.crashes = new Counter({ name: 'zd_worker_crashes_total', help: 'Unplanned worker exits and failed respawns while running (not during the first boot or a stop)', registers });
    this.exits = new Counter({ name: 'zd_worker_exits_total', help: 'Worker exits, by how the worker ended', labelNames: ['outcome'], registers });
    this.started = new Counter({ name: 'zd_rollouts_started_total', help: 'Rollouts started: reload (new generation) or replace (memory, heartbeat)', labelNames: ['kind'], registers });
    this.completed = new Counter({ name: 'zd_rollouts_completed_total', help: 'Rollouts that replaced every slot they meant to', labelNames: ['kind'], registers });
    this.aborted = new Counter({ name: 'zd_rollouts_aborted_total', help: 'Rollouts aborted: a replacement failed, or zd began stopping', labelNames: ['kind'], registers });
    this.duration = new Histogram({
      name: 'zd_rollout_duration_seconds',
      help: 'Time from the start of a rollout to its end (done or aborted)',
      labelNames: ['kind', 'outcome'],
      buckets: ROLLOUT_BUCKETS,
      registers,
    });
    for (const kind of KINDS) {
      this.started.inc({ kind }, 0);
      this.completed.inc({ kind }, 0);
      this.aborted.inc({ kind }, 0);
      for (const outcome of OUTCOMES) this.duration.zero({ kind, outcome });
    }
    for (const outcome of WORKER_OUTCOMES) this.exits.inc({ outcome }, 0);
    // The primary's own process: zd_primary_process_resident_memory_bytes, _cpu_seconds_total, …
    collectDefaultMetrics({ register: this.registry, prefix: 'zd_primary_' });

    this.unsubscribe = runtime.subscribe((_state, _event, effects) => this.onEffects(effects));
  }

  close(): void {
    this.unsubscribe();
  }

  /** The socket layer counts as it goes; the counters here take its totals at each scrape. */
  private updateConnections(): void {
    const figures = this.connections();
    if (!figures) return;
    const total = (counter: Counter<string>, value: number, labels: Record<string, string> = {}) => {
      const key = `${(counter as unknown as { name: string }).name}${JSON.stringify(labels)}`;
      const before = this.counted.get(key) ?? 0;
      if (value > before) counter.inc(labels, value - before);
      this.counted.set(key, Math.max(value, before));
    };
    for (const [errno, n] of Object.entries(figures.acceptErrors)) total(this.acceptErrors, n, { errno });
    for (const [reason, n] of Object.entries(figures.resets)) total(this.resets, n, { reason });
    total(this.connRefused, figures.refused);
    total(this.connReturned, figures.returned);
    total(this.handedOver, figures.handedOver);
    this.waiting.set(figures.waiting);
  }

  private onEffects(effects: Effect[]): void {
    for (const effect of effects) {
      if (effect.type === 'fork') {
        this.forkedAt.set(effect.workerId, this.now());
        continue;
      }
      if (effect.type !== 'log') continue;
      const canary = /^ZD_CANARY_(PASSED|FAILED|INCONCLUSIVE)$/.exec(effect.code);
      if (canary) {
        this.canaryVerdicts.inc({ outcome: canary[1] === 'PASSED' ? 'pass' : canary[1] === 'FAILED' ? 'fail' : 'inconclusive' });
        continue;
      }
      if (effect.code === 'ZD_WORKER_EXITED') {
        // Forgotten here, not only at the next scrape: a /metrics nobody scrapes would otherwise
        // keep one entry per worker ever forked.
        const workerId = effect.fields?.workerId;
        if (typeof workerId === 'number') this.forkedAt.delete(workerId);
        const outcome = effect.fields?.outcome;
        if (typeof outcome === 'string') this.exits.inc({ outcome });
        continue;
      }
      const rollout = /^ZD_(RELOAD|REPLACE)_(STARTED|DONE|ABORTED)$/.exec(effect.code);
      if (!rollout) continue;
      const kind: Kind = rollout[1] === 'RELOAD' ? 'reload' : 'replace';
      if (rollout[2] === 'STARTED') {
        this.started.inc({ kind });
        this.rolloutStart = { kind, at: this.now() };
        continue;
      }
      const outcome = rollout[2] === 'DONE' ? 'done' : 'aborted';
      (outcome === 'done' ? this.completed : this.aborted).inc({ kind });
      if (this.rolloutStart?.kind === kind) this.duration.observe({ kind, outcome }, (this.now() - this.rolloutStart.at) / 1000);
      this.rolloutStart = null;
    }
  }

  /** Sets everything read from the state; `lag` is by pid. */
  update(state: PrimaryState | undefined, lag: Map<number, LagReading>): void {
    for (const gauge of [this.workerState, this.workerUptime, this.workerRss, ...Object.values(this.workerLag)]) gauge.reset();
    this.workerCpu.reset();
    this.slotRestarts.reset();
    this.updateConnections();
    if (!state) return; // scraped before the runtime started
    this.routable.set(state.routing.workers.length);
    const view = statusView(state);
    const now = this.now();
    const live = new Set<number>();
    for (const w of view.workers) {
      live.add(w.id);
      const labels = { worker_id: w.id, pid: w.pid ?? '', slot: w.slot, generation: w.generation };
      this.workerState.set({ ...labels, state: w.state }, 1);
      const forkedAt = this.forkedAt.get(w.id);
      if (forkedAt !== undefined) this.workerUptime.set(labels, (now - forkedAt) / 1000);
      if (w.pid === null) continue;
      const sample = procSample(w.pid);
      if (sample) {
        this.workerRss.set(labels, sample.rssBytes);
        this.workerCpu.inc(labels, sample.cpuSeconds);
      }
      const reading = lag.get(w.pid);
      if (reading) {
        this.workerLag.mean.set(labels, reading.lag.mean / 1000);
        this.workerLag.p99.set(labels, reading.lag.p99 / 1000);
        this.workerLag.max.set(labels, Math.max(reading.lag.max, reading.waitingMs ?? 0) / 1000);
      }
    }
    for (const id of this.forkedAt.keys()) if (!live.has(id)) this.forkedAt.delete(id);
    state.slots.forEach((slot, index) => this.slotRestarts.inc({ slot: index }, slot.restarts));
    this.desired.set(view.desired);
    this.ready.set(view.ready);
    this.generation.set(view.generation);
    this.canaryWindow.set(view.rollout?.canary ? 1 : 0);
    if (view.canaryVerdict) {
      for (const role of ['canary', 'baseline'] as const) {
        const g = view.canaryVerdict[role];
        this.canaryErrorRatio.set({ role }, g.errorRate);
        if (g.p99Ms !== null) this.canaryP99.set({ role }, g.p99Ms / 1000);
      }
    }
    this.releaseInfo.reset();
    for (const r of view.releases) {
      this.releaseInfo.set({ generation: r.generation, release: r.cwd, app: r.app, serving: String(r.generation === view.serving) }, 1);
    }
    this.parked.set(view.parkedSlots.length);
    for (const phase of PHASES) this.phase.set({ phase }, phase === view.phase ? 1 : 0);
    this.crashes.reset();
    this.crashes.inc(view.counters.crashes);
  }
}
