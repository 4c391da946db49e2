// Issue #15 in the reducer: a reload's settings (a changed worker count is part of its rollout,
// restored if it aborts) and `zd scale`. Every step is checked against the invariants.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkedSim, simConfig, type Sim } from '../helpers/sim.ts';

const serving = (workers: number, overrides = {}) => {
  const sim = checkedSim(simConfig({ workers, ...overrides }));
  sim.bootAll();
  return sim;
};
const reloadWith = (sim: Sim, workers: number) => sim.dispatch({ type: 'control.reload', config: { ...sim.state.config, workers } });
const gen = (sim: Sim, g: number) => sim.alive().filter((p) => p.generation === g);

describe('a reload that changes the worker count', () => {
  it('growing boots the new slots first, and nothing drains before they are ready', () => {
    const sim = serving(2);
    reloadWith(sim, 3);
    assert.deepEqual(gen(sim, 2).map((p) => p.slot), [2], 'the added slot first');
    assert.equal(sim.logs('ZD_WORKER_DRAINING').length, 0);
    sim.bootAll();
    sim.bootAll();
    sim.bootAll();
    assert.equal(sim.state.lastReload?.outcome, 'done');
    assert.equal(sim.readyIds().length, 3);
    assert.deepEqual(sim.logs('ZD_RELOAD_STARTED')[0]!.fields!.changed, ['workers 2→3']);
  });

  it('shrinking replaces the kept slots and drains the surplus old workers last', () => {
    const sim = serving(3);
    reloadWith(sim, 1);
    assert.deepEqual(gen(sim, 2).map((p) => p.slot), [0]);
    sim.bootAll();
    assert.equal(sim.state.lastReload?.outcome, 'done');
    assert.equal(sim.state.slots.length, 1);
    assert.equal(sim.logs('ZD_WORKER_DRAINING').length, 3);
    assert.equal(sim.logs('ZD_WORKER_CRASHED').length, 0);
  });

  it('an aborted growth restores the old count and drains what it added', () => {
    const sim = serving(1);
    reloadWith(sim, 2);
    const added = gen(sim, 2)[0]!;
    sim.bootAll(); // the added slot's worker is ready: slot 0's replacement boots now
    const replacement = gen(sim, 2).find((p) => p.id !== added.id)!;
    sim.die(replacement.id, 1);
    assert.equal(sim.state.lastReload?.outcome, 'aborted');
    assert.equal(sim.state.config.workers, 1);
    assert.equal(sim.state.slots.length, 1);
    assert.ok(sim.logs('ZD_WORKER_DRAINING').some((l) => l.fields!.workerId === added.id));
  });
});

describe('zd scale', () => {
  it('grows at once with the serving generation, and shrinks by draining, with no crash logged', () => {
    const sim = serving(2);
    sim.dispatch({ type: 'control.scale', workers: 4 });
    assert.equal(sim.alive().length, 4);
    assert.ok(sim.alive().every((p) => p.generation === 1));
    sim.bootAll();
    assert.equal(sim.readyIds().length, 4);
    sim.dispatch({ type: 'control.scale', workers: 1 });
    assert.equal(sim.logs('ZD_WORKER_DRAINING').length, 3);
    assert.equal(sim.logs('ZD_WORKER_CRASHED').length, 0);
    assert.equal(sim.state.counters.crashes, 0);
    assert.equal(sim.state.config.workers, 1);
  });

  it('keeps a serving worker over one that is still booting', () => {
    const sim = checkedSim(simConfig({ workers: 2 }));
    sim.boot(2); // slot 1 serves, slot 0 still boots
    sim.dispatch({ type: 'control.scale', workers: 1 });
    assert.deepEqual(sim.readyIds(), [2]);
    assert.equal(sim.state.slots[0]!.worker, 2);
  });

  it('is refused during a rollout and for a count below 1', () => {
    const sim = serving(2);
    sim.dispatch({ type: 'control.scale', workers: 0 });
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    sim.dispatch({ type: 'control.scale', workers: 3 });
    assert.equal(sim.logs('ZD_SCALE_REFUSED').length, 2);
    assert.equal(sim.state.config.workers, 2);
  });
});
