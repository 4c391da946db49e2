// The app every runner serves in the benchmark: plain node:http on $PORT, a ~100-byte JSON answer
// after a little CPU work. No keep-alive handling and no signal handler, like most apps.
// BENCH_BOOT_MS: it listens that long after it starts, like an app that loads and connects first.
'use strict';
const http = require('node:http');

const port = Number(process.env.PORT);
const bootMs = Number(process.env.BENCH_BOOT_MS ?? 0);
const generation = process.env.ZD_GENERATION ?? process.env.BENCH_GENERATION ?? null;
let served = 0;

const server = http.createServer((req, res) => {
  served++;
  const body = JSON.stringify({ ok: true, pid: process.pid, generation, served, path: req.url, at: Date.now() });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});
const listen = () => server.listen(port, '127.0.0.1');
if (bootMs > 0) setTimeout(listen, bootMs);
else listen();
