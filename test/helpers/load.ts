// Real HTTP load on 127.0.0.1, bounded in time and count: keep-alive clients, each an undici client
// with one connection (one request at a time per connection, as browsers and most HTTP clients
// do), and clients that open a new connection per request. Every failure is kept with what it was,
// when, and the connection it was on (its client port: the server sees it as the remote port).
import { get } from 'node:http';
import { buildConnector, Client } from 'undici';
import { followConnection, type ConnectionId } from './http.ts';

export interface LoadFailure {
  at: number;
  kind: 'keep-alive' | 'fresh';
  error: string;
  /** The connection the request was on, or null if it never connected (refused). */
  connection: ConnectionId | null;
}

export interface LoadReport {
  ok: number;
  non2xx: number;
  failures: LoadFailure[];
  generations: Set<string>;
  ms: number;
}

export interface LoadOptions {
  keepAliveConnections?: number;
  freshLoops?: number;
  /** Hard bound on the run, whatever happens. */
  maxMs?: number;
  maxRequests?: number;
  path?: string;
}

export function hammer(port: number, options: LoadOptions = {}) {
  const { keepAliveConnections = 50, freshLoops = 8, maxMs = 20_000, maxRequests = 400_000, path = '/' } = options;
  const report: LoadReport = { ok: 0, non2xx: 0, failures: [], generations: new Set(), ms: 0 };
  const started = Date.now();
  let stopped = false;
  const running = () => !stopped && Date.now() - started < maxMs && report.ok + report.failures.length < maxRequests;
  const record = (status: number, body: string) => {
    if (status < 200 || status >= 300) {
      report.non2xx++;
      return;
    }
    report.ok++;
    try {
      const generation = (JSON.parse(body) as { generation?: unknown }).generation;
      if (generation !== undefined) report.generations.add(String(generation));
    } catch {
      // not JSON: a third-party app's own page
    }
  };

  const connector = buildConnector({});
  const clients: Client[] = [];
  const keepAliveLoop = async () => {
    // One client, one connection at a time: a failed request was on the connection last made.
    let connection: ConnectionId | null = null;
    const client = new Client(`http://127.0.0.1:${port}`, {
      pipelining: 1,
      connect: (options, callback) => {
        connection = null;
        connector(options, (...args) => {
          if (args[1]) connection = { port: args[1].localPort!, at: Date.now() };
          callback(...args);
        });
      },
    });
    clients.push(client);
    while (running()) {
      try {
        const res = await client.request({ path, method: 'GET', headersTimeout: 5000, bodyTimeout: 5000 });
        record(res.statusCode, await res.body.text());
      } catch (error) {
        report.failures.push({ at: Date.now() - started, kind: 'keep-alive', error: describe(error), connection });
      }
    }
  };
  const freshLoop = async () => {
    while (running()) {
      const request = fresh(port, path);
      try {
        const [status, body] = await request.done;
        record(status, body);
      } catch (error) {
        report.failures.push({ at: Date.now() - started, kind: 'fresh', error: describe(error), connection: request.connection() });
      }
    }
  };
  const loops = Promise.all([
    ...Array.from({ length: keepAliveConnections }, keepAliveLoop),
    ...Array.from({ length: freshLoops }, freshLoop),
  ]);

  return {
    report,
    async stop(): Promise<LoadReport> {
      stopped = true;
      await loops;
      await Promise.all(clients.map((client) => client.close()));
      report.ms = Date.now() - started;
      return report;
    },
  };
}

function fresh(port: number, path: string): { done: Promise<[number, string]>; connection: () => ConnectionId | null } {
  let connection: () => ConnectionId | null = () => null;
  const done = new Promise<[number, string]>((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve([res.statusCode ?? 0, body]));
      res.on('error', reject);
    });
    connection = followConnection(req);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
  return { done, connection: () => connection() };
}

function describe(error: unknown): string {
  const e = error as { code?: string; message?: string };
  return `${e.code ?? 'ERROR'}: ${e.message ?? String(error)}`;
}

export function summary(report: LoadReport): string {
  const head = report.failures.slice(0, 10).map((f) => `+${f.at}ms ${f.kind} ${f.error}`);
  return `${report.ok} ok, ${report.non2xx} non-2xx, ${report.failures.length} failed in ${report.ms}ms${head.length ? `:\n  ${head.join('\n  ')}` : ''}`;
}
