// The fast-check command both property models use: an action on a simulated world, done only while
// that world has not exited, and a no-op when it finds nothing to act on (picks are modular).
import type fc from 'fast-check';

export type Model = Record<string, never>;

export class Act<S extends { exitCode: number | null }> implements fc.Command<Model, S> {
  constructor(
    private readonly name: string,
    private readonly act: (sim: S) => void,
    /** Checked after every action (the keeper model's agreement with its simulated processes). */
    private readonly after?: (sim: S) => void,
  ) {}
  check(): boolean {
    return true;
  }
  run(_: Model, sim: S): void {
    if (sim.exitCode !== null) return;
    this.act(sim);
    this.after?.(sim);
  }
  toString(): string {
    return this.name;
  }
}
