// The world the property suite drives zd's reducer through: fast-check commands for everything
// that can happen to a primary (signals, crashes, boots, channel closes, timer firings, late IPC),
// and a `settle` that delivers every pending outcome so convergence can be judged.
import fc from 'fast-check';
import type { CoreConfig } from '../../src/core/config.ts';
import { getWorker, isBooting, isLeaving, isReady, liveWorkers, matches, servingGeneration } from '../../src/core/queries.ts';
import { checkedSim, simConfig, type Sim } from '../helpers/sim.ts';
import { Act as ActOf, type Model } from '../helpers/fc-act.ts';
import { emptyFigures, type Figures } from '../../src/core/canary-figures.ts';

/** CI runs this many sequences per property; ZD_PROPERTY_RUNS raises it for deep runs. */
export const RUNS = Number(process.env.ZD_PROPERTY_RUNS ?? 1000);

type Cmd = fc.Command<Model, Sim>;
const Act = ActOf<Sim>;

function pick<T>(items: T[], index: number): T | undefined {
  return items.length === 0 ? undefined : items[index % items.length];
}

const entryOf = (sim: Sim, id: number) => getWorker(sim.state, id);

function bootingProcs(sim: Sim) {
  return sim.alive().filter((p) => {
    if (!p.connected) return false; // readiness needs the channel
    const entry = entryOf(sim, p.id);
    return entry !== undefined && matches(entry, 'booting');
  });
}

/** Makes a booting worker ready the way its readiness mode expects. */
export function makeReady(sim: Sim, id: number): void {
  const entry = entryOf(sim, id)!;
  if (matches(entry, 'booting.forking')) sim.dispatch({ type: 'worker.online', workerId: id });
  if (sim.exitCode !== null) return;
  // A healthy app listens wherever its predecessors do (the first one on :3000).
  for (const address of entry.expects ?? [':3000']) {
    if (sim.exitCode !== null || !entryOf(sim, id)) return;
    sim.dispatch({ type: 'worker.listening', workerId: id, address });
  }
  if (sim.exitCode !== null) return;
  if (sim.state.config.readyOn === 'message') sim.dispatch({ type: 'worker.message', workerId: id, message: 'ready' });
}

/** Figures of a worker over a canary window: healthy, failing a third, slow, or idle. */
export function figuresOf(quality: 'good' | 'errors' | 'slow' | 'idle', isNew: boolean): Figures {
  const f = emptyFigures();
  const n = quality === 'idle' ? 0 : 200;
  f.requests = n;
  const bad = isNew && quality === 'errors' ? Math.floor(n / 3) : 0;
  f.status['2xx'] = n - bad;
  f.status['5xx'] = bad;
  f.buckets[isNew && quality === 'slow' ? 8 : 1] = n;
  return f;
}

/** Answers the oldest pending canary collection, as the shell would. */
export function answerCanary(sim: Sim, quality: 'good' | 'errors' | 'slow' | 'idle' | 'silent'): void {
  const ask = sim.collects.shift();
  if (!ask) return;
  sim.dispatch({
    type: 'canary.figures',
    requestId: ask.requestId,
    figures: ask.workerIds.map((workerId) => {
      const p = sim.procs.get(workerId);
      return { workerId, figures: quality === 'silent' || !p?.alive ? null : figuresOf(quality, p.generation === ask.requestId) };
    }),
  });
}

// From now on, the shell answers every canary collection this way (or loses it); and answers
// any pending one now.
const canaryAnswers = fc.constantFrom('good' as const, 'errors' as const, 'slow' as const, 'idle' as const, 'silent' as const, 'lost' as const).map(
  (quality) =>
    new Act(`canaryFigures(${quality})`, (sim) => {
      if (quality === 'lost') {
        sim.answerCollect = (s) => void s.collects.shift();
        sim.collects.length = 0;
        return;
      }
      sim.answerCollect = (s) => answerCanary(s, quality);
      answerCanary(sim, quality);
    }),
);

