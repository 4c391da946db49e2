// `zd run`'s options: one table drives the parser, the validation and the help text.
import { accessSync, constants, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULTS, type CoreConfig } from '../core/config.ts';
import { checkName, defaultName } from '../control/paths.ts';
import { ZdError } from '../errors.ts';
import type { LogFormat } from '../shell/logger.ts';
import { formatDuration, parseDuration } from './duration.ts';

export interface RunOptions {
  app: string;
  args: string[];
  config: CoreConfig;
  logFormat: LogFormat | null;
  /** The instance's name for `zd status/reload/stop/inspect` (its control socket's name). */
  name: string;
  pidfile: string | null;
}

/** A sane ceiling: beyond it a typo (`-w 4000`) would fork-bomb the host. */
export const MAX_WORKERS = 1024;

type Kind = 'count' | 'duration' | 'enum' | 'text';
interface OptionSpec {
  flag: string;
  short?: string;
  kind: Kind;
  values?: readonly string[];
  /** Where the value lands in CoreConfig (null: not a core setting). */
  key: keyof CoreConfig | null;
  min?: number;
  help: string;
  default: string;
}

export const RUN_OPTIONS: OptionSpec[] = [
  { flag: 'workers', short: 'w', kind: 'count', key: 'workers', min: 1, help: 'number of workers', default: '$WORKER_COUNT, else the number of CPUs' },
  { flag: 'ready', kind: 'enum', values: ['listening', 'message'], key: 'readyOn', help: "ready on the worker's first `listening`, or on process.send('ready')", default: DEFAULTS.readyOn },
  { flag: 'ready-timeout', kind: 'duration', key: 'readyTimeoutMs', min: 1, help: 'a worker not ready this long after fork is a failed boot', default: formatDuration(DEFAULTS.readyTimeoutMs) },
  { flag: 'drain-timeout', kind: 'duration', key: 'drainTimeoutMs', min: 0, help: 'time a draining worker gets to finish before SIGTERM', default: formatDuration(DEFAULTS.drainTimeoutMs) },
  { flag: 'kill-timeout', kind: 'duration', key: 'killTimeoutMs', min: 1, help: 'time after SIGTERM before SIGKILL', default: formatDuration(DEFAULTS.killTimeoutMs) },
  { flag: 'max-restarts', kind: 'count', key: 'maxRestarts', min: 0, help: 'consecutive unstable restarts of a worker before it is declared a crash loop', default: String(DEFAULTS.maxRestarts) },
  { flag: 'log-format', kind: 'enum', values: ['json', 'pretty'], key: null, help: "zd's own log lines on stderr", default: 'pretty on a terminal, else json' },
  { flag: 'name', kind: 'text', key: null, help: 'instance name for zd status/reload/stop/inspect', default: "the app file's name" },
  { flag: 'pidfile', kind: 'text', key: null, help: "write the primary's pid here (for kill -HUP $(cat FILE))", default: 'none' },
];

export function parseRunArgs(argv: string[], env: NodeJS.ProcessEnv): RunOptions {
  const dashDash = argv.indexOf('--');
  const own = dashDash === -1 ? argv : argv.slice(0, dashDash);
  const appArgs = dashDash === -1 ? [] : argv.slice(dashDash + 1);

  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: joinDashValues(own),
      allowPositionals: true,
      strict: true,
      options: Object.fromEntries(
        RUN_OPTIONS.map((o) => [o.flag, o.short ? { type: 'string', short: o.short } : { type: 'string' }]),
      ) as Record<string, { type: 'string'; short?: string }>,
    });
  } catch (error) {
    throw fromParseError(error as Error & { code?: string });
  }

  const [appArg, ...extra] = parsed.positionals;
  if (appArg === undefined) throw new ZdError('ZD_E_USAGE', 'zd run needs an app file: zd run <app.js> [options] [-- app args]');
  if (extra.length > 0) {
    throw new ZdError('ZD_E_USAGE', `unexpected argument '${extra[0]}' (pass arguments to the app after --)`);
  }

  const config: CoreConfig = { ...DEFAULTS, workers: defaultWorkers(env) };
  let logFormat: LogFormat | null = null;
  let name: string | null = null;
  let pidfile: string | null = null;
  for (const spec of RUN_OPTIONS) {
    const raw = parsed.values[spec.flag];
    if (raw === undefined) continue;
    const value = convert(spec, String(raw), `--${spec.flag}`);
    if (spec.key) (config as unknown as Record<string, unknown>)[spec.key] = value;
    else if (spec.flag === 'log-format') logFormat = value as LogFormat;
    else if (spec.flag === 'name') name = checkName(String(value));
    else if (spec.flag === 'pidfile') pidfile = resolve(String(value));
  }
  const app = checkApp(appArg);
  return { app, args: appArgs, config, logFormat, name: name ?? defaultName(app), pidfile };
}

