#!/usr/bin/env node
// zd is written in TypeScript and runs from source: tsx compiles it in memory, so `npm ci` needs
// no build step and no install script. Only the primary loads tsx; workers run the app on plain node.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
