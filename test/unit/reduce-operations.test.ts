// Issue #6 in the reducer: rollout shape (maxSurge / maxUnavailable), staggered retirement, the
// shutdown delay, heartbeats and memory limits. Every step is checked against the invariants.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getWorker, isReady } from '../../src/core/queries.ts';
import { checkedSim, simConfig } from '../helpers/sim.ts';

const drainingIds = (sim: ReturnType<typeof checkedSim>) =>
  sim.logs('ZD_WORKER_DRAINING').map((l) => l.fields!.workerId as number);

describe('rollout shape', () => {
  it('maxSurge 2 boots two replacements at once', () => {
    const sim = checkedSim(simConfig({ workers: 4, maxSurge: 2 }));
    sim.bootAll();
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    assert.deepEqual(sim.alive().filter((p) => p.generation === 2).map((p) => p.slot), [0, 1]);
    assert.equal(sim.readyIds().length, 4, 'capacity untouched while they boot');
  });

  it('maxUnavailable 1 retires one old worker first, never below N − 1 ready', () => {
    const sim = checkedSim(simConfig({ workers: 4, maxSurge: 1, maxUnavailable: 1 }));
    sim.bootAll();
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    assert.deepEqual(drainingIds(sim), [1], 'slot 0 retired first');
    assert.equal(sim.readyIds().length, 3);
    assert.deepEqual(sim.alive().filter((p) => p.generation === 2).map((p) => p.slot), [0, 1]);
  });

  it('does not retire first when a crash already took the pool to its floor', () => {
    const sim = checkedSim(simConfig({ workers: 3, maxSurge: 1, maxUnavailable: 1 }));
    sim.bootAll();
    sim.die(3, 1); // 2 ready = N − 1: no room left
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    assert.deepEqual(drainingIds(sim), []);
    assert.equal(sim.readyIds().length, 2);
  });
});

describe('staggered retirement', () => {
  it('old workers start draining retireStagger apart, serving until their turn', () => {
    const sim = checkedSim(simConfig({ workers: 3, maxSurge: 3, retireStaggerMs: 500 }));
    sim.bootAll();
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    for (const id of [4, 5, 6]) sim.boot(id);
    assert.deepEqual(drainingIds(sim), [1], 'only the first drains at once');
    assert.ok(isReady(getWorker(sim.state, 2)!) && isReady(getWorker(sim.state, 3)!), 'the others still serve');
    sim.advance(499);
    assert.deepEqual(drainingIds(sim), [1]);
    sim.advance(1);
    assert.deepEqual(drainingIds(sim), [1, 2]);
    sim.advance(500);
    assert.deepEqual(drainingIds(sim), [1, 2, 3]);
  });

  it('a stop drains every waiting worker at once', () => {
    const sim = checkedSim(simConfig({ workers: 2, maxSurge: 2, retireStaggerMs: 10_000 }));
    sim.bootAll();
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    sim.boot(3);
    sim.boot(4);
    sim.dispatch({ type: 'signal.term', signal: 'SIGTERM' });
    assert.deepEqual(drainingIds(sim).sort(), [1, 2, 3, 4]);
  });
});

describe('shutdown delay', () => {
  it('keeps serving for shutdownDelay after SIGTERM, then drains; booting workers stop at once', () => {
    const sim = checkedSim(simConfig({ workers: 2, shutdownDelayMs: 1000 }));
    sim.bootAll();
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' }); // worker 3 boots
    sim.dispatch({ type: 'signal.term', signal: 'SIGTERM' });
    assert.equal(sim.state.phase, 'stopping');
    assert.equal(sim.proc(3).connected, false, 'a booting worker never serves: stopped now (disconnected)');
    assert.deepEqual(sim.readyIds(), [1, 2], 'the ready ones keep serving');
    sim.advance(999);
    assert.deepEqual(drainingIds(sim), []);
    sim.advance(1);
    assert.deepEqual(drainingIds(sim), [1, 2]);
  });

  it('a second signal during the delay still kills at once', () => {
    const sim = checkedSim(simConfig({ workers: 2, shutdownDelayMs: 60_000 }));
    sim.bootAll();
    sim.dispatch({ type: 'signal.term', signal: 'SIGINT' });
    sim.dispatch({ type: 'signal.term', signal: 'SIGINT' });
    assert.equal(sim.exitCode, 130);
    assert.deepEqual(sim.alive().map((p) => p.signals.at(-1)), ['SIGKILL', 'SIGKILL']);
  });

  it('a fatal stop does not wait', () => {
    const sim = checkedSim(simConfig({ workers: 1, shutdownDelayMs: 60_000 }));
    sim.die(1, 1);
    assert.equal(sim.exitCode, 1);
  });
});

describe('heartbeat', () => {
  it('pings a ready worker, and replaces one that stops answering, ready before the hung one drains', () => {
    const sim = checkedSim(simConfig({ workers: 1, heartbeatTimeoutMs: 1000, heartbeatIntervalMs: 500 }));
    sim.bootAll();
    sim.advance(500);
    assert.deepEqual(sim.proc(1).messages, [{ type: 'zd:ping', seq: 1 }]);
    sim.dispatch({ type: 'worker.message', workerId: 1, message: { type: 'zd:pong', seq: 1 } });
    sim.advance(500);
    assert.deepEqual(sim.proc(1).messages.at(-1), { type: 'zd:ping', seq: 2 });
    sim.advance(1000); // no answer: blocked
    assert.equal(sim.logs('ZD_WORKER_UNRESPONSIVE').length, 1);
    assert.equal(sim.proc(2).generation, 1, 'the replacement runs the same generation');
    assert.deepEqual(drainingIds(sim), [], 'the hung worker serves what it can until its replacement is ready');
    sim.boot(2);
    assert.deepEqual(drainingIds(sim), [1]);
    assert.equal(sim.state.lastRollout?.kind, 'replace');
    assert.equal(sim.state.generation, 1);
  });
});

describe('memory limit', () => {
  it('replaces a worker over the limit by the ready-before-drain path, one at a time', () => {
    const sim = checkedSim(simConfig({ workers: 3, maxMemoryBytes: 100 }));
    sim.bootAll();
    for (const id of [1, 2, 3]) sim.dispatch({ type: 'worker.memory', workerId: id, rssBytes: 200 });
    assert.equal(sim.logs('ZD_WORKER_OVER_MEMORY').length, 3);
    assert.equal(sim.alive().length, 4, 'one replacement at a time');
    sim.boot(4);
    assert.deepEqual(drainingIds(sim), [1]);
    // The other two were queued while the first replacement ran.
    assert.equal(sim.alive().filter((p) => p.id > 4).length, 1);
    sim.boot(5);
    sim.boot(6);
    assert.deepEqual(drainingIds(sim), [1, 2, 3]);
    assert.equal(sim.readyIds().length, 3);
  });

  it('ignores samples under the limit, and a reload replaces queued ones anyway', () => {
    const sim = checkedSim(simConfig({ workers: 2, maxMemoryBytes: 100 }));
    sim.bootAll();
    sim.dispatch({ type: 'worker.memory', workerId: 1, rssBytes: 50 });
    assert.equal(sim.alive().length, 2);
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    sim.dispatch({ type: 'worker.memory', workerId: 2, rssBytes: 500 });
    assert.equal(sim.logs('ZD_WORKER_OVER_MEMORY').length, 0, 'slot 1 is already in the reload');
  });
});
