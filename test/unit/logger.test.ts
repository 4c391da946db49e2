// zd's log lines are pino's, configured one way (name zd, no pid or hostname, ISO time), written
// whole through an injectable writer and clock (zd replay). Anything reading them (pino-pretty, a
// log shipper, the tests' own parser) relies on that shape.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { pino } from 'pino';
import { createLogger } from '../../src/shell/logger.ts';
import { ZdError } from '../../src/errors.ts';

/** The same call through pino, configured as zd configured it before (name, no base, ISO time). */
function pinoLine(level: 'debug' | 'info' | 'warn' | 'error', fields: object, msg: string): string {
  let out = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      out += chunk.toString();
      done();
    },
  });
  const logger = pino({ name: 'zd', level: 'debug', base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, sink);
  logger[level](fields, msg);
  return out;
}

function zdLines(level = 'debug'): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return { lines, logger: createLogger('json', level, (line) => lines.push(line)) };
}

const withoutTime = (line: string) => line.replace(/"time":"[^"]+"/, '"time":"T"');

test("zd's log lines are pino's, but for the time", () => {
  const calls: Array<['debug' | 'info' | 'warn' | 'error', object, string]> = [
    ['info', { code: 'ZD_CONFIG', version: '0.1.0', primaryPid: 1, args: ['--a', 'b'], configFile: null, workers: 2 }, "zd 0.1.0 running /app.js as 'app'"],
    ['warn', { code: 'ZD_IO_ERROR', workerId: 3, err: 'EPIPE: broken "pipe"\nnext line' }, 'worker 3: stderr failed'],
    ['error', { code: 'ZD_CRASH_LOOP', slot: 0, stderr: ['Error: boom', '    at <anonymous>'], unset: undefined }, 'slot 0 is in a crash loop ✗'],
    ['debug', {}, 'no fields'],
    ['info', { nested: { a: [1, { b: 'c' }] }, unicode: '\u2028 é \u0000' }, 'odd characters'],
  ];
  for (const [level, fields, msg] of calls) {
    const { lines, logger } = zdLines();
    logger[level](fields, msg);
    assert.equal(lines.length, 1);
    assert.equal(withoutTime(lines[0]!), withoutTime(pinoLine(level, fields, msg)));
    assert.match(lines[0]!, /"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"/);
  }
});

test('the level threshold is pino\'s; an unknown ZD_LOG_LEVEL is one clear error', () => {
  const { lines, logger } = zdLines('warn');
  logger.debug({}, 'a');
  logger.info({}, 'b');
  logger.warn({}, 'c');
  logger.error({}, 'd');
  assert.deepEqual(lines.map((line) => JSON.parse(line).msg), ['c', 'd']);
  assert.equal(zdLines('silent').lines.length, 0);
  assert.throws(() => createLogger('json', 'loud', () => {}), (error: unknown) => {
    assert.ok(error instanceof ZdError);
    assert.equal(error.toLine(), 'zd: ZD_LOG_LEVEL=loud is not a level: use one of trace, debug, info, warn, error, fatal, silent [ZD_E_BAD_VALUE]');
    return true;
  });
});

test('a cycle or a BigInt in the fields still makes a line', () => {
  const { lines, logger } = zdLines();
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  logger.info({ cyclic, big: 10n }, 'odd fields');
  const line = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.deepEqual(line.cyclic, { a: 1, self: '[Circular]' });
  assert.equal(String(line.big), '10');
  assert.equal(line.msg, 'odd fields');
});

test('pretty: the same line through pino-pretty, for a terminal', () => {
  const lines: string[] = [];
  createLogger('pretty', 'info', (line) => lines.push(line)).info({ code: 'ZD_READY', workers: 2 }, 'serving');
  assert.equal(lines.length, 1);
  const plain = lines[0]!.replace(/\u001b\[\d+m/g, '');
  assert.match(plain, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: ZD_READY serving\n/);
  assert.match(plain, /workers: 2/);
});
