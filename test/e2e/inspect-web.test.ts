// Issue #5: `zd inspect --web` in a real headless browser (a system Chromium, else the one
// @sparticuz/chromium ships: see browser.ts, issue #11), driven by playwright-core. The page must
// show each live worker on its state in the worker statechart, and follow a rolling restart:
// replacements booting, old workers draining, the rollout replacing then done. Leaves a
// screenshot in test-output/.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { cleanup, fastFlags, repoRoot, runApp, type Zd } from '../helpers/zd.ts';
import { closeBrowser, openPage } from './browser.ts';
import { startInspect, type InspectProcess } from './inspect-cli.ts';

const outputDir = join(repoRoot, 'test-output');

afterEach(cleanup);


/** What the page highlights: each active worker state with its workers, and the rollout's state. */
interface Seen {
  workers: Array<{ state: string; ids: number[] }>;
  rollout: string[];
  markers: number;
}

// Page scripts are strings: tsx compiles functions with helpers (`__name`) the page does not have.
const HIGHLIGHTS = `(() => {
  const ids = (el) => (el.getAttribute('data-workers') || '').split(' ').filter(Boolean).map(Number);
  return {
    workers: [...document.querySelectorAll('#worker-machine .zd-active')].map((el) => ({ state: el.id, ids: ids(el) })),
    rollout: [...document.querySelectorAll('#rollout-machine .zd-active')].map((el) => el.id),
    markers: document.querySelectorAll('#worker-machine .zd-marker').length,
  };
})()`;

/** Records the highlights after every update the page makes: a worker drains in milliseconds. */
const RECORD = `(() => {
  window.zdSeen = [];
  new MutationObserver(() => window.zdSeen.push(${HIGHLIGHTS}))
    .observe(document.body, { subtree: true, childList: true, attributes: true });
})()`;

function readHighlights(page: Page): Promise<Seen> {
  return page.evaluate(HIGHLIGHTS) as Promise<Seen>;
}

