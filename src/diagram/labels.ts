// How a transition reads on a diagram: its event, or `after <delay>` for a delayed one, then the
// guard that must pass in brackets.
import type { AnyTransitionDefinition } from 'xstate';

const AFTER_PREFIX = 'xstate.after.';

export function transitionLabel(t: AnyTransitionDefinition): string {
  const guard = t.guard === undefined ? '' : ` [${guardName(t.guard)}]`;
  return eventLabel(t) + guard;
}

function eventLabel(t: AnyTransitionDefinition): string {
  // xstate names a delayed transition's event `xstate.after.<delay>.<state id>`; the delay is the
  // part a reader cares about, and xstate keeps it on the definition.
  if (t.eventType.startsWith(AFTER_PREFIX) && 'delay' in t) {
    const delay: unknown = t.delay;
    if (typeof delay === 'number') return `after ${delay}ms`;
    if (typeof delay === 'string') return `after ${delay}`;
    return 'after (computed delay)';
  }
  if (t.eventType === '') return 'always';
  return t.eventType;
}

/** A named guard's name; `not`/`and`/`or` spelled out; an inline function by its name. */
export function guardName(guard: unknown): string {
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') {
    const combined = (guard as { guards?: unknown[] }).guards;
    if (Array.isArray(combined)) {
      // Parenthesise a combination inside another, so `!(a && b)` reads right.
      const parts = combined.map((g) => {
        const name = guardName(g);
        return /\s/.test(name) ? `(${name})` : name;
      });
      if (guard.name === 'not') return `!${parts[0] ?? ''}`;
      if (guard.name === 'and') return parts.join(' && ');
      if (guard.name === 'or') return parts.join(' || ');
    }
    return guard.name || 'inline guard';
  }
  if (typeof guard === 'object' && guard !== null && 'type' in guard) return String(guard.type);
  return 'guard';
}

/** The shape that carries the root's own transitions: they apply in any state that does not ignore them. */
export function anyStateLabel(rootId: string, ignoredBy: readonly string[]): string {
  const but = ignoredBy.length === 0 ? '' : ` but ${ignoredBy.join(', ')}`;
  return `${rootId} (any state${but})`;
}
