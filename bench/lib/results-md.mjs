// The focused benchmarks (reducer.mjs, messages.mjs, soak.mjs) each keep their own section of
// bench/RESULTS.md between two markers, so a rerun replaces its section and leaves the rest alone.
// bench/run.mjs rewrites the whole file from RESULTS.json: rerun these after it.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const BENCH = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
export const RESULTS_MD = join(BENCH, 'RESULTS.md');

/** Replaces (or appends) the section keyed `key`: `body` is markdown, starting with its heading. */
export function writeSection(key, body, file = RESULTS_MD) {
  const begin = `<!-- bench:${key} -->`;
  const end = `<!-- /bench:${key} -->`;
  const block = `${begin}\n${body.trim()}\n${end}`;
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  const next = a >= 0 && b > a ? text.slice(0, a) + block + text.slice(b + end.length) : `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, next);
  return file;
}

/** A markdown table from a header row and rows of cells. */
export function table(header, rows, align) {
  const line = (cells) => `| ${cells.join(' | ')} |`;
  const rule = header.map((_, i) => ((align?.[i] ?? (i === 0 ? 'l' : 'r')) === 'r' ? '---:' : '---'));
  return [line(header), line(rule), ...rows.map(line)].join('\n');
}

export function percentile(values, p) {
  const sorted = values.filter((v) => v !== null && Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
