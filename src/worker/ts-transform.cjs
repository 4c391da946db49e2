// @ts-check
// zd's TypeScript compiler for workers whose Node cannot strip a file: sucrase, loaded on first use.
// It keeps to Node's own rules for TypeScript, so that an app behaves the same on every Node:
//   - .mts is an ES module, .cts CommonJS, .ts follows the nearest package.json's "type", and a .ts
//     in a package without one is an ES module if its syntax says so (Node's detection);
//   - only imports marked `type` are removed (`keepUnusedImports`, as Node and
//     `verbatimModuleSyntax` do): an interface imported without `type` fails on every Node alike;
//   - files under node_modules are refused, as Node refuses them.
// Beyond what Node strips, it compiles enums, parameter properties and `import x = require()`.
// Line numbers are kept (sucrase never adds or removes a line), so stack traces point at the .ts.
'use strict';

const { readFileSync } = require('node:fs');
const { dirname, join } = require('node:path');
const vm = require('node:vm');

const TS_EXTENSION = /\.[cm]?ts$/;

/** @typedef {'module' | 'commonjs'} Format */

/** @type {Map<string, string | null>} directory → the "type" of the package.json that governs it */
const packageTypes = new Map();

/** @param {string} dir @returns {string | null} */
function packageType(dir) {
  const known = packageTypes.get(dir);
  if (known !== undefined) return known;
  let type = null;
  let found = false;
  try {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    found = true;
    type = typeof pkg?.type === 'string' ? pkg.type : null;
  } catch (error) {
    // Node, too, stops at the nearest package.json even when it is not valid JSON.
    found = /** @type {NodeJS.ErrnoException} */ (error).code !== 'ENOENT' && /** @type {NodeJS.ErrnoException} */ (error).code !== 'ENOTDIR';
  }
  const parent = dirname(dir);
  if (!found && parent !== dir) type = packageType(parent);
  packageTypes.set(dir, type);
  return type;
}

/**
 * The format Node gives this file by its name and package, or null when its syntax decides.
 * @param {string} filename @returns {Format | null}
 */
function declaredFormat(filename) {
  if (filename.endsWith('.mts')) return 'module';
  if (filename.endsWith('.cts')) return 'commonjs';
  const type = packageType(dirname(filename));
  return type === 'module' ? 'module' : type === 'commonjs' ? 'commonjs' : null;
}

// The errors V8 gives ES module syntax compiled as a CommonJS body: what Node's own detection reads.
const MODULE_SYNTAX =
  /Cannot use import statement outside a module|Unexpected token 'export'|Cannot use 'import\.meta' outside a module|await is only valid in async functions and the top level bodies of modules/;

/** @param {string} code JavaScript @returns {boolean} */
function hasModuleSyntax(code) {
  try {
    vm.compileFunction(code, ['exports', 'require', 'module', '__filename', '__dirname']);
    return false;
  } catch (error) {
    return /** @type {Error} */ (error)?.name === 'SyntaxError' && MODULE_SYNTAX.test(/** @type {Error} */ (error).message);
  }
}

/** @type {typeof import('sucrase') | undefined} */
let sucrase;

/**
 * TypeScript source to JavaScript, and the format to run it as.
 * @param {string} source @param {string} filename @param {Format | null} [format] when known
 * @returns {{ format: Format, code: string }}
 */
function compile(source, filename, format = declaredFormat(filename)) {
  if (/[\\/]node_modules[\\/]/.test(filename)) {
    throw Object.assign(new Error(`Stripping types is currently unsupported for files under node_modules, for "${filename}"`), {
      code: 'ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING',
    });
  }
  refuseValueNamespaces(source, filename);
  const first = transform(source, filename, format === 'module');
  if (format !== null) return { format, code: first };
  if (!hasModuleSyntax(first)) return { format: 'commonjs', code: first };
  return { format: 'module', code: /\bimport\s+[\w$]+\s*=\s*require\s*\(/.test(source) ? transform(source, filename, true) : first };
}

/** @param {string} source @param {string} filename @param {boolean} esm */
function transform(source, filename, esm) {
  sucrase ??= /** @type {typeof import('sucrase')} */ (require('sucrase'));
  try {
    return sucrase.transform(source, {
      transforms: ['typescript'],
      filePath: filename,
      disableESTransforms: true,
      keepUnusedImports: true,
      // `import x = require('x')` in an ES module: TypeScript's own output under module "nodenext".
      injectCreateRequireForImportRequire: esm,
    }).code;
  } catch (error) {
    throw syntaxError(filename, /** @type {Error & { loc?: { line: number, column: number } }} */ (error));
  }
}

/** sucrase says "Unexpected token (3:10)"; Node's own errors name the file first. */
function syntaxError(/** @type {string} */ filename, /** @type {Error & { loc?: { line: number, column: number } }} */ error) {
  const where = error.loc ? `${filename}:${error.loc.line}:${error.loc.column}` : filename;
  const what = error.message.replace(/^Error transforming [^:]*: /, '').replace(/ \(\d+:\d+\)$/, '');
  const out = new SyntaxError(`${what} at ${where} (zd's TypeScript loader)`);
  out.stack = `SyntaxError: ${out.message}\n    at ${where}`;
  return out;
}

/**
 * sucrase drops every namespace as if it held only types: a namespace with values would vanish
 * and fail later as a ReferenceError far from its cause. Refused here, with where it is.
 * @param {string} source @param {string} filename
 */
function refuseValueNamespaces(source, filename) {
  if (!/\b(namespace|module)\s+[\w$]/.test(source)) return;
  // sucrase's parser is not its documented API: if its layout changes, the check is skipped.
  const internal = /** @type {(id: string) => any} */ (require);
  let tokens;
  let names;
  let ContextualKeyword;
  try {
    names = internal('sucrase/dist/parser/tokenizer/types').TokenType;
    ({ ContextualKeyword } = internal('sucrase/dist/parser/tokenizer/keywords'));
    tokens = internal('sucrase/dist/parser').parse(source, false, true, false).tokens;
  } catch {
    return; // a syntax error is for the transform to report, with where it is
  }
  const valueKeywords = new Set([names._const, names._var, names._let, names._function, names._class, names._enum]);
  for (let i = 0; i < tokens.length; i++) {
    const kw = tokens[i].contextualKeyword;
    if (kw !== ContextualKeyword._namespace && kw !== ContextualKeyword._module) continue;
    if (tokens[i + 1]?.type !== names.name) continue;
    const before = tokens[i - 1];
    if (before && (before.type === names._declare || before.contextualKeyword === ContextualKeyword._declare)) continue;
    let j = i + 1;
    while (j < tokens.length && tokens[j].type !== names.braceL) j++;
    let depth = 0;
    for (let k = j; k < tokens.length; k++) {
      const t = tokens[k];
      if (t.type === names.braceL || t.type === names.dollarBraceL) depth++;
      else if (t.type === names.braceR) {
        if (--depth === 0) break;
      } else if (depth === 1 && valueKeywords.has(t.type)) {
        const prev = tokens[k - 1];
        if (prev && (prev.type === names._declare || prev.contextualKeyword === ContextualKeyword._declare)) continue;
        const line = source.slice(0, tokens[i].start).split('\n').length;
        const name = source.slice(tokens[i + 1].start, tokens[i + 1].end);
        throw syntaxError(filename, Object.assign(new Error(`TypeScript namespace '${name}' holds values, which neither Node's type stripping nor zd's loader compiles: use a module or an object`), { loc: { line, column: 1 } }));
      }
    }
  }
}

module.exports = { TS_EXTENSION, declaredFormat, compile, hasModuleSyntax };
