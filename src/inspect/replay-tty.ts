// `zd inspect --replay FILE` on a terminal: the live view, drawn at one moment of the journal, and
// keys to move: ←/→ one event, [ and ] the previous/next warning or error, Home/End, t to type a
// time (ms or a duration since start, or a date and time), q to quit. The frame and the keys are
// pure (replayFrame, replayKey); runReplayTty only reads keys and draws.
import { parseUntil } from '../record/replay.ts';
import { transitionText } from './render-lines.ts';
import { fit, renderTty } from './render-tty.ts';
import type { ReplaySource } from './replay-source.ts';
import { rolloutDisplay } from './view.ts';

export interface ReplayCursor {
  index: number;
  /** Text typed after `t`, while a time is being asked for. */
  prompt: string | null;
  /** One line: why the last time typed was not one. */
  problem: string | null;
  quit: boolean;
}

const HELP = '←/→ event  [/] warning  Home/End  t time  q quit';

export function replayFrame(source: ReplaySource, cursor: ReplayCursor, width: number): string {
  const view = source.view(cursor.index);
  const p = source.positions[cursor.index]!;
  const frame = renderTty(view.status, view.recent, width, {
    hello: view.hello,
    rollout: view.status ? rolloutDisplay(view.status, view.progress) : undefined,
    at: view.at,
  });
  const w = Math.max(24, Math.floor(width));
  const lines = [
    '',
    fit(`REPLAY ${source.file} · step ${cursor.index + 1} of ${source.count} (n ${p.n}) · +${(p.t / 1000).toFixed(3)}s · ${p.event}`, w),
    ...p.transitions.map((t) => fit(`  ${transitionText(t)}`, w)),
    fit(cursor.prompt !== null ? `time (ms since start, 90s, or 2024-06-10T06:14:50Z): ${cursor.prompt}▏` : cursor.problem ?? HELP, w),
  ];
  return `${frame}${lines.join('\n')}\n`;
}

/** A key (as the terminal sends it) applied to the cursor. */
export function replayKey(source: ReplaySource, cursor: ReplayCursor, key: string): ReplayCursor {
  const at = (index: number): ReplayCursor => ({ ...cursor, index: Math.max(0, Math.min(source.count - 1, index)), problem: null });
  if (cursor.prompt !== null) {
    if (key === '\r' || key === '\n') {
      try {
        return { ...at(source.indexAt(parseUntil(cursor.prompt.trim()))), prompt: null };
      } catch (error) {
        return { ...cursor, prompt: null, problem: (error as Error).message };
      }
    }
    if (key === '\x1b' || key === '\x03') return { ...cursor, prompt: null };
    if (key === '\x7f' || key === '\b') return { ...cursor, prompt: cursor.prompt.slice(0, -1) };
    return /^[\x20-\x7e]+$/.test(key) ? { ...cursor, prompt: cursor.prompt + key } : cursor;
  }
  switch (key) {
    case '\x1b[C':
    case 'n':
    case ' ':
      return at(cursor.index + 1);
    case '\x1b[D':
    case 'p':
      return at(cursor.index - 1);
    case ']':
      return at(source.nextNotable(cursor.index, 1));
    case '[':
      return at(source.nextNotable(cursor.index, -1));
    case '\x1b[H':
    case '\x1b[1~':
    case 'g':
      return at(0);
    case '\x1b[F':
    case '\x1b[4~':
    case 'G':
      return at(source.count - 1);
    case 't':
      return { ...cursor, prompt: '', problem: null };
    case 'q':
    case '\x03':
      return { ...cursor, quit: true };
    default:
      return cursor;
  }
}

interface Input {
  isTTY?: boolean;
  setRawMode?(raw: boolean): unknown;
  on(event: 'data', listener: (chunk: Buffer | string) => void): unknown;
  off(event: 'data', listener: (chunk: Buffer | string) => void): unknown;
  resume(): unknown;
  pause(): unknown;
}

interface Screen {
  write(text: string): unknown;
  columns?: number;
  rows?: number;
  on(event: 'resize', listener: () => void): unknown;
  off(event: 'resize', listener: () => void): unknown;
}

export async function runReplayTty(source: ReplaySource, start: number, input: Input, out: Screen): Promise<void> {
  let cursor: ReplayCursor = { index: start, prompt: null, problem: null, quit: false };
  const draw = () => {
    const lines = replayFrame(source, cursor, out.columns ?? 80).trimEnd().split('\n');
    const shown = lines.length > (out.rows ?? 1000) - 1 ? [...lines.slice(0, (out.rows ?? 1000) - 1 - 3), ...lines.slice(-3)] : lines;
    out.write(`\x1b[H${shown.map((line) => `${line}\x1b[K`).join('\n')}\n\x1b[J`);
  };
  out.write('\x1b[?1049h\x1b[?25l');
  input.setRawMode?.(true);
  input.resume();
  try {
    await new Promise<void>((resolve) => {
      const onData = (chunk: Buffer | string) => {
        cursor = replayKey(source, cursor, chunk.toString());
        if (cursor.quit) {
          input.off('data', onData);
          out.off('resize', draw);
          resolve();
          return;
        }
        draw();
      };
      input.on('data', onData);
      out.on('resize', draw);
      draw();
    });
  } finally {
    input.setRawMode?.(false);
    input.pause();
    out.write('\x1b[?25h\x1b[?1049l');
  }
}
