#!/usr/bin/env node
// The flight recorder's cost (issue #16): what recording adds to each event the primary takes,
// against the reducer alone. A pool of N ready workers takes memory samples and heartbeat answers
// (the events a running zd sees all the time), through init/reduce as the runtime calls them, with
// no recorder, with the in-memory ring (always on), and with the ring and --record's file
// (one writeSync per event to an O_APPEND file, as zd run does).
//
//   node bench/journal.mjs                         # 2 and 64 workers, 50,000 events, file in $TMPDIR
//   node bench/journal.mjs --dir /var/log --workers 8 --events 200000
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import os from 'node:os';
import { parseArgs } from 'node:util';

const { values: flags } = parseArgs({
  options: {
    workers: { type: 'string', default: '2,64' },
    events: { type: 'string', default: '50000' },
    dir: { type: 'string', default: os.tmpdir() },
  },
});
const { register } = await import('tsx/esm/api');
register();
const REPO = new URL('..', import.meta.url).pathname;
const { init, reduce } = await import(`${REPO}src/core/reduce.ts`);
const { DEFAULTS } = await import(`${REPO}src/core/config.ts`);
const { Recorder } = await import(`${REPO}src/record/recorder.ts`);
const { JournalWriter } = await import(`${REPO}src/record/writer.ts`);

const EVENTS = Number(flags.events);
const release = { app: '/srv/app/current/server.js', cwd: '/srv/app/releases/42', args: [] };

/** A pool of n ready workers, and an endless supply of the events such a pool takes. */
function pool(n) {
  const config = { ...DEFAULTS, workers: n, heartbeatTimeoutMs: 2000, maxMemoryBytes: 512 * 2 ** 20 };
  let state = init(config, release).state;
  for (let id = 1; id <= n; id++) state = reduce(state, { type: 'worker.forked', workerId: id, pid: 10_000 + id }).state;
  for (let id = 1; id <= n; id++) state = reduce(state, { type: 'worker.online', workerId: id }).state;
  for (let id = 1; id <= n; id++) state = reduce(state, { type: 'worker.listening', workerId: id, address: ':3000' }).state;
  let i = 0;
  const next = () => {
    i++;
    const workerId = (i % n) + 1;
    return i % 2 === 0
      ? { type: 'worker.memory', workerId, rssBytes: 100 * 2 ** 20 + i }
      : { type: 'worker.message', workerId, message: { type: 'zd:pong', seq: i } };
  };
  return { config, state, next };
}

function measure(n, mode) {
  const p = pool(n);
  const dir = mkdtempSync(join(flags.dir, 'zd-journal-bench-'));
  const file = join(dir, 'journal.ndjson');
  const recorder = mode === 'none' ? null : new Recorder({ name: 'bench', app: release.app });
  const writer = mode === 'file' ? new JournalWriter({ path: file }) : null;
  if (writer) recorder.record(writer);
  recorder?.start(p.config, release);
  let s = p.state;
  recorder?.step(s, null, []);
  const events = Array.from({ length: EVENTS }, p.next);
  const t0 = process.hrtime.bigint();
  for (const event of events) {
    const step = reduce(s, event);
    s = step.state;
    recorder?.step(s, event, step.effects, step.transitions);
  }
  const ns = Number(process.hrtime.bigint() - t0);
  recorder?.close();
  const bytes = writer ? writer.stats.bytes : 0;
  rmSync(dir, { recursive: true, force: true });
  // This loop never yields: a write judged slow would queue the rest for a background that never
  // runs, and drop it. Said, so that such a run is not mistaken for the cost of the sync path.
  if (writer && (writer.stats.slowWrites > 0 || writer.stats.dropped > 0)) {
    process.stderr.write(`bench/journal: ${n} workers: ${writer.stats.slowWrites} write(s) over 20 ms (the slowest ${writer.stats.slowestWriteMs.toFixed(1)} ms), ${writer.stats.dropped} event(s) dropped: the disk stalled, run again\n`);
  }
  return { usPerEvent: ns / 1000 / EVENTS, bytesPerEvent: bytes / EVENTS };
}

const rows = [];
for (const n of flags.workers.split(',').map(Number)) {
  measure(n, 'file'); // warm-up
  const none = measure(n, 'none');
  const ring = measure(n, 'ring');
  const file = measure(n, 'file');
  rows.push({ workers: n, reducer: none.usPerEvent, ring: ring.usPerEvent, file: file.usPerEvent, bytes: file.bytesPerEvent });
}
process.stdout.write(`node ${process.version}, ${os.cpus()[0]?.model ?? '?'} × ${os.availableParallelism()}, ${EVENTS} events, journal in ${flags.dir}\n`);
process.stdout.write('| workers | reducer alone µs/event | + ring µs/event | + ring + --record file µs/event | journal bytes/event |\n|---|---|---|---|---|\n');
for (const r of rows) process.stdout.write(`| ${r.workers} | ${r.reducer.toFixed(2)} | ${r.ring.toFixed(2)} | ${r.file.toFixed(2)} | ${r.bytes.toFixed(0)} |\n`);
