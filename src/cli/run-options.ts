// `zd run`'s options: one table drives the command-line parser, the config file, the validation
// and the help text, so none of them can drift from the others.
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { MAX_WORKERS, DEFAULTS, type CoreConfig } from '../core/config.ts';
import { checkName, defaultName } from '../control/paths.ts';
import { ZdError } from '../errors.ts';
import type { LogFormat } from '../shell/logger.ts';
import { reusePortUnsupported } from '../shell/handles.ts';
import { loadConfigFile, type ConfigFile } from './config-file.ts';
import { formatDuration, parseDuration } from './duration.ts';
import { formatBytes, parseSize } from './size.ts';

/** What the shell needs beyond the core's config. */
export interface ShellOptions {
  logFormat: LogFormat | null;
  /** The instance's name for `zd status/reload/stop/inspect` (its control socket's name). */
  name: string | null;
  pidfile: string | null;
  healthPort: number | null;
  healthHost: string;
  metricsPort: number | null;
  metricsHost: string;
  sched: 'rr' | 'none' | 'reuseport';
  /** --sticky PORT: the primary owns PORT and routes each client IP to one worker. */
  stickyPort: number | null;
  /** --record FILE: the journal of every event the primary takes (src/record/). */
  record: string | null;
  /** --env-file FILE: a dotenv file read at every reload, given to that generation's workers. */
  envFile: string | null;
  /** --log-prefix: `[worker 3 gen 2] ` before each line of the workers' output. */
  logPrefix: boolean;
}

export interface RunOptions {
  app: string;
  args: string[];
  config: CoreConfig;
  shell: ShellOptions & { name: string };
  /** Where the settings came from, for the start-up log. */
  configFile: string | null;
}

const SHELL_DEFAULTS: ShellOptions = {
  logFormat: null,
  name: null,
  pidfile: null,
  healthPort: null,
  healthHost: '127.0.0.1',
  metricsPort: null,
  metricsHost: '127.0.0.1',
  sched: 'rr',
  stickyPort: null,
  record: null,
  envFile: null,
  logPrefix: false,
};

export { MAX_WORKERS };

type Kind = 'count' | 'number' | 'duration' | 'size' | 'port' | 'enum' | 'text' | 'flag';
export interface OptionSpec {
  flag: string;
  short?: string;
  kind: Kind;
  values?: readonly string[];
  /** Where the value lands: the core's config, or the shell's options. */
  core?: keyof CoreConfig;
  shell?: keyof ShellOptions;
  min?: number;
  max?: number;
  help: string;
  default: string;
}

