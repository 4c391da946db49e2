// HTTP against 127.0.0.1 only, one new connection per request (agent: false), so every request is
// routed afresh by the cluster and a drained worker cannot hide behind a kept-alive socket.
import { Agent, get, type ClientRequest } from 'node:http';
import type { Socket } from 'node:net';
import { trackPid } from './pids.ts';
import { sleep } from './wait.ts';

export interface AppReply {
  pid: number;
  generation: string | null;
  workerId?: string | null;
  slot?: string | null;
  version?: string;
  argv?: string[];
}

export interface JsonResponse<T = AppReply> {
  status: number;
  body: string;
  json: T;
}

/**
 * The client's end of a connection: its own port, which the server sees as the remote port (so a
 * test can ask which worker held it), and when the client saw it connect.
 */
export interface ConnectionId {
  port: number;
  at: number;
}

const connections = new WeakMap<Socket, ConnectionId>();

/** The connection `socket` made, recorded when it connects; null while it has not (refused, say). */
export function connectionOf(socket: Socket): ConnectionId | null {
  if (!connections.has(socket)) {
    if (socket.connecting) socket.once('connect', () => connections.set(socket, { port: socket.localPort!, at: Date.now() }));
    else if (socket.localPort !== undefined) connections.set(socket, { port: socket.localPort, at: Date.now() });
  }
  return connections.get(socket) ?? null;
}

/** Follows which connection a request goes out on: the getter answers null until it has connected. */
export function followConnection(request: ClientRequest): () => ConnectionId | null {
  let socket: Socket | null = null;
  request.on('socket', (s: Socket) => {
    socket = s;
    connectionOf(s);
  });
  return () => (socket === null ? null : connectionOf(socket));
}

export class RequestError extends Error {
  constructor(
    message: string,
    readonly code: string,
    /** The connection the request went out on, or null if none was made. */
    readonly connection: ConnectionId | null = null,
  ) {
    super(message);
  }
}

export function getJson<T = AppReply>(
  port: number,
  path = '/',
  timeoutMs = 3000,
  agent: Agent | false = false,
): Promise<JsonResponse<T>> {
  return new Promise((resolve, reject) => {
    const request = get({ host: '127.0.0.1', port, path, agent, timeout: timeoutMs }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('error', (error: NodeJS.ErrnoException) =>
        reject(new RequestError(error.message, error.code ?? 'ERESPONSE', connection())),
      );
      response.on('end', () => {
        let json: T;
        try {
          json = JSON.parse(body) as T;
        } catch {
          reject(new RequestError(`not JSON (status ${response.statusCode}): ${body.slice(0, 200)}`, 'EBADJSON', connection()));
          return;
        }
        trackPid((json as { pid?: number }).pid);
        resolve({ status: response.statusCode ?? 0, body, json });
      });
    });
    const connection = followConnection(request);
    request.on('timeout', () => request.destroy(new RequestError(`no answer within ${timeoutMs}ms`, 'ETIMEOUT', connection())));
    request.on('error', (error: NodeJS.ErrnoException) =>
      reject(error instanceof RequestError ? error : new RequestError(error.message, error.code ?? 'EREQUEST', connection())),
    );
  });
}

/** Asks until an answer comes (the app may still be starting), within `timeoutMs`. */
export async function getJsonEventually(port: number, path = '/', timeoutMs = 5000): Promise<JsonResponse> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await getJson(port, path, Math.max(100, deadline - Date.now()));
    } catch (error) {
      if (Date.now() >= deadline) throw error;
      await sleep(20);
    }
  }
}

/** Asks until `count` distinct pids have answered (bounded by `timeoutMs`); returns them. */
export async function distinctPids(port: number, count: number, timeoutMs = 5000): Promise<Set<number>> {
  const seen = new Set<number>();
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (seen.size < count) {
    if (Date.now() >= deadline) {
      throw new Error(`saw ${seen.size} distinct pids (${[...seen].join(', ')}) of ${count} in ${timeoutMs}ms ${lastError}`);
    }
    try {
      seen.add((await getJson(port, '/', 1000)).json.pid);
    } catch (error) {
      lastError = `(last error: ${(error as Error).message})`;
      await sleep(20);
    }
  }
  return seen;
}

