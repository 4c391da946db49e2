// zd's own logs: one JSON line per event on stderr in pino's format (`level`, `time`, `"name":"zd"`,
// the fields, `msg`), written synchronously so that nothing is lost at exit; readable lines through
// pino-pretty when a person is at the terminal. Workers' output never passes through here.
//
// Not pino itself: loading it (two dozen CommonJS files) cost the idle primary about 5 MB of RSS,
// for four calls that format one line each (issue #11; bench/RESULTS.md has the measurement).
// test/unit/logger.test.ts holds these lines to pino's own, byte for byte but the time.
import { writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { ZdError } from '../errors.ts';

export type LogFormat = 'json' | 'pretty';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type Logger = Record<LogLevel, (fields: object, msg: string) => void>;

/** pino's level numbers; `ZD_LOG_LEVEL` takes any of these names. */
const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

export function defaultLogFormat(stream: { isTTY?: boolean }): LogFormat {
  return stream.isTTY ? 'pretty' : 'json';
}

const pause = new Int32Array(new SharedArrayBuffer(4));

/** Writes all of `text` to `fd`, waiting out a full non-blocking pipe (EAGAIN) as pino's sonic-boom does. */
function writeAll(fd: number, text: string): void {
  let buffer = Buffer.from(text);
  while (buffer.length > 0) {
    try {
      buffer = buffer.subarray(writeSync(fd, buffer));
    } catch (error) {
      // Anything else (EPIPE: nobody reads stderr any more) loses the line, never the primary.
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') return;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}

/** JSON.stringify that survives what pino's fallback survives: cycles and BigInts. */
function stringify(value: object): string {
  try {
    return JSON.stringify(value);
  } catch {
    const seen = new WeakSet<object>();
    return JSON.stringify(value, (_key, v: unknown) => {
      if (typeof v === 'bigint') return v.toString();
      if (typeof v === 'object' && v !== null) {
        if (seen.has(v)) return '[Circular]';
        seen.add(v);
      }
      return v;
    });
  }
}

export function createLogger(
  format: LogFormat,
  level = process.env.ZD_LOG_LEVEL ?? 'info',
  write: (line: string) => void = (line) => writeAll(2, line),
  /** The line's time: now, or (zd replay) when the recorded event happened. */
  now: () => Date = () => new Date(),
): Logger {
  const threshold = LEVELS[level];
  if (threshold === undefined) {
    throw new ZdError('ZD_E_BAD_VALUE', `ZD_LOG_LEVEL=${level} is not a level: use one of ${Object.keys(LEVELS).join(', ')}`);
  }
  let out = write;
  if (format === 'pretty') {
    // Loaded only for a terminal: JSON users never pay for it.
    const { prettyFactory } = createRequire(import.meta.url)('pino-pretty') as {
      prettyFactory: (options: object) => (line: string) => string;
    };
    const pretty = prettyFactory({ colorize: true, ignore: 'pid,hostname,name', messageFormat: '{code} {msg}' });
    out = (line) => write(pretty(line));
  }
  const at = (name: LogLevel) => {
    const number = LEVELS[name]!;
    return (fields: object, msg: string) => {
      if (number < threshold) return;
      const body = stringify({ ...fields, msg });
      out(`{"level":${number},"time":"${now().toISOString()}","name":"zd",${body.slice(1)}\n`);
    };
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
