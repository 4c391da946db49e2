// Loaded with --require into each process of bench/runners/reuseport-bare.cjs, never by zd: the
// app's own listen(port, host) becomes listen({ port, host, reusePort: true }) (Node ≥ 22.12), so an
// unchanged app binds its own SO_REUSEPORT socket and the kernel spreads the connections. Once it
// listens it tells its parent over IPC, then lets the channel go: the process serves alone.
'use strict';
const net = require('node:net');

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function listenReusingPort(...args) {
  let callback;
  if (typeof args.at(-1) === 'function') callback = args.pop();
  let options;
  if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))) {
    options = { port: Number(args[0]) };
    if (typeof args[1] === 'string') options.host = args[1];
    const backlog = args.find((x, i) => i > 0 && typeof x === 'number');
    if (backlog !== undefined) options.backlog = backlog;
  } else if (args[0] && typeof args[0] === 'object' && args[0].port !== undefined) {
    options = { ...args[0] };
  } else {
    return listen.apply(this, callback ? [...args, callback] : args); // a path or a handle: left alone
  }
  options.reusePort = true;
  this.once('listening', () => {
    if (!process.send) return;
    process.send({ event: 'listening', pid: process.pid, address: this.address() }, () => process.disconnect());
  });
  return listen.call(this, options, callback);
};
