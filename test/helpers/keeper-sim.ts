// A simulated world for the keeper's pure reducer: primaries as records, timers on a fake clock,
// replies collected per request. Every step is checked against the written invariants
// (src/keeper/invariants.ts) and the state is frozen, so a reducer that writes to its input throws.
import { checkKeeperInvariants } from '../../src/keeper/invariants.ts';
import { initKeeper, reduceKeeper, type KeeperState } from '../../src/keeper/reduce.ts';
import type { KeeperEffect, KeeperEvent, PrimaryId } from '../../src/keeper/types.ts';
import { deepFreeze } from './sim.ts';

export interface SimPrimary {
  id: PrimaryId;
  node: string | null;
  alive: boolean;
  /** It reported ready (once). */
  ready: boolean;
  signals: string[];
  retired: boolean;
  killed: boolean;
  promoted: boolean;
}

export interface SimTimer {
  seq: number;
  due: number;
  event: KeeperEvent;
}

type Reply = Extract<KeeperEffect, { type: 'reply' }>;
type Log = Extract<KeeperEffect, { type: 'log' }>;

export class KeeperSim {
  state: KeeperState = deepFreeze(initKeeper());
  now = 0;
  readonly effects: KeeperEffect[] = [];
  /** The last dispatch's effects. */
  last: KeeperEffect[] = [];
  readonly procs = new Map<PrimaryId, SimPrimary>();
  timers: SimTimer[] = [];
  readonly replies = new Map<string, Reply[]>();
  readonly asked: string[] = [];
  exitCode: number | null = null;
  readonly history: string[] = [];
  private seq = 0;
  private requests = 0;

  dispatch(event: KeeperEvent): KeeperEffect[] {
    const before = this.state;
    const { state, effects } = reduceKeeper(before, event);
    this.history.push(`${JSON.stringify(event)} → ${effects.map((e) => e.type).join(',')}`);
    const broken = checkKeeperInvariants(before, state, event, effects);
    if (broken.length > 0) {
      throw new Error(`after ${JSON.stringify(event)}:\n  ${broken.join('\n  ')}\nlast steps:\n  ${this.history.slice(-12).join('\n  ')}\nstate: ${JSON.stringify(state)}`);
    }
    this.state = deepFreeze(state);
    this.last = effects;
    this.effects.push(...effects);
    for (const effect of effects) this.apply(effect);
    return effects;
  }

  private apply(effect: KeeperEffect): void {
    switch (effect.type) {
      case 'spawn':
        if (this.procs.has(effect.id)) throw new Error(`spawn(${effect.id}) twice`);
        this.procs.set(effect.id, { id: effect.id, node: effect.node, alive: true, ready: false, signals: [], retired: false, killed: false, promoted: false });
        break;
      case 'signal':
        this.proc(effect.id).signals.push(effect.signal);
        break;
      case 'retire':
        this.proc(effect.id).retired = true;
        break;
      case 'kill':
        this.proc(effect.id).killed = true;
        break;
      case 'promote':
        this.proc(effect.id).promoted = true;
        break;
      case 'timer':
        this.timers.push({ seq: this.seq++, due: this.now + effect.ms, event: effect.event });
        break;
      case 'reply': {
        const list = this.replies.get(effect.requestId) ?? [];
        list.push(effect);
        this.replies.set(effect.requestId, list);
        if (list.length > 1) throw new Error(`request ${effect.requestId} answered ${list.length} times`);
        break;
      }
      case 'exit':
        if (this.exitCode !== null) throw new Error('exit twice');
        this.exitCode = effect.code;
        break;
      case 'log':
        break;
    }
  }

  proc(id: PrimaryId): SimPrimary {
    const p = this.procs.get(id);
    if (!p) throw new Error(`no primary ${id}`);
    return p;
  }

  alive(): SimPrimary[] {
    return [...this.procs.values()].filter((p) => p.alive);
  }

  // -- what the world does ----------------------------------------------------------------------

  start(): this {
    this.dispatch({ type: 'keeper.start' });
    return this;
  }

  ready(id: PrimaryId): KeeperEffect[] {
    const p = this.proc(id);
    if (!p.alive || p.ready) throw new Error(`primary ${id} cannot report ready`);
    p.ready = true;
    return this.dispatch({ type: 'primary.ready', id });
  }

  exit(id: PrimaryId, opts: { code?: number | null; signal?: string | null; planned: boolean }): KeeperEffect[] {
    const p = this.proc(id);
    if (!p.alive) throw new Error(`primary ${id} already exited`);
    p.alive = false;
    return this.dispatch({ type: 'primary.exited', id, code: opts.code ?? null, signal: opts.signal ?? null, planned: opts.planned });
  }

  crash(id: PrimaryId, signal = 'SIGKILL'): KeeperEffect[] {
    return this.exit(id, { signal, planned: false });
  }

  stopped(id: PrimaryId, code = 0): KeeperEffect[] {
    return this.exit(id, { code, planned: true });
  }

  request(timeoutMs = 30_000, node: string | null = null): string {
    const requestId = `r${++this.requests}`;
    this.asked.push(requestId);
    this.dispatch({ type: 'upgrade.requested', request: { requestId, node, timeoutMs } });
    return requestId;
  }

  signal(signal: 'SIGTERM' | 'SIGINT' | 'SIGHUP' | 'SIGUSR2' | 'SIGQUIT'): KeeperEffect[] {
    return this.dispatch({ type: 'signal', signal });
  }

  /** Fires one pending timer (by its place in the list), whatever its due time. */
  fire(index: number): void {
    const [timer] = this.timers.splice(index, 1);
    if (timer === undefined) return;
    this.now = Math.max(this.now, timer.due);
    if (this.exitCode === null) this.dispatch(timer.event);
  }

  /** Moves the clock on, firing what falls due in order. */
  advance(ms: number): void {
    const until = this.now + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.due <= until).sort((a, b) => a.due - b.due || a.seq - b.seq)[0];
      if (due === undefined) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.now = due.due;
      if (this.exitCode === null) this.dispatch(due.event);
    }
    this.now = until;
  }

  // -- what was said ----------------------------------------------------------------------------

  reply(requestId: string): Reply | undefined {
    return this.replies.get(requestId)?.[0];
  }

  logs(code?: string): Log[] {
    return this.effects.filter((e): e is Log => e.type === 'log' && (code === undefined || e.code === code));
  }

  lastOf<T extends KeeperEffect['type']>(type: T): Array<Extract<KeeperEffect, { type: T }>> {
    return this.last.filter((e): e is Extract<KeeperEffect, { type: T }> => e.type === type);
  }
}
