// One reduction's working copy of a reducer's state, copied on write (both reducers: the primary's
// core and the keeper's).
//
// The state a reduction starts from is never changed. The draft starts as a copy of its top level;
// a nested object or array is copied the first time this reduction writes to it, once, and is
// written in place after that. What the event does not touch stays shared with the state before,
// so an event costs what it changes, not the size of the state (Redux Toolkit's structural sharing,
// without a proxy on the hot path). The tests freeze every state they are given, so a write that
// does not go through the draft throws instead of changing history.

const SCAN_LIMIT = 16;

export class Draft<S extends object, E> {
  readonly s: S;
  readonly effects: E[] = [];
  /**
   * Objects this reduction made (copies, and new ones it was handed): written in place. A frequent
   * event makes one or two, where a scan beats hashing; a large step moves on to a set.
   */
  private mine: object[] | null = null;
  private mineSet: Set<object> | null = null;

  /** `copy`: the top level, copied (a spread unless the reducer knows a faster way). */
  constructor(
    readonly base: S,
    copy: (state: S) => S = (state) => ({ ...state }),
  ) {
    this.s = copy(base);
  }

  /**
   * `parent[key]`, writable: a shallow copy put in its place the first time, the same object after.
   * `parent` must be writable itself (this.s, or what an earlier own() or made() returned). A hot
   * path copies its one kind of object itself, with owns() and made(): a spread shared by every
   * kind of object sees too many shapes to stay fast.
   */
  own<P extends object, K extends keyof P>(parent: P, key: K): P[K] & object {
    const value = parent[key] as P[K] & object;
    if (this.owns(value)) return value;
    const copy = this.made((Array.isArray(value) ? value.slice() : { ...value }) as P[K] & object);
    parent[key] = copy;
    return copy;
  }

  /** A value this reduction made (a new entry, a new list): written in place from now on. */
  made<T extends object>(value: T): T {
    if (this.mineSet !== null) {
      this.mineSet.add(value);
    } else if (this.mine === null) {
      this.mine = [value];
    } else {
      this.mine.push(value);
      if (this.mine.length > SCAN_LIMIT) this.mineSet = new Set(this.mine);
    }
    return value;
  }

  /** Whether this reduction made `value` (so it may write it in place). */
  owns(value: object): boolean {
    if (this.mineSet !== null) return this.mineSet.has(value);
    const mine = this.mine;
    if (mine === null) return false;
    for (let i = 0; i < mine.length; i++) if (mine[i] === value) return true;
    return false;
  }
}
