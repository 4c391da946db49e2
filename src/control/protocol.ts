// The control socket's protocol: newline-delimited JSON, one request per line, validated at the
// edge. Pure: the server and the CLI client both use it, neither trusts the other's bytes.

/** A request line longer than this is refused and the connection closed. */
export const MAX_REQUEST_BYTES = 64 * 1024;

export type ControlRequest =
  | { cmd: 'status' }
  | { cmd: 'reload'; wait?: boolean }
  | { cmd: 'rollback'; wait?: boolean }
  /** `to`: a worker count, or a change of it (`+2`, `-1`). */
  | { cmd: 'scale'; to: string }
  | { cmd: 'stop' }
  | { cmd: 'inspect' }
  /** The events kept in memory, as a journal (src/record/). */
  | { cmd: 'dump' }
  /**
   * The workers' last `lines` lines, then (`follow`) every line as it comes. `after`: a follower
   * back after its stream closed, from that primary at that batch (src/control/logs.ts).
   */
  | { cmd: 'logs'; lines?: number; follow?: boolean; after?: { pid: number; seq: number } }
  /** A new primary (zd's code and config as on disk now, maybe another Node) replaces this one. */
  | { cmd: 'upgrade'; wait?: boolean; node?: string; timeoutMs?: number };

export type ControlErrorCode =
  | 'ZD_E_BAD_JSON'
  | 'ZD_E_BAD_REQUEST'
  | 'ZD_E_UNKNOWN_COMMAND'
  | 'ZD_E_TOO_LARGE'
  | 'ZD_E_RELOAD_REFUSED'
  | 'ZD_E_RELOAD_ABORTED'
  | 'ZD_E_ROLLBACK_REFUSED'
  | 'ZD_E_RELOAD_INVALID'
  | 'ZD_E_SCALE_REFUSED'
  | 'ZD_E_UPGRADE_REFUSED'
  | 'ZD_E_UPGRADE_ABORTED';

export interface ControlError {
  ok: false;
  error: { code: ControlErrorCode; message: string };
}

export const COMMANDS = ['status', 'reload', 'rollback', 'scale', 'stop', 'inspect', 'dump', 'upgrade', 'logs'] as const;

/** The most lines `zd logs -n` asks for (the ring holds at most 1 MB of them anyway). */
export const MAX_LOG_LINES = 100_000;

/** A worker count, or a change of it. */
export const SCALE_TO = /^[+-]?\d{1,5}$/;

export function errorReply(code: ControlErrorCode, message: string): ControlError {
  return { ok: false, error: { code, message } };
}

/** Parses and validates one request line: a request, or the error to answer with. */
export function parseRequest(line: string): ControlRequest | ControlError {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return errorReply('ZD_E_BAD_JSON', 'the request is not JSON: send one JSON object per line');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return errorReply('ZD_E_BAD_REQUEST', 'the request must be a JSON object like {"cmd":"status"}');
  }
  const { cmd, ...rest } = value as Record<string, unknown>;
  if (typeof cmd !== 'string') return errorReply('ZD_E_BAD_REQUEST', 'the request has no "cmd" string');
  if (!(COMMANDS as readonly string[]).includes(cmd)) {
    return errorReply('ZD_E_UNKNOWN_COMMAND', `unknown command ${JSON.stringify(cmd).slice(0, 60)}: use one of ${COMMANDS.join(', ')}`);
  }
  const waits = cmd === 'reload' || cmd === 'rollback' || cmd === 'upgrade';
  const allowed = cmd === 'upgrade' ? ['wait', 'node', 'timeoutMs'] : waits ? ['wait'] : cmd === 'scale' ? ['to'] : cmd === 'logs' ? ['lines', 'follow', 'after'] : [];
  const extra = Object.keys(rest).filter((key) => !allowed.includes(key));
  if (extra.length > 0) return errorReply('ZD_E_BAD_REQUEST', `unexpected field ${JSON.stringify(extra[0]).slice(0, 60)} for ${cmd}`);
  if (cmd === 'scale') {
    if (typeof rest.to !== 'string' || !SCALE_TO.test(rest.to)) {
      return errorReply('ZD_E_BAD_REQUEST', '"to" must be a worker count like "4", "+2" or "-1"');
    }
    return { cmd, to: rest.to };
  }
  if (cmd === 'logs') return parseLogs(rest);
  if (waits) {
    if (rest.wait !== undefined && typeof rest.wait !== 'boolean') {
      return errorReply('ZD_E_BAD_REQUEST', '"wait" must be true or false');
    }
    if (cmd === 'upgrade') {
      if (rest.node !== undefined && (typeof rest.node !== 'string' || !rest.node.startsWith('/'))) {
        return errorReply('ZD_E_BAD_REQUEST', '"node" must be an absolute path to a Node binary');
      }
      if (rest.timeoutMs !== undefined && (typeof rest.timeoutMs !== 'number' || !(rest.timeoutMs > 0) || rest.timeoutMs > 3_600_000)) {
        return errorReply('ZD_E_BAD_REQUEST', '"timeoutMs" must be a number of milliseconds (at most an hour)');
      }
      return { cmd, ...(rest.wait !== undefined ? { wait: rest.wait as boolean } : {}), ...(rest.node !== undefined ? { node: rest.node as string } : {}), ...(rest.timeoutMs !== undefined ? { timeoutMs: rest.timeoutMs as number } : {}) };
    }
    return rest.wait === undefined ? { cmd } : { cmd, wait: rest.wait as boolean };
  }
  return { cmd } as ControlRequest;
}

function parseLogs(rest: Record<string, unknown>): ControlRequest | ControlError {
  const { lines, follow, after } = rest;
  if (lines !== undefined && !(Number.isSafeInteger(lines) && (lines as number) >= 0 && (lines as number) <= MAX_LOG_LINES)) {
    return errorReply('ZD_E_BAD_REQUEST', `"lines" must be a whole number from 0 to ${MAX_LOG_LINES}`);
  }
  if (follow !== undefined && typeof follow !== 'boolean') return errorReply('ZD_E_BAD_REQUEST', '"follow" must be true or false');
  if (after !== undefined) {
    const { pid, seq, ...other } = (typeof after === 'object' && after !== null ? after : { pid: null }) as Record<string, unknown>;
    if (!Number.isSafeInteger(pid) || !Number.isSafeInteger(seq) || (seq as number) < 0 || Object.keys(other).length > 0) {
      return errorReply('ZD_E_BAD_REQUEST', '"after" must be {"pid": N, "seq": N}');
    }
  }
  return {
    cmd: 'logs',
    ...(lines !== undefined ? { lines: lines as number } : {}),
    ...(follow !== undefined ? { follow } : {}),
    ...(after !== undefined ? { after: after as { pid: number; seq: number } } : {}),
  };
}

export function isControlError(value: unknown): value is ControlError {
  return typeof value === 'object' && value !== null && (value as { ok?: unknown }).ok === false;
}
