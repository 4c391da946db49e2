// sd_listen_fds(3)'s count, checked: shared by the keeper (which systemd starts) and a primary run
// without one. Only node:fs: the keeper loads this, and must load little.
import { fstatSync } from 'node:fs';

const SD_LISTEN_FDS_START = 3;

/**
 * The descriptors LISTEN_FDS names (3, 4, …), each checked to be a socket; a bad value throws
 * one line that says what to do.
 */
export function listenFds(raw: string): number[] {
  const count = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || count > 1024) {
    throw new Error(`LISTEN_FDS=${raw} is not a count of sockets: systemd sets it to the number of sockets it passes (fds 3…); unset it to let zd bind its own ports`);
  }
  const fds = Array.from({ length: count }, (_, i) => SD_LISTEN_FDS_START + i);
  for (const fd of fds) {
    let socket = false;
    try {
      socket = fstatSync(fd).isSocket();
    } catch {
      // not open
    }
    if (!socket) throw new Error(`LISTEN_FDS=${raw} but fd ${fd} is not an open socket: pass the sockets on fds 3…, or unset LISTEN_FDS`);
  }
  return fds;
}

