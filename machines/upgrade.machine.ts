// The upgrade procedure (`zd upgrade`, issue 13): replace the keeper's current primary with a new
// one without ever leaving the sockets unserved.
//
// The candidate boots beside the current primary (`beside`); only once it is ready is it promoted
// and the old one retired, so a retire never precedes its successor's readiness. Every upgrade has
// a deadline: a candidate not ready by then is killed and the old primary serves on (tableflip's
// "upgrade timeout", then a kill). A candidate that exits before it is ready aborts the upgrade the
// same way. If the current primary crashes meanwhile, the candidate is promoted at once and the
// upgrade goes on `alone`: it is the only primary now, so its deadline answers the request but no
// longer kills it (it serves on as the current primary, as a freshly started one would).
//
// The machine answers each request exactly once: every way out of `upgrading` carries a `succeed`
// or an `abort`. Who may start an upgrade (one at a time, only beside a ready primary, never while
// stopping) is the keeper reducer's decision (src/keeper/reduce.ts), as is what a crash or a stop
// means for the keeper as a whole. Like the primary's machines it runs nothing: its actions are
// names with params that the reducer turns into effects, and its deadline comes back from xstate's
// pure `transition()` as an `xstate.raise` with a delay, which the reducer arms as a timer.
import { setup } from 'xstate';
import type { PrimaryId, UpgradeRequest } from '../src/keeper/types.ts';

export interface UpgradeContext {
  /** The request being carried out: answered by the `succeed` or `abort` that ends it. */
  request: UpgradeRequest | null;
  candidate: PrimaryId | null;
  /** The primary it replaces. */
  previous: PrimaryId | null;
  /** It crashed during the upgrade (a guard needs this as data: the state says it too). */
  previousCrashed: boolean;
}

export type UpgradeEvent =
  /** The reducer accepted a request and chose the candidate's id. */
  | { type: 'upgrade.start'; request: UpgradeRequest; candidate: PrimaryId; previous: PrimaryId }
  | { type: 'candidate.ready' }
  | { type: 'candidate.exited'; code: number | null; signal: string | null }
  /** The primary being replaced crashed: the candidate is the only primary left. */
  | { type: 'previous.crashed'; code: number | null; signal: string | null }
  /** The primary being replaced stopped on its own (a planned exit): the keeper is stopping. */
  | { type: 'previous.stopped'; code: number | null; signal: string | null }
  /** A stop signal reached the keeper: the candidate is stopped with everything else. */
  | { type: 'keeper.stopping'; signal: string };

/** "exited with code 1", "was killed by SIGKILL", "could not be started". */
export function howItExited(code: number | null, signal: string | null): string {
  if (signal !== null) return `was killed by ${signal}`;
  if (code !== null) return `exited with code ${code}`;
  return 'could not be started';
}

const base = setup({
  types: {
    context: {} as UpgradeContext,
    events: {} as UpgradeEvent,
  },
  actions: {
    // Named effects the keeper reducer carries out.
    spawnCandidate: (_, _params: { id: PrimaryId; node: string | null; timeoutMs: number; previous: PrimaryId }) => {},
    promote: (_, _params: { id: PrimaryId }) => {},
    retire: (_, _params: { id: PrimaryId }) => {},
    kill: (_, _params: { id: PrimaryId }) => {},
    /** Answer the request: it worked. */
    succeed: (_, _params: { requestId: string; id: PrimaryId; message: string }) => {},
    /** Answer the request: it did not, and why. */
    abort: (_, _params: { requestId: string; id: PrimaryId; message: string }) => {},
  },
  guards: {
    previousCrashed: ({ context }) => context.previousCrashed,
  },
  delays: {
    deadline: ({ context }) => context.request?.timeoutMs ?? 0,
  },
});

type Enqueue = Parameters<Parameters<typeof base.enqueueActions>[0]>[0]['enqueue'];

function answer(enqueue: Enqueue, context: UpgradeContext, ok: boolean, message: string): void {
  const params = { requestId: context.request!.requestId, id: context.candidate!, message };
  enqueue(ok ? { type: 'succeed', params } : { type: 'abort', params });
}

const p = (id: PrimaryId | null) => `primary ${id}`;