function defaultWorkers(env: NodeJS.ProcessEnv): number {
  const fromEnv = env.WORKER_COUNT;
  if (fromEnv === undefined || fromEnv === '') return availableParallelism();
  return convert(RUN_OPTIONS[0]!, fromEnv, 'WORKER_COUNT') as number;
}

function convert(spec: OptionSpec, raw: string, name: string): number | string {
  if (spec.kind === 'text') {
    if (raw.trim() === '') throw new ZdError('ZD_E_BAD_VALUE', `${name} needs a value`);
    return raw;
  }
  if (spec.kind === 'enum') {
    if (!spec.values!.includes(raw)) {
      throw new ZdError('ZD_E_BAD_VALUE', `${name} must be one of ${spec.values!.join(', ')}, not '${raw}'`);
    }
    return raw;
  }
  if (spec.kind === 'duration') {
    const ms = parseDuration(raw);
    if (ms === null) {
      throw new ZdError('ZD_E_BAD_DURATION', `${name} '${raw}' is not a duration (use 500ms, 5s, 2m, or a number of milliseconds)`);
    }
    if (ms < (spec.min ?? 0)) throw new ZdError('ZD_E_BAD_DURATION', `${name} must be at least ${spec.min}ms, not '${raw}'`);
    return ms;
  }
  const n = /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : Number.NaN;
  const max = spec.key === 'workers' ? MAX_WORKERS : 1_000_000;
  if (!Number.isSafeInteger(n) || n < (spec.min ?? 0) || n > max) {
    const code = spec.key === 'workers' ? 'ZD_E_BAD_WORKERS' : 'ZD_E_BAD_VALUE';
    throw new ZdError(code, `${name} must be a whole number from ${spec.min ?? 0} to ${max}, not '${raw}'`);
  }
  return n;
}

function checkApp(appArg: string): string {
  const app = resolve(appArg);
  let stat;
  try {
    stat = statSync(app);
  } catch {
    throw new ZdError('ZD_E_APP_MISSING', `app file not found: ${appArg}`);
  }
  if (!stat.isFile()) throw new ZdError('ZD_E_APP_NOT_FILE', `app must be a file, and ${appArg} is not one`);
  try {
    accessSync(app, constants.R_OK);
  } catch {
    throw new ZdError('ZD_E_APP_UNREADABLE', `app file is not readable: ${appArg}`);
  }
  return app;
}

/**
 * `-w -1`: util.parseArgs refuses a value that starts with a dash as ambiguous. Every zd option
 * takes a value, so join it (`-w=-1`) and let the option's own check say what is wrong with it.
 */
function joinDashValues(args: string[]): string[] {
  const takesValue = new Set(RUN_OPTIONS.flatMap((o) => [`--${o.flag}`, ...(o.short ? [`-${o.short}`] : [])]));
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const next = args[i + 1];
    if (takesValue.has(arg) && next !== undefined && next.startsWith('-')) {
      out.push(arg.startsWith('--') ? `${arg}=${next}` : `--${RUN_OPTIONS.find((o) => `-${o.short}` === arg)!.flag}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

function fromParseError(error: Error & { code?: string }): ZdError {
  // util.parseArgs' messages are clear but long: keep the first sentence of the first line.
  const first = error.message.split('\n')[0]!.split('. ')[0]!.replace(/\.$/, '');
  if (error.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return new ZdError('ZD_E_UNKNOWN_FLAG', `${first} (see zd run --help)`);
  return new ZdError('ZD_E_USAGE', `${first} (see zd run --help)`);
}
