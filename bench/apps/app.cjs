// The app every runner serves in the benchmark: plain node:http on $PORT, a ~100-byte JSON answer
// after a little CPU work. No keep-alive handling and no signal handler, like most apps.
'use strict';
const http = require('node:http');

const port = Number(process.env.PORT);
const generation = process.env.ZD_GENERATION ?? process.env.BENCH_GENERATION ?? null;
let served = 0;

http
  .createServer((req, res) => {
    served++;
    const body = JSON.stringify({ ok: true, pid: process.pid, generation, served, path: req.url, at: Date.now() });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  })
  .listen(port, '127.0.0.1');
