// The keeper's reducer (issue 13, `zd upgrade`), rule by rule, in a simulated world with a fake
// clock. Every step of every scenario is also checked against the written invariants
// (src/keeper/invariants.ts) by the sim.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { initialTransition, transition } from 'xstate';
import { upgradeMachine, type UpgradeEvent } from '../../machines/upgrade.machine.ts';
import { checkKeeperInvariants } from '../../src/keeper/invariants.ts';
import { initKeeper, KEEPER_DEFAULTS, reduceKeeper, restartDelayMs } from '../../src/keeper/reduce.ts';
import type { KeeperEffect } from '../../src/keeper/types.ts';
import { KeeperSim } from '../helpers/keeper-sim.ts';

/** Started, primary 1 ready. */
function serving(): KeeperSim {
  const sim = new KeeperSim().start();
  sim.ready(1);
  return sim;
}

/** Primary 1 ready, an upgrade to primary 2 in flight. */
function upgrading(timeoutMs = 5_000, node: string | null = null): { sim: KeeperSim; requestId: string } {
  const sim = serving();
  const requestId = sim.request(timeoutMs, node);
  return { sim, requestId };
}

const types = (effects: KeeperEffect[]) => effects.filter((e) => e.type !== 'log').map((e) => e.type);

describe('start', () => {
  it('spawns primary 1 as the current one; its readiness makes it ready', () => {
    const sim = new KeeperSim();
    assert.deepEqual(sim.dispatch({ type: 'keeper.start' }).filter((e) => e.type === 'spawn'), [{ type: 'spawn', id: 1, node: null }]);
    assert.equal(sim.state.current, 1);
    assert.equal(sim.state.primaries[1]!.status, 'starting');
    sim.dispatch({ type: 'primary.spawned', id: 1 });
    sim.ready(1);
    assert.equal(sim.state.primaries[1]!.status, 'ready');
    assert.deepEqual(sim.dispatch({ type: 'keeper.start' }), [], 'a second start changes nothing');
  });

  it('the state is plain data, and the same events give the same effects', () => {
    const run = () => {
      const { sim } = upgrading(1000, '/opt/node24/bin/node');
      sim.advance(1000);
      sim.signal('SIGTERM');
      return sim.effects;
    };
    assert.deepEqual(run(), run());
    const state = initKeeper();
    assert.deepEqual(JSON.parse(JSON.stringify(state)), state);
  });
});

