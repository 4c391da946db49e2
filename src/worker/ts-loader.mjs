// @ts-check
// zd's TypeScript loader, preloaded (`--import`, after bootstrap.cjs) into the workers of a
// TypeScript app when their Node cannot strip types (Node 20, or stripping turned off): ES module
// hooks through module.register(), and a require hook for the .ts/.cts files CommonJS loads.
// Through --import, Node also loads the entry with its ES module loader, so that an .mts entry is
// an ES module in any package.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const Module = /** @type {any} */ (require('node:module'));
const ts = /** @type {typeof import('./ts-transform.cjs')} */ (require('./ts-transform.cjs'));

Module.register('./ts-hooks.cjs', { parentURL: import.meta.url, data: { mode: 'zd' } });

/** @param {string} ext @param {(module: any, filename: string) => void} compile */
function define(ext, compile) {
  // Not enumerable: require('./util') must not find util.ts, as Node's own stripping does not.
  Object.defineProperty(Module._extensions, ext, { value: compile, enumerable: false, configurable: true, writable: true });
}

/** @param {any} module @param {string} filename */
function compileCommonJs(module, filename) {
  const { format, code } = ts.compile(readFileSync(filename, 'utf8'), filename);
  if (format === 'module') throw requireEsm(filename);
  module._compile(code, filename);
}

define('.ts', compileCommonJs);
define('.cts', compileCommonJs);
define('.mts', (/** @type {any} */ _module, /** @type {string} */ filename) => {
  throw requireEsm(filename);
});

/** @param {string} filename */
function requireEsm(filename) {
  return Object.assign(
    new Error(`require() of the ES module ${filename} is not supported by zd's TypeScript loader on Node ${process.version}: use import()`),
    { code: 'ERR_REQUIRE_ESM' },
  );
}
