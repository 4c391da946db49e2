// zd from its TypeScript source, exactly as bin/zd.js runs it when there is no fresh dist/ build
// (tsx compiles in memory). The benchmark uses it only to report the primary's RSS on that path,
// without deleting the build that bin/zd.js would otherwise pick.
const { register } = await import('tsx/esm/api');
register();
await import(new URL('../../src/cli/main.ts', import.meta.url).href);