describe('upgrade', () => {
  it('spawns the candidate with the requested node, arms its deadline, and logs ZD_UPGRADE_STARTED', () => {
    const { sim } = upgrading(7_000, '/opt/node24/bin/node');
    assert.deepEqual(sim.lastOf('spawn'), [{ type: 'spawn', id: 2, node: '/opt/node24/bin/node' }]);
    assert.deepEqual(sim.lastOf('timer'), [{ type: 'timer', ms: 7_000, event: { type: 'upgrade.timeout', id: 2 } }]);
    assert.equal(sim.logs('ZD_UPGRADE_STARTED').length, 1);
    assert.equal(sim.state.current, 1);
    assert.equal(sim.state.next, 2);
    assert.deepEqual(sim.state.upgrade.value, { upgrading: 'beside' });
  });

  it('on the candidate ready: promote it, answer ok naming both (through the old primary, before it retires), then retire the old one, log ZD_UPGRADE_DONE', () => {
    const { sim, requestId } = upgrading();
    const effects = sim.ready(2);
    assert.deepEqual(types(effects), ['promote', 'reply', 'retire']);
    assert.deepEqual(sim.lastOf('promote'), [{ type: 'promote', id: 2 }]);
    assert.deepEqual(sim.lastOf('retire'), [{ type: 'retire', id: 1 }]);
    const reply = sim.reply(requestId)!;
    assert.equal(reply.ok, true);
    assert.equal(reply.id, 2);
    assert.match(reply.message, /primary 2 .*primary 1/);
    assert.equal(sim.logs('ZD_UPGRADE_DONE').length, 1);
    assert.equal(sim.state.current, 2);
    assert.equal(sim.state.next, null);
    assert.equal(sim.state.primaries[1]!.status, 'retiring');
    assert.equal(sim.state.upgrade.value, 'idle');
  });

  it('retires nothing before the candidate is ready, whatever else happens meanwhile', () => {
    const { sim } = upgrading();
    sim.signal('SIGHUP');
    sim.dispatch({ type: 'primary.spawned', id: 2 });
    sim.advance(4_999);
    assert.equal(sim.effects.filter((e) => e.type === 'retire').length, 0);
  });

  it('the retired primary exiting is only logged', () => {
    const { sim } = upgrading();
    sim.ready(2);
    const effects = sim.stopped(1);
    assert.deepEqual(types(effects), []);
    assert.deepEqual(sim.logs('ZD_PRIMARY_EXITED').map((l) => l.level), ['info']);
    assert.equal(sim.state.primaries[1], undefined, 'an exited primary is forgotten');
    assert.equal(sim.exitCode, null);
  });

  it('a second upgrade once the first is done and the old one gone', () => {
    const { sim } = upgrading();
    sim.ready(2);
    sim.stopped(1);
    const second = sim.request(5_000);
    assert.deepEqual(sim.lastOf('spawn'), [{ type: 'spawn', id: 3, node: null }]);
    sim.ready(3);
    assert.equal(sim.reply(second)!.ok, true);
    assert.equal(sim.state.current, 3);
  });

  it('a stale deadline (the upgrade is over) is ignored', () => {
    const { sim } = upgrading(5_000);
    sim.ready(2);
    sim.advance(5_000);
    assert.deepEqual(sim.last.filter((e) => e.type === 'kill'), []);
    assert.equal(sim.state.current, 2);
    assert.equal(sim.state.primaries[2]!.status, 'ready');
  });
});

describe('upgrade refused (one answer, ok false, ZD_E_UPGRADE_REFUSED)', () => {
  const refused = (sim: KeeperSim, requestId: string, pattern: RegExp) => {
    const replies = sim.replies.get(requestId)!;
    assert.equal(replies.length, 1);
    assert.equal(replies[0]!.ok, false);
    assert.equal(replies[0]!.code, 'ZD_E_UPGRADE_REFUSED');
    assert.match(replies[0]!.message, pattern);
    assert.deepEqual(sim.lastOf('spawn'), []);
    assert.equal(sim.logs('ZD_UPGRADE_REFUSED').length, 1);
  };

  it('while an upgrade is in flight', () => {
    const { sim } = upgrading();
    refused(sim, sim.request(), /^upgrade refused: an upgrade is in progress: primary 2 is starting$/);
    assert.equal(sim.state.next, 2, 'the one in flight goes on');
  });

  it('while the current primary is not ready yet', () => {
    const sim = new KeeperSim().start();
    refused(sim, sim.request(), /primary 1 is not ready yet/);
  });

  it('while the current primary is restarting after a crash', () => {
    const sim = serving();
    sim.crash(1);
    refused(sim, sim.request(), /primary 1 crashed and is restarting/);
  });

  it('while the primary replaced last time still drains', () => {
    const { sim } = upgrading();
    sim.ready(2);
    refused(sim, sim.request(), /primary 1, replaced by the last upgrade, is still draining/);
  });

  it('while a killed candidate is not reaped yet', () => {
    const { sim } = upgrading(1_000);
    sim.advance(1_000);
    refused(sim, sim.request(), /primary 2 is still exiting \(killed\)/);
  });

  it('while stopping', () => {
    const sim = serving();
    sim.signal('SIGTERM');
    refused(sim, sim.request(), /zd is stopping \(SIGTERM\)/);
  });

  it('a timeout that is not a positive number', () => {
    const sim = serving();
    refused(sim, sim.request(0), /timeout must be a positive number/);
    const sim2 = serving();
    refused(sim2, sim2.request(Number.NaN), /timeout must be a positive number/);
  });
});

