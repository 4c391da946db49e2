// The primary's reducer, scenario by scenario, in a simulated world with a fake clock. Every step
// of every scenario is also checked against the written invariants (src/core/invariants.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { reduce } from '../../src/core/reduce.ts';
import { checkedSim, simConfig } from '../helpers/sim.ts';

const codes = (sim: ReturnType<typeof checkedSim>) => sim.logs().map((l) => l.code);

describe('start', () => {
  it('forks N workers of generation 1 and announces ZD_READY once all listen', () => {
    const sim = checkedSim(simConfig({ workers: 3 }));
    assert.deepEqual(sim.alive().map((p) => [p.slot, p.generation]), [[0, 1], [1, 1], [2, 1]]);
    assert.equal(sim.state.phase, 'starting');
    sim.boot(1);
    assert.equal(sim.state.phase, 'running');
    assert.ok(!codes(sim).includes('ZD_READY'));
    sim.boot(2);
    sim.boot(3);
    assert.equal(codes(sim).filter((c) => c === 'ZD_READY').length, 1);
  });

  it('readiness by message: listening alone is not ready', () => {
    const sim = checkedSim(simConfig({ workers: 1, readyOn: 'message' }));
    sim.boot(1);
    assert.deepEqual(sim.readyIds(), []);
    sim.dispatch({ type: 'worker.message', workerId: 1, message: { hello: 1 } });
    assert.deepEqual(sim.readyIds(), []);
    sim.dispatch({ type: 'worker.message', workerId: 1, message: 'ready' });
    assert.deepEqual(sim.readyIds(), [1]);
  });

  it('exits 1 with the app error when no first-generation worker ever gets ready', () => {
    const sim = checkedSim(simConfig({ workers: 2 }));
    sim.die(1, 1);
    assert.equal(sim.exitCode, null, 'one failure of two is not yet fatal');
    sim.die(2, 1);
    assert.equal(sim.exitCode, 1);
    const fatal = sim.logs('ZD_BOOT_FAILED')[0]!;
    assert.match(fatal.msg, /exited with code 1/);
    assert.equal(fatal.stderrOf, 2, 'the shell is asked to quote the app stderr');
    assert.equal(sim.effects.filter((e) => e.type === 'fork').length, 2, 'no respawn during the first boot');
  });

  it('an app that never listens hits the ready deadline: disconnect, SIGTERM, SIGKILL, exit 1', () => {
    const sim = checkedSim(simConfig({ workers: 1, readyTimeoutMs: 1000, drainTimeoutMs: 500, killTimeoutMs: 500 }));
    sim.dispatch({ type: 'worker.online', workerId: 1 });
    sim.advance(999);
    assert.equal(sim.proc(1).connected, true);
    sim.advance(1);
    assert.equal(sim.proc(1).connected, false, 'disconnected at the ready deadline');
    assert.deepEqual(sim.proc(1).signals, []);
    sim.advance(500);
    assert.deepEqual(sim.proc(1).signals, ['SIGTERM']);
    sim.advance(500);
    assert.deepEqual(sim.proc(1).signals, ['SIGTERM', 'SIGKILL']);
    sim.die(1, null, 'SIGKILL');
    assert.equal(sim.exitCode, 1);
    assert.match(sim.logs('ZD_BOOT_FAILED')[0]!.msg, /not ready within 1000ms/);
  });

  it('a partial first boot serves with the ready workers and respawns the failed slot after backoff', () => {
    const sim = checkedSim(simConfig({ workers: 2 }));
    sim.die(1, 1);
    sim.boot(2);
    assert.equal(sim.exitCode, null);
    sim.advance(99);
    assert.equal(sim.procs.size, 2);
    sim.advance(1);
    const respawn = sim.proc(3);
    assert.deepEqual([respawn.slot, respawn.generation], [0, 1]);
  });
});

