// Issue #16: the journal file's limits. Rotation keeps two files that each replay on their own; a
// journal left by an earlier run is kept as FILE.1; a slow disk moves the writes to the background
// and, once the bounded queue is full, drops lines and says how many, with the state to resume
// from, so the replay goes on; a version or format this zd cannot replay is refused.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { Release } from '../../src/core/events.ts';
import { ZdError } from '../../src/errors.ts';
import { parseJournal } from '../../src/record/format.ts';
import { Recorder } from '../../src/record/recorder.ts';
import { replayJournal, type ReplayItem } from '../../src/record/replay.ts';
import { JournalWriter } from '../../src/record/writer.ts';
import { VERSION } from '../../src/version.ts';
import { Sim, simConfig } from '../helpers/sim.ts';
import { waitUntil } from '../helpers/wait.ts';

const dir = mkdtempSync(join(tmpdir(), 'zd-journal-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const RELEASE: Release = { app: 'app.js', cwd: '.', args: [] };

/** A simulated primary whose every step goes to `recorder`: two workers, then `rounds` reloads. */
function drive(recorder: Recorder, rounds: number): Sim {
  const config = simConfig({ workers: 2 });
  let sim: Sim | null = null;
  recorder.start(config, RELEASE);
  sim = new Sim(config, (_before, event, step) => recorder.step(step.state, event, step.effects, step.transitions));
  sim.bootAll();
  for (let i = 0; i < rounds; i++) {
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP', release: RELEASE });
    for (let k = 0; k < 6; k++) {
      sim.bootAll();
      for (const p of sim.alive()) if (!p.connected || p.messages.some((m) => (m as { type?: string }).type === 'zd:drain')) sim.die(p.id, 0);
      sim.advance(100);
    }
  }
  return sim;
}

const replay = (text: string): ReplayItem[] => [...replayJournal(parseJournal(text, VERSION))];
const logCodes = (items: ReplayItem[]) => items.flatMap((i) => (i.kind === 'step' ? i.effects.flatMap((e) => (e.type === 'log' ? [e.code] : [])) : []));

test('rotation: FILE.1 and FILE each replay on their own, FILE from a snapshot, FILE.1 ending where FILE begins', () => {
  const path = join(dir, 'rotating.ndjson');
  const writer = new JournalWriter({ path, maxBytes: 4096 });
  const recorder = new Recorder({ name: 'unit', app: 'app.js', pid: 1 });
  recorder.record(writer);
  const sim = drive(recorder, 8);
  writer.close();
  assert.ok(writer.stats.rotations >= 2, `rotated ${writer.stats.rotations} times`);
  assert.ok(statSync(path).size <= 4096 + 2048, 'FILE stays near its limit');
  const current = parseJournal(readFileSync(path, 'utf8'), VERSION);
  const previous = parseJournal(readFileSync(`${path}.1`, 'utf8'), VERSION);
  assert.equal(current.header.from, 'snapshot');
  assert.equal(current.lines[0]!.k, 'snapshot');
  const steps = (j: typeof current) => [...replayJournal(j)].flatMap((i) => (i.kind === 'step' ? [i.n] : []));
  const a = steps(previous);
  const b = steps(current);
  assert.equal(b[0], a[a.length - 1]! + 1, 'FILE begins where FILE.1 ends');
  assert.equal(b[b.length - 1], sim.events.length, 'FILE ends at the last event taken');
});

test("a journal left by an earlier run is kept as FILE.1; the file is private", () => {
  const path = join(dir, 'earlier.ndjson');
  writeFileSync(path, 'the earlier run\n');
  const writer = new JournalWriter({ path });
  writer.close();
  assert.equal(readFileSync(`${path}.1`, 'utf8'), 'the earlier run\n');
  assert.equal(statSync(path).mode & 0o777, 0o600);
});

test('a slow disk: writes move to the background, a full queue drops lines and the next line says how many, and replay resumes', async () => {
  const path = join(dir, 'slow.ndjson');
  // Every write "takes" 50 ms on this clock: the first one sends the writer to the background.
  let clock = 0;
  const writer = new JournalWriter({ path, maxPendingBytes: 2048, slowWriteMs: 20, now: () => (clock += 25) });
  const recorder = new Recorder({ name: 'unit', app: 'app.js', pid: 1 });
  recorder.record(writer);
  const sim = drive(recorder, 3); // all in one tick: the background gets no chance to write
  assert.ok(writer.stats.slowWrites >= 1);
  assert.ok(writer.dropped > 0, 'lines were dropped once the queue was full');
  const lost = writer.dropped;
  await waitUntil(() => writer.idle, 5000, 'the background writes');
  sim.dispatch({ type: 'signal.term', signal: 'SIGTERM' }); // the next step: written with a `dropped` line first
  await waitUntil(() => writer.idle, 5000, 'the background writes');
  writer.close();
  const journal = parseJournal(readFileSync(path, 'utf8'), VERSION);
  const marker = journal.lines.find((line) => line.k === 'dropped');
  assert.ok(marker && marker.k === 'dropped', 'a dropped line');
  assert.equal(marker.count, lost);
  const items = [...replayJournal(journal)];
  const resume = items.find((i) => i.kind === 'resume');
  assert.ok(resume && resume.kind === 'resume' && resume.why === 'dropped' && resume.count === lost);
  assert.ok(logCodes(items.slice(items.indexOf(resume))).includes('ZD_SHUTDOWN'), 'the steps after the gap replay from the recorded state');
});

test('closed while a background write is in flight (an exit on a stalled disk): every line, in order', async () => {
  const path = join(dir, 'in-flight.ndjson');
  let clock = 0;
  const writer = new JournalWriter({ path, slowWriteMs: 20, now: () => (clock += 25) });
  const recorder = new Recorder({ name: 'unit', app: 'app.js', pid: 1 });
  recorder.record(writer);
  const sim = drive(recorder, 2);
  assert.ok(!writer.idle, 'a background write is in flight, more lines queued behind it');
  writer.close();
  const written = readFileSync(path, 'utf8');
  const steps = (text: string) => [...replayJournal(parseJournal(text, VERSION))].flatMap((i) => (i.kind === 'step' ? [i.n] : []));
  assert.deepEqual(steps(written), Array.from({ length: sim.events.length + 1 }, (_, n) => n));
  // The late write lands on the same bytes.
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(readFileSync(path, 'utf8'), written);
});

test('a journal of another zd version or format is refused with one line; something else is not a journal', () => {
  const path = join(dir, 'versioned.ndjson');
  const writer = new JournalWriter({ path });
  const recorder = new Recorder({ name: 'unit', app: 'app.js', pid: 1 });
  recorder.record(writer);
  drive(recorder, 0);
  writer.close();
  const text = readFileSync(path, 'utf8');
  const refused = (t: string, code: string, pattern: RegExp) =>
    assert.throws(() => parseJournal(t, VERSION, 'j.ndjson'), (e: unknown) => e instanceof ZdError && e.code === code && e.exitCode === 2 && pattern.test(e.message) && !e.message.includes('\n'));
  refused(text.replace(`"version":"${VERSION}"`, '"version":"0.0.1"'), 'ZD_E_JOURNAL_VERSION', /written by zd 0\.0\.1, and this is zd/);
  refused(text.replace('"format":1', '"format":2'), 'ZD_E_JOURNAL_VERSION', /journal format 2/);
  refused('{"level":30,"msg":"a log file"}\n', 'ZD_E_JOURNAL', /not a zd journal/);
  refused('', 'ZD_E_JOURNAL', /not a zd journal/);
  // A damaged line in the middle ends the replay there, and says where.
  const rows = text.split('\n');
  rows[3] = '{"k":"event"';
  const damaged = parseJournal(rows.join('\n'), VERSION);
  assert.deepEqual(damaged.end, { kind: 'corrupt', line: 4, reason: 'not JSON' });
  assert.equal(damaged.lines.length, 2);
});