describe('upgrade aborted (the old primary serves on)', () => {
  it('not ready within the timeout: kill it, answer "not ready within <ms>", log ZD_UPGRADE_ABORTED', () => {
    const { sim, requestId } = upgrading(5_000);
    sim.advance(4_999);
    assert.equal(sim.reply(requestId), undefined);
    sim.advance(1);
    assert.deepEqual(sim.lastOf('kill'), [{ type: 'kill', id: 2 }]);
    const reply = sim.reply(requestId)!;
    assert.equal(reply.ok, false);
    assert.equal(reply.code, 'ZD_E_UPGRADE_ABORTED');
    assert.match(reply.message, /primary 2 was not ready within 5000 ms.*primary 1 serves on/);
    assert.equal(sim.logs('ZD_UPGRADE_ABORTED').length, 1);
    assert.equal(sim.state.current, 1);
    assert.equal(sim.state.next, null);
    assert.equal(sim.state.primaries[1]!.status, 'ready');
    // Its readiness arriving after the kill changes nothing; its exit is logged.
    sim.ready(2);
    assert.deepEqual(types(sim.last), []);
    sim.crash(2, 'SIGKILL');
    assert.deepEqual(types(sim.last), []);
    assert.equal(sim.state.primaries[2], undefined);
    // And the next upgrade may start.
    sim.request();
    assert.deepEqual(sim.lastOf('spawn'), [{ type: 'spawn', id: 3, node: null }]);
  });

  it('exits before it is ready: answer with its code', () => {
    const { sim, requestId } = upgrading(5_000);
    sim.exit(2, { code: 3, planned: true });
    assert.match(sim.reply(requestId)!.message, /primary 2 exited with code 3 before it was ready; primary 1 serves on/);
    assert.equal(sim.state.next, null);
    assert.equal(sim.logs('ZD_UPGRADE_ABORTED').length, 1);
    assert.deepEqual(sim.lastOf('kill'), []);
    sim.advance(5_000);
    assert.deepEqual(sim.lastOf('reply'), [], 'its deadline is stale');
  });

  it('is killed by a signal before it is ready: answer with the signal', () => {
    const { sim, requestId } = upgrading();
    sim.crash(2, 'SIGSEGV');
    assert.match(sim.reply(requestId)!.message, /primary 2 was killed by SIGSEGV before it was ready/);
    assert.equal(sim.exitCode, null);
    assert.equal(sim.state.counters.crashes, 0, "a candidate's failure is not a crash of the serving primary");
  });

  it('could not be started at all (no code, no signal)', () => {
    const { sim, requestId } = upgrading(5_000, '/no/such/node');
    sim.exit(2, { planned: false });
    assert.match(sim.reply(requestId)!.message, /primary 2 could not be started/);
  });
});

