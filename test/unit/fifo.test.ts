// Issue 23: the workers' (and the primary's) stdout and stderr are real pipes of zd's making
// (src/shell/fifo.ts), cheaper to read than Node's socketpairs. A child writes to them; they end
// when it exits (zd lets go of its own write ends); without mkfifo there are none, and a reason.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { makeFifos } from '../../src/shell/fifo.ts';

const collect = (readable: NodeJS.ReadableStream) =>
  new Promise<string>((resolve, reject) => {
    let text = '';
    readable.setEncoding('utf8');
    readable.on('data', (chunk: string) => (text += chunk));
    readable.on('end', () => resolve(text));
    readable.on('error', reject);
  });

test('two pipes: a child writes to each (its fds 1 and 2 are FIFOs), and each ends when it exits', { timeout: 20_000 }, async () => {
  const made = makeFifos(2);
  assert.ok(!('error' in made), 'error' in made ? made.error.message : '');
  const [out, err] = made.pipes;
  const script = `
    const { fstatSync } = require('node:fs');
    process.stdout.write(fstatSync(1).isFIFO() + ' ' + 'o'.repeat(300000) + '\\n');
    process.stderr.write(fstatSync(2).isFIFO() + ' ' + 'e'.repeat(300000) + '\\n');
  `;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', out!.writeFd, err!.writeFd] });
  made.handedOver();
  made.handedOver(); // once only
  const [stdout, stderr] = await Promise.all([collect(out!.readable), collect(err!.readable)]);
  assert.equal(stdout, `true ${'o'.repeat(300000)}\n`);
  assert.equal(stderr, `true ${'e'.repeat(300000)}\n`);
  assert.deepEqual(await new Promise((resolve) => child.once('exit', (code) => resolve(code))), 0);
});

test('without mkfifo: no pipes, and why (the caller falls back to socketpairs)', () => {
  const path = process.env.PATH;
  process.env.PATH = '/nonexistent';
  try {
    const made = makeFifos(2);
    assert.ok('error' in made, 'no pipes');
    assert.match(made.error.message, /ENOENT|mkfifo/);
  } finally {
    process.env.PATH = path;
  }
});
