// Issue #12: which worker messages reach the reducer is decided at the edge by classifyMessage.
// Dropping the others there must lose nothing: the reducer does nothing with them either.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isReadyMessage, pongSeq } from '../../src/core/events.ts';
import { classifyMessage, reachesReducer } from '../../src/core/messages.ts';
import { reduce } from '../../src/core/reduce.ts';
import { checkedSim, simConfig } from '../helpers/sim.ts';

describe('classifyMessage', () => {
  it('names zd’s own messages', () => {
    assert.equal(classifyMessage('ready'), 'ready');
    assert.equal(classifyMessage({ type: 'zd:ready' }), 'ready');
    assert.equal(classifyMessage({ type: 'zd:pong', seq: 3 }), 'pong');
    // A listen is reported over zd's internal channel (NODE_ZD), never as a message: this is any zd: one.
    assert.equal(classifyMessage({ type: 'zd:listening', port: 3000 }), 'zd-internal');
    assert.equal(classifyMessage({ type: 'zd:stats', requestId: 1, lagMs: { mean: 1, p99: 2, max: 3 } }), 'zd-internal');
    assert.equal(classifyMessage({ type: 'prom-client:getMetricsRes', requestId: 1, metrics: [] }), 'zd-internal');
    assert.equal(classifyMessage({ type: 'zd:pong', seq: '3' }), 'zd-internal', 'a malformed pong is not one');
  });

  it('leaves everything else to the app', () => {
    for (const message of [
      { cmd: 'notifyRequest' },
      { type: 'app:hit', n: 1 },
      { type: 'ready' },
      'Ready',
      'zd:ready',
      42,
      null,
      [],
      ['ready'],
      { type: 7 },
      { type: { toString: () => 'zd:ready' } },
    ]) {
      assert.equal(classifyMessage(message), 'app', JSON.stringify(message));
    }
  });

  it('agrees with isReadyMessage and pongSeq on any value', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.anything(),
          fc.record({ type: fc.constantFrom('zd:ready', 'zd:pong', 'zd:listening', 'zd:stats', 'zd:x', 'app'), seq: fc.anything() }, { requiredKeys: ['type'] }),
        ),
        (message) => {
          const kind = classifyMessage(message);
          assert.equal(kind === 'ready', isReadyMessage(message));
          assert.equal(kind === 'pong', pongSeq(message) !== null);
          assert.equal(reachesReducer(kind), isReadyMessage(message) || pongSeq(message) !== null);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('a message kept from the reducer is one it would have ignored: no effect, no change', () => {
    for (const readyOn of ['listening', 'message'] as const) {
      const sim = checkedSim(simConfig({ workers: 2, readyOn, heartbeatTimeoutMs: 500, heartbeatIntervalMs: 200 }));
      for (const p of sim.alive()) {
        sim.dispatch({ type: 'worker.online', workerId: p.id });
        sim.dispatch({ type: 'worker.listening', workerId: p.id });
      }
      fc.assert(
        fc.property(
          fc.oneof(
            fc.anything(),
            fc.record({ type: fc.constantFrom('zd:stats', 'zd:listening', 'zd:x', 'prom-client:getMetricsRes', 'app'), seq: fc.integer() }),
          ),
          fc.constantFrom(1, 2),
          (message, workerId) => {
            fc.pre(!reachesReducer(classifyMessage(message)));
            const before = JSON.stringify(sim.state);
            const step = reduce(sim.state, { type: 'worker.message', workerId, message });
            assert.deepEqual(step.effects, []);
            assert.equal(JSON.stringify(step.state), before);
          },
        ),
        { numRuns: 500 },
      );
    }
  });
});
