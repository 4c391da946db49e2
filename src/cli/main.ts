// zd's entry point: parses the command line, starts the runtime, and owns the only process.exit.
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { createClusterEnv } from '../shell/cluster-env.ts';
import { releaseSource } from '../shell/release.ts';
import { readReload } from './reload-settings.ts';
import { createLogger, defaultLogFormat } from '../shell/logger.ts';
import { Runtime } from '../shell/runtime.ts';
import { ZdError } from '../errors.ts';
import { MAIN_HELP, runHelp } from './help.ts';
import { VERSION } from '../version.ts';
import { parseRunArgs } from './run-options.ts';
import { typeScriptFor } from './typescript.ts';
import { ControlServer } from '../control/server.ts';
import { startMemorySampler } from '../shell/memory-sampler.ts';
import { takeListenFds } from '../shell/inherited.ts';
import { keeperLink, type KeeperLink } from '../shell/keeper-link.ts';
import { ensureRuntimeDir, runtimeDir, socketPath } from '../control/paths.ts';
import { Recorder } from '../record/recorder.ts';
import { Output } from '../shell/output.ts';
import { LogRing } from '../shell/log-ring.ts';
import { WorkerOutput } from '../shell/worker-output.ts';
import { openRecording, writeExitDump } from '../record/attach.ts';

/**
 * Preloaded into every worker: drains keep-alive connections with no change to the app. Resolved
 * through the package's own exports, so the source and the dist/ bundle find the same file.
 */
const WORKER_BOOTSTRAP = createRequire(import.meta.url).resolve('zd-runner/worker-bootstrap');

/** Set when a keeper runs this primary (src/keeper/): told of every exit that is a decision. */
let keeper: KeeperLink | null = null;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined) throw new ZdError('ZD_E_USAGE', 'no command: try zd run <app.js>, or zd --help');
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(MAIN_HELP);
    return 0;
  }
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (command === 'run') {
    // First: any exit of `zd run` is a decision (the help too), which the keeper must hear as one,
    // or it would count the exit as a crash and start this primary again.
    keeper = keeperLink(process.env);
    const ownArgs = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
    if (ownArgs.includes('--help') || ownArgs.includes('-h')) {
      process.stdout.write(runHelp());
      return 0;
    }
    return run(rest);
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(MAIN_HELP);
    return 0;
  }
  const control = CONTROL_COMMANDS[command];
  if (control) return control(rest);
  throw new ZdError('ZD_E_USAGE', `unknown command '${command}' (see zd --help)`);
}

// Loaded on demand: a running primary never pays for the client side (nor node:http and
// prom-client for the health and metrics servers, below, unless asked for).
const CONTROL_COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  status: async (argv) => (await import('./control-commands.ts')).statusCommand(argv),
  reload: async (argv) => (await import('./control-commands.ts')).reloadCommand(argv),
  rollback: async (argv) => (await import('./control-commands.ts')).rollbackCommand(argv),
  scale: async (argv) => (await import('./control-commands.ts')).scaleCommand(argv),
  upgrade: async (argv) => (await import('./control-commands.ts')).upgradeCommand(argv),
  stop: async (argv) => (await import('./control-commands.ts')).stopCommand(argv),
  list: async (argv) => (await import('./control-commands.ts')).listCommand(argv),
  inspect: async (argv) => (await import('./inspect.ts')).inspectCommand(argv),
  dump: async (argv) => (await import('./control-commands.ts')).dumpCommand(argv),
  logs: async (argv) => (await import('./logs.ts')).logsCommand(argv),
  replay: async (argv) => (await import('./replay.ts')).replayCommand(argv),
};

