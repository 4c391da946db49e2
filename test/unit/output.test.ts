// The workers' output in whole lines (issue 23), on in-memory streams: what the forwarder writes,
// where it holds, when it pauses its sources, and what the ring for `zd logs` keeps.
import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { test } from 'node:test';
import { parseLogsArgs } from '../../src/cli/logs.ts';
import { parseRequest } from '../../src/control/protocol.ts';
import { forwardLines, MAX_LINE } from '../../src/shell/line-source.ts';
import { LogRing, RING_BYTES } from '../../src/shell/log-ring.ts';
import { HIGH_WATER, Output } from '../../src/shell/output.ts';

/** A writable that records each write as it was given, and can hold their completion (a reader that stopped). */
function recorder() {
  const writes: Buffer[] = [];
  const held: Array<() => void> = [];
  let holding = false;
  const stream = new Writable({
    highWaterMark: 16 * 1024,
    write(chunk: Buffer, _encoding, done) {
      writes.push(Buffer.from(chunk));
      if (holding) held.push(() => done());
      else done();
    },
  });
  return {
    stream,
    writes,
    hold: () => (holding = true),
    release: () => {
      holding = false;
      for (const done of held.splice(0)) done();
    },
  };
}

/** Long enough for the forwarder's read pause (1 ms) and its write at the loop turn's end. */
const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

test('two sources cut mid-line: every write is whole lines of one source, each source in order', async () => {
  const out = recorder();
  const output = new Output(out.stream);
  const a = new PassThrough();
  const b = new PassThrough();
  forwardLines(a, output);
  forwardLines(b, output);
  const lineA = (i: number) => `${JSON.stringify({ src: 'a', i, pad: 'a'.repeat(5000) })}\n`;
  const lineB = (i: number) => `${JSON.stringify({ src: 'b', i, pad: 'b'.repeat(7000) })}\n`;
  const textA = Array.from({ length: 20 }, (_, i) => lineA(i)).join('');
  const textB = Array.from({ length: 20 }, (_, i) => lineB(i)).join('');
  // Chunks of odd sizes, alternating between the sources: no chunk ends at a line's end.
  for (let at = 0; at < Math.max(textA.length, textB.length); at += 3001) {
    if (at < textA.length) a.write(textA.slice(at, at + 3001));
    if (at < textB.length) b.write(textB.slice(at, at + 3001));
    await tick();
  }
  a.end();
  b.end();
  await tick();
  const seen = { a: [] as number[], b: [] as number[] };
  for (const write of out.writes) {
    const text = write.toString();
    assert.ok(text.endsWith('\n'), 'a write ends at a line end');
    const lines = text.slice(0, -1).split('\n').map((line) => JSON.parse(line) as { src: 'a' | 'b'; i: number });
    assert.equal(new Set(lines.map((l) => l.src)).size, 1, 'a write holds one source');
    for (const line of lines) seen[line.src].push(line.i);
  }
  assert.deepEqual(seen.a, [...Array(20).keys()]);
  assert.deepEqual(seen.b, [...Array(20).keys()]);
});

test('a last line without its newline is written at the end, with one, so that no other line is glued to it', async () => {
  const out = recorder();
  const source = new PassThrough();
  forwardLines(source, new Output(out.stream));
  source.write('whole\npart');
  await tick();
  assert.equal(Buffer.concat(out.writes).toString(), 'whole\n');
  source.end('ial');
  await tick();
  assert.equal(Buffer.concat(out.writes).toString(), 'whole\npartial\n');
});

test('a line that outgrows MAX_LINE is written in pieces and counted; the bytes are unchanged', async () => {
  const out = recorder();
  const source = new PassThrough();
  let long = 0;
  forwardLines(source, new Output(out.stream), { onLongLine: () => long++ });
  const piece = 'x'.repeat(256 * 1024);
  for (let i = 0; i < 5; i++) source.write(piece);
  await tick();
  assert.equal(long, 1, 'one line went out in pieces');
  assert.ok(out.writes.length >= 1 && Buffer.concat(out.writes).length > MAX_LINE);
  source.end('\nnext\n');
  await tick();
  assert.equal(Buffer.concat(out.writes).toString(), `${piece.repeat(5)}\nnext\n`);
});

test('--log-prefix: before each line once, across chunks and a long line\'s pieces', async () => {
  const out = recorder();
  const source = new PassThrough();
  const prefix = Buffer.from('[worker 3 gen 2] ');
  forwardLines(source, new Output(out.stream), { prefix });
  source.write('one\ntw');
  source.write('o\nthree\n');
  await tick();
  source.write('x'.repeat(MAX_LINE + 10));
  await tick();
  source.end('y\nlast');
  await tick();
  const text = Buffer.concat(out.writes).toString();
  assert.equal(text, `[worker 3 gen 2] one\n[worker 3 gen 2] two\n[worker 3 gen 2] three\n[worker 3 gen 2] ${'x'.repeat(MAX_LINE + 10)}y\n[worker 3 gen 2] last\n`);
});

