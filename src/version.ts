// zd's version, read from its own package.json through the package's name (a self-reference), so
// that the TypeScript source and the dist/ bundle, at their different depths, find the same file.
import { createRequire } from 'node:module';

export const VERSION: string = (createRequire(import.meta.url)('zd-runner/package.json') as { version: string }).version;
