// The states the terminal view lists for a machine, read from the machine itself so that a state
// added to machines/ shows up here without an edit: every atomic state in document order, dotted
// as the status names them (`booting.online`), with a group of final states folded into `dead.*`.
import type { AnyStateMachine } from 'xstate';
import { machineModel, type StateInfo } from '../diagram/model.ts';
import { MACHINES, type MachineName } from '../diagram/machines.ts';

export function stateChips(machine: AnyStateMachine): string[] {
  const model = machineModel(machine);
  const byId = new Map(model.states.map((state) => [state.id, state]));
  const name = (state: StateInfo) => state.id.slice(model.id.length + 1);
  const chips: string[] = [];
  const visit = (state: StateInfo): void => {
    if (state.kind !== 'compound') {
      chips.push(name(state));
      return;
    }
    const children = state.children.map((id) => byId.get(id) as StateInfo);
    if (children.every((child) => child.kind === 'final')) chips.push(`${name(state)}.*`);
    else children.forEach(visit);
  };
  for (const id of model.top) visit(byId.get(id) as StateInfo);
  return chips;
}

/** The chip a state is shown on: itself, or its folded group (`dead.crashed` → `dead.*`). */
export function chipOf(chips: readonly string[], state: string): string | null {
  if (chips.includes(state)) return state;
  return chips.find((chip) => chip.endsWith('.*') && state.startsWith(chip.slice(0, -1))) ?? null;
}

export const CHIPS: Record<MachineName, string[]> = {
  worker: stateChips(MACHINES.worker),
  rollout: stateChips(MACHINES.rollout),
};
