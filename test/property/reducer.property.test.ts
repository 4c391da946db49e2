// Issue #3, model level: random interleavings of signals, crashes, boot failures, channel closes,
// timer firings (in and out of deadline order) and late IPC, driven through the pure reducer.
// The written invariants (src/core/invariants.ts) are checked after every step by checkedSim;
// convergence and a clean exit are checked once the world settles.
//
// A failure prints fast-check's seed, path and shrunk command list. Replay it with
//   ZD_PROPERTY_SEED=<seed> ZD_PROPERTY_PATH=<path> node test/run.js property/reducer
import fc from 'fast-check';
import { test } from 'node:test';
import { assertProperty, commandsArb, configArb, RUNS, runScenario } from './model.ts';

test(`invariants hold after every step, and the pool converges and exits cleanly (${RUNS} runs)`, () => {
  assertProperty(
    fc.property(configArb, commandsArb, (config, commands) => {
      runScenario(config, commands);
    }),
  );
});
