// Issue #16: what `zd replay` cannot reproduce is written down, and stays complete; --until reads
// both kinds of moment.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseUntil } from '../../src/cli/replay.ts';
import { SHELL_LOG_CODES } from '../../src/record/replay.ts';
import { repoRoot } from '../helpers/zd.ts';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

test("every log line the shell writes itself is listed as one a replay cannot decide", () => {
  // The core's lines are log effects; every other `code: 'ZD_…'` given to a logger is the shell's.
  const shell = ['src/shell', 'src/cli', 'src/control', 'src/ops', 'src/record'].flatMap((dir) => sources(join(repoRoot, dir)));
  const found = new Set<string>();
  for (const file of shell) {
    for (const match of readFileSync(file, 'utf8').matchAll(/code: '(ZD_[A-Z_]+)'/g)) found.add(match[1]!);
  }
  // ZD_STOPPED is the core's, and also the shell's when stopped before any worker started.
  const missing = [...found].filter((code) => !SHELL_LOG_CODES.has(code) && code !== 'ZD_STOPPED');
  assert.deepEqual(missing, [], 'add them to SHELL_LOG_CODES in src/record/replay.ts');
  assert.ok(found.has('ZD_CONFIG') && found.has('ZD_JOURNAL_WRITTEN'));
});

test('--until: a time since start (ms, fractions kept, or a duration), or a date and time; anything else is one clear error', () => {
  assert.deepEqual(parseUntil('2321.7'), { t: 2321.7 });
  assert.deepEqual(parseUntil('90s'), { t: 90_000 });
  assert.deepEqual(parseUntil('2024-06-10T06:14:50.250Z'), { at: Date.parse('2024-06-10T06:14:50.250Z') });
  assert.throws(() => parseUntil('yesterday'), /--until 'yesterday' is neither a time since start/);
});
