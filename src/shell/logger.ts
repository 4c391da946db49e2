// zd's own logs: pino JSON lines on stderr, synchronous so that nothing is lost at exit; readable
// lines instead when a person is at the terminal. Workers' output never passes through here.
import { createRequire } from 'node:module';
import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;
export type LogFormat = 'json' | 'pretty';

export function defaultLogFormat(stream: { isTTY?: boolean }): LogFormat {
  return stream.isTTY ? 'pretty' : 'json';
}

export function createLogger(format: LogFormat, level = process.env.ZD_LOG_LEVEL ?? 'info'): Logger {
  const options = {
    name: 'zd',
    level,
    // No pid in every line: a worker's line carries the worker's `pid`; zd's own is in ZD_CONFIG.
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (format === 'pretty') {
    // Loaded only for a terminal: JSON users never pay for it.
    const pretty = createRequire(import.meta.url)('pino-pretty') as (opts: object) => NodeJS.WritableStream;
    return pino(
      options,
      pretty({ destination: 2, sync: true, colorize: true, ignore: 'pid,hostname,name', messageFormat: '{code} {msg}' }),
    );
  }
  return pino(options, pino.destination({ fd: 2, sync: true }));
}
