// Help texts, built from the option table so that they cannot drift from the parser.
import { RUN_OPTIONS } from './run-options.ts';

export const MAIN_HELP = `zd — a zero-downtime runner for Node.js HTTP apps

Usage:
  zd run <app.js> [options] [-- app args]   run the app in N workers, reload on SIGHUP
  zd status [name] [--json]                 each worker's state, pid, memory, CPU; the rollout
  zd reload [name] [--wait [--timeout D]]   rolling restart (like SIGHUP); --wait: until it ends
  zd rollback [name] [--wait [--timeout D]] rolling restart back to the previous generation's release
  zd scale [name] N|+N|-N                   live resize: ready workers added first, surplus drained
  zd upgrade [name] [--wait [--timeout D]] [--node PATH]
                                            a new primary (zd's code and config as on disk now,
                                            maybe another Node) takes over: same pid, same sockets
  zd stop [name]                            graceful stop (like SIGTERM)
  zd list [--json]                          running instances
  zd inspect [name] [--json | --web [--port P]] | zd inspect --machine worker|rollout
  zd logs [name] [-n N] [-f] [--prefix]     the workers' last N lines (20); -f: and every line to come
  zd dump [name] FILE                       the last 5000 events, as a journal for zd replay
  zd replay FILE [--log-format json|pretty] [--until T] [--json]
                                            what zd decided, again, from a journal (run --record)
  zd inspect --replay FILE [--at T] [--json | --web [--port P]]   step through a journal
  zd --help | zd run --help
  zd --version | zd -v                      zd's version

The name may be left out when one instance runs. Instances are found through control sockets in
$XDG_RUNTIME_DIR/zd (else <tmp>/zd-<uid>), a directory only you can enter.

Signals to the zd process:
  SIGHUP, SIGUSR2   rolling restart: each new worker is ready before an old one drains
  SIGTERM, SIGINT   drain every worker and exit 0; a second one kills them and exits 143/130

Exit codes: 0 stopped cleanly, 1 the app could not run (no worker ever ready, or a crash loop)
or a control request failed (no such instance, reload aborted), 2 bad command line, 130/143
forced by a second SIGINT/SIGTERM.
`;

export function runHelp(): string {
  const rows = RUN_OPTIONS.map((o) => {
    const text = o.flag.endsWith('-host') ? 'ADDRESS' : o.flag === 'pidfile' || o.flag === 'record' || o.flag === 'env-file' ? 'FILE' : 'NAME';
    const value = { enum: o.values?.join('|') ?? '', duration: 'DURATION', size: 'SIZE', port: 'PORT', text, count: 'N', number: 'X', flag: '' }[o.kind];
    const name = `${o.short ? `-${o.short}, ` : '    '}--${o.flag} ${value}`;
    return `  ${name.padEnd(36)} ${o.help} (default: ${o.default})`;
  });
  return `Usage: zd run <app.js> [options] [-- app args]

Forks N workers of the app with node:cluster, all sharing its port. Worker stdout and stderr pass
through unchanged, each line whole; zd's own logs are pino lines on stderr.

Options:
${rows.join('\n')}
      --config FILE                    settings file (default: ./zd.config.json, else "zd" in ./package.json)
  -h, --help                           this text

Durations: 500ms, 5s, 2m, 1h, or a bare number of milliseconds. Sizes: 512M, 1G, or bytes.
A config file holds any option under its camelCase name ("drainTimeout": "10s"), plus "app" and
"args"; the command line overrides it.
Each worker gets ZD_WORKER_ID, ZD_WORKER_SLOT and ZD_GENERATION in its environment.
`;
}
