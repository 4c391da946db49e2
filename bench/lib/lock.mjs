// One benchmark at a time on a machine: two would share the cores and skew each other's numbers.
// The same lock file as bench/run.mjs's, so the focused benchmarks and the full run exclude each other.
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { isAlive } from './procs.mjs';

const LOCK = join(os.tmpdir(), 'zd-bench.lock');

/** Takes the lock, or exits 2 naming the benchmark that holds it. */
export function takeLock(name) {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(LOCK, String(process.pid), { flag: 'wx' });
      return;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      const holder = Number(readFileSync(LOCK, 'utf8').trim());
      if (holder && holder !== process.pid && isAlive(holder)) {
        process.stderr.write(`${name}: another benchmark (pid ${holder}) is running on this machine (${LOCK}): wait for it, or stop it\n`);
        process.exit(2);
      }
      unlinkSync(LOCK); // left by a run that died
    }
  }
}

export function releaseLock() {
  try {
    if (Number(readFileSync(LOCK, 'utf8').trim()) === process.pid) unlinkSync(LOCK);
  } catch {
    // not ours, or gone
  }
}
