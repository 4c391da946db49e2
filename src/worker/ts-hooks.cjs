// @ts-check
// The ES module side of zd's TypeScript support: one load hook, written synchronously so that it
// serves both module.register() (whose hooks thread awaits what it returns) and
// module.registerHooks() (which calls it in the worker's own thread, for import and require alike).
//   mode 'zd'   (a Node without type stripping, via ts-loader.mjs): sucrase compiles every
//               TypeScript file; a CommonJS one is left to the CommonJS loader, whose require hook
//               compiles it, so that the require() calls inside it stay CommonJS.
//   mode 'node' (Node strips types, via ts-strip.cjs): Node strips every file it can, and only a
//               file Node would refuse (an enum, a parameter property, `import x = require()`)
//               goes to sucrase, so that the same app runs on Node 20 and on Node 24.
'use strict';

const { readFileSync } = require('node:fs');
const { fileURLToPath } = require('node:url');
const ts = require('./ts-transform.cjs');

/** @type {'zd' | 'node'} */
let mode = 'zd';

/** module.register()'s data. @param {{ mode?: 'zd' | 'node' } | undefined} data */
function initialize(data) {
  if (data?.mode) mode = data.mode;
}

/** @param {'zd' | 'node'} value */
function setMode(value) {
  mode = value;
}

/** Node's own formats for TypeScript, and what they are once compiled (null: Node detects). */
const NODE_TS_FORMATS = /** @type {Record<string, 'module' | 'commonjs' | null>} */ ({
  'module-typescript': 'module',
  'commonjs-typescript': 'commonjs',
  typescript: null,
});

/**
 * @param {string} url
 * @param {{ format?: string | null | undefined }} context
 * @param {(url: string, context?: object) => any} nextLoad
 */
function load(url, context, nextLoad) {
  if (!url.startsWith('file:')) return nextLoad(url, context);
  const filename = fileURLToPath(url);
  if (!ts.TS_EXTENSION.test(filename)) return nextLoad(url, context);
  if (mode === 'node') return loadStripped(url, filename, context, nextLoad);

  const declared = ts.declaredFormat(filename);
  if (declared === 'commonjs') return { format: 'commonjs', shortCircuit: true };
  const compiled = ts.compile(readFileSync(filename, 'utf8'), filename, declared);
  if (compiled.format === 'commonjs') return { format: 'commonjs', shortCircuit: true };
  return { format: 'module', source: compiled.code, shortCircuit: true };
}

/**
 * @param {string} url @param {string} filename
 * @param {{ format?: string | null | undefined }} context
 * @param {(url: string, context?: object) => any} nextLoad
 */
function loadStripped(url, filename, context, nextLoad) {
  let result;
  try {
    result = nextLoad(url, context);
  } catch (error) {
    // A .ts in a package without "type": Node strips it already to detect its syntax.
    if (/** @type {NodeJS.ErrnoException} */ (error)?.code !== 'ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX') throw error;
    const compiled = ts.compile(readFileSync(filename, 'utf8'), filename);
    return { format: compiled.format, source: compiled.code, shortCircuit: true };
  }
  const compiledFormat = NODE_TS_FORMATS[result?.format];
  if (compiledFormat === undefined) return result;
  const source = result.source == null ? readFileSync(filename, 'utf8') : String(result.source);
  if (nodeStrips(source)) return result;
  const compiled = ts.compile(source, filename, compiledFormat);
  return { format: compiled.format, source: compiled.code, shortCircuit: true };
}

const Module = /** @type {{ stripTypeScriptTypes: (code: string, options?: object) => string }} */ (/** @type {unknown} */ (require('node:module')));
const stripMode = /** @type {{ typescript?: unknown }} */ (process.features).typescript === 'transform' ? 'transform' : 'strip';
let asked = false;

/** Whether Node's own stripping takes this source (a syntax error is Node's to report, too). */
function nodeStrips(/** @type {string} */ source) {
  try {
    quietFirstCall(() => Module.stripTypeScriptTypes(source, { mode: stripMode }));
    return true;
  } catch (error) {
    return /** @type {NodeJS.ErrnoException} */ (error)?.code !== 'ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX';
  }
}

/**
 * stripTypeScriptTypes() warns once per process that it is experimental. zd only asks it whether
 * Node would refuse a file; the app asked for nothing experimental, and its stderr stays its own.
 * @template T @param {() => T} ask @returns {T}
 */
function quietFirstCall(ask) {
  if (asked) return ask();
  const emitWarning = process.emitWarning;
  process.emitWarning = /** @type {typeof process.emitWarning} */ (
    (/** @type {any} */ warning, /** @type {any[]} */ ...rest) => {
      if (!/stripTypeScriptTypes/.test(String(warning?.message ?? warning))) emitWarning.call(process, warning, ...rest);
    }
  );
  try {
    return ask();
  } finally {
    process.emitWarning = emitWarning;
    asked = true;
  }
}

module.exports = { initialize, setMode, load };
