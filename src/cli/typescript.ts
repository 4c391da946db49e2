// How the workers of a TypeScript app (.ts, .mts, .cts) run it: decided once, by the primary,
// before anything is forked, from what this Node can do. Workers never decide; they get the
// flags. A JavaScript app gets no flag and loads nothing of this.
import Module, { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ZdError } from '../errors.ts';

/**
 * - `node`: Node strips types, and zd's loader compiles only the files Node would refuse (enums,
 *   parameter properties, `import x = require()`): the same app runs on every Node.
 * - `node-only`: Node compiles everything itself (`--experimental-transform-types`), or zd's
 *   loader is missing; Node's own errors stand.
 * - `zd`: Node cannot strip types (Node 20, or stripping turned off): zd's loader (sucrase).
 */
export type TypeScriptMode = 'node' | 'node-only' | 'zd';

/** What this Node and this installation offer, probed once (injected in tests). */
export interface TypeScriptFacts {
  nodeVersion: string;
  /** process.features.typescript: 'strip' | 'transform' when Node strips types, else false. */
  nodeStrips: 'strip' | 'transform' | false;
  /** module.registerHooks and module.stripTypeScriptTypes: what zd's fallback needs next to Node's stripping. */
  syncHooks: boolean;
  /** module.register(): what zd's loader needs without Node's stripping (Node ≥ 20.6). */
  asyncHooks: boolean;
  /** sucrase resolves from zd's worker directory. */
  sucrase: boolean;
}

const TS_EXTENSIONS = new Set(['.ts', '.mts', '.cts']);

/** The mode for this app, null for a JavaScript app; a ZdError (exit 2) when none can work. */
export function chooseTypeScriptMode(app: string, facts: TypeScriptFacts): TypeScriptMode | null {
  if (!TS_EXTENSIONS.has(extname(app))) return null;
  if (facts.nodeStrips === 'transform') return 'node-only';
  if (facts.nodeStrips === 'strip') return facts.syncHooks && facts.sucrase ? 'node' : 'node-only';
  if (facts.asyncHooks && facts.sucrase) return 'zd';
  const missing = facts.asyncHooks ? "the sucrase package zd's loader needs is not installed (reinstall zd)" : "zd's loader needs Node ≥ 20.6";
  throw new ZdError(
    'ZD_E_TYPESCRIPT',
    `cannot run ${app}: Node ${facts.nodeVersion} does not strip TypeScript types and ${missing}; run it on Node ≥ 22.18, or compile it to JavaScript`,
  );
}

/** The workers' extra Node flags for this mode; the loader files sit beside the worker bootstrap. */
export function typeScriptExecArgv(mode: TypeScriptMode | null, workerDir: string): string[] {
  if (mode === 'node') return ['--require', join(workerDir, 'ts-strip.cjs')];
  // --import, not --require: Node then loads the entry as an ES module loader would (an .mts entry
  // in a CommonJS package), through zd's hooks.
  if (mode === 'zd') return ['--import', pathToFileURL(join(workerDir, 'ts-loader.mjs')).href];
  return [];
}

export function probeTypeScript(workerDir: string): TypeScriptFacts {
  const features = process.features as { typescript?: 'strip' | 'transform' | false };
  const module = Module as unknown as Record<string, unknown>;
  let sucrase = true;
  try {
    createRequire(join(workerDir, 'ts-transform.cjs')).resolve('sucrase');
  } catch {
    sucrase = false;
  }
  return {
    nodeVersion: process.version,
    nodeStrips: features.typescript ?? false,
    syncHooks: typeof module.registerHooks === 'function' && typeof module.stripTypeScriptTypes === 'function',
    asyncHooks: typeof module.register === 'function',
    sucrase,
  };
}

/** The decision and its flags, for an app whose workers' bootstrap is `bootstrapPath`. */
export function typeScriptFor(app: string, bootstrapPath: string): { mode: TypeScriptMode | null; execArgv: string[] } {
  if (!TS_EXTENSIONS.has(extname(app))) return { mode: null, execArgv: [] };
  const workerDir = dirname(bootstrapPath);
  const mode = chooseTypeScriptMode(app, probeTypeScript(workerDir));
  return { mode, execArgv: typeScriptExecArgv(mode, workerDir) };
}