const d = formatDuration;
export const RUN_OPTIONS: OptionSpec[] = [
  { flag: 'workers', short: 'w', kind: 'count', core: 'workers', min: 1, max: MAX_WORKERS, help: 'number of workers', default: '$WORKER_COUNT, else the number of CPUs' },
  { flag: 'ready', kind: 'enum', values: ['listening', 'message'], core: 'readyOn', help: "ready on the worker's first `listening`, or on process.send('ready')", default: DEFAULTS.readyOn },
  { flag: 'ready-timeout', kind: 'duration', core: 'readyTimeoutMs', min: 1, help: 'a worker not ready this long after fork is a failed boot', default: d(DEFAULTS.readyTimeoutMs) },
  { flag: 'min-ready', kind: 'duration', core: 'minReadyMs', min: 0, help: "a reload's first replacement must stay up this long once ready before anything old drains; it proves the generation for every slot (0: off)", default: d(DEFAULTS.minReadyMs) },
  { flag: 'canary', kind: 'duration', core: 'canaryMs', min: 0, help: "a reload's first replacement serves beside the old workers this long, then is compared with them (0: off)", default: 'off' },
  { flag: 'canary-max-errors', kind: 'number', core: 'canaryMaxErrorPoints', min: 0, max: 100, help: "abort when the canary's 5xx-plus-error rate exceeds the old generation's by more than this many percentage points", default: String(DEFAULTS.canaryMaxErrorPoints) },
  { flag: 'canary-max-latency', kind: 'number', core: 'canaryMaxLatencyFactor', min: 1, max: 1000, help: "abort when the canary's p99 latency is more than this many times the old generation's", default: String(DEFAULTS.canaryMaxLatencyFactor) },
  { flag: 'canary-min-requests', kind: 'count', core: 'canaryMinRequests', min: 1, max: 1_000_000, help: 'requests the canary must have served to be judged; with fewer, its window is extended (up to 3 times), then the inconclusive rule applies', default: String(DEFAULTS.canaryMinRequests) },
  { flag: 'canary-inconclusive', kind: 'enum', values: ['abort', 'proceed'], core: 'canaryInconclusive', help: 'what a canary with too little evidence (or no figures) does to its rollout: abort it, or let it proceed', default: DEFAULTS.canaryInconclusive },
  { flag: 'drain-timeout', kind: 'duration', core: 'drainTimeoutMs', min: 0, help: 'time a draining worker gets to finish before SIGTERM', default: d(DEFAULTS.drainTimeoutMs) },
  { flag: 'kill-timeout', kind: 'duration', core: 'killTimeoutMs', min: 1, help: 'time after SIGTERM before SIGKILL', default: d(DEFAULTS.killTimeoutMs) },
  { flag: 'max-restarts', kind: 'count', core: 'maxRestarts', min: 0, max: 1_000_000, help: 'consecutive unstable restarts of a worker before it is declared a crash loop', default: String(DEFAULTS.maxRestarts) },
  { flag: 'max-surge', kind: 'count', core: 'maxSurge', min: 0, max: MAX_WORKERS, help: 'new workers a reload may boot beside the old ones', default: String(DEFAULTS.maxSurge) },
  { flag: 'max-unavailable', kind: 'count', core: 'maxUnavailable', min: 0, max: MAX_WORKERS, help: 'old workers a reload may retire before their replacement is ready', default: String(DEFAULTS.maxUnavailable) },
  { flag: 'retire-stagger', kind: 'duration', core: 'retireStaggerMs', min: 0, help: 'least time between two old workers starting to drain', default: d(DEFAULTS.retireStaggerMs) },
  { flag: 'shutdown-delay', kind: 'duration', core: 'shutdownDelayMs', min: 0, help: 'after SIGTERM, keep serving this long (readiness failing) before draining', default: d(DEFAULTS.shutdownDelayMs) },
  { flag: 'heartbeat-timeout', kind: 'duration', core: 'heartbeatTimeoutMs', min: 0, help: 'replace a worker that does not answer a ping within this (0: off)', default: 'off' },
  { flag: 'heartbeat-interval', kind: 'duration', core: 'heartbeatIntervalMs', min: 100, help: 'time between a pong and the next ping', default: d(DEFAULTS.heartbeatIntervalMs) },
  { flag: 'max-memory', kind: 'size', core: 'maxMemoryBytes', min: 0, help: 'replace a worker whose RSS goes over this, e.g. 512M (0: off)', default: 'off' },
  { flag: 'sched', kind: 'enum', values: ['rr', 'none', 'reuseport'], shell: 'sched', help: "who spreads connections: the primary's round robin; the kernel over one shared socket (none); or the kernel over one SO_REUSEPORT socket per slot, accepted by the slot's routable workers (reuseport: Linux, Node ≥ 22.12)", default: SHELL_DEFAULTS.sched },
  { flag: 'sticky', kind: 'port', shell: 'stickyPort', help: "own this port (the app's) and send each client IP to the same worker", default: 'off' },
  { flag: 'health-port', kind: 'port', shell: 'healthPort', help: 'serve /livez and /readyz on this port', default: 'off' },
  { flag: 'health-host', kind: 'text', shell: 'healthHost', help: 'address the health server binds', default: SHELL_DEFAULTS.healthHost },
  { flag: 'metrics-port', kind: 'port', shell: 'metricsPort', help: 'serve Prometheus /metrics on this port', default: 'off' },
  { flag: 'metrics-host', kind: 'text', shell: 'metricsHost', help: 'address the metrics server binds', default: SHELL_DEFAULTS.metricsHost },
  { flag: 'log-prefix', kind: 'flag', shell: 'logPrefix', help: "put [worker ID gen N] before each line of the workers' stdout and stderr (for a terminal; a collector parsing JSON lines wants them bare)", default: 'off' },
  { flag: 'log-format', kind: 'enum', values: ['json', 'pretty'], shell: 'logFormat', help: "zd's own log lines on stderr", default: 'pretty on a terminal, else json' },
  { flag: 'name', kind: 'text', shell: 'name', help: 'instance name for zd status/reload/stop/inspect', default: "the app file's name" },
  { flag: 'pidfile', kind: 'text', shell: 'pidfile', help: "write the primary's pid here (for kill -HUP $(cat FILE))", default: 'none' },
  { flag: 'env-file', kind: 'text', shell: 'envFile', help: "a dotenv file read at start and at every reload: that generation's workers get its variables", default: 'none' },
  { flag: 'record', kind: 'text', shell: 'record', help: 'append every event the primary takes to FILE, a journal for zd replay (rotated to FILE.1 at 16 MB)', default: 'off: the last 5000 events kept in memory for zd dump' },
];

