// Issue #16: `zd inspect --replay FILE --web` in a real headless browser (found by browser.ts, as
// the live page's test finds it). The journal is a recorded run with a reload that aborts (its new
// worker crashes at boot): the page draws the workers and rollouts as a timeline; scrubbed to the
// abort, it shows the rollout machine on `aborted`, why, and the ZD_RELOAD_ABORTED line; one step
// back, the rollout is still replacing. Leaves a screenshot in test-output/.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import type { Release } from '../../src/core/events.ts';
import { Recorder } from '../../src/record/recorder.ts';
import { Sim, simConfig } from '../helpers/sim.ts';
import { repoRoot } from '../helpers/zd.ts';
import { closeBrowser, openPage } from './browser.ts';
import { startInspect, type InspectProcess } from './inspect-cli.ts';

const outputDir = join(repoRoot, 'test-output');
const RELEASE: Release = { app: 'app.js', cwd: '.', args: [] };

/** A journal: two workers ready, a reload whose new worker crashes at boot, then a stop. */
function recordAbortedReload(file: string): void {
  const config = simConfig({ workers: 2 });
  const recorder = new Recorder({ name: 'replayed', app: '/srv/app.js', pid: 4242 });
  recorder.start(config, RELEASE);
  const sim = new Sim(config, (_before, event, step) => recorder.step(step.state, event, step.effects, step.transitions));
  sim.bootAll();
  sim.advance(200);
  sim.dispatch({ type: 'signal.hup', signal: 'SIGHUP', release: RELEASE });
  const replacement = sim.alive().find((p) => p.generation === 2)!;
  sim.dispatch({ type: 'worker.online', workerId: replacement.id });
  sim.advance(50);
  sim.die(replacement.id, 1);
  sim.advance(500);
  sim.dispatch({ type: 'signal.term', signal: 'SIGTERM' });
  for (const p of sim.alive()) sim.die(p.id, 0);
  writeFileSync(file, recorder.dump('test')!.text);
}


test('the replay page draws a timeline, and scrubbed to the abort it shows the rollout aborted', { timeout: 90_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'zd-replay-web-'));
  const profile = mkdtempSync(join(tmpdir(), 'zd-chromium-'));
  let inspect: InspectProcess | undefined;
  let context: BrowserContext | undefined;
  let page: Page | undefined;
  let browserPids: number[] = [];
  try {
    const journal = join(dir, 'aborted.journal');
    recordAbortedReload(journal);
    assert.match(readFileSync(journal, 'utf8'), /"type":"signal.hup"/);

    inspect = startInspect(['--replay', journal, '--web', '--port', '0']);
    const urlLine = await inspect.waitForLine(/^zd inspect: http:\/\/127\.0\.0\.1:\d+\/$/, 15_000, 'the URL');
    const url = urlLine.slice('zd inspect: '.length);

    let problems: string[];
    ({ context, page, problems, pids: browserPids } = await openPage(profile, { width: 1400, height: 1000 }, (line) => t.diagnostic(line)));
    await page.goto(url);

    // The timeline: a lane per worker, one rollout, aborted, with its steps.
    await page.locator('body[data-step="0"]').waitFor({ timeout: 10_000 });
    const rollout = page.locator('#replay-timeline rect.zd-rollout');
    assert.equal(await rollout.count(), 1);
    assert.equal(await rollout.getAttribute('data-outcome'), 'aborted');
    const abortedAt = Number(await rollout.getAttribute('data-to'));
    const startedAt = Number(await rollout.getAttribute('data-from'));
    assert.ok(abortedAt > startedAt && startedAt > 0, `the rollout runs from step ${startedAt} to ${abortedAt}`);
    const lanes = await page.locator('#replay-timeline rect.zd-lane').evaluateAll((els) => els.map((el) => el.getAttribute('data-worker')));
    assert.deepEqual([...new Set(lanes)].sort(), ['1', '2', '3'], 'a lane for each worker, the crashed replacement too');
    assert.ok((await page.locator('#replay-timeline line.zd-mark[data-code="ZD_RELOAD_ABORTED"]').count()) === 1);
    // At step 0 nothing has happened yet.
    assert.deepEqual(await page.locator('#rollout-machine .zd-active').evaluateAll((els) => els.map((el) => el.id)), ['rollout.idle']);

    // Scrubbed to the abort.
    await page.locator('#replay-step').evaluate((el, value) => {
      (el as HTMLInputElement).value = String(value);
      el.dispatchEvent(new Event('input', { bubbles: true }));
    }, abortedAt);
    await page.locator(`body[data-step="${abortedAt}"]`).waitFor({ timeout: 10_000 });
    assert.deepEqual(await page.locator('#rollout-machine .zd-active').evaluateAll((els) => els.map((el) => el.id)), ['rollout.aborted']);
    assert.match(await page.locator('#rollout-progress').innerText(), /generation 2: aborted/);
    assert.match(await page.locator('#events').innerText(), /ZD_RELOAD_ABORTED/);
    assert.match(await page.locator('#replay-at').innerText(), new RegExp(`^step ${abortedAt + 1} of \\d+ · \\+\\d+\\.\\d{3} s · worker\\.exit$`));
    mkdirSync(outputDir, { recursive: true });
    const screenshot = join(outputDir, 'inspect-replay-web.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    t.diagnostic(`screenshot: ${screenshot}`);

    // One step back: the rollout had not given up yet.
    await page.locator('#replay-prev').click();
    await page.locator(`body[data-step="${abortedAt - 1}"]`).waitFor({ timeout: 10_000 });
    const before = await page.locator('#rollout-machine .zd-active').evaluateAll((els) => els.map((el) => el.id));
    assert.notDeepEqual(before, ['rollout.aborted']);
    assert.doesNotMatch(await page.locator('#events').innerText(), /ZD_RELOAD_ABORTED/);

    // The rollout's button jumps back to its end.
    await page.locator('#replay-rollouts button[data-outcome="aborted"]').click();
    await page.locator(`body[data-step="${abortedAt}"]`).waitFor({ timeout: 10_000 });

    // Only the fixed routes answer; a step that does not exist is refused.
    assert.equal((await page.request.get(new URL('/../../etc/passwd', url).href)).status(), 404);
    assert.equal((await page.request.get(new URL('/view?i=99999', url).href)).status(), 400);
    assert.deepEqual(problems, []);

    inspect.kill('SIGINT');
    assert.equal((await inspect.exited).code, 0);
  } catch (error) {
    mkdirSync(outputDir, { recursive: true });
    await page?.screenshot({ path: join(outputDir, 'inspect-replay-web-failure.png'), fullPage: true }).catch(() => undefined);
    if (inspect) t.diagnostic(`zd inspect stderr: ${inspect.stderr}`);
    throw error;
  } finally {
    await closeBrowser(context, browserPids);
    inspect?.kill();
    rmSync(profile, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});
