// Issue #10 in the reducer: each generation pinned to its release, readiness where the current
// generation serves, the min-ready period, and rollback. Every step is checked against the invariants.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Effect } from '../../src/core/effects.ts';
import type { Release } from '../../src/core/events.ts';
import { init } from '../../src/core/reduce.ts';
import { getWorker, rollbackTarget, valueName } from '../../src/core/queries.ts';
import { checkedSim, simConfig, type Sim } from '../helpers/sim.ts';

const r = (n: number): Release => ({ app: `/srv/releases/${n}/app.js`, cwd: `/srv/releases/${n}`, args: [] });
const forks = (sim: Sim) => sim.effects.filter((e): e is Extract<Effect, { type: 'fork' }> => e.type === 'fork');
const stateOf = (sim: Sim, id: number) => valueName(getWorker(sim.state, id)!.machine.value);
const listen = (sim: Sim, id: number, ...addresses: string[]) => {
  sim.dispatch({ type: 'worker.online', workerId: id });
  for (const address of addresses) sim.dispatch({ type: 'worker.listening', workerId: id, address });
};

/** N workers of generation 1 on `addresses`, from release 1. */
function serving(workers: number, addresses: string[], overrides = {}) {
  const sim = checkedSim(simConfig({ workers, ...overrides }));
  for (let id = 1; id <= workers; id++) listen(sim, id, ...addresses);
  assert.equal(sim.readyIds().length, workers);
  return sim;
}

describe('releases', () => {
  it('init pins generation 1 to the release it is given, and every fork carries it', () => {
    const step = init(simConfig({ workers: 2 }), r(1));
    const forked = step.effects.filter((e) => e.type === 'fork');
    assert.deepEqual(forked.map((e) => (e as { release: Release }).release), [r(1), r(1)]);
  });

  it('a reload runs the release it was asked with; a crash respawn after an aborted rollout runs its own generation’s', () => {
    const sim = serving(2, [':3000']);
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP', release: r(2) });
    const replacement = forks(sim).at(-1)!;
    assert.deepEqual(replacement.release, r(2));
    assert.equal(replacement.generation, 2);
    sim.die(replacement.workerId, 1); // the new release is broken: the rollout aborts
    assert.equal(sim.state.lastReload?.outcome, 'aborted');
    sim.die(1, null, 'SIGKILL'); // an old worker crashes afterwards
    sim.advance(1000);
    const respawn = forks(sim).at(-1)!;
    assert.equal(respawn.generation, 1, 'the old generation respawns');
    assert.notDeepEqual(respawn.release, r(2));
  });

  it('a reload with a release that could not be resolved is refused and nothing is forked', () => {
    const sim = serving(1, [':3000']);
    const before = forks(sim).length;
    sim.dispatch({ type: 'control.reload', release: { problem: 'the app /srv/current/app.js cannot be found' } });
    assert.equal(forks(sim).length, before);
    assert.match(sim.logs('ZD_RELOAD_REFUSED')[0]!.msg, /cannot be found; the running generation serves on/);
    assert.equal(sim.state.counters.reloadsRefused, 1);
  });

  it('a queued reload runs the newest release asked for', () => {
    const sim = serving(1, [':3000']);
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP', release: r(2) });
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP', release: r(3) });
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP', release: r(4) });
    listen(sim, 2, ':3000');
    assert.deepEqual(forks(sim).at(-1)!.release, r(4));
    assert.equal(forks(sim).at(-1)!.generation, 3);
  });
});

