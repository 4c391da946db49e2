// The recorder's files in `zd run`: the --record journal, opened before any fork, and the journal
// written at exit 1, next to the control socket.
import { renameSync, writeFileSync } from 'node:fs';
import { ZdError } from '../errors.ts';
import type { Logger } from '../shell/logger.ts';
import type { Recorder } from './recorder.ts';
import { JournalWriter } from './writer.ts';

export function openRecording(recorder: Recorder, path: string | null, logger: Logger): void {
  if (path === null) return;
  let writer: JournalWriter;
  try {
    writer = new JournalWriter({
      path,
      onError: (what, error) =>
        logger.warn({ code: 'ZD_JOURNAL_ERROR', what, file: path, err: error.message }, `the journal ${path} could not ${what}: ${error.message}; lines are counted as dropped until it can`),
    });
  } catch (error) {
    throw new ZdError('ZD_E_RECORD', `cannot write the journal ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, 1);
  }
  recorder.record(writer);
}

/** Where the exit-1 journal goes: beside the control socket, `<name>.journal`. */
export function exitDumpPath(socketPath: string): string {
  return socketPath.replace(/\.sock$/, '') + '.journal';
}

/**
 * On exit 1, the events kept in memory, written as a journal (with --record the file already has
 * them). Runs in process.on('exit'): synchronous, and it never throws.
 */
export function writeExitDump(recorder: Recorder, code: number, recording: string | null, socketPath: string, logger: Logger): void {
  if (code !== 1 || recording !== null) return;
  try {
    const dump = recorder.dump(`exit ${code}`);
    if (!dump) return;
    const path = exitDumpPath(socketPath);
    const next = `${path}.${process.pid}.tmp`;
    writeFileSync(next, dump.text, { mode: 0o600 });
    renameSync(next, path);
    logger.info(
      { code: 'ZD_JOURNAL_WRITTEN', file: path, events: dump.events, from: dump.from },
      `the last ${dump.events} events are in ${path}: zd replay ${path} shows what zd decided (attach it to a bug report)`,
    );
  } catch (error) {
    logger.warn({ code: 'ZD_JOURNAL_ERROR', what: 'write the exit journal', err: (error as Error).message }, `could not write the exit journal: ${(error as Error).message}`);
  }
}
