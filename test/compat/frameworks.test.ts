// Issue #10, compatibility: unmodified apps of the common HTTP frameworks, each under keep-alive
// and new-connection load through two reloads that deploy new code. Each must lose no request,
// stop answering with the old code within 2 s of ZD_RELOAD_DONE (the drain deadline is 5 s, so it
// is draining that moves the clients, not the deadline), drain its old workers to a clean exit,
// exit 0 on SIGTERM and leave no process behind.
import { afterEach, test } from 'node:test';
import { compatCleanup, httpLoad, runScenario } from './harness.ts';

afterEach(compatCleanup);

for (const [name, app] of [
  ['Express 5 (CommonJS)', 'express.cjs'],
  ['Fastify 5', 'fastify.cjs'],
  ['Koa 3 as an ES module (.mjs)', 'koa.mjs'],
  ['hapi 21', 'hapi.cjs'],
] as const) {
  test(`${name}: no failed request and the old code gone within seconds, through two reloads`, async (t) => {
    await runScenario({ app, diagnostic: (line) => t.diagnostic(line), load: (port, tally) => [httpLoad(port, tally)] });
  });
}