describe('readiness where the current generation serves', () => {
  it('a replacement of a two-server app is ready only once it listens on both, in either order', () => {
    const sim = serving(1, [':3000', ':9100']);
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    listen(sim, 2, ':9100');
    assert.deepEqual(sim.readyIds(), [1], 'the admin port alone is not the service');
    sim.dispatch({ type: 'worker.listening', workerId: 2, address: ':3000' });
    assert.deepEqual(sim.readyIds(), [2]);
    assert.equal(sim.state.lastReload?.outcome, 'done');
  });

  it('an extra server is fine', () => {
    const sim = serving(1, [':3000']);
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    listen(sim, 2, ':9100', ':3000');
    assert.equal(sim.state.lastReload?.outcome, 'done');
  });

  it('one that never listens where its predecessor does fails at the ready deadline, naming both', () => {
    const sim = serving(1, [':3000', ':9100']);
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    listen(sim, 2, ':9100', ':4000');
    sim.advance(1000);
    const reason = sim.state.lastReload?.reason ?? '';
    assert.equal(sim.state.lastReload?.outcome, 'aborted');
    assert.match(reason, /listens on :9100, :4000 but not on :3000/);
    assert.deepEqual(sim.readyIds(), [1]);
  });

  it('the first generation is ready at its first listening', () => {
    const sim = checkedSim(simConfig({ workers: 1 }));
    listen(sim, 1, ':9100');
    assert.deepEqual(sim.readyIds(), [1]);
  });
});

