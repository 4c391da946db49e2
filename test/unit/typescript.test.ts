// Issue #10, item 6: how the primary decides, once and before forking, how a TypeScript app runs;
// and what zd's loader (sucrase) does with a file, so that it keeps to Node's own rules.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { chooseTypeScriptMode, probeTypeScript, typeScriptExecArgv, typeScriptFor, type TypeScriptFacts } from '../../src/cli/typescript.ts';
import { ZdError } from '../../src/errors.ts';

const require = createRequire(import.meta.url);
const workerDir = fileURLToPath(new URL('../../src/worker/', import.meta.url));
const ts = require(join(workerDir, 'ts-transform.cjs')) as {
  compile(source: string, filename: string, format?: 'module' | 'commonjs' | null): { format: string; code: string };
};

const node20: TypeScriptFacts = { nodeVersion: 'v20.20.2', nodeStrips: false, syncHooks: false, asyncHooks: true, sucrase: true };
const node24: TypeScriptFacts = { nodeVersion: 'v24.9.0', nodeStrips: 'strip', syncHooks: true, asyncHooks: true, sucrase: true };

describe('the primary picks the mode', () => {
  it('a JavaScript app gets no TypeScript flag at all', () => {
    for (const app of ['/srv/app.js', '/srv/app.mjs', '/srv/app.cjs', '/srv/app.tsx', '/srv/ts']) {
      assert.equal(chooseTypeScriptMode(app, node20), null, app);
      assert.deepEqual(typeScriptFor(app, join(workerDir, 'bootstrap.cjs')), { mode: null, execArgv: [] });
    }
  });

  it("Node that strips: Node's stripping, zd's loader for the files it refuses (--require ts-strip.cjs)", () => {
    for (const app of ['/srv/app.ts', '/srv/app.mts', '/srv/app.cts']) assert.equal(chooseTypeScriptMode(app, node24), 'node');
    assert.deepEqual(typeScriptExecArgv('node', '/pkg/src/worker'), ['--require', '/pkg/src/worker/ts-strip.cjs']);
  });

  it("Node 20: zd's loader, through --import so that the entry loads as an ES module loader would", () => {
    assert.equal(chooseTypeScriptMode('/srv/app.ts', node20), 'zd');
    assert.deepEqual(typeScriptExecArgv('zd', '/pkg dir/src/worker'), ['--import', 'file:///pkg%20dir/src/worker/ts-loader.mjs']);
  });

  it("Node's stripping alone when it transforms itself, or when zd's fallback cannot work", () => {
    assert.equal(chooseTypeScriptMode('/srv/app.ts', { ...node24, nodeStrips: 'transform' }), 'node-only');
    assert.equal(chooseTypeScriptMode('/srv/app.ts', { ...node24, syncHooks: false }), 'node-only');
    assert.equal(chooseTypeScriptMode('/srv/app.ts', { ...node24, sucrase: false }), 'node-only');
    assert.deepEqual(typeScriptExecArgv('node-only', '/pkg/src/worker'), []);
  });

  it('neither: one line with a stable code, exit 2, naming the app and what to do', () => {
    for (const facts of [{ ...node20, sucrase: false }, { ...node20, asyncHooks: false }]) {
      let caught: unknown;
      try {
        chooseTypeScriptMode('/srv/app.ts', facts);
      } catch (error) {
        caught = error;
      }
      assert.ok(caught instanceof ZdError, String(caught));
      assert.equal(caught.code, 'ZD_E_TYPESCRIPT');
      assert.equal(caught.exitCode, 2);
      assert.equal(caught.toLine().split('\n').length, 1);
      assert.match(caught.message, /\/srv\/app\.ts/);
      assert.match(caught.message, /Node ≥ 22\.18|compile it to JavaScript/);
    }
  });

  it("this Node and this checkout: the probe finds sucrase, and the flags name files that exist", () => {
    const facts = probeTypeScript(workerDir);
    assert.equal(facts.sucrase, true);
    assert.equal(facts.asyncHooks, true);
    const { execArgv } = typeScriptFor('/srv/app.ts', join(workerDir, 'bootstrap.cjs'));
    const file = execArgv[1]!.startsWith('file:') ? fileURLToPath(execArgv[1]!) : execArgv[1]!;
    assert.ok(existsSync(file), file);
    assert.equal(dirname(file), dirname(join(workerDir, 'bootstrap.cjs')));
  });
});

describe("zd's loader keeps to Node's rules", () => {
  it('keeps every line where it was, so stack traces point at the .ts', () => {
    const source = 'interface A {\n  x: number;\n}\nenum E { One = 1 }\nclass C { constructor(private a: number) {} }\nthrow new Error("line 6");\n';
    const { code } = ts.compile(source, '/srv/app.ts', 'commonjs');
    assert.equal(code.split('\n').length, source.split('\n').length);
    assert.match(code.split('\n')[5]!, /line 6/);
  });

  it('removes only imports marked `type`, as Node does', () => {
    const { code } = ts.compile("import type { T } from './t.ts';\nimport { U } from './u.ts';\nexport const x: number = 1;\n", '/srv/a.mts');
    assert.doesNotMatch(code, /t\.ts/);
    assert.match(code, /import \{ ?U ?\} from '\.\/u\.ts'/);
  });

  it('a .ts without "type" is an ES module when its syntax says so', () => {
    assert.equal(ts.compile('export const a: number = 1;\n', '/nowhere-zd/a.ts').format, 'module');
    assert.equal(ts.compile('const a: number = await Promise.resolve(1);\n', '/nowhere-zd/a.ts').format, 'module');
    assert.equal(ts.compile('module.exports = 1 as number;\n', '/nowhere-zd/a.ts').format, 'commonjs');
  });

  it('refuses a namespace with values, which sucrase would silently drop', () => {
    assert.throws(() => ts.compile('namespace N {\n  export const z = 1;\n}\n', '/srv/a.ts', 'commonjs'), /namespace 'N' holds values.*\/srv\/a\.ts:1/);
    assert.doesNotThrow(() => ts.compile('namespace N {\n  export interface I { const: 1 }\n}\ndeclare namespace D { const x: number }\n', '/srv/a.ts', 'commonjs'));
  });

  it('a syntax error names the file, line and column', () => {
    assert.throws(() => ts.compile('const a = 1;\nconst b: number = ;\n', '/srv/a.ts', 'commonjs'), (error: Error) => {
      assert.equal(error.name, 'SyntaxError');
      assert.match(error.message, /\/srv\/a\.ts:2:\d+/);
      return true;
    });
  });

  it('refuses files under node_modules, as Node does', () => {
    assert.throws(() => ts.compile('export {}', '/srv/node_modules/dep/index.ts'), { code: 'ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING' });
  });
});
