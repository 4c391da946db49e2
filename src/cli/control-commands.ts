// `zd status | reload | stop | list | dump`: requests to a running primary over its control socket.
import { accessSync, constants, renameSync, statSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { findInstance, liveInstances, request } from '../control/client.ts';
import { SCALE_TO } from '../control/protocol.ts';
import { ZdError } from '../errors.ts';
import { parseDuration } from './duration.ts';
import { formatStatus, type DecoratedStatus } from './status-format.ts';

const REPLY_TIMEOUT_MS = 10_000;

function parse(argv: string[], command: string, options: Record<string, { type: 'boolean' | 'string' }>) {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    if (positionals.length > 1) throw new ZdError('ZD_E_USAGE', `zd ${command} takes at most one instance name (see zd --help)`);
    return { values, name: positionals[0] };
  } catch (error) {
    if (error instanceof ZdError) throw error;
    throw new ZdError('ZD_E_UNKNOWN_FLAG', `${(error as Error).message.split('\n')[0]!.split('. ')[0]} (see zd --help)`);
  }
}

function failed(message: Record<string, unknown>): ZdError | null {
  if (message.ok !== false) return null;
  const error = message.error as { code?: string; message?: string } | undefined;
  const known = ['ZD_E_RELOAD_ABORTED', 'ZD_E_RELOAD_REFUSED', 'ZD_E_ROLLBACK_REFUSED', 'ZD_E_RELOAD_INVALID', 'ZD_E_SCALE_REFUSED', 'ZD_E_UPGRADE_REFUSED', 'ZD_E_UPGRADE_ABORTED'] as const;
  const code = known.find((c) => c === error?.code) ?? 'ZD_E_CONTROL';
  // A reload refused for what it asked for (a bad config or env file): bad input, exit 2.
  return new ZdError(code, error?.message ?? 'the request failed', code === 'ZD_E_RELOAD_INVALID' ? 2 : 1);
}

