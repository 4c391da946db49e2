// Which Chromium the browser test drives. playwright-core downloads no browser, so: the one
// @sparticuz/chromium ships inside its npm package (a devDependency), on every machine, so that
// `npm ci && npm test` needs nothing else and every machine runs the test on the same browser. A
// system Chromium is never picked up by itself: it would make a pass on one machine say nothing
// of another. ZD_TEST_CHROMIUM names another browser on purpose (`packaged` is the default).
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { descendants, repoRoot, trackPid } from '../helpers/zd.ts';

export interface Browser {
  executablePath: string;
  /** Where it came from, for the test's diagnostics. */
  source: 'ZD_TEST_CHROMIUM' | '@sparticuz/chromium';
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function findChromium(env: NodeJS.ProcessEnv = process.env): Browser {
  const override = env.ZD_TEST_CHROMIUM;
  if (override && override !== 'packaged') {
    if (!executable(override)) throw new Error(`ZD_TEST_CHROMIUM=${override}: not an executable file`);
    return { executablePath: override, source: 'ZD_TEST_CHROMIUM' };
  }
  return { executablePath: packagedChromium(), source: '@sparticuz/chromium' };
}

/**
 * The browser @sparticuz/chromium ships (brotli-compressed in its package), unpacked once per
 * version into node_modules/.cache. Its `executablePath()` unpacks into the temporary directory
 * and trusts any file already named `chromium` there, so it runs in a child with TMPDIR set to a
 * fresh staging directory, which is renamed into place only once complete: an interrupted unpack
 * is never mistaken for a browser, and two test runs never write the same files.
 */
export function packagedChromium(): string {
  const pkg = join(repoRoot, 'node_modules', '@sparticuz', 'chromium');
  const { version } = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { version: string };
  const cache = join(repoRoot, 'node_modules', '.cache');
  const dir = join(cache, `zd-chromium-${version}`);
  const browser = join(dir, 'chromium');
  if (executable(browser)) return browser;

  rmSync(dir, { recursive: true, force: true }); // an incomplete copy, should one have been left
  mkdirSync(cache, { recursive: true });
  const staging = mkdtempSync(join(cache, 'zd-chromium-unpacking-'));
  try {
    const unpack = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', "const { default: c } = await import('@sparticuz/chromium'); process.stdout.write(await c.executablePath())"],
      { cwd: repoRoot, env: { ...process.env, TMPDIR: staging }, encoding: 'utf8', timeout: 120_000 },
    );
    if (unpack.status !== 0 || unpack.stdout !== join(staging, 'chromium')) {
      throw new Error(`could not unpack @sparticuz/chromium ${version} (exit ${unpack.status ?? unpack.signal}): ${unpack.stderr || unpack.stdout}`);
    }
    try {
      renameSync(staging, dir);
    } catch (error) {
      // Another run finished first: use its copy.
      if (!existsSync(browser)) throw error;
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return browser;
}

/** Chromium's processes among this test's descendants, so that cleanup can kill them by pid. */
export function chromiumPids(): number[] {
  return descendants(process.pid).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('chrom');
    } catch {
      return false;
    }
  });
}

/**
 * Chromium, headless, in a fresh profile, with the flags this closed network needs; its processes
 * tracked by pid. The page's errors and console errors are collected in `problems`.
 */
export async function openPage(profile: string, viewport: { width: number; height: number }, diagnostic: (line: string) => void) {
  const browser = findChromium();
  diagnostic(`browser: ${browser.executablePath} (${browser.source})`);
  const context: BrowserContext = await chromium.launchPersistentContext(profile, {
    executablePath: browser.executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport,
  });
  const pids = chromiumPids();
  pids.forEach(trackPid);
  const page: Page = context.pages()[0] ?? (await context.newPage());
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  return { context, page, problems, pids };
}

/** Closes the browser, at most 5 s, then SIGKILLs whatever of it is left, by pid. */
export async function closeBrowser(context: BrowserContext | undefined, pids: number[]): Promise<void> {
  await Promise.race([context?.close().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // closed already
    }
  }
}