export const commandArbs: Array<fc.Arbitrary<Cmd>> = [
  canaryAnswers,
  fc.nat().map(
    (i) =>
      new Act(`dieWarming(${i})`, (sim) => {
        // A replacement dies within its min-ready period; cluster reports the exit first.
        const p = pick(sim.alive().filter((q) => { const e = entryOf(sim, q.id); return e !== undefined && matches(e, 'warming'); }), i);
        if (p) sim.die(p.id, 1, null, true);
      }),
  ),
  fc.constantFrom('SIGHUP', 'SIGUSR2', 'control').map(
    (source) =>
      new Act(`reload(${source})`, (sim) =>
        sim.dispatch(source === 'control' ? { type: 'control.reload' } : { type: 'signal.hup', signal: source }),
      ),
  ),
  fc.integer({ min: 1, max: 5 }).map(
    (workers) =>
      new Act(`reloadWithWorkers(${workers})`, (sim) =>
        // The config file now says another worker count: the reload carries the settings.
        sim.dispatch({ type: 'control.reload', config: { ...sim.state.config, workers } }),
      ),
  ),
  fc.integer({ min: 0, max: 5 }).map(
    (workers) => new Act(`scale(${workers})`, (sim) => sim.dispatch({ type: 'control.scale', workers })),
  ),
  fc.constantFrom('SIGTERM' as const, 'SIGINT' as const).map(
    (signal) => new Act(`term(${signal})`, (sim) => sim.dispatch({ type: 'signal.term', signal })),
  ),
  fc.nat().map(
    (i) =>
      new Act(`online(${i})`, (sim) => {
        const p = pick(bootingProcs(sim).filter((q) => matches(entryOf(sim, q.id)!, 'booting.forking')), i);
        if (p) sim.dispatch({ type: 'worker.online', workerId: p.id });
      }),
  ),
  fc.nat().map(
    (i) =>
      new Act(`ready(${i})`, (sim) => {
        const p = pick(bootingProcs(sim), i);
        if (p) makeReady(sim, p.id);
      }),
  ),
  fc.tuple(fc.nat(), fc.constantFrom<[number | null, string | null]>([0, null], [1, null], [137, null], [null, 'SIGKILL'], [null, 'SIGSEGV']), fc.boolean()).map(
    ([i, [code, signal], exitFirst]) =>
      new Act(`die(${i}, ${code ?? signal}${exitFirst ? ', exit first' : ''})`, (sim) => {
        const p = pick(sim.alive(), i);
        if (p) sim.die(p.id, code, signal, exitFirst);
      }),
  ),
  fc.nat().map(
    (i) =>
      new Act(`channelCloses(${i})`, (sim) => {
        const p = pick(sim.alive().filter((q) => q.connected), i);
        if (!p) return;
        p.connected = false;
        sim.dispatch({ type: 'worker.disconnect', workerId: p.id });
      }),
  ),
  // Mostly short steps, so that workers get a chance to boot before their deadlines.
  fc
    .oneof({ arbitrary: fc.integer({ min: 1, max: 1500 }), weight: 4 }, { arbitrary: fc.integer({ min: 1, max: 40_000 }), weight: 1 })
    .map((ms) => new Act(`advance(${ms})`, (sim) => sim.advance(ms))),
  fc.constant(
    new Act('bootAll', (sim) => {
      for (const p of bootingProcs(sim)) if (sim.exitCode === null && entryOf(sim, p.id)) makeReady(sim, p.id);
    }),
  ),
  fc.nat().map(
    (i) =>
      new Act(`fireAnyTimer(${i})`, (sim) => {
        // Out of deadline order: the reducer must stay correct whatever order timers land in.
        const id = pick([...sim.timers.keys()].sort(), i);
        if (!id) return;
        sim.now = Math.max(sim.now, sim.timers.get(id)!);
        sim.timers.delete(id);
        sim.dispatch({ type: 'timer.fired', timerId: id });
      }),
  ),
  fc.nat().map(
    (i) =>
      new Act(`answerPings(${i})`, (sim) => {
        // A worker that is never answered for is a hung one: the heartbeat must replace it.
        const p = pick(sim.alive(), i);
        if (p) answerPings(sim, p.id);
      }),
  ),
  fc.nat().map(
    (i) =>
      new Act(`listenElsewhere(${i})`, (sim) => {
        // A deploy listening on the wrong port: it must not pass for ready.
        const p = pick(bootingProcs(sim), i);
        if (!p) return;
        if (matches(entryOf(sim, p.id)!, 'booting.forking')) sim.dispatch({ type: 'worker.online', workerId: p.id });
        if (sim.exitCode === null) sim.dispatch({ type: 'worker.listening', workerId: p.id, address: ':9999' });
      }),
  ),
  fc.tuple(fc.nat(), fc.constantFrom(':3000', ':9100')).map(
    ([i, address]) =>
      new Act(`listenOn(${i}, ${address})`, (sim) => {
        // An app with two servers (public and admin) that start in either order, or one late.
        const p = pick(sim.alive().filter((q) => q.connected), i);
        if (p) sim.dispatch({ type: 'worker.listening', workerId: p.id, address });
      }),
  ),
  fc.tuple(fc.nat(), fc.boolean()).map(
    ([i, over]) =>
      new Act(`memory(${i}, ${over ? 'over' : 'under'})`, (sim) => {
        const p = pick(sim.alive(), i);
        if (p) sim.dispatch({ type: 'worker.memory', workerId: p.id, rssBytes: over ? 200 * 1024 * 1024 : 50 * 1024 * 1024 });
      }),
  ),
  fc.tuple(fc.nat(), fc.constantFrom('listening', 'ready', 'exit', 'disconnect', 'online')).map(
    ([i, kind]) =>
      new Act(`late(${kind}, ${i})`, (sim) => {
        // News of a worker that is already gone (or never existed) arrives late.
        const dead = [...sim.procs.values()].filter((p) => !p.alive).map((p) => p.id);
        const workerId = pick([...dead, 999], i)!;
        if (kind === 'listening') sim.dispatch({ type: 'worker.listening', workerId });
        else if (kind === 'ready') sim.dispatch({ type: 'worker.message', workerId, message: 'ready' });
        else if (kind === 'exit') sim.dispatch({ type: 'worker.exit', workerId, code: 1, signal: null });
        else if (kind === 'online') sim.dispatch({ type: 'worker.online', workerId });
        else sim.dispatch({ type: 'worker.disconnect', workerId });
      }),
  ),
];

