// N bare processes of the app, each with its own SO_REUSEPORT socket on the same port: what the
// kernel's spreading costs with no runner at all (no cluster, no primary on the path), for
// bench/sched.mjs. Needs Node ≥ 22.12 (listen's reusePort).
//   node bench/runners/reuseport-bare.cjs <app> [processes]
// Each process is `node --require reuseport-listen.cjs <app>` with this process's environment (PORT).
// JSON lines on stderr: {"event":"ready"} once every process listens; {"event":"worker-exit"} for
// one that exits while running. SIGTERM: SIGTERM to each, exit when they are gone. Nothing is
// restarted.
'use strict';
const { fork } = require('node:child_process');
const path = require('node:path');

const app = path.resolve(process.argv[2] ?? '');
const count = Number(process.argv[3] ?? 2);
const log = (event, extra = {}) => process.stderr.write(`${JSON.stringify({ event, t: Date.now(), ...extra })}\n`);

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 12)) {
  process.stderr.write(`reuseport-bare: listen's reusePort needs Node ≥ 22.12, not ${process.version}\n`);
  process.exit(2);
}

let stopping = false;
let listening = 0;
const children = new Set();
for (let i = 0; i < count; i++) {
  const child = fork(app, [], { execArgv: ['--require', path.join(__dirname, 'reuseport-listen.cjs')], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  child.on('message', (message) => {
    if (message?.event === 'listening' && ++listening === count) log('ready', { pid: process.pid, pids: [...children].map((c) => c.pid) });
  });
  child.on('exit', (code, signal) => {
    children.delete(child);
    if (!stopping) log('worker-exit', { pid: child.pid, code, signal });
    if (children.size === 0) process.exit(stopping ? 0 : 1);
  });
}

process.on('SIGTERM', () => {
  stopping = true;
  for (const child of children) child.kill('SIGTERM');
});
