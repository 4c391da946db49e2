// zd as installed runs dist/; a bench measures that. bin/zd.js runs dist/ only when both bundles
// (the CLI and primary, and the keeper) are newer than every source file; this is that same test,
// and the build that makes it true, with a record of every build a run needed.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { runTracked } from './procs.mjs';
import { REPO } from './runners.mjs';

function newest(dir) {
  let max = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    max = Math.max(max, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return max;
}

export function buildIsFresh() {
  try {
    const source = Math.max(newest(join(REPO, 'src')), newest(join(REPO, 'machines')));
    return ['zd.cjs', 'keeper.cjs'].every((file) => statSync(join(REPO, 'dist', file)).mtimeMs >= source);
  } catch {
    return false; // no build
  }
}

/** Every build this run made: when, why, how long, and its exit code. */
export const builds = [];

/** `npm run build`, or an Error that says why it did not give a fresh bundle. */
export async function build(reason) {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const result = await runTracked(npm, ['run', 'build', '--prefix', REPO], { cwd: REPO, env: process.env }, 120_000);
  builds.push({ at: new Date(result.startedAt).toISOString(), reason, ms: result.endedAt - result.startedAt, code: result.code });
  if (result.code !== 0) throw new Error(`npm run build failed (${result.code ?? result.signal}): ${`${result.stderr}${result.stdout}`.trim().split('\n').slice(-5).join(' | ')}`);
  if (!buildIsFresh()) throw new Error('npm run build succeeded but dist/ is still older than the source');
}
