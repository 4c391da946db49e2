// Issue #16: the determinism the flight recorder rests on, as a property. For random interleavings
// of signals, crashes, boots, timer firings and late IPC (model.ts's commands, through the
// simulated world), what the recorder writes replays to the same effects and the same states,
// step by step: from init (the whole ring), from a snapshot (a ring that dropped its beginning),
// from each file of a journal rotated at a few kilobytes, and up to the cut of a journal cut
// mid-line.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import type { Effect } from '../../src/core/effects.ts';
import type { PrimaryEvent, Release } from '../../src/core/events.ts';
import type { PrimaryState } from '../../src/core/state.ts';
import { parseJournal } from '../../src/record/format.ts';
import { Recorder } from '../../src/record/recorder.ts';
import { replayJournal, type ReplayStep } from '../../src/record/replay.ts';
import { JournalWriter } from '../../src/record/writer.ts';
import { VERSION } from '../../src/version.ts';
import { Sim } from '../helpers/sim.ts';
import { assertProperty, commandsArb, configArb, RUNS, settle } from './model.ts';

const dir = mkdtempSync(join(tmpdir(), 'zd-replay-property-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The release init() gets when none is given (the simulation's). */
const SIM_RELEASE: Release = { app: 'app.js', cwd: '.', args: [] };

interface LiveStep {
  n: number;
  event: PrimaryEvent | null;
  effects: Effect[];
  state: PrimaryState;
}

/** What a step decided, as the journal can carry it: JSON. */
const plain = (value: unknown) => JSON.parse(JSON.stringify(value)) as unknown;

function sameSteps(live: LiveStep[], replayed: ReplayStep[], what: string): void {
  assert.ok(replayed.length > 0 || live.length === 0, `${what}: nothing replayed`);
  const byN = new Map(live.map((step) => [step.n, step]));
  for (const step of replayed) {
    const original = byN.get(step.n);
    assert.ok(original, `${what}: step ${step.n} was never taken live`);
    assert.deepEqual(plain(step.event), plain(original.event), `${what}: step ${step.n}'s event`);
    assert.deepEqual(plain(step.effects), plain(original.effects), `${what}: step ${step.n}'s effects (${step.event?.type ?? 'init'})`);
    assert.deepEqual(plain(step.state), plain(original.state), `${what}: the state after step ${step.n} (${step.event?.type ?? 'init'})`);
  }
}

function replaySteps(text: string): { steps: ReplayStep[]; end: string } {
  const journal = parseJournal(text, VERSION);
  const steps = [...replayJournal(journal)].filter((item): item is ReplayStep => item.kind === 'step');
  return { steps, end: journal.end.kind };
}

let run = 0;

const runs = Math.min(RUNS, 300);

test(`recording then replaying gives the same effects and states, step by step (${runs} runs)`, () => {
  assertProperty(
    fc.property(configArb, commandsArb, fc.integer({ min: 2, max: 30 }), fc.double({ min: 0, max: 1, noNaN: true }), (config, commands, ringSize, cutAt) => {
      const file = join(dir, `journal-${run++}.ndjson`);
      const live: LiveStep[] = [];
      let sim: Sim | null = null;
      const clock = () => ({ t: sim?.now ?? 0, at: 1_700_000_000_000 + (sim?.now ?? 0) });
      const whole = new Recorder({ name: 'sim', app: 'app.js', pid: 1, ring: 100_000, clock, stderrTail: (id) => `stderr of worker ${id}` });
      const ring = new Recorder({ name: 'sim', app: 'app.js', pid: 1, ring: ringSize, ringChunk: Math.max(1, Math.floor(ringSize / 3)), clock, stderrTail: (id) => `tail ${id}` });
      const rotating = new Recorder({ name: 'sim', app: 'app.js', pid: 1, clock });
      const writer = new JournalWriter({ path: file, maxBytes: 6 * 1024, maxPendingBytes: 1024 * 1024 });
      rotating.record(writer);
      const recorders = [whole, ring, rotating];
      for (const r of recorders) r.start(config, SIM_RELEASE);
      let n = 0;
      sim = new Sim(config, (_before, event, step) => {
        live.push({ n: event === null ? 0 : ++n, event, effects: step.effects, state: step.state });
        for (const r of recorders) r.step(step.state, event, step.effects, step.transitions);
      });
      fc.modelRun(() => ({ model: {}, real: sim! }), commands);
      settle(sim);
      if (sim.exitCode === null) {
        sim.dispatch({ type: 'signal.term', signal: 'SIGTERM' });
        settle(sim);
      }
      writer.close();

      // The whole run, from init.
      const full = whole.dump('test')!;
      assert.equal(full.from, 'init');
      const replayed = replaySteps(full.text);
      assert.equal(replayed.steps.length, live.length, 'every step replayed');
      sameSteps(live, replayed.steps, 'the whole ring');
      // The shell's stderr tails ride along with the step whose log lines they were attached to.
      for (const step of replayed.steps) {
        for (const effect of step.effects) {
          if (effect.type === 'log' && effect.stderrOf !== undefined) assert.equal(step.stderr?.[effect.stderrOf], `stderr of worker ${effect.stderrOf}`);
        }
      }

      // A ring that kept only its last events starts from a snapshot, and replays them.
      const tail = ring.dump('test')!;
      const fromTail = replaySteps(tail.text);
      const chunk = Math.max(1, Math.floor(ringSize / 3));
      // The ring keeps whole chunks: it forgets init once it holds more than that many.
      assert.equal(tail.from, live.length - 1 > (Math.ceil(ringSize / chunk) + 1) * chunk ? 'snapshot' : 'init');
      assert.equal(fromTail.steps[fromTail.steps.length - 1]?.n, live.length - 1, 'the ring ends at the last step');
      sameSteps(live, fromTail.steps, 'the ring');

      // The rotated journal: each file replays on its own; together they end at the last step.
      const current = readFileSync(file, 'utf8');
      let previousSteps: ReplayStep[] = [];
      if (writer.stats.rotations > 0) {
        previousSteps = replaySteps(readFileSync(`${file}.1`, 'utf8')).steps;
        sameSteps(live, previousSteps, 'FILE.1');
      }
      const currentSteps = replaySteps(current).steps;
      sameSteps(live, currentSteps, 'FILE');
      assert.equal(currentSteps[currentSteps.length - 1]?.n ?? previousSteps[previousSteps.length - 1]?.n, live.length - 1);
      if (previousSteps.length > 0) assert.equal(currentSteps[0]!.n, previousSteps[previousSteps.length - 1]!.n + 1, 'FILE goes on where FILE.1 ends');

      // Cut anywhere inside its last line, the journal replays up to that line, and says it was cut.
      const lastLine = current.lastIndexOf('\n', current.length - 2) + 1;
      const cut = lastLine + Math.floor(cutAt * (current.length - 2 - lastLine));
      if (lastLine > 0 && cut > lastLine) {
        const partial = replaySteps(current.slice(0, cut));
        assert.equal(partial.end, 'cut');
        assert.deepEqual(partial.steps.map((s) => s.n), currentSteps.slice(0, -1).map((s) => s.n));
      }
      rmSync(file, { force: true });
      rmSync(`${file}.1`, { force: true });
    }),
    { numRuns: runs },
  );
});
