// bench/logs.mjs's app: once GO_FILE exists, writes LOG_LINES lines of LOG_SIZE bytes to stdout as
// fast as the pipe takes them (waiting for 'drain', as a logger does), then writes what it measured
// to RESULT_DIR/<pid>.json and serves on until stopped. It listens so that zd counts it ready.
//   {"w":<worker>,"i":<10000000 + line number>,"pad":"xxx…"}\n   (all lines the same length)
'use strict';
const http = require('node:http');
const { existsSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');

const size = Number(process.env.LOG_SIZE);
const lines = Number(process.env.LOG_LINES);
const w = Number(process.env.ZD_WORKER_ID ?? process.env.BENCH_WORKER ?? process.pid);
const head = (i) => `{"w":${w},"i":${10_000_000 + i},"pad":"`;
const pad = 'x'.repeat(size - head(0).length - 3);

http.createServer((req, res) => res.end('ok')).listen(Number(process.env.PORT), '127.0.0.1');

const wait = setInterval(() => {
  if (!existsSync(process.env.GO_FILE)) return;
  clearInterval(wait);
  run();
}, 5);

function run() {
  const cpu0 = process.cpuUsage();
  const startMs = Date.now();
  let i = 0;
  const next = () => {
    while (i < lines) {
      const line = `${head(i)}${pad}"}\n`;
      i++;
      if (i === lines) return process.stdout.write(line, done);
      if (!process.stdout.write(line)) return process.stdout.once('drain', next);
    }
  };
  const done = () => {
    const endMs = Date.now();
    const cpu = process.cpuUsage(cpu0);
    writeFileSync(join(process.env.RESULT_DIR, `${process.pid}.json`), JSON.stringify({ pid: process.pid, bytes: size * lines, lines, startMs, endMs, cpuMs: (cpu.user + cpu.system) / 1000 }));
  };
  next();
}
