// Issue #11: the browser test needs nothing but `npm ci`. Which Chromium it gets: an override, a
// system one when present, else the one @sparticuz/chromium ships, which must start here.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { findChromium, packagedChromium } from './browser.ts';

test('a system Chromium is used when present; else, or with ZD_TEST_CHROMIUM=packaged, the npm one', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zd-browser-'));
  try {
    const system = join(dir, 'chromium');
    writeFileSync(system, '#!/bin/sh\n');
    chmodSync(system, 0o755);
    const missing = join(dir, 'no-such-chromium');
    assert.deepEqual(findChromium({}, [missing, system]), { executablePath: system, source: 'system' });
    assert.deepEqual(findChromium({}, [missing]), { executablePath: packagedChromium(), source: '@sparticuz/chromium' });
    assert.equal(findChromium({ ZD_TEST_CHROMIUM: 'packaged' }, [system]).source, '@sparticuz/chromium');
    assert.deepEqual(findChromium({ ZD_TEST_CHROMIUM: system }, []), { executablePath: system, source: 'ZD_TEST_CHROMIUM' });
    assert.throws(() => findChromium({ ZD_TEST_CHROMIUM: missing }, [system]), /ZD_TEST_CHROMIUM=.*not an executable file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("@sparticuz/chromium's browser starts on this machine", () => {
  const run = spawnSync(packagedChromium(), ['--version'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /Chromium \d+\./);
});