export async function statusCommand(argv: string[]): Promise<number> {
  const { values, name } = parse(argv, 'status', { json: { type: 'boolean' } });
  const instance = await findInstance(name);
  let status: DecoratedStatus | null = null;
  let error: ZdError | null = null;
  await request(instance, { cmd: 'status' }, (message) => {
    error = failed(message);
    status = (message.status as DecoratedStatus) ?? null;
    return false;
  }, REPLY_TIMEOUT_MS);
  if (error) throw error;
  if (!status) throw new ZdError('ZD_E_CONTROL', `'${instance.name}' closed the connection without an answer`, 1);
  process.stdout.write(values.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
  return 0;
}

export const reloadCommand = (argv: string[]) => rolloutCommand(argv, 'reload');
/** `zd rollback`: a rolling restart back to the previous completed generation's release. */
export const rollbackCommand = (argv: string[]) => rolloutCommand(argv, 'rollback');

async function rolloutCommand(argv: string[], cmd: 'reload' | 'rollback'): Promise<number> {
  const { values, name } = parse(argv, cmd, { wait: { type: 'boolean' }, timeout: { type: 'string' } });
  const timeoutMs = values.timeout === undefined ? 10 * 60_000 : parseDuration(String(values.timeout));
  if (timeoutMs === null) throw new ZdError('ZD_E_BAD_DURATION', `--timeout '${values.timeout}' is not a duration (use 30s, 5m, …)`);
  if (values.timeout !== undefined && !values.wait) throw new ZdError('ZD_E_USAGE', '--timeout goes with --wait');
  const instance = await findInstance(name);
  const wait = values.wait === true;
  let outcome: Record<string, unknown> | null = null;
  await request(instance, { cmd, wait }, (message) => {
    outcome = message;
    return false;
  }, wait ? timeoutMs : REPLY_TIMEOUT_MS);
  if (!outcome) throw new ZdError('ZD_E_CONTROL', `'${instance.name}' closed the connection before the ${cmd} ended`, 1);
  const error = failed(outcome);
  if (error) throw error;
  const reply = outcome as { generation: number; queued?: boolean; outcome?: string };
  process.stdout.write(
    wait
      ? `zd: '${instance.name}' now serves generation ${reply.generation}\n`
      : `zd: '${instance.name}' ${reply.queued ? 'queued' : 'started'} a ${cmd === 'rollback' ? 'rollback' : 'rolling restart'} to generation ${reply.generation}\n`,
  );
  return 0;
}

/**
 * `zd upgrade [name] [--wait [--timeout D]] [--node PATH]`: the keeper starts a new primary (zd as
 * on disk now, the config re-read, maybe another Node binary); once all its workers are ready the
 * old primary retires. --timeout bounds the new primary's readiness (default 60s).
 */
export async function upgradeCommand(argv: string[]): Promise<number> {
  const { values, name } = parse(argv, 'upgrade', { wait: { type: 'boolean' }, timeout: { type: 'string' }, node: { type: 'string' } });
  const timeoutMs = values.timeout === undefined ? 60_000 : parseDuration(String(values.timeout));
  if (timeoutMs === null || timeoutMs <= 0) throw new ZdError('ZD_E_BAD_DURATION', `--timeout '${values.timeout}' is not a duration (use 30s, 5m, …)`);
  let node: string | undefined;
  if (values.node !== undefined) {
    node = resolve(String(values.node));
    try {
      accessSync(node, constants.X_OK);
    } catch {
      throw new ZdError('ZD_E_BAD_VALUE', `--node ${values.node}: no executable file there`);
    }
    if (!statSync(node).isFile()) throw new ZdError('ZD_E_BAD_VALUE', `--node ${values.node}: not a file`);
  }
  const instance = await findInstance(name);
  const wait = values.wait === true;
  let outcome: Record<string, unknown> | null = null;
  // The request's own deadline is the new primary's, plus its workers' drain of the old ones.
  await request(instance, { cmd: 'upgrade', wait, ...(node ? { node } : {}), timeoutMs }, (message) => {
    outcome = message;
    return false;
  }, wait ? timeoutMs + 30_000 : REPLY_TIMEOUT_MS);
  if (!outcome) throw new ZdError('ZD_E_CONTROL', `'${instance.name}' closed the connection before the upgrade ended`, 1);
  const error = failed(outcome);
  if (error) throw error;
  const reply = outcome as { message?: string };
  process.stdout.write(wait ? `zd: '${instance.name}' ${reply.message ?? 'upgraded'}\n` : `zd: '${instance.name}' started an upgrade (zd status, or the logs, tell its outcome)\n`);
  return 0;
}

/** `zd scale [name] N|+N|-N`: a live resize of the running generation. */
export async function scaleCommand(argv: string[]): Promise<number> {
  // Not parseArgs: `-1` is a count here, not an option.
  const positionals = argv.filter((arg) => arg !== '--');
  const flag = positionals.find((arg) => arg.startsWith('--') || (arg.startsWith('-') && !SCALE_TO.test(arg)));
  if (flag) throw new ZdError('ZD_E_UNKNOWN_FLAG', `zd scale takes no option '${flag}' (see zd --help)`);
  if (positionals.length === 0 || positionals.length > 2) {
    throw new ZdError('ZD_E_USAGE', 'zd scale [name] N: give a worker count (4), or a change of it (+2, -1)');
  }
  const to = positionals[positionals.length - 1]!;
  if (!SCALE_TO.test(to)) throw new ZdError('ZD_E_BAD_WORKERS', `'${to}' is not a worker count: use 4, +2 or -1`);
  const instance = await findInstance(positionals.length === 2 ? positionals[0] : undefined);
  let outcome: Record<string, unknown> | null = null;
  await request(instance, { cmd: 'scale', to }, (message) => {
    outcome = message;
    return false;
  }, REPLY_TIMEOUT_MS);
  if (!outcome) throw new ZdError('ZD_E_CONTROL', `'${instance.name}' closed the connection without an answer`, 1);
  const error = failed(outcome);
  if (error) throw error;
  const reply = outcome as { from: number; workers: number };
  process.stdout.write(
    reply.from === reply.workers
      ? `zd: '${instance.name}' already runs ${reply.workers} worker(s)\n`
      : `zd: '${instance.name}' scaling from ${reply.from} to ${reply.workers} worker(s) (zd status shows them become ready)\n`,
  );
  return 0;
}

export async function stopCommand(argv: string[]): Promise<number> {
  const { name } = parse(argv, 'stop', {});
  const instance = await findInstance(name);
  await request(instance, { cmd: 'stop' }, (message) => {
    const error = failed(message);
    if (error) throw error;
    return false;
  }, REPLY_TIMEOUT_MS);
  process.stdout.write(`zd: '${instance.name}' is stopping (draining its workers)\n`);
  return 0;
}

export async function listCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, 'list', { json: { type: 'boolean' } });
  const rows: Array<{ name: string; pid: number | null; phase: string; ready: string; generation: number | null; app: string }> = [];
  for (const instance of await liveInstances()) {
    let row = { name: instance.name, pid: null as number | null, phase: '?', ready: '?', generation: null as number | null, app: '?' };
    await request(instance, { cmd: 'status' }, (message) => {
      const s = message.status as DecoratedStatus | undefined;
      if (s) row = { name: instance.name, pid: s.primary.pid, phase: s.phase, ready: `${s.ready}/${s.desired}`, generation: s.generation, app: s.app };
      return false;
    }, REPLY_TIMEOUT_MS).catch(() => undefined);
    rows.push(row);
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  } else if (rows.length === 0) {
    process.stdout.write('no zd instance is running\n');
  } else {
    const cells = [['NAME', 'PID', 'PHASE', 'READY', 'GEN', 'APP'], ...rows.map((r) => [r.name, String(r.pid ?? '-'), r.phase, r.ready, String(r.generation ?? '-'), r.app])];
    const widths = cells[0]!.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
    process.stdout.write(`${cells.map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n')}\n`);
  }
  return 0;
}

