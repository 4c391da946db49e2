// What the kernel says about listening sockets, for tests that must tell who holds a port.
import { readFileSync } from 'node:fs';

/** Inodes of the TCP sockets listening on `port`, on any address, from the kernel's own tables. */
export function listeningInodes(port: number): string[] {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const out: string[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const row of readFileSync(table, 'utf8').trim().split('\n').slice(1)) {
      const cols = row.trim().split(/\s+/);
      // cols[1] local address:port, cols[3] state (0A: LISTEN), cols[9] inode.
      if (cols[1]!.endsWith(`:${hex}`) && cols[3] === '0A') out.push(cols[9]!);
    }
  }
  return out;
}
