// The toolkit both reducers share (issue 21, part 2): the copy-on-write draft, the back-off, a
// machine's actions as effects, the invariants' helpers, and the intent runner with its bound.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffMs } from '../../src/reducer-kit/backoff.ts';
import { Draft } from '../../src/reducer-kit/draft.ts';
import { IntentRunner } from '../../src/reducer-kit/intents.ts';
import { failures, isPlainData } from '../../src/reducer-kit/invariants.ts';
import { machineActions, type ActionHandlers } from '../../src/reducer-kit/machine-actions.ts';
import { deepFreeze } from '../helpers/sim.ts';

test('the draft copies a nested part once, the first time it is written, and shares the rest', () => {
  const base = deepFreeze({ list: [{ n: 1 }, { n: 2 }], counts: { a: 0 }, other: { x: 1 } });
  const d = new Draft<typeof base, never>(base);
  const list = d.own(d.s, 'list');
  assert.equal(d.own(d.s, 'list'), list, 'copied once');
  d.own(list, 0).n = 10;
  d.own(list, 0).n += 1;
  d.own(d.s, 'counts').a += 1;
  const fresh = d.made({ n: 3 });
  list.push(fresh);
  assert.equal(d.own(list, 2), fresh, 'what the reduction made is written in place');
  assert.deepEqual(d.s, { list: [{ n: 11 }, { n: 2 }, { n: 3 }], counts: { a: 1 }, other: { x: 1 } });
  assert.deepEqual(base, { list: [{ n: 1 }, { n: 2 }], counts: { a: 0 }, other: { x: 1 } }, 'the state before is untouched');
  assert.equal(d.s.list[1], base.list[1]);
  assert.equal(d.s.other, base.other);
});

test('the back-off doubles from its first delay up to its cap, and never overflows', () => {
  assert.deepEqual([1, 2, 3, 4, 5].map((n) => backoffMs(100, 1000, n)), [100, 200, 400, 800, 1000]);
  assert.equal(backoffMs(100, 10_000, 0), 100);
  assert.equal(backoffMs(100, 10_000, 5000), 10_000);
});

test("a machine's actions: named ones to their handlers, a delayed raise to a timer, a cancel, built-ins ignored", () => {
  const seen: string[] = [];
  const handlers: ActionHandlers<string> = {
    named: { kill: (ctx, params) => void seen.push(`${ctx} kill ${String(params.signal)}`) },
    delayed: (ctx, { id, event, delay }) => void seen.push(`${ctx} after ${delay} ${id} ${event.type}`),
    cancelled: (ctx, id) => void seen.push(`${ctx} cancel ${id}`),
  };
  machineActions(
    [
      { type: 'xstate.assign' },
      { type: 'kill', params: { signal: 'SIGTERM' } },
      { type: 'xstate.raise', params: { id: 'd1', event: { type: 'timeout' }, delay: 50 } },
      { type: 'xstate.raise', params: { event: { type: 'now' } } },
      { type: 'xstate.cancel', params: { sendId: 'd1' } },
      { type: 'unknown' },
    ],
    handlers,
    'w1',
  );
  assert.deepEqual(seen, ['w1 kill SIGTERM', 'w1 after 50 d1 timeout', 'w1 cancel d1']);
});

test('invariants: broken ones listed with their text; plain data is what JSON gives back unchanged', () => {
  const { broken, fail } = failures({ X1: 'x holds' });
  fail('X1', 'it did not');
  assert.deepEqual(broken, ['X1 x holds: it did not']);
  assert.equal(isPlainData({ a: [1, 'b', null, { c: true }] }), true);
  for (const bad of [{ a: undefined }, { a: Number.NaN }, { a: new Map() }, { a: () => 1 }, { a: Infinity }]) assert.equal(isPlainData(bad), false);
});

test('intents run depth first, as nested calls would, until none is left', () => {
  const order: string[] = [];
  const asks: Record<string, string[]> = { a: ['a1', 'a2'], a1: ['a11'], b: [] };
  const runner = new IntentRunner<string>((intent) => {
    order.push(intent);
    return asks[intent] ?? [];
  }, () => 100);
  assert.equal(runner.run(['a', 'b']), true);
  assert.deepEqual(order, ['a', 'a1', 'a11', 'a2', 'b']);
  assert.equal(runner.unsettled, null);
});

test('intents that keep asking for more stop at the bound, and nothing runs after it (I12)', () => {
  let runs = 0;
  const runner = new IntentRunner<number>((n) => {
    runs += 1;
    return [n + 1];
  }, () => 50);
  assert.equal(runner.run([0]), false);
  assert.equal(runs, 50);
  assert.equal(runner.unsettled, 50);
  assert.equal(runner.run([0]), false);
  assert.equal(runs, 50);
});
