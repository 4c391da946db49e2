// The journal's format (issue #16): what `zd run --record`, `zd dump` and the exit-1 dump write,
// and what `zd replay` and `zd inspect --replay` read. One JSON object per line (NDJSON), each
// with its kind in `k`, so a journal can be read with grep and jq as well as replayed:
//
//   {"k":"zd-journal","format":1,"version":"0.1.0","node":"v20.19.0","from":"init",
//    "start":1718000000000,"startedAt":"2024-06-10T06:13:20.000Z","name":"app","app":"/srv/app.js",
//    "pid":4242,"config":{…},"release":{…}}                       the header, always the first line
//   {"k":"snapshot","n":812,"t":60211.4,"at":1718000060211,"state":{…}}   the state after step n
//   {"k":"event","n":813,"t":60215.1,"at":1718000060215,"event":{…}[,"stderr":{"7":"…"}]}
//   {"k":"dropped","count":41,"n":854,"t":…,"at":…,"state":{…}}   41 events up to step n unwritten
//
// Step 0 is `init(config, release)`; step n ≥ 1 is the n-th event the reducer took. `t` is ms since
// the primary started (monotonic), `at` the wall clock (epoch ms) when the reducer took the event.
// A journal that lost its beginning (a rotated file, a dumped ring) says `"from":"snapshot"` and
// its second line is the snapshot it continues from. `stderr` holds what the shell attached to
// the step's log lines (the worker's stderr tail, which the reducer never sees), by worker id.
//
// The format is tied to the reducer: the same events give the same decisions only through the
// same reducer, so a journal is replayed by the zd version that wrote it and no other.
import { isoTime } from '../clock.ts';
import type { CoreConfig } from '../core/config.ts';
import type { PrimaryEvent, Release } from '../core/events.ts';
import type { PrimaryState } from '../core/state.ts';
import { ZdError } from '../errors.ts';

/** Bumped whenever a line's meaning changes; a reader refuses any other. */
export const JOURNAL_FORMAT = 1;
const MAGIC = 'zd-journal';

export interface JournalHeader {
  k: typeof MAGIC;
  format: number;
  /** The zd that wrote it, whose reducer alone replays it. */
  version: string;
  node: string;
  from: 'init' | 'snapshot';
  /** When the primary started: epoch ms, and the same as ISO text for a reader. */
  start: number;
  startedAt: string;
  name: string;
  app: string;
  pid: number;
  /** What init() was given (for a journal from a snapshot, what the primary started with). */
  config: CoreConfig;
  release?: Release;
  /** Set on a dump: when it was taken, and why. */
  dumpedAt?: string;
  reason?: string;
}

export interface StepTime {
  n: number;
  t: number;
  at: number;
}

export interface EventLine extends StepTime {
  k: 'event';
  event: PrimaryEvent;
  stderr?: Record<string, string>;
}

export interface SnapshotLine extends StepTime {
  k: 'snapshot';
  state: PrimaryState;
}

export interface DroppedLine extends StepTime {
  k: 'dropped';
  count: number;
  /** The state after step n: replay resumes from it. */
  state: PrimaryState;
}

export type JournalLine = EventLine | SnapshotLine | DroppedLine;

export type HeaderFields = Omit<JournalHeader, 'k' | 'format' | 'from' | 'release' | 'dumpedAt' | 'reason'>;

export function headerLine(fields: HeaderFields, start: { from: 'init'; release: Release } | { from: 'snapshot' }, dump?: { reason: string }): string {
  const header: JournalHeader = {
    k: MAGIC,
    format: JOURNAL_FORMAT,
    version: fields.version,
    node: fields.node,
    from: start.from,
    start: fields.start,
    startedAt: fields.startedAt,
    name: fields.name,
    app: fields.app,
    pid: fields.pid,
    config: fields.config,
    ...(start.from === 'init' ? { release: start.release } : {}),
    ...(dump ? { dumpedAt: isoTime(Date.now()), reason: dump.reason } : {}),
  };
  return `${JSON.stringify(header)}\n`;
}

export function eventLine(time: StepTime, event: PrimaryEvent, stderr: Record<string, string> | null): string {
  const line: Omit<EventLine, 'stderr'> & { stderr?: Record<string, string> } = { k: 'event', n: time.n, t: time.t, at: time.at, event };
  if (stderr) line.stderr = stderr;
  return `${JSON.stringify(line)}\n`;
}