export const configArb: fc.Arbitrary<CoreConfig> = fc
  .record({
    workers: fc.integer({ min: 1, max: 4 }),
    maxSurge: fc.integer({ min: 0, max: 2 }),
    maxUnavailable: fc.integer({ min: 0, max: 2 }),
    readyOn: fc.constantFrom('listening' as const, 'message' as const),
    maxRestarts: fc.integer({ min: 0, max: 5 }),
    retireStaggerMs: fc.constantFrom(0, 0, 300),
    shutdownDelayMs: fc.constantFrom(0, 0, 400),
    heartbeatTimeoutMs: fc.constantFrom(0, 0, 700),
    maxMemoryBytes: fc.constantFrom(0, 0, 100 * 1024 * 1024),
    minReadyMs: fc.constantFrom(0, 600),
    canaryMs: fc.constantFrom(0, 0, 800),
    canaryInconclusive: fc.constantFrom('abort' as const, 'proceed' as const),
  })
  // Kubernetes refuses maxSurge 0 with maxUnavailable 0, and so does zd's CLI.
  .map((c) => (c.maxSurge === 0 && c.maxUnavailable === 0 ? { ...c, maxSurge: 1 } : c))
  .map((c) =>
    simConfig({ ...c, readyTimeoutMs: 1000, drainTimeoutMs: 2000, killTimeoutMs: 500, stableAfterMs: 5000, backoffMaxMs: 1600, heartbeatIntervalMs: 500 }),
  );

