// GET /metrics in Prometheus text format: zd's own metrics (zd_*), then the apps' own prom-client
// metrics summed across workers. A scrape waits at most `waitMs` for workers, and only for those
// known to answer (metrics-poll.ts), so an app without prom-client costs nothing.
import cluster, { type Worker } from 'node:cluster';
import { createServer } from 'node:http';
import { isReady, liveWorkers } from '../core/queries.ts';
import type { PrimaryState } from '../core/state.ts';
import type { Logger } from '../shell/logger.ts';
import type { Runtime } from '../shell/runtime.ts';
import { listen, type HeldSockets, type OpsServer } from './health.ts';
import { aggregateAppMetrics, appMetricsProtocol } from './metrics-apps.ts';
import { WorkerPoll, type PollTarget } from './metrics-poll.ts';
import { ZdMetrics, workerStatsProtocol, type ConnectionFigures, type LagReading } from './metrics-zd.ts';

export const METRICS_DEFAULTS = {
  /** Longest a scrape waits for workers' answers (a worker whose loop is blocked, a slow app). */
  waitMs: 250,
  /** Longest it waits for workers not heard from yet: a prom-client app answers in a few ms. */
  probeWaitMs: 100,
  /** Asks a ready worker may leave unanswered before it is no longer waited for: its app may load prom-client late. */
  appProbes: 3,
  /** zd's bootstrap answers at once or never (an older bootstrap): one ask tells. */
  statsProbes: 1,
};

export function startMetricsServer(options: { host: string; port: number; runtime: Runtime; logger: Logger; held?: HeldSockets | null; connections?: () => ConnectionFigures }): Promise<OpsServer> {
  const { runtime, logger } = options;
  const zd = new ZdMetrics(runtime, Date.now, options.connections);
  const { waitMs, probeWaitMs, appProbes, statsProbes } = METRICS_DEFAULTS;
  const apps = new WorkerPoll(appMetricsProtocol, { waitMs, probeWaitMs, probes: appProbes });
  const stats = new WorkerPoll(workerStatsProtocol, { waitMs, probeWaitMs, probes: statsProbes });
  const onMessage = (worker: Worker, message: unknown) => {
    const pid = worker.process.pid;
    if (pid === undefined) return;
    apps.onMessage(pid, message);
    stats.onMessage(pid, message);
  };
  cluster.on('message', onMessage);
  const dispose = () => {
    cluster.off('message', onMessage);
    zd.close();
  };
  let lastAppError: string | null = null;

  async function scrape(): Promise<string> {
    const askedAt = Date.now();
    const workers = targets(runtime);
    const [appAnswers, statsAnswers] = await Promise.all([apps.ask(workers.settled), stats.ask(workers.all)]);
    const waitedMs = Date.now() - askedAt;
    const lag = new Map<number, LagReading>();
    for (const [pid, answer] of statsAnswers) {
      // The lag of a worker not asked (booting, leaving) is not known now.
      if (answer.asked) lag.set(pid, { lag: answer.value, waitingMs: answer.fresh ? null : waitedMs });
    }
    zd.update(runtime.snapshot as PrimaryState | undefined, lag);
    const own = await zd.registry.metrics();
    let theirs = '';
    try {
      theirs = await aggregateAppMetrics([...appAnswers.values()].map((answer) => answer.value));
      lastAppError = null;
    } catch (error) {
      // An app's metrics that cannot be merged (workers disagreeing on a metric) must not cost zd's own.
      const message = (error as Error).message;
      if (message !== lastAppError) logger.warn({ code: 'ZD_METRICS_APP_ERROR', err: message }, `cannot aggregate the app's metrics: ${message}`);
      lastAppError = message;
    }
    return own + theirs;
  }

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const contentType = zd.registry.contentType;
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-type': contentType }).end();
      return;
    }
    scrape().then(
      (body) => res.writeHead(200, { 'content-type': contentType }).end(body),
      (error: Error) => {
        logger.warn({ code: 'ZD_METRICS_ERROR', err: error.message }, `metrics scrape failed: ${error.message}`);
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${error.message}\n`);
      },
    );
  });
  return listen(server, options.host, options.port, 'metrics', options.held).then(
    (ops) => ({
      port: ops.port,
      close: () => {
        ops.close();
        dispose();
      },
      drained: ops.drained,
    }),
    (error: unknown) => {
      dispose();
      throw error;
    },
  );
}

/**
 * The live workers zd knows, matched to their cluster workers by pid. Only serving workers are
 * asked; prom-client's answers only the settled ones. prom-client answers asynchronously with a
 * bare process.send(): one that lands after zd's disconnect emits 'error' on the worker's process
 * and kills it mid-drain. So no worker that may be drained at any moment is asked: one whose
 * replacement is booting, one retiring, or any once zd is stopping.
 */
function targets(runtime: Runtime): { all: PollTarget[]; settled: PollTarget[] } {
  const state = runtime.snapshot as PrimaryState | undefined;
  if (!state) return { all: [], settled: [] };
  const byPid = new Map<number, Worker>();
  for (const worker of Object.values(cluster.workers ?? {})) {
    if (worker?.process.pid !== undefined) byPid.set(worker.process.pid, worker);
  }
  const serving = state.phase === 'starting' || state.phase === 'running';
  const all: PollTarget[] = [];
  const settled: PollTarget[] = [];
  for (const entry of liveWorkers(state)) {
    const pid = entry.machine.context.pid;
    const worker = pid === null ? undefined : byPid.get(pid);
    if (pid === null || !worker) continue;
    const ready = serving && isReady(entry);
    const slot = state.slots[entry.slot];
    const superseded = slot?.worker !== entry.id || slot.next !== null || state.retiring.includes(entry.id);
    all.push({ pid, worker, ask: ready });
    settled.push({ pid, worker, ask: ready && !superseded });
  }
  return { all, settled };
}
