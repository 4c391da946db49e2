// One reduction's working copy of a reducer's state, copied on write (both reducers: the primary's
// core and the keeper's).
//
// The state a reduction starts from is never changed. The draft starts as a copy of its top level;
// a nested object or array is copied the first time this reduction writes to it, once, and is
// written in place after that. What the event does not touch stays shared with the state before,
// so an event costs what it changes, not the size of the state (Redux Toolkit's structural sharing,
// without a proxy on the hot path). The tests freeze every state they are given, so a write that
// skips own() throws instead of changing history.

export class Draft<S extends object, E> {
  readonly s: S;
  readonly effects: E[] = [];
  /** Objects this reduction made (copies, and new ones it was handed): written in place. */
  private readonly mine = new Set<object>();

  /** `copy`: the top level, copied (a spread unless the reducer knows a faster way). */
  constructor(
    readonly base: S,
    copy: (state: S) => S = (state) => ({ ...state }),
  ) {
    this.s = copy(base);
    this.mine.add(this.s);
  }

  /**
   * `parent[key]`, writable: a shallow copy put in its place the first time, the same object after.
   * `parent` must be writable itself (this.s, or what an earlier own() returned).
   */
  own<P extends object, K extends keyof P>(parent: P, key: K): P[K] & object {
    const value = parent[key] as P[K] & object;
    if (this.mine.has(value)) return value;
    const copy = (Array.isArray(value) ? value.slice() : { ...value }) as P[K] & object;
    this.mine.add(copy);
    parent[key] = copy;
    return copy;
  }

  /** A value this reduction made (a new entry, a new list): written in place from now on. */
  made<T extends object>(value: T): T {
    this.mine.add(value);
    return value;
  }
}