describe('min-ready', () => {
  it('the predecessor serves on until the replacement has stayed up for the period', () => {
    const sim = serving(1, [':3000'], { minReadyMs: 500 });
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    listen(sim, 2, ':3000');
    assert.equal(sim.logs('ZD_WORKER_DRAINING').length, 0);
    sim.advance(499);
    assert.equal(sim.logs('ZD_WORKER_DRAINING').length, 0);
    sim.advance(1);
    assert.equal(sim.logs('ZD_WORKER_DRAINING').length, 1);
    assert.equal(sim.state.lastReload?.outcome, 'done');
  });

  it('an exit within the period aborts the rollout, even with code 0, and is no crash of the slot', () => {
    const sim = serving(2, [':3000'], { minReadyMs: 500 });
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    listen(sim, 3, ':3000');
    sim.advance(100);
    sim.die(3, 0);
    assert.equal(sim.state.slots[0]!.failures, 0, 'a failed replacement is not a crash of the slot');
    assert.equal(sim.state.lastReload?.outcome, 'aborted');
    // Cluster reports the closed channel first; the exit's code follows in ZD_WORKER_EXITED.
    assert.match(sim.state.lastReload?.reason ?? '', /went away \(its IPC channel closed\) within its 500ms min-ready period/);
    assert.equal(sim.logs('ZD_WORKER_EXITED').at(-1)!.fields!.outcome, 'bootFailed');
    assert.deepEqual(sim.readyIds(), [1, 2]);
    assert.equal(sim.logs('ZD_WORKER_DRAINING').length, 0);
  });

  // Issue #22, "the defaults cost nothing": min-ready proves the generation, not each worker.
  it('once the first replacement has served out the period, a later slot’s replacement counts as soon as it listens', () => {
    const sim = serving(3, [':3000'], { minReadyMs: 500 });
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    listen(sim, 4, ':3000');
    assert.equal(stateOf(sim, 4), 'warming');
    sim.advance(500);
    assert.equal(sim.logs('ZD_WORKER_DRAINING').length, 1);
    listen(sim, 5, ':3000');
    assert.equal(stateOf(sim, 5), 'listening.fresh', 'the second slot’s replacement does not warm');
    assert.equal(sim.logs('ZD_WORKER_DRAINING').length, 2, 'its predecessor drains at once');
    listen(sim, 6, ':3000');
    assert.equal(sim.state.lastReload?.outcome, 'done');
    assert.equal(sim.now, 500, 'one min-ready period for the whole reload');
  });

  it('a generation that dies within the period on its first replacements aborts before any old worker drains (surge 2)', () => {
    const sim = serving(3, [':3000'], { minReadyMs: 500, maxSurge: 2 });
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    listen(sim, 4, ':3000');
    listen(sim, 5, ':3000');
    assert.deepEqual([stateOf(sim, 4), stateOf(sim, 5)], ['warming', 'warming'], 'both started before any proof');
    sim.advance(300);
    sim.die(5, 0);
    assert.equal(sim.state.lastReload?.outcome, 'aborted');
    assert.match(sim.state.lastReload?.reason ?? '', /within its 500ms min-ready period/);
    assert.equal(sim.logs('ZD_WORKER_DRAINING').length, 0);
    assert.deepEqual(sim.readyIds(), [1, 2, 3]);
  });

  it('with --ready message too, the first replacement warms and dying within the period aborts', () => {
    const sim = checkedSim(simConfig({ workers: 2, minReadyMs: 500, readyOn: 'message' }));
    for (const id of [1, 2]) {
      listen(sim, id, ':3000');
      sim.dispatch({ type: 'worker.message', workerId: id, message: 'ready' });
    }
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    listen(sim, 3, ':3000');
    sim.dispatch({ type: 'worker.message', workerId: 3, message: 'ready' });
    assert.equal(stateOf(sim, 3), 'warming');
    sim.advance(200);
    sim.die(3, 1);
    assert.equal(sim.state.lastReload?.outcome, 'aborted');
    assert.equal(sim.logs('ZD_WORKER_DRAINING').length, 0);
  });

  it('a crash respawn during a reload does not warm, and the rollout adopts it once the generation is proven', () => {
    const sim = serving(3, [':3000'], { minReadyMs: 500 });
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' }); // worker 4 replaces slot 0
    listen(sim, 4, ':3000'); // it warms; slot 1's replacement (worker 5) boots beside it
    sim.die(3, 1); // slot 2's old worker crashes while worker 4 warms
    sim.advance(100); // its respawn (worker 6) loads the new generation
    listen(sim, 6, ':3000');
    assert.equal(stateOf(sim, 6), 'listening.fresh', 'a crash respawn never warms');
    assert.equal(stateOf(sim, 4), 'warming');
    sim.advance(400);
    // Proven: slot 1's replacement does not warm, and slot 2's respawn is adopted as it stands.
    listen(sim, 5, ':3000');
    assert.equal(stateOf(sim, 5), 'listening.fresh');
    assert.equal(sim.state.lastReload?.outcome, 'done');
  });

  // Issue #22 part 3: the proof overlaps the next boot, so a 2-worker reload costs about
  // max(boot, min-ready) + boot rather than boot + min-ready + boot.
  it('while the first replacement warms, the next slot’s boots beside it; no old worker drains before the proof', () => {
    const sim = serving(2, [':3000'], { minReadyMs: 500 });
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    assert.deepEqual(forks(sim).map((f) => f.workerId), [1, 2, 3], 'one replacement at a time while nothing listens');
    listen(sim, 3, ':3000');
    assert.equal(stateOf(sim, 3), 'warming');
    assert.deepEqual(forks(sim).map((f) => f.workerId), [1, 2, 3, 4], 'slot 1’s replacement is forked while worker 3 warms');
    assert.equal(sim.state.slots[1]!.next, 4);
    sim.advance(200);
    listen(sim, 4, ':3000');
    assert.equal(stateOf(sim, 4), 'warming', 'unproven: it does not take its slot');
    assert.equal(sim.logs('ZD_WORKER_DRAINING').length, 0, 'nothing old drains before the proof');
    assert.deepEqual(sim.readyIds(), [1, 2]);
    sim.advance(300); // worker 3 has served out the period: both replacements take their slots at once
    assert.deepEqual(sim.readyIds(), [3, 4]);
    assert.equal(sim.logs('ZD_WORKER_DRAINING').length, 2);
    assert.equal(sim.state.lastReload?.outcome, 'done');
    assert.equal(sim.now, 500, 'one min-ready period, overlapping the second boot');
  });

  it('at most one replacement boots beyond the room while the generation is unproven', () => {
    const sim = serving(3, [':3000'], { minReadyMs: 500 });
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    listen(sim, 4, ':3000');
    listen(sim, 5, ':3000');
    assert.deepEqual([stateOf(sim, 4), stateOf(sim, 5)], ['warming', 'warming']);
    assert.deepEqual(forks(sim).map((f) => f.workerId), [1, 2, 3, 4, 5], 'no third replacement before the proof');
    sim.advance(500);
    assert.deepEqual(forks(sim).map((f) => f.workerId), [1, 2, 3, 4, 5, 6]);
    listen(sim, 6, ':3000');
    assert.equal(stateOf(sim, 6), 'listening.fresh');
    assert.equal(sim.state.lastReload?.outcome, 'done');
  });

  it('the first replacement dying within its period aborts, stops the one beside it, and both old workers serve on', () => {
    for (const secondListens of [false, true]) {
      const sim = serving(2, [':3000'], { minReadyMs: 500 });
      sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
      listen(sim, 3, ':3000');
      if (secondListens) listen(sim, 4, ':3000');
      sim.advance(300);
      sim.die(3, 0);
      assert.equal(sim.state.lastReload?.outcome, 'aborted');
      assert.match(sim.state.lastReload?.reason ?? '', /within its 500ms min-ready period/);
      assert.equal(stateOf(sim, 4), 'stopping', `the second replacement is stopped (${secondListens ? 'warming' : 'booting'})`);
      assert.equal(sim.state.slots[1]!.next, null);
      assert.equal(sim.logs('ZD_WORKER_DRAINING').length, 0);
      assert.deepEqual(sim.readyIds(), [1, 2]);
    }
  });

  it('a replacement of the code a slot already serves (memory, heartbeat) does not warm', () => {
    const sim = serving(2, [':3000'], { minReadyMs: 500, maxMemoryBytes: 100 * 1024 * 1024 });
    sim.dispatch({ type: 'worker.memory', workerId: 1, rssBytes: 200 * 1024 * 1024 });
    listen(sim, 3, ':3000');
    assert.equal(stateOf(sim, 3), 'listening.fresh');
    assert.equal(sim.logs('ZD_WORKER_DRAINING').length, 1);
    assert.equal(sim.state.lastRollout?.outcome, 'done');
  });

  it('crash respawns and the first generation do not wait', () => {
    const sim = serving(2, [':3000'], { minReadyMs: 500 });
    sim.die(1, 1);
    sim.advance(100);
    listen(sim, 3, ':3000');
    assert.deepEqual(sim.readyIds(), [2, 3]);
  });
});

