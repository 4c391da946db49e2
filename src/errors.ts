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

  /** The one line a user sees. */
  toLine(): string {
    return `zd: ${this.message} [${this.code}]`;
  }
}
