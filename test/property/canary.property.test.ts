// Issue #14, model level: every reload with a canary, under the same random interleavings as the
// reducer suite (crashes, channel closes, shutdowns during the window, figures that are good,
// failing, slow, idle, silent or lost). Beyond the written invariants, checked after every step:
// every canary gets a verdict or ends with its rollout, and a failed one leaves the old generation
// serving at full capacity once the world settles.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { test } from 'node:test';
import { assertProperty, commandsArb, configArb, RUNS, runScenario } from './model.ts';

const canaryConfig = configArb.map((c) => ({ ...c, canaryMs: 800 }));

test(`every canary reaches a verdict or ends with its rollout; a failed one leaves the old generation at full capacity (${RUNS} runs)`, () => {
  assertProperty(
    fc.property(canaryConfig, commandsArb, (config, commands) => {
      const settled: Array<{ generation: number; ready: number; parked: number }> = [];
      const sim = runScenario(config, commands, (s) => {
        if (s.exitCode !== null) return; // stopped (a SIGTERM after the verdict): nothing serves, by design
        const last = s.state.lastReload;
        if (last?.outcome === 'aborted' && last.reason?.startsWith('canary failed')) {
          const ready = s.state.workers.filter((w) => JSON.stringify(w.machine.value).includes('listening')).length;
          settled.push({ generation: last.generation, ready, parked: s.state.slots.filter((slot) => slot.parked).length });
        }
      });
      const logs = sim.logs();
      const started = logs.filter((l) => l.code === 'ZD_RELOAD_STARTED').map((l) => l.fields!.generation as number);
      for (const generation of started) {
        const judged = logs.some((l) => l.code.startsWith('ZD_CANARY_') && l.code !== 'ZD_CANARY_STARTED' && l.fields!.generation === generation);
        const ended = logs.some((l) => (l.code === 'ZD_RELOAD_ABORTED' || l.code === 'ZD_RELOAD_DONE') && l.fields!.generation === generation);
        const stopped = sim.exitCode !== null;
        assert.ok(judged || ended || stopped, `the canary of generation ${generation} got no verdict and its rollout never ended`);
      }
      for (const s of settled) assert.equal(s.ready + s.parked, sim.state.config.workers, `after the canary of generation ${s.generation} failed`);
    }),
  );
});
