// Asks every worker one question over IPC and waits, boundedly, only for the workers known to
// answer it. A worker whose app never answers (no prom-client, an older bootstrap) is asked a few
// times, then no longer waited for, so a scrape never hangs on it; a late answer makes it known
// again. A known worker that misses the wait is reported by its last answer: an aggregated counter
// must not dip because one worker was slow.
import type { Worker } from 'node:cluster';

export interface PollTarget {
  pid: number;
  worker: Worker;
  /** Asked this time; a live worker not asked is still reported by its last answer. */
  ask: boolean;
}

export interface PollProtocol<T> {
  request(id: number): object;
  /** The answer a worker's message carries and the id of the request it answers, or undefined if it is not one. */
  parse(message: unknown): { id: number; value: T } | undefined;
}

export interface PollOptions {
  /** Longest a scrape waits for answers from workers known to answer. */
  waitMs: number;
  /** Longest it waits when it asks only workers not yet heard from. */
  probeWaitMs: number;
  /** Unanswered asks after which a ready worker that never answered is no longer waited for. */
  probes: number;
}

export interface Answer<T> {
  value: T;
  /** Answered this ask; otherwise the last answer of an earlier one. */
  fresh: boolean;
  /** Asked this time (and `fresh` says whether it answered in time). */
  asked: boolean;
}

interface Peer<T> {
  last: T | undefined;
  /** The request id `last` answers: fresh if it is this ask's. */
  id: number;
  misses: number;
}

export class WorkerPoll<T> {
  private readonly peers = new Map<number, Peer<T>>();
  private nextId = 1;
  private readonly wakers = new Set<() => void>();
  private inFlight: Promise<Map<number, Answer<T>>> | null = null;

  constructor(
    private readonly protocol: PollProtocol<T>,
    private readonly options: PollOptions,
  ) {}

  /** Every message from a worker passes through here. */
  onMessage(pid: number, message: unknown): void {
    const answer = this.protocol.parse(message);
    if (answer === undefined) return;
    const peer = this.peer(pid);
    // A slow worker's answers may come after a newer ask was sent: the newest data wins.
    if (answer.id < peer.id) return;
    peer.last = answer.value;
    peer.id = answer.id;
    peer.misses = 0;
    for (const wake of this.wakers) wake();
  }

  /** Concurrent scrapes share one ask: a scrape storm does not become an IPC storm. */
  ask(targets: PollTarget[]): Promise<Map<number, Answer<T>>> {
    this.inFlight ??= this.run(targets).finally(() => (this.inFlight = null));
    return this.inFlight;
  }

  private run(targets: PollTarget[]): Promise<Map<number, Answer<T>>> {
    const live = new Set(targets.map((t) => t.pid));
    for (const pid of this.peers.keys()) if (!live.has(pid)) this.peers.delete(pid);
    const id = this.nextId++;
    const awaited: Array<Peer<T>> = [];
    const asked = new Set<number>();
    for (const target of targets) {
      if (!target.ask || !target.worker.isConnected()) continue;
      try {
        // The callback takes a send error (a channel closing under us) instead of an 'error' event.
        target.worker.send(this.protocol.request(id) as never, undefined, () => {});
      } catch {
        continue;
      }
      asked.add(target.pid);
      const peer = this.peer(target.pid);
      if (peer.last !== undefined || peer.misses < this.options.probes) awaited.push(peer);
    }
    const probing = new Set(awaited.filter((peer) => peer.last === undefined));
    let waitingFor = awaited;
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(probeTimer);
        clearTimeout(timer);
        this.wakers.delete(check);
        for (const peer of probing) if (peer.id < id) peer.misses++;
        const answers = new Map<number, Answer<T>>();
        for (const pid of live) {
          const peer = this.peers.get(pid);
          if (peer?.last !== undefined) answers.set(pid, { value: peer.last, fresh: peer.id >= id, asked: asked.has(pid) });
        }
        resolve(answers);
      };
      const check = () => {
        if (waitingFor.every((peer) => peer.id >= id)) finish();
      };
      // Workers not heard from get the short wait, known ones the long one.
      const probeTimer = setTimeout(() => {
        waitingFor = awaited.filter((peer) => !probing.has(peer));
        check();
      }, this.options.probeWaitMs);
      const timer = setTimeout(finish, this.options.waitMs);
      this.wakers.add(check);
      check();
    });
  }

  private peer(pid: number): Peer<T> {
    let peer = this.peers.get(pid);
    if (!peer) {
      peer = { last: undefined, id: 0, misses: 0 };
      this.peers.set(pid, peer);
    }
    return peer;
  }
}