/** `n` sequential requests; fails on the first error. */
export async function sample(port: number, n: number): Promise<AppReply[]> {
  const replies: AppReply[] = [];
  for (let i = 0; i < n; i++) replies.push((await getJson(port, '/', 2000)).json);
  return replies;
}

export interface PollFailure {
  at: number;
  code: string;
  message: string;
  connection: ConnectionId | null;
}

export interface PollReport {
  requests: number;
  successes: AppReply[];
  failures: PollFailure[];
  pids: Set<number>;
  generations: Set<string | null>;
  /** Why the loop ended: stopped by the test, or a bound was hit. */
  ended: 'stopped' | 'maxMs' | 'maxRequests';
}

export interface Poller {
  readonly report: PollReport;
  /** Resolves when `predicate(report)` holds, rejects after `timeoutMs` or if the poller ended. */
  until(predicate: (report: PollReport) => boolean, timeoutMs: number, what: string): Promise<void>;
  stop(): Promise<PollReport>;
}

const activePollers = new Set<() => void>();

/** Ends every poller still running (a failed test never reached its `stop()`). */
export function stopPollers(): void {
  for (const stop of activePollers) stop();
}

/**
 * Asks `path` every `intervalMs` (one request at a time) until stopped, or `maxMs` elapses, or
 * `maxRequests` were made. Records every success and every failure. Each request is a fresh
 * connection unless `keepAlive`, which reuses one socket for as long as the server keeps it open.
 */
export function poller(
  port: number,
  { intervalMs = 10, maxMs = 30_000, maxRequests = 5000, path = '/', timeoutMs = 3000, keepAlive = false } = {},
): Poller {
  const agent = keepAlive ? new Agent({ keepAlive: true, maxSockets: 1 }) : false;
  const report: PollReport = {
    requests: 0,
    successes: [],
    failures: [],
    pids: new Set(),
    generations: new Set(),
    ended: 'stopped',
  };
  let stopping = false;
  let running = true;
  const started = Date.now();
  const stop = () => {
    stopping = true;
  };
  activePollers.add(stop);

  const loop = (async () => {
    while (!stopping) {
      if (Date.now() - started >= maxMs) {
        report.ended = 'maxMs';
        break;
      }
      if (report.requests >= maxRequests) {
        report.ended = 'maxRequests';
        break;
      }
      report.requests++;
      try {
        const { json } = await getJson(port, path, timeoutMs, agent);
        report.successes.push(json);
        report.pids.add(json.pid);
        report.generations.add(json.generation);
      } catch (error) {
        const code = error instanceof RequestError ? error.code : 'EUNKNOWN';
        const connection = error instanceof RequestError ? error.connection : null;
        report.failures.push({ at: Date.now() - started, code, message: (error as Error).message, connection });
      }
      await sleep(intervalMs);
    }
    if (agent) agent.destroy();
    activePollers.delete(stop);
    running = false;
  })();

  return {
    report,
    async until(predicate, timeoutMs, what) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(report)) {
        if (!running) throw new Error(`poller ended (${report.ended}) before ${what}`);
        if (Date.now() >= deadline) {
          throw new Error(
            `timed out after ${timeoutMs}ms waiting for ${what}; poller: ${report.successes.length} ok, ` +
              `${report.failures.length} failed, pids ${[...report.pids].join(', ')}`,
          );
        }
        await sleep(10);
      }
    },
    async stop() {
      stop();
      await loop;
      return report;
    },
  };
}

/** A readable summary of failures for assertion messages. */
export function describeFailures(failures: PollFailure[]): string {
  return failures
    .slice(0, 10)
    .map((f) => `+${f.at}ms ${f.code}: ${f.message}`)
    .join('; ');
}
