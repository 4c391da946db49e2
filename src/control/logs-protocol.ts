// The `logs` stream's messages (NDJSON on the control socket), shared by the primary that sends
// them (logs.ts) and `zd logs` that reads them (src/cli/logs.ts), which checks each at the edge.
import type { LogStream } from '../shell/log-ring.ts';

export type LogsMessage =
  /** First: which primary answers (a follower back after `zd upgrade` meets a new one). */
  | { type: 'hello'; name: string; pid: number }
  /** Whole lines of one worker's pipe, each ending in a newline. */
  | { type: 'lines'; seq: number; worker: number; generation: number; stream: LogStream; text: string }
  /** Lines this reader did not get: it read too slowly (a count), or they were no longer kept (null). */
  | { type: 'dropped'; lines: number | null }
  /** `zd logs` without -f: that was all. */
  | { type: 'end' };

const int = (value: unknown) => Number.isSafeInteger(value);

export function parseLogsMessage(value: unknown): LogsMessage | null {
  if (typeof value !== 'object' || value === null) return null;
  const m = value as Record<string, unknown>;
  switch (m.type) {
    case 'hello':
      return typeof m.name === 'string' && int(m.pid) ? (m as LogsMessage) : null;
    case 'lines':
      return int(m.seq) && int(m.worker) && int(m.generation) && (m.stream === 'out' || m.stream === 'err') && typeof m.text === 'string'
        ? (m as LogsMessage)
        : null;
    case 'dropped':
      return m.lines === null || int(m.lines) ? (m as LogsMessage) : null;
    case 'end':
      return { type: 'end' };
    default:
      return null;
  }
}
