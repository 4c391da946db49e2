// `zd inspect` on a terminal: one frame, as a string, from what the stream said. Pure: the live loop
// only decides when to draw it. Every line fits `width` columns, and the current state is both in
// brackets and in inverse video, so it reads on a terminal without colours and over ssh.
import type { StatusView } from '../core/status.ts';
import type { HelloMessage } from './messages.ts';
import { CHIPS, chipOf } from './states.ts';
import { clock, progressText, rolloutDisplay, type RecentEvent, type RolloutDisplay } from './view.ts';

const ESC = '\x1b[';
const INVERSE = `${ESC}7m`;
const BOLD = `${ESC}1m`;
const RESET = `${ESC}0m`;
const LEVEL_STYLE: Record<string, string> = { warn: `${ESC}33m`, error: `${ESC}31m`, fatal: `${ESC}31m` };

const MIN_WIDTH = 24;
const INDENT = '    ';

export interface TtyContext {
  hello?: HelloMessage | null;
  /** The rollout as the view folded it (keeps `k of N` once it is done); else read off `status`. */
  rollout?: RolloutDisplay;
  /** When the last message arrived. */
  at?: number | null;
}

export function renderTty(status: StatusView | null, recent: readonly RecentEvent[], width: number, context: TtyContext = {}): string {
  const w = Math.max(MIN_WIDTH, Math.floor(width));
  const { hello } = context;
  const lines: string[] = [];
  const title = hello ? `zd inspect · '${hello.name}' · pid ${hello.pid} · ${hello.app}` : 'zd inspect';
  lines.push(BOLD + fit(title, w) + RESET);
  if (!status) {
    lines.push(fit('waiting for the first snapshot…', w));
    return `${lines.join('\n')}\n`;
  }
  const at = context.at ? ` · ${clock(context.at)}` : '';
  lines.push(fit(`${status.phase} · generation ${status.generation} · ${status.ready}/${status.desired} ready${at}`, w));
  lines.push('');

  lines.push(BOLD + fit(`WORKERS (${status.workers.length})`, w) + RESET);
  if (status.workers.length === 0) lines.push(fit(`${INDENT}none`, w));
  for (const worker of status.workers) {
    const facts = [`pid ${worker.pid ?? '-'}`, `gen ${worker.generation}`, `slot ${worker.slot}`];
    if (worker.restarts > 0) facts.push(`${worker.restarts} restart${worker.restarts === 1 ? '' : 's'}`);
    lines.push(fit(`  worker ${worker.id}  ${facts.join('  ')}  ${worker.state}`, w));
    lines.push(...chipLines(CHIPS.worker, worker.state, w));
  }
  for (const r of status.releases ?? []) {
    lines.push(fit(`  generation ${r.generation}${r.generation === status.serving ? ' (serving)' : ''}: ${r.cwd}`, w));
  }
  if (status.parkedSlots.length > 0) lines.push(fit(`  crash loop: slot ${status.parkedSlots.join(', ')} parked until the next reload`, w));
  lines.push('');

  const rollout = context.rollout ?? rolloutDisplay(status, null);
  const about = [rollout.generation === null ? null : `generation ${rollout.generation}`, progressText(rollout)];
  if (rollout.bootingSlots.length > 0) about.push(`booting slot ${rollout.bootingSlots.join(', ')}`);
  if (rollout.reason) about.push(rollout.reason);
  if (status.reloadQueued) about.push('a reload is queued');
  if (status.rollout?.canary) about.push(`canary on slot ${status.rollout.canary.slot ?? '-'}: ${status.rollout.canary.state}`);
  const said = about.filter((part): part is string => part !== null);
  lines.push(BOLD + fit(`ROLLOUT${said.length > 0 ? `  ${said.join(' · ')}` : ''}`, w) + RESET);
  lines.push(...chipLines(CHIPS.rollout, rollout.state, w));
  const verdict = status.canaryVerdict;
  if (verdict) {
    const fig = (g: typeof verdict.canary) => `${(g.errorRate * 100).toFixed(1)}% failed, p99 ≤ ${g.p99Ms ?? '-'}ms, ${g.requests} req`;
    lines.push(fit(`  last canary (generation ${verdict.generation}): ${verdict.outcome} · new ${fig(verdict.canary)} · old ${fig(verdict.baseline)}`, w));
  }
  lines.push('');

  lines.push(BOLD + fit('EVENTS', w) + RESET);
  if (recent.length === 0) lines.push(fit(`${INDENT}none yet`, w));
  for (const event of recent) {
    const line = fit(`  ${clock(event.at)}  ${event.code}  ${event.msg}`, w);
    const style = LEVEL_STYLE[event.level];
    lines.push(style ? style + line + RESET : line);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * A machine's states, wrapped to the width. Every chip is as wide lit as unlit (` x ` or `[x]`),
 * so a change of state never moves the others.
 */
function chipLines(chips: readonly string[], state: string, width: number): string[] {
  const current = chipOf(chips, state);
  const shown = current === null ? [...chips, state] : chips.map((chip) => (chip === current && chip.endsWith('.*') ? state : chip));
  const lit = current === null ? state : (shown[chips.indexOf(current)] as string);
  const lines: string[] = [];
  let line = '';
  let used = 0;
  for (const chip of shown) {
    const text = fit(chip, width - INDENT.length - 2);
    const cell = chip === lit ? `${INVERSE}[${text}]${RESET}` : ` ${text} `;
    const cellWidth = text.length + 2;
    if (used > 0 && used + 1 + cellWidth > width - INDENT.length) {
      lines.push(INDENT + line);
      line = '';
      used = 0;
    }
    line += (used > 0 ? ' ' : '') + cell;
    used += (used > 0 ? 1 : 0) + cellWidth;
  }
  if (used > 0) lines.push(INDENT + line);
  return lines;
}

/** Plain text cut to `width` columns, with `…` where it was cut. */
export function fit(text: string, width: number): string {
  const chars = [...text];
  return chars.length <= width ? text : `${chars.slice(0, Math.max(0, width - 1)).join('')}…`;
}

/** The frame without its escape sequences: what a reader sees, for tests and width checks. */
export function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
}
