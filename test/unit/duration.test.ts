// Durations as people write them on the command line.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDuration, MAX_DURATION_MS, parseDuration } from '../../src/cli/duration.ts';

describe('parseDuration', () => {
  const valid: Array<[string, number]> = [
    ['500ms', 500],
    ['5s', 5000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['250', 250],
    ['0', 0],
    ['1.5s', 1500],
    [' 5s ', 5000],
    [`${MAX_DURATION_MS}`, MAX_DURATION_MS],
  ];
  for (const [text, ms] of valid) {
    it(`'${text}' is ${ms}ms`, () => {
      assert.equal(parseDuration(text), ms);
    });
  }

  // '99999999999s' is past setTimeout's ceiling, where a timer would fire at once.
  const invalid = ['', ' ', '5x', '-1s', 's', '1e3', '99999999999s', `${MAX_DURATION_MS + 1}`, '5 s', '5S', '.5s', '1,5s', 'Infinity'];
  for (const text of invalid) {
    it(`'${text}' is not a duration`, () => {
      assert.equal(parseDuration(text), null);
    });
  }
});

describe('formatDuration', () => {
  it('uses the largest whole unit, and round-trips through parseDuration', () => {
    const cases: Array<[number, string]> = [[250, '250ms'], [1500, '1500ms'], [5000, '5s'], [120_000, '2m'], [90_000, '90s'], [0, '0ms']];
    for (const [ms, text] of cases) {
      assert.equal(formatDuration(ms), text);
      assert.equal(parseDuration(text), ms);
    }
  });
});
