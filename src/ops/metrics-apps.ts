// The apps' own prom-client metrics, summed across workers the way prom-client's cluster support
// does. zd speaks prom-client's worker protocol itself instead of calling
// AggregatorRegistry.clusterMetrics(): that one asks every cluster worker and fails the whole
// scrape after 5 s if any worker does not answer, which every worker of an app without prom-client
// does. Workers answer only once their app has created an AggregatorRegistry (prom-client #747).
//
// The primary must never construct an AggregatorRegistry: its cluster listener would throw on an
// answer to a request id that is not its own. Only the static aggregate() is used here.
import { AggregatorRegistry } from 'prom-client';
import type { PollProtocol } from './metrics-poll.ts';

const REQUEST = 'prom-client:getMetricsReq';
const RESPONSE = 'prom-client:getMetricsRes';

/** One worker's answer: for each registry it exposes, that registry's getMetricsAsJSON(). */
export type AppMetrics = Array<Array<{ name: string }>>;

export const appMetricsProtocol: PollProtocol<AppMetrics> = {
  request: (requestId) => ({ type: REQUEST, requestId }),
  parse(message) {
    const m = message as { type?: unknown; requestId?: unknown; metrics?: unknown; error?: unknown } | null;
    if (typeof m !== 'object' || m === null || m.type !== RESPONSE || typeof m.requestId !== 'number' || m.error !== undefined) return undefined;
    if (!Array.isArray(m.metrics) || !m.metrics.every(isMetricList)) return undefined;
    return { id: m.requestId, value: m.metrics as AppMetrics };
  },
};

function isMetricList(value: unknown): boolean {
  return Array.isArray(value) && value.every((metric) => typeof (metric as { name?: unknown } | null)?.name === 'string');
}

/**
 * The exposition text of every worker's metrics, aggregated by each metric's `aggregator` (sum
 * unless the app said otherwise). Names starting `zd_` are zd's own and are dropped, so that an
 * app cannot shadow them.
 */
export async function aggregateAppMetrics(answers: Iterable<AppMetrics>): Promise<string> {
  const registries: Array<Array<{ name: string }>> = [];
  for (const answer of answers) {
    for (const list of answer) registries.push(list.filter((metric) => !metric.name.startsWith('zd_')));
  }
  if (registries.every((list) => list.length === 0)) return '';
  return AggregatorRegistry.aggregate(registries).metrics();
}
