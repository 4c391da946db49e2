// `zd replay FILE [--log-format json|pretty] [--until T] [--json]`: the journal's events through
// this zd's reducer, printing the log lines it decides, as the live run printed them (their time
// is the recorded time of the event that decided them), or with --json each step and its state.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { isoTime } from '../clock.ts';
import { ZdError } from '../errors.ts';
import { parseJournal, type Journal } from '../record/format.ts';
import { parseUntil, reached, replayJournal } from '../record/replay.ts';
import { logFields } from '../shell/log-fields.ts';
import { createLogger, defaultLogFormat, type LogFormat } from '../shell/logger.ts';
import { VERSION } from '../version.ts';

export { parseUntil };

/** Reads and checks a journal file: one clear line and exit 2 for anything this zd cannot replay. */
export function readJournal(file: string): Journal {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ZdError('ZD_E_JOURNAL', `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  return parseJournal(text, VERSION, file);
}

/** What replay says about how the journal ended, on stderr; its exit code. */
export function journalEndNote(journal: Journal, file: string, lastStep: number | null): { line: string | null; code: number } {
  const upTo = lastStep === null ? 'nothing' : `up to step ${lastStep}`;
  switch (journal.end.kind) {
    case 'complete':
      return { line: null, code: 0 };
    case 'cut':
      return { line: `zd: ${file} is cut in the middle of line ${journal.end.line} (the primary was killed while writing it): replayed ${upTo} [ZD_JOURNAL_CUT]`, code: 0 };
    case 'corrupt':
      return { line: `zd: ${file}: line ${journal.end.line} is not a journal line (${journal.end.reason}): replayed ${upTo} [ZD_E_JOURNAL_CORRUPT]`, code: 1 };
  }
}

export async function replayCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { 'log-format': { type: 'string' }, until: { type: 'string' }, json: { type: 'boolean' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new ZdError('ZD_E_UNKNOWN_FLAG', `${(error as Error).message.split('\n')[0]!.split('. ')[0]!.replace(/\.$/, '')} (see zd --help)`);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) throw new ZdError('ZD_E_USAGE', 'zd replay takes one journal file: zd replay FILE [--log-format json|pretty] [--until T] [--json]');
  const format = values['log-format'];
  if (format !== undefined && format !== 'json' && format !== 'pretty') {
    throw new ZdError('ZD_E_BAD_VALUE', `--log-format must be one of json, pretty, not '${format}'`);
  }
  if (format !== undefined && values.json) throw new ZdError('ZD_E_USAGE', '--log-format and --json cannot be combined: --json prints steps, not log lines');
  const until = values.until === undefined ? null : parseUntil(values.until);
  const file = positionals[0]!;
  const journal = readJournal(file);

  let now = new Date(journal.header.start);
  const out = (text: string) => process.stdout.write(text);
  const logger = createLogger((format as LogFormat | undefined) ?? defaultLogFormat(process.stdout), undefined, out, () => now);
  let lastStep: number | null = null;
  let stopped = false;
  for (const item of replayJournal(journal)) {
    if (reached(item, until)) {
      stopped = true;
      break;
    }
    if (item.kind === 'resume') {
      process.stderr.write(
        item.why === 'snapshot'
          ? `zd: ${file} starts at step ${item.n} (${isoTime(item.at)}), from a recorded state: what came before is not in it [ZD_JOURNAL_SNAPSHOT]\n`
          : `zd: ${item.count} event(s) before step ${item.n + 1} were not recorded (the disk was too slow): replay resumes from the state recorded after them [ZD_JOURNAL_DROPPED]\n`,
      );
      if (values.json) out(`${JSON.stringify({ n: item.n, t: item.t, at: item.at, resumed: item.why, ...(item.why === 'dropped' ? { dropped: item.count } : {}), state: item.state })}\n`);
      continue;
    }
    lastStep = item.n;
    if (values.json) {
      out(`${JSON.stringify({ n: item.n, t: item.t, at: item.at, event: item.event, effects: item.effects, transitions: item.transitions, state: item.state })}\n`);
      continue;
    }
    now = new Date(item.at);
    const stderr = item.stderr;
    for (const effect of item.effects) {
      if (effect.type === 'log') logger[effect.level](logFields(effect, (id) => stderr?.[id]), effect.msg);
    }
  }
  const end = stopped ? { line: null, code: 0 } : journalEndNote(journal, file, lastStep);
  if (end.line) process.stderr.write(`${end.line}\n`);
  return end.code;
}