/** Answers every heartbeat ping a live, connected process has not answered yet. */
export function answerPings(sim: Sim, only?: number): void {
  for (const p of sim.alive()) {
    if (only !== undefined && p.id !== only) continue;
    if (!p.connected || sim.exitCode !== null) continue;
    for (const message of p.messages) {
      const seq = (message as { type?: string; seq?: number }).type === 'zd:ping' ? (message as { seq: number }).seq : 0;
      if (seq > (p.answered ?? 0)) {
        p.answered = seq;
        sim.dispatch({ type: 'worker.message', workerId: p.id, message: { type: 'zd:pong', seq } });
      }
    }
  }
}

/**
 * Delivers every pending outcome, as a world in which nothing fails any more would: booting
 * workers become ready, leaving ones exit, and timers fire in deadline order. Bounded.
 */
export function settle(sim: Sim): void {
  for (let round = 0; round < 5000 && sim.exitCode === null; round++) {
    let acted = false;
    for (const p of sim.alive()) {
      if (sim.exitCode !== null) break;
      const entry = entryOf(sim, p.id);
      if (!entry) {
        sim.die(p.id, null, 'SIGKILL'); // given up as lost by the primary: the kernel reaps it
      } else if (p.connected && p.messages.some((m) => (m as { type?: string; seq?: number }).type === 'zd:ping' && (m as { seq: number }).seq > (p.answered ?? 0))) {
        answerPings(sim, p.id);
      } else if (sim.collects.length > 0) {
        answerCanary(sim, 'good');
      } else if (matches(entry, 'booting') && p.connected) {
        makeReady(sim, p.id); // a warming worker only needs time to pass
      } else if (isLeaving(entry)) {
        sim.die(p.id, 0);
      } else {
        continue;
      }
      acted = true;
    }
    if (acted) continue;
    // Heartbeat pings recur for as long as workers serve: once only they are left, all is
    // settled. Until then step through them too, so that every ping is answered in time.
    const pending = [...sim.timers.entries()];
    if (pending.every(([id]) => id.startsWith('ping:'))) break;
    const next = Math.min(...pending.map(([, at]) => at));
    sim.advance(Math.max(0, next - sim.now));
  }
  // Processes the primary killed at a forced exit die; nothing else may still be alive then.
  if (sim.exitCode !== null) {
    for (const p of sim.alive()) if (p.signals.includes('SIGKILL')) sim.die(p.id, null, 'SIGKILL');
  }
}

/** Invariant 7: with crashes over and everything delivered, the pool has converged. */
export function convergenceProblems(sim: Sim): string[] {
  const problems: string[] = [];
  const { state } = sim;
  if (sim.exitCode !== null) {
    if (sim.alive().length > 0) problems.push(`exited ${sim.exitCode} with ${sim.alive().length} process(es) alive`);
    return problems;
  }
  if (state.phase !== 'running') problems.push(`phase ${state.phase} after settling`);
  if (state.rollout !== null) problems.push('a rollout is still running after settling');
  const live = liveWorkers(state);
  const ready = live.filter(isReady);
  const parked = state.slots.filter((slot) => slot.parked).length;
  if (ready.length + parked !== state.config.workers) {
    problems.push(`${ready.length} ready + ${parked} parked ≠ ${state.config.workers} workers`);
  }
  if (live.length !== ready.length) problems.push(`${live.length - ready.length} live worker(s) not ready after settling`);
  const last = state.lastReload;
  if (last?.outcome === 'aborted') {
    if (!last.reason) problems.push('an aborted rollout without a recorded reason');
    // The serving generation is back everywhere: no slot is left on the aborted code, which gets no
    // traffic; unless its restore failed more than --max-restarts times in a row (old code that
    // cannot boot either: ZD_RESTORE_FAILED says so, and the next reload replaces it).
    const serving = servingGeneration(state);
    const stale = ready.filter((w) => w.generation > serving && (state.slots[w.slot]?.worker !== w.id || state.slots[w.slot]!.failures <= state.config.maxRestarts));
    if (stale.length > 0) problems.push(`workers ${stale.map((w) => `${w.id}@gen${w.generation}`).join(', ')} run the aborted generation, not ${serving}`);
  } else {
    const stale = ready.filter((w) => w.generation !== state.generation);
    if (stale.length > 0) {
      problems.push(`workers ${stale.map((w) => `${w.id}@gen${w.generation}`).join(', ')} are not of generation ${state.generation}`);
    }
  }
  if (sim.alive().length !== live.length) {
    problems.push(`${sim.alive().length} processes alive but ${live.length} workers known`);
  }
  return problems;
}

