// What a reload runs with, read again each time one is asked for: the config file (found the way
// it was at start, through the release link), the command line over it, the env file, and the
// release the links point at now. Settings only a new primary can take are reported and kept.
import type { CoreConfig } from '../core/config.ts';
import type { ReleaseProblem } from '../core/events.ts';
import { ZdError } from '../errors.ts';
import { readEnvFile } from '../shell/env-file.ts';
import type { ReloadSpec } from '../shell/env.ts';
import { resolveRelease, type ReleaseSource } from '../shell/release.ts';
import { parseRunArgs, type RunOptions, type ShellOptions } from './run-options.ts';

export type { ReloadSpec };

/** Shell settings a running primary cannot change: ports it listens on, scheduling, its name. */
const NEEDS_RESTART: Array<keyof ShellOptions> = ['stickyPort', 'healthPort', 'healthHost', 'metricsPort', 'metricsHost', 'sched', 'name', 'pidfile', 'logFormat', 'record', 'logPrefix'];

/** The environment zd gives a generation's workers for its settings, plus its env file. */
export function workerEnvFor(config: CoreConfig, envFile: Record<string, string> = {}): Record<string, string> {
  return {
    ...envFile,
    ZD_DRAIN_TIMEOUT_MS: String(config.drainTimeoutMs),
    ZD_KILL_TIMEOUT_MS: String(config.killTimeoutMs),
    ...(config.heartbeatTimeoutMs > 0 ? { ZD_HEARTBEAT: '1' } : {}),
  };
}

/**
 * Reads a reload's settings: a spec, or every problem, one per line (the reload is then refused
 * and nothing changes). `onKept` hears the settings that changed but need a restart.
 */
export function readReload(
  argv: string[],
  started: RunOptions,
  source: ReleaseSource,
  onKept: (kept: string[]) => void,
): ReloadSpec | ReleaseProblem {
  let options: RunOptions;
  try {
    options = parseRunArgs(argv, process.env, source.cwd);
  } catch (error) {
    if (error instanceof ZdError) return { problem: error.message };
    throw error;
  }
  const kept = NEEDS_RESTART.filter((key) => options.shell[key] !== started.shell[key]).map(
    (key) => `${key} ${String(started.shell[key])}→${String(options.shell[key])}`,
  );
  if (kept.length > 0) onKept(kept);
  let fileEnv: Record<string, string> = {};
  if (options.shell.envFile) {
    const read = readEnvFile(options.shell.envFile);
    if ('problems' in read) return { problem: read.problems.join('\n') };
    fileEnv = read.env;
  }
  const release = resolveRelease({ ...source, args: options.args });
  if ('problem' in release) return release;
  return { release: { ...release, env: workerEnvFor(options.config, fileEnv) }, config: options.config };
}
