// zd's own logs: pino JSON lines on stderr (`level`, `time`, `"name":"zd"`, the fields, `msg`),
// written synchronously so that nothing is lost at exit; readable lines through pino-pretty when a
// person is at the terminal. Workers' output never passes through here. The writer and the clock
// are injectable: `zd replay` prints a recorded run's lines, at their recorded times, through the
// same logger.
import { createRequire } from 'node:module';
import { pino } from 'pino';
import { isoTime } from '../clock.ts';
import { ZdError } from '../errors.ts';

// pino is bundled into dist/ (scripts/build.mjs): loading its CommonJS files from node_modules
// cost the idle primary about 4 MB of RSS (bench/RESULTS.md). pino-pretty, a terminal's only, is not.
const require = createRequire(import.meta.url);

export type LogFormat = 'json' | 'pretty';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type Logger = Record<LogLevel, (fields: object, msg: string) => void>;

/** For a person at a terminal: stderr is one, or (under the keeper, through a pipe) the keeper's is. */
export function defaultLogFormat(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = {}): LogFormat {
  return stream.isTTY || env.ZD_STDERR_TTY === '1' ? 'pretty' : 'json';
}

export function createLogger(
  format: LogFormat,
  level = process.env.ZD_LOG_LEVEL ?? 'info',
  /** Where whole lines go: by default stderr, synchronously. */
  write?: (line: string) => void,
  /** The line's time: now, or (zd replay) when the recorded event happened. */
  now: () => Date = () => new Date(),
): Logger {
  if (!(level in pino.levels.values) && level !== 'silent') {
    throw new ZdError('ZD_E_BAD_VALUE', `ZD_LOG_LEVEL=${level} is not a level: use one of ${[...Object.keys(pino.levels.values), 'silent'].join(', ')}`);
  }
  const options = {
    name: 'zd',
    level,
    // No pid in every line: a worker's line carries the worker's `pid`; zd's own is in ZD_CONFIG.
    base: undefined,
    timestamp: () => `,"time":"${isoTime(now())}"`,
  };
  if (format === 'pretty') {
    // Loaded only for a terminal: JSON users never pay for it.
    const prettyOptions = { colorize: true, ignore: 'pid,hostname,name', messageFormat: '{code} {msg}' };
    if (!write) {
      const pretty = require('pino-pretty') as (opts: object) => NodeJS.WritableStream;
      return pino(options, pretty({ ...prettyOptions, destination: 2, sync: true }));
    }
    const { prettyFactory } = require('pino-pretty') as { prettyFactory: (opts: object) => (line: string) => string };
    const pretty = prettyFactory(prettyOptions);
    return pino(options, { write: (line: string) => write(pretty(line)) });
  }
  return pino(options, write ? { write } : pino.destination({ fd: 2, sync: true }));
}
