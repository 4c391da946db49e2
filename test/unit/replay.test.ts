// Issue #16: what `zd replay` cannot reproduce is written down, and stays complete; --until reads
// both kinds of moment; the terminal replay's keys move through a journal.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseUntil } from '../../src/cli/replay.ts';
import { parseRunArgs } from '../../src/cli/run-options.ts';
import { ReplaySource } from '../../src/inspect/replay-source.ts';
import { replayFrame, replayKey } from '../../src/inspect/replay-tty.ts';
import { stripAnsi } from '../../src/inspect/render-tty.ts';
import { parseJournal } from '../../src/record/format.ts';
import { Recorder } from '../../src/record/recorder.ts';
import { SHELL_LOG_CODES } from '../../src/record/replay.ts';
import { VERSION } from '../../src/version.ts';
import { Sim, simConfig } from '../helpers/sim.ts';
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

test('zd inspect --replay on a terminal: keys move through the journal, the frame says where', () => {
  const config = simConfig({ workers: 1 });
  let now = 0;
  const recorder = new Recorder({ name: 'tty', app: 'app.js', pid: 1, clock: () => ({ t: now, at: 1_700_000_000_000 + now }) });
  recorder.start(config, { app: 'app.js', cwd: '.', args: [] });
  let sim: Sim | null = null;
  sim = new Sim(config, (_b, event, step) => {
    now = sim?.now ?? 0;
    recorder.step(step.state, event, step.effects);
  });
  sim.bootAll();
  sim.advance(1000);
  sim.die(1, 1); // a crash: a warning
  sim.advance(1000);
  const source = new ReplaySource(parseJournal(recorder.dump('test')!.text, VERSION), 'j.ndjson');
  let cursor = { index: 0, prompt: null as string | null, problem: null as string | null, quit: false };
  const press = (...keys: string[]) => {
    for (const key of keys) cursor = replayKey(source, cursor, key);
  };
  press('\x1b[C', '\x1b[C');
  assert.equal(cursor.index, 2);
  press('\x1b[D');
  assert.equal(cursor.index, 1);
  press(']');
  const crashed = cursor.index;
  assert.ok(source.positions[crashed]!.logs.some((log) => log.code === 'ZD_WORKER_CRASHED'));
  assert.match(stripAnsi(replayFrame(source, cursor, 120)), new RegExp(`REPLAY j\\.ndjson · step ${crashed + 1} of ${source.count} .* worker\\.exit`));
  press('g');
  assert.equal(cursor.index, 0);
  press('t', '1', '5', '0', '0', '\r');
  assert.equal(cursor.index, source.indexAt({ t: 1500 }));
  assert.ok(source.positions[cursor.index]!.t <= 1500 && (source.positions[cursor.index + 1]?.t ?? Infinity) > 1500);
  press('t', 'x', '\r');
  assert.match(cursor.problem ?? '', /--until 'x'|neither a time/);
  press('G');
  assert.equal(cursor.index, source.count - 1);
  press('q');
  assert.equal(cursor.quit, true);
});

test('--record FILE, or "record" in the config file, resolved from the working directory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zd-record-config-'));
  try {
    const app = join(repoRoot, 'test', 'fixtures', 'serve.cjs');
    assert.equal(parseRunArgs([app, '--record', 'j.ndjson'], {}, dir).shell.record, join(dir, 'j.ndjson'));
    writeFileSync(join(dir, 'zd.config.json'), JSON.stringify({ app, record: 'logs/zd.journal' }));
    assert.equal(parseRunArgs([], {}, dir).shell.record, join(dir, 'logs', 'zd.journal'));
    assert.equal(parseRunArgs([app], {}, tmpdir()).shell.record, null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
