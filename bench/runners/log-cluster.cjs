// bench/logs.mjs's baseline: a plain node:cluster primary whose workers inherit its stdout (the
// default), so that they write to the reader's pipe themselves, side by side.
//   node bench/runners/log-cluster.cjs <app> <workers>
// Says {"event":"ready"} on stderr once every worker listens; SIGTERM kills the workers and exits.
'use strict';
const cluster = require('node:cluster');
const path = require('node:path');

const count = Number(process.argv[3] ?? 2);
cluster.setupPrimary({ exec: path.resolve(process.argv[2]) });
let listening = 0;
for (let i = 1; i <= count; i++) {
  cluster.fork({ BENCH_WORKER: String(i) }).once('listening', () => {
    if (++listening === count) process.stderr.write(`${JSON.stringify({ event: 'ready' })}\n`);
  });
}
process.on('SIGTERM', () => {
  for (const worker of Object.values(cluster.workers)) worker.process.kill('SIGKILL');
  process.exit(0);
});