export const upgradeMachine = base
  .extend({
    actions: {
      begin: base.assign(({ event }) =>
        event.type === 'upgrade.start'
          ? { request: event.request, candidate: event.candidate, previous: event.previous }
          : {},
      ),
      clear: base.assign({ request: null, candidate: null, previous: null, previousCrashed: false }),
      spawn: base.enqueueActions(({ context, enqueue }) => {
        const { request, candidate, previous } = context;
        enqueue({
          type: 'spawnCandidate',
          params: { id: candidate!, node: request!.node, timeoutMs: request!.timeoutMs, previous: previous! },
        });
      }),
      /**
       * Ready beside the old one: it takes over, the asker hears so, then the old one drains. The
       * answer goes out before the retirement: it travels through the old primary's control
       * connection, which a retirement may close.
       */
      takeOver: base.enqueueActions(({ context, enqueue }) => {
        enqueue({ type: 'promote', params: { id: context.candidate! } });
        answer(enqueue, context, true, `upgraded: ${p(context.candidate)} is ready and serves; ${p(context.previous)} retires`);
        enqueue({ type: 'retire', params: { id: context.previous! } });
      }),
      /** The old one crashed: the candidate is the current primary from now on. */
      adopt: base.enqueueActions(({ context, enqueue }) => {
        enqueue.assign({ previousCrashed: true });
        enqueue({ type: 'promote', params: { id: context.candidate! } });
      }),
      readyAlone: base.enqueueActions(({ context, enqueue }) => {
        answer(enqueue, context, true, `upgraded: ${p(context.candidate)} is ready and serves (${p(context.previous)} crashed during the upgrade)`);
      }),
      timedOut: base.enqueueActions(({ context, enqueue }) => {
        enqueue({ type: 'kill', params: { id: context.candidate! } });
        answer(
          enqueue,
          context,
          false,
          `upgrade aborted: ${p(context.candidate)} was not ready within ${context.request!.timeoutMs} ms and was killed; ${p(context.previous)} serves on`,
        );
      }),
      // Killing the only primary would leave nothing serving: it stays, as a fresh start would.
      timedOutAlone: base.enqueueActions(({ context, enqueue }) => {
        answer(
          enqueue,
          context,
          false,
          `upgrade aborted: ${p(context.candidate)} was not ready within ${context.request!.timeoutMs} ms; ` +
            `${p(context.previous)} crashed meanwhile, so ${p(context.candidate)} stays on as the current primary`,
        );
      }),
      candidateExited: base.enqueueActions(({ context, event, enqueue }) => {
        if (event.type !== 'candidate.exited') return;
        const how = howItExited(event.code, event.signal);
        answer(enqueue, context, false, `upgrade aborted: ${p(context.candidate)} ${how} before it was ready; ${p(context.previous)} serves on`);
      }),
      crashedAlone: base.enqueueActions(({ context, event, enqueue }) => {
        if (event.type !== 'candidate.exited') return;
        const how = howItExited(event.code, event.signal);
        answer(
          enqueue,
          context,
          false,
          `upgrade aborted: ${p(context.candidate)} ${how} before it was ready, and ${p(context.previous)} had crashed during the upgrade`,
        );
      }),
      previousStopped: base.enqueueActions(({ context, event, enqueue }) => {
        if (event.type !== 'previous.stopped') return;
        enqueue({ type: 'kill', params: { id: context.candidate! } });
        const how = howItExited(event.code, event.signal);
        answer(
          enqueue,
          context,
          false,
          `upgrade aborted: ${p(context.previous)} stopped (${how}) before ${p(context.candidate)} was ready; zd is stopping and ${p(context.candidate)} was killed`,
        );
      }),
      abandoned: base.enqueueActions(({ context, event, enqueue }) => {
        if (event.type !== 'keeper.stopping') return;
        answer(enqueue, context, false, `upgrade aborted: zd is stopping (${event.signal}); ${p(context.candidate)} stops with it`);
      }),
    },
  })
  .createMachine({
    id: 'upgrade',
    context: { request: null, candidate: null, previous: null, previousCrashed: false },
    initial: 'idle',
    states: {
      idle: {
        entry: 'clear',
        on: { 'upgrade.start': { target: 'upgrading', actions: 'begin' } },
      },
      upgrading: {
        initial: 'beside',
        entry: 'spawn',
        // One deadline for the whole upgrade: the current primary crashing does not restart it.
        after: {
          deadline: [
            { guard: 'previousCrashed', target: 'idle', actions: 'timedOutAlone' },
            { target: 'idle', actions: 'timedOut' },
          ],
        },
        on: {
          'keeper.stopping': { target: 'idle', actions: 'abandoned' },
        },
        states: {
          // The candidate boots while the current primary serves.
          beside: {
            on: {
              'candidate.ready': { target: '#upgrade.idle', actions: 'takeOver' },
              'candidate.exited': { target: '#upgrade.idle', actions: 'candidateExited' },
              'previous.crashed': { target: 'alone', actions: 'adopt' },
              'previous.stopped': { target: '#upgrade.idle', actions: 'previousStopped' },
            },
          },
          // The current primary crashed: the candidate, promoted, is the only primary.
          alone: {
            on: {
              'candidate.ready': { target: '#upgrade.idle', actions: 'readyAlone' },
              'candidate.exited': { target: '#upgrade.idle', actions: 'crashedAlone' },
            },
          },
        },
      },
    },
  });

export type UpgradeMachine = typeof upgradeMachine;
