// The baseline of bench/messages.mjs: a plain node:cluster primary that forks the app and counts
// the messages its workers send, nothing more.
//   node bench/runners/count-cluster.cjs <app> <workers>
// Logs {"event":"ready"} once every worker listens; SIGTERM disconnects the workers and exits.
'use strict';
const cluster = require('node:cluster');
const path = require('node:path');

cluster.setupPrimary({ exec: path.resolve(process.argv[2] ?? '') });
const count = Number(process.argv[3] ?? 2);
let received = 0;
let listening = 0;
for (let i = 0; i < count; i++) {
  const worker = cluster.fork();
  worker.on('message', () => received++);
  worker.once('listening', () => {
    if (++listening === count) process.stderr.write(`${JSON.stringify({ event: 'ready', pid: process.pid })}\n`);
  });
}
process.on('SIGUSR2', () => process.stderr.write(`${JSON.stringify({ event: 'count', received })}\n`));
process.on('SIGTERM', () => {
  for (const worker of Object.values(cluster.workers ?? {})) worker.disconnect();
  cluster.on('exit', () => {
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
  });
});