describe('rolling restart', () => {
  function running(workers = 2) {
    const sim = checkedSim(simConfig({ workers }));
    sim.bootAll();
    return sim;
  }

  it('forks a replacement, drains the old worker only once it is ready, one slot at a time', () => {
    const sim = running(2);
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    assert.deepEqual(sim.alive().map((p) => p.id), [1, 2, 3], 'one surge worker');
    assert.deepEqual(sim.proc(1).messages, [], 'old worker untouched while the new one boots');
    sim.boot(3);
    assert.deepEqual(sim.proc(1).messages, [{ type: 'zd:shutdown' }]);
    assert.equal(sim.proc(1).connected, false, 'and disconnected');
    assert.equal(sim.proc(4).generation, 2, 'next slot started');
    sim.die(1, 0);
    sim.boot(4);
    sim.die(2, 0);
    assert.deepEqual(sim.state.lastRollout, { generation: 2, outcome: 'done', reason: null, kind: 'reload' });
    assert.deepEqual(sim.readyIds(), [3, 4]);
    assert.ok(codes(sim).includes('ZD_RELOAD_DONE'));
  });

  it('escalates a worker that will not drain: SIGTERM at the drain deadline, SIGKILL after', () => {
    const sim = running(1);
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    sim.boot(2);
    sim.advance(999);
    assert.deepEqual(sim.proc(1).signals, []);
    sim.advance(1);
    assert.deepEqual(sim.proc(1).signals, ['SIGTERM']);
    sim.advance(500);
    assert.deepEqual(sim.proc(1).signals, ['SIGTERM', 'SIGKILL']);
    sim.die(1, null, 'SIGKILL');
    const exited = sim.logs('ZD_WORKER_EXITED').at(-1)!;
    assert.equal(exited.fields?.outcome, 'killed');
  });

  it('aborts when a replacement crashes before it is ready; the old workers keep serving', () => {
    const sim = running(2);
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    sim.die(3, 1);
    assert.deepEqual(sim.state.lastRollout, { generation: 2, outcome: 'aborted', reason: 'exited with code 1', kind: 'reload' });
    assert.deepEqual(sim.readyIds(), [1, 2]);
    assert.deepEqual(sim.proc(1).messages, []);
    const aborted = sim.logs('ZD_RELOAD_ABORTED')[0]!;
    assert.equal(aborted.stderrOf, 3);
    // The next SIGHUP starts a fresh rollout.
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    assert.equal(sim.state.rollout?.context.generation, 3);
  });

  it('aborts when a replacement is not ready in time, and stops it', () => {
    const sim = running(2);
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    sim.advance(1000);
    assert.equal(sim.proc(3).connected, false, 'the replacement is disconnected at its deadline');
    assert.match(sim.state.lastRollout!.reason!, /not ready within 1000ms/, 'aborted at the deadline');
    sim.advance(1000);
    assert.deepEqual(sim.proc(3).signals, ['SIGTERM'], 'and SIGTERMed at the drain deadline');
    sim.die(3, null, 'SIGTERM');
    assert.deepEqual(sim.readyIds(), [1, 2]);
  });

  it('coalesces reloads asked for during a rollout into exactly one more', () => {
    const sim = running(1);
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    sim.dispatch({ type: 'signal.hup', signal: 'SIGUSR2' });
    sim.dispatch({ type: 'control.reload' });
    assert.equal(sim.logs('ZD_RELOAD_QUEUED').length, 2);
    assert.equal(sim.state.counters.reloadsCoalesced, 1);
    sim.boot(2);
    assert.equal(sim.state.rollout?.context.generation, 3, 'the queued one starts when the first ends');
    sim.boot(3);
    assert.equal(sim.state.rollout, null);
    assert.equal(sim.state.counters.rolloutsStarted, 2);
  });

  it('a SIGHUP before any worker is ready runs once the first one is', () => {
    const sim = checkedSim(simConfig({ workers: 1 }));
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    assert.equal(sim.state.rollout, null);
    sim.boot(1);
    assert.equal(sim.state.rollout!.context.generation, 2);
  });

  it('an old worker that crashes while its replacement boots is not respawned: the replacement takes over', () => {
    const sim = running(1);
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    sim.die(1, 1);
    sim.advance(900); // past any backoff, short of the replacement's ready deadline
    assert.equal(sim.procs.size, 2, 'no respawn fork');
    sim.boot(2);
    assert.deepEqual(sim.readyIds(), [2]);
    assert.equal(sim.state.lastRollout?.outcome, 'done');
  });

  it('a slot whose worker crashed before the rollout reached it is respawned with the new code and adopted', () => {
    const sim = running(2);
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    sim.die(2, 1); // slot 1, still waiting its turn
    sim.advance(100);
    assert.equal(sim.proc(4).generation, 2, 'the respawn loads the new generation');
    sim.boot(4);
    sim.boot(3); // slot 0 replaced; the rollout reaches slot 1 and adopts worker 4
    assert.equal(sim.state.lastRollout?.outcome, 'done');
    assert.equal(sim.procs.size, 4, 'no second fork for slot 1');
  });

  it('refuses a reload while stopping', () => {
    const sim = running(1);
    sim.dispatch({ type: 'signal.term', signal: 'SIGTERM' });
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    assert.ok(codes(sim).includes('ZD_RELOAD_REFUSED'));
    assert.equal(sim.effects.filter((e) => e.type === 'fork').length, 1);
  });
});