describe('rollback', () => {
  it('goes back to the previous completed generation’s release, as a new generation', () => {
    const sim = checkedSim(simConfig({ workers: 1 }));
    // The sim's init has its own placeholder release; reload to r(2), then r(3).
    listen(sim, 1, ':3000');
    assert.deepEqual(rollbackTarget(sim.state), { refused: 'there is no previous generation to go back to (generation 1 is the first that served)' });
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP', release: r(2) });
    listen(sim, 2, ':3000');
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP', release: r(3) });
    listen(sim, 3, ':3000');
    sim.dispatch({ type: 'control.rollback' });
    const fork = forks(sim).at(-1)!;
    assert.equal(fork.generation, 4);
    assert.deepEqual(fork.release, r(2));
    assert.equal(sim.logs('ZD_RELOAD_STARTED').at(-1)!.fields!.rollbackOf, 2);
    listen(sim, 4, ':3000');
    // Rolling back again returns to where it was.
    sim.dispatch({ type: 'control.rollback' });
    assert.deepEqual(forks(sim).at(-1)!.release, r(3));
  });

  it('is refused while a rollout runs, with nothing queued', () => {
    const sim = serving(1, [':3000']);
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP', release: r(2) });
    listen(sim, 2, ':3000');
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP', release: r(3) });
    sim.dispatch({ type: 'control.rollback' });
    assert.match(sim.logs('ZD_ROLLBACK_REFUSED')[0]!.msg, /a rollout to generation 3 is running/);
    assert.equal(sim.state.reloadQueued, false);
  });
});