/** `zd dump [name] FILE`: the instance's last events (kept in memory) written to FILE as a journal. */
export async function dumpCommand(argv: string[]): Promise<number> {
  let positionals: string[];
  try {
    ({ positionals } = parseArgs({ args: argv, options: {}, allowPositionals: true, strict: true }));
  } catch (error) {
    throw new ZdError('ZD_E_UNKNOWN_FLAG', `${(error as Error).message.split('\n')[0]!.split('. ')[0]} (see zd --help)`);
  }
  if (positionals.length < 1 || positionals.length > 2) throw new ZdError('ZD_E_USAGE', 'zd dump [name] FILE: where to write the journal is missing (see zd --help)');
  const [name, file] = positionals.length === 2 ? [positionals[0], positionals[1]!] : [undefined, positionals[0]!];
  const instance = await findInstance(name);
  let reply: Record<string, unknown> | null = null;
  await request(instance, { cmd: 'dump' }, (message) => {
    reply = message;
    return false;
  }, REPLY_TIMEOUT_MS);
  if (!reply) throw new ZdError('ZD_E_CONTROL', `'${instance.name}' closed the connection without an answer`, 1);
  const error = failed(reply);
  if (error) throw error;
  const { journal, events, from } = reply as { journal: string; events: number; from: string };
  const path = resolve(file);
  try {
    // Private, like the journal it copies: it holds the config and the app's stderr tails.
    const next = `${path}.${process.pid}.tmp`;
    writeFileSync(next, journal, { mode: 0o600 });
    renameSync(next, path);
  } catch (err) {
    throw new ZdError('ZD_E_RECORD', `cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 1);
  }
  const start = from === 'init' ? 'from its start' : 'from a snapshot (older events were dropped from memory)';
  process.stdout.write(`zd: wrote the last ${events} events of '${instance.name}' to ${file}, ${start}: zd replay ${file}\n`);
  return 0;
}