export function snapshotLine(time: StepTime, state: PrimaryState): string {
  return `${JSON.stringify({ k: 'snapshot', n: time.n, t: time.t, at: time.at, state })}\n`;
}

export function droppedLine(time: StepTime, count: number, state: PrimaryState): string {
  return `${JSON.stringify({ k: 'dropped', count, n: time.n, t: time.t, at: time.at, state })}\n`;
}

/** How a journal's text ended. */
export type JournalEnd =
  | { kind: 'complete' }
  /** The last line has no newline and is not JSON: the writer was killed in the middle of it. */
  | { kind: 'cut'; line: number }
  /** A line in the middle is not a journal line: everything before it is kept. */
  | { kind: 'corrupt'; line: number; reason: string };

export interface Journal {
  header: JournalHeader;
  lines: JournalLine[];
  end: JournalEnd;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Reads a journal written by `version`. Throws ZD_E_JOURNAL (exit 2) for a file that is not a
 * journal or one of another format or zd version: replaying it through this reducer would
 * misread it. A damaged tail is not an error: the lines before it are returned, with `end` saying
 * where and why it stopped.
 */
export function parseJournal(text: string, version: string, file = 'the journal'): Journal {
  const rows = text.split('\n');
  const endsWithNewline = rows[rows.length - 1] === '';
  if (endsWithNewline) rows.pop();
  let header: unknown;
  try {
    header = JSON.parse(rows[0] ?? '');
  } catch {
    header = null;
  }
  if (!isObject(header) || header.k !== MAGIC) {
    throw new ZdError('ZD_E_JOURNAL', `${file} is not a zd journal (its first line is not a zd-journal header): record one with zd run --record FILE, or zd dump`);
  }
  if (header.format !== JOURNAL_FORMAT) {
    throw new ZdError('ZD_E_JOURNAL_VERSION', `${file} is in journal format ${String(header.format)}, and this zd (${version}) reads format ${JOURNAL_FORMAT} only: replay it with the zd that wrote it (${String(header.version)})`);
  }
  if (header.version !== version) {
    throw new ZdError('ZD_E_JOURNAL_VERSION', `${file} was written by zd ${String(header.version)}, and this is zd ${version}: its decisions replay only through the same reducer (npx zd-runner@${String(header.version)} replay ${file})`);
  }
  if (!isObject(header.config) || (header.from === 'init' && !isObject(header.release)) || (header.from !== 'init' && header.from !== 'snapshot')) {
    throw new ZdError('ZD_E_JOURNAL', `${file}: its header lacks the config or release to replay from`);
  }
  const lines: JournalLine[] = [];
  let end: JournalEnd = { kind: 'complete' };
  for (let i = 1; i < rows.length; i++) {
    const number = i + 1;
    const last = i === rows.length - 1;
    let value: unknown;
    try {
      value = JSON.parse(rows[i]!);
    } catch {
      end = last && !endsWithNewline ? { kind: 'cut', line: number } : { kind: 'corrupt', line: number, reason: 'not JSON' };
      break;
    }
    const problem = lineProblem(value);
    if (problem !== null) {
      end = { kind: 'corrupt', line: number, reason: problem };
      break;
    }
    lines.push(value as JournalLine);
  }
  if (header.from === 'snapshot' && lines[0]?.k !== 'snapshot') {
    throw new ZdError('ZD_E_JOURNAL', `${file} starts from a snapshot, and its second line is not one`);
  }
  return { header: header as unknown as JournalHeader, lines, end };
}

function lineProblem(value: unknown): string | null {
  if (!isObject(value)) return 'not an object';
  if (typeof value.n !== 'number' || typeof value.t !== 'number' || typeof value.at !== 'number') return 'no step number or time';
  switch (value.k) {
    case 'event':
      return isObject(value.event) && typeof value.event.type === 'string' ? null : 'an event line without an event';
    case 'snapshot':
    case 'dropped':
      return isObject(value.state) ? null : `a ${value.k} line without a state`;
    default:
      return `unknown kind ${JSON.stringify(value.k)}`;
  }
}
