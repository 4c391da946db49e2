// Issue #10, compatibility: apps with more than one server. A replacement is ready when it listens
// on every address the workers it replaces listen on, in any order; until then its predecessor
// keeps serving. The public port takes the load; the metrics port is the app's other server.
import { afterEach, test } from 'node:test';
import { freePort } from '../helpers/ports.ts';
import { compatCleanup, httpLoad, runScenario } from './harness.ts';

afterEach(compatCleanup);

for (const first of ['metrics', 'public'] as const) {
  test(`two servers (metrics + public), generation 1 starting the ${first} one first and each generation the other way round: every reload completes and no request fails`, async (t) => {
    const metricsPort = await freePort();
    await runScenario({
    diagnostic: (line) => t.diagnostic(line),
      app: 'two-servers.cjs',
      env: { METRICS_PORT: String(metricsPort), FIRST: first },
      load: (port, tally) => [httpLoad(port, tally)],
    });
  });
}

test('a public port that opens 1.5 s after the metrics server: the old workers serve it until the new ones do, no request fails', async (t) => {
  const metricsPort = await freePort();
  await runScenario({
    diagnostic: (line) => t.diagnostic(line),
    app: 'late-port.cjs',
    env: { METRICS_PORT: String(metricsPort) },
    load: (port, tally) => [httpLoad(port, tally)],
  });
});
