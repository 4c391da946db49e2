// Prometheus metrics of the primary and its workers. (Stub interface: filled in by the metrics work.)
import type { Logger } from '../shell/logger.ts';
import type { Runtime } from '../shell/runtime.ts';
import { listen, type OpsServer } from './health.ts';
import { createServer } from 'node:http';

export function startMetricsServer(options: { host: string; port: number; runtime: Runtime; logger: Logger }): Promise<OpsServer> {
  const server = createServer((_req, res) => res.writeHead(501).end('metrics not implemented yet\n'));
  return listen(server, options.host, options.port, 'metrics');
}
