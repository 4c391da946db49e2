// zd prints times without V8's Date printers and measures them without `performance` (src/clock.ts,
// issue #11): the lines must still read exactly as Date#toISOString would have printed them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isoTime, monotonicMs } from '../../src/clock.ts';

test('isoTime prints what Date#toISOString prints, for every time a Date can hold', () => {
  // Date's whole range (±8.64e15 ms), so years 0–9999 and the six-digit ones either side.
  fc.assert(
    fc.property(fc.integer({ min: -8.64e15, max: 8.64e15 }), (ms) => {
      const expected = new Date(ms).toISOString();
      assert.equal(isoTime(ms), expected);
      assert.equal(isoTime(new Date(ms)), expected);
    }),
    { numRuns: 5000 },
  );
  for (const ms of [0, -1, 253402300799999, 253402300800000, -62167219200000, -62167219200001, Date.UTC(2024, 1, 29, 23, 59, 59, 999)]) {
    assert.equal(isoTime(ms), new Date(ms).toISOString(), String(ms));
  }
});

test('isoTime throws RangeError for an invalid time, as toISOString does', () => {
  assert.throws(() => isoTime(Number.NaN), RangeError);
  assert.throws(() => isoTime(new Date(8.64e15 + 1)), RangeError);
});

test('monotonicMs never goes back and advances with real time', async () => {
  const start = monotonicMs();
  let last = start;
  for (let i = 0; i < 10_000; i++) {
    const now = monotonicMs();
    assert.ok(now >= last);
    last = now;
  }
  await new Promise((resolve) => setTimeout(resolve, 50));
  const waited = monotonicMs() - start;
  assert.ok(waited >= 49 && waited < 5000, `waited ${waited} ms`);
});
