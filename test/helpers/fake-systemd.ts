// Under test/fixtures/fake-systemd.cjs, which holds the listening socket and starts zd as systemd
// would: finding the zd process it started.
import { readdirSync, readFileSync } from 'node:fs';
import { waitUntil } from './wait.ts';
import { zdBin, type Zd } from './zd.ts';

/**
 * The zd process the fake systemd started (the pid systemd knows, and signals): its child running
 * bin/zd.js, other than `not`. zd may start processes of its own under it (a primary under a keeper).
 */
export function zdProcess(fake: Zd, not?: number): Promise<number> {
  return waitUntil(
    () =>
      readdirSync('/proc')
        .filter((name) => /^\d+$/.test(name))
        .map(Number)
        .find((pid) => {
          if (pid === not) return false;
          try {
            const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
            const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
            return ppid === fake.pid && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(zdBin);
          } catch {
            return false;
          }
        }),
    20_000,
    () => `the zd process under the fake systemd\n${fake.transcript()}`,
  );
}
