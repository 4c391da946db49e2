// Loaded into zd's primary by `bench/soak.mjs --memory-log` (node --require), never by zd itself:
// where the primary's memory goes, from inside, without a line of zd's source changed. Every
// ZD_BENCH_MEMORY_MS it appends one JSON line to ZD_BENCH_MEMORY_LOG: process.memoryUsage() and
// V8's heap spaces (size reserved and bytes in use). With --expose-gc and ZD_BENCH_MEMORY_GC=N,
// every Nth sample is taken again after a full GC: what is still reachable then is retained (a
// leak shows there), the rest was garbage V8 had not collected yet (heap sizing, not a leak).
//
// zd passes its own node flags on to the workers, so this file is loaded there too: it does
// nothing in a worker.
'use strict';
const cluster = require('node:cluster');

const file = process.env.ZD_BENCH_MEMORY_LOG;
if (file && cluster.isPrimary) {
  const { appendFileSync } = require('node:fs');
  const v8 = require('node:v8');
  const every = Number(process.env.ZD_BENCH_MEMORY_MS) || 1000;
  const gcEvery = Number(process.env.ZD_BENCH_MEMORY_GC) || 0;
  const t0 = Date.now();
  let n = 0;
  const read = () => {
    const usage = process.memoryUsage();
    const spaces = {};
    for (const s of v8.getHeapSpaceStatistics()) spaces[s.space_name] = [s.space_size, s.space_used_size];
    return { ...usage, spaces };
  };
  const sample = () => {
    const line = { t: Date.now() - t0, ...read() };
    n += 1;
    if (gcEvery > 0 && typeof globalThis.gc === 'function' && n % gcEvery === 0) {
      globalThis.gc();
      line.afterGc = read();
    }
    try {
      appendFileSync(file, `${JSON.stringify(line)}\n`);
    } catch {
      // the soak removed its directory: it is over
    }
  };
  sample();
  setInterval(sample, every).unref();
}
