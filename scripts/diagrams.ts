// `npm run diagrams`: regenerates diagrams/ from the machine definitions. Output is deterministic,
// so test/unit/diagrams.test.ts can tell when the committed files are stale.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { diagramFiles } from '../src/diagram/files.ts';

const dir = fileURLToPath(new URL('../diagrams/', import.meta.url));
const files = await diagramFiles();
mkdirSync(dir, { recursive: true });
// A machine that is gone leaves no diagram behind.
for (const name of readdirSync(dir)) {
  if (/\.(mmd|svg)$/.test(name) && !files.has(name)) rmSync(join(dir, name));
}
for (const [name, content] of files) writeFileSync(join(dir, name), content);
console.log(`diagrams: wrote ${[...files.keys()].map((name) => `diagrams/${name}`).join(', ')}`);
