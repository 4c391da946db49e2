// Where `zd run` finds its settings when not all of them are on the command line: `--config FILE`,
// else `zd.config.json` in the working directory, else a "zd" key in its package.json.
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { ZdError } from '../errors.ts';

export interface ConfigFile {
  path: string;
  /** How a problem names it: `zd.config.json`, or `package.json "zd"`. */
  label: string;
  values: Record<string, unknown>;
}

export function loadConfigFile(explicit: string | null, cwd: string): ConfigFile | null {
  if (explicit !== null) {
    const path = resolve(cwd, explicit);
    if (!existsSync(path)) throw new ZdError('ZD_E_CONFIG', `config file not found: ${explicit}`);
    return read(path, basename(path), null);
  }
  const own = join(cwd, 'zd.config.json');
  if (existsSync(own)) return read(own, 'zd.config.json', null);
  const pkg = join(cwd, 'package.json');
  if (existsSync(pkg)) return read(pkg, 'package.json "zd"', 'zd');
  return null;
}

function read(path: string, label: string, key: string | null): ConfigFile | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    if (key !== null) return null; // someone else's package.json problem, not ours
    throw new ZdError('ZD_E_CONFIG', `${label}: not valid JSON (${(error as Error).message.split('\n')[0]})`);
  }
  const values = key === null ? parsed : (parsed as Record<string, unknown> | null)?.[key];
  if (values === undefined && key !== null) return null;
  if (typeof values !== 'object' || values === null || Array.isArray(values)) {
    throw new ZdError('ZD_E_CONFIG', `${label}: must be a JSON object of settings, like {"workers": 4}`);
  }
  return { path, label, values: values as Record<string, unknown> };
}