test('a reader that stops: the sources pause past HIGH_WATER, nothing is lost, and they resume once it reads', async () => {
  const out = recorder();
  const output = new Output(out.stream);
  const source = new PassThrough({ highWaterMark: 64 * 1024 });
  forwardLines(source, output);
  out.hold();
  const line = `${'z'.repeat(1023)}\n`;
  let written = 0;
  // The writer waits for 'drain', as a logger does: once the forwarder pauses, it stops too.
  const writer = (async () => {
    while (written < 8192) {
      written += 64;
      if (!source.write(line.repeat(64))) await new Promise((resolve) => source.once('drain', resolve));
    }
    source.end();
  })();
  for (let i = 0; i < 20; i++) await tick();
  assert.ok(source.isPaused(), 'the forwarder paused its source');
  const queued = output.queued;
  assert.ok(queued > HIGH_WATER && queued < HIGH_WATER + 256 * 1024, `queued ${queued} bytes: bounded`);
  assert.ok(written < 8192, `the writer was held back (${written} lines written)`);
  out.release();
  await writer;
  await output.flush();
  const text = Buffer.concat(out.writes).toString();
  assert.equal(text.length, 8192 * 1024);
  assert.equal(text, line.repeat(8192));
});

test('the ring: the last N lines across batches, what a follower missed, and its bound', () => {
  const ring = new LogRing();
  ring.add(1, 1, 'out', Buffer.from('a1\na2\na3\n'));
  ring.add(2, 1, 'err', Buffer.from('b1\n'));
  ring.add(1, 1, 'out', Buffer.from('a4\na5\n'));
  const text = (batches: ReturnType<LogRing['tail']>) => batches.map((b) => b.data.toString()).join('');
  assert.equal(text(ring.tail(4)), 'a3\nb1\na4\na5\n');
  assert.deepEqual(ring.tail(4).map((b) => [b.workerId, b.stream]), [[1, 'out'], [2, 'err'], [1, 'out']]);
  assert.equal(text(ring.tail(100)), 'a1\na2\na3\nb1\na4\na5\n');
  assert.equal(text(ring.tail(1)), 'a5\n');
  assert.deepEqual(ring.tail(0), []);
  assert.deepEqual(ring.since(1).batches.map((b) => b.seq), [2, 3]);
  assert.equal(ring.since(1).missed, false);
  assert.equal(ring.since(3).batches.length, 0);

  const line = `${'r'.repeat(999)}\n`;
  for (let i = 0; i < 3000; i++) ring.add(1, 2, 'out', Buffer.from(line));
  const kept = ring.tail(100_000);
  assert.ok(kept.reduce((sum, b) => sum + b.data.length, 0) <= RING_BYTES, 'at most RING_BYTES kept');
  assert.equal(ring.since(1).missed, true, 'the oldest batches are gone, and a follower from seq 1 is told');
  // A batch larger than the ring keeps its last lines, from a line's start.
  ring.add(4, 2, 'out', Buffer.from(`${'q'.repeat(RING_BYTES)}\nlast\n`));
  assert.equal(text(ring.tail(1)), 'last\n');
});

test('the logs request is checked at the edge', () => {
  assert.deepEqual(parseRequest('{"cmd":"logs"}'), { cmd: 'logs' });
  assert.deepEqual(parseRequest('{"cmd":"logs","lines":5,"follow":true,"after":{"pid":7,"seq":9}}'), { cmd: 'logs', lines: 5, follow: true, after: { pid: 7, seq: 9 } });
  for (const bad of ['{"cmd":"logs","lines":-1}', '{"cmd":"logs","lines":1.5}', '{"cmd":"logs","follow":1}', '{"cmd":"logs","after":{"pid":1}}', '{"cmd":"logs","since":3}']) {
    assert.equal((parseRequest(bad) as { ok?: boolean }).ok, false, bad);
  }
});

test('zd logs: its arguments', () => {
  assert.deepEqual(parseLogsArgs([]), { name: undefined, lines: 20, follow: false, prefix: false });
  assert.deepEqual(parseLogsArgs(['app', '-n', '5', '-f', '--prefix']), { name: 'app', lines: 5, follow: true, prefix: true });
  assert.deepEqual(parseLogsArgs(['--lines', '0', '--follow']), { name: undefined, lines: 0, follow: true, prefix: false });
  for (const [argv, code] of [[['-n', 'x'], 'ZD_E_BAD_VALUE'], [['-n', '100001'], 'ZD_E_BAD_VALUE'], [['a', 'b'], 'ZD_E_USAGE'], [['--tail'], 'ZD_E_UNKNOWN_FLAG']] as const) {
    assert.throws(() => parseLogsArgs([...argv]), (error: { code?: string }) => error.code === code, argv.join(' '));
  }
});
