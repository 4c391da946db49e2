// The live inspector in a terminal, as plain lines, or as JSON lines: the only part that writes,
// times and listens to signals. Deciding what to show is view.ts's and the renderers'.
import type { Instance } from '../control/client.ts';
import { messageLine } from './render-lines.ts';
import { renderTty } from './render-tty.ts';
import { followInspectStream } from './stream.ts';
import { applyMessage, EMPTY_VIEW, rolloutDisplay, type InspectView } from './view.ts';

/** At most this often a terminal frame is drawn (~10 fps): a burst of steps is one redraw. */
const FRAME_MS = 100;

export type LiveMode = 'tty' | 'lines' | 'json';

/** Why the inspector ended: the user stopped it (Ctrl-C, a closed pipe) or the instance went away. */
export type LiveEnd = 'interrupted' | 'ended';

export interface Output {
  write(text: string): unknown;
  on(event: 'error' | 'resize', listener: (...args: unknown[]) => void): unknown;
  off(event: 'error' | 'resize', listener: (...args: unknown[]) => void): unknown;
  columns?: number;
  rows?: number;
}

/** Calls `handler` on SIGINT or SIGTERM; returns the function that stops listening. */
export function onInterrupt(handler: () => void): () => void {
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

export async function runLive(instance: Instance, out: Output, mode: LiveMode): Promise<LiveEnd> {
  let view: InspectView = EMPTY_VIEW;
  let interrupted = false;
  let timer: NodeJS.Timeout | null = null;
  let lastFrame = 0;

  const draw = () => {
    timer = null;
    lastFrame = Date.now();
    const frame = renderTty(view.status, view.recent, out.columns ?? 80, {
      hello: view.hello,
      rollout: view.status ? rolloutDisplay(view.status, view.progress) : undefined,
      at: view.at,
    });
    // Home, each line then clear-to-end-of-line, then clear below: no blank flash between frames.
    const lines = frame.trimEnd().split('\n').slice(0, Math.max(1, (out.rows ?? 1000) - 1));
    out.write(`\x1b[H${lines.map((line) => `${line}\x1b[K`).join('\n')}\n\x1b[J`);
  };
  const schedule = () => {
    if (timer !== null) return;
    timer = setTimeout(draw, Math.max(0, lastFrame + FRAME_MS - Date.now()));
  };

  const stream = followInspectStream(instance, (message, line) => {
    if (mode === 'json') {
      out.write(`${line}\n`);
      return;
    }
    view = applyMessage(view, message);
    if (mode === 'lines') out.write(`${messageLine(message)}\n`);
    else schedule();
  });
  const stop = () => {
    interrupted = true;
    stream.close();
  };
  // A reader that went away (`zd inspect --json | head -1`) is the user stopping it. The listener
  // stays: a write that fails after the end must not become an uncaught error.
  const onError = () => stop();
  const stopListening = onInterrupt(stop);
  out.on('error', onError);
  if (mode === 'tty') {
    out.on('resize', schedule);
    // The alternate screen, cursor hidden: the shell's scrollback is left as it was.
    out.write('\x1b[?1049h\x1b[?25l');
    schedule();
  }
  try {
    await stream.ended;
  } finally {
    stopListening();
    if (timer !== null) clearTimeout(timer);
    if (mode === 'tty') {
      out.off('resize', schedule);
      out.write('\x1b[?25h\x1b[?1049l');
    }
  }
  return interrupted ? 'interrupted' : 'ended';
}