/** `--drain-timeout` → `drainTimeout`: the config file's key for a flag. */
export const configKey = (flag: string) => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

export function parseRunArgs(argv: string[], env: NodeJS.ProcessEnv, cwd = process.cwd()): RunOptions {
  const dashDash = argv.indexOf('--');
  const own = dashDash === -1 ? argv : argv.slice(0, dashDash);
  const cliArgs = dashDash === -1 ? null : argv.slice(dashDash + 1);

  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: joinDashValues(own),
      allowPositionals: true,
      strict: true,
      options: {
        ...Object.fromEntries(
          RUN_OPTIONS.map((o) => [o.flag, { type: o.kind === 'flag' ? 'boolean' : 'string', ...(o.short ? { short: o.short } : {}) }]),
        ),
        config: { type: 'string' },
      } as Record<string, { type: 'string' | 'boolean'; short?: string }>,
    });
  } catch (error) {
    throw fromParseError(error as Error & { code?: string });
  }
  const [appArg, ...extra] = parsed.positionals;
  if (extra.length > 0) {
    throw new ZdError('ZD_E_USAGE', `unexpected argument '${extra[0]}' (pass arguments to the app after --)`);
  }

  // The config file first, the command line over it.
  const file = loadConfigFile(parsed.values.config === undefined ? null : String(parsed.values.config), cwd);
  const config: CoreConfig = { ...DEFAULTS, workers: defaultWorkers(env) };
  const shell: ShellOptions = { ...SHELL_DEFAULTS };
  if (file) applyFile(file, config, shell);
  for (const spec of RUN_OPTIONS) {
    const raw = parsed.values[spec.flag];
    if (raw === undefined) continue;
    set(spec, config, shell, convert(spec, raw as string | boolean, `--${spec.flag}`));
  }
  if (config.maxSurge === 0 && config.maxUnavailable === 0) {
    throw new ZdError('ZD_E_BAD_VALUE', '--max-surge and --max-unavailable cannot both be 0: a reload could replace nothing');
  }
  // Under --sched none the kernel hands a worker connections from its first listen() on: zd can
  // neither hold them back from a worker that is not ready yet nor keep them from a canary.
  if (shell.sched === 'none' && config.readyOn === 'message') {
    throw new ZdError('ZD_E_USAGE', '--sched none cannot hold connections back until a worker says ready (the kernel routes them from its first listen): use --sched rr with --ready message');
  }
  if (shell.sched === 'none' && config.canaryMs > 0) {
    throw new ZdError('ZD_E_USAGE', "--sched none cannot give a canary its share or keep connections from an aborted one (the kernel routes them): use --sched rr with --canary");
  }
  if (shell.sched === 'reuseport') {
    const why = reusePortUnsupported();
    if (why) throw new ZdError('ZD_E_SCHED', `--sched reuseport cannot run here: ${why}; use --sched rr`);
    // The kernel picks a slot's socket by a hash of the whole connection (ports included), not by
    // the client's address: a client would not keep its worker.
    if (shell.stickyPort !== null) throw new ZdError('ZD_E_USAGE', "--sched reuseport cannot keep a client on its worker (the kernel spreads connections by a hash that includes the client's port): use --sched rr with --sticky");
  }

  const appFromFile = file?.values.app === undefined ? undefined : resolve(dirname(file.path), String(file.values.app));
  if (appArg === undefined && appFromFile === undefined) {
    throw new ZdError('ZD_E_USAGE', 'zd run needs an app file: zd run <app.js> [options] [-- app args], or "app" in zd.config.json');
  }
  const app = checkApp(resolve(cwd, appArg ?? appFromFile!), appArg ?? String(file!.values.app));
  const args = cliArgs ?? ((file?.values.args as string[] | undefined) ?? []);
  return {
    app,
    args,
    config,
    shell: { ...shell, name: shell.name ?? defaultName(app), pidfile: shell.pidfile && resolve(cwd, shell.pidfile), record: shell.record && resolve(cwd, shell.record), envFile: shell.envFile && resolve(cwd, shell.envFile) },
    configFile: file?.path ?? null,
  };
}

