// The shape both reducers' invariant checks share (src/core/invariants.ts, src/keeper/invariants.ts):
// a table of written invariants by id, and checks that return the broken ones as lines
// "<id> <invariant>: <detail>", empty when all hold.

/** A list of broken invariants, and the function that adds one to it. */
export function failures<Id extends string>(table: Readonly<Record<Id, string>>, broken: string[] = []): { broken: string[]; fail: (id: Id, detail: string) => void } {
  return { broken, fail: (id, detail) => void broken.push(`${id} ${table[id]}: ${detail}`) };
}

/**
 * Whether a state is plain data: a JSON round trip gives it back unchanged. It also sees what JSON
 * would lose without a trace: undefined, NaN and infinities, class instances, functions.
 */
export function isPlainData(value: unknown): boolean {
  return samePlainData(JSON.parse(JSON.stringify(value)), value);
}

function samePlainData(copy: unknown, value: unknown): boolean {
  if (typeof value === 'number') return copy === value && Number.isFinite(value);
  if (typeof value !== 'object' || value === null) return copy === value;
  if (typeof copy !== 'object' || copy === null) return false;
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== Array.prototype) return false;
  if (Array.isArray(copy) !== Array.isArray(value)) return false;
  const keys = Object.keys(value);
  if (keys.length !== Object.keys(copy).length) return false;
  return keys.every((key) => samePlainData((copy as Record<string, unknown>)[key], (value as Record<string, unknown>)[key]));
}
