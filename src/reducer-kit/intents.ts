// Running a reducer's intents: the data its concerns hand the coordinator instead of calling each
// other (the primary's core: src/core/intents.ts says which).

/**
 * Runs intents depth first, as nested calls would (what an intent asks for runs before the intents
 * after it), until none is left, within a bound on how many run in one step. A step that reaches
 * the bound has concerns asking each other for work without end: nothing more runs in that step.
 */
export class IntentRunner<I> {
  private count = 0;
  /** The intent that would have gone past the bound; null while within it. */
  unsettled: I | null = null;

  constructor(
    private readonly execute: (intent: I) => readonly I[],
    /** Read before each intent: a bound may grow with what the step made (workers, slots). */
    readonly bound: () => number,
  ) {}

  /** Runs `intents` and everything they ask for; false once the bound is reached. */
  run(intents: readonly I[]): boolean {
    if (this.unsettled !== null) return false;
    const stack: I[] = [];
    for (let i = intents.length - 1; i >= 0; i--) stack.push(intents[i]!);
    while (stack.length > 0) {
      const intent = stack.pop()!;
      if (++this.count > this.bound()) {
        this.unsettled = intent;
        return false;
      }
      const next = this.execute(intent);
      for (let i = next.length - 1; i >= 0; i--) stack.push(next[i]!);
    }
    return true;
  }
}