function set(spec: OptionSpec, config: CoreConfig, shell: ShellOptions, value: unknown): void {
  if (spec.core) (config as unknown as Record<string, unknown>)[spec.core] = value;
  if (spec.shell) (shell as unknown as Record<string, unknown>)[spec.shell] = value;
}

/** Every problem in the file, one line each, or its settings applied. */
function applyFile(file: ConfigFile, config: CoreConfig, shell: ShellOptions): void {
  const problems: string[] = [];
  const byKey = new Map(RUN_OPTIONS.map((spec) => [configKey(spec.flag), spec]));
  for (const [key, value] of Object.entries(file.values)) {
    if (key === 'app') {
      if (typeof value !== 'string' || value === '') problems.push(`"app" must be a path to the app file (a string)`);
      continue;
    }
    if (key === 'args') {
      if (!Array.isArray(value) || !value.every((a) => typeof a === 'string')) problems.push(`"args" must be an array of strings`);
      continue;
    }
    const spec = byKey.get(key);
    if (!spec) {
      problems.push(`unknown key "${key}" (known: app, args, ${[...byKey.keys()].join(', ')})`);
      continue;
    }
    try {
      set(spec, config, shell, convertFileValue(spec, value, `"${key}"`));
    } catch (error) {
      problems.push((error as ZdError).message);
    }
  }
  if (problems.length > 0) {
    throw new ZdError('ZD_E_CONFIG', problems.map((p) => `${file.label}: ${p}`).join('\n'));
  }
}

/** A config file's value: JSON types are checked, then the same rules as the command line apply. */
function convertFileValue(spec: OptionSpec, value: unknown, name: string): unknown {
  const wants: Record<Kind, string> = {
    count: 'a whole number',
    number: 'a number',
    port: 'a port number',
    duration: 'a duration (a number of ms, or a string like "5s")',
    size: 'a size (a number of bytes, or a string like "512M")',
    enum: `one of ${spec.values?.join(', ')}`,
    text: 'a string',
    flag: 'true or false',
  };
  const ok =
    spec.kind === 'flag'
      ? typeof value === 'boolean'
      : spec.kind === 'count' || spec.kind === 'port'
        ? typeof value === 'number'
        : spec.kind === 'number'
          ? typeof value === 'number' || typeof value === 'string'
        : spec.kind === 'duration' || spec.kind === 'size'
          ? typeof value === 'number' || typeof value === 'string'
          : typeof value === 'string';
  if (!ok) throw new ZdError('ZD_E_CONFIG', `${name} must be ${wants[spec.kind]}, not ${JSON.stringify(value)}`);
  return convert(spec, typeof value === 'boolean' ? value : String(value), name);
}

function defaultWorkers(env: NodeJS.ProcessEnv): number {
  const fromEnv = env.WORKER_COUNT;
  if (fromEnv === undefined || fromEnv === '') return Math.min(availableParallelism(), cpuQuota() ?? Infinity);
  return convert(RUN_OPTIONS[0]!, fromEnv, 'WORKER_COUNT') as number;
}

/**
 * A container's CPU limit (cgroup v2 `cpu.max`, e.g. `docker run --cpus 2`), which Node 20 does
 * not count in availableParallelism(): more workers than CPUs only adds contention.
 */
