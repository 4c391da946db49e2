// Issue #10, compatibility: a TypeScript entry file (`zd run app.ts`), no build step, on every
// supported Node (Node's own type stripping where it has it, otherwise a loader zd brings).
import { afterEach, test } from 'node:test';
import { compatCleanup, httpLoad, runScenario } from './harness.ts';

afterEach(compatCleanup);

test('a TypeScript entry (app.ts): serves, and loses no request through two reloads', async (t) => {
  await runScenario({ app: 'app.ts', diagnostic: (line) => t.diagnostic(line), load: (port, tally) => [httpLoad(port, tally)] });
});
