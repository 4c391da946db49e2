// `zd run`'s command line: what a valid one yields, and that each mistake is one ZdError with a
// stable code and a single line of message (it is printed as `zd: <message> [<code>]`).
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MAX_WORKERS, parseRunArgs } from '../../src/cli/run-options.ts';
import { DEFAULTS } from '../../src/core/config.ts';
import { ZdError, type ErrorCode } from '../../src/errors.ts';

let dir: string;
let app: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'zd-run-options-'));
  app = join(dir, 'app.js');
  writeFileSync(app, 'require("node:http").createServer().listen(0);\n');
  mkdirSync(join(dir, 'folder'));
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function rejects(argv: () => string[], code: ErrorCode, env: NodeJS.ProcessEnv = {}): ZdError {
  let caught: unknown;
  try {
    parseRunArgs(argv(), env);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ZdError, `expected a ZdError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.ok(caught.message.length > 0);
  assert.doesNotMatch(caught.message, /\n/, 'the message is one line');
  assert.doesNotMatch(caught.toLine(), /\n/);
  return caught;
}

describe('parseRunArgs: a valid command', () => {
  it('resolves the app, parses every option and keeps the app’s own args after --', () => {
    const options = parseRunArgs(
      [
        relative(process.cwd(), app),
        '-w', '3',
        '--ready', 'message',
        '--ready-timeout', '1m',
        '--drain-timeout', '2s',
        '--kill-timeout', '500ms',
        '--max-restarts', '4',
        '--log-format', 'json',
        '--', '--port', '8080', '-w', 'x',
      ],
      { WORKER_COUNT: '7' },
    );
    assert.equal(options.app, app, 'an absolute path, whatever the cwd-relative spelling');
    assert.deepEqual(options.args, ['--port', '8080', '-w', 'x']);
    assert.equal(options.shell.logFormat, 'json');
    assert.deepEqual(options.config, {
      ...DEFAULTS,
      workers: 3,
      readyOn: 'message',
      readyTimeoutMs: 60_000,
      drainTimeoutMs: 2000,
      killTimeoutMs: 500,
      maxRestarts: 4,
    });
  });

  it('long flags with = work too', () => {
    const options = parseRunArgs([app, '--workers=2', '--drain-timeout=0'], {});
    assert.equal(options.config.workers, 2);
    assert.equal(options.config.drainTimeoutMs, 0);
  });

  it('with only the app: defaults, no app args, no log format', () => {
    const options = parseRunArgs([app], {});
    assert.deepEqual(options.args, []);
    assert.equal(options.shell.logFormat, null);
    assert.deepEqual(options.config, { ...DEFAULTS, workers: availableParallelism() });
  });

  it('WORKER_COUNT is the worker count when there is no -w', () => {
    assert.equal(parseRunArgs([app], { WORKER_COUNT: '5' }).config.workers, 5);
    assert.equal(parseRunArgs([app, '-w', '2'], { WORKER_COUNT: '5' }).config.workers, 2, '-w wins');
    assert.equal(parseRunArgs([app], { WORKER_COUNT: '' }).config.workers, availableParallelism());
  });

  it(`accepts up to ${MAX_WORKERS} workers`, () => {
    assert.equal(parseRunArgs([app, '-w', String(MAX_WORKERS)], {}).config.workers, MAX_WORKERS);
  });
});

describe('parseRunArgs: mistakes', () => {
  it('an unknown flag', () => {
    const error = rejects(() => ['--nope', app], 'ZD_E_UNKNOWN_FLAG');
    assert.match(error.message, /--nope/);
    rejects(() => [app, '-x'], 'ZD_E_UNKNOWN_FLAG');
  });

  it('an app file that does not exist', () => {
    const error = rejects(() => [join(dir, 'missing.js')], 'ZD_E_APP_MISSING');
    assert.match(error.message, /missing\.js/);
  });

  it('an app that is a directory', () => {
    rejects(() => [join(dir, 'folder')], 'ZD_E_APP_NOT_FILE');
  });

  it('an unreadable app file', (t) => {
    // root passes every R_OK check, so the case cannot be produced when the tests run as root.
    if (process.getuid?.() === 0) {
      t.skip('running as root: access(R_OK) always succeeds');
      return;
    }
    const locked = join(dir, 'locked.js');
    writeFileSync(locked, '');
    chmodSync(locked, 0o000);
    try {
      rejects(() => [locked], 'ZD_E_APP_UNREADABLE');
    } finally {
      chmodSync(locked, 0o600);
    }
  });

  for (const count of ['0', 'abc', '5000', '1.5', '2x', String(MAX_WORKERS + 1)]) {
    it(`-w ${count}`, () => {
      const error = rejects(() => [app, '-w', count], 'ZD_E_BAD_WORKERS');
      assert.match(error.message, /--workers/);
    });
  }

  it('--workers=-1', () => {
    rejects(() => [app, '--workers=-1'], 'ZD_E_BAD_WORKERS');
  });

  // util.parseArgs refuses a value that starts with a dash as "ambiguous", in three lines; zd joins
  // such a value to its option so that the option's own check answers, in one line.
  it('-w -1', () => {
    rejects(() => [app, '-w', '-1'], 'ZD_E_BAD_WORKERS');
  });

  it('any dash-led option value is refused in one line', () => {
    for (const argv of [[app, '-w', '-1'], [app, '--drain-timeout', '-5s'], [app, '--ready', '--nope']]) {
      try {
        parseRunArgs(argv, {});
        assert.fail(`accepted ${argv.join(' ')}`);
      } catch (error) {
        assert.ok(error instanceof ZdError);
        assert.doesNotMatch(error.message, /\n/, `${argv.slice(1).join(' ')}: ${error.message}`);
      }
    }
  });

  for (const count of ['0', 'x', '-2', '99999']) {
    it(`WORKER_COUNT=${count}`, () => {
      const error = rejects(() => [app], 'ZD_E_BAD_WORKERS', { WORKER_COUNT: count });
      assert.match(error.message, /WORKER_COUNT/);
    });
  }

  it('--drain-timeout 5x', () => {
    const error = rejects(() => [app, '--drain-timeout', '5x'], 'ZD_E_BAD_DURATION');
    assert.match(error.message, /--drain-timeout/);
  });

  it('--ready-timeout 0 (below its minimum)', () => {
    rejects(() => [app, '--ready-timeout', '0'], 'ZD_E_BAD_DURATION');
  });

  it('--ready foo', () => {
    const error = rejects(() => [app, '--ready', 'foo'], 'ZD_E_BAD_VALUE');
    assert.match(error.message, /listening, message/);
  });

  it('--log-format xml', () => {
    rejects(() => [app, '--log-format', 'xml'], 'ZD_E_BAD_VALUE');
  });

  it('no app at all', () => {
    rejects(() => [], 'ZD_E_USAGE');
    rejects(() => ['--', app], 'ZD_E_USAGE');
  });

  it('an extra positional argument', () => {
    const error = rejects(() => [app, 'extra'], 'ZD_E_USAGE');
    assert.match(error.message, /extra/);
  });

  it('a flag missing its value', () => {
    rejects(() => [app, '-w'], 'ZD_E_USAGE');
  });

  it('option errors come before the app check', () => {
    rejects(() => [join(dir, 'missing.js'), '-w', '0'], 'ZD_E_BAD_WORKERS');
  });
});
