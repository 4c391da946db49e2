// Shrunk counterexamples, kept as named regression tests. Each was found by the property suite
// (test/property/reducer.property.test.ts) against a deliberately broken reducer while building
// issue #3, or by the invariants against a real bug; each must stay fixed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkedSim, simConfig } from '../helpers/sim.ts';
import { answerCanary, settle } from './model.ts';

describe('regressions', () => {
  // Seed runner's bug: a worker replaced on `disconnect` instead of `exit`. The property suite
  // shrank it to: 1 worker, ready, its channel closes → I7 (a live worker in no slot, N+1 alive).
  it('a closed channel is not a crash: no replacement until the worker exits', () => {
    const sim = checkedSim(simConfig({ workers: 1 }));
    sim.bootAll();
    sim.proc(1).connected = false;
    sim.dispatch({ type: 'worker.disconnect', workerId: 1 });
    sim.advance(999); // short of the drain deadline that a lingering disconnected worker gets
    assert.equal(sim.procs.size, 1, 'nothing forked on disconnect');
    assert.deepEqual(sim.proc(1).signals, []);
    sim.die(1, 0);
    sim.advance(100);
    assert.equal(sim.procs.size, 2, 'replaced on exit');
  });

  // Draining the old worker when its replacement is forked rather than ready. Shrunk to:
  // 1 worker, ready, SIGHUP → I1 (ready workers 1 → 0 on signal.hup).
  it('SIGHUP with one worker keeps it serving until the replacement is ready', () => {
    const sim = checkedSim(simConfig({ workers: 1 }));
    sim.bootAll();
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    assert.deepEqual(sim.readyIds(), [1]);
    assert.deepEqual(sim.proc(1).messages, []);
  });

  // Found by I7 in the scenario tests: a worker that missed its ready deadline was still counted
  // by its slot until the kill escalation reaped it, so a rollout aborted (and a slot respawned)
  // only seconds after the deadline.
  it('a missed ready deadline aborts the rollout at the deadline, not after the kill escalation', () => {
    const sim = checkedSim(simConfig({ workers: 1, readyTimeoutMs: 1000, killTimeoutMs: 500 }));
    sim.bootAll();
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    sim.advance(1000);
    assert.equal(sim.state.lastRollout?.outcome, 'aborted');
    assert.equal(sim.proc(2).alive, true, 'still being stopped');
  });

  // Found by the canary property in CI: the only worker left was an aborted canary whose
  // predecessor had crash-looped (its slot parked). It drained at the abort, and nobody served.
  it('an aborted canary in a parked slot serves on until the serving generation is back', () => {
    const sim = checkedSim(simConfig({ workers: 1, canaryMs: 800, maxRestarts: 0, canaryInconclusive: 'abort' }));
    sim.bootAll();
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    sim.die(1, 0); // the old worker exits unasked: its slot parks (maxRestarts 0)
    sim.bootAll(); // the canary is ready and serves alone
    assert.deepEqual(sim.readyIds(), [2]);
    sim.advance(800 + 5000); // its window, then no figures: inconclusive, the reload aborts
    assert.equal(sim.state.lastReload?.outcome, 'aborted');
    assert.ok(sim.readyIds().includes(2), 'the canary still serves: nothing else does yet');
    sim.bootAll(); // the slot's serving generation, restored ready first
    sim.advance(3000);
    const gens = sim.state.workers.filter((w) => sim.readyIds().includes(w.id)).map((w) => w.generation);
    assert.deepEqual(gens, [1], 'generation 1 serves again; the canary drained once it was covered');
  });

  // Found by the canary property (about 1 in 10,000 sequences): a reload aborted on an
  // inconclusive canary, with 1 worker and --max-unavailable 1, let its canary drain (the restored
  // settings allow no worker during a rollout) while a queued reload to 2 workers started in the
  // same step. I1 judged the step by the new reload's floor, not by the settings the abort restored.
  it('a reload aborted in the step that starts the queued one is judged by the settings it restored', () => {
    const sim = checkedSim(simConfig({ workers: 1, canaryMs: 800, maxRestarts: 1, maxSurge: 0, maxUnavailable: 1, minReadyMs: 0, canaryInconclusive: 'abort' }));
    sim.bootAll();
    sim.die(1, 0); // the worker exits unasked; its respawn waits for its backoff
    sim.dispatch({ type: 'control.reload', config: { ...sim.state.config, workers: 2 } });
    sim.dispatch({ type: 'control.reload', config: { ...sim.state.config, workers: 2 } }); // queued
    sim.answerCollect = (s) => answerCanary(s, 'silent');
    settle(sim); // every check after every step passes
    assert.equal(sim.state.lastReload?.outcome, 'aborted');
  });

  // Found by the reducer property in CI: a reload aborted after slot 0 took the new code; the
  // replacement that was to restore slot 0 missed its ready deadline, and nothing tried again. The
  // slot kept the aborted code's worker, which gets no connection: a slot lost until the next reload.
  it('a slot whose restore failed is restored again after its back-off, and gives up only after --max-restarts', () => {
    const sim = checkedSim(simConfig({ workers: 2, maxRestarts: 1, maxSurge: 1, maxUnavailable: 0 }));
    sim.bootAll();
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    sim.bootAll(); // slot 0's replacement (generation 2) is ready; slot 1's is forked
    sim.advance(1000); // slot 1's replacement misses its ready deadline: the reload aborts
    assert.equal(sim.state.lastReload?.outcome, 'aborted');
    const stale = sim.state.slots[0]!.worker!;
    assert.equal(sim.state.workers.find((w) => w.id === stale)?.generation, 2, 'slot 0 runs the aborted code');
    sim.advance(1000); // the restore's replacement misses its deadline too
    assert.equal(sim.logs('ZD_RESTORE_RETRY').length, 1);
    assert.equal(sim.state.slots[0]!.worker, stale, 'the aborted code serves on meanwhile');
    const retry = sim.logs('ZD_RESTORE_RETRY')[0]!.fields as { retryInMs: number };
    sim.advance(retry.retryInMs); // its back-off: the restore starts again
    assert.equal(sim.state.rollout?.context.kind, 'replace');
    sim.bootAll();
    sim.advance(3000);
    const slot0 = sim.state.workers.find((w) => w.id === sim.state.slots[0]!.worker);
    assert.equal(slot0?.generation, 1, 'slot 0 runs the serving generation again');
    assert.equal(sim.logs('ZD_RESTORE_FAILED').length, 0);
  });

  it('a restore that keeps failing gives up after --max-restarts, and says so', () => {
    const sim = checkedSim(simConfig({ workers: 2, maxRestarts: 1, maxSurge: 1, maxUnavailable: 0 }));
    sim.bootAll();
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    sim.bootAll();
    sim.advance(1000); // the reload aborts; slot 0 is on the aborted code
    for (let i = 0; i < 5; i++) sim.advance(2000); // every restore misses its ready deadline
    assert.equal(sim.logs('ZD_RESTORE_RETRY').length, 1);
    assert.equal(sim.logs('ZD_RESTORE_FAILED').length, 1);
    assert.ok(!sim.state.rollout, 'no restore runs any more');
    assert.equal([...sim.timers.keys()].filter((id) => id.startsWith('restore:')).length, 0);
  });
});