async function run(argv: string[]): Promise<number> {
  const options = parseRunArgs(argv, process.env);
  const typescript = typeScriptFor(options.app, WORKER_BOOTSTRAP);
  // zd's stderr carries the workers' stderr lines and zd's own: both through one stream, so that
  // neither is ever written into the middle of the other (src/shell/output.ts).
  const stderr = new Output(process.stderr);
  const logger = createLogger(options.shell.logFormat ?? defaultLogFormat(process.stderr, process.env), undefined, (line) => stderr.write(line));
  const stdout = new Output(process.stdout, (error) =>
    logger.warn({ code: 'ZD_IO_ERROR', what: 'stdout', err: error.message }, `zd's stdout failed (${error.message}): the workers' stdout is dropped from now on`),
  );
  const logRing = new LogRing();
  const output = new WorkerOutput({
    stdout,
    stderr,
    ring: logRing,
    prefix: options.shell.logPrefix,
    onLongLine: (workerId, stream, total) =>
      logger.warn(
        { code: 'ZD_LOG_LINE_SPLIT', workerId, stream, total },
        `worker ${workerId} wrote a line of over 1 MB to std${stream} without a newline: it was written in pieces, which other workers' lines may separate (${total} such lines so far)`,
      ),
  });
  keeper?.useLogger(logger);
  const dir = runtimeDir();
  ensureRuntimeDir(dir);
  // The paths as the user named them (through a release link), then everything a generation is
  // pinned to, read once now and again at every reload.
  const source = releaseSource(options.app, options.args, process.env);
  const readSpec = () =>
    readReload(argv, options, source, (kept) =>
      logger.warn(
        { code: 'ZD_CONFIG_NEEDS_RESTART', kept },
        `the config changed settings a running zd cannot take (${kept.join(', ')}): they apply after a restart; the rest applies to the new generation`,
      ),
    );
  const first = readSpec();
  if ('problem' in first) throw new ZdError(first.problem.startsWith('the app') ? 'ZD_E_APP_MISSING' : 'ZD_E_CONFIG', first.problem, 2);
  // systemd's socket activation: sockets given to zd serve the app's listens of their addresses.
  // Or the keeper's: the sockets earlier primaries bound, and systemd's, handed down.
  let inherited;
  try {
    inherited = keeper ? keeper.inherited : takeListenFds(process.env, process.pid);
  } catch (error) {
    throw new ZdError('ZD_E_LISTEN_FDS', (error as Error).message, 2);
  }
  let runtime: Runtime | undefined;
  const env = createClusterEnv({
    source,
    readReload: readSpec,
    execArgv: [...workerExecArgv(process.execArgv), '--require', WORKER_BOOTSTRAP, ...typescript.execArgv],
    workerEnv: {
      ...(options.shell.metricsPort !== null ? { ZD_STATS: '1' } : {}),
    },
    ...(keeper ? { signals: keeper.onSignal } : {}),
    sockets: {
      sched: options.shell.sched,
      stickyPort: options.shell.stickyPort,
      inherited,
      onBound: keeper ? (key, handle) => keeper?.bound(key, handle) : undefined,
      onReleased: keeper ? (key) => keeper?.released(key) : undefined,
      borrow: keeper ? (key, got) => keeper?.borrow(key, got as (handle: unknown) => void) : undefined,
      onError: (what, error) => logger.warn({ code: 'ZD_IO_ERROR', what, err: error.message }, `${what} failed: ${error.message}`),
      onReport: (code, message, fields) => logger.warn({ code, ...fields }, message),
    },
    ...(keeper ? { releasePorts: (done: () => void) => keeper!.releasePorts(done) } : {}),
    onPortsClosed: () =>
      keeper?.retired
        ? logger.info({ code: 'ZD_PORTS_CLOSED', handedOver: true }, 'this primary stopped accepting (the newer one accepts on the same ports), and its workers drain')
        : logger.info({ code: 'ZD_PORTS_CLOSED', handedOver: false }, 'the ports are closed: new connections are refused from now on, and the workers drain'),
    output,
    onReleaseGone: (workerId, generation, gone) =>
      logger.error(
        { code: 'ZD_RELEASE_GONE', workerId, generation, release: gone.cwd, app: gone.app },
        `worker ${workerId} cannot start: generation ${generation}'s release ${gone.cwd} is gone (${gone.app} is missing); reload or roll back to a release that exists`,
      ),
    onIoError: (workerId, what, error) =>
      logger.warn({ code: 'ZD_IO_ERROR', workerId, what, err: error.message }, `worker ${workerId}: ${what} failed: ${error.message}`),
    onPipesFallback: (error) =>
      logger.warn(
        { code: 'ZD_LOG_PIPES_FALLBACK', err: error.message },
        `cannot make pipes for the workers' output (${error.message}): they write to socketpairs instead, which costs zd more CPU per line (is mkfifo installed?)`,
      ),
  });
  // Every event the primary takes, kept in memory (and with --record, in a file): src/record/.
  const recorder = new Recorder({
    name: options.shell.name,
    app: options.app,
    stderrTail: env.stderrTail,
    onError: (what, error) => logger.warn({ code: 'ZD_JOURNAL_ERROR', what, err: error.message }, `the journal could not ${what}: ${error.message}`),
  });
  runtime = new Runtime(env, logger, recorder);
  // The ports close when the core decides (a stop: the `ports.close` effect), or at exit.
  const sockets = env.sockets;
  const control = new ControlServer({
    path: socketPath(dir, options.shell.name),
    name: options.shell.name,
    app: options.app,
    pidfile: options.shell.pidfile,
    runtime,
    logger,
    keeper,
    dump: (reason) => recorder.dump(reason),
    logs: logRing,
  });
  // Health and metrics: closed at once when retired (the newer primary answers on the same sockets).
  const opsClosers: Array<() => void> = [];
  const opsDrained: Array<Promise<void>> = [];
  // Retired: this primary stops accepting before its workers are told to drain, so that what it
  // accepted a moment ago still reaches one of them (the newer primary accepts from now on).
  let onPromoted = () => {};
  const promoted = new Promise<void>((resolve) => (onPromoted = resolve));
  keeper?.attach(runtime, {
    onPromote: () => {
      control.promote();
      onPromoted();
    },
    onRetire: () => {
      sockets.close();
      for (const close of opsClosers.splice(0)) close();
    },
  });
  // Before any fork: a name clash, an unusable runtime directory or a taken health or metrics
  // port fails with nothing to clean up.
  await control.listen();
  const closers: Array<() => void> = [() => control.close(), () => sockets.close()];
  try {
    openRecording(recorder, options.shell.record, logger);
  } catch (error) {
    for (const close of closers) close();
    throw error;
  }
  closers.push(() => recorder.close());
  // Exit 1 (no worker ever ready, a crash loop, or zd's own failure): the last events go next to
  // the control socket, for zd replay and a bug report.
  process.once('exit', (code) => writeExitDump(recorder, code, options.shell.record, socketPath(dir, options.shell.name), logger));
  const startOps = async () => {
    if (options.shell.healthPort !== null) {
      const { startHealthServer } = await import('../ops/health.ts');
      const health = await startHealthServer({
        host: options.shell.healthHost,
        port: options.shell.healthPort,
        runtime,
        held: keeper,
        handedOver: () => keeper?.retired ?? false,
      });
      closers.push(health.close);
      opsClosers.push(health.close);
      opsDrained.push(health.drained);
    }
    if (options.shell.metricsPort !== null) {
      const { startMetricsServer } = await import('../ops/metrics.ts');
      const metrics = await startMetricsServer({
        host: options.shell.metricsHost,
        port: options.shell.metricsPort,
        runtime,
        logger,
        held: keeper,
        connections: () => ({ ...sockets.stats, waiting: sockets.waiting }),
      });
      closers.push(metrics.close);
      opsClosers.push(metrics.close);
      opsDrained.push(metrics.drained);
    }
  };
  // An upgrade candidate answers probes and scrapes only once promoted: until then the serving
  // primary does, on the same sockets, and a probe never hears a candidate that is still starting.
  if (keeper?.candidate) {
    promoted.then(startOps).catch((error: Error) =>
      logger.error({ code: 'ZD_IO_ERROR', what: 'health/metrics', err: error.message }, `cannot serve health or metrics after the upgrade: ${error.message}`),
    );
  } else {
    try {
      await startOps();
    } catch (error) {
      for (const close of closers) close();
      throw new ZdError('ZD_E_PORT', (error as Error).message, 1);
    }
  }
  if (options.config.maxMemoryBytes > 0) closers.push(startMemorySampler(runtime));
  // --sticky names the app's port up front: a port someone else holds is said now, before any
  // fork (zd binds it when the app listens). Under a keeper that holds it already, it is ours.
  if (options.shell.stickyPort !== null && !keeper?.holds(options.shell.stickyPort)) {
    const problem = await portProblem(options.shell.stickyPort);
    if (problem) {
      for (const close of closers) close();
      throw new ZdError('ZD_E_PORT', `cannot listen on port ${options.shell.stickyPort} for --sticky: ${problem}`, 1);
    }
  }
  logger.info(
    {
      code: 'ZD_CONFIG',
      version: VERSION,
      primaryPid: process.pid,
      node: process.version,
      ...(typescript.mode ? { typescript: typescript.mode } : {}),
      app: options.app,
      args: options.args,
      configFile: options.configFile,
      ...options.config,
      // Not spread: the shell's `name` would overwrite pino's own "name":"zd".
      instance: options.shell.name,
      healthPort: options.shell.healthPort,
      metricsPort: options.shell.metricsPort,
      sched: options.shell.sched,
      record: options.shell.record,
    },
    `zd ${VERSION} (pid ${process.pid}) running ${options.app} as '${options.shell.name}'`,
  );
  if (runtime.stopRequested) {
    // Stopped while starting up: nothing was forked, so nothing to drain.
    for (const close of closers) close();
    logger.info({ code: 'ZD_STOPPED', exitCode: 0 }, 'stopped before any worker started');
    return 0;
  }
  runtime.start(options.config, first.release);
  try {
    return await runtime.exited;
  } finally {
    for (const close of closers) close();
    // A probe or a scrape in flight is answered, not reset by the exit (bounded: a scrape waits
    // for workers that may be gone).
    await Promise.race([Promise.all(opsDrained), new Promise((resolve) => setTimeout(resolve, OPS_DRAIN_MS))]);
    // The workers' last lines, read from their pipes and taken by zd's reader, before the exit.
    await output.flush();
  }
}

