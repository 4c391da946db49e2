// The CLI's side of the control socket: find the instance, send one request, read its replies.
// Every wait has a deadline; a socket nobody answers on is a stale one and is cleaned up.
import { lstatSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { answers, lineReader } from './socket.ts';
import { ZdError } from '../errors.ts';
import { checkName, listNames, runtimeDir, socketPath } from './paths.ts';
import type { ControlRequest } from './protocol.ts';

export interface Instance {
  name: string;
  path: string;
}

const CONNECT_TIMEOUT_MS = 2000;

/** The named instance, or the only one running when no name is given. */
export async function findInstance(name: string | undefined, env = process.env): Promise<Instance> {
  const dir = runtimeDir(env);
  if (name !== undefined) {
    const path = socketPath(dir, checkName(name));
    if (!(await probe(path))) throw notRunning(name, path);
    return { name, path };
  }
  const live = await liveInstances(env);
  if (live.length === 1) return live[0]!;
  if (live.length === 0) throw new ZdError('ZD_E_NOT_RUNNING', 'no zd instance is running (start one with zd run)', 1);
  throw new ZdError('ZD_E_AMBIGUOUS', `several zd instances are running (${live.map((i) => i.name).join(', ')}): name one`, 1);
}

/** Every instance that answers; stale sockets found on the way are removed. */
export async function liveInstances(env = process.env): Promise<Instance[]> {
  const dir = runtimeDir(env);
  const found: Instance[] = [];
  for (const name of listNames(dir)) {
    const path = socketPath(dir, name);
    if (await probe(path)) found.push({ name, path });
  }
  return found;
}

function notRunning(name: string, path: string): ZdError {
  return new ZdError('ZD_E_NOT_RUNNING', `no zd instance named '${name}' is running (looked for ${path})`, 1);
}

/** Whether something answers on the socket; a socket file nobody answers on is removed. */
async function probe(path: string): Promise<boolean> {
  let isSocket = false;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return false;
  }
  if (!isSocket) return false;
  const answered = await answers(path, CONNECT_TIMEOUT_MS, false);
  if (!answered) {
    try {
      unlinkSync(path);
      process.stderr.write(`zd: removed a stale control socket left by a zd that was killed: ${path}\n`);
    } catch {
      // someone else cleaned it up
    }
  }
  return answered;
}

/**
 * Sends one request and hands every reply line to `onMessage` until it returns `false`, the
 * server closes, or `timeoutMs` passes.
 */
export function request(
  instance: Instance,
  body: ControlRequest,
  onMessage: (message: Record<string, unknown>) => boolean,
  timeoutMs: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(instance.path);
    let settled = false;
    const done = (error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve();
    };
    const timer = setTimeout(
      () => done(new ZdError('ZD_E_TIMEOUT', `no answer from '${instance.name}' within ${timeoutMs}ms`, 1)),
      timeoutMs,
    );
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write(`${JSON.stringify(body)}\n`));
    socket.on(
      'data',
      lineReader((line) => {
        if (settled) return false;
        let message: Record<string, unknown>;
        try {
          message = JSON.parse(line) as Record<string, unknown>;
        } catch {
          done(new ZdError('ZD_E_CONTROL', `'${instance.name}' answered something that is not JSON`, 1));
          return false;
        }
        if (!onMessage(message)) done();
        return !settled;
      }),
    );
    socket.on('error', (error) => done(new ZdError('ZD_E_CONTROL', `control socket of '${instance.name}': ${error.message}`, 1)));
    socket.on('close', () => done());
  });
}
