// Issue 21, part 3: the core rebuilt in layers behaves exactly as the reducer before it. The frozen
// copy in test/differential/reducer-before/ (commit 477fff1) runs beside the current one over the
// property model's random worlds (model.ts: signals, crashes, boots, channel closes, timers in and
// out of order, late IPC, canaries, scaling), each fed the same events; every step must give the
// same effects in the same order, the same machine transitions and the same state.
//
// CI runs ZD_DIFF_STEPS (20,000 by default) reductions; `ZD_DIFF_STEPS=100000 node test/run.js
// property/differential` runs a deep one. A failure prints the seed and the shrunk commands.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import type { CoreConfig } from '../../src/core/config.ts';
import type { PrimaryEvent } from '../../src/core/events.ts';
import type { Step } from '../../src/core/reduce.ts';
import * as before from '../differential/reducer-before/src/core/reduce.ts';
import { Sim } from '../helpers/sim.ts';
import { assertProperty, commandArbs, commandsArb, configArb, replay, settle } from './model.ts';

const STEPS = Number(process.env.ZD_DIFF_STEPS ?? 20_000);

type OldStep = ReturnType<typeof before.reduce>;

let steps = 0;

function same(what: string, event: PrimaryEvent | null, old: unknown, now: unknown): void {
  if (isDeepStrictEqual(old, now)) return;
  assert.deepStrictEqual(now, old, `${what} differ after ${event === null ? 'init' : JSON.stringify(event)}`);
}

/** A world driven by the current reducer, with the old one fed every event beside it. */
function differentialSim(config: CoreConfig): Sim {
  let old: OldStep | null = null;
  return new Sim(config, (_before, event, step: Step) => {
    const next: OldStep = event === null ? before.init(config) : before.reduce(old!.state, event as Parameters<typeof before.reduce>[1]);
    same('effects', event, next.effects, step.effects);
    same('transitions', event, next.transitions, step.transitions);
    same('states', event, next.state, step.state);
    old = next;
    steps += 1;
  });
}

/** The model's worlds, and some longer ones, which reach deeper states (more reloads queued behind others, slots parked). */
const worlds = fc.oneof(commandsArb, fc.commands(commandArbs, { maxCommands: 300 }));

test(`the reducer in layers gives the old reducer's effects, transitions and states, step by step (${STEPS.toLocaleString('en-US')} steps)`, () => {
  const property = fc.property(configArb, worlds, (config, commands) => {
    const sim = differentialSim(config);
    fc.modelRun(() => ({ model: {}, real: sim }), commands);
    settle(sim);
    // The stop path too: every world ends with SIGTERM, then settles to its exit.
    if (sim.exitCode === null) {
      sim.dispatch({ type: 'signal.term', signal: 'SIGTERM' });
      settle(sim);
    }
  });
  if (replay.seed !== undefined) {
    assertProperty(property);
    return;
  }
  while (steps < STEPS) assertProperty(property, { numRuns: 100 });
  process.stdout.write(`# differential: ${steps.toLocaleString('en-US')} steps, old and new reducers agree\n`);
});