/** How long an exiting primary lets its health and metrics requests in flight finish. */
const OPS_DRAIN_MS = 1000;

/** Why the port cannot be bound now (EADDRINUSE, EACCES), or null: a bind that is closed at once. */
function portProblem(port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    probe.listen(port, () => probe.close(() => resolve(null)));
  });
}

/** Node flags the primary was started with, minus zd's own TypeScript loader. */
function workerExecArgv(execArgv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i]!;
    if ((arg === '--import' || arg === '--require' || arg === '--loader') && /tsx/.test(execArgv[i + 1] ?? '')) {
      i++;
      continue;
    }
    if (/^--(import|require|loader)=.*tsx/.test(arg)) continue;
    out.push(arg);
  }
  return out;
}

/** Exits with a code zd chose (not a crash): a keeper hears so first, and does not restart it. */
function exitWith(code: number): void {
  if (keeper) keeper.exiting(code, () => process.exit(code));
  else process.exit(code);
}

main(process.argv.slice(2)).then(
  (code) => exitWith(code),
  (error: unknown) => {
    if (error instanceof ZdError) {
      process.stderr.write(`${error.toLine()}\n`);
      return exitWith(error.exitCode);
    }
    process.stderr.write(`zd: internal error: ${(error as Error)?.stack ?? String(error)}\n`);
    process.exit(1);
  },
);
