// `zd logs [name] [-n N] [-f] [--prefix]`: the workers' last lines, kept by the running primary
// (src/shell/log-ring.ts), and with -f every line as it comes, for as long as the instance runs:
// through reloads (the same primary streams on) and `zd upgrade` (the old primary's stream ends
// once its workers have, and is taken up again from the new one). Lines are printed as the
// workers wrote them: their stdout on stdout, their stderr on stderr.
//
// Ctrl-C, or a reader that closes the pipe (`| head`), ends it with 0. When the instance stops,
// -f ends with 1 and `zd: 'name' stopped: its log stream closed [ZD_E_NOT_RUNNING]`.
import { connect } from 'node:net';
import { parseArgs } from 'node:util';
import { findInstance, type Instance } from '../control/client.ts';
import { parseLogsMessage, type LogsMessage } from '../control/logs-protocol.ts';
import { MAX_LOG_LINES, type ControlRequest } from '../control/protocol.ts';
import { answers, lineReader, readStreamLine, type StreamWords } from '../control/socket.ts';
import { ZdError } from '../errors.ts';

const HELLO_TIMEOUT_MS = 5000;
/** How long a closed stream's instance has to answer again before -f calls it stopped. */
const FOLLOW_PROBE_MS = 1000;

const LOG_STREAM: StreamWords = { stream: 'the log stream', refused: 'refused the logs request', message: 'a log message' };

export interface LogsArgs {
  name: string | undefined;
  lines: number;
  follow: boolean;
  prefix: boolean;
}

export function parseLogsArgs(argv: string[]): LogsArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { lines: { type: 'string', short: 'n' }, follow: { type: 'boolean', short: 'f' }, prefix: { type: 'boolean' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new ZdError('ZD_E_UNKNOWN_FLAG', `${(error as Error).message.split('\n')[0]!.split('. ')[0]!.replace(/\.$/, '')} (see zd --help)`);
  }
  const { values, positionals } = parsed;
  if (positionals.length > 1) throw new ZdError('ZD_E_USAGE', 'zd logs takes at most one instance name (see zd --help)');
  const lines = values.lines === undefined ? 20 : /^\d+$/.test(values.lines) ? Number(values.lines) : NaN;
  if (!(lines >= 0 && lines <= MAX_LOG_LINES)) {
    throw new ZdError('ZD_E_BAD_VALUE', `-n '${values.lines}' is not a number of lines: use 0-${MAX_LOG_LINES}`);
  }
  return { name: positionals[0], lines, follow: values.follow === true, prefix: values.prefix === true };
}

export async function logsCommand(argv: string[]): Promise<number> {
  const args = parseLogsArgs(argv);
  const instance = await findInstance(args.name);
  const print = printer(args.prefix);
  let request: Extract<ControlRequest, { cmd: 'logs' }> = { cmd: 'logs', lines: args.lines, follow: args.follow };
  let interrupted = false;
  let current: LogStream | null = null;
  const interrupt = () => {
    interrupted = true;
    current?.close();
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  // `zd logs -f | head`: the reader left, which is an end like Ctrl-C.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', interrupt);
  try {
    for (;;) {
      current = openLogStream(instance, request, print);
      const { greeted, at } = await current.ended;
      if (!args.follow || interrupted) return 0;
      // Closed: a stop, or an upgrade's old primary gone once its workers were. A stream that
      // could not even start is the instance's end, not a reason to try again and again.
      if (!greeted || !(await answers(instance.path, FOLLOW_PROBE_MS, false))) break;
      request = { cmd: 'logs', follow: true, after: at ?? { pid: 0, seq: 0 } };
    }
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
  }
  if (interrupted) return 0;
  throw new ZdError('ZD_E_NOT_RUNNING', `'${instance.name}' stopped: its log stream closed`, 1);
}

type Print = (message: LogsMessage, pause: () => () => void) => void;

/** Each message to where it belongs; a reader slower than the stream pauses it (the primary then drops, and says how many). */
function printer(prefix: boolean): Print {
  const waiting = new Set<NodeJS.WriteStream>();
  return (message, pause) => {
    let text: string;
    let out: NodeJS.WriteStream;
    if (message.type === 'lines') {
      text = prefix ? withPrefix(message.text, `[worker ${message.worker} gen ${message.generation}] `) : message.text;
      out = message.stream === 'err' ? process.stderr : process.stdout;
    } else if (message.type === 'dropped') {
      text =
        message.lines === null
          ? 'zd: some lines were no longer kept when the log stream was taken up again [ZD_LOGS_DROPPED]\n'
          : `zd: ${message.lines} lines dropped: this reader fell behind the workers [ZD_LOGS_DROPPED]\n`;
      out = process.stderr;
    } else {
      return;
    }
    if (out.write(text) || waiting.has(out)) return;
    waiting.add(out);
    const resume = pause();
    out.once('drain', () => {
      waiting.delete(out);
      resume();
    });
  };
}

function withPrefix(text: string, prefix: string): string {
  return prefix + text.slice(0, -1).replaceAll('\n', `\n${prefix}`) + text.slice(-1);
}

interface LogStream {
  /** Where the stream got to (the primary and its last batch), and whether it started at all. */
  readonly ended: Promise<{ greeted: boolean; at: { pid: number; seq: number } | null }>;
  close(): void;
}

function openLogStream(instance: Instance, request: ControlRequest, print: Print): LogStream {
  const socket = connect(instance.path);
  let greeted = false;
  let pid = 0;
  let seq = 0;
  let settle!: (error?: Error) => void;
  const ended = new Promise<{ greeted: boolean; at: { pid: number; seq: number } | null }>((resolve, reject) => {
    let settled = false;
    settle = (error) => {
      if (settled) return;
      settled = true;
      clearTimeout(helloTimer);
      socket.destroy();
      if (error) reject(error);
      else resolve({ greeted, at: greeted ? { pid, seq } : null });
    };
  });
  const helloTimer = setTimeout(
    () => settle(new ZdError('ZD_E_TIMEOUT', `'${instance.name}' did not start the log stream within ${HELLO_TIMEOUT_MS}ms`, 1)),
    HELLO_TIMEOUT_MS,
  );
  const pause = () => {
    socket.pause();
    return () => socket.resume();
  };
  socket.setEncoding('utf8');
  socket.once('connect', () => socket.write(`${JSON.stringify(request)}\n`));
  socket.on(
    'data',
    lineReader((line) => {
      const message = readStreamLine(line, instance.name, LOG_STREAM, parseLogsMessage);
      if (message instanceof ZdError) {
        settle(message);
        return false;
      }
      if (message.type === 'hello') {
        greeted = true;
        pid = message.pid;
        clearTimeout(helloTimer);
      } else if (message.type === 'lines') {
        seq = message.seq;
      } else if (message.type === 'end') {
        settle();
        return false;
      }
      print(message, pause);
      return true;
    }),
  );
  socket.on('error', (error: NodeJS.ErrnoException) => {
    // A primary that exits with the stream open may reset it rather than close it.
    if (greeted && (error.code === 'ECONNRESET' || error.code === 'EPIPE')) settle();
    else settle(new ZdError('ZD_E_CONTROL', `control socket of '${instance.name}': ${error.message}`, 1));
  });
  socket.on('close', () => settle());
  return { ended, close: () => settle() };
}
