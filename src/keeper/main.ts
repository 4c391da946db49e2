// `zd run` starts here (bin/zd.js): the keeper, which runs zd's primary (src/cli/main.ts) as its
// child. Kept apart from the CLI so that the process that lives longest loads the least.
import { runKeeper } from './keeper.ts';

// argv: node, bin/zd.js, 'run', …: the primary is started the same way, from the same bin.
runKeeper(process.argv[1]!, process.argv.slice(3));
