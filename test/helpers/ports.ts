import { connect, createServer } from 'node:net';
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';

/**
 * A port that was free a moment ago on 127.0.0.1, below the kernel's ephemeral range: a port the
 * OS picked (listen on 0) comes from that range, so a client connecting meanwhile (a load
 * generator, a health check) may take it as its local port and make zd's bind fail. Tried at
 * random, so that files run one after another rarely ask for the same port twice.
 */
export async function freePort(): Promise<number> {
  const [low] = ephemeralRange();
  const from = Math.max(1024, Math.min(20_000, low - 10_000));
  const to = Math.max(from + 1000, Math.min(low, 65_536) - 1);
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = from + Math.floor(Math.random() * (to - from));
    if (await bindable(port)) return port;
  }
  throw new Error(`freePort: no free port in ${from}-${to} after 50 tries`);
}

function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) return [low!, high!];
  } catch {
    // not Linux: the IANA range
  }
  return [49152, 65535];
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** An IPv4 address of this machine that is not loopback, or null: for "binds 127.0.0.1 only" checks. */
export function otherAddress(): string | null {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return null;
}

/** How a TCP connection to host:port ends: 'connected', 'timeout' (2 s), or the error's code. */
export function tcpOutcome(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.setTimeout(2000, () => {
      socket.destroy();
      resolve('timeout');
    });
    socket.on('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}
