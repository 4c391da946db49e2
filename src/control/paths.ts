// Where a running zd's control socket lives: one directory per user that only the user can
// enter ($XDG_RUNTIME_DIR/zd, else <tmp>/zd-<uid>), one socket per instance, named by --name.
import { chmodSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, extname, join } from 'node:path';
import { ZdError } from '../errors.ts';

/** Unix socket paths longer than this do not fit in sockaddr_un on Linux. */
const MAX_SOCKET_PATH = 107;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function runtimeDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.ZD_RUNTIME_DIR) return env.ZD_RUNTIME_DIR;
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'zd');
  return join(tmpdir(), `zd-${process.getuid?.() ?? 'user'}`);
}

/** Creates the runtime directory if needed, and refuses one that others could enter. */
export function ensureRuntimeDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new ZdError('ZD_E_RUNTIME_DIR', `cannot create the runtime directory ${dir}: ${(error as Error).message}`, 1);
  }
  const stat = lstatSync(dir);
  if (!stat.isDirectory()) throw new ZdError('ZD_E_RUNTIME_DIR', `${dir} is not a directory`, 1);
  if (process.getuid && stat.uid !== process.getuid()) {
    throw new ZdError('ZD_E_RUNTIME_DIR', `${dir} belongs to another user: refusing to put a control socket there`, 1);
  }
  if ((stat.mode & 0o077) !== 0) chmodSync(dir, 0o700);
}

/** The default instance name: the app file's name without its extension (`server.js` → `server`). */
export function defaultName(app: string): string {
  const name = basename(app, extname(app)).replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  return name === '' ? 'app' : name.slice(0, 64);
}

export function checkName(name: string): string {
  if (!NAME.test(name)) {
    throw new ZdError('ZD_E_BAD_VALUE', `--name '${name}' must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
  return name;
}

export function socketPath(dir: string, name: string): string {
  const path = join(dir, `${name}.sock`);
  if (path.length > MAX_SOCKET_PATH) {
    throw new ZdError('ZD_E_RUNTIME_DIR', `control socket path too long (${path.length} > ${MAX_SOCKET_PATH}): set ZD_RUNTIME_DIR to a shorter directory`, 1);
  }
  return path;
}

/** Names of the instances with a socket in the runtime directory (running or stale). */
export function listNames(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((file) => file.endsWith('.sock'))
      .map((file) => file.slice(0, -'.sock'.length))
      .sort();
  } catch {
    return [];
  }
}