describe('the current primary exits during an upgrade', () => {
  it('as planned: the candidate is killed and the request answered; the keeper exits with its code once both are gone', () => {
    const { sim, requestId } = upgrading();
    sim.stopped(1, 0);
    assert.deepEqual(sim.lastOf('kill'), [{ type: 'kill', id: 2 }]);
    assert.equal(sim.reply(requestId)!.ok, false);
    assert.match(sim.reply(requestId)!.message, /primary 1 stopped/);
    assert.equal(sim.exitCode, null, 'not while the candidate is alive');
    sim.crash(2, 'SIGKILL');
    assert.equal(sim.exitCode, 0);
  });

  it('crashing: the candidate becomes the current primary at once, and its request is answered when it is ready', () => {
    const { sim, requestId } = upgrading();
    sim.crash(1);
    assert.deepEqual(sim.lastOf('promote'), [{ type: 'promote', id: 2 }]);
    assert.deepEqual(sim.lastOf('timer').filter((t) => t.event.type === 'restart.due'), [], 'no restart: the candidate serves');
    assert.equal(sim.logs('ZD_PRIMARY_CRASHED').length, 1);
    assert.equal(sim.state.current, 2);
    assert.equal(sim.state.next, null);
    assert.deepEqual(sim.state.upgrade.value, { upgrading: 'alone' });
    assert.equal(sim.reply(requestId), undefined);
    sim.ready(2);
    assert.deepEqual(types(sim.last), ['reply'], 'already promoted; nothing to retire');
    assert.equal(sim.reply(requestId)!.ok, true);
    assert.match(sim.reply(requestId)!.message, /primary 1 crashed during the upgrade/);
  });

  it('crashing, and the candidate then misses its deadline: answered ok false, but not killed (it is the only primary)', () => {
    const { sim, requestId } = upgrading(5_000);
    sim.crash(1);
    sim.advance(5_000);
    assert.equal(sim.reply(requestId)!.ok, false);
    assert.match(sim.reply(requestId)!.message, /not ready within 5000 ms.*stays on as the current primary/);
    assert.deepEqual(sim.lastOf('kill'), []);
    assert.equal(sim.state.current, 2);
    sim.ready(2);
    assert.equal(sim.state.primaries[2]!.status, 'ready');
    assert.equal(sim.replies.get(requestId)!.length, 1);
  });

  it('crashing, and the candidate then crashes too: answered, then restarted on the node it was given', () => {
    const { sim, requestId } = upgrading(5_000, '/opt/node24/bin/node');
    sim.crash(1);
    sim.crash(2);
    assert.match(sim.reply(requestId)!.message, /primary 2 was killed by SIGKILL before it was ready, and primary 1 had crashed/);
    sim.advance(restartDelayMs(2));
    assert.deepEqual(sim.lastOf('spawn'), [{ type: 'spawn', id: 3, node: '/opt/node24/bin/node' }]);
  });
});

describe('crashes and restarts', () => {
  it('a crash of the current primary: ZD_PRIMARY_CRASHED, then a restart after the backoff', () => {
    const sim = serving();
    sim.crash(1);
    assert.equal(sim.logs('ZD_PRIMARY_CRASHED').length, 1);
    assert.equal(sim.state.restartPending, true);
    assert.equal(sim.state.current, 1);
    assert.equal(sim.state.primaries[1]!.status, 'exited');
    sim.advance(KEEPER_DEFAULTS.restartInitialMs - 1);
    assert.equal(sim.procs.size, 1);
    sim.advance(1);
    assert.deepEqual(sim.lastOf('spawn'), [{ type: 'spawn', id: 2, node: null }]);
    assert.equal(sim.state.current, 2);
    assert.equal(sim.state.primaries[1], undefined);
    assert.equal(sim.logs('ZD_PRIMARY_RESTARTING').length, 1);
    sim.dispatch({ type: 'restart.due' });
    assert.deepEqual(sim.lastOf('spawn'), [], 'a stray restart.due spawns nothing');
  });

  it('the backoff doubles with each crash in the window', () => {
    assert.deepEqual([1, 2, 3, 4, 5].map(restartDelayMs), [100, 200, 400, 800, 1600]);
    assert.equal(restartDelayMs(40), KEEPER_DEFAULTS.restartMaxMs);
  });

  it('more than 5 crashes within 60 s: ZD_PRIMARY_CRASH_LOOP and exit 1', () => {
    const sim = serving();
    let id = 1;
    for (let crash = 1; crash <= 5; crash++) {
      sim.crash(id);
      assert.equal(sim.exitCode, null, `crash ${crash}`);
      sim.advance(restartDelayMs(crash));
      id = sim.state.current!;
      sim.ready(id);
    }
    sim.crash(id);
    assert.equal(sim.logs('ZD_PRIMARY_CRASH_LOOP').length, 1);
    assert.equal(sim.exitCode, 1);
    assert.ok(sim.now < 60_000);
  });

  it('crashes a minute apart are no loop', () => {
    const sim = serving();
    let id = 1;
    for (let crash = 1; crash <= 12; crash++) {
      sim.crash(id);
      sim.advance(15_000);
      id = sim.state.current!;
      sim.ready(id);
    }
    assert.equal(sim.exitCode, null);
    assert.equal(sim.logs('ZD_PRIMARY_CRASH_LOOP').length, 0);
    assert.ok(sim.state.recentCrashes <= 5);
  });

  it('a planned exit of the current primary (zd stop, its own decision) is no crash: the keeper exits with its code', () => {
    const sim = serving();
    sim.stopped(1, 0);
    assert.equal(sim.exitCode, 0);
    const sim2 = serving();
    sim2.stopped(1, 3);
    assert.equal(sim2.exitCode, 3);
    const sim3 = serving();
    sim3.exit(1, { signal: 'SIGTERM', planned: true });
    assert.equal(sim3.exitCode, 1, 'a planned exit without a code exits 1');
  });

  it('a planned exit while the old primary still drains: the exit waits for it', () => {
    const { sim } = upgrading();
    sim.ready(2);
    sim.stopped(2, 0);
    assert.equal(sim.exitCode, null);
    sim.stopped(1, 0);
    assert.equal(sim.exitCode, 0);
  });
});

