// A deploy is simulated by copying a fixture into a fresh directory, running zd on that copy, then
// overwriting the copy with other code before a SIGHUP.
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const fixturesDir = fileURLToPath(new URL('../fixtures/', import.meta.url));

export function fixturePath(name: string): string {
  return join(fixturesDir, name);
}

export function readFixture(name: string): string {
  return readFileSync(fixturePath(name), 'utf8');
}

export interface AppCopy {
  dir: string;
  /** Absolute path of the app file zd runs. */
  file: string;
  /** Replaces the app with this source, atomically so a worker never loads half a file. */
  write(source: string): void;
  /** Replaces the app with the source of another fixture. */
  writeFixture(name: string): void;
  cleanup(): void;
}

const copies = new Set<AppCopy>();

export function copyFixture(name: string, as = 'app.cjs'): AppCopy {
  const dir = mkdtempSync(join(tmpdir(), 'zd-test-'));
  const file = join(dir, as);
  copyFileSync(fixturePath(name), file);
  let writes = 0;
  const copy: AppCopy = {
    dir,
    file,
    write(source) {
      const next = join(dir, `.next-${writes++}`);
      writeFileSync(next, source);
      renameSync(next, file);
    },
    writeFixture(fixture) {
      copy.write(readFixture(fixture));
    },
    cleanup() {
      copies.delete(copy);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  copies.add(copy);
  return copy;
}

export function cleanupCopies(): void {
  for (const copy of [...copies]) copy.cleanup();
}
