// Issue #11: the browser test needs nothing but `npm ci`. Which Chromium it gets: the one
// @sparticuz/chromium ships, which must start here, unless ZD_TEST_CHROMIUM names another.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { findChromium, packagedChromium } from './browser.ts';

test('the npm Chromium by default (or with ZD_TEST_CHROMIUM=packaged); ZD_TEST_CHROMIUM names another, which must be executable', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zd-browser-'));
  try {
    const other = join(dir, 'chromium');
    writeFileSync(other, '#!/bin/sh\n');
    chmodSync(other, 0o755);
    const missing = join(dir, 'no-such-chromium');
    const packaged = { executablePath: packagedChromium(), source: '@sparticuz/chromium' };
    assert.deepEqual(findChromium({}), packaged);
    assert.deepEqual(findChromium({ ZD_TEST_CHROMIUM: 'packaged' }), packaged);
    assert.deepEqual(findChromium({ ZD_TEST_CHROMIUM: other }), { executablePath: other, source: 'ZD_TEST_CHROMIUM' });
    assert.throws(() => findChromium({ ZD_TEST_CHROMIUM: missing }), /ZD_TEST_CHROMIUM=.*not an executable file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("@sparticuz/chromium's browser starts on this machine", () => {
  const run = spawnSync(packagedChromium(), ['--version'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /Chromium \d+\./);
});