describe('crashes', () => {
  it('respawns on exit, never on disconnect, with doubling backoff capped at the max', () => {
    const sim = checkedSim(simConfig({ workers: 1, backoffMaxMs: 400, maxRestarts: 100 }));
    sim.bootAll();
    sim.proc(1).connected = false;
    sim.dispatch({ type: 'worker.disconnect', workerId: 1 });
    sim.advance(999); // short of the drain deadline a lingering disconnected worker gets
    assert.equal(sim.procs.size, 1, 'a disconnect alone forks nothing');
    const delays: number[] = [];
    let id = 1;
    for (let i = 0; i < 5; i++) {
      sim.die(id, 1);
      delays.push(sim.logs('ZD_WORKER_CRASHED').at(-1)!.fields!.restartInMs as number);
      sim.advance(delays.at(-1)! - 1);
      assert.equal(sim.alive().length, 0, `no fork before the ${delays.at(-1)}ms backoff`);
      sim.advance(1);
      id = Math.max(...sim.procs.keys());
      sim.boot(id);
    }
    assert.deepEqual(delays, [100, 200, 400, 400, 400]);
  });

  it('resets the backoff once a worker has stayed up stableAfter', () => {
    const sim = checkedSim(simConfig({ workers: 1, stableAfterMs: 30_000 }));
    sim.bootAll();
    sim.die(1, 1);
    sim.advance(100);
    sim.boot(2);
    sim.die(2, 1);
    assert.equal(sim.logs('ZD_WORKER_CRASHED').at(-1)!.fields!.restartInMs, 200);
    sim.advance(200);
    sim.boot(3);
    sim.advance(30_000);
    sim.die(3, 1);
    assert.equal(sim.logs('ZD_WORKER_CRASHED').at(-1)!.fields!.restartInMs, 100);
  });

  it('detects a crash loop, parks the slot, and exits 1 when every slot is parked', () => {
    const sim = checkedSim(simConfig({ workers: 1, maxRestarts: 3, readyTimeoutMs: 60_000 }));
    sim.bootAll();
    for (let i = 0; i < 4; i++) {
      sim.die(sim.alive()[0]!.id, 1); // the respawns fail before they are ready
      sim.advance(10_000);
    }
    assert.equal(sim.logs('ZD_CRASH_LOOP').length, 2, 'the slot, then the whole pool');
    assert.equal(sim.exitCode, 1);
    assert.equal(sim.procs.size, 4, 'not spun forever: 1 + maxRestarts forks');
  });

  it('a planned exit (drained) is not a crash', () => {
    const sim = checkedSim(simConfig({ workers: 1 }));
    sim.bootAll();
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    sim.boot(2);
    sim.die(1, 0);
    assert.equal(sim.state.counters.crashes, 0);
    assert.equal(sim.logs('ZD_WORKER_CRASHED').length, 0);
  });
});

describe('stop', () => {
  it('SIGTERM drains every worker, aborts a rollout, and exits 0 when all are gone', () => {
    const sim = checkedSim(simConfig({ workers: 2 }));
    sim.bootAll();
    sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP' });
    sim.dispatch({ type: 'signal.term', signal: 'SIGTERM' });
    assert.equal(sim.state.lastRollout?.outcome, 'aborted');
    assert.equal(sim.proc(3).connected, false, 'the booting replacement is stopped (disconnected first)');
    assert.deepEqual(sim.proc(1).messages, [{ type: 'zd:shutdown' }]);
    sim.die(1, 0);
    sim.die(3, null, 'SIGTERM');
    assert.equal(sim.exitCode, null);
    sim.die(2, 0);
    assert.equal(sim.exitCode, 0);
  });

  it('a second SIGINT kills every worker at once and exits 130; a second SIGTERM exits 143', () => {
    for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
      const sim = checkedSim(simConfig({ workers: 2 }));
      sim.bootAll();
      sim.dispatch({ type: 'signal.term', signal });
      sim.dispatch({ type: 'signal.term', signal });
      assert.equal(sim.exitCode, code);
      assert.deepEqual(sim.alive().map((p) => p.signals), [['SIGKILL'], ['SIGKILL']]);
    }
  });

  it('ignores everything after exit', () => {
    const sim = checkedSim(simConfig({ workers: 1 }));
    sim.bootAll();
    sim.dispatch({ type: 'signal.term', signal: 'SIGTERM' });
    sim.die(1, 0);
    const step = reduce(sim.state, { type: 'signal.hup', signal: 'SIGHUP' });
    assert.equal(step.state, sim.state);
    assert.deepEqual(step.effects, []);
  });
});

describe('purity', () => {
  it('is deterministic and does not touch its input', () => {
    const sim = checkedSim(simConfig({ workers: 2 }));
    sim.bootAll();
    const frozen = JSON.stringify(sim.state);
    const event = { type: 'signal.hup', signal: 'SIGHUP' } as const;
    const a = reduce(sim.state, event);
    const b = reduce(JSON.parse(frozen), event);
    assert.equal(JSON.stringify(sim.state), frozen);
    assert.deepEqual(a, b);
  });

  it('drops stale timer firings and news of unknown workers', () => {
    const sim = checkedSim(simConfig({ workers: 1 }));
    sim.bootAll();
    for (const event of [
      { type: 'timer.fired', timerId: 'w1:xstate.after.readyTimeout.worker.booting' },
      { type: 'worker.exit', workerId: 99, code: 1, signal: null },
      { type: 'worker.message', workerId: 99, message: 'ready' },
    ] as const) {
      assert.deepEqual(reduce(sim.state, event).effects, []);
    }
  });
});
