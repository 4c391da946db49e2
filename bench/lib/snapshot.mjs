// zd's source tree as of a commit, extracted into a temp dir beside this checkout's node_modules:
// a benchmark can then run the code before and after a change side by side, or run committed code
// while the checkout holds someone's unfinished edit.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';

const dirs = [];

/** { sha, dir, main }: `main` is the CLI's TypeScript entry, to run with `node --import tsx`. */
export function snapshot(repo, ref) {
  const sha = execFileSync('git', ['-C', repo, 'rev-parse', '--short', `${ref}^{commit}`], { encoding: 'utf8' }).trim();
  const dir = mkdtempSync(join(os.tmpdir(), 'zd-bench-ref-'));
  dirs.push(dir);
  // scripts/ holds the build (`--built`); a commit older than it has none to archive.
  const top = new Set(execFileSync('git', ['-C', repo, 'ls-tree', '--name-only', sha], { encoding: 'utf8' }).split('\n'));
  const paths = ['src', 'machines', 'bin', 'scripts', 'package.json'].filter((path) => top.has(path));
  const tar = execFileSync('git', ['-C', repo, 'archive', '--format=tar', sha, ...paths], { maxBuffer: 256 * 2 ** 20 });
  execFileSync('tar', ['-x', '-C', dir], { input: tar });
  symlinkSync(join(repo, 'node_modules'), join(dir, 'node_modules'));
  return { sha, dir, main: join(dir, 'src', 'cli', 'main.ts') };
}

export function removeSnapshots() {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}
