// Which release a generation runs. Deploy tools (Capistrano, Deployer, ansistrano, hand-written
// scripts) unpack each release in a directory of its own and flip a `current` symlink to it; zd
// is started from the link (`cd /srv/app/current && zd run app.js`). So zd remembers the paths as
// the user named them — through the link — and resolves them again each time a reload is asked
// for: the new generation runs the release the link points at then, in that release's directory,
// and keeps running it (a crash respawn never picks up a half-deployed release).
import { realpathSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import type { Release, ReleaseProblem } from '../core/events.ts';

/** The app and working directory as the user named them (symlinks kept), and the app's arguments. */
export interface ReleaseSource {
  app: string;
  cwd: string;
  args: string[];
}

/**
 * The paths as the user named them. The kernel resolves the working directory (process.cwd() is
 * the release the link pointed at when zd started), but the shell keeps the name it was reached
 * by in $PWD, which Unicorn reads for the same reason. Without $PWD (systemd's WorkingDirectory=),
 * the app path may still name the link: the ancestor of the app that is the working directory.
 */
export function releaseSource(app: string, args: string[], env: NodeJS.ProcessEnv = process.env, realCwd = process.cwd()): ReleaseSource {
  const real = safeRealpath(realCwd) ?? realCwd;
  const pwd = env.PWD;
  if (pwd && isAbsolute(pwd) && safeRealpath(pwd) === real) {
    // `app` was resolved against the real directory: name it through $PWD instead.
    const inside = app === realCwd || app.startsWith(realCwd + sep);
    return { app: inside ? join(pwd, relative(realCwd, app)) : app, cwd: pwd, args };
  }
  for (let dir = dirname(app); dir !== dirname(dir); dir = dirname(dir)) {
    if (safeRealpath(dir) === real) return { app, cwd: dir, args };
  }
  return { app, cwd: realCwd, args };
}

/** Resolves every link once: what a new generation is pinned to. */
export function resolveRelease(source: ReleaseSource): Release | ReleaseProblem {
  let app: string;
  let cwd: string;
  try {
    app = realpathSync(source.app);
  } catch (error) {
    return { problem: `the app ${source.app} cannot be found (${(error as NodeJS.ErrnoException).code ?? 'error'}): is the release complete, and does the link point at it?` };
  }
  try {
    cwd = realpathSync(source.cwd);
  } catch (error) {
    return { problem: `the working directory ${source.cwd} cannot be found (${(error as NodeJS.ErrnoException).code ?? 'error'})` };
  }
  return { app, cwd, args: source.args };
}

function safeRealpath(path: string): string | null {
  try {
    return realpathSync(path);
  } catch {
    return null;
  }
}