async function until(page: Page, check: (seen: Seen) => boolean, timeoutMs: number, what: string): Promise<Seen> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const seen = await readHighlights(page);
    if (check(seen)) return seen;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}; the page shows ${JSON.stringify(seen)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

test('the web inspector highlights each worker on its live state and follows a rolling restart', { timeout: 90_000 }, async (t) => {
  const started = Date.now();
  let zd: Zd | undefined;
  let inspect: InspectProcess | undefined;
  let context: BrowserContext | undefined;
  let browserPids: number[] = [];
  let page: Page | undefined;
  const profile = mkdtempSync(join(tmpdir(), 'zd-chromium-'));
  try {
    const port = await freePort();
    // Replacements take 600 ms to listen, so the page has time to show them booting.
    zd = runApp(fixturePath('serve.cjs'), ['-w', '2', '--name', 'web', ...fastFlags], {
      env: { PORT: String(port), BOOT_DELAY_MS: '600' },
    });
    await zd.waitForLog('ZD_READY', undefined, 15_000);
    const oldIds = zd.logs('ZD_WORKER_FORKED').map((log) => Number(log.workerId));
    assert.equal(oldIds.length, 2, 'two workers forked');

    inspect = startInspect(['--web', '--port', '0', 'web']);
    const urlLine = await inspect.waitForLine(/^zd inspect: http:\/\/127\.0\.0\.1:\d+\/$/, 15_000, 'the URL');
    const url = urlLine.slice('zd inspect: '.length);

    let problems: string[];
    ({ context, page, problems, pids: browserPids } = await openPage(profile, { width: 1400, height: 900 }, (line) => t.diagnostic(line)));
    await page.goto(url);

    // Both workers of generation 1 sit on a listening state, each with its marker.
    const before = await until(
      page,
      (s) => s.workers.flatMap((w) => w.ids).length === 2 && s.workers.every((w) => /^worker\.listening\./.test(w.state)),
      10_000,
      'both workers highlighted on listening.*',
    );
    assert.deepEqual(before.workers.flatMap((w) => w.ids).sort(), [...oldIds].sort());
    assert.equal(before.markers, 2);
    assert.deepEqual(before.rollout, ['rollout.idle']);

    await page.evaluate(RECORD);

    zd.signal('SIGHUP');
    // Mid-rollout: a replacement booting beside the old workers.
    await until(page, (s) => s.workers.some((w) => w.state.startsWith('worker.booting.')), 10_000, 'a worker booting');
    mkdirSync(outputDir, { recursive: true });
    await page.screenshot({ path: join(outputDir, 'inspect-web-rollout.png'), fullPage: true });

    const after = await until(
      page,
      (s) => s.rollout[0] === 'rollout.done' && s.workers.flatMap((w) => w.ids).length === 2 && s.workers.every((w) => /^worker\.listening\./.test(w.state)),
      15_000,
      'the rollout done and two new workers listening',
    );
    const newIds = after.workers.flatMap((w) => w.ids);
    assert.ok(newIds.every((id) => !oldIds.includes(id)), `the workers listening now (${newIds}) are not the old ones (${oldIds})`);

    const history = (await page.evaluate('window.zdSeen')) as Seen[];
    const shown = () => `the page showed, in order: ${[...new Set(history.map((s) => JSON.stringify([s.workers, s.rollout])))].join(' | ')}`;
    const on = (pattern: RegExp, ids: number[]) =>
      history.some((s) => s.workers.some((w) => pattern.test(w.state) && w.ids.some((id) => ids.includes(id))));
    assert.ok(on(/^worker\.booting\./, newIds), `a replacement was seen highlighted on booting.*; ${shown()}`);
    assert.ok(on(/^worker\.draining$/, oldIds), `an old worker was seen highlighted on draining; ${shown()}`);
    const rolloutStates = history.map((s) => s.rollout[0]);
    const replacing = rolloutStates.indexOf('rollout.replacing');
    assert.ok(replacing !== -1, `the rollout was seen replacing; ${shown()}`);
    assert.ok(rolloutStates.indexOf('rollout.done', replacing) > replacing, `then done; ${shown()}`);
    assert.match(await page.locator('#rollout-progress').innerText(), /generation 2: done · 2 of 2 replaced/);
    assert.equal(await page.locator('#workers tbody tr').count(), 2);
    assert.match(await page.locator('#events').innerText(), /ZD_RELOAD_DONE/);

    const screenshot = join(outputDir, 'inspect-web.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    t.diagnostic(`screenshot: ${screenshot} (mid-rollout: ${join(outputDir, 'inspect-web-rollout.png')})`);
    console.log(`screenshot: ${screenshot}`);

    // Only the two fixed routes answer.
    const stray = await page.request.get(new URL('/../../etc/passwd', url).href);
    assert.equal(stray.status(), 404);

    // When zd stops, the page says so and the inspector exits 1 with one line.
    zd.signal('SIGTERM');
    await page.locator('#banner').filter({ hasText: "'web' stopped" }).waitFor({ timeout: 10_000 });
    const exit = await inspect.exited;
    assert.equal(exit.code, 1);
    assert.match(inspect.stderr, /^zd: 'web' stopped: its control stream closed \[ZD_E_NOT_RUNNING\]\n$/);
    assert.deepEqual(problems, []);
    t.diagnostic(`took ${Date.now() - started} ms`);
  } catch (error) {
    mkdirSync(outputDir, { recursive: true });
    await page?.screenshot({ path: join(outputDir, 'inspect-web-failure.png'), fullPage: true }).catch(() => undefined);
    if (inspect) t.diagnostic(`zd inspect stderr: ${inspect.stderr}`);
    if (zd) t.diagnostic(zd.transcript());
    throw error;
  } finally {
    await closeBrowser(context, browserPids);
    inspect?.kill();
    if (zd) {
      try {
        process.kill(-zd.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(profile, { recursive: true, force: true });
  }
});