describe('signals', () => {
  it('SIGTERM: forwarded to the current primary and the candidate; the request in flight is answered; exit with the current one\'s code', () => {
    const { sim, requestId } = upgrading();
    const effects = sim.signal('SIGTERM');
    assert.deepEqual(
      effects.filter((e) => e.type === 'signal'),
      [
        { type: 'signal', id: 1, signal: 'SIGTERM' },
        { type: 'signal', id: 2, signal: 'SIGTERM' },
      ],
    );
    assert.equal(sim.state.stopping, true);
    assert.match(sim.reply(requestId)!.message, /zd is stopping \(SIGTERM\)/);
    sim.ready(2);
    assert.deepEqual(types(sim.last), [], 'a candidate that is stopping is not promoted');
    sim.stopped(2, 0);
    assert.equal(sim.exitCode, null);
    sim.stopped(1, 0);
    assert.equal(sim.exitCode, 0);
  });

  it('a second SIGINT is forwarded again (the primary forces on its second)', () => {
    const sim = serving();
    sim.signal('SIGINT');
    sim.signal('SIGINT');
    assert.deepEqual(sim.proc(1).signals, ['SIGINT', 'SIGINT']);
    sim.exit(1, { code: 130, planned: true });
    assert.equal(sim.exitCode, 130);
  });

  it('SIGQUIT stops like SIGTERM, and reaches a retiring primary too', () => {
    const { sim } = upgrading();
    sim.ready(2);
    sim.signal('SIGQUIT');
    assert.deepEqual(sim.proc(1).signals, ['SIGQUIT']);
    assert.deepEqual(sim.proc(2).signals, ['SIGQUIT']);
  });

  it('SIGHUP and SIGUSR2 go to the current primary only', () => {
    const sim = serving();
    sim.signal('SIGHUP');
    sim.signal('SIGUSR2');
    assert.deepEqual(sim.proc(1).signals, ['SIGHUP', 'SIGUSR2']);
    assert.equal(sim.state.stopping, false);
  });

  it('SIGHUP and SIGUSR2 during an upgrade are refused with a line (a reload and an upgrade never overlap), and go through once it ends', () => {
    const { sim } = upgrading();
    const refused = [sim.signal('SIGHUP'), sim.signal('SIGUSR2')].flat().filter((e) => e.type === 'log');
    assert.deepEqual(refused.map((e) => e.type === 'log' && e.code), ['ZD_RELOAD_REFUSED', 'ZD_RELOAD_REFUSED']);
    assert.deepEqual(sim.proc(1).signals, []);
    assert.deepEqual(sim.proc(2).signals, []);
    sim.ready(2);
    sim.signal('SIGHUP');
    assert.deepEqual(sim.proc(2).signals, ['SIGHUP']);
  });

  it('SIGHUP with no primary running (restarting) is logged, not lost silently', () => {
    const sim = serving();
    sim.crash(1);
    sim.signal('SIGHUP');
    assert.deepEqual(sim.lastOf('signal'), []);
    assert.equal(sim.logs('ZD_KEEPER_NO_PRIMARY').length, 1);
  });

  it('a stop during a restart backoff exits 0 at once, and nothing is spawned after', () => {
    const sim = serving();
    sim.crash(1);
    sim.signal('SIGTERM');
    assert.equal(sim.exitCode, 0);
    assert.deepEqual(reduceKeeper(sim.state, { type: 'restart.due' }).effects, []);
    assert.deepEqual(reduceKeeper(sim.state, { type: 'keeper.start' }).effects, []);
  });

  it('the current primary crashing while stopping: exit 1', () => {
    const sim = serving();
    sim.signal('SIGTERM');
    sim.crash(1);
    assert.equal(sim.exitCode, 1);
    assert.deepEqual(sim.effects.filter((e) => e.type === 'spawn').map((e) => e.type), ['spawn'], 'no restart while stopping');
  });

  it('a stop before the first primary is spawned exits 0', () => {
    const sim = new KeeperSim();
    sim.signal('SIGTERM');
    assert.equal(sim.exitCode, 0);
  });
});