function cpuQuota(): number | null {
  try {
    const [quota, period] = readFileSync('/sys/fs/cgroup/cpu.max', 'utf8').trim().split(/\s+/);
    if (quota === undefined || quota === 'max' || !period) return null;
    return Math.max(1, Math.ceil(Number(quota) / Number(period)));
  } catch {
    return null;
  }
}

function convert(spec: OptionSpec, raw: string | boolean, name: string): unknown {
  if (spec.kind === 'flag') return raw === true || raw === 'true';
  const text = String(raw);
  switch (spec.kind) {
    case 'text':
      if (text.trim() === '') throw new ZdError('ZD_E_BAD_VALUE', `${name} needs a value`);
      return spec.shell === 'name' ? checkName(text) : text;
    case 'enum':
      if (!spec.values!.includes(text)) {
        throw new ZdError('ZD_E_BAD_VALUE', `${name} must be one of ${spec.values!.join(', ')}, not '${text}'`);
      }
      return text;
    case 'duration': {
      const ms = parseDuration(text);
      if (ms === null) {
        throw new ZdError('ZD_E_BAD_DURATION', `${name} '${text}' is not a duration (use 500ms, 5s, 2m, or a number of milliseconds)`);
      }
      if (ms < (spec.min ?? 0)) throw new ZdError('ZD_E_BAD_DURATION', `${name} must be at least ${spec.min}ms, not '${text}'`);
      return ms;
    }
    case 'size': {
      const bytes = parseSize(text);
      if (bytes === null) throw new ZdError('ZD_E_BAD_VALUE', `${name} '${text}' is not a size (use 512M, 1G, or a number of bytes)`);
      if (bytes > 0 && bytes < 16 * 1024 * 1024) {
        throw new ZdError('ZD_E_BAD_VALUE', `${name} ${formatBytes(bytes)} is below what a Node process needs to start (16M at least)`);
      }
      return bytes;
    }
    case 'number': {
      const n = /^\d+(\.\d+)?$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
      const [min, max] = [spec.min ?? 0, spec.max ?? 1_000_000];
      if (!Number.isFinite(n) || n < min || n > max) {
        throw new ZdError('ZD_E_BAD_VALUE', `${name} must be a number from ${min} to ${max}, not '${text}'`);
      }
      return n;
    }
    case 'port':
    case 'count': {
      const n = /^\d+$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
      const [min, max] = spec.kind === 'port' ? [1, 65535] : [spec.min ?? 0, spec.max ?? 1_000_000];
      if (!Number.isSafeInteger(n) || n < min || n > max) {
        const code = spec.core === 'workers' ? 'ZD_E_BAD_WORKERS' : 'ZD_E_BAD_VALUE';
        throw new ZdError(code, `${name} must be a whole number from ${min} to ${max}, not '${text}'`);
      }
      return n;
    }
  }
  throw new ZdError('ZD_E_BAD_VALUE', `${name}: unsupported option kind`);
}

function checkApp(app: string, shown: string): string {
  const path = resolve(app);
  let stat;
  try {
    stat = statSync(path);
  } catch {
    throw new ZdError('ZD_E_APP_MISSING', `app file not found: ${shown}`);
  }
  if (!stat.isFile()) throw new ZdError('ZD_E_APP_NOT_FILE', `app must be a file, and ${shown} is not one`);
  try {
    accessSync(path, constants.R_OK);
  } catch {
    throw new ZdError('ZD_E_APP_UNREADABLE', `app file is not readable: ${shown}`);
  }
  return path;
}

/**
 * `-w -1`: util.parseArgs refuses a value that starts with a dash as ambiguous. Every zd option
 * that takes a value is joined to it (`--workers=-1`), so the option's own check says what is wrong.
 */
function joinDashValues(args: string[]): string[] {
  const valued = RUN_OPTIONS.filter((o) => o.kind !== 'flag');
  const flagOf = new Map(valued.flatMap((o) => [[`--${o.flag}`, o.flag], ...(o.short ? [[`-${o.short}`, o.flag]] : [])] as Array<[string, string]>));
  flagOf.set('--config', 'config');
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const next = args[i + 1];
    const flag = flagOf.get(arg);
    if (flag && next !== undefined && next.startsWith('-')) {
      out.push(`--${flag}=${next}`);
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
