// The app of bench/messages.mjs: serves on $PORT like any app, and on SIGUSR2 sends its primary
// $BENCH_MESSAGES messages in a tight loop, the way an app that reports every request does (Node's
// cluster docs' notifyRequest). Writes `{"sent":N,"pid":…}` on stderr once the last one is written.
'use strict';
const http = require('node:http');

const total = Number(process.env.BENCH_MESSAGES ?? 100_000);
// A bounded backlog: at most CHUNK messages wait in the channel before the loop yields.
const CHUNK = 200;

http.createServer((req, res) => res.end('ok')).listen(Number(process.env.PORT), '127.0.0.1');

process.on('SIGUSR2', () => {
  let n = 0;
  const burst = () => {
    const end = Math.min(total, n + CHUNK);
    while (n < end) {
      n++;
      const message = { cmd: 'notifyRequest', pid: process.pid, n, url: '/', status: 200 };
      if (n === end) process.send(message, done);
      else process.send(message);
    }
  };
  const done = (error) => {
    if (error) throw error;
    if (n < total) setImmediate(burst);
    else process.stderr.write(`${JSON.stringify({ sent: n, pid: process.pid })}\n`);
  };
  burst();
});
