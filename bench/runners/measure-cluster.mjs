// A plain node:cluster primary whose workers run zd's bootstrap (as zd forks them), for
// bench/canary-overhead.mjs: with `on`, every worker measures its traffic the whole time (what a
// canary window costs), asked through zd's own collector (src/shell/measure.ts); with `off`, never.
// Run with `node --import tsx`. argv: APP WORKERS on|off. Logs JSON lines on stderr:
// {"event":"ready"} once every worker listens (and was asked to measure); on SIGUSR2, the figures
// collected from every worker, {"event":"figures","figures":[…]}, after which measuring is on again.
import cluster from 'node:cluster';
import { fileURLToPath } from 'node:url';
import { createMeasure } from '../../src/shell/measure.ts';

const [app, workersText, mode] = process.argv.slice(2);
const count = Number(workersText);
if (!app || !Number.isInteger(count) || count < 1 || (mode !== 'on' && mode !== 'off')) {
  process.stderr.write('usage: node --import tsx measure-cluster.mjs APP WORKERS on|off\n');
  process.exit(2);
}
const say = (line) => process.stderr.write(`${JSON.stringify(line)}\n`);

cluster.setupPrimary({
  exec: app,
  execArgv: ['--require', fileURLToPath(new URL('../../src/worker/bootstrap.cjs', import.meta.url))],
  stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
});
const workers = new Map();
const measure = createMeasure({
  worker: (id) => workers.get(id),
  onIoError: (id, what, error) => say({ event: 'io-error', id, what, error: error.message }),
});
const ids = Array.from({ length: count }, (_, i) => i + 1);
let listening = 0;
for (const id of ids) {
  const worker = cluster.fork();
  workers.set(id, worker);
  worker.once('listening', () => {
    if (++listening < count) return;
    if (mode === 'on') measure.start(ids);
    say({ event: 'ready', pids: [...workers.values()].map((w) => w.process.pid) });
  });
  worker.on('exit', (code, signal) => {
    if (!stopping) say({ event: 'worker-exit', id, code, signal });
  });
}

let requestId = 0;
process.on('SIGUSR2', () => {
  measure.collect(ids, ++requestId, (event) => {
    say({ event: 'figures', figures: event.figures });
    if (mode === 'on') measure.start(ids);
  });
});

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    stopping = true;
    for (const worker of workers.values()) worker.process.kill('SIGKILL');
    setTimeout(() => process.exit(0), 100);
  });
}
