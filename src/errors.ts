// Errors that reach a user: a stable code, what failed and what to do, and the exit status.
// Inside the core an error is an event, never one of these.

export const ERROR_CODES = {
  ZD_E_USAGE: 'bad command line',
  ZD_E_UNKNOWN_FLAG: 'unknown option',
  ZD_E_BAD_VALUE: 'bad option value',
  ZD_E_BAD_DURATION: 'bad duration',
  ZD_E_BAD_WORKERS: 'bad worker count',
  ZD_E_APP_MISSING: 'app file not found',
  ZD_E_APP_NOT_FILE: 'app is not a file',
  ZD_E_APP_UNREADABLE: 'app file unreadable',
  ZD_E_TYPESCRIPT: 'TypeScript app cannot run on this Node',
  ZD_E_CONFIG: 'bad config file',
  ZD_E_PORT: 'health or metrics port unusable',
  ZD_E_LISTEN_FDS: 'inherited sockets (LISTEN_FDS) unusable',
  ZD_E_SCHED: 'scheduling mode unsupported here',
  ZD_E_PIDFILE: 'pid file unwritable',
  ZD_E_RECORD: 'journal file unwritable',
  ZD_E_RUNTIME_DIR: 'runtime directory unusable',
  ZD_E_CONTROL_SOCKET: 'control socket unusable',
  ZD_E_NAME_TAKEN: 'instance name taken',
  ZD_E_NOT_RUNNING: 'no such instance',
  ZD_E_AMBIGUOUS: 'several instances',
  ZD_E_TIMEOUT: 'no answer in time',
  ZD_E_CONTROL: 'control request failed',
  ZD_E_RELOAD_ABORTED: 'reload aborted',
  ZD_E_RELOAD_REFUSED: 'reload refused',
  ZD_E_ROLLBACK_REFUSED: 'rollback refused',
  ZD_E_RELOAD_INVALID: 'reload refused: bad config, env file or release',
  ZD_E_SCALE_REFUSED: 'scale refused',
  ZD_E_UPGRADE_REFUSED: 'upgrade refused',
  ZD_E_UPGRADE_ABORTED: 'upgrade aborted',
  ZD_E_INSPECT_SERVER: 'inspect web server unusable',
  ZD_E_JOURNAL: 'not a usable journal',
  ZD_E_JOURNAL_VERSION: 'journal of another zd',
  ZD_E_JOURNAL_CORRUPT: 'journal damaged mid-file',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class ZdError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
    this.name = 'ZdError';
  }

  /** The line a user sees; one line per problem when there are several (a config file's). */
  toLine(): string {
    return this.message
      .split('\n')
      .map((line) => `zd: ${line} [${this.code}]`)
      .join('\n');
  }
}
