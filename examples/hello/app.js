// The smallest app zd can run: `node bin/zd.js run examples/hello/app.js -w 2`, then
// `curl localhost:3000` a few times to see the workers take turns, and `kill -HUP <zd pid>` to
// watch the pids change without a failed request. Plain ESM: the repo's package.json says "module".
import { createServer } from 'node:http';

const port = Number(process.env.PORT ?? 3000);
const generation = process.env.ZD_GENERATION ?? '-';

createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`hello from pid ${process.pid} (generation ${generation})\n`);
}).listen(port, () => {
  console.log(`hello: pid ${process.pid} listening on ${port}`);
});