/** Runs a sequence of commands, then settles, checks convergence, stops, and checks the exit. */
export function runScenario(config: CoreConfig, commands: Iterable<Cmd>, settled?: (sim: Sim) => void): Sim {
  const sim = checkedSim(config);
  fc.modelRun(() => ({ model: {}, real: sim }), commands);
  settle(sim);
  const problems = convergenceProblems(sim);
  if (problems.length > 0) throw new Error(`not converged:\n  ${problems.join('\n  ')}`);
  settled?.(sim);
  if (sim.exitCode === null) {
    sim.dispatch({ type: 'signal.term', signal: 'SIGTERM' });
    settle(sim);
    if (sim.exitCode !== 0) throw new Error(`SIGTERM after settling exited ${sim.exitCode}`);
  }
  if (sim.alive().length > 0) {
    throw new Error(`exited ${sim.exitCode} with process(es) ${sim.alive().map((p) => p.id).join(', ')} alive`);
  }
  return sim;
}

export const commandsArb = fc.commands(commandArbs, { maxCommands: 60 });

/** Replays a failure: ZD_PROPERTY_SEED and ZD_PROPERTY_PATH, as printed by a failing run. */
export const replay = process.env.ZD_PROPERTY_SEED
  ? { seed: Number(process.env.ZD_PROPERTY_SEED), path: process.env.ZD_PROPERTY_PATH }
  : {};

/**
 * fc.assert, but the failure names the broken invariant: the report has the seed, the path, the
 * shrunk counterexample, and the error the shrunk counterexample raised (fast-check keeps that as
 * a cause, which the test runner does not print).
 */
export function assertProperty<Ts>(property: fc.IProperty<Ts>, params: fc.Parameters<Ts> = {}): void {
  throwIfFailed(fc.check(property, { numRuns: RUNS, ...replay, ...params }), 'property');
}

/** The same for properties over real processes (fc.asyncProperty). */
export async function assertAsyncProperty<Ts>(property: fc.IAsyncProperty<Ts>, params: fc.Parameters<Ts>, testPath: string): Promise<void> {
  throwIfFailed(await fc.check(property, { ...replay, ...params }), testPath);
}

function throwIfFailed<Ts>(details: fc.RunDetails<Ts>, testPath: string): void {
  if (!details.failed) return;
  const error = details.errorInstance instanceof Error ? (process.env.ZD_PROPERTY_STACK ? details.errorInstance.stack ?? details.errorInstance.message : details.errorInstance.message) : String(details.errorInstance);
  throw new Error(
    `${fc.defaultReportMessage(details)}\n\nThe shrunk counterexample broke:\n${error}\n\n` +
      `Replay: ZD_PROPERTY_SEED=${details.seed} ZD_PROPERTY_PATH=${details.counterexamplePath} node test/run.js ${testPath}`,
  );
}
