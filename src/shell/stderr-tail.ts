// The last lines a worker wrote to stderr, kept so that a boot failure or an aborted rollout can
// quote the app's own error. Bounded per worker and in how many dead workers are remembered.

const MAX_BYTES = 4096;
const MAX_LINES = 20;
const REMEMBERED = 32;

export class StderrTails {
  private readonly tails = new Map<number, string>();

  append(workerId: number, chunk: Buffer | string): void {
    // Only the end can be kept: a worker writing megabytes a second costs a slice, not a decode.
    const text = (this.tails.get(workerId) ?? '') + (chunk.length > MAX_BYTES ? chunk.slice(-MAX_BYTES) : chunk).toString();
    this.tails.delete(workerId); // re-insert: the Map's order is recency
    this.tails.set(workerId, text.length > MAX_BYTES ? text.slice(-MAX_BYTES) : text);
    while (this.tails.size > REMEMBERED) this.tails.delete(this.tails.keys().next().value!);
  }

  get(workerId: number): string | undefined {
    const text = this.tails.get(workerId);
    if (text === undefined) return undefined;
    return text.trimEnd().split('\n').slice(-MAX_LINES).join('\n');
  }
}