describe('the invariant checker', () => {
  it('catches a retire before the successor is ready, a spawn while stopping, and an early exit', () => {
    const sim = serving();
    sim.request(5_000);
    const before = sim.state;
    const event = { type: 'primary.spawned', id: 2 } as const;
    const after = reduceKeeper(before, event).state;
    const check = (effects: KeeperEffect[]) => checkKeeperInvariants(before, after, event, effects).map((line) => line.slice(0, 3));
    assert.deepEqual(check([]), []);
    assert.deepEqual(check([{ type: 'retire', id: 1 }]), ['K3 ']);
    assert.deepEqual(check([{ type: 'exit', code: 0 }]), ['K6 ', 'K6 ']);
    assert.deepEqual(check([{ type: 'kill', id: 1 }]), ['K8 ']);
    const stopping = { ...after, stopping: true, upgrade: before.upgrade };
    assert.ok(checkKeeperInvariants(before, stopping, event, [{ type: 'spawn', id: 3, node: null }]).some((line) => line.startsWith('K5')));
  });
});

describe('the upgrade machine', () => {
  const start: UpgradeEvent = { type: 'upgrade.start', request: { requestId: 'r', node: null, timeoutMs: 1000 }, candidate: 2, previous: 1 };
  const ends: UpgradeEvent[][] = [
    [{ type: 'candidate.ready' }],
    [{ type: 'candidate.exited', code: 1, signal: null }],
    [{ type: 'previous.stopped', code: 0, signal: null }],
    [{ type: 'keeper.stopping', signal: 'SIGTERM' }],
    [{ type: 'xstate.after.deadline.upgrade.upgrading' } as unknown as UpgradeEvent],
    [{ type: 'previous.crashed', code: null, signal: 'SIGKILL' }, { type: 'candidate.ready' }],
    [{ type: 'previous.crashed', code: null, signal: 'SIGKILL' }, { type: 'candidate.exited', code: null, signal: 'SIGKILL' }],
    [{ type: 'previous.crashed', code: null, signal: 'SIGKILL' }, { type: 'keeper.stopping', signal: 'SIGINT' }],
    [{ type: 'previous.crashed', code: null, signal: 'SIGKILL' }, { type: 'xstate.after.deadline.upgrade.upgrading' } as unknown as UpgradeEvent],
  ];
  for (const path of ends) {
    it(`answers exactly once and returns to idle: ${path.map((e) => e.type).join(' → ')}`, () => {
      let [snapshot, actions] = initialTransition(upgradeMachine);
      [snapshot, actions] = transition(upgradeMachine, snapshot, start);
      assert.ok(actions.some((a) => a.type === 'xstate.raise'), 'the deadline is armed on the way in');
      const answers: string[] = [];
      for (const event of path) {
        [snapshot, actions] = transition(upgradeMachine, snapshot, event);
        answers.push(...actions.filter((a) => a.type === 'succeed' || a.type === 'abort').map((a) => a.type));
      }
      assert.equal(answers.length, 1);
      assert.equal(snapshot.value, 'idle');
      assert.equal(snapshot.context.request, null);
      assert.ok(actions.some((a) => (a.type as string) === 'xstate.cancel'), 'the deadline is cancelled on the way out');
    });
  }
});
