// A machine definition flattened into what a diagram draws: its states in document order and its
// transitions with readable labels. Every renderer reads this, so the Mermaid and DOT outputs
// cannot disagree about what the machine is.
import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from 'xstate';
import { anyStateLabel, transitionLabel } from './labels.ts';

export type StateKind = 'atomic' | 'compound' | 'final';

export interface StateInfo {
  /** xstate's state id, e.g. `worker.booting.online`: the id a diagram gives the state's shape. */
  id: string;
  key: string;
  kind: StateKind;
  /** The enclosing state's id; `null` for children of the root. */
  parent: string | null;
  /** The child entered by default (compound states only). */
  initial: string | null;
  children: string[];
}

export interface TransitionInfo {
  source: string;
  /** Equals `source` for a targetless transition, which runs actions without leaving the state. */
  target: string;
  /** The raw event type, e.g. `xstate.after.readyTimeout.worker.booting`. */
  eventType: string;
  /** What a reader sees, e.g. `after readyTimeout` or `worker.exit [timedOut]`. */
  label: string;
  targetless: boolean;
}

export interface MachineModel {
  /** The root's id, which is the machine's id. */
  id: string;
  /** Children of the root, in document order. */
  top: string[];
  initial: string | null;
  /** Every state but the root, in document order (depth first, parents before children). */
  states: StateInfo[];
  /**
   * The root's own transitions (handled in any state that does not shadow them). A diagram draws
   * them as self-loops on a separate "any state" shape whose id is the root's id.
   */
  rootTransitions: TransitionInfo[];
  /** How the "any state" shape is named, e.g. `worker (any state but dead)`. */
  anyStateLabel: string;
  /** States that ignore some of the root's events (see `isNoOp`), e.g. the worker's `dead`. */
  shadowing: string[];
  /** All other transitions, in document order. */
  transitions: TransitionInfo[];
}

export function machineModel(machine: AnyStateMachine): MachineModel {
  const root = machine.root;
  const states: StateInfo[] = [];
  const transitions: TransitionInfo[] = [];
  const rootEvents = new Set([...root.transitions.keys()]);
  const shadowing: string[] = [];
  const visit = (node: AnyStateNode): void => {
    const children = childrenOf(node);
    states.push({
      id: node.id,
      key: node.key,
      kind: kindOf(node),
      parent: node.parent === root ? null : (node.parent?.id ?? null),
      initial: initialOf(node),
      children: children.map((child) => child.id),
    });
    transitions.push(...transitionsOf(node));
    const ignored = [...node.transitions.entries()].some(
      ([eventType, ts]) => rootEvents.has(eventType) && ts.some(isNoOp),
    );
    if (ignored) shadowing.push(node.id);
    children.forEach(visit);
  };
  const top = childrenOf(root);
  top.forEach(visit);
  return {
    id: root.id,
    top: top.map((node) => node.id),
    initial: initialOf(root),
    states,
    rootTransitions: transitionsOf(root),
    anyStateLabel: anyStateLabel(
      root.id,
      shadowing.map((id) => states.find((state) => state.id === id)?.key ?? id),
    ),
    shadowing,
    transitions,
  };
}

/** Every state id of a machine but the root's, in document order (the order xstate's `getStateNodes` uses). */
export function stateIds(machine: AnyStateMachine): string[] {
  return machineModel(machine).states.map((state) => state.id);
}

function childrenOf(node: AnyStateNode): AnyStateNode[] {
  return Object.values(node.states) as AnyStateNode[];
}

function kindOf(node: AnyStateNode): StateKind {
  if (node.type === 'atomic' || node.type === 'compound' || node.type === 'final') return node.type;
  // Nothing in zd needs them yet; drawing them wrong would be worse than refusing.
  throw new Error(`diagram: ${node.type} states are not supported (${node.id})`);
}

function initialOf(node: AnyStateNode): string | null {
  if (node.type !== 'compound') return null;
  return node.initial.target[0]?.id ?? null;
}

function transitionsOf(node: AnyStateNode): TransitionInfo[] {
  const definitions: AnyTransitionDefinition[] = [
    ...[...node.transitions.values()].flat(),
    ...(node.always ?? []),
  ];
  return definitions.filter((t) => !isNoOp(t)).flatMap((t) => {
    const targets = t.target?.map((target) => target.id) ?? [node.id];
    return targets.map((target) => ({
      source: node.id,
      target,
      eventType: t.eventType,
      label: transitionLabel(t),
      targetless: t.target === undefined,
    }));
  });
}

/**
 * A transition with no target, guard or action does nothing but shadow an ancestor's handler for
 * the same event (the worker's `dead` state ignores late `worker.forked` / `worker.disconnect` this
 * way). Drawn, it would read as a step that happens; it is left out.
 */
export function isNoOp(t: AnyTransitionDefinition): boolean {
  return t.target === undefined && t.guard === undefined && t.actions.length === 0;
}
