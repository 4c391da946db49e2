// What an xstate machine asks for, turned into a reducer's effects (the primary's worker and
// rollout machines, the keeper's upgrade machine).
//
// xstate v5's pure `transition()` runs nothing: it returns the machine's named actions with their
// params, and its delayed events as `xstate.raise` actions with a `delay` (cancelled by
// `xstate.cancel`). A reducer names a handler for each; everything else (assign and the other
// built-ins) has already changed the snapshot and needs nothing.

export interface MachineAction {
  type: string;
  params?: unknown;
}

/** A delayed event the machine raised: the runtime arms a timer and feeds `event` back when it fires. */
export interface DelayedEvent {
  /** The machine's own id for it, unique among its pending delays (what a cancel names). */
  id: string;
  event: { type: string };
  delay: number;
}

export interface ActionHandlers<C, R = void> {
  /** The machine's named actions, by name. */
  named: Readonly<Record<string, (ctx: C, params: Record<string, unknown>) => R>>;
  delayed?: (ctx: C, delayed: DelayedEvent) => R;
  /** A pending delayed event cancelled, by its id. */
  cancelled?: (ctx: C, id: string) => R;
}

/** One action: what its handler returns, or undefined when it needs none. */
export function machineAction<C, R>(action: MachineAction, handlers: ActionHandlers<C, R>, ctx: C): R | undefined {
  const params = (action.params ?? {}) as Record<string, unknown>;
  switch (action.type) {
    case 'xstate.raise':
      // An undelayed raise is taken inside transition() itself; only a delay comes out.
      if (typeof params.delay !== 'number' || !handlers.delayed) return undefined;
      return handlers.delayed(ctx, { id: String(params.id), event: params.event as { type: string }, delay: params.delay });
    case 'xstate.cancel':
      return handlers.cancelled?.(ctx, String(params.sendId));
    default:
      return handlers.named[action.type]?.(ctx, params);
  }
}

/** Every action of one transition, in order. */
export function machineActions<C>(actions: readonly MachineAction[], handlers: ActionHandlers<C>, ctx: C): void {
  for (const action of actions) machineAction(action, handlers, ctx);
}
