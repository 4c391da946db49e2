// `zd inspect`: watch a running instance's machines live (issue #5), or print a machine's diagram.
//
//   zd inspect [name]                  a terminal view redrawn as steps arrive; plain lines when
//                                      stdout is not a terminal (one per step)
//   zd inspect --json [name]           the control stream as is: one JSON object per line
//   zd inspect --web [--port P] [name] a page on http://127.0.0.1:P/ (P 0, the default: any port)
//   zd inspect --machine worker|rollout [--format mermaid|dot|svg]   offline, no instance needed
//   zd inspect --replay FILE [--at T] [--json | --web [--port P]]    a journal (issue #16), with
//                                      stepping: the same views, at any moment of the recording
//
// Ctrl-C (or SIGTERM, or a reader that closes the pipe) ends it with 0. When the instance goes
// away the stream closes, and every mode ends with 1 and one line on stderr:
// `zd: 'name' stopped: its control stream closed [ZD_E_NOT_RUNNING]`.
import { parseArgs } from 'node:util';
import { findInstance } from '../control/client.ts';
import { machineToDot } from '../diagram/dot.ts';
import { MACHINES, type MachineName } from '../diagram/machines.ts';
import { machineToMermaid } from '../diagram/mermaid.ts';
import { ZdError } from '../errors.ts';
import type { LiveEnd } from '../inspect/live.ts';

const FORMATS = ['mermaid', 'dot', 'svg'] as const;
type Format = (typeof FORMATS)[number];

export type InspectArgs =
  | { mode: 'machine'; machine: MachineName; format: Format }
  | { mode: 'live'; name: string | undefined; json: boolean }
  | { mode: 'web'; name: string | undefined; port: number }
  | { mode: 'replay'; file: string; at: string | null; json: boolean; web: boolean; port: number };

export function parseInspectArgs(argv: string[]): InspectArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        json: { type: 'boolean' },
        web: { type: 'boolean' },
        port: { type: 'string' },
        machine: { type: 'string' },
        format: { type: 'string' },
        replay: { type: 'string' },
        at: { type: 'string' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new ZdError('ZD_E_UNKNOWN_FLAG', `${(error as Error).message.split('\n')[0]!.split('. ')[0]!.replace(/\.$/, '')} (see zd --help)`);
  }
  const { values, positionals } = parsed;
  if (positionals.length > 1) throw new ZdError('ZD_E_USAGE', 'zd inspect takes at most one instance name (see zd --help)');
  const name = positionals[0];

  if (values.machine !== undefined) {
    if (!Object.hasOwn(MACHINES, values.machine)) {
      throw new ZdError('ZD_E_BAD_VALUE', `--machine '${values.machine}' is not a machine: use ${Object.keys(MACHINES).join(' or ')}`);
    }
    const other = values.json ? '--json' : values.web ? '--web' : values.port !== undefined ? '--port' : values.replay !== undefined ? '--replay' : name !== undefined ? 'instance name' : null;
    if (other) throw new ZdError('ZD_E_USAGE', `--machine prints a diagram offline: it takes no ${other}`);
    const format = values.format ?? 'mermaid';
    if (!(FORMATS as readonly string[]).includes(format)) {
      throw new ZdError('ZD_E_BAD_VALUE', `--format '${format}' is not one of ${FORMATS.join(', ')}`);
    }
    return { mode: 'machine', machine: values.machine as MachineName, format: format as Format };
  }
  if (values.format !== undefined) throw new ZdError('ZD_E_USAGE', '--format goes with --machine');
  if (values.at !== undefined && values.replay === undefined) throw new ZdError('ZD_E_USAGE', '--at goes with --replay');
  if (values.web && values.json) throw new ZdError('ZD_E_USAGE', '--web and --json cannot be combined: choose one');
  if (values.port !== undefined && !values.web) throw new ZdError('ZD_E_USAGE', '--port goes with --web');
  const port = values.port === undefined ? 0 : /^\d{1,5}$/.test(values.port) ? Number(values.port) : NaN;
  if (values.web && !(port >= 0 && port <= 65535)) {
    throw new ZdError('ZD_E_BAD_VALUE', `--port '${values.port}' is not a port: use 0-65535 (0: any free port)`);
  }
  if (values.replay !== undefined) {
    if (name !== undefined) throw new ZdError('ZD_E_USAGE', '--replay reads a journal: it takes no instance name');
    return { mode: 'replay', file: values.replay, at: values.at ?? null, json: values.json === true, web: values.web === true, port };
  }
  if (values.web) return { mode: 'web', name, port };
  return { mode: 'live', name, json: values.json === true };
}

// Graphviz (WASM) and the inspector load only when used: every `zd run` imports this file.
async function svgOf(dot: string): Promise<string> {
  const { renderSvg } = await import('../diagram/render.ts');
  return renderSvg(dot);
}

export async function inspectCommand(argv: string[]): Promise<number> {
  const args = parseInspectArgs(argv);
  if (args.mode === 'machine') {
    const machine = MACHINES[args.machine];
    const text =
      args.format === 'mermaid' ? machineToMermaid(machine) : args.format === 'dot' ? machineToDot(machine) : `${(await svgOf(machineToDot(machine))).trimEnd()}\n`;
    process.stdout.write(text);
    return 0;
  }
  if (args.mode === 'replay') return inspectReplay(args);
  const instance = await findInstance(args.name);
  let end: LiveEnd;
  if (args.mode === 'web') {
    const { runWeb } = await import('../inspect/web-server.ts');
    end = await runWeb({
      instance,
      port: args.port,
      onListening: (url) => process.stdout.write(`zd inspect: ${url}\n`),
    });
  } else {
    const { runLive } = await import('../inspect/live.ts');
    end = await runLive(instance, process.stdout, args.json ? 'json' : process.stdout.isTTY ? 'tty' : 'lines');
  }
  if (end === 'interrupted') return 0;
  throw new ZdError('ZD_E_NOT_RUNNING', `'${instance.name}' stopped: its control stream closed`, 1);
}

/** `zd inspect --replay FILE`: the journal, read and replayed, shown as a live run would be. */
async function inspectReplay(args: Extract<InspectArgs, { mode: 'replay' }>): Promise<number> {
  const [{ readJournal }, { ReplaySource }, { parseUntil }] = await Promise.all([
    import('./replay.ts'),
    import('../inspect/replay-source.ts'),
    import('../record/replay.ts'),
  ]);
  const until = args.at === null ? null : parseUntil(args.at);
  const source = new ReplaySource(readJournal(args.file), args.file);
  const start = until === null ? 0 : source.indexAt(until);
  if (args.web) {
    const { runReplayWeb } = await import('../inspect/replay-web.ts');
    await runReplayWeb({ source, port: args.port, start, onListening: (url) => process.stdout.write(`zd inspect: ${url}\n`) });
    return 0;
  }
  if (args.json || !process.stdout.isTTY || !process.stdin.isTTY) {
    // Not a terminal to step in: every message, as the live stream would have sent them.
    const { messageLine } = await import('../inspect/render-lines.ts');
    const last = until === null ? source.count - 1 : start;
    const messages = [source.hello(), ...source.positions.slice(0, last + 1).map((_, i) => source.message(i))];
    for (const message of messages) process.stdout.write(`${args.json ? JSON.stringify(message) : messageLine(message)}\n`);
    return 0;
  }
  const { runReplayTty } = await import('../inspect/replay-tty.ts');
  await runReplayTty(source, start, process.stdin, process.stdout);
  return 0;
}
